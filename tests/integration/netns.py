"""A small private network on one machine, for the multi-host test.

One network namespace per host, plus one "switch" namespace that holds a
Linux bridge; each host namespace gets one veth pair whose other end is a
port of that bridge. Nothing is added to the root namespace: every
interface, address and route lives in a namespace this module made, so
the test's traffic cannot leave them.

Every namespace is named PREFIX-<host>, with PREFIX = "abmh-<pid>-<hex>"
(the pid of the test process): the test's cleanup deletes exactly the
namespaces of its own prefix, and stale_cleanup() removes those left by a
test process that no longer exists (one killed with SIGKILL), with the
processes inside them and their /tmp/PREFIX-* folders.

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's `ip`.
"""
import contextlib
import ctypes
import http.client as httplib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time

NAME_RE = re.compile(r"^abmh-(\d+)-[0-9a-f]+-")
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def ip(*args, check=True, timeout=10):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p


def list_netns():
    p = ip("netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def root_links():
    """Interface names of the root namespace (to show none were added)."""
    p = ip("-o", "link", "show", check=False)
    return sorted(line.split(":")[1].strip().split("@")[0] for line in p.stdout.splitlines()
                  if line.count(":") >= 2)


def why_unavailable():
    """None when namespaces can be made here, else the reason in words."""
    if os.geteuid() != 0:
        return ("the multi-host test needs root to create network namespaces "
                "(CI runs as root); run it with sudo")
    if not shutil.which("ip"):
        return "iproute2's `ip` is not installed"
    name = "abmh-%d-probe-%s" % (os.getpid(), secrets.token_hex(2))
    p = ip("netns", "add", name, check=False)
    if p.returncode != 0:
        return "cannot create a network namespace here: %s" % p.stderr.strip()
    try:
        q = ip("-n", name, "link", "add", "br0", "type", "bridge", check=False)
        if q.returncode != 0:
            return "cannot create a bridge in a namespace: %s" % q.stderr.strip()
    finally:
        ip("netns", "del", name, check=False)
    return None


def ns_pids(name):
    p = ip("netns", "pids", name, check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_ns_processes(name):
    """SIGKILL every process inside namespace name; waits until they are gone."""
    for _ in range(50):
        pids = [p for p in ns_pids(name) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def delete_ns(name):
    kill_ns_processes(name)
    ip("netns", "del", name, check=False)


def delete_prefix(prefix):
    """Deletes every namespace named prefix-*, and what runs inside."""
    gone = []
    for name in list_netns():
        if name.startswith(prefix + "-"):
            delete_ns(name)
            gone.append(name)
    return gone


def stale_cleanup(tmp_root="/tmp"):
    """Removes the namespaces (and their processes) of earlier test
    processes that are gone, and their PREFIX-* folders under tmp_root."""
    for name in list_netns():
        m = NAME_RE.match(name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            delete_ns(name)
    for name in os.listdir(tmp_root):
        m = NAME_RE.match(name)
        if m and not os.path.exists("/proc/%s" % m.group(1)):
            shutil.rmtree(os.path.join(tmp_root, name), ignore_errors=True)


@contextlib.contextmanager
def inside(name):
    """Runs the block with this thread in namespace name (setns(2)).

    Sockets created in the block belong to that namespace for good, so a
    connection made here stays there after the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open("/run/netns/" + name, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns(%s): %s" % (name, os.strerror(e)))
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover
                e = ctypes.get_errno()
                os.write(2, b"netns: cannot return to the root namespace\n")
                os._exit(70 + (e & 0xf))
    finally:
        os.close(own)


def connect(ns, host, port, timeout=5.0):
    """A TCP connection made from inside namespace ns."""
    with inside(ns):
        return socket.create_connection((host, port), timeout=timeout)


class _Conn(httplib.HTTPConnection):
    def __init__(self, ns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ns = ns

    def connect(self):
        self.sock = connect(self._ns, self.host, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def http(ns, method, host, port, path, token=None, body=None, headers=None, timeout=5.0):
    """One HTTP request from inside namespace ns: (status, headers, body bytes)."""
    c = _Conn(ns, host, port, timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_json(ns, method, host, port, path, **kw):
    st, _, data = http(ns, method, host, port, path, **kw)
    try:
        return st, json.loads(data) if data else None
    except ValueError:
        return st, data


class Network:
    """The switch namespace, one namespace per host, veth pairs, addresses.

    hosts: {name: last octet}; the subnet is 10.231.<third>.0/24 with a
    random third octet unless given."""

    def __init__(self, hosts, third=None, prefix=None):
        self.prefix = prefix or "abmh-%d-%s" % (os.getpid(), secrets.token_hex(2))
        self.third = third if third is not None else secrets.randbelow(256)
        self.subnet = "10.231.%d.0/24" % self.third
        self.hosts = {h: "10.231.%d.%d" % (self.third, octet) for h, octet in hosts.items()}
        self.switch = self.prefix + "-sw"
        self.made = []

    def ns(self, host):
        return "%s-%s" % (self.prefix, host)

    @staticmethod
    def port_name(host):
        return ("v-" + host)[:15]

    def create(self):
        ip("netns", "add", self.switch)
        self.made.append(self.switch)
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for host, addr in self.hosts.items():
            ns = self.ns(host)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            # both ends are made inside the host namespace, then one moves to
            # the switch: at no moment is there an interface in the root one
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name",
               self.port_name(host), "netns", self.switch)
            ip("-n", self.switch, "link", "set", self.port_name(host), "master", "br0")
            ip("-n", self.switch, "link", "set", self.port_name(host), "up")
            ip("-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
        return self

    def leaked(self, links_before):
        """Interfaces of ours that showed up in the root namespace since
        links_before (root_links() taken before create()); [] is right."""
        ours = {"br0", "eth0"} | {self.port_name(h) for h in self.hosts}
        return sorted((set(root_links()) - set(links_before)) & ours)

    def link(self, host, up):
        """Takes the host's cable out of the switch (up=False) or back in."""
        ip("-n", self.switch, "link", "set", self.port_name(host), "up" if up else "down")

    def exec_argv(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    def destroy(self):
        gone = delete_prefix(self.prefix)
        self.made = []
        return gone
