"""The six-host reference layout on one machine, in network namespaces.

As root, this builds a private network: a "switch" namespace holding a
bridge, one namespace per host of config/distributed.yaml (main,
frontend, npu, redis, ai, browser), each joined to the bridge by a veth
pair, with addresses from a random 10.231.<n>.0/24 subnet. `autobot up`
runs inside the redis host's namespace (it starts redis-server bound to
that address) and inside the main host's (coordinator + llm); one config
file lists the six hosts. The frontend host is where clients (a browser,
an operator's CLI) connect from. Only coordinator, llm and redis are built
today: the other hosts get their namespace and address, and their
services are listed disabled in the config.

The steps, each printing its figures (run with `pytest -s`):
  1. `autobot health` from two hosts: every service ok; how long it took;
  2. kill -9 of llm, then of the coordinator: reported down within the
     registry TTL, restarted by `autobot up`, reported ok again;
  3. the redis host's link taken down: reported down within the probe
     timeout, while the coordinator keeps answering what needs no Redis;
  4. Redis restarted: every role reconnects by itself, and the chat
     sessions, messages, documents and API tokens written before are all
     there (AOF);
  5. the coordinator started while Redis is unreachable: up and degraded
     at once, ok when Redis comes back;
  6. `autobot backup create/verify/restore` into a fresh cluster: the same
     key counts (skipped while `autobot backup` says "not built yet").

Nothing is added to the root namespace; everything is torn down at the
end, also when a step fails or the run is interrupted (namespaces are
named abmh-<pid>-<hex>-<host>; a later run removes those of a dead pid).
"""
import atexit
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import netns
from conftest import AUTOBOT, MODULE, SHARED, Resp, _track, wait_for

# The reference layout (DESIGN section 1): host -> last octet, as in
# config/distributed.yaml (172.16.168.20-25).
HOSTS = {"main": 20, "frontend": 21, "npu": 22, "redis": 23, "ai": 24, "browser": 25}
PORTS = {"coordinator": 8002, "llm": 11434, "redis": 6379}
PROBE_MS = 500        # timeouts.probe_ms
TTL_S = 3.0           # registry entry TTL (DESIGN section 5)
CLIENT = "frontend"   # the host clients connect from

PREFIX = "abmh-%d-%s" % (os.getpid(), os.urandom(2).hex())


def _cleanup_prefix():
    if os.geteuid() == 0 and shutil.which("ip"):
        netns.delete_prefix(PREFIX)


atexit.register(_cleanup_prefix)


@pytest.fixture(scope="session", autouse=True)
def _multihost_session_cleanup():
    """Whatever happens, no namespace of this run (nor a process in one)
    outlives the session; namespaces of dead earlier runs go too."""
    if os.geteuid() == 0 and shutil.which("ip"):
        netns.stale_cleanup()
    yield
    if os.geteuid() == 0 and shutil.which("ip"):
        gone = netns.delete_prefix(PREFIX)
        if gone:
            print("multihost: session cleanup removed %s" % ", ".join(gone))


def _no_autobot_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBOT_")}
    return env


class HostUp:
    """`autobot up` inside one host's namespace."""

    def __init__(self, cl, host, state_dir, extra=()):
        self.cl, self.host, self.state_dir, self.extra = cl, host, state_dir, list(extra)
        self.proc = None
        self.out = []
        self.log = os.path.join(cl.tmp, "up-%s.log" % host)

    def start(self, timeout=20):
        argv = self.cl.net.exec_argv(self.host, [
            AUTOBOT, "up", "--config", self.cl.cfg, "--state-dir", self.state_dir] + self.extra)
        self.out = []
        t0 = time.monotonic()
        # `ip netns exec` execs the command: this pid is autobot up's
        self.proc = _track(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            env=self.cl.env, start_new_session=True))
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        ok = wait_for(lambda: any("autobot is up" in l for l in self.out) or
                      self.proc.poll() is not None, timeout)
        if not ok or self.proc.poll() is not None:
            out = self.tail()
            self.kill()
            raise AssertionError("autobot up on %s did not come up:\n%s" % (self.host, out))
        return time.monotonic() - t0

    def _read(self, proc):
        with open(self.log, "ab") as f:
            for raw in proc.stdout:
                self.out.append(raw.decode(errors="replace"))
                f.write(raw)
                f.flush()

    def tail(self, n=40):
        return "".join(self.out[-n:])

    def children(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def child_pid(self, needle):
        for pid in self.children():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if needle in cmd:
                return pid
        return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15):
        """SIGTERM, as systemd or Ctrl-C would; returns the exit status."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("autobot up on %s ignored SIGTERM for %d s" % (self.host, timeout))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            kids = self.children()
            self.proc.kill()
            self.proc.wait()
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass


class Cluster:
    def __init__(self, tmp, net):
        self.tmp, self.net = tmp, net
        self.addr = net.hosts
        self.main_state = os.path.join(tmp, "main")
        self.redis_state = os.path.join(tmp, "redis")
        self.cli_state = os.path.join(tmp, "operator")  # a CLI on the frontend host
        os.makedirs(self.cli_state, mode=0o700)
        self.cluster_token = os.urandom(24).hex()
        self.redis_password = os.urandom(24).hex()
        self.env = _no_autobot_env()
        self.env["MH_CLUSTER_TOKEN"] = self.cluster_token
        self.env["MH_REDIS_PASSWORD"] = self.redis_password
        self.model = None
        self.cfg = os.path.join(tmp, "cluster.yaml")
        self.write_config()
        redis_extra = ["--set", "services.redis.managed=true"]
        if os.environ.get("AUTOBOT_MODULE"):
            redis_extra += ["--set", "services.redis.module=" + MODULE]
        self.redis_up = HostUp(self, "redis", self.redis_state, redis_extra)
        self.main_up = HostUp(self, "main", self.main_state)
        self.saved = {}  # what step 4 wrote, for the later steps

    def write_config(self):
        models = os.path.join(self.tmp, "models")
        os.makedirs(models, exist_ok=True)
        src = os.path.join(SHARED, "models")
        if os.path.exists(os.path.join(src, "stories260K.bin")):
            for f in ("stories260K.bin", "tok512.bin"):
                os.symlink(os.path.join(src, f), os.path.join(models, f))
            self.model = "stories260K"
        a = self.addr
        text = """\
# written by tests/integration/test_multihost.py: the six-host layout of
# config/distributed.yaml on a private test subnet
cluster:
  name: multihost-test
  token: ${MH_CLUSTER_TOKEN}
hosts:
%(hosts)s
services:
  coordinator: { host: main, port: %(coord)d }
  llm:         { host: main, port: %(llm)d }
  redis:
    host: redis
    port: %(redis)d
    password: ${MH_REDIS_PASSWORD}
    managed: false     # the redis host's `autobot up` sets it to true
  # not built yet: their hosts exist, the services are not expected
  frontend:    { host: frontend, port: 5173, enabled: false }
  npu:         { host: npu, port: 8081, enabled: false }
  ai:          { host: ai, port: 8080, enabled: false }
  browser:     { host: browser, port: 3000, enabled: false }
  desktop:     { host: main, port: 6080, enabled: false }
security:
  allow_cidrs: [%(subnet)s, 127.0.0.0/8]
timeouts:
  probe_ms: %(probe)d
  redis_connect_ms: 2000
  redis_command_ms: 1000
llm:
  models_dir: %(models)s
  ollama_dir: %(models)s/no-ollama
log:
  level: info
""" % {"hosts": "\n".join("  %s: %s" % (h, ip) for h, ip in a.items()),
       "coord": PORTS["coordinator"], "llm": PORTS["llm"], "redis": PORTS["redis"],
       "subnet": self.net.subnet, "probe": PROBE_MS, "models": models}
        with open(self.cfg, "w") as f:
            f.write(text)

    # -- clients, all inside the namespaces --------------------------------

    @property
    def token(self):
        with open(os.path.join(self.main_state, "admin.token")) as f:
            return f.read().strip()

    def api(self, method, path, token=True, body=None, timeout=5.0, host=CLIENT, role="coordinator"):
        """A request to a role on the main host, from `host`: (status, json, seconds)."""
        t0 = time.monotonic()
        st, data = netns.http_json(self.net.ns(host), method, self.addr["main"], PORTS[role], path,
                                   token=self.token if token is True else token, body=body,
                                   timeout=timeout)
        return st, data, time.monotonic() - t0

    def redis_metrics(self, role):
        """The autobot_redis_* figures of a role's /metrics."""
        st, _, text = netns.http(self.net.ns(CLIENT), "GET", self.addr["main"], PORTS[role],
                                 "/metrics", token=self.token)
        assert st == 200, text[:200]
        out = {}
        for line in text.decode().splitlines():
            if line.startswith("autobot_redis_"):
                k, v = line.split()[:2]
                out[k] = float(v)
        return out

    def cli(self, host, *args, state=None, timeout=30):
        argv = self.net.exec_argv(host, [AUTOBOT] + list(args) + [
            "--config", self.cfg, "--state-dir", state or self.main_state])
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=timeout)

    def health(self, host="main", state=None):
        """`autobot health --json` on a host: (exit code, document, wall seconds)."""
        t0 = time.monotonic()
        p = self.cli(host, "health", "--json", state=state)
        wall = time.monotonic() - t0
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            raise AssertionError("autobot health printed no JSON (exit %d):\n%s%s"
                                 % (p.returncode, p.stdout, p.stderr))
        return p.returncode, doc, wall

    def status_of(self, role, host="main"):
        rc, doc, _ = self.health(host)
        return {s["role"]: s["status"] for s in doc["services"] if s["source"] != "registry"}.get(role)

    def redis_client(self, host="main"):
        r = Resp.__new__(Resp)
        r.sock = netns.connect(self.net.ns(host), self.addr["redis"], PORTS["redis"], 5)
        r.buf = b""
        r.cmd("AUTH", self.redis_password)
        return r

    def key_counts(self):
        """Keys per prefix (ab:<kind>), leaving out the registry's (they expire)."""
        r = self.redis_client()
        try:
            counts, cur = {}, b"0"
            while True:
                cur, keys = r.cmd("SCAN", cur, "COUNT", 1000)
                for k in keys:
                    parts = k.decode(errors="replace").split(":")
                    kind = ":".join(parts[:2])
                    if kind != "ab:svc":
                        counts[kind] = counts.get(kind, 0) + 1
                if cur in (b"0", 0, "0"):
                    return counts
        finally:
            r.close()

    def wait_all_ok(self, timeout=15):
        return wait_for(lambda: self.health()[0] == 0, timeout, step=0.1)


def _skip_reason():
    why = netns.why_unavailable()
    if why:
        return why
    if not os.path.exists(AUTOBOT):
        return "%s is not built" % AUTOBOT
    if not shutil.which("redis-server"):
        return "redis-server is not installed (scripts/install-deps.sh installs it)"
    if not os.path.exists(MODULE):
        return "%s is not built (the knowledge base needs it)" % MODULE
    return None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="module")
def cl(request):
    why = _skip_reason()
    if why:
        pytest.skip(why)
    links_before = netns.root_links()
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)  # tear down on SIGTERM too
    tmp = tempfile.mkdtemp(prefix=PREFIX + "-", dir="/tmp")
    net = netns.Network(HOSTS, prefix=PREFIX)
    c = None
    try:
        t0 = time.monotonic()
        net.create()
        t_net = time.monotonic() - t0
        c = Cluster(tmp, net)
        t_redis = c.redis_up.start()
        t_main = c.main_up.start()
        c.links_before = links_before
        print("\nmultihost: network %s: %d host namespaces + switch %s built in %.0f ms; "
              "autobot up: redis host %.0f ms, main host %.0f ms"
              % (net.subnet, len(HOSTS), net.switch, t_net * 1000, t_redis * 1000, t_main * 1000))
        yield c
    finally:
        failed = request.session.testsfailed
        if c:
            for u in (c.main_up, c.redis_up):
                if failed and u.out:
                    print("\n--- autobot up on %s (last lines) ---\n%s" % (u.host, u.tail(30)))
                try:
                    if u.running():
                        u.stop()
                except AssertionError as e:
                    print("multihost: %s" % e)
                u.kill()
        gone = net.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_term)
        left = [n for n in netns.list_netns() if n.startswith(PREFIX)]
        assert not left, "namespaces left behind: %s" % left
        assert not net.leaked(links_before), "interfaces left in the root namespace: %s" % (
            net.leaked(links_before))
        print("multihost: torn down (%d namespaces deleted)" % len(gone))


def _persistent(counts):
    """Key counts without the log stream, which grows as the roles log."""
    return {k: v for k, v in counts.items() if k != "ab:log"}


def by_role(doc):
    return {s["role"]: s for s in doc["services"] if s["source"] != "registry"}


# -- 1 ---------------------------------------------------------------------

def test_health_across_hosts(cl):
    a = cl.addr
    # the hosts reach one another over the bridge: a closed port answers
    # with a reset (refused), a host that is not there would time out
    for h, addr in a.items():
        if h == "main":
            continue
        with netns.inside(cl.net.ns("main")):
            s = socket.socket()
        s.settimeout(2)
        try:
            err = s.connect_ex((addr, 9))
        finally:
            s.close()
        assert err == errno.ECONNREFUSED, "%s (%s) not reachable from main: errno %d" % (
            h, addr, err)
    # ... and the root namespace got no interface nor address of it
    assert not cl.net.leaked(cl.links_before), cl.net.leaked(cl.links_before)
    root_addrs = netns.ip("-o", "addr", "show").stdout
    assert cl.net.subnet.rsplit(".", 1)[0] + "." not in root_addrs, root_addrs

    # both roles write their registry entry within a heartbeat (1 s)
    assert wait_for(lambda: all(s["source"] == "both" for s in by_role(cl.health()[1]).values()
                                if s["role"] != "redis"), 3, step=0.1), cl.health()[1]
    rc, doc, wall = cl.health("main")
    roles = by_role(doc)
    assert rc == 0 and doc["status"] == "ok", doc
    assert set(roles) == {"coordinator", "llm", "redis"}, doc
    assert roles["coordinator"]["url"] == "http://%s:%d" % (a["main"], PORTS["coordinator"])
    assert roles["llm"]["url"] == "http://%s:%d" % (a["main"], PORTS["llm"])
    assert roles["redis"]["url"] == "redis://%s:%d" % (a["redis"], PORTS["redis"])
    # the registry knows the two roles by the same urls (source "both")
    assert roles["coordinator"]["source"] == "both" and roles["llm"]["source"] == "both", doc
    # the same from another host, with no state of its own but the config
    rc2, doc2, wall2 = cl.health(CLIENT, state=cl.cli_state)
    assert rc2 == 0 and doc2["status"] == "ok", doc2
    st, body, t_api = cl.api("GET", "/api/health/cluster")
    assert st == 200 and body["status"] == "ok", body
    st, svcs, _ = cl.api("GET", "/api/services")
    assert st == 200
    urls = sorted(s["url"] for s in svcs["services"])
    assert urls == sorted(["http://%s:%d" % (a["main"], PORTS["coordinator"]),
                           "http://%s:%d" % (a["main"], PORTS["llm"])]), svcs
    lat = ", ".join("%s %.2f ms" % (r, s["latency_ms"]) for r, s in sorted(roles.items()))
    print("multihost: health ok across hosts: from main %.0f ms wall (its elapsed %.1f ms; %s); "
          "from %s %.0f ms wall (elapsed %.1f ms); GET /api/health/cluster %.1f ms"
          % (wall * 1000, doc["elapsed_ms"], lat, CLIENT, wall2 * 1000, doc2["elapsed_ms"],
             t_api * 1000))


# -- 2 ---------------------------------------------------------------------

@pytest.mark.parametrize("role", ["llm", "coordinator"])
def test_kill9_role_down_then_restarted(cl, role):
    up = cl.main_up
    assert cl.wait_all_ok(), "the cluster is not ok before the kill"
    pid = up.child_pid("serve " + role)
    assert pid, up.children()
    # The supervisor restarts a dead child after 250 ms: hold it (SIGSTOP)
    # while we look, so that a fast restart cannot hide the dead process
    # from the check; it resumes right after.
    os.kill(up.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        down = wait_for(lambda: cl.status_of(role) == "down", TTL_S + 2, step=0.02)
        t_down = time.monotonic() - t0
        assert down, "%s was not reported down %.1f s after kill -9" % (role, t_down)
        if role == "llm":
            st, body, _ = cl.api("GET", "/api/health/cluster")
            assert st == 200 and by_role(body)["llm"]["status"] == "down", body
            assert body["status"] == "down"
        else:
            with pytest.raises(OSError):
                cl.api("GET", "/api/health", token=None, timeout=1)
    finally:
        os.kill(up.proc.pid, signal.SIGCONT)
    t1 = time.monotonic()
    assert wait_for(lambda: up.child_pid("serve " + role) not in (None, pid), 10, step=0.01), \
        "%s was not restarted by autobot up:\n%s" % (role, up.tail())
    t_restart = time.monotonic() - t1
    new = up.child_pid("serve " + role)
    assert wait_for(lambda: cl.status_of(role) == "ok", 10, step=0.05), \
        "%s not ok again after its restart" % role
    t_ok = time.monotonic() - t1
    assert t_down <= TTL_S, "%s reported down only after %.2f s (registry TTL %.0f s)" % (
        role, t_down, TTL_S)
    assert any(role in l and "restarting" in l for l in up.out), up.tail()
    assert cl.wait_all_ok(5)
    st, body, _ = cl.api("GET", "/api/health")
    assert st == 200 and body["status"] == "ok"
    print("multihost: kill -9 %s (pid %d): reported down after %.0f ms (TTL %.0f s); "
          "restarted by autobot up %.0f ms after it resumed (pid %d); ok again after %.0f ms"
          % (role, pid, t_down * 1000, TTL_S, t_restart * 1000, new, t_ok * 1000))


# -- 3 ---------------------------------------------------------------------

def test_link_down_reported_within_probe_timeout(cl):
    assert cl.wait_all_ok(), "the cluster is not ok before the link goes down"
    host = "redis"
    cl.net.link(host, False)
    t0 = time.monotonic()
    try:
        # first, at once: the coordinator's cluster view, then the CLI
        st, body, t_cluster = cl.api("GET", "/api/health/cluster")
        assert st == 200 and by_role(body)["redis"]["status"] == "down", body
        rc, doc, wall = cl.health("main")
        roles = by_role(doc)
        assert rc == 2 and roles["redis"]["status"] == "down", doc
        assert roles["coordinator"]["status"] in ("ok", "degraded") and \
            roles["llm"]["status"] in ("ok", "degraded"), doc
        # the probe of the unreachable host gives up at the probe timeout
        assert roles["redis"]["latency_ms"] <= PROBE_MS + 150, roles["redis"]
        t_cli = wall
        # and the whole report comes within about one probe timeout (DESIGN
        # section 5: "answer within one probe timeout even when hosts are
        # down"). Checked at the end of the step, so that the rest of it
        # still runs and its figures print when this is what fails.
        late = []
        if t_cluster > (PROBE_MS + 300) / 1000:
            late.append("GET /api/health/cluster took %.0f ms" % (t_cluster * 1000))
        if doc["elapsed_ms"] > PROBE_MS + 300:
            late.append("autobot health took %.0f ms" % doc["elapsed_ms"])
        # the coordinator keeps answering everything that needs no Redis,
        # each within a fraction of a second
        answered = []
        for method, path, tok in [("GET", "/api/health", None),
                                  ("GET", "/api/version", True),
                                  ("GET", "/api/auth/whoami", True),
                                  ("GET", "/api/openapi.json", None),
                                  ("GET", "/docs", None)]:
            st, body, dt = cl.api(method, path, token=tok)
            assert st == 200, (path, st, body)
            assert dt < 1.0, "%s took %.2f s with %s down" % (path, dt, host)
            answered.append(dt)
        st, body, dt = cl.api("GET", "/health", token=None, role="llm")
        assert st == 200 and body["role"] == "llm", body
        st, body, dt = cl.api("GET", "/api/tags", role="llm")
        assert st == 200 and "models" in body, body
        # what needs Redis fails fast and says why, instead of hanging
        st, body, t_503 = cl.api("GET", "/api/chat/sessions")
        assert st == 503 and body["error"]["code"] == "redis_unavailable", body
        assert t_503 < 2.5, t_503
        degraded = wait_for(lambda: cl.api("GET", "/api/health", token=None)[1]["status"] ==
                            "degraded", 10, step=0.05)
        t_degraded = time.monotonic() - t0
        assert degraded, "the coordinator never noticed that redis is gone"
    finally:
        cl.net.link(host, True)
    t1 = time.monotonic()
    assert cl.wait_all_ok(20), "not ok again after the link came back"
    t_back = time.monotonic() - t1
    assert wait_for(lambda: cl.api("GET", "/api/chat/sessions")[0] == 200, 10)
    print("multihost: link of host %s down: reported down by autobot health in %.0f ms wall "
          "(elapsed %.1f ms, redis probe %.1f ms, probe timeout %d ms: %s); coordinator kept "
          "answering %d routes (slowest %.1f ms), cluster view %.0f ms, Redis routes 503 in "
          "%.0f ms, its /api/health degraded after %.0f ms; link up -> all ok after %.0f ms"
          % (host, t_cli * 1000, doc["elapsed_ms"], roles["redis"]["latency_ms"], PROBE_MS,
             roles["redis"]["error"], len(answered), max(answered) * 1000, t_cluster * 1000,
             t_503 * 1000, t_degraded * 1000, t_back * 1000))
    assert not late, "with host %s unreachable, %s (probe timeout %d ms)" % (
        host, " and ".join(late), PROBE_MS)


# -- 4 ---------------------------------------------------------------------

def _wait_job(cl, job, timeout=30):
    state = {}

    def done():
        st, j, _ = cl.api("GET", "/api/jobs/" + job)
        state.update(j if st == 200 else {})
        return state.get("state") in ("done", "failed", "cancelled")
    assert wait_for(done, timeout, step=0.05), state
    return state


DOCS = [("Solar power", "Photovoltaic panels turn sunlight into electricity; inverters "
                        "convert direct current to alternating current."),
        ("Bread", "Knead the dough for ten minutes, let it rise for an hour, then bake it."),
        ("Rivers", "The Danube flows through ten countries into the Black Sea.")]


def test_redis_restart_loses_nothing(cl):
    assert cl.wait_all_ok(), "the cluster is not ok before the restart"
    # written before the restart: sessions, a conversation, documents, a token
    sessions = []
    for i in range(2):
        st, s, _ = cl.api("POST", "/api/chat/sessions",
                          body={"title": "multihost %d" % i,
                                "model": cl.model or "multihost-no-such-model"})
        assert st == 201, s
        sessions.append(s["id"])
    st, hd, raw = netns.http(cl.net.ns(CLIENT), "POST", cl.addr["main"], PORTS["coordinator"],
                             "/api/chat/sessions/%s/messages" % sessions[0], token=cl.token,
                             body={"content": "Once upon a time",
                                   "options": {"num_predict": 8, "temperature": 0}}, timeout=60)
    assert st == 200, raw[:300]
    st, conv, _ = cl.api("GET", "/api/chat/sessions/" + sessions[0])
    roles = [m["role"] for m in conv["messages"]]
    # with the reference model the answer is stored too; without one the
    # llm refuses the unknown model and only the user's message is kept
    assert roles == (["user", "assistant"] if cl.model else ["user"]), conv
    docs = {}
    for title, text in DOCS:
        st, r, _ = cl.api("POST", "/api/knowledge/documents", body={"text": text, "title": title},
                          timeout=30)
        assert st == 202, r
        assert _wait_job(cl, r["job"])["state"] == "done"
        docs[title] = r["id"]
    st, r, _ = cl.api("POST", "/api/auth/tokens", body={"name": "multihost-viewer",
                                                        "role": "viewer"})
    assert st == 201, r
    viewer = r["token"]
    st, stats, _ = cl.api("GET", "/api/knowledge/stats")
    assert st == 200 and stats["documents"] >= len(DOCS), stats
    counts = cl.key_counts()
    pids = {r: cl.main_up.child_pid("serve " + r) for r in ("coordinator", "llm")}
    reconnects = {r: cl.redis_metrics(r)["autobot_redis_reconnects_total"] for r in pids}

    # restart the Redis service: its host's `autobot up` stops and starts
    t0 = time.monotonic()
    rc = cl.redis_up.stop()
    t_stop = time.monotonic() - t0
    assert rc == 0, cl.redis_up.tail()
    t_start = cl.redis_up.start()
    t1 = time.monotonic()
    # every role reconnects by itself (same processes, nobody restarted
    # them): its Redis client counts a new connection and says it is up
    t_re = {}
    for r in ("coordinator", "llm"):
        assert wait_for(lambda: cl.redis_metrics(r)["autobot_redis_reconnects_total"] >
                        reconnects[r] and cl.redis_metrics(r)["autobot_redis_up"] == 1, 15,
                        step=0.05), "%s did not reconnect: %s" % (r, cl.redis_metrics(r))
        t_re[r] = time.monotonic() - t1
    t_coord, t_llm = t_re["coordinator"], t_re["llm"]
    assert cl.wait_all_ok(15)
    t_all = time.monotonic() - t1
    assert {r: cl.main_up.child_pid("serve " + r) for r in pids} == pids, \
        "a role was restarted instead of reconnecting"
    # the heartbeats write the registry again: entries outlive their TTL
    time.sleep(TTL_S + 0.5)
    st, svcs, _ = cl.api("GET", "/api/services")
    assert sorted(s["role"] for s in svcs["services"]) == ["coordinator", "llm"], svcs

    # nothing written before is lost
    aof = os.path.join(cl.redis_state, "redis")
    assert any(n.startswith("appendonly") for n in os.listdir(aof)), os.listdir(aof)
    st, lst, _ = cl.api("GET", "/api/chat/sessions")
    assert st == 200 and set(sessions) <= {s["id"] for s in lst["sessions"]}, lst
    st, conv2, _ = cl.api("GET", "/api/chat/sessions/" + sessions[0])
    assert conv2["messages"] == conv["messages"], (conv, conv2)
    for title, did in docs.items():
        st, d, _ = cl.api("GET", "/api/knowledge/documents/" + did)
        assert st == 200 and d["status"] == "ready" and d["title"] == title, d
    st, stats2, _ = cl.api("GET", "/api/knowledge/stats")
    assert (stats2["documents"], stats2["chunks"]) == (stats["documents"], stats["chunks"]), \
        (stats, stats2)
    st, res, _ = cl.api("POST", "/api/knowledge/search", body={"query": "Danube Black Sea", "k": 1})
    assert st == 200 and res["results"][0]["doc_id"] == docs["Rivers"], res
    st, who, _ = cl.api("GET", "/api/auth/whoami", token=viewer)
    assert st == 200 and who["access"] == "viewer", who
    after = cl.key_counts()
    assert _persistent(after) == _persistent(counts), (counts, after)
    cl.saved.update(sessions=sessions, docs=docs, stats=stats, viewer=viewer)
    print("multihost: redis restarted (stop %.0f ms, start %.0f ms): coordinator reconnected "
          "after %.0f ms, llm after %.0f ms, all ok after %.0f ms, same pids; kept %d sessions "
          "(%d messages), %d documents (%d chunks), 1 API token; keys %s"
          % (t_stop * 1000, t_start * 1000, t_coord * 1000, t_llm * 1000, t_all * 1000,
             len(sessions), len(conv["messages"]), stats2["documents"], stats2["chunks"],
             json.dumps(after, sort_keys=True)))


# -- 5 ---------------------------------------------------------------------

def test_coordinator_starts_while_redis_unreachable(cl):
    assert cl.wait_all_ok(), "the cluster is not ok before the step"
    t0 = time.monotonic()
    rc = cl.main_up.stop()
    t_stop = time.monotonic() - t0
    assert rc == 0, cl.main_up.tail()
    cl.net.link("redis", False)
    try:
        t_up = cl.main_up.start(timeout=30)
        st, body, _ = cl.api("GET", "/api/health", token=None)
        assert st == 200 and body["status"] == "degraded", body
        assert body["checks"]["redis"]["status"] == "down", body
        st, body, t_503 = cl.api("GET", "/api/services")
        assert st == 503 and body["error"]["code"] == "redis_unavailable", body
        st, body, _ = cl.api("GET", "/health", token=None, role="llm")
        assert st == 200 and body["checks"]["redis"]["status"] == "down", body
        rc, doc, _ = cl.health("main")
        assert rc == 2 and by_role(doc)["redis"]["status"] == "down", doc
    finally:
        cl.net.link("redis", True)
    t1 = time.monotonic()
    assert wait_for(lambda: cl.api("GET", "/api/health", token=None)[1]["status"] == "ok", 20,
                    step=0.05), "the coordinator did not recover when redis came back"
    t_coord = time.monotonic() - t1
    assert cl.wait_all_ok(15), "not every service ok after redis came back"
    t_all = time.monotonic() - t1
    st, body, _ = cl.api("GET", "/api/services")
    assert st == 200
    if cl.saved.get("sessions"):
        st, lst, _ = cl.api("GET", "/api/chat/sessions")
        assert set(cl.saved["sessions"]) <= {s["id"] for s in lst["sessions"]}, lst
    print("multihost: main host restarted with redis unreachable (link down): up in %.0f ms "
          "(stopped in %.0f ms), degraded, Redis routes 503 in %.0f ms; link up -> coordinator "
          "ok after %.0f ms, all ok after %.0f ms"
          % (t_up * 1000, t_stop * 1000, t_503 * 1000, t_coord * 1000, t_all * 1000))


# -- 6 ---------------------------------------------------------------------

def test_backup_restores_into_fresh_cluster(cl):
    p = cl.cli("main", "backup", "--help")
    if "not built yet" in p.stdout + p.stderr:
        pytest.skip("`autobot backup` is not built yet (src/cli/backup.c): "
                    "backup/restore step not run")
    assert cl.wait_all_ok(), "the cluster is not ok before the backup"
    counts = cl.key_counts()
    assert counts.get("ab:kb", 0) > 0 and counts.get("ab:chat", 0) > 0, counts
    st, stats, _ = cl.api("GET", "/api/knowledge/stats")
    st, lst, _ = cl.api("GET", "/api/chat/sessions")
    sessions = sorted(s["id"] for s in lst["sessions"])

    # from the main host, while the cluster runs: the snapshot is taken over
    # the network from the redis host
    out_dir = os.path.join(cl.tmp, "backups")
    t0 = time.monotonic()
    p = cl.cli("main", "backup", "create", "--out", out_dir, timeout=120)
    t_create = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    # the logs of the other hosts come over SSH: no sshd runs in the test's
    # namespaces, so each of them is a warning, not a failure
    warnings = [l for l in p.stderr.splitlines() if "warning" in l]
    made = [f for f in os.listdir(out_dir) if f.endswith(".tar.zst")]
    assert len(made) == 1, (os.listdir(out_dir), p.stdout + p.stderr)
    archive = os.path.join(out_dir, made[0])
    t0 = time.monotonic()
    p = cl.cli("main", "backup", "verify", archive, timeout=120)
    t_verify = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr

    # a fresh cluster: new state on both hosts, an empty Redis, no roles
    # running yet (restore refuses while services are registered)
    assert cl.main_up.stop() == 0
    assert cl.redis_up.stop() == 0
    cl.main_state = os.path.join(cl.tmp, "main2")
    cl.redis_state = os.path.join(cl.tmp, "redis2")
    cl.main_up.state_dir, cl.redis_up.state_dir = cl.main_state, cl.redis_state
    cl.redis_up.start()
    assert cl.key_counts() == {}, "the fresh redis is not empty"
    t0 = time.monotonic()
    p = cl.cli("main", "backup", "restore", archive, "--yes", timeout=120)
    t_restore = time.monotonic() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    restored = cl.key_counts()
    assert _persistent(restored) == _persistent(counts), (counts, restored)
    # and the fresh cluster serves what the old one held
    cl.main_up.start()
    assert cl.wait_all_ok(20)
    st, stats2, _ = cl.api("GET", "/api/knowledge/stats")
    assert (stats2["documents"], stats2["chunks"]) == (stats["documents"], stats["chunks"]), \
        (stats, stats2)
    st, lst, _ = cl.api("GET", "/api/chat/sessions")
    assert sorted(s["id"] for s in lst["sessions"]) == sessions, lst
    print("multihost: backup create %.0f ms (%d bytes, %d warnings: %s), verify %.0f ms, "
          "restore into a fresh cluster %.0f ms; key counts equal: %s"
          % (t_create * 1000, os.path.getsize(archive), len(warnings),
             warnings[0] if warnings else "-", t_verify * 1000, t_restore * 1000,
             json.dumps(restored, sort_keys=True)))
