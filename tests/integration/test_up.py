"""`autobot up` end to end: health, auth, allowlist, limits, CLI health,
crash restart and clean shutdown, all against real processes."""
import json
import os
import signal
import socket
import subprocess
import time

from conftest import (AUTOBOT, Up, free_port, http, http_json, run_cli, wait_for)


def test_health_and_cluster(up):
    st, body = http_json("GET", up.port, "/api/health")
    assert st == 200
    assert body["status"] == "ok" and body["role"] == "coordinator"
    assert body["checks"]["redis"]["status"] == "ok"
    st, body = http_json("GET", up.port, "/api/health/cluster", token=up.token)
    assert st == 200, body
    roles = {s["role"]: s for s in body["services"]}
    assert roles["redis"]["status"] == "ok", body
    assert roles["coordinator"]["status"] == "ok", body
    assert body["status"] == "ok"
    assert all(isinstance(s["latency_ms"], (int, float)) for s in body["services"])


def test_secrets_files_are_private(up):
    for name in ("admin.token", "cluster.token", "redis.password"):
        p = os.path.join(up.state_dir, name)
        assert os.stat(p).st_mode & 0o777 == 0o600, name
    conf = os.path.join(up.state_dir, "redis", "redis.conf")
    assert os.stat(conf).st_mode & 0o777 == 0o600
    assert "appendonly yes" in open(conf).read()


def test_auth_required(up):
    st, hd, body = http("GET", up.port, "/api/services")
    assert st == 401
    err = json.loads(body)["error"]
    assert err["code"] and err["message"]
    assert "bearer" in hd.get("www-authenticate", "").lower()
    st, _, _ = http("GET", up.port, "/api/services", token="wrong-token-123456")
    assert st == 401
    st, body = http_json("GET", up.port, "/api/services", token=up.token)
    assert st == 200 and isinstance(body["services"], list)
    assert wait_for(lambda: "coordinator" in [s["role"] for s in http_json(
        "GET", up.port, "/api/services", token=up.token)[1]["services"]], 5)


def test_body_limit_and_bad_json(up):
    # 10 MB declared body: refused with 413 without the server reading it
    s = socket.create_connection(("127.0.0.1", up.port), timeout=5)
    s.sendall(("POST /api/auth/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (up.token, 10 * 1024 * 1024)).encode())
    s.sendall(b"{" + b" " * 65536)
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            break
        resp += chunk
    s.close()
    assert resp.startswith(b"HTTP/1.1 413"), resp[:200]
    st, body = http_json("POST", up.port, "/api/auth/tokens", token=up.token,
                         body=b'{"name": "x", ', headers={"Content-Type": "application/json"})
    assert st == 400 and body["error"]["code"] == "bad_json", body


def test_unknown_route_and_method(up):
    st, body = http_json("GET", up.port, "/api/nope", token=up.token)
    assert st == 404 and body["error"]["code"] == "not_found"
    st, hd, _ = http("DELETE", up.port, "/api/health", token=up.token)
    assert st == 405 and "GET" in hd.get("allow", "")


def test_tokens_roles(up):
    st, body = http_json("POST", up.port, "/api/auth/tokens", token=up.token,
                         body={"name": "grafana", "role": "viewer"})
    assert st == 201, body
    viewer = body["token"]
    st, _ = http_json("POST", up.port, "/api/auth/tokens", token=up.token,
                      body={"name": "grafana", "role": "viewer"})
    assert st == 409
    st, body = http_json("GET", up.port, "/api/auth/whoami", token=viewer)
    assert st == 200 and body["access"] == "viewer"
    assert http("GET", up.port, "/api/services", token=viewer)[0] == 200
    assert http("GET", up.port, "/api/config", token=viewer)[0] == 403
    st, body = http_json("GET", up.port, "/api/auth/tokens", token=up.token)
    assert [t["name"] for t in body["tokens"]] == ["grafana"]
    assert viewer not in json.dumps(body)
    assert http("DELETE", up.port, "/api/auth/tokens/grafana", token=up.token)[0] == 204
    assert http("GET", up.port, "/api/services", token=viewer)[0] == 401
    assert http("DELETE", up.port, "/api/auth/tokens/grafana", token=up.token)[0] == 404


def test_config_is_redacted(up):
    st, body = http_json("GET", up.port, "/api/config", token=up.token)
    assert st == 200
    text = json.dumps(body)
    pw = open(os.path.join(up.state_dir, "redis.password")).read().strip()
    assert up.token not in text and pw not in text
    assert body["services"]["coordinator"]["port"] == up.port


def test_openapi_docs_metrics(up):
    st, body = http_json("GET", up.port, "/api/openapi.json")
    assert st == 200 and body["openapi"].startswith("3.1")
    for p in ("/api/health", "/api/health/cluster", "/api/services", "/api/version",
              "/api/config", "/api/auth/tokens/{name}"):
        assert p in body["paths"], p
    st, hd, page = http("GET", up.port, "/docs")
    assert st == 200 and b"/api/health/cluster" in page
    assert http("GET", up.port, "/metrics")[0] == 401
    http("GET", up.port, "/api/health")
    st, _, text = http("GET", up.port, "/metrics", token=up.token)
    assert st == 200 and b"autobot_http_requests_total" in text
    assert b"autobot_redis_up 1" in text


def test_cluster_stream(up):
    s = socket.create_connection(("127.0.0.1", up.port), timeout=10)
    s.sendall(("GET /api/health/cluster/stream HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s\r\n\r\n" % up.token).encode())
    data = b""
    deadline = time.time() + 10
    while data.count(b"event: health") < 2 and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"text/event-stream" in data
    assert data.count(b"event: health") >= 2, data[:500]
    assert b'"role":"redis"' in data


def test_health_cli_exit_codes(tmpdir_ab, redis):
    # an external redis (not supervised), so that a kill stays a kill
    u = Up(os.path.join(tmpdir_ab, "state"),
           extra=["--set", "services.redis.managed=false",
                  "--set", "services.redis.password=" + redis.password])
    u.redis_port = redis.port
    u.args = [a if not a.startswith("services.redis.port=") else
              "services.redis.port=%d" % redis.port for a in u.args]
    u.start()
    try:
        assert len(u.children()) == 2  # coordinator and llm: redis is external
        args = u.cli_args() + ["--set", "services.redis.password=" + redis.password]
        r = run_cli("health", *args)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "redis" in r.stdout and "coordinator" in r.stdout
        r = run_cli("health", "--json", *args)
        doc = json.loads(r.stdout)
        assert doc["status"] == "ok" and len(doc["services"]) >= 2
        assert isinstance(doc["elapsed_ms"], (int, float))
        r = run_cli("status", *args)
        assert r.returncode == 0 and "coordinator" in r.stdout, r.stdout + r.stderr
        redis.kill()
        r = run_cli("health", "--json", *args)
        assert r.returncode == 2, r.stdout
        doc = json.loads(r.stdout)
        red = [s for s in doc["services"] if s["role"] == "redis"][0]
        assert red["status"] == "down" and "refused" in red["error"].lower(), red
        r = run_cli("health", *args)
        assert r.returncode == 2 and "redis" in r.stdout and "down" in r.stdout
        # the coordinator itself stays up, degraded once its Redis monitor
        # (a ping a second) has noticed: the CLI's probe can be quicker
        def degraded():
            st, body = http_json("GET", u.port, "/api/health")
            assert st == 200
            return body["status"] == "degraded"
        assert wait_for(degraded, 5), "the coordinator did not report degraded"
        redis.start()
        assert wait_for(lambda: run_cli("health", *args).returncode == 0, 10), "no recovery"
    finally:
        u.stop()


def test_supervisor_restarts_redis(up):
    st, body = http_json("POST", up.port, "/api/auth/tokens", token=up.token,
                         body={"name": "before-crash", "role": "viewer"})
    assert st == 201
    viewer = body["token"]
    time.sleep(1.5)  # appendfsync everysec: let the AOF reach the disk
    pid = up.child_pid("redis-server")
    assert pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: up.child_pid("redis-server") not in (None, pid), 10)
    args = up.cli_args()
    assert wait_for(lambda: run_cli("health", *args).returncode == 0, 20), "no recovery"
    assert any("redis" in l and "restarting" in l for l in up.out)
    # AOF on: the token minted before the kill survives it
    assert wait_for(lambda: http("GET", up.port, "/api/auth/whoami", token=viewer)[0] == 200, 10)


def test_crashed_child_is_restarted(up):
    pid = up.child_pid("serve coordinator")
    assert pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: up.child_pid("serve coordinator") not in (None, pid), 10)
    assert wait_for(lambda: http("GET", up.port, "/api/health")[0] == 200, 10)
    assert any("restarting" in l for l in up.out)


def test_logs_prefixed_and_secret_free(up):
    http("GET", up.port, "/api/services", token=up.token)
    time.sleep(0.3)
    text = "".join(up.out)
    assert "[redis]" in text and "[coordinator]" in text
    assert up.token not in text
    pw = open(os.path.join(up.state_dir, "redis.password")).read().strip()
    assert pw not in text


def test_ctrl_c_leaves_nothing(tmpdir_ab):
    u = Up(os.path.join(tmpdir_ab, "state")).start()
    kids = u.children()
    assert len(kids) == 3  # redis, coordinator, llm
    rc = u.interrupt()
    assert rc == 0
    for k in kids:
        assert not os.path.exists("/proc/%d" % k) or \
            open("/proc/%d/stat" % k).read().split()[2] == "Z", "child %d survived" % k
    text = "".join(u.out)
    # reverse order: the coordinator stops before redis
    assert text.index("stopping coordinator") < text.index("stopping redis")


def test_allowlist_403(tmpdir_ab):
    u = Up(os.path.join(tmpdir_ab, "state"),
           extra=["--set", "security.allow_cidrs=127.0.0.1/32"]).start()
    try:
        assert http("GET", u.port, "/api/health", source="127.0.0.1")[0] == 200
        st, body = http_json("GET", u.port, "/api/health", source="127.0.0.2")
        assert st == 403 and body["error"]["code"] == "forbidden"
    finally:
        u.stop()


def test_port_in_use_is_a_clear_error(tmpdir_ab):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        r = run_cli("up", "--state-dir", os.path.join(tmpdir_ab, "st"),
                    "--set", "services.redis.port=%d" % port, timeout=20)
        assert r.returncode != 0
        assert str(port) in r.stderr and "redis" in r.stderr
    finally:
        s.close()
