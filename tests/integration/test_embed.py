"""The llm role's embedding routes on BERT-family encoders, over the wire.

`autobot serve llm` with a models folder holding synthetic encoders
written by tests/python/bert_reference.py (a "bert" with mean pooling and
a "nomic-bert" with CLS pooling, random weights, a small lower-case
WordPiece vocabulary) and a tiny llama decoder from `autobot model synth`:
/api/embed, /api/embeddings and /v1/embeddings must give unit vectors of
the encoder's width, the same vector for the same text whatever the route
or batch, the numbers of the reference forward pass, and the decoder must
keep its own embeddings. Random weights make "related texts are closer"
meaningless, so it is not checked here (test_llm_bert.c checks it on a
real model when one is present).
"""
import base64
import json
import math
import os
import struct
import subprocess
import sys

import pytest

from conftest import AUTOBOT, ROOT, Serve, http, http_json

REF = os.path.join(ROOT, "tests", "python", "bert_reference.py")


def python_numpy():
    for py in (os.environ.get("AB_PYTHON"), "/usr/bin/python3", sys.executable):
        if py and subprocess.call([py, "-c", "import numpy"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) == 0:
            return py
    pytest.skip("no python3 with numpy (python3-numpy) to write the synthetic encoders")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("embed-models"))
    py = python_numpy()
    subprocess.check_call([py, REF, "synth", "--arch", "bert", "--type", "f32", "--pooling", "1",
                           "--seed", "11", "-o", os.path.join(d, "minibert.gguf")])
    subprocess.check_call([py, REF, "synth", "--arch", "nomic-bert", "--type", "q8_0",
                           "--pooling", "2", "--seed", "12", "-o", os.path.join(d, "mininomic.gguf")])
    if not os.access(AUTOBOT, os.X_OK):
        pytest.skip("%s is not built" % AUTOBOT)
    subprocess.check_call([AUTOBOT, "model", "synth", "--dim", "64", "--layers", "1",
                           "--heads", "4", "--kv-heads", "4", "--ffn", "96", "--vocab", "300",
                           "--ctx", "64", "--seed", "5", "--type", "f32",
                           "-o", os.path.join(d, "tinyllama.gguf")], stdout=subprocess.DEVNULL)
    return d, py


@pytest.fixture
def llm(tmpdir_ab, redis, models):
    d, _ = models
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password, role="llm",
                extra=["--set", "llm.models_dir=" + d,
                       "--set", "llm.ollama_dir=" + os.path.join(tmpdir_ab, "no-ollama")]).start()
    yield svc
    svc.stop()


def post(llm, path, body):
    st, out = http_json("POST", llm.port, path, token=llm.token, body=body, timeout=60)
    assert st == 200, out
    assert isinstance(out, dict) and "error" not in out, out
    return out


def unit(v):
    return abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-6


TEXTS = ["the cat sat on the mat", "hello world!", "quick brown fox", "the cat sat on the mat"]


def test_api_embed_shape_norm_and_determinism(llm):
    out = post(llm, "/api/embed", {"model": "minibert", "input": TEXTS})
    e = out["embeddings"]
    assert out["model"] == "minibert" and len(e) == 4
    assert all(len(v) == 64 and unit(v) for v in e)
    assert e[0] == e[3] and e[0] != e[1] and e[1] != e[2]
    # [CLS] the cat sat on the mat [SEP] + [CLS] hello world ! [SEP] + [CLS] quick brown fox [SEP] x2
    assert out["prompt_eval_count"] == 8 + 5 + 5 + 8
    again = post(llm, "/api/embed", {"model": "minibert", "input": TEXTS})
    assert again["embeddings"] == e


def test_batch_equals_single_on_every_route(llm):
    batch = post(llm, "/api/embed", {"model": "minibert", "input": TEXTS[:3]})["embeddings"]
    for i, t in enumerate(TEXTS[:3]):
        one = post(llm, "/api/embed", {"model": "minibert", "input": t})["embeddings"]
        assert one == [batch[i]]
        old = post(llm, "/api/embeddings", {"model": "minibert", "prompt": t})["embedding"]
        assert old == batch[i]
    oai = post(llm, "/v1/embeddings", {"model": "minibert", "input": TEXTS[:3]})
    assert oai["object"] == "list" and oai["model"] == "minibert"
    assert [d["index"] for d in oai["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in oai["data"])
    assert [d["embedding"] for d in oai["data"]] == batch
    assert oai["usage"]["prompt_tokens"] == 18 and oai["usage"]["total_tokens"] == 18
    one = post(llm, "/v1/embeddings", {"model": "minibert", "input": TEXTS[1]})
    assert one["data"][0]["embedding"] == batch[1]


def test_openai_base64_encoding(llm):
    """The official OpenAI clients ask for base64 (little-endian float32) by default."""
    f = post(llm, "/v1/embeddings", {"model": "minibert", "input": TEXTS[:2]})
    b = post(llm, "/v1/embeddings", {"model": "minibert", "input": TEXTS[:2],
                                     "encoding_format": "base64"})
    assert len(b["data"]) == 2
    for x, y in zip(f["data"], b["data"]):
        raw = base64.b64decode(y["embedding"], validate=True)
        vals = struct.unpack("<%df" % (len(raw) // 4), raw)
        assert len(raw) == 4 * 64 and list(vals) == pytest.approx(x["embedding"], abs=1e-8)
    st, body = http_json("POST", llm.port, "/v1/embeddings", token=llm.token, timeout=60,
                         body={"model": "minibert", "input": "x", "encoding_format": "hex"})
    assert st == 400 and "encoding_format" in json.dumps(body)


def reference(models, name, words, rounding=False):
    """The reference forward pass of [CLS] words [SEP] (words as pieces of
    the synthetic vocabulary); rounding: with ggml's activation rounding."""
    d, py = models
    sys.path.insert(0, os.path.dirname(REF))
    import bert_reference
    toks, _ = bert_reference.synth_vocab()
    ids = [2] + [toks.index("\u2581" + w) for w in words] + [3]
    out = subprocess.check_output([py, REF] + (["--ggml-rounding"] if rounding else []) +
                                  [os.path.join(d, name + ".gguf")] + [str(i) for i in ids])
    vals = [float(x) for x in out.split()]
    return vals[:64]


def test_vectors_are_the_reference_forward_pass(llm, models):
    got = post(llm, "/api/embed", {"model": "minibert", "input": "The cat sat on the MAT"})
    want = reference(models, "minibert", ["the", "cat", "sat", "on", "the", "mat"])
    assert got["embeddings"][0] == pytest.approx(want, abs=1e-6)
    # nomic-bert (rotary, SwiGLU, fused qkv), Q8_0 weights, CLS pooling
    got = post(llm, "/v1/embeddings", {"model": "mininomic", "input": "hello world"})
    v = got["data"][0]["embedding"]
    assert len(v) == 64 and unit(v)
    # Q8_0: the engine rounds the activations to Q8_0 blocks as ggml does
    want = reference(models, "mininomic", ["hello", "world"], rounding=True)
    assert v == pytest.approx(want, abs=1e-5)
    exact = reference(models, "mininomic", ["hello", "world"])
    assert sum((a - b) ** 2 for a, b in zip(v, exact)) ** 0.5 < 3e-2


def test_long_input_truncates_unless_told_not_to(llm):
    long = " ".join(["the cat sat on the mat"] * 40)  # 240 words, context 64
    out = post(llm, "/api/embed", {"model": "minibert", "input": long})
    assert out["prompt_eval_count"] == 64 and unit(out["embeddings"][0])
    st, body = http_json("POST", llm.port, "/api/embed", token=llm.token, timeout=60,
                         body={"model": "minibert", "input": long, "truncate": False})
    assert "error" in body and "longer than the context" in body["error"], body
    st, body = http_json("POST", llm.port, "/api/embed", token=llm.token, timeout=60,
                         body={"model": "minibert", "input": "x", "truncate": "no"})
    assert st == 400 and "truncate" in json.dumps(body)


def test_encoder_refuses_generation_and_decoder_still_embeds(llm):
    st, _, body = http("POST", llm.port, "/api/generate", token=llm.token, timeout=60,
                       body={"model": "minibert", "prompt": "hi", "stream": False})
    assert b"embedding model" in body, body
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token, timeout=60,
                         body={"model": "mininomic",
                               "messages": [{"role": "user", "content": "hi"}]})
    assert "embedding model" in json.dumps(body), body
    # the decoder: its own width, unit length, deterministic
    out = post(llm, "/api/embed", {"model": "tinyllama", "input": ["t260 t270", "t260 t270"]})
    e = out["embeddings"]
    assert len(e[0]) == 64 and unit(e[0]) and e[0] == e[1]
    st, _, body = http("POST", llm.port, "/api/generate", token=llm.token, timeout=60,
                       body={"model": "tinyllama", "prompt": "t260", "stream": False,
                             "options": {"num_predict": 3, "temperature": 0}})
    assert st == 200 and json.loads(body)["done"] is True


def test_tags_and_show_name_the_family(llm):
    st, body = http_json("GET", llm.port, "/api/tags", token=llm.token)
    fam = {m["name"]: m["details"]["family"] for m in body["models"]}
    assert fam["minibert"] == "bert" and fam["mininomic"] == "nomic-bert"
    st, body = http_json("POST", llm.port, "/api/show", token=llm.token,
                         body={"model": "minibert"})
    assert st == 200 and body["model_info"]["bert.embedding_length"] == 64
    post(llm, "/api/embed", {"model": "mininomic", "input": "x"})
    st, body = http_json("GET", llm.port, "/api/ps", token=llm.token)
    assert "mininomic" in [m["name"] for m in body["models"]]
