"""A disk that fills up stops acknowledging new QoS 1 instead of losing data (issue 12).

Sol's store retries a failed write every second and holds the PUBACKs that wait on it
(docs/persistence.md). The store lives on a small tmpfs that a filler file fills: the publisher's
PUBACKs stop, the write errors are counted on /metrics, the broker keeps serving (QoS 0 and
PINGREQ); once the filler is deleted the held PUBACKs go out and the offline persistent subscriber
receives every acknowledged message. Needs root (mount); skipped otherwise.
"""
import os
import subprocess

import pytest

import mqttraw
from conftest import free_port, store_metrics, wait_until
from mqttraw import PINGRESP, PUBACK, PUBLISH, Timeout, pingreq_pkt, publish_pkt

pytestmark = pytest.mark.sol_only

PAYLOAD = 1024


def mount_tmpfs(path, size):
    """Mount a tmpfs of size at path, or skip the test saying why it cannot."""
    os.makedirs(path, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", path],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot run mount: {e}")
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")


def unmount(path):
    if subprocess.run(["umount", path], capture_output=True, timeout=20).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=20)


def fill(path):
    """Write path until the file system is full (ENOSPC); return the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                w = f.write(chunk)
            except OSError:
                break
            if not w:
                break
            n += w
    # the last page or two: small writes until nothing fits
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                if not f.write(b"\0" * 512):
                    break
                n += 512
            except OSError:
                break
    return n


def body(i):
    return b"%08d" % i + b"m" * (PAYLOAD - 8)


def test_full_disk_holds_acks_then_delivers_everything(broker_factory, tmp_path):
    mnt = str(tmp_path / "mnt")
    mount_tmpfs(mnt, "16m")
    b = None
    try:
        http = free_port()
        b = broker_factory(extra_args=["--data-dir", os.path.join(mnt, "store"),
                                       "--http-port", str(http), "--durability", "sync"])
        # The persistent subscriber, then offline: everything for it goes to the store.
        sub = b.raw(timeout=10)
        sub.connect("df-sub", clean=False)
        sub.subscribe(1, [("df/t", 1)])
        sub.close()

        pub = b.raw(timeout=10)
        pub.connect("df-pub")
        # Room on the disk: acknowledged as usual.
        for i in range(5):
            pub.publish("df/t", body(i), qos=1, pid=i + 1)
        base = store_metrics(http)
        assert base["sol_store_write_errors_total"] == 0

        filled = fill(os.path.join(mnt, "filler"))
        assert filled > 0
        # Publish one at a time until a PUBACK does not come: that message was not written.
        acked = 5
        stalled_at = None
        for i in range(5, 900):
            pub.send(publish_pkt("df/t", body(i), 1, pid=i + 1))
            try:
                pub.recv_ack(PUBACK, i + 1, timeout=5)
                acked += 1
            except Timeout:
                stalled_at = i
                break
        assert stalled_at is not None, "the full disk never stopped the acknowledgements"
        # Three more behind it: none acknowledged either.
        held = [stalled_at, stalled_at + 1, stalled_at + 2, stalled_at + 3]
        for i in held[1:]:
            pub.send(publish_pkt("df/t", body(i), 1, pid=i + 1))
        m = store_metrics(http)
        assert m["sol_store_write_errors_total"] > 0, m
        assert m["sol_store_acks_held"] >= 1, m
        pub.recv_nothing(1.5)  # still no PUBACK, while the writer retries every second
        wait_until(lambda: store_metrics(http)["sol_store_write_errors_total"]
                   > m["sol_store_write_errors_total"], 10, "a retried write")
        assert b.alive()

        # The broker keeps serving: QoS 0 between other clients, PINGREQ.
        q_sub = b.raw()
        q_sub.connect("df-q0-sub")
        q_sub.subscribe(1, [("q0/t", 0)])
        q_pub = b.raw()
        q_pub.connect("df-q0-pub")
        q_pub.send(publish_pkt("q0/t", b"still here", 0))
        got = q_sub.recv_publish(timeout=10)
        assert got.payload == b"still here"
        q_pub.send(pingreq_pkt())
        q_pub.recv_type(PINGRESP, timeout=10)
        q_sub.close()
        q_pub.close()

        # Space again: the held PUBACKs go out, in order.
        os.unlink(os.path.join(mnt, "filler"))
        for i in held:
            pub.recv_ack(PUBACK, i + 1, timeout=30)
        wait_until(lambda: store_metrics(http)["sol_store_acks_held"] == 0, 30, "acks_held 0")
        pub.close()
        total = held[-1] + 1

        # Every acknowledged message reaches the subscriber, once.
        sub = b.raw(timeout=10)
        sub.connect("df-sub", clean=False)
        seen = {}
        while len(seen) < total:
            p = sub.recv_publish(timeout=20)
            assert p.type == PUBLISH and p.topic == "df/t"
            n = int(p.payload[:8])
            assert p.payload == body(n)
            seen[n] = seen.get(n, 0) + 1
        assert sorted(seen) == list(range(total)), sorted(set(range(total)) - set(seen))
        sub.recv_nothing(0.5)
        sub.close()
        assert b.alive()
    finally:
        if b is not None and b.alive():
            b.stop()
        unmount(mnt)
