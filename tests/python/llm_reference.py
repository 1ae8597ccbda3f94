#!/usr/bin/env python3
"""llm_reference.py - an independent float64 forward pass over a GGUF file.

Used by tests/unit/test_llm_model.c to check the C engine on synthetic
models (every tensor type the engine runs, GQA shapes, architectures and
features the shared llama.cpp references do not cover, e.g. qwen2's biases
and NEOX rotary pairs). Needs numpy (Debian: python3-numpy); without it it
prints why and exits with status 77, which the C tests turn into a skip.

    llm_reference.py [--ggml-rounding] [--all-positions] MODEL.gguf TOKEN...
        prints the logits of the last token, one per line (with
        --all-positions: those of every token, position by position).
    llm_reference.py --check-dequant MODEL.gguf EXPECTED.json
        dequantises every tensor as ggml does (float32, ggml's operation
        order) and compares it with the dequant_f32_sha256, dequant_sum
        and dequant_l2 recorded in a shared/models/reference/*.expected.json;
        exit status 1 on any difference.

The forward pass dequantises the weights exactly (float64; Q4_K as
d*sc*q - dmin*m without float32 rounding) and computes in float64. With
--ggml-rounding the inputs of every matrix product are first rounded as
ggml's CPU backend (and the engine) round them to the weight's "dot
type": Q8_0 blocks for Q8_0/Q4_0 weights (d = f16(amax/127), q =
round-half-even(x*127/amax), as ggml's x86 path), Q8_K blocks for
Q4_K/Q6_K weights (iscale = -127/max, q = min(127, round(x*iscale)),
d = 1/iscale), float16 for F16 and bfloat16 (round to nearest even) for
BF16 weights, nothing for F32; the rounding itself is done in float32 from
the float32 value of the activation, as the engine sees it. A float32
engine doing the same agrees with it to float32 noise, except where an
activation lies within float32 noise of a rounding boundary.

Tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K.
Architectures: llama, mistral (same graph), qwen2 (q/k/v biases, NEOX rope).
"""

import hashlib
import json
import struct
import sys

try:
    import numpy as np
except ImportError:
    sys.stderr.write("llm_reference.py: numpy is not installed "
                     "(Debian: apt-get install python3-numpy); skipping\n")
    sys.exit(77)

F32, F16, Q4_0, Q8_0, Q4_K, Q6_K, BF16 = 0, 1, 2, 8, 12, 14, 30
TYPE_NAMES = {F32: "F32", F16: "F16", Q4_0: "Q4_0", Q8_0: "Q8_0", Q4_K: "Q4_K",
              Q6_K: "Q6_K", BF16: "BF16"}
# elements per block, bytes per block
BLOCK = {F32: (1, 4), F16: (1, 2), BF16: (1, 2), Q8_0: (32, 34), Q4_0: (32, 18),
         Q4_K: (256, 144), Q6_K: (256, 210)}

f32 = np.float32


# ---- GGUF ----

class Reader:
    def __init__(self, data):
        self.b = data
        self.o = 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = bytes(self.b[self.o:self.o + n]).decode("utf-8", "replace")
        self.o += n
        return s

    SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
              10: "Q", 11: "q", 12: "d"}

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("I")
            n = self.take("Q")
            if et in self.SCALAR:  # numeric arrays in one go
                fmt = "<%d%s" % (n, self.SCALAR[et])
                v = list(struct.unpack_from(fmt, self.b, self.o))
                self.o += struct.calcsize(fmt)
                return v
            return [self.value(et) for _ in range(n)]
        return self.take(self.SCALAR[t])


class Tensor:
    def __init__(self, name, ne, typ, off, data):
        self.name, self.ne, self.typ, self.off, self.data = name, ne, typ, off, data

    @property
    def n(self):
        p = 1
        for x in self.ne:
            p *= x
        return p

    def nbytes(self):
        blk, bb = BLOCK[self.typ]
        return self.n // blk * bb

    def values(self, exact=True):
        """float64 values (exact=True) or float32 as ggml's to_float."""
        return dequantize(self.data, self.off, self.typ, self.n, exact)


def parse_gguf(path):
    data = open(path, "rb").read()
    if data[:4] != b"GGUF":
        raise SystemExit("%s: not a GGUF file" % path)
    r = Reader(data)
    r.o = 4
    version = r.take("I")
    if version not in (2, 3):
        raise SystemExit("GGUF version %d" % version)
    n_t = r.take("Q")
    n_kv = r.take("Q")
    kv = {}
    for _ in range(n_kv):
        k = r.string()
        kv[k] = r.value(r.take("I"))
    infos = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("I")
        ne = [r.take("Q") for _ in range(nd)]
        typ = r.take("I")
        off = r.take("Q")
        infos.append((name, ne, typ, off))
    align = kv.get("general.alignment", 32)
    base = (r.o + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        if typ not in BLOCK:
            raise SystemExit("tensor %s: type %d is not supported here" % (name, typ))
        tensors[name] = Tensor(name, ne, typ, base + off, data)
    return kv, tensors


# ---- dequantisation (ggml's block layouts) ----

def _blocks(b, off, n, fields, blk):
    return np.frombuffer(b, dtype=np.dtype(fields), count=n // blk, offset=off)


def dequantize(b, off, typ, n, exact=True):
    """float64 exact values (exact) or ggml's float32 to_float, bit for bit."""
    ft = np.float64 if exact else f32
    if typ == F32:
        return np.frombuffer(b, "<f4", n, off).astype(ft)
    if typ == F16:
        return np.frombuffer(b, "<f2", n, off).astype(ft)
    if typ == BF16:  # the top 16 bits of a float32
        u = np.frombuffer(b, "<u2", n, off).astype(np.uint32) << 16
        return u.view(f32).astype(ft)
    if typ == Q8_0:  # f16 d, 32 x int8: d*q
        x = _blocks(b, off, n, [("d", "<f2"), ("qs", "i1", 32)], 32)
        return (x["qs"].astype(ft) * x["d"].astype(ft)[:, None]).reshape(-1)
    if typ == Q4_0:  # f16 d, 16 bytes: low nibbles are values 0..15, high 16..31
        x = _blocks(b, off, n, [("d", "<f2"), ("qs", "u1", 16)], 32)
        qs = x["qs"].astype(np.int16)
        q = np.concatenate([(qs & 15) - 8, (qs >> 4) - 8], axis=1)
        return (q.astype(ft) * x["d"].astype(ft)[:, None]).reshape(-1)
    if typ == Q4_K:
        # f16 d, f16 dmin, 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32,
        # 128 bytes of nibbles: 4 chunks of 32 bytes, each the low nibbles of
        # sub-block 2c then the high nibbles of sub-block 2c+1.
        x = _blocks(b, off, n, [("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12),
                                ("qs", "u1", 128)], 256)
        s = x["scales"].astype(np.int32)
        sc = np.empty((len(x), 8), np.int32)
        mn = np.empty((len(x), 8), np.int32)
        sc[:, :4] = s[:, 0:4] & 63
        mn[:, :4] = s[:, 4:8] & 63
        sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
        mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
        qs = x["qs"].reshape(-1, 4, 32).astype(np.int32)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(-1, 8, 32)  # [blk][sub][32]
        d = x["d"].astype(ft)[:, None]
        dm = x["dmin"].astype(ft)[:, None]
        d1 = (d * sc.astype(ft))[:, :, None]   # float32: d*sc exact
        m1 = (dm * mn.astype(ft))[:, :, None]  # float32: dmin*m exact
        return (d1 * q.astype(ft) - m1).reshape(-1)
    if typ == Q6_K:
        # 128 bytes ql, 64 bytes qh, 16 int8 scales, f16 d; two halves of 128
        # values; in a half, l = 0..31: value l from the low nibble of ql[l],
        # l+32 from the low nibble of ql[l+32], l+64 from the high nibble of
        # ql[l], l+96 from the high nibble of ql[l+32]; the two top bits from
        # qh[l] bits 0-1, 2-3, 4-5, 6-7; scale index (l/16) + 0, 2, 4, 6.
        x = _blocks(b, off, n, [("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16),
                                ("d", "<f2")], 256)
        ql = x["ql"].reshape(-1, 2, 64).astype(np.int32)
        qh = x["qh"].reshape(-1, 2, 32).astype(np.int32)
        lo, hi = ql[:, :, :32], ql[:, :, 32:]
        q = np.stack([(lo & 15) | ((qh & 3) << 4),
                      (hi & 15) | (((qh >> 2) & 3) << 4),
                      (lo >> 4) | (((qh >> 4) & 3) << 4),
                      (hi >> 4) | (((qh >> 6) & 3) << 4)], axis=2) - 32  # [blk][half][4][32]
        sc = x["scales"].reshape(-1, 2, 4, 2).astype(ft)  # [blk][half][k][l/16]
        ds = x["d"].astype(ft)[:, None, None, None] * sc  # d*sc, exact in float32
        ds = np.repeat(ds, 16, axis=3)  # [blk][half][k][32]
        return (ds * q.astype(ft)).reshape(-1)
    raise SystemExit("tensor type %d is not supported here" % typ)


# ---- activation rounding (ggml's dot types) ----

def round_q8_0(x):
    x = x.astype(f32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = (amax / f32(127)).astype(np.float16).astype(np.float64)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, f32(127) / amax, f32(0)).astype(f32)
    q = np.rint(x * idv[:, None])  # float32 product, round half to even
    return (q.astype(np.float64) * d[:, None]).reshape(-1)


def round_q8_k(x):
    x = x.astype(f32).reshape(-1, 256)
    i = np.abs(x).argmax(axis=1)  # the first of largest magnitude
    mx = x[np.arange(len(x)), i]
    nz = mx != 0
    with np.errstate(divide="ignore"):
        iscale = np.where(nz, f32(-127) / mx, f32(0)).astype(f32)
        d = np.where(nz, f32(1) / iscale, f32(0)).astype(f32)
    q = np.minimum(np.rint(x * iscale[:, None]), 127)
    return (q.astype(np.float64) * d.astype(np.float64)[:, None]).reshape(-1)


def round_f16(x):
    return x.astype(f32).astype(np.float16).astype(np.float64)


def round_bf16(x):
    u = x.astype(f32).view(np.uint32)
    u = (u + np.uint32(0x7fff) + ((u >> 16) & 1)) >> 16 << 16
    return u.astype(np.uint32).view(f32).astype(np.float64)


ROUNDING = {F32: None, F16: round_f16, BF16: round_bf16, Q8_0: round_q8_0,
            Q4_0: round_q8_0, Q4_K: round_q8_k, Q6_K: round_q8_k}


class Mat:
    def __init__(self, t, rounding):
        self.rows = t.ne[1] if len(t.ne) > 1 else 1
        self.cols = t.ne[0]
        self.w = t.values().reshape(self.rows, self.cols)
        self.round = ROUNDING[t.typ] if rounding else None

    def apply(self, x):  # x: [T][cols] -> [T][rows]
        if self.round:
            x = np.stack([self.round(r) for r in x])
        return x @ self.w.T


# ---- the forward pass ----

def forward(path, toks, rounding):
    kv, T = parse_gguf(path)
    arch = kv["general.architecture"]
    if arch not in ("llama", "mistral", "qwen2"):
        raise SystemExit("architecture %s" % arch)

    def g(k, d=None):
        return kv.get("%s.%s" % (arch, k), d)

    E, L = g("embedding_length"), g("block_count")
    H = g("attention.head_count")
    HKV = g("attention.head_count_kv", H)
    hd = E // H
    n_rot = g("rope.dimension_count", hd)
    base = g("rope.freq_base", 10000.0)
    eps = g("attention.layer_norm_rms_epsilon", 1e-5)
    neox = arch == "qwen2"
    n = len(toks)

    def mat(name):
        return Mat(T[name], rounding)

    def vec(name):
        return T[name].values() if name in T else None

    def rmsnorm(x, w):
        return x / np.sqrt((x * x).mean(axis=1, keepdims=True) + eps) * w

    pos = np.arange(n, dtype=np.float64)[:, None]
    half = n_rot // 2
    theta = pos * base ** (-2.0 * np.arange(half) / n_rot)  # [n][half]
    cos, sin = np.cos(theta), np.sin(theta)

    def rope(v, nh):
        v = v.reshape(n, nh, hd).copy()
        if neox:
            a, b = np.arange(half), np.arange(half) + half
        else:
            a, b = 2 * np.arange(half), 2 * np.arange(half) + 1
        x0, x1 = v[:, :, a], v[:, :, b]
        c, s = cos[:, None, :], sin[:, None, :]
        v[:, :, a], v[:, :, b] = x0 * c - x1 * s, x0 * s + x1 * c
        return v

    emb = T["token_embd.weight"].values().reshape(-1, E)
    out = mat("output.weight" if "output.weight" in T else "token_embd.weight")
    x = emb[np.array(toks)]
    causal = np.tril(np.ones((n, n), bool))
    for il in range(L):
        p = "blk.%d." % il
        h = rmsnorm(x, vec(p + "attn_norm.weight"))
        q = mat(p + "attn_q.weight").apply(h)
        k = mat(p + "attn_k.weight").apply(h)
        v = mat(p + "attn_v.weight").apply(h)
        for name, arr in (("attn_q.bias", q), ("attn_k.bias", k), ("attn_v.bias", v)):
            bias = vec(p + name)
            if bias is not None:
                arr += bias
        q, k = rope(q, H), rope(k, HKV)
        v = v.reshape(n, HKV, hd)
        grp = H // HKV
        k = np.repeat(k, grp, axis=1)  # query head j uses kv head j / grp
        v = np.repeat(v, grp, axis=1)
        sc = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        sc = np.where(causal[None], sc, -np.inf)
        sc = np.exp(sc - sc.max(axis=2, keepdims=True))
        sc /= sc.sum(axis=2, keepdims=True)
        att = np.einsum("hts,shd->thd", sc, v).reshape(n, H * hd)
        x = x + mat(p + "attn_output.weight").apply(att)
        h = rmsnorm(x, vec(p + "ffn_norm.weight"))
        gt = mat(p + "ffn_gate.weight").apply(h)
        up = mat(p + "ffn_up.weight").apply(h)
        act = gt / (1.0 + np.exp(-gt)) * up
        x = x + mat(p + "ffn_down.weight").apply(act)
    return out.apply(rmsnorm(x, vec("output_norm.weight")))


# ---- the dequantisation check against llama.cpp's records ----

def check_dequant(path, expected):
    _, T = parse_gguf(path)
    want = json.load(open(expected))["model"]["tensors"]
    bad = 0
    for w in want:
        t = T.get(w["name"])
        if t is None:
            print("%s: missing" % w["name"])
            bad += 1
            continue
        v = t.values(exact=False)
        sha = hashlib.sha256(v.astype("<f4").tobytes()).hexdigest()
        s = float(v.astype(np.float64).sum())
        l2 = float(np.sqrt((v.astype(np.float64) ** 2).sum()))
        ok = (sha == w["dequant_f32_sha256"] and TYPE_NAMES[t.typ] == w["type"]
              and abs(s - w["dequant_sum"]) <= 1e-9 * max(1.0, abs(w["dequant_sum"]))
              and abs(l2 - w["dequant_l2"]) <= 1e-9 * w["dequant_l2"]
              and list(v[:8].astype(np.float64)) == w["dequant_first8"])
        print("%-28s %-5s n %-8d sum %.9g (want %.9g) l2 %.9g (want %.9g) sha256 %s"
              % (w["name"], TYPE_NAMES[t.typ], t.n, s, w["dequant_sum"], l2,
                 w["dequant_l2"], "same" if sha == w["dequant_f32_sha256"] else "DIFFERENT"))
        bad += not ok
    print("%d of %d tensors differ" % (bad, len(want)))
    return 1 if bad else 0


def main(argv):
    if argv[:1] == ["--check-dequant"]:
        if len(argv) != 3:
            raise SystemExit(__doc__)
        return check_dequant(argv[1], argv[2])
    rounding = all_pos = False
    while argv and argv[0].startswith("--"):
        if argv[0] == "--ggml-rounding":
            rounding = True
        elif argv[0] == "--all-positions":
            all_pos = True
        else:
            raise SystemExit("unknown option %s\n%s" % (argv[0], __doc__))
        argv = argv[1:]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    logits = forward(argv[0], [int(t) for t in argv[1:]], rounding)
    rows = logits if all_pos else logits[-1:]
    sys.stdout.write("".join("%r\n" % float(v) for v in rows.reshape(-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
