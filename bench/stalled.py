#!/usr/bin/env python3
"""bench/stalled.py - issue 9, "must show 2": a stalled subscriber cannot stall the broker.

One broker at its default settings (back-pressure, --stall-timeout-ms 2000, --max-queued 1000,
--backlog-high 1 MiB), then:

  1. baseline: solbench, 1 publisher -> 1 subscriber, QoS 0, 64 B, open loop (--max-lag 0),
     BASE_S seconds: its received rate.
  2. a stalled client connects: a raw socket (4 KiB receive buffer, clean session false) that
     subscribes to '#' at QoS 1 and never reads. The same solbench run again, for FLAT_S (60)
     seconds of flat-out publishing, while the broker's VmRSS is sampled every second. The
     stalled client matches the publisher's topic too, so it holds the publisher back for the
     stall timeout (counted in the rate), then stalls and its QoS 0 is dropped, counted.
  3. QOS1_N (3000) QoS 1 messages to another topic while the client is still stalled: it keeps
     the in-flight window plus --max-queued of them (defaults read from `sol --help`); then it starts reading and must receive those
     (at least --max-queued), in order, and then a new message (it caught up).

Conditions (exit 1 if any fails):
  - rate with the stalled client >= 80% of the baseline rate, both runs 0 lost;
  - the stalled client's drops are counted: sol_subscribers_stalled_total >= 1 and
    sol_messages_dropped_total{reason="qos0_stalled"} > 0;
  - broker VmRSS stays under RSS_BOUND_MIB for the whole flat-out run. The bound: what a
    stalled session may hold (its output up to --backlog-high plus one read's worth of
    deliveries, its queue up to --max-queued messages), what the reading subscriber may hold
    (its output up to --backlog-high before its publisher pauses), the publisher's partial
    packet, and the process itself (a few MiB): well under 64 MiB; the default
    --session-max-bytes (64 MiB) is the cap that would apply if all else failed;
  - the stalled client then receives at least --max-queued of its queued QoS 1 messages, in
    order, with nothing missing between them.

Usage: bench/stalled.py [--sol build/sol] [--solbench build/solbench] [--flat 60] [--base 15]
Prints a table; exit 0 when every condition holds, 1 if one fails, 2 on a setup error.
"""
import argparse
import os
import re
import select
import socket
import struct
import subprocess
import tempfile
import sys
import threading
import time
import urllib.request

HOST = "127.0.0.1"
RSS_BOUND_MIB = 64
QOS1_N = 3000


def default(sol, flag):
    """A setting's default, from `sol --help` ("--max-queued N ... (default: 1000)")."""
    out = subprocess.run([sol, "--help"], capture_output=True, text=True).stdout
    m = re.search(r"^\s*%s \S+ .*\(default: (\d+)\)" % re.escape(flag), out, re.M)
    if not m:
        sys.exit(f"no default for {flag} in {sol} --help")
    return int(m.group(1))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listening(port):
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A"
                   for line in f.readlines()[1:])


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metrics(http):
    with urllib.request.urlopen(f"http://{HOST}:{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# ---- minimal MQTT 3.1.1 over a raw socket ----

def varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    s = s.encode()
    return struct.pack("!H", len(s)) + s


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_pkt(cid, clean):
    return pkt(0x10, mstr("MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack("!H", 600) +
               mstr(cid))


def publish_pkt(topic, payload, qos=0, pid=0):
    return pkt(0x30 | (qos << 1), mstr(topic) + (struct.pack("!H", pid) if qos else b"") + payload)


class Client:
    """A raw MQTT client: packets parsed from what arrives; QoS 1 PUBLISHes acknowledged."""

    def __init__(self, port, cid, clean=True, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:  # before the handshake, so the advertised window matches the buffer
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((HOST, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = []
        self.sock.sendall(connect_pkt(cid, clean))
        t, body = self.next(10)
        assert t == 2 and body[1] == 0, "CONNACK refused"

    def packets(self):
        out, self.pending = self.pending, []
        i, n = 0, len(self.buf)
        while True:
            length, mult, j = 0, 1, i + 1
            while j < n and j - i <= 4:
                c = self.buf[j]
                length += (c & 0x7F) * mult
                mult *= 128
                j += 1
                if not c & 0x80:
                    break
            else:
                break
            if n - j < length:
                break
            out.append((self.buf[i], bytes(self.buf[j:j + length])))
            i = j + length
        del self.buf[:i]
        return out

    def next(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            got = self.packets()
            if got:
                self.pending = got[1:]
                return got[0][0] >> 4, got[0][1]
            self.fill(deadline)

    def fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("broker closed the connection")
        self.buf += data

    def subscribe(self, flt, qos):
        self.sock.sendall(pkt(0x82, struct.pack("!H", 1) + mstr(flt) + bytes([qos])))
        t, body = self.next(10)
        assert t == 9 and body[2] == qos, "SUBACK"


def run_solbench(solbench, port, duration, prefix):
    cmd = [solbench, "--host", HOST, "--port", str(port), "--pubs", "1", "--subs", "1", "--qos",
           "0", "--size", "64", "--max-lag", "0", "--duration", str(duration), "--topic-prefix",
           prefix, "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")), None)
    if line is None:
        sys.exit(f"solbench failed ({p.returncode}): {p.stdout}{p.stderr}")
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sol", default=os.path.join(repo, "build", "sol"))
    ap.add_argument("--solbench", default=os.path.join(repo, "build", "solbench"))
    ap.add_argument("--base", type=int, default=15, help="baseline run, seconds")
    ap.add_argument("--flat", type=int, default=60, help="run with the stalled client, seconds")
    a = ap.parse_args()
    max_queued, inflight = default(a.sol, "--max-queued"), default(a.sol, "--max-inflight")

    port, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOL_")}
    env["SOL_CLUSTER_PORT"] = "0"  # a single node: no cluster listener to collide on
    log = open(os.path.join("/tmp", f"stalled-bench-{port}.log"), "w")
    broker = subprocess.Popen([a.sol, "--bind", HOST, "--port", str(port), "--http-port",
                               str(http), "--data-dir", tempfile.mkdtemp(prefix="sol-stalled-")],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 10
        while not (listening(port) and listening(http)):
            if broker.poll() is not None or time.monotonic() > deadline:
                sys.exit(2)
            time.sleep(0.02)
        rows, ok = [], True

        def row(what, value, cond=None):
            nonlocal ok
            verdict = "" if cond is None else ("ok" if cond else "FAIL")
            ok = ok and cond is not False
            rows.append((what, value, verdict))

        m0 = metrics(http)
        base = run_solbench(a.solbench, port, a.base, "bench/base")
        m1 = metrics(http)

        stalled = Client(port, "stalled", clean=False, rcvbuf=4096)
        stalled.subscribe("#", 1)
        samples, stop = [], threading.Event()

        def sample():
            while not stop.wait(1.0):
                samples.append(rss_mib(broker.pid))
        rss0 = rss_mib(broker.pid)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        flat = run_solbench(a.solbench, port, a.flat, "bench/flat")
        stop.set()
        t.join()
        m = metrics(http)

        rb, rf = float(base["recv_rate"]), float(flat["recv_rate"])
        row(f"baseline {a.base} s: received msg/s (lost)", f"{rb:,.0f} ({base['lost']})",
            base["lost"] == "0")
        row(f"with stalled client {a.flat} s: received msg/s (lost)", f"{rf:,.0f} ({flat['lost']})",
            flat["lost"] == "0")
        row("ratio (>= 0.80)", f"{rf / rb:.2f}", rf >= 0.8 * rb)
        ps = "sol_publisher_paused_seconds_total"
        row("publisher paused during baseline / stalled run, s",
            f"{m1[ps] - m0[ps]:.2f} / {m[ps] - m1[ps]:.2f}")
        row("subscribers stalled (>= 1)", f"{m['sol_subscribers_stalled_total']:.0f}",
            m["sol_subscribers_stalled_total"] >= 1)
        q0 = m['sol_messages_dropped_total{reason="qos0_stalled"}']
        row("dropped, qos0_stalled (> 0)", f"{q0:,.0f}", q0 > 0)
        row("broker VmRSS before / max during the run, MiB",
            f"{rss0:.1f} / {max(samples):.1f} ({len(samples)} samples)",
            max(samples) < RSS_BOUND_MIB)
        row("RSS bound, MiB", f"{RSS_BOUND_MIB}")

        # QoS 1 while still stalled: window + max-queued kept, the rest dropped (queue_full).
        pub = Client(port, "q1-pub")
        pub.sock.sendall(b"".join(publish_pkt("other/q1", b"%08d" % i, 1, i + 1)
                                  for i in range(QOS1_N)))
        acks, deadline = 0, time.monotonic() + 30
        while acks < QOS1_N:
            acks += sum(1 for f, _ in pub.packets() if f >> 4 == 4)
            if acks < QOS1_N:
                pub.fill(deadline)
        qfull = metrics(http)['sol_messages_dropped_total{reason="queue_full"}']
        row(f"QoS 1 sent while stalled / dropped queue_full (max-queued {max_queued}, "
            f"max-inflight {inflight})", f"{QOS1_N} / {qfull:,.0f}")

        # The stalled client reads now: its queued QoS 1 arrive, in order, then a new message.
        got, q0_left, marker = [], 0, False
        deadline = time.monotonic() + 60
        sent_marker = False
        while not marker:
            for first, body in stalled.packets():
                if first >> 4 != 3:
                    continue
                qos = (first >> 1) & 3
                tl = struct.unpack_from("!H", body)[0]
                topic = body[2:2 + tl].decode()
                off = 2 + tl
                if qos:
                    stalled.sock.sendall(pkt(0x40, body[off:off + 2]))
                    off += 2
                if topic == "other/q1":
                    got.append(int(body[off:off + 8]))
                elif topic == "other/end":
                    marker = True
                else:
                    q0_left += 1
            if len(got) >= max_queued and not sent_marker:
                pub.sock.sendall(publish_pkt("other/end", b"end", 1, 9999))
                sent_marker = True
            if not marker:
                stalled.fill(deadline)
        row("stalled client, QoS 0 still delivered when it read", f"{q0_left:,}")
        in_order = got == list(range(len(got)))
        row(f"stalled client, QoS 1 received (>= {max_queued}, in order, then a new one)",
            f"{len(got)} (seq {got[0]}..{got[-1]})" if got else "0",
            in_order and max_queued <= len(got) <= max_queued + inflight + 1 and marker)
        row("broker alive", "yes" if broker.poll() is None else "NO", broker.poll() is None)

        w = max(len(r[0]) for r in rows)
        v = max(len(r[1]) for r in rows)
        print(f"{'stalled subscriber (issue 9, must show 2)':<{w}}  {'value':<{v}}  result")
        for what, value, verdict in rows:
            print(f"{what:<{w}}  {value:<{v}}  {verdict}")
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
