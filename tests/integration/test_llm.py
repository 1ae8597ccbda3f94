"""The llm role over the wire: Ollama and OpenAI APIs on the built-in
engine, with the real stories260K model from ../shared."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import ROOT, Serve, http, http_json, shared_path, wait_for

MODEL = "stories260K"


@pytest.fixture
def llm(tmpdir_ab, redis):
    models = os.path.join(tmpdir_ab, "models")
    os.makedirs(models)
    os.symlink(shared_path("models", "reference", "stories260K.gguf"),
               os.path.join(models, MODEL + ".gguf"))
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password, role="llm",
                extra=["--set", "llm.models_dir=" + models,
                       "--set", "llm.ollama_dir=" + os.path.join(tmpdir_ab, "no-ollama"),
                       "--set", "llm.queue_max=2"]).start()
    yield svc
    svc.stop()


def ndjson(body):
    return [json.loads(l) for l in body.decode().splitlines() if l.strip()]


def gen(llm, **kw):
    body = {"model": MODEL, "prompt": "Once upon a time", "options": {"temperature": 0, "num_predict": 24}}
    body.update(kw)
    return http("POST", llm.port, "/api/generate", token=llm.token, body=body, timeout=60)


def test_tags_lists_the_model(llm):
    st, body = http_json("GET", llm.port, "/api/tags", token=llm.token)
    assert st == 200
    m = [x for x in body["models"] if x["name"] == MODEL][0]
    assert m["details"]["family"] == "llama" and m["details"]["format"] == "gguf"
    assert m["size"] == os.path.getsize(shared_path("models", "reference", "stories260K.gguf"))


def test_generate_stream_and_not(llm):
    st, hd, body = gen(llm)
    assert st == 200 and "ndjson" in hd["content-type"]
    lines = ndjson(body)
    assert len(lines) > 3 and lines[-1]["done"] is True
    text = "".join(l.get("response", "") for l in lines)
    assert lines[-1]["eval_count"] == 24 and lines[-1]["done_reason"] == "length"
    assert lines[-1]["prompt_eval_count"] > 0 and len(lines[-1]["context"]) > 24
    st, hd, body = gen(llm, stream=False)
    one = json.loads(body)
    assert one["done"] and one["response"] == text  # greedy: the same text
    # the model's own words, greedy from this prompt (a real model, real text)
    assert text.startswith(","), text


def test_greedy_from_bos_matches_the_documented_text(llm):
    st, _, body = gen(llm, prompt="", raw=True, context=[1], stream=False,
                      options={"temperature": 0, "num_predict": 60})
    out = json.loads(body)["response"]
    want = "Once upon a time, there was a little girl named Lily."
    assert out.lstrip().startswith(want), out


def test_seed_repeats(llm):
    opts = {"temperature": 0.9, "seed": 42, "num_predict": 32}
    a = json.loads(gen(llm, stream=False, options=opts)[2])["response"]
    b = json.loads(gen(llm, stream=False, options=opts)[2])["response"]
    c = json.loads(gen(llm, stream=False, options=dict(opts, seed=43))[2])["response"]
    assert a == b and a != c


def test_stop_strings(llm):
    full = json.loads(gen(llm, stream=False)[2])["response"]
    stop = full.split()[2]
    cut = json.loads(gen(llm, stream=False, options={"temperature": 0, "num_predict": 24,
                                                       "stop": [stop]})[2])
    assert stop not in cut["response"] and full.startswith(cut["response"])
    assert cut["done_reason"] == "stop"


def test_chat_ollama(llm):
    st, hd, body = http("POST", llm.port, "/api/chat", token=llm.token, timeout=60,
                        body={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                              "options": {"num_predict": 8, "temperature": 0}})
    lines = ndjson(body)
    assert lines[-1]["done"] and lines[0]["message"]["role"] == "assistant"


def test_openai_chat_and_stream(llm):
    req = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}],
           "max_tokens": 12, "temperature": 0}
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token, body=req,
                         timeout=60)
    assert st == 200 and body["object"] == "chat.completion", body
    text = body["choices"][0]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 12
    st, hd, raw = http("POST", llm.port, "/v1/chat/completions", token=llm.token,
                       body=dict(req, stream=True), timeout=60)
    assert "text/event-stream" in hd["content-type"]
    events = [l[6:] for l in raw.decode().split("\n") if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_openai_completions_and_models(llm):
    st, body = http_json("POST", llm.port, "/v1/completions", token=llm.token, timeout=60,
                         body={"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5})
    assert st == 200 and body["object"] == "text_completion"
    st, body = http_json("GET", llm.port, "/v1/models", token=llm.token)
    assert [m["id"] for m in body["data"]] == [MODEL]


def _json_answer(llm, route, stream, options, **extra):
    """POSTs a format json request; returns (final line, the whole answer text)."""
    body = {"model": MODEL, "format": "json", "stream": stream, "options": options}
    if route == "/api/chat":
        body["messages"] = [{"role": "user", "content": "Tell me about the cat as JSON."}]
        key = lambda l: l.get("message", {}).get("content", "")
    else:
        body["prompt"] = "Once upon a time"
        key = lambda l: l.get("response", "")
    body.update(extra)
    st, hd, raw = http("POST", llm.port, route, token=llm.token, body=body, timeout=60)
    assert st == 200, raw
    lines = ndjson(raw)
    assert "error" not in lines[-1], lines[-1]
    text = "".join(key(l) for l in lines) if stream else key(lines[-1])
    return lines[-1], text


def test_format_json_answers_parse(llm):
    """The tiny story model writes silly JSON, but JSON: an object that parses,
    closed in time however small num_predict is, ending with done_reason stop."""
    for route in ("/api/generate", "/api/chat"):
        for options in ({"temperature": 0}, {"temperature": 0.8, "seed": 42}):
            texts = []
            for stream in (True, False):
                last, text = _json_answer(llm, route, stream, dict(options, num_predict=200))
                assert last["done"] and last["done_reason"] == "stop", (route, options, last)
                doc = json.loads(text)
                assert isinstance(doc, dict), text
                assert len(doc) >= 1, text  # the model had room to write something
                texts.append(text)
            assert texts[0] == texts[1], texts  # greedy or seeded: the same answer
    # a budget of a few tokens still gives a closed object
    for n in (2, 3, 5, 12):
        last, text = _json_answer(llm, "/api/generate", False, {"temperature": 0.8, "seed": n,
                                                                 "num_predict": n})
        assert isinstance(json.loads(text), dict), (n, text)
        assert last["eval_count"] <= n
    # unconstrained, the same prompt is prose (the constraint did the work)
    st, _, body = gen(llm, stream=False)
    with pytest.raises(ValueError):
        json.loads(json.loads(body)["response"])
    log = open(os.path.join(llm.state_dir, "serve.log")).read()
    assert "format json mask" in log and "token table built" in log


def test_format_json_openai_response_format(llm):
    req = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}],
           "max_tokens": 60, "temperature": 0, "response_format": {"type": "json_object"}}
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token, body=req,
                         timeout=60)
    assert st == 200, body
    text = body["choices"][0]["message"]["content"]
    assert isinstance(json.loads(text), dict), text
    assert body["choices"][0]["finish_reason"] == "stop"
    st, hd, raw = http("POST", llm.port, "/v1/chat/completions", token=llm.token,
                       body=dict(req, stream=True), timeout=60)
    events = [l[6:] for l in raw.decode().split("\n") if l.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    # text is the default; a schema is refused
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token, timeout=60,
                         body=dict(req, response_format={"type": "text"}, max_tokens=4))
    assert st == 200
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token,
                         body=dict(req, response_format={"type": "json_schema",
                                                         "json_schema": {"schema": {}}}))
    assert st == 400 and "json_schema is not supported" in body["error"]["message"]
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token,
                         body=dict(req, response_format="json"))
    assert st == 400 and "response_format" in body["error"]["message"]


def test_format_refusals(llm):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    for route, extra in (("/api/generate", {"prompt": "x"}),
                         ("/api/chat", {"messages": [{"role": "user", "content": "x"}]})):
        st, body = http_json("POST", llm.port, route, token=llm.token,
                             body=dict(extra, model=MODEL, format=schema))
        assert st == 400
        assert body["error"] == 'format with a JSON schema is not supported: use "json"', body
        for bad in ("yaml", "JSON", 5, ["json"]):
            st, body = http_json("POST", llm.port, route, token=llm.token,
                                 body=dict(extra, model=MODEL, format=bad))
            assert st == 400 and "format must be" in body["error"], (bad, body)
    # "" and null mean no format, as with Ollama
    for none in ("", None):
        st, _, body = gen(llm, stream=False, format=none, options={"num_predict": 3})
        assert st == 200 and json.loads(body)["done"]


def test_embeddings(llm):
    st, body = http_json("POST", llm.port, "/api/embed", token=llm.token, timeout=60,
                         body={"model": MODEL, "input": ["a cat", "a dog", "a cat"]})
    assert st == 200, body
    e = body["embeddings"]
    assert len(e) == 3 and len(e[0]) == 64
    assert abs(sum(x * x for x in e[0]) - 1) < 1e-4 and e[0] == e[2] and e[0] != e[1]
    st, body = http_json("POST", llm.port, "/v1/embeddings", token=llm.token, timeout=60,
                         body={"model": MODEL, "input": "a cat"})
    assert body["data"][0]["embedding"] == pytest.approx(e[0], abs=1e-6)
    st, body = http_json("POST", llm.port, "/api/embeddings", token=llm.token, timeout=60,
                         body={"model": MODEL, "prompt": "a cat"})
    assert len(body["embedding"]) == 64


def test_ps_show_version_and_keep_alive(llm):
    gen(llm, stream=False)
    st, body = http_json("GET", llm.port, "/api/ps", token=llm.token)
    assert [m["name"] for m in body["models"]] == [MODEL]
    st, body = http_json("POST", llm.port, "/api/show", token=llm.token, body={"model": MODEL})
    assert st == 200 and body["model_info"]["general.architecture"] == "llama"
    assert http_json("GET", llm.port, "/api/version", token=llm.token)[1]["version"]
    gen(llm, stream=False, keep_alive=0)
    assert wait_for(lambda: http_json("GET", llm.port, "/api/ps", token=llm.token)[1]["models"] == [], 5)
    st, body = http_json("GET", llm.port, "/health")
    assert body["checks"]["llm"]["status"] == "ok" and "device" in body["checks"]["llm"]


def test_bad_requests(llm):
    st, body = http_json("POST", llm.port, "/api/generate", token=llm.token,
                         body={"model": "nope", "prompt": "x"})
    assert st == 404 and "not found" in body["error"]
    st, body = http_json("POST", llm.port, "/api/generate", token=llm.token,
                         body={"model": MODEL, "options": {"temperature": "hot"}})
    assert st == 400 and "temperature" in body["error"]
    st, body = http_json("POST", llm.port, "/v1/chat/completions", token=llm.token,
                         body={"model": MODEL, "messages": "hi"})
    assert st == 400 and body["error"]["message"]
    st, _, _ = http("POST", llm.port, "/api/chat", token=llm.token, body=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert st == 400
    assert http("POST", llm.port, "/api/generate", body={"model": MODEL})[0] == 401
    # a prompt longer than the context: a clear error, no crash
    st, _, body = gen(llm, stream=False, prompt="once upon a time " * 400,
                      options={"num_ctx": 64})
    assert b"longer than the context" in body
    assert http("GET", llm.port, "/health")[0] == 200


def test_queue_full_is_429(llm):
    results = []

    def one():
        st, hd, _ = gen(llm, stream=False, options={"num_predict": 400, "num_ctx": 512,
                                                     "temperature": 0.8})
        results.append((st, hd.get("retry-after")))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [r[0] for r in results]
    assert 200 in codes and 429 in codes, codes
    assert all(r[1] == "1" for r in results if r[0] == 429)


def test_client_disconnect_stops_generation(llm):
    s = socket.create_connection(("127.0.0.1", llm.port), timeout=10)
    body = json.dumps({"model": MODEL, "prompt": "Once", "options": {"num_predict": 100000,
                                                                   "num_ctx": 512}}).encode()
    s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (llm.token.encode(), len(body), body))
    data = b""
    while b"response" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    s.close()
    log = os.path.join(llm.state_dir, "serve.log")
    assert wait_for(lambda: "client went away" in open(log).read(), 10)
    st, body = http_json("GET", llm.port, "/health")
    assert body["checks"]["llm"]["active"] == 0


def test_real_clients_ollama_js_and_openai(llm):
    node = shutil.which("node")
    npm = shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed")
    cdir = os.path.join(ROOT, "tests", "clients")
    if not os.path.isdir(os.path.join(cdir, "node_modules", "ollama")):
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=cdir,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            pytest.skip("npm install failed (no registry?): " + r.stderr[-300:])
    r = subprocess.run([node, "clients.mjs", "http://127.0.0.1:%d" % llm.port, llm.token, MODEL],
                       cwd=cdir, capture_output=True, text=True, timeout=300)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all client checks passed" in r.stdout


def fake_ollama_store(root, name="stories"):
    """An Ollama model store as Ollama lays it out: a manifest naming a blob."""
    import hashlib
    src = shared_path("models", "reference", "stories260K.gguf")
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()
    os.makedirs(os.path.join(root, "blobs"))
    os.symlink(src, os.path.join(root, "blobs", "sha256-" + digest))
    mdir = os.path.join(root, "manifests", "registry.ollama.ai", "library", name)
    os.makedirs(mdir)
    with open(os.path.join(mdir, "latest"), "w") as f:
        json.dump({"schemaVersion": 2, "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:" + digest,
             "size": os.path.getsize(src)}]}, f)


def test_ollama_store_by_name(tmpdir_ab):
    from conftest import run_cli
    store = os.path.join(tmpdir_ab, "ollama")
    fake_ollama_store(store)
    args = ["--state-dir", os.path.join(tmpdir_ab, "st"), "--set", "llm.ollama_dir=" + store]
    r = run_cli("model", "list", "--json", *args)
    assert r.returncode == 0, r.stderr
    names = [m["name"] for m in json.loads(r.stdout)["models"]]
    assert names == ["stories:latest"]
    r = run_cli("run", "stories", "Once upon a time", "--num-predict", "12",
                "--temperature", "0", *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(", there was a little girl"), r.stdout
    r = run_cli("run", "no-such-model", "x", *args)
    assert r.returncode == 1 and "model list" in r.stderr


def test_models_within_max_loaded(tmpdir_ab, redis):
    models = os.path.join(tmpdir_ab, "models")
    os.makedirs(models)
    os.symlink(shared_path("models", "reference", "stories260K.gguf"),
               os.path.join(models, "a.gguf"))
    os.symlink(shared_path("models", "reference", "stories260K.f16.gguf"),
               os.path.join(models, "b.gguf"))
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password, role="llm",
                extra=["--set", "llm.models_dir=" + models, "--set", "llm.max_loaded=1",
                       "--set", "llm.ollama_dir=" + os.path.join(tmpdir_ab, "none")]).start()
    try:
        for name in ("a", "b"):
            st, _, body = http("POST", svc.port, "/api/generate", token=svc.token, timeout=60,
                               body={"model": name, "prompt": "Once", "stream": False,
                                     "options": {"num_predict": 4}})
            assert st == 200 and json.loads(body)["done"]
            ps = http_json("GET", svc.port, "/api/ps", token=svc.token)[1]["models"]
            assert [m["name"] for m in ps] == [name]  # the other one was unloaded
    finally:
        svc.stop()


def test_provider_mode_forwards(tmpdir_ab, redis, llm):
    """An llm role with provider ollama forwards to another server (here
    the builtin one standing in for an Ollama box), streams included."""
    # our builtin server wants a token: services.llm.api_key is sent upstream
    proxy = Serve(os.path.join(tmpdir_ab, "st2"), redis.port, redis.password, role="llm",
                  extra=["--set", "services.llm.provider=ollama",
                         "--set", "services.llm.url=http://127.0.0.1:%d" % llm.port,
                         "--set", "services.llm.api_key=" + llm.token])
    os.makedirs(proxy.state_dir, exist_ok=True)
    shutil.copy(os.path.join(llm.state_dir, "admin.token"), proxy.state_dir)
    proxy.start()
    try:
        st, body = http_json("GET", proxy.port, "/api/tags", token=llm.token)
        assert st == 200 and "models" in body and body["models"][0]["name"] == MODEL, body
        st, hd, raw = http("POST", proxy.port, "/api/generate", token=llm.token, timeout=60,
                           body={"model": MODEL, "prompt": "Once upon a time",
                                 "options": {"temperature": 0, "num_predict": 12}})
        lines = ndjson(raw)
        assert len(lines) > 3 and lines[-1]["done"]
        direct = json.loads(gen(llm, stream=False, options={"temperature": 0,
                                                              "num_predict": 12})[2])
        assert "".join(l.get("response", "") for l in lines) == direct["response"]
    finally:
        proxy.stop()


# ---- text that is not valid UTF-8 ---------------------------------------------

def _gguf_vocab(path):
    """tokenizer.ggml.tokens and token_type of a GGUF file (the KV part only)."""
    import struct
    data = open(path, "rb").read()
    assert data[:4] == b"GGUF"
    o = 8
    def take(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, data, o)[0]
        o += struct.calcsize("<" + fmt)
        return v
    def string():
        nonlocal o
        n = take("Q")
        o += n
        return data[o - n:o].decode("utf-8")
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
              10: "Q", 11: "q", 12: "d"}
    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])
    take("Q")  # tensors
    kv = {}
    for _ in range(take("Q")):
        k = string()
        kv[k] = value(take("I"))
    return kv["tokenizer.ggml.tokens"], kv["tokenizer.ggml.token_type"]


def _piece_bytes(tokens, types, ids):
    """The bytes the engine generates for ids (SentencePiece: byte tokens
    are raw bytes, U+2581 is a space, control tokens give nothing)."""
    out = b""
    for i in ids:
        t, ty = tokens[i], types[i]
        if ty == 6:
            out += bytes([int(t[3:5], 16)])
        elif ty == 1:
            out += t.replace("\u2581", " ").encode()
        elif ty == 4:
            out += t.encode()
    return out


RND = "rnd512"


@pytest.fixture(scope="module")
def rnd_models(tmp_path_factory):
    """A random-weight llama with stories260K's real SentencePiece vocabulary
    (256 byte-fallback tokens of 512): sampled hot, it emits lone bytes of
    multi-byte characters and sequences that are never valid UTF-8."""
    from conftest import AUTOBOT
    if not os.access(AUTOBOT, os.X_OK):
        pytest.skip("%s is not built" % AUTOBOT)
    d = str(tmp_path_factory.mktemp("utf8-models"))
    subprocess.check_call([AUTOBOT, "model", "synth", "--dim", "64", "--layers", "1",
                           "--heads", "4", "--kv-heads", "4", "--ffn", "96", "--vocab", "512",
                           "--ctx", "256", "--seed", "3", "--type", "f32", "--tokenizer",
                           shared_path("models", "reference", "stories260K.gguf"),
                           "-o", os.path.join(d, RND + ".gguf")], stdout=subprocess.DEVNULL)
    return d


@pytest.fixture
def rnd_llm(tmpdir_ab, redis, rnd_models):
    svc = Serve(os.path.join(tmpdir_ab, "st"), redis.port, redis.password, role="llm",
                extra=["--set", "llm.models_dir=" + rnd_models,
                       "--set", "llm.ollama_dir=" + os.path.join(tmpdir_ab, "no-ollama")]).start()
    svc.model_file = os.path.join(rnd_models, RND + ".gguf")
    yield svc
    svc.stop()


HOT = {"temperature": 1.5, "seed": 7, "num_predict": 48}


def _answer(llm, route, stream, **extra):
    """One request at HOT; returns (text, final object, number of text chunks).
    Every line must be valid UTF-8 and JSON, as a client's strict parser wants."""
    if route == "/api/generate":
        body = {"prompt": "Once upon a time", "options": HOT}
    elif route == "/api/chat":
        body = {"messages": [{"role": "user", "content": "Hi"}], "options": HOT}
    else:
        body = {"messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": HOT["num_predict"], "temperature": HOT["temperature"],
                "seed": HOT["seed"]}
    body.update(model=RND, stream=stream, **extra)
    st, hd, raw = http("POST", llm.port, route, token=llm.token, body=body, timeout=60)
    assert st == 200, raw
    raw = raw.decode("utf-8")  # strict: no invalid byte on the wire
    if route == "/v1/chat/completions":
        if not stream:
            o = json.loads(raw)
            return o["choices"][0]["message"]["content"], o, 0
        events = [l[6:] for l in raw.split("\n") if l.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        pieces = [c["choices"][0]["delta"]["content"] for c in chunks
                  if "content" in c["choices"][0]["delta"]]
        return "".join(pieces), chunks[-1], len(pieces)
    lines = [json.loads(l) for l in raw.splitlines() if l.strip()]
    assert "error" not in lines[-1] and lines[-1]["done"], lines[-1]
    key = (lambda l: l["response"]) if route == "/api/generate" else \
        (lambda l: l["message"]["content"])
    if not stream:
        assert len(lines) == 1
        return key(lines[0]), lines[0], 0
    for l in lines[:-1]:
        assert key(l) != "", l  # no empty chunk: a held byte sends nothing
    return "".join(key(l) for l in lines), lines[-1], len(lines) - 1


@pytest.mark.parametrize("route", ["/api/generate", "/api/chat", "/v1/chat/completions"])
def test_invalid_utf8_is_replaced_not_dropped(rnd_llm, route):
    whole, final, _ = _answer(rnd_llm, route, False)
    streamed, sfinal, n_chunks = _answer(rnd_llm, route, True)
    # the same seed, the same tokens: the pieces add up to the whole answer
    assert streamed == whole, (streamed, whole)
    assert n_chunks > 1
    assert "\ufffd" in whole, whole  # this seed makes invalid bytes
    # the counts are the tokens', whatever the bytes
    if route == "/v1/chat/completions":
        assert 0 < final["usage"]["completion_tokens"] <= HOT["num_predict"]
        assert sfinal["choices"][0]["finish_reason"] == final["choices"][0]["finish_reason"]
    else:
        assert 0 < final["eval_count"] == sfinal["eval_count"] <= HOT["num_predict"]
        assert final["done_reason"] == sfinal["done_reason"]
    if route == "/api/generate":
        # the text is exactly the generated bytes, decoded as Ollama and
        # llama.cpp do: whole characters kept (also when split across
        # tokens), each maximal invalid subpart one U+FFFD
        tokens, types = _gguf_vocab(rnd_llm.model_file)
        raw = _piece_bytes(tokens, types, final["context"][-final["eval_count"]:])
        assert raw.decode("utf-8", "replace") == whole
        assert any(len(c.encode()) > 1 and c != "\ufffd" for c in whole), \
            "this seed also makes valid multi-byte characters from byte tokens"


def test_stop_string_after_invalid_bytes(rnd_llm):
    """Stop strings match the generated bytes; the text before the stop is
    sanitised as the rest (an unfinished character at the cut: U+FFFD)."""
    whole, final, _ = _answer(rnd_llm, "/api/generate", False)
    tokens, types = _gguf_vocab(rnd_llm.model_file)
    raw = _piece_bytes(tokens, types, final["context"][-final["eval_count"]:])
    # an ASCII word that comes after an invalid byte
    bad = whole.index("\ufffd")
    words = [w for w in whole[bad:].split() if w.isascii() and w.isalpha() and len(w) >= 2]
    assert words, whole
    stop = words[0]
    want = raw[:raw.index(stop.encode())].decode("utf-8", "replace")
    assert "\ufffd" in want and len(want) < len(whole), (stop, want)
    for stream in (False, True):
        text, fin, _ = _answer(rnd_llm, "/api/generate", stream, options=dict(HOT, stop=[stop]))
        assert text == want and fin["done_reason"] == "stop", (stream, text, want)
