"""The logs of a running cluster: the ab:log stream, the per-role log files
of `autobot up` (rotation with SIGHUP), `autobot logs` and the coordinator's
/api/logs and /api/logs/stream, and what happens to logging while Redis is
down.

One `autobot up` serves the whole module (real redis-server, coordinator and
llm on free 127.0.0.1 ports); the Redis fault test runs last.
"""
import calendar
import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid

import pytest

from conftest import AUTOBOT, Resp, Up, _track, http, http_json, run_cli, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    u = Up(str(tmp_path_factory.mktemp("logs") / "state")).start()
    yield u
    u.stop()


def redis_pw(u):
    with open(os.path.join(u.state_dir, "redis.password")) as f:
        return f.read().strip()


def stream(u, count=100000):
    """Every ab:log entry as (id, {field: value})."""
    r = Resp(u.redis_port, redis_pw(u), timeout=5)
    try:
        out = []
        for eid, kv in r.cmd("XRANGE", "ab:log", "-", "+", "COUNT", str(count)):
            d = {kv[i].decode(): kv[i + 1].decode(errors="replace") for i in range(0, len(kv), 2)}
            out.append((eid.decode(), d))
        return out
    finally:
        r.close()


def marker(u, tag="m"):
    """Makes the coordinator log a line with a unique path; returns the path."""
    path = "/api/logs-test-%s-%s" % (tag, uuid.uuid4().hex[:12])
    st, _, _ = http("GET", u.port, path, token=u.token)
    assert st == 404
    return path


def in_stream(u, needle, timeout=10):
    return wait_for(lambda: [e for e in stream(u) if needle in e[1].get("msg", "")], timeout)


def logs(u, *args, timeout=30):
    return run_cli("logs", *u.cli_args(), *args, timeout=timeout)


def logfile(u, role):
    return os.path.join(u.state_dir, "logs", role + ".log")


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def iso(ms):
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def ts_ms(ts):
    base, frac = ts.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


# ---- the stream and the files ---------------------------------------------

def test_every_role_writes_the_stream(cluster):
    u = cluster
    for role in ("coordinator", "llm"):
        got = wait_for(lambda: [d for _, d in stream(u)
                                if d.get("role") == role and "listening on" in d.get("msg", "")])
        assert got, "no start-up line of %s in ab:log: %r" % (role, stream(u)[-10:])
        d = got[0]
        assert d["level"] == "info"
        assert d["host"] == "127.0.0.1"
        assert ts_ms(d["ts"]) > 1_600_000_000_000
    # a request's line carries its request id
    path = "/api/logs-test-rid-" + uuid.uuid4().hex[:8]
    st, hd, _ = http("GET", u.port, path, token=u.token, headers={"X-Request-Id": "rid-logs-42"})
    assert st == 404 and hd["x-request-id"] == "rid-logs-42"
    got = in_stream(u, path)
    assert got, "the access line never reached ab:log"
    assert got[0][1]["rid"] == "rid-logs-42"
    assert got[0][1]["role"] == "coordinator"
    # the stream is capped: XADD ... MAXLEN ~ (log.stream_max, default 100000)
    r = Resp(u.redis_port, redis_pw(u), timeout=5)
    try:
        info = r.cmd("XINFO", "STREAM", "ab:log")
        length = info[info.index(b"length") + 1]
        assert 0 < length <= 100000
    finally:
        r.close()


def test_log_files_of_up(cluster):
    u = cluster
    d = os.path.join(u.state_dir, "logs")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    for role in ("coordinator", "llm", "up"):
        p = logfile(u, role)
        assert wait_for(lambda: os.path.exists(p)), p
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o640, p
    assert "listening on" in read(logfile(u, "coordinator"))
    assert "role=llm" in read(logfile(u, "llm"))
    assert "redis ready" in read(logfile(u, "up"))
    path = marker(u, "file")
    assert wait_for(lambda: path in read(logfile(u, "coordinator")), 5)
    assert path not in read(logfile(u, "llm"))


# ---- autobot logs ----------------------------------------------------------

def test_cli_last_lines_filters_and_json(cluster):
    u = cluster
    path = marker(u, "cli")
    assert in_stream(u, path)
    r = logs(u, "--role", "coordinator", "--level", "info", "-n", "5")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 1 <= len(lines) <= 5, r.stdout
    assert all(" coordinator@127.0.0.1 " in l for l in lines), r.stdout
    assert any(path in l for l in lines), r.stdout

    r = logs(u, "llm", "-n", "3")  # ROLE as an argument
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    assert all(" llm@" in l for l in r.stdout.splitlines()), r.stdout

    r = logs(u, "--json", "-n", "3")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(objs) == 3
    for o in objs:
        assert {"id", "ts", "level", "role", "host", "msg"} <= set(o)
    ids = [tuple(map(int, o["id"].split("-"))) for o in objs]
    assert ids == sorted(ids), "oldest first"

    r = logs(u, "--level", "error", "-n", "50")
    assert r.returncode == 0, r.stderr
    assert path not in r.stdout and " info " not in r.stdout, r.stdout

    r = logs(u, "--host", "10.9.8.7")
    assert r.returncode == 0 and r.stdout == "", r.stdout
    r = logs(u, "--host", "127.0.0.1", "-n", "2")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2, r.stdout

    for bad in (["--since", "yesterday"], ["--level", "loud"], ["--role", "nosuch"], ["-n", "x"]):
        r = logs(u, *bad)
        assert r.returncode == 64, (bad, r.stderr)
    r = run_cli("logs", "--help")
    assert r.returncode == 0 and "--since" in r.stdout


def test_cli_since(cluster):
    u = cluster
    first = marker(u, "since1")
    e1 = in_stream(u, first)
    assert e1
    t1 = ts_ms(e1[0][1]["ts"])
    time.sleep(0.05)  # so that the second line has a later millisecond
    second = marker(u, "since2")
    e2 = in_stream(u, second)
    assert e2 and ts_ms(e2[0][1]["ts"]) > t1

    r = logs(u, "--since", iso(t1 + 1))  # everything from just after the first on
    assert r.returncode == 0, r.stderr
    assert second in r.stdout and first not in r.stdout, r.stdout

    r = logs(u, "--since", "10m", "--role", "coordinator")
    assert r.returncode == 0
    assert first in r.stdout and second in r.stdout

    r = logs(u, "--since", iso(int(time.time() * 1000) + 3600_000))
    assert r.returncode == 0 and r.stdout == "", r.stdout

    r = logs(u, "--since", iso(t1 + 1), "-n", "1", "--role", "coordinator")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stdout


def test_cli_follow(cluster):
    u = cluster
    p = _track(subprocess.Popen([AUTOBOT, "logs", *u.cli_args(), "-f", "--role", "coordinator"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []

    def reader():
        for line in p.stdout:
            out.append(line)

    threading.Thread(target=reader, daemon=True).start()
    try:
        assert wait_for(lambda: len(out) >= 1, 10), "no initial lines"
        path = marker(u, "follow")
        assert wait_for(lambda: any(path in l for l in out), 10), "".join(out[-5:])
        line = next(l for l in out if path in l)
        assert " coordinator@127.0.0.1 " in line and "status=404" in line
        assert all(" coordinator@" in l for l in out)
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(10)
    assert rc == 0, p.stderr.read()


# ---- /api/logs ---------------------------------------------------------------

def viewer_token(u):
    st, j = http_json("POST", u.port, "/api/auth/tokens", token=u.token,
                      body={"name": "logs-viewer-" + uuid.uuid4().hex[:6], "role": "viewer"})
    assert st == 201, j
    return j["token"]


def test_api_logs(cluster):
    u = cluster
    path = marker(u, "api")
    assert in_stream(u, path)
    st, j = http_json("GET", u.port, "/api/logs")
    assert st == 401
    tok = viewer_token(u)
    st, j = http_json("GET", u.port, "/api/logs?role=coordinator&limit=50", token=tok)
    assert st == 200, j
    assert isinstance(j, list) and 1 <= len(j) <= 50
    assert all(e["role"] == "coordinator" for e in j)
    ids = [tuple(map(int, e["id"].split("-"))) for e in j]
    assert ids == sorted(ids), "newest last"
    assert any(path in e["msg"] for e in j)

    st, j = http_json("GET", u.port, "/api/logs?role=llm&limit=2&level=info", token=tok)
    assert st == 200 and 1 <= len(j) <= 2 and all(e["role"] == "llm" for e in j), j
    st, j = http_json("GET", u.port, "/api/logs?since=2h&role=coordinator&limit=1000", token=tok)
    assert st == 200 and any(path in e["msg"] for e in j)
    st, j = http_json("GET", u.port, "/api/logs?level=error&limit=1000", token=tok)
    assert st == 200 and not any(path in e["msg"] for e in j)
    for q in ("level=loud", "limit=0", "limit=5000", "since=soon"):
        st, j = http_json("GET", u.port, "/api/logs?" + q, token=tok)
        assert st == 400, (q, j)


class Sse:
    """A raw server-sent-events client: reads events as they come."""

    def __init__(self, port, path, token=None, headers=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        # HTTP/1.0: the body comes unchunked and ends when the server closes
        h = "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n" % path
        if token:
            h += "Authorization: Bearer %s\r\n" % token
        for k, v in (headers or {}).items():
            h += "%s: %s\r\n" % (k, v)
        self.sock.sendall((h + "\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.text = ""

    def read_until(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            self.text += self.buf.decode(errors="replace")
            self.buf = b""
            if pred(self.text):
                return True
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buf += chunk
        self.text += self.buf.decode(errors="replace")
        return pred(self.text)

    def events(self):
        out = []
        for line in self.text.splitlines():
            if line.startswith("data: "):
                try:
                    out.append(json.loads(line[6:]))
                except ValueError:
                    pass
        return out

    def close(self):
        self.sock.close()


def test_api_logs_stream(cluster):
    u = cluster
    s = Sse(u.port, "/api/logs/stream")
    assert s.status == 401
    s.close()

    tok = viewer_token(u)
    s = Sse(u.port, "/api/logs/stream?role=coordinator", token=tok)
    try:
        assert s.status == 200
        assert s.read_until(lambda t: ": following ab:log" in t)
        path = marker(u, "sse")
        assert s.read_until(lambda t: path in t), s.text[-500:]
        ev = [e for e in s.events() if path in e["msg"]]
        assert ev and ev[0]["role"] == "coordinator" and ev[0]["level"] == "info"
        assert "id: %s" % ev[0]["id"] in s.text
        assert all(e["role"] == "coordinator" for e in s.events())
        resume_from = ev[0]["id"]
    finally:
        s.close()

    # a client that reconnects with Last-Event-ID gets what it missed
    missed = marker(u, "missed")
    assert in_stream(u, missed)
    s = Sse(u.port, "/api/logs/stream?role=coordinator", token=tok,
            headers={"Last-Event-ID": resume_from})
    try:
        assert s.status == 200
        assert s.read_until(lambda t: missed in t), s.text[-500:]
        assert resume_from not in [e["id"] for e in s.events()]
    finally:
        s.close()

    # ?limit=N replays the last N lines before following
    s = Sse(u.port, "/api/logs/stream?limit=3&role=coordinator", token=tok)
    try:
        assert s.read_until(lambda t: len(s.events()) >= 3)
        assert len(s.events()) == 3
    finally:
        s.close()


# ---- rotation ----------------------------------------------------------------

def test_sighup_reopens_the_log_file(cluster):
    u = cluster
    pid = u.child_pid("serve coordinator")
    assert pid
    cur, old = logfile(u, "coordinator"), logfile(u, "coordinator") + ".1"
    os.rename(cur, old)
    os.kill(pid, signal.SIGHUP)  # logrotate's postrotate, aimed at the role
    assert wait_for(lambda: "log file reopened" in read(cur), 5), read(old)[-300:]
    assert stat.S_IMODE(os.stat(cur).st_mode) == 0o640
    path = marker(u, "rotated")
    assert wait_for(lambda: path in read(cur), 5)
    assert path not in read(old)
    assert u.child_pid("serve coordinator") == pid, "SIGHUP must not stop the role"
    assert http("GET", u.port, "/health")[0] == 200

    # SIGHUP to `autobot up` reopens up.log and is passed on to every role
    for role in ("llm", "up"):
        os.rename(logfile(u, role), logfile(u, role) + ".1")
    os.kill(u.proc.pid, signal.SIGHUP)
    for role in ("llm", "up"):
        assert wait_for(lambda: "reopened" in read(logfile(u, role)), 5), role
    assert u.proc.poll() is None


# ---- Redis down ----------------------------------------------------------------

def ping(u):
    r = Resp(u.redis_port, redis_pw(u), timeout=1)
    try:
        return r.cmd("PING") == "PONG"
    finally:
        r.close()


def dropped_total(u):
    st, _, body = http("GET", u.port, "/metrics", token=u.token)
    assert st == 200
    for line in body.decode().splitlines():
        if line.startswith("autobot_log_stream_dropped_total "):
            return int(line.split()[1])
    raise AssertionError("no autobot_log_stream_dropped_total in /metrics")


def test_redis_down_roles_keep_logging_and_the_stream_catches_up(cluster):
    u = cluster
    rpid = u.child_pid("redis-server")
    assert rpid
    dropped_before = dropped_total(u)
    os.kill(rpid, signal.SIGKILL)
    # lines logged while Redis is gone (`up` restarts it after ~250 ms)
    paths = []
    for i in range(10):
        paths.append(marker(u, "down%d" % i))
        st, j = http_json("GET", u.port, "/health")
        assert st == 200, j  # degraded at worst, still serving
    for p in paths:
        assert wait_for(lambda: p in read(logfile(u, "coordinator")), 5), p
    assert any(p in "".join(u.out) for p in paths), "stderr (through up) lost the lines"

    # Redis is back (restarted by up, data from its AOF); the queue drains
    assert wait_for(lambda: ping(u), 15), "redis did not come back"
    wait_for(lambda: all(any(p in d.get("msg", "") for _, d in stream(u)) for p in paths), 15)
    entries = stream(u)
    missing = [p for p in paths if not any(p in d.get("msg", "") for _, d in entries)]
    dropped = dropped_total(u) - dropped_before
    print("redis down: %d of %d lines reached ab:log afterwards, %d missing, "
          "%d counted as dropped" % (len(paths) - len(missing), len(paths), len(missing),
                                     dropped))
    assert len(missing) <= dropped, (missing, dropped)
    if dropped:
        assert any("lines were dropped" in d.get("msg", "") for _, d in entries)
    # and new lines flow as before
    after = marker(u, "after")
    assert in_stream(u, after)
    r = logs(u, "--role", "coordinator", "-n", "200")
    assert r.returncode == 0 and after in r.stdout
