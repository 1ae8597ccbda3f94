"""The job bus (Redis Streams, DESIGN section 6) as a coordinator runs it:
a job left pending by a worker that died is taken over after the
visibility timeout, a job delivered too often goes to the dead-letter
stream, and a queued job can be cancelled."""
import json
import os
import time

import pytest

from conftest import Redis, Resp, Serve, http_json, wait_for


@pytest.fixture
def coord(tmpdir_ab):
    r = Redis(tmpdir_ab).start(module=True)
    c = Resp(r.port, r.password)
    yield r, c
    c.close()
    r.stop()


def start(tmpdir_ab, r, workers=1):
    return Serve(os.path.join(tmpdir_ab, "st%d" % time.time_ns()), r.port, r.password,
                 extra=["--set", "kb.workers=%d" % workers,
                        "--set", "kb.job_visibility_ms=1000",
                        "--set", "kb.job_attempts=2"]).start()


def add_doc(c, doc_id, text):
    """A stored document and its job, as POST /api/knowledge/documents leaves them."""
    c.cmd("SET", "ab:kb:src:" + doc_id, text)
    c.cmd("HSET", "ab:kb:doc:" + doc_id, "id", doc_id, "title", doc_id, "mime", "text/plain",
          "status", "queued", "tags", "[]", "source", "", "filename", "")
    c.cmd("ZADD", "ab:kb:docs", 1, doc_id)


def test_a_dead_workers_job_is_taken_over(coord, tmpdir_ab):
    r, c = coord
    add_doc(c, "orphan", "A document whose first worker died half way.")
    job = "kb-orphan-1"
    c.cmd("HSET", "ab:job:" + job, "id", job, "type", "kb.ingest", "queue", "kb",
          "state", "running", "attempts", "1", "progress", "0.3")
    c.cmd("XGROUP", "CREATE", "ab:jobs:kb", "kb", "0", "MKSTREAM")
    c.cmd("XADD", "ab:jobs:kb", "*", "id", job, "type", "kb.ingest", "payload",
          json.dumps({"doc": "orphan"}))
    # a worker takes it and dies without acknowledging
    got = c.cmd("XREADGROUP", "GROUP", "kb", "dead-worker:1", "COUNT", "1", "STREAMS",
                "ab:jobs:kb", ">")
    assert got and got[0][1]
    t0 = time.time()
    svc = start(tmpdir_ab, r)
    try:
        def done():
            return c.cmd("HGET", "ab:job:" + job, "state") == b"done"
        assert wait_for(done, 30), c.cmd("HGETALL", "ab:job:" + job)
        took = time.time() - t0
        print("pending job of a dead worker finished by another after %.2f s "
              "(visibility timeout 1 s)" % took)
        assert c.cmd("HGET", "ab:job:" + job, "attempts") == b"2"
        assert c.cmd("HGET", "ab:kb:doc:orphan", "status") == b"ready"
        assert c.cmd("XPENDING", "ab:jobs:kb", "kb")[0] == 0
    finally:
        svc.stop()


def test_too_many_deliveries_go_to_the_dead_letters(coord, tmpdir_ab):
    r, c = coord
    add_doc(c, "poison", "Never indexed.")
    job = "kb-poison-1"
    c.cmd("HSET", "ab:job:" + job, "id", job, "type", "kb.ingest", "queue", "kb",
          "state", "running", "attempts", "2")
    c.cmd("XGROUP", "CREATE", "ab:jobs:kb", "kb", "0", "MKSTREAM")
    c.cmd("XADD", "ab:jobs:kb", "*", "id", job, "type", "kb.ingest", "payload",
          json.dumps({"doc": "poison"}))
    c.cmd("XREADGROUP", "GROUP", "kb", "dead-worker:2", "COUNT", "1", "STREAMS", "ab:jobs:kb", ">")
    svc = start(tmpdir_ab, r)
    try:
        assert wait_for(lambda: c.cmd("HGET", "ab:job:" + job, "state") == b"failed", 30)
        assert b"gave up after 2 attempts" in c.cmd("HGET", "ab:job:" + job, "error")
        dead = c.cmd("XRANGE", "ab:jobs:kb:dead", "-", "+")
        assert len(dead) == 1 and job.encode() in dead[0][1]
        st, j = http_json("GET", svc.port, "/api/jobs/" + job, token=svc.token)
        assert st == 200 and j["state"] == "failed"
    finally:
        svc.stop()


def test_cancel_a_queued_job_and_a_malformed_entry(coord, tmpdir_ab):
    r, c = coord
    svc = start(tmpdir_ab, r, workers=0)  # nobody takes jobs: they stay queued
    try:
        st, res = http_json("POST", svc.port, "/api/knowledge/documents", token=svc.token,
                            body={"text": "Waiting to be indexed."})
        assert st == 202
        st, j = http_json("POST", svc.port, "/api/jobs/%s/cancel" % res["job"], token=svc.token)
        assert st == 202 and j["state"] == "cancelled"
        c.cmd("XADD", "ab:jobs:kb", "*", "garbage", "1")
    finally:
        svc.stop()
    svc = start(tmpdir_ab, r, workers=1)
    try:
        # the cancelled job is acknowledged without running; the garbage entry is
        # moved to the dead letters; the document was never indexed
        assert wait_for(lambda: c.cmd("XPENDING", "ab:jobs:kb", "kb")[0] == 0 and
                        c.cmd("XLEN", "ab:jobs:kb:dead") == 1, 30)
        assert c.cmd("HGET", "ab:job:" + res["job"], "state") == b"cancelled"
        assert c.cmd("HGET", "ab:kb:doc:" + res["id"], "status") == b"queued"
    finally:
        svc.stop()
