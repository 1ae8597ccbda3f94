"""`autobot ssh-setup` and `autobot deploy` against a real OpenSSH server.

The "remote host" is this machine reached through an sshd the test starts
itself: `sshd -D -f <own config>` on a free 127.0.0.1 port, with a
throwaway host key and a throwaway operator key (the operator's "existing
access"). The deploy's install prefix, state dir, config path and
authorized_keys file all point into a temporary folder, so nothing lands
in /usr/local, /etc or a real home. Roles run in detached mode (no systemd
in a container); the unit file is checked with systemd-analyze verify.
"""
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from conftest import AUTOBOT, MODULE, ROOT, Redis, free_port, http, http_json, wait_for

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def _need_ssh():
    if not SSHD:
        pytest.skip("sshd is not installed (openssh-server; scripts/install-deps.sh installs it)")
    for tool in ("ssh", "ssh-keygen"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed (openssh-client)" % tool)


def _keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, capture_output=True, timeout=30)


class Sshd:
    """A private sshd on 127.0.0.1:<free port> accepting the keys in
    <dir>/operator_keys and <dir>/remote/authorized_keys."""

    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.remote = os.path.join(d, "remote")
        os.makedirs(self.remote, exist_ok=True)
        self.host_key = os.path.join(d, "host_ed25519")
        self.operator_key = os.path.join(d, "operator_ed25519")
        self.authorized = os.path.join(self.remote, "authorized_keys")
        _keygen(self.host_key, "throwaway-host")
        _keygen(self.operator_key, "throwaway-operator")
        shutil.copy(self.operator_key + ".pub", os.path.join(d, "operator_keys"))
        self.config = os.path.join(d, "sshd_config")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_key,
                "PidFile %s" % os.path.join(d, "sshd.pid"),
                "AuthorizedKeysFile %s %s" % (os.path.join(d, "operator_keys"),
                                              self.authorized),
                # the key files live under /tmp (mode 1777): StrictModes
                # would refuse them
                "StrictModes no",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "LogLevel VERBOSE",
                ""]))
        self.log = open(os.path.join(d, "sshd.log"), "ab")
        self.proc = None

    def start(self):
        if os.geteuid() == 0:
            # privilege separation needs it, as the Debian service makes it
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config],
                                     stdout=self.log, stderr=self.log)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("sshd exited: " + self.read_log())
            import socket
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                return s.recv(64).startswith(b"SSH-")
        assert wait_for(up, 10), "sshd did not start: " + self.read_log()
        return self

    def read_log(self):
        with open(os.path.join(self.dir, "sshd.log"), errors="replace") as f:
            return f.read()[-3000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def sshd():
    _need_ssh()
    d = tempfile.mkdtemp(prefix="ab-deploy-")
    s = Sshd(d).start()
    yield s
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


def write_config(path, sshd_port, remote, key, coord_port=8002, redis_port=6379,
                 redis_pw="", state_dir=None, mode="detached", hosts=None, extra=""):
    hosts = hosts or {"node1": "127.0.0.1"}
    lines = ["state_dir: %s" % state_dir,
             "hosts:"] + ["  %s: %s" % kv for kv in hosts.items()] + [
             "services:",
             "  coordinator: { host: node1, port: %d }" % coord_port,
             "  redis: { host: 127.0.0.1, port: %d, password: \"%s\", managed: false }"
             % (redis_port, redis_pw),
             "  llm: { enabled: false }",
             "deploy:",
             "  ssh_port: %d" % sshd_port,
             "  ssh_key: %s" % key,
             "  mode: %s" % mode,
             "  prefix: %s/usr" % remote,
             "  remote_state_dir: %s/state" % remote,
             "  config_path: %s/etc/autobot.yaml" % remote,
             "  authorized_keys: %s/authorized_keys" % remote,
             "  health_timeout_ms: 8000",
             extra, ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def cli(*args, timeout=120):
    # a new session: no controlling terminal, so ssh can never prompt
    return subprocess.run([AUTOBOT] + list(args), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- ssh-setup ---------------------------------------------------------------


def test_ssh_setup_installs_key_then_is_a_noop(sshd):
    home = os.path.join(sshd.dir, "home")
    key = os.path.join(home, ".ssh", "autobot_distributed")
    state = os.path.join(sshd.dir, "local-state")
    cfg = write_config(os.path.join(sshd.dir, "c.yaml"), sshd.port, sshd.remote, key,
                       state_dir=state)

    r = cli("ssh-setup", "--config", cfg, "--login-key", sshd.operator_key)
    assert r.returncode == 0, r.stdout + r.stderr + sshd.read_log()
    assert "key: %s (created)" % key in r.stdout
    assert os.path.exists(key) and os.path.exists(key + ".pub")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    row = [l for l in r.stdout.splitlines() if l.startswith("node1 ")]
    assert row and "installed" in row[0] and row[0].rstrip().endswith("ok"), r.stdout
    with open(key + ".pub") as f:
        pub = f.read().strip()
    with open(sshd.authorized) as f:
        first = f.read()
    assert first.count(pub.split()[1]) == 1
    assert stat.S_IMODE(os.stat(sshd.authorized).st_mode) == 0o600
    # the host key was learned into the cluster's known_hosts
    with open(os.path.join(state, "ssh", "known_hosts")) as f:
        kh = f.read()
    with open(sshd.host_key + ".pub") as f:
        assert f.read().split()[1] in kh

    # key-only login, checked independently of autobot
    p = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                        "-o", "PasswordAuthentication=no",
                        "-o", "UserKnownHostsFile=" + os.path.join(state, "ssh", "known_hosts"),
                        "-o", "StrictHostKeyChecking=yes", "-i", key, "-p", str(sshd.port),
                        "127.0.0.1", "echo", "key-only-ok"],
                       capture_output=True, text=True, timeout=30, start_new_session=True)
    assert p.returncode == 0 and "key-only-ok" in p.stdout, p.stderr

    # second run: nothing to do, nothing changed
    r2 = cli("ssh-setup", "--config", cfg, "--login-key", sshd.operator_key)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "key: %s (exists)" % key in r2.stdout
    row = [l for l in r2.stdout.splitlines() if l.startswith("node1 ")]
    assert row and "present" in row[0] and row[0].rstrip().endswith("ok"), r2.stdout
    assert "install the public key" not in r2.stdout
    with open(sshd.authorized) as f:
        assert f.read() == first


def test_ssh_setup_without_existing_access_fails(sshd):
    key = os.path.join(sshd.dir, "k2", "autobot_distributed")
    cfg = write_config(os.path.join(sshd.dir, "c.yaml"), sshd.port, sshd.remote, key,
                       state_dir=os.path.join(sshd.dir, "local-state"))
    # no --login-key: ssh's own defaults, which this sshd does not accept
    r = cli("ssh-setup", "--config", cfg)
    assert r.returncode == 1, r.stdout + r.stderr
    row = [l for l in r.stdout.splitlines() if l.startswith("node1 ")]
    assert row and "failed" in row[0], r.stdout
    assert not os.path.exists(sshd.authorized)


# ---- deploy --dry-run -----------------------------------------------------------


def test_deploy_dry_run_prints_every_action_and_touches_nothing(tmp_path):
    remote = str(tmp_path / "remote")
    state = str(tmp_path / "state")
    os.makedirs(state)
    with open(os.path.join(state, "admin.token"), "w") as f:
        f.write("dry-run-admin-token-0123456789\n")
    cfg = write_config(str(tmp_path / "c.yaml"), free_port(), remote, str(tmp_path / "key"),
                       state_dir=state, mode="auto",
                       hosts={"node1": "127.0.0.1", "node2": "127.0.0.2"})
    r = cli("deploy", "--config", cfg, "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for want in ["deploy (dry run): 2 hosts, mode auto",
                 "[node1] would log in as",
                 "look for /run/systemd/system",
                 "[node1] would create %s/usr/bin" % remote,
                 "[node1] would copy %s -> %s/usr/bin/autobot (0755" % (os.path.realpath(AUTOBOT),
                                                                        remote),
                 "[node1] would run %s/usr/bin/autobot version" % remote,
                 "-> %s/usr/lib/autobot/autobot.so" % remote,
                 "[node1] web ui: not built yet",
                 "[node1] would copy %s -> %s/etc/autobot.yaml (0600)" % (cfg, remote),
                 "[node1] would copy secret admin.token -> %s/state/admin.token" % remote,
                 "[node1] would install /etc/systemd/system/autobot@.service",
                 "[node1] would start coordinator (systemd): systemctl daemon-reload",
                 "[node1] would start coordinator (detached):",
                 "[node1] would wait up to 8000 ms for http://127.0.0.1:8002/health",
                 "[node1] would restore the .prev files",
                 "[node1] redis: a redis-server, not started by deploy",
                 "[node2] host 127.0.0.2, roles: none"]:
        assert want in out, "missing %r in:\n%s" % (want, out)
    assert "node1            planned (dry run)" in out
    assert not os.path.exists(remote)

    # one host only
    r = cli("deploy", "--config", cfg, "--dry-run", "--host", "node2")
    assert r.returncode == 0 and "[node1]" not in r.stdout, r.stdout
    r = cli("deploy", "--config", cfg, "--dry-run", "--host", "nope")
    assert r.returncode == 1 and "no host named" in r.stderr


def test_deploy_needs_a_config_file():
    r = cli("deploy", "--dry-run")
    assert r.returncode == 64 and "--config" in r.stderr


# ---- a real deploy, detached, then rollbacks --------------------------------------


def _pid(remote):
    try:
        with open(os.path.join(remote, "state", "run", "coordinator.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            st = [l for l in f if l.startswith("State:")][0]
        return " Z " not in st and "zombie" not in st
    except (OSError, IndexError):
        return False


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().split(b"\0")


def test_deploy_detached_then_roll_back_broken_binaries(sshd):
    if not os.path.exists(MODULE):
        pytest.skip("%s is not built" % MODULE)
    redis = Redis(os.path.join(sshd.dir)).start(module=True)
    state = os.path.join(sshd.dir, "local-state")
    os.makedirs(state, mode=0o700)
    token = "deploy-test-admin-token-0123456789abcdef"
    with open(os.path.join(state, "admin.token"), "w") as f:
        f.write(token + "\n")
    port = free_port()
    cfg = write_config(os.path.join(sshd.dir, "c.yaml"), sshd.port, sshd.remote,
                       sshd.operator_key, coord_port=port, redis_port=redis.port,
                       redis_pw=redis.password, state_dir=state)
    remote_bin = os.path.join(sshd.remote, "usr", "bin", "autobot")
    pids = []
    try:
        # 1. first deploy
        r = cli("deploy", "--config", cfg)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out + sshd.read_log()
        assert "first install" in out
        assert "start coordinator (detached) ... ok" in out
        assert "node1            ok" in out
        st, body = http_json("GET", port, "/health")
        assert st == 200 and body["role"] == "coordinator", body
        assert sha(remote_bin) == sha(AUTOBOT)
        assert stat.S_IMODE(os.stat(remote_bin).st_mode) == 0o755
        assert sha(os.path.join(sshd.remote, "usr", "lib", "autobot", "autobot.so")) == sha(MODULE)
        assert sha(os.path.join(sshd.remote, "etc", "autobot.yaml")) == sha(cfg)
        rtok = os.path.join(sshd.remote, "state", "admin.token")
        assert stat.S_IMODE(os.stat(rtok).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(sshd.remote, "state")).st_mode) == 0o700
        # the shipped admin token is the one the remote role accepts, and
        # the role runs with the remote state dir
        assert http("GET", port, "/api/version")[0] == 401
        st, conf = http_json("GET", port, "/api/config", token=token)
        assert st == 200 and conf["state_dir"] == os.path.join(sshd.remote, "state"), conf
        pid1 = _pid(sshd.remote)
        pids.append(pid1)
        assert pid1 and _alive(pid1)
        cmd = _cmdline(pid1)
        assert cmd[0] == remote_bin.encode() and cmd[1:3] == [b"serve", b"coordinator"], cmd

        # 2. the same again: the old process is stopped, a new one started
        r = cli("deploy", "--config", cfg)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "previous version kept" in out and "stopped old coordinator process %d" % pid1 in out
        assert os.path.exists(remote_bin + ".prev")
        pid2 = _pid(sshd.remote)
        pids.append(pid2)
        assert pid2 != pid1 and _alive(pid2) and not _alive(pid1)
        assert http("GET", port, "/health")[0] == 200

        # 3. a binary that says its version but cannot serve: started, not
        #    healthy, rolled back to the previous binary, which is healthy again
        broken = os.path.join(sshd.dir, "broken-autobot")
        with open(broken, "w") as f:
            f.write('#!/bin/sh\nif [ "$1" = version ]; then echo "autobot 9.9.9-broken"; '
                    'exit 0; fi\necho "broken build" >&2\nexit 1\n')
        os.chmod(broken, 0o755)
        r = cli("deploy", "--config", cfg, "--binary", broken)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert "start coordinator (detached) ... FAILED" in out
        assert "broken build" in out  # the end of the role's log is shown
        assert "roll back: restore" in out
        assert "rolled back to the previous version, which is healthy" in out
        assert "node1            FAILED, rolled back" in out
        assert sha(remote_bin) == sha(AUTOBOT)
        assert http("GET", port, "/health")[0] == 200
        pid3 = _pid(sshd.remote)
        pids.append(pid3)
        assert pid3 not in (pid1, pid2) and _alive(pid3)
        assert _cmdline(pid3)[0] == remote_bin.encode()

        # 4. a binary that does not run at all: caught before anything is
        #    restarted; the running role is untouched
        with open(broken, "w") as f:
            f.write("#!/bin/sh\nexit 1\n")
        r = cli("deploy", "--config", cfg, "--binary", broken)
        out = r.stdout + r.stderr
        assert r.returncode == 1, out
        assert "version ... FAILED" in out and "restore the previous files ... ok" in out
        assert "start coordinator" not in out
        assert sha(remote_bin) == sha(AUTOBOT)
        assert _pid(sshd.remote) == pid3 and _alive(pid3)
        assert http("GET", port, "/health")[0] == 200
    finally:
        p = _pid(sshd.remote)
        for pid in set(pids + ([p] if p else [])):
            if pid and _alive(pid):
                try:
                    if b"serve" in _cmdline(pid):
                        os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        for pid in pids:
            if pid:
                wait_for(lambda: not _alive(pid), 10)
        redis.stop()


def test_deploy_fails_cleanly_without_key_access(sshd):
    other = os.path.join(sshd.dir, "unknown_ed25519")
    _keygen(other, "not-authorized")
    cfg = write_config(os.path.join(sshd.dir, "c.yaml"), sshd.port, sshd.remote, other,
                       state_dir=os.path.join(sshd.dir, "local-state"))
    r = cli("deploy", "--config", cfg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ssh-setup" in r.stdout and "node1            FAILED" in r.stdout
    assert not os.path.exists(os.path.join(sshd.remote, "usr"))


# ---- the systemd unit ----------------------------------------------------------------


def test_unit_file_matches_and_verifies(tmp_path):
    unit = os.path.join(ROOT, "deploy", "systemd", "autobot@.service")
    r = cli("deploy", "--print-unit")
    assert r.returncode == 0, r.stderr
    with open(unit) as f:
        text = f.read()
    # the file in the tree is what deploy installs with the default paths
    assert r.stdout == text
    for want in ["Type=notify", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/autobot",
                 "ExecStart=/usr/local/bin/autobot serve %i --config /etc/autobot/autobot.yaml"
                 " --state-dir /var/lib/autobot"]:
        assert want in text

    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.skip("systemd-analyze is not installed: unit files not verified")
    # rendered for paths of a temporary prefix where the binary exists
    prefix, sd = str(tmp_path / "usr"), str(tmp_path / "state")
    os.makedirs(os.path.join(prefix, "bin"))
    os.makedirs(sd)
    shutil.copy(AUTOBOT, os.path.join(prefix, "bin", "autobot"))
    r = cli("deploy", "--print-unit", "--set", "deploy.prefix=" + prefix,
            "--set", "deploy.remote_state_dir=" + sd,
            "--set", "deploy.config_path=" + str(tmp_path / "a.yaml"))
    assert r.returncode == 0, r.stderr
    assert "StateDirectory=" not in r.stdout and "ReadWritePaths=%s\n" % sd in r.stdout
    path = str(tmp_path / "autobot@.service")
    with open(path, "w") as f:
        f.write(r.stdout)
    v = subprocess.run([sa, "verify", path], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    if v.returncode != 0 and ("Failed to" in v.stderr and "bus" in v.stderr.lower()):
        pytest.skip("systemd-analyze cannot run here: " + v.stderr.strip()[:200])
    assert v.returncode == 0 and v.stderr.strip() == "", v.stderr
    # the tree's own file: its only possible complaint is a binary not
    # installed at /usr/local/bin/autobot on this machine
    v = subprocess.run([sa, "verify", unit], capture_output=True, text=True, timeout=60,
                       cwd=str(tmp_path))
    problems = [l for l in v.stderr.splitlines()
                if l.strip() and "/usr/local/bin/autobot is not executable" not in l]
    assert problems == [], v.stderr

    # unquotable paths are refused rather than written into a unit
    r = cli("deploy", "--print-unit", "--set", "deploy.prefix=/opt/a b")
    assert r.returncode == 1 and "systemd mode" in r.stderr
