"""The Redis module autobot.so in a real redis-server 7: vector sets with
Redis 8's commands and reply shapes, the BM25 text index, persistence (RDB,
AOF rewrite, a replica) and bad input, all over the wire."""
import json
import math
import os
import random
import struct
import subprocess
import threading
import time

import pytest

from conftest import Redis, Resp, RespError, free_port, wait_for


def fp32(vec):
    return struct.pack("<%df" % len(vec), *vec)


@pytest.fixture
def mod(tmpdir_ab):
    r = Redis(tmpdir_ab).start(module=True)
    c = Resp(r.port, r.password)
    yield r, c
    c.close()
    r.stop()


def test_points_example(mod):
    """The example of Redis's vector-set docs, answered the same way."""
    r, c = mod
    for name, v in [("pt:A", (1.0, 1.0)), ("pt:B", (-1.0, -1.0)), ("pt:C", (-1.0, 1.0)),
                    ("pt:D", (1.0, -1.0)), ("pt:E", (1.0, 0.0))]:
        assert c.cmd("VADD", "points", "VALUES", 2, *v, name) == 1
    assert c.cmd("TYPE", "points") == "vectorset"
    assert c.cmd("VCARD", "points") == 5
    assert c.cmd("VDIM", "points") == 2
    assert c.cmd("VISMEMBER", "points", "pt:A") == 1
    assert c.cmd("VISMEMBER", "points", "nope") == 0
    # nearest to (0.9, 0.1): E, then A, then D
    res = c.cmd("VSIM", "points", "VALUES", 2, 0.9, 0.1, "COUNT", 3)
    assert res == [b"pt:E", b"pt:A", b"pt:D"]
    res = c.cmd("VSIM", "points", "ELE", "pt:A", "WITHSCORES")
    names = res[0::2]
    scores = [float(x) for x in res[1::2]]
    assert names[0] == b"pt:A" and abs(scores[0] - 1.0) < 1e-3
    assert names[-1] == b"pt:B" and abs(scores[-1]) < 1e-2  # opposite: score 0
    assert scores == sorted(scores, reverse=True)
    emb = [float(x) for x in c.cmd("VEMB", "points", "pt:A")]
    assert all(abs(x - 1.0) < 0.02 for x in emb)
    assert c.cmd("VEMB", "points", "missing") is None
    raw = c.cmd("VEMB", "points", "pt:A", "RAW")
    assert raw[0] == "q8" and len(raw[1]) == 2 and abs(float(raw[2]) - math.sqrt(2)) < 1e-4
    assert len(raw) == 4
    info = c.cmd("VINFO", "points")
    d = dict(zip(info[0::2], info[1::2]))
    assert d["quant-type"] == "int8" and d["vector-dim"] == 2 and d["size"] == 5
    assert d["hnsw-m"] == 16
    mem5 = c.cmd("MEMORY", "USAGE", "points")
    assert mem5 > 5 * 2  # the type reports its memory
    assert c.cmd("VREM", "points", "pt:A") == 1
    assert c.cmd("VREM", "points", "pt:A") == 0
    assert c.cmd("VCARD", "points") == 4
    for n in ["pt:B", "pt:C", "pt:D", "pt:E"]:
        c.cmd("VREM", "points", n)
    assert c.cmd("EXISTS", "points") == 0  # an empty set is no key


def test_update_attributes_and_filter(mod):
    r, c = mod
    c.cmd("VADD", "movies", "VALUES", 3, 1, 1, 1, "a", "SETATTR", '{"year": 1950, "genre": "drama"}')
    c.cmd("VADD", "movies", "VALUES", 3, -1, -1, -1, "b", "SETATTR", '{"year": 1951}')
    c.cmd("VADD", "movies", "VALUES", 3, 0, 1, 0, "c")
    assert c.cmd("VSETATTR", "movies", "c", '{"year": 1952, "genre": "action"}') == 1
    assert c.cmd("VSETATTR", "movies", "zzz", '{"year": 1}') == 0
    assert json.loads(c.cmd("VGETATTR", "movies", "c")) == {"year": 1952, "genre": "action"}
    res = c.cmd("VSIM", "movies", "VALUES", 3, 0, 0, 1, "FILTER", ".year > 1950")
    assert sorted(res) == [b"b", b"c"]
    res = c.cmd("VSIM", "movies", "VALUES", 3, 0, 0, 1, "FILTER",
                '.year >= 1950 and .genre == "drama"')
    assert res == [b"a"]
    res = c.cmd("VSIM", "movies", "ELE", "a", "WITHSCORES", "WITHATTRIBS", "COUNT", 3)
    assert len(res) == 9 and res[0] == b"a" and json.loads(res[2])["year"] == 1950
    # removing the attributes: the element no longer passes any filter
    assert c.cmd("VSETATTR", "movies", "a", "") == 1
    assert c.cmd("VGETATTR", "movies", "a") is None
    assert sorted(c.cmd("VSIM", "movies", "ELE", "a", "FILTER", ".year > 0", "COUNT", 3)) == [b"b", b"c"]
    # VADD of an existing element moves it: returns 0 and VEMB follows
    assert c.cmd("VADD", "movies", "VALUES", 3, -1, -1, -1.5, "c") == 0
    assert c.cmd("VCARD", "movies") == 3
    emb = [float(x) for x in c.cmd("VEMB", "movies", "c")]
    assert emb[2] < -1.2
    assert json.loads(c.cmd("VGETATTR", "movies", "c"))["year"] == 1952


def test_resp3_shapes(mod):
    r, _ = mod
    c = Resp(r.port, r.password, resp3=True)
    c.cmd("VADD", "s", "VALUES", 2, 1, 0, "x", "SETATTR", '{"k": 1}')
    c.cmd("VADD", "s", "VALUES", 2, 0, 1, "y")
    res = c.cmd("VSIM", "s", "VALUES", 2, 1, 0, "WITHSCORES")
    assert isinstance(res, dict) and abs(res[b"x"] - 1.0) < 1e-3
    res = c.cmd("VSIM", "s", "VALUES", 2, 1, 0, "WITHSCORES", "WITHATTRIBS")
    assert isinstance(res[b"x"], list) and json.loads(res[b"x"][1]) == {"k": 1}
    assert res[b"y"][1] is None
    info = c.cmd("VINFO", "s")
    assert isinstance(info, dict) and info["size"] == 2
    c.close()


def test_quantisation_and_reduce(mod):
    r, c = mod
    v = [0.1 * i - 0.5 for i in range(16)]
    assert c.cmd("VADD", "f", "FP32", fp32(v), "e", "NOQUANT") == 1
    back = [float(x) for x in c.cmd("VEMB", "f", "e")]
    assert max(abs(a - b) for a, b in zip(v, back)) < 1e-5
    assert dict(zip(*[iter(c.cmd("VINFO", "f"))] * 2))["quant-type"] == "f32"
    with pytest.raises(RespError, match="quantization mismatch"):
        c.cmd("VADD", "f", "FP32", fp32(v), "e2", "BIN")
    assert c.cmd("VADD", "b", "VALUES", 4, 1, -2, 3, -4, "e", "BIN") == 1
    raw = c.cmd("VEMB", "b", "e", "RAW")
    assert raw[0] == "bin" and len(raw[1]) == 1 and len(raw) == 3
    back = [float(x) for x in c.cmd("VEMB", "b", "e")]
    assert [x > 0 for x in back] == [True, False, True, False]
    # REDUCE: 64 -> 8 dimensions, queries with full-size vectors
    rnd = random.Random(7)
    for i in range(50):
        vec = [rnd.gauss(0, 1) for _ in range(64)]
        args = ["VADD", "red"] + (["REDUCE", 8] if i == 0 else []) + ["FP32", fp32(vec), "e%d" % i]
        assert c.cmd(*args) == 1
    assert c.cmd("VDIM", "red") == 8
    info = dict(zip(*[iter(c.cmd("VINFO", "red"))] * 2))
    assert info["projection-input-dim"] == 64
    res = c.cmd("VSIM", "red", "ELE", "e3", "COUNT", 1)
    assert res == [b"e3"]
    with pytest.raises(RespError, match="dimension mismatch"):
        c.cmd("VSIM", "red", "VALUES", 8, *([0.5] * 8))


def test_bad_input_gets_errors(mod):
    r, c = mod
    c.cmd("VADD", "v", "VALUES", 3, 1, 2, 3, "a")
    bad = [
        ("VADD", "v"),                                       # arity
        ("VADD", "v", "FP32", b"\x00\x00\x80", "x"),         # blob not a multiple of 4
        ("VADD", "v", "VALUES", 2, 1, 2, "x"),               # dimension mismatch
        ("VADD", "v", "VALUES", 5, 1, 2, "x"),               # fewer values than count
        ("VADD", "v", "VALUES", 3, 1, "nan", 3, "x"),        # not finite
        ("VADD", "v", "VALUES", 3, 1, "abc", 3, "x"),        # not a number
        ("VADD", "v", "VALUES", -1, "x"),
        ("VADD", "v", "VALUES", 3, 1, 2, 3, "x", "SETATTR", "{broken"),
        ("VADD", "v", "VALUES", 3, 1, 2, 3, "x", "SETATTR", "[1,2]"),
        ("VADD", "v", "VALUES", 3, 1, 2, 3, "x", "M", 16000000),
        ("VADD", "v", "VALUES", 3, 1, 2, 3, "x", "FROB"),
        ("VSIM", "v", "VALUES", 3, 1, 2, 3, "COUNT", 10 ** 30),
        ("VSIM", "v", "VALUES", 3, 1, 2, 3, "COUNT", -5),
        ("VSIM", "v", "VALUES", 3, 1, 2, 3, "FILTER", ".year >>> 3"),
        ("VSIM", "v", "VALUES", 3, 1, 2, 3, "FILTER", "(((((.a"),
        ("VSIM", "v", "VALUES", 3, 1, 2, 3, "EPSILON", 7),
        ("VSIM", "v", "ELE", "nope"),
        ("VSIM", "v", "VALUES", 4, 1, 2, 3, 4),
        ("VSETATTR", "v", "a", "not json"),
        ("VEMB", "v", "a", "COOKED"),
        ("VDIM", "nokey"),
        ("AB.VADDRAW", "v", "x", b"\x01", b"12345678", ""),
    ]
    for args in bad:
        with pytest.raises(RespError):
            c.cmd(*args)
    # a huge COUNT within bounds is fine: capped by the set's size
    assert c.cmd("VSIM", "v", "VALUES", 3, 1, 2, 3, "COUNT", 100000000) == [b"a"]
    c.cmd("SET", "str", "x")
    with pytest.raises(RespError, match="WRONGTYPE"):
        c.cmd("VADD", "str", "VALUES", 1, 1, "e")
    with pytest.raises(RespError, match="WRONGTYPE"):
        c.cmd("VSIM", "str", "VALUES", 1, 1)
    assert c.cmd("PING") == "PONG"
    assert c.cmd("VCARD", "v") == 1


def _random_set(c, key, n, dim, seed, quant=None, clustered=False):
    rnd = random.Random(seed)
    centers = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(10)]
    vecs = {}
    for i in range(n):
        if clustered:
            ctr = centers[i % 10]
            v = [x + rnd.gauss(0, 0.3) for x in ctr]
        else:
            v = [rnd.gauss(0, 1) for _ in range(dim)]
        vecs["e%d" % i] = v
        c.send("VADD", key, "FP32", fp32(v), "e%d" % i, *([quant] if quant else []))
    for _ in range(n):
        c.read()
    return vecs


def test_recall_against_truth(mod):
    r, c = mod
    _random_set(c, "big", 3000, 32, 1)
    assert c.cmd("MEMORY", "USAGE", "big") > 3000 * 32  # int8 components at least
    rnd = random.Random(2)
    hits = total = 0
    for _ in range(30):
        q = [rnd.gauss(0, 1) for _ in range(32)]
        approx = c.cmd("VSIM", "big", "FP32", fp32(q), "COUNT", 10)
        truth = c.cmd("VSIM", "big", "FP32", fp32(q), "COUNT", 10, "TRUTH")
        hits += len(set(approx) & set(truth))
        total += 10
    recall = hits / total
    print("recall@10 over 3000 x 32 random vectors: %.3f" % recall)
    assert recall >= 0.9


def test_concurrent_searches_writes_and_delete(mod):
    """Searches on threads while the main thread adds, removes and deletes
    the key: every reply is well formed and the server stays up."""
    r, c = mod
    _random_set(c, "cc", 1500, 16, 3)
    errors = []
    stop = time.time() + 4

    def searcher(seed):
        cl = Resp(r.port, r.password)
        rnd = random.Random(seed)
        try:
            while time.time() < stop:
                q = [rnd.gauss(0, 1) for _ in range(16)]
                res = cl.cmd("VSIM", "cc", "FP32", fp32(q), "COUNT", 5, "WITHSCORES")
                assert isinstance(res, list) and len(res) % 2 == 0
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
        finally:
            cl.close()

    ths = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    for t in ths:
        t.start()
    rnd = random.Random(9)
    i = 0
    while time.time() < stop:
        v = [rnd.gauss(0, 1) for _ in range(16)]
        c.cmd("VADD", "cc", "FP32", fp32(v), "n%d" % i)
        c.cmd("VREM", "cc", "e%d" % (i % 1500))
        i += 1
        if i % 300 == 0:
            c.cmd("DEL", "cc")
            _random_set(c, "cc", 500, 16, i)
    for t in ths:
        t.join()
    assert not errors, errors[:3]
    assert c.cmd("PING") == "PONG"


def _save_restart(r, c, aof=False):
    if aof:
        c.cmd("BGREWRITEAOF")
        assert wait_for(lambda: b"aof_rewrite_in_progress:0" in c.cmd("INFO", "persistence")
                        and b"aof_rewrite_scheduled:0" in c.cmd("INFO", "persistence"), 20)
    else:
        c.cmd("SAVE")
    c.close()
    r.stop()
    r.start(module=True, appendonly=aof)
    return Resp(r.port, r.password)


@pytest.mark.parametrize("aof", [False, True], ids=["rdb", "aof-rewrite"])
def test_persistence_round_trip(tmpdir_ab, aof):
    r = Redis(tmpdir_ab).start(module=True, appendonly=aof)
    c = Resp(r.port, r.password)
    for quant in ["Q8", "NOQUANT", "BIN"]:
        _random_set(c, "p-" + quant, 400, 24, 5, quant=quant)
    c.cmd("VADD", "p-red", "REDUCE", 6, "VALUES", 12, *range(1, 13), "a", "SETATTR", '{"x": 1}')
    c.cmd("VADD", "p-red", "VALUES", 12, *range(12, 0, -1), "b")
    c.cmd("VSETATTR", "p-Q8", "e7", '{"tag": "seven"}')
    q = fp32([0.3] * 24)
    before = {k: c.cmd("VSIM", k, "FP32", q, "COUNT", 20, "WITHSCORES", "TRUTH")
              for k in ["p-Q8", "p-NOQUANT", "p-BIN"]}
    emb_before = c.cmd("VEMB", "p-red", "a")
    c.cmd("AB.TEXTADD", "t", "d1", "the quick brown fox jumps", "ATTRS", '{"src": "x"}')
    c.cmd("AB.TEXTADD", "t", "d2", "a lazy dog sleeps all day")
    c.cmd("AB.TEXTADD", "t", "d3", "quick quick foxes everywhere")
    text_before = c.cmd("AB.TEXTSEARCH", "t", "quick fox", "WITHSCORES")
    c = _save_restart(r, c, aof=aof)
    for k, res in before.items():
        after = c.cmd("VSIM", k, "FP32", q, "COUNT", 20, "WITHSCORES", "TRUTH")
        assert after[0::2] == res[0::2], k
        assert all(abs(float(a) - float(b)) < 1e-3 for a, b in zip(after[1::2], res[1::2]))
        assert c.cmd("VCARD", k) == 400
    assert json.loads(c.cmd("VGETATTR", "p-Q8", "e7")) == {"tag": "seven"}
    assert c.cmd("VDIM", "p-red") == 6
    assert [round(float(x), 3) for x in c.cmd("VEMB", "p-red", "a")] == \
        [round(float(x), 3) for x in emb_before]
    # approximate search still works on the restored graphs
    res = c.cmd("VSIM", "p-Q8", "ELE", "e10", "COUNT", 1)
    assert res == [b"e10"]
    assert c.cmd("AB.TEXTSEARCH", "t", "quick fox", "WITHSCORES") == text_before
    assert json.loads(c.cmd("AB.TEXTGETATTR", "t", "d1")) == {"src": "x"}
    c.close()
    r.stop()


def test_replica_has_the_sets(tmpdir_ab):
    master = Redis(tmpdir_ab).start(module=True)
    mc = Resp(master.port, master.password)
    _random_set(mc, "rv", 300, 8, 11)
    mc.cmd("AB.TEXTADD", "rt", "d1", "hello replica world")
    rdir = os.path.join(tmpdir_ab, "replica")
    os.mkdir(rdir)
    replica = Redis(rdir).start(module=True, extra=[
        "--replicaof", "127.0.0.1", str(master.port), "--masterauth", master.password])
    rc = Resp(replica.port, replica.password)
    assert wait_for(lambda: rc.cmd("VCARD", "rv") == 300, 20)
    # later writes stream over as commands
    mc.cmd("VADD", "rv", "VALUES", 8, *([1] * 8), "late")
    mc.cmd("AB.TEXTADD", "rt", "d2", "another replica document")
    assert wait_for(lambda: rc.cmd("VISMEMBER", "rv", "late") == 1, 10)
    assert rc.cmd("VSIM", "rv", "ELE", "late", "COUNT", 1) == [b"late"]
    assert wait_for(lambda: rc.cmd("AB.TEXTCARD", "rt") == 2, 10)
    assert rc.cmd("AB.TEXTSEARCH", "rt", "replica")[0] in (b"d1", b"d2")
    rc.close()
    mc.close()
    replica.stop()
    master.stop()


def test_text_index(mod):
    r, c = mod
    docs = {
        "d1": "Redis is an in-memory data store used as a database and cache",
        "d2": "The HNSW graph gives approximate nearest neighbour search",
        "d3": "BM25 ranks documents by term frequency and inverse document frequency",
        "d4": "Caching web pages in memory makes sites faster",
    }
    for k, v in docs.items():
        assert c.cmd("AB.TEXTADD", "kb", k, v, "ATTRS", json.dumps({"n": int(k[1])})) == 1
    assert c.cmd("TYPE", "kb") == "abtextidx"
    assert c.cmd("AB.TEXTCARD", "kb") == 4
    res = c.cmd("AB.TEXTSEARCH", "kb", "memory cache", "WITHSCORES")
    names = res[0::2]
    assert set(names[:2]) == {b"d1", b"d4"}
    assert all(float(s) > 0 for s in res[1::2])
    assert c.cmd("AB.TEXTSEARCH", "kb", "memory", "FILTER", ".n > 1") == [b"d4"]
    assert c.cmd("AB.TEXTSEARCH", "kb", "zebra") == []
    assert c.cmd("AB.TEXTADD", "kb", "d4", "nothing about that any more") == 0
    assert c.cmd("AB.TEXTSEARCH", "kb", "memory") == [b"d1"]
    assert c.cmd("AB.TEXTDEL", "kb", "d1") == 1
    assert c.cmd("AB.TEXTDEL", "kb", "d1") == 0
    assert c.cmd("AB.TEXTSEARCH", "kb", "memory") == []
    info = c.cmd("AB.TEXTINFO", "kb")
    d = dict(zip(info[0::2], info[1::2]))
    assert d["docs"] == 3 and d["terms"] > 5
    for args in [("AB.TEXTADD", "kb"), ("AB.TEXTADD", "kb", "x", "y", "ATTRS", "{bad"),
                 ("AB.TEXTSEARCH", "kb", "q", "COUNT", 0), ("AB.TEXTSEARCH", "kb", "q", "FILTER", "(("),
                 ("AB.TEXTCREATE", "kb"), ("AB.TEXTCREATE", "new", "K1", -1),
                 ("AB.TEXTRESTORE", "kb", "zz", "", 3, b"\xff\xff\xff\xff"),
                 ("AB.TEXTRESTORE", "kb", "zz", "", 3, b"\x01\x00\x00\x00a\x00\x00\x00\x00")]:
        with pytest.raises(RespError):
            c.cmd(*args)
    assert c.cmd("PING") == "PONG"
