"""A private network namespace for a cluster test, with its own /etc/hosts and packet filter.

Everything a cluster test starts runs inside the namespace, so the test may bind any 127.x address, choose
any port and install iptables rules without touching the host. The pytest process itself enters the
namespace (setns on its main thread; threads it starts afterwards, such as paho's network loop, inherit
it) so that plain sockets reach the nodes; processes are started with `ip netns exec`, which also
bind-mounts /etc/netns/<name>/hosts over /etc/hosts (DNS-name seeds without touching the host's files).

Partitions are iptables DROP rules in a chain of our own hooked into OUTPUT (loopback packets traverse
OUTPUT once): cutting address A from address B drops A->B and B->A, nothing else, so the test process
(which talks from 127.0.0.1) still reaches every node.
"""
import ctypes
import os
import shutil
import subprocess

CLONE_NEWNET = 0x40000000
CHAIN = "SOLCUT"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns: " + os.strerror(err))


def _run(argv, check=True):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=10)


def unavailable_reason():
    """Why namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "cluster tests need root (they create a private network namespace with `ip netns`)"
    if not shutil.which("ip"):
        return "cluster tests need iproute2 (`ip`)"
    if not shutil.which("iptables"):
        return "cluster tests need iptables (deploy/install-deps.sh installs it)"
    return None


class NetNS:
    """One named namespace: create(), enter(), ..., delete() (idempotent, safe after partial setup)."""

    def __init__(self, name):
        self.name = name
        self.etc_dir = os.path.join("/etc/netns", name)
        self._orig_fd = None
        self._created = False
        self._chain = False
        self._hosts = {}

    def create(self):
        _run(["ip", "netns", "add", self.name])
        self._created = True
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        os.makedirs(self.etc_dir, exist_ok=True)
        with open(os.path.join(self.etc_dir, "host.conf"), "w") as f:
            f.write("multi on\n")  # every /etc/hosts line of a name, not just the first
        self._write_hosts()

    def enter(self):
        """Move this process's main thread into the namespace (undone by leave())."""
        self._orig_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(os.path.join("/var/run/netns", self.name), os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)

    def leave(self):
        if self._orig_fd is not None:
            _setns(self._orig_fd)
            os.close(self._orig_fd)
            self._orig_fd = None

    def delete(self):
        self.leave()
        if self._created:
            _run(["ip", "netns", "del", self.name], check=False)
            self._created = False
        shutil.rmtree(self.etc_dir, ignore_errors=True)

    def exec_argv(self, argv):
        """argv run inside the namespace with its /etc/hosts."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    # ---- names ----

    def set_hosts(self, name, addrs):
        """Make `name` resolve to every address in addrs (several lines, one name: a headless Service).
        The file is rewritten in place, so processes already running see the change on their next lookup."""
        self._hosts[name] = list(addrs)
        self._write_hosts()

    def _write_hosts(self):
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        for name, addrs in self._hosts.items():
            lines += ["%s %s" % (a, name) for a in addrs]
        path = os.path.join(self.etc_dir, "hosts")
        with open(path, "w") as f:  # same inode: the bind mount inside running processes follows
            f.write("\n".join(lines) + "\n")

    # ---- packet filter ----

    def iptables(self, *args):
        return _run(self.exec_argv(["iptables", "-w"] + list(args)))

    def _ensure_chain(self):
        if not self._chain:
            self.iptables("-N", CHAIN)
            self.iptables("-I", "OUTPUT", "-j", CHAIN)
            self._chain = True

    def cut(self, side_a, side_b):
        """Drop all traffic between every address of side_a and every address of side_b (both ways)."""
        self._ensure_chain()
        for a in side_a:
            for b in side_b:
                self.iptables("-A", CHAIN, "-s", a, "-d", b, "-j", "DROP")
                self.iptables("-A", CHAIN, "-s", b, "-d", a, "-j", "DROP")

    def heal(self):
        """Remove every cut."""
        if self._chain:
            self.iptables("-F", CHAIN)
