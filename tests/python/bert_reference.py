#!/usr/bin/env python3
"""bert_reference.py - an independent float64 forward pass of BERT-family
encoders ("bert", "nomic-bert") over a GGUF file, and a writer of small
random ones.

Used by tests/unit/test_llm_bert.c to check the C encoder (src/llm/bert.c)
and by tests/integration/test_embed.py for a model to serve. Needs numpy
(Debian: python3-numpy); without it it prints why and exits with status 77,
which the C tests turn into a skip. The GGUF reader, the dequantisation
and ggml's activation rounding come from llm_reference.py next to it.

    bert_reference.py [--ggml-rounding] MODEL.gguf TOKEN...
        prints the pooled, L2-normalised embedding (n_embd lines), then the
        final hidden state of every token (n_tokens * n_embd lines).
    bert_reference.py synth [--arch bert|nomic-bert] [--type f32|f16|q8_0]
                            [--pooling 1|2] [--fused] [--seed N] -o OUT.gguf
        writes a 2-layer model (n_embd 64, 4 heads, n_ff 96, context 64)
        with random weights and a small lower-case WordPiece vocabulary
        (letters, digits, a few words and punctuation) in llama.cpp's
        phantom-space form.

The architecture, written from the BERT and nomic-bert descriptions (not
from any implementation's code): for tokens at positions 0..T-1,

    x = LN(tok[t] + types[0] + pos[t])            nomic-bert: no pos (rotary)
    per layer: q, k, v = x Wq + bq, ...            nomic: NEOX rotary on q, k
               a = softmax(q k^T / sqrt(hd)) v     per head, bidirectional
               x = LN(x + a Wo + bo)
               f = gelu(x Wup + bup) Wdown + bdown         bert (exact erf GELU)
               f = (silu(x Wgate) * x Wup) Wdown           nomic-bert (SwiGLU)
               x = LN(x + f)
    e = pool(x) / |pool(x)|    pooling_type 1 mean, 2 first token, 3 last

Everything in float64 on the exactly dequantised weights. With
--ggml-rounding the input of every weight product is first rounded to the
weight's dot type (f16 for F16 weights, Q8_0 blocks for Q8_0/Q4_0, Q8_K
for K-quants) as ggml and the engine do; the attention products are not
rounded (float32 in the engine).
"""

import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import numpy as np
except ImportError:
    sys.stderr.write("bert_reference.py: numpy is not installed "
                     "(Debian: apt-get install python3-numpy); skipping\n")
    sys.exit(77)

import llm_reference as ref  # noqa: E402  (the GGUF reader and ggml's rounding)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def layernorm(x, w, b, eps):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def forward(path, toks, rounding):
    kv, T = ref.parse_gguf(path)
    arch = kv["general.architecture"]
    if arch not in ("bert", "nomic-bert"):
        raise SystemExit("architecture %s is not an encoder" % arch)

    def g(k, d=None):
        return kv.get("%s.%s" % (arch, k), d)

    E, L, H = g("embedding_length"), g("block_count"), g("attention.head_count")
    hd = E // H
    eps = g("attention.layer_norm_epsilon", 1e-12)
    pooling = g("pooling_type", 1)
    rope = arch == "nomic-bert"
    n = len(toks)

    def mat(name):
        return ref.Mat(T[name], rounding)

    def vec(name):
        return T[name].values() if name in T else None

    def lin(x, name):  # x W^T (+ bias if the file has one)
        y = mat(name + ".weight").apply(x)
        b = vec(name + ".bias")
        return y + b if b is not None else y

    x = T["token_embd.weight"].values().reshape(-1, E)[np.array(toks)]
    if "token_types.weight" in T:
        x = x + T["token_types.weight"].values().reshape(-1, E)[0]
    if not rope:
        x = x + T["position_embd.weight"].values().reshape(-1, E)[:n]
    x = layernorm(x, vec("token_embd_norm.weight"), vec("token_embd_norm.bias"), eps)

    if rope:
        n_rot = g("rope.dimension_count", hd)
        base = g("rope.freq_base", 10000.0)
        half = n_rot // 2
        theta = np.arange(n, dtype=np.float64)[:, None] * base ** (-2.0 * np.arange(half) / n_rot)
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]

    def rot(v):  # [n][H][hd], NEOX pairs (i, i + half)
        v = v.copy()
        a, b = v[:, :, :half].copy(), v[:, :, half:2 * half].copy()
        v[:, :, :half] = a * cos - b * sin
        v[:, :, half:2 * half] = a * sin + b * cos
        return v

    for il in range(L):
        p = "blk.%d." % il
        if p + "attn_qkv.weight" in T:
            qkv = lin(x, p + "attn_qkv")
            q, k, v = qkv[:, :E], qkv[:, E:2 * E], qkv[:, 2 * E:]
        else:
            q, k, v = lin(x, p + "attn_q"), lin(x, p + "attn_k"), lin(x, p + "attn_v")
        q, k, v = (t.reshape(n, H, hd) for t in (q, k, v))
        if rope:
            q, k = rot(q), rot(k)
        sc = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        sc = np.exp(sc - sc.max(axis=2, keepdims=True))
        sc /= sc.sum(axis=2, keepdims=True)
        a = np.einsum("hts,shd->thd", sc, v).reshape(n, E)
        x = layernorm(x + lin(a, p + "attn_output"), vec(p + "attn_output_norm.weight"),
                      vec(p + "attn_output_norm.bias"), eps)
        up = lin(x, p + "ffn_up")
        if rope:
            gt = lin(x, p + "ffn_gate")
            act = gt / (1.0 + np.exp(-gt)) * up
        else:
            act = 0.5 * up * (1.0 + _erf(up / math.sqrt(2.0)))
        x = layernorm(x + lin(act, p + "ffn_down"), vec(p + "layer_output_norm.weight"),
                      vec(p + "layer_output_norm.bias"), eps)

    if pooling == 2:
        e = x[0]
    elif pooling == 3:
        e = x[-1]
    else:
        e = x.mean(axis=0)
    return e / np.linalg.norm(e), x


# ---- a small GGUF writer (F32, F16, Q8_0) ----

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STR, GGUF_ARR = 4, 5, 6, 7, 8, 9


def _s(v):
    b = v.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _kv(key, typ, val):
    out = _s(key) + struct.pack("<I", typ)
    if typ == GGUF_U32:
        return out + struct.pack("<I", val)
    if typ == GGUF_F32:
        return out + struct.pack("<f", val)
    if typ == GGUF_BOOL:
        return out + struct.pack("<?", val)
    if typ == GGUF_STR:
        return out + _s(val)
    et, items = val  # arrays: (element type, list)
    out += struct.pack("<IQ", et, len(items))
    if et == GGUF_STR:
        return out + b"".join(_s(i) for i in items)
    return out + struct.pack("<%d%s" % (len(items), {GGUF_I32: "i", GGUF_F32: "f"}[et]), *items)


def quantize(x, typ):
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if typ == ref.F32:
        return x.astype("<f4").tobytes()
    if typ == ref.F16:
        return x.astype("<f2").tobytes()
    if typ == ref.Q8_0:
        blk = x.reshape(-1, 32)
        amax = np.abs(blk).max(axis=1)
        d = (amax / 127.0).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(d[:, None] > 0, np.round(blk / d[:, None]), 0)
        out = np.zeros(len(blk), dtype=[("d", "<f2"), ("qs", "i1", 32)])
        out["d"] = d.astype(np.float16)
        out["qs"] = np.clip(q, -127, 127).astype(np.int8)
        return out.tobytes()
    raise SystemExit("type %d: the writer does F32, F16, Q8_0" % typ)


def write_gguf(path, kvs, tensors):
    """kvs: [(key, type, value)]; tensors: [(name, ne, type, bytes)]."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(_kv(*k) for k in kvs)
    off, infos, blobs = 0, b"", []
    for name, ne, typ, data in tensors:
        infos += _s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
        infos += struct.pack("<IQ", typ, off)
        pad = (-len(data)) % 32
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    body = head + infos
    body += b"\0" * ((-len(body)) % 32)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(body + b"".join(blobs))
    os.replace(tmp, path)


def synth_vocab():
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    words = ["hello", "world", "the", "cat", "sat", "on", "mat", "embed", "text", "dog",
             "quick", "brown", "fox"]
    toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += ["\u2581" + c for c in letters] + list(letters)
    toks += ["\u2581" + w for w in words] + ["ing", "ed", "er"]
    toks += ["\u2581" + c for c in ".,!?'-:;()"]
    types = [3, 2, 3, 3, 3] + [1] * (len(toks) - 5)
    return toks, types


def synth(path, arch="bert", typ=ref.F32, pooling=1, fused=False, seed=1):
    rng = np.random.default_rng(seed)
    E, H, F, L, CTX = 64, 4, 96, 2, 64
    toks, types = synth_vocab()
    V = len(toks)
    a = arch
    kvs = [("general.architecture", GGUF_STR, a), ("general.name", GGUF_STR, "synthetic-" + a),
           (a + ".context_length", GGUF_U32, CTX), (a + ".embedding_length", GGUF_U32, E),
           (a + ".feed_forward_length", GGUF_U32, F), (a + ".block_count", GGUF_U32, L),
           (a + ".attention.head_count", GGUF_U32, H),
           (a + ".attention.layer_norm_epsilon", GGUF_F32, 1e-12),
           (a + ".attention.causal", GGUF_BOOL, False), (a + ".pooling_type", GGUF_U32, pooling),
           ("tokenizer.ggml.model", GGUF_STR, "bert"),
           ("tokenizer.ggml.tokens", GGUF_ARR, (GGUF_STR, toks)),
           ("tokenizer.ggml.token_type", GGUF_ARR, (GGUF_I32, types)),
           ("tokenizer.ggml.token_type_count", GGUF_U32, 2),
           ("tokenizer.ggml.unknown_token_id", GGUF_U32, 1),
           ("tokenizer.ggml.cls_token_id", GGUF_U32, 2),
           ("tokenizer.ggml.seperator_token_id", GGUF_U32, 3),
           ("tokenizer.ggml.padding_token_id", GGUF_U32, 0)]
    if arch == "nomic-bert":
        kvs.append((a + ".rope.freq_base", GGUF_F32, 1000.0))
    tensors = []

    def add(name, shape, scale, t=ref.F32, lo=None):  # shape in ggml order [cols, rows]
        n = int(np.prod(shape))
        v = rng.uniform(-scale, scale, n) if lo is None else rng.uniform(lo, scale, n)
        tensors.append((name, shape, t, quantize(v, t)))

    add("token_embd.weight", [E, V], 1.0, typ)
    add("token_types.weight", [E, 2], 0.5)
    if arch == "bert":
        add("position_embd.weight", [E, CTX], 0.5)
    add("token_embd_norm.weight", [E], 1.2, lo=0.8)
    add("token_embd_norm.bias", [E], 0.1)
    s = math.sqrt(3.0 / E)  # products of unit size
    for il in range(L):
        p = "blk.%d." % il
        if fused or arch == "nomic-bert":
            add(p + "attn_qkv.weight", [E, 3 * E], s, typ)
            if arch == "bert":
                add(p + "attn_qkv.bias", [3 * E], 0.1)
        else:
            for w in ("attn_q", "attn_k", "attn_v"):
                add(p + w + ".weight", [E, E], s, typ)
                add(p + w + ".bias", [E], 0.1)
        add(p + "attn_output.weight", [E, E], s, typ)
        if arch == "bert":
            add(p + "attn_output.bias", [E], 0.1)
        add(p + "attn_output_norm.weight", [E], 1.2, lo=0.8)
        add(p + "attn_output_norm.bias", [E], 0.1)
        add(p + "ffn_up.weight", [E, F], s, typ)
        if arch == "nomic-bert":
            add(p + "ffn_gate.weight", [E, F], s, typ)
        else:
            add(p + "ffn_up.bias", [F], 0.1)
        add(p + "ffn_down.weight", [F, E], math.sqrt(3.0 / F), typ)
        if arch == "bert":
            add(p + "ffn_down.bias", [E], 0.1)
        add(p + "layer_output_norm.weight", [E], 1.2, lo=0.8)
        add(p + "layer_output_norm.bias", [E], 0.1)
    write_gguf(path, kvs, tensors)


def main(argv):
    if argv[:1] == ["synth"]:
        opts = {"--arch": "bert", "--type": "f32", "--pooling": "1", "--seed": "1", "-o": None}
        fused = False
        i = 1
        while i < len(argv):
            if argv[i] == "--fused":
                fused = True
                i += 1
            elif argv[i] in opts and i + 1 < len(argv):
                opts[argv[i]] = argv[i + 1]
                i += 2
            else:
                raise SystemExit("unknown option %s\n%s" % (argv[i], __doc__))
        if not opts["-o"]:
            raise SystemExit(__doc__)
        typ = {"f32": ref.F32, "f16": ref.F16, "q8_0": ref.Q8_0}[opts["--type"].lower()]
        synth(opts["-o"], opts["--arch"], typ, int(opts["--pooling"]), fused, int(opts["--seed"]))
        return 0
    rounding = False
    while argv and argv[0].startswith("--"):
        if argv[0] == "--ggml-rounding":
            rounding = True
        else:
            raise SystemExit("unknown option %s\n%s" % (argv[0], __doc__))
        argv = argv[1:]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    e, hidden = forward(argv[0], [int(t) for t in argv[1:]], rounding)
    sys.stdout.write("".join("%r\n" % float(v) for v in e))
    sys.stdout.write("".join("%r\n" % float(v) for v in hidden.reshape(-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
