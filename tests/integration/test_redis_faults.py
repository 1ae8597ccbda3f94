"""The coordinator against a Redis that dies, returns, or was never there."""
import os
import threading
import time

from conftest import Redis, Serve, http, http_json, wait_for


def test_redis_killed_under_load_then_restarted(tmpdir_ab, redis):
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password).start()
    try:
        tok = svc.token
        assert wait_for(lambda: http("GET", svc.port, "/api/services", token=tok)[0] == 200, 10)
        results = []
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    st = http("GET", svc.port, "/api/services", token=tok, timeout=5)[0]
                except Exception as e:  # a hang would show as a timeout here
                    st = repr(e)
                results.append((time.monotonic(), st, time.monotonic() - t0))

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        redis.kill()
        time.sleep(2.0)
        after = [r for r in results if r[0] > killed_at + 1.2]
        assert after, "no requests completed after the kill"
        assert all(r[1] == 503 for r in after), set(r[1] for r in after)
        # every request returned within the command timeout (1 s) + slack
        assert max(r[2] for r in results) < 2.5, max(r[2] for r in results)
        pid = svc.proc.pid
        redis.start()  # same port and password; the fixture stops it
        assert wait_for(lambda: http("GET", svc.port, "/api/services", token=tok)[0] == 200,
                        10), "coordinator did not recover"
        stop.set()
        for t in threads:
            t.join()
        assert svc.proc.pid == pid and svc.proc.poll() is None
        # the heartbeat re-registers the coordinator in the fresh redis
        assert wait_for(lambda: any(s["role"] == "coordinator" for s in http_json(
            "GET", svc.port, "/api/services", token=tok)[1]["services"]), 5)
    finally:
        svc.stop()


def test_starts_degraded_without_redis_and_recovers(tmpdir_ab):
    r = Redis(tmpdir_ab)  # not started: nothing listens on its port
    t0 = time.monotonic()
    svc = Serve(os.path.join(tmpdir_ab, "st"), r.port, r.password).start()
    try:
        assert time.monotonic() - t0 < 5
        st, body = http_json("GET", svc.port, "/api/health")
        assert st == 200 and body["status"] == "degraded"
        assert body["checks"]["redis"]["status"] == "down"
        st, body = http_json("GET", svc.port, "/api/services", token=svc.token)
        assert st == 503 and body["error"]["code"] == "redis_unavailable"
        r.start()
        assert wait_for(lambda: http_json("GET", svc.port, "/api/health")[1]["status"] == "ok", 10)
        assert http("GET", svc.port, "/api/services", token=svc.token)[0] == 200
    finally:
        svc.stop()
        r.stop()


def test_wrong_redis_password_is_reported(tmpdir_ab, redis):
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, "not-the-password").start()
    try:
        st, body = http_json("GET", svc.port, "/api/health")
        assert wait_for(lambda: http_json("GET", svc.port, "/api/health")[1]["checks"]["redis"].get("error"), 5)
        st, body = http_json("GET", svc.port, "/api/health")
        assert body["status"] == "degraded"
        assert "auth" in body["checks"]["redis"]["error"].lower() or \
            "pass" in body["checks"]["redis"]["error"].lower(), body
        log = open(os.path.join(svc.state_dir, "serve.log")).read()
        assert "not-the-password" not in log
    finally:
        svc.stop()


def test_sd_notify_ready_and_stopping(tmpdir_ab, redis):
    """serve tells systemd READY=1 once it listens, STOPPING=1 on SIGTERM."""
    import socket as so
    path = os.path.join(tmpdir_ab, "notify.sock")
    sock = so.socket(so.AF_UNIX, so.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        svc.start(wait=False)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        msg = sock.recv(4096).decode()
        assert "READY=1" in msg
        # READY is only sent once the port is open
        assert http("GET", svc.port, "/api/health")[0] == 200
        svc.proc.terminate()
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert svc.proc.wait(10) == 0
    finally:
        svc.stop()
        sock.close()
