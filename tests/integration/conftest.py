"""Shared fixtures for the integration tests.

Every test talks to real processes over the wire: a real redis-server and
real `autobot` processes on 127.0.0.1, on ports picked free at run time.
Nothing here touches an address outside 127.0.0.0/8.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import http.client as httplib

import pytest

# Every process a test starts, so that none outlives the session even when
# a test fails half-way.
_PROCS = []


def _track(proc):
    _PROCS.append(proc)
    return proc


@pytest.fixture(autouse=True, scope="session")
def _reap_everything():
    yield
    for p in _PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL) if p.pid == os.getpgid(p.pid) else p.kill()
            except OSError:
                pass
            p.wait()

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUTOBOT = os.environ.get("AUTOBOT_BIN", os.path.join(ROOT, "build", "autobot"))
MODULE = os.environ.get("AUTOBOT_MODULE",
                        os.path.join(os.path.dirname(AUTOBOT), "src", "redismod", "autobot.so"))


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(step)
    return None


def http(method, port, path, token=None, body=None, headers=None, source=None,
         timeout=5.0, host="127.0.0.1"):
    """One HTTP request; returns (status, headers dict, body bytes)."""
    kw = {"timeout": timeout}
    if source:
        kw["source_address"] = (source, 0)
    c = httplib.HTTPConnection(host, port, **kw)
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


def http_json(method, port, path, **kw):
    st, hd, data = http(method, port, path, **kw)
    try:
        return st, json.loads(data) if data else None
    except ValueError:
        return st, data


class Redis:
    """A private redis-server on a free port, with a password."""

    def __init__(self, tmp, password="test-redis-pw-123", port=None):
        self.port = port or free_port()
        self.password = password
        self.dir = tmp
        self.proc = None

    def start(self, appendonly=False, module=False, extra=None):
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed (scripts/install-deps.sh installs it)")
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes" if appendonly else "no",
                "--dir", self.dir, "--requirepass", self.password]
        if module:
            if not os.path.exists(MODULE):
                pytest.skip("%s is not built" % MODULE)
            args += ["--loadmodule", MODULE]
        args += extra or []
        self.proc = _track(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        assert wait_for(self.ping, 10), "redis-server did not start"
        return self

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"AUTH %s\r\nPING\r\n" % self.password.encode())
                data = b""
                while b"PONG" not in data:
                    chunk = s.recv(100)
                    if not chunk:
                        return False
                    data += chunk
                return True
        except OSError:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill()


class RespError(Exception):
    """An error reply (-ERR ...) from Redis."""


class Resp:
    """A minimal blocking RESP2/RESP3 client: cmd(*args) -> parsed reply.

    Bulk strings come back as bytes, errors raise RespError, RESP3 maps
    as dicts, doubles as floats, nulls as None."""

    def __init__(self, port, password=None, resp3=False, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        if resp3:
            args = ["HELLO", "3"] + (["AUTH", "default", password] if password else [])
            self.cmd(*args)
        elif password:
            self.cmd("AUTH", password)

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, (int, float)):
                a = repr(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            n = int(rest)
            out = {}
            for _ in range(n):
                k = self.read()
                out[k] = self.read()
            return out
        raise ConnectionError("unexpected RESP type %r" % line)


@pytest.fixture
def tmpdir_ab():
    d = tempfile.mkdtemp(prefix="ab-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def redis(tmpdir_ab):
    r = Redis(tmpdir_ab).start()
    yield r
    r.stop()


SHARED = os.environ.get("AB_SHARED_DIR", os.path.join(os.path.dirname(ROOT), "shared"))


def shared_path(*parts):
    """A file of ../shared, or skip the test when it is not there."""
    p = os.path.join(SHARED, *parts)
    if not os.path.exists(p):
        pytest.skip("test data %s is missing (../shared not present)" % p)
    return p


class Serve:
    """`autobot serve ROLE` (default: the coordinator) against a given redis."""

    def __init__(self, state_dir, redis_port, redis_password, extra=None, port=None,
                 role="coordinator"):
        self.port = port or free_port()
        self.state_dir = state_dir
        self.role = role
        self.args = [AUTOBOT, "serve", role, "--state-dir", state_dir,
                     "--set", "services.%s.port=%d" % (role, self.port),
                     "--set", "services.redis.port=%d" % redis_port,
                     "--set", "services.redis.password=%s" % redis_password,
                     "--set", "services.redis.managed=false"] + (extra or [])
        os.makedirs(state_dir, exist_ok=True)
        self.log = open(os.path.join(state_dir, "serve.log"), "ab")
        self.proc = None

    def start(self, wait=True):
        os.makedirs(self.state_dir, exist_ok=True)
        self.proc = _track(subprocess.Popen(self.args, stdout=self.log, stderr=self.log))
        if wait and not wait_for(lambda: http("GET", self.port, "/health")[0] == 200, 10):
            self.stop()
            raise AssertionError("%s did not answer /health" % self.role)
        return self

    @property
    def token(self):
        with open(os.path.join(self.state_dir, "admin.token")) as f:
            return f.read().strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Up:
    """`autobot up` in a temporary state dir, on free ports."""

    def __init__(self, state_dir, extra=None):
        self.state_dir = state_dir
        self.port = free_port()
        self.redis_port = free_port()
        self.llm_port = free_port()
        self.args = [AUTOBOT, "up", "--state-dir", state_dir,
                     "--set", "services.coordinator.port=%d" % self.port,
                     "--set", "services.redis.port=%d" % self.redis_port,
                     "--set", "services.llm.port=%d" % self.llm_port] + (extra or [])
        self.proc = None
        self.out = []
        self.lines = threading.Event()

    def start(self):
        self.proc = _track(subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, start_new_session=True))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        ok = wait_for(lambda: any("autobot is up" in l for l in self.out), 20)
        if not ok:
            self.stop()
            raise AssertionError("autobot up did not come up:\n" + "".join(self.out[-50:]))
        return self

    def _read(self):
        for raw in self.proc.stdout:
            self.out.append(raw.decode(errors="replace"))

    @property
    def token(self):
        with open(os.path.join(self.state_dir, "admin.token")) as f:
            return f.read().strip()

    def cli_args(self):
        """Flags that point a CLI command at this cluster."""
        return ["--state-dir", self.state_dir,
                "--set", "services.coordinator.port=%d" % self.port,
                "--set", "services.redis.port=%d" % self.redis_port,
                "--set", "services.llm.port=%d" % self.llm_port]

    def children(self):
        """pids whose parent is the `up` process."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def child_pid(self, name):
        for pid in self.children():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if name in cmd:
                return pid
        return None

    def interrupt(self, timeout=15):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            kids = self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass


@pytest.fixture
def up(tmpdir_ab):
    u = Up(os.path.join(tmpdir_ab, "state")).start()
    yield u
    u.stop()


def run_cli(*args, timeout=30, env=None):
    return subprocess.run([AUTOBOT] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=env)
