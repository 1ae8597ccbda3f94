#!/usr/bin/env python3
"""llm_reference.py - an independent float64 forward pass over a GGUF file.

Used by tests/unit/test_llm_model.c to check the C engine on synthetic
models (architectures and tensor types the shared llama.cpp references do
not cover, e.g. qwen2's biases and NEOX rotary pairs). Pure Python (the
standard library only, no numpy) so that it runs anywhere; meant for tiny
models (a few thousand weights per matrix).

    llm_reference.py [--ggml-rounding] MODEL.gguf TOKEN...

prints the logits of the last token, one per line. With --ggml-rounding
the inputs of every matrix product are rounded as ggml rounds them (to
Q8_0 blocks for Q8_0/Q4_0 weights, to float16 for F16 weights), so that a
float32 engine doing the same agrees to float32 noise.

Supported tensor types: F32, F16, Q8_0, Q4_0. Architectures: llama,
mistral (same graph), qwen2 (q/k/v biases, NEOX rope).
"""

import math
import struct
import sys

F32, F16, Q4_0, Q8_0 = 0, 1, 2, 8


def f16(b, off):
    return struct.unpack_from("<e", b, off)[0]


def round_f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


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
        s = self.b[self.o:self.o + n].decode("utf-8", "replace")
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
            return [self.value(et) for _ in range(n)]
        return self.take(self.SCALAR[t])


def parse_gguf(path):
    data = open(path, "rb").read()
    r = Reader(data)
    if data[:4] != b"GGUF":
        raise SystemExit("not a GGUF file")
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
        tensors[name] = (ne, dequantize(data, base + off, typ, prod(ne)))
    return kv, tensors


def prod(xs):
    p = 1
    for x in xs:
        p *= x
    return p


def dequantize(b, off, typ, n):
    if typ == F32:
        return list(struct.unpack_from("<%df" % n, b, off))
    if typ == F16:
        return list(struct.unpack_from("<%de" % n, b, off))
    out = []
    if typ == Q8_0:  # 32 values: f16 d, 32 int8
        for blk in range(n // 32):
            o = off + blk * 34
            d = f16(b, o)
            out.extend(d * q for q in struct.unpack_from("<32b", b, o + 2))
        return out
    if typ == Q4_0:  # 32 values: f16 d, 16 bytes; low nibbles first half
        for blk in range(n // 32):
            o = off + blk * 18
            d = f16(b, o)
            qs = b[o + 2:o + 18]
            out.extend(d * ((q & 15) - 8) for q in qs)
            out.extend(d * ((q >> 4) - 8) for q in qs)
        return out
    raise SystemExit("tensor type %d is not supported here" % typ)


def round_q8_0(x):
    out = []
    for i in range(0, len(x), 32):
        blk = [float(struct.unpack("<f", struct.pack("<f", v))[0]) for v in x[i:i + 32]]
        amax = max(abs(v) for v in blk)
        d = amax / 127.0
        idv = 1.0 / d if d else 0.0
        dh = round_f16(d)
        # ggml: roundf(x * id) in float32, half away from zero
        qs = []
        for v in blk:
            t = struct.unpack("<f", struct.pack("<f", v * idv))[0]
            qs.append(math.floor(abs(t) + 0.5) * (1 if t >= 0 else -1))
        out.extend(q * dh for q in qs)
    return out


class Mat:
    def __init__(self, ne, vals, typ):
        self.cols, self.rows = ne[0], (ne[1] if len(ne) > 1 else 1)
        self.w = vals
        self.typ = typ

    def apply(self, x, rounding):
        if rounding and self.typ in (Q8_0, Q4_0):
            x = round_q8_0(x)
        elif rounding and self.typ == F16:
            x = [round_f16(v) for v in x]
        c = self.cols
        w = self.w
        return [math.fsum(w[r * c + i] * x[i] for i in range(c)) for r in range(self.rows)]


def main(argv):
    rounding = False
    if argv and argv[0] == "--ggml-rounding":
        rounding = True
        argv = argv[1:]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    path, toks = argv[0], [int(t) for t in argv[1:]]
    kv, T = parse_gguf(path)
    types = {}
    arch = kv["general.architecture"]
    if arch not in ("llama", "mistral", "qwen2"):
        raise SystemExit("architecture %s" % arch)
    g = lambda k, d=None: kv.get("%s.%s" % (arch, k), d)
    E, L = g("embedding_length"), g("block_count")
    H = g("attention.head_count")
    HKV = g("attention.head_count_kv", H)
    hd = E // H
    n_rot = g("rope.dimension_count", hd)
    base = g("rope.freq_base", 10000.0)
    eps = g("attention.layer_norm_rms_epsilon", 1e-5)
    neox = arch == "qwen2"

    # types are needed for the rounding: re-read the tensor infos
    r = Reader(open(path, "rb").read())
    r.o = 8
    n_t = r.take("Q")
    n_kv = r.take("Q")
    for _ in range(n_kv):
        r.string()
        r.value(r.take("I"))
    for _ in range(n_t):
        name = r.string()
        nd = r.take("I")
        [r.take("Q") for _ in range(nd)]
        types[name] = r.take("I")
        r.take("Q")

    def mat(name):
        ne, v = T[name]
        return Mat(ne, v, types[name])

    def vec(name):
        return T[name][1] if name in T else None

    def rmsnorm(x, w):
        s = 1.0 / math.sqrt(math.fsum(v * v for v in x) / len(x) + eps)
        return [v * s * wi for v, wi in zip(x, w)]

    def rope(v, pos, nh):
        v = list(v)
        half = n_rot // 2
        for h in range(nh):
            o = h * hd
            for i in range(half):
                th = pos * base ** (-2.0 * i / n_rot)
                c, s = math.cos(th), math.sin(th)
                a, b = (o + i, o + i + half) if neox else (o + 2 * i, o + 2 * i + 1)
                x0, x1 = v[a], v[b]
                v[a], v[b] = x0 * c - x1 * s, x0 * s + x1 * c
        return v

    emb = mat("token_embd.weight")
    out = mat("output.weight") if "output.weight" in T else emb
    kc = [[] for _ in range(L)]
    vc = [[] for _ in range(L)]
    x = None
    for pos, t in enumerate(toks):
        x = emb.w[t * E:(t + 1) * E]
        for il in range(L):
            p = "blk.%d." % il
            h = rmsnorm(x, vec(p + "attn_norm.weight"))
            q = mat(p + "attn_q.weight").apply(h, rounding)
            k = mat(p + "attn_k.weight").apply(h, rounding)
            v = mat(p + "attn_v.weight").apply(h, rounding)
            for name, arr in (("attn_q.bias", q), ("attn_k.bias", k), ("attn_v.bias", v)):
                b = vec(p + name)
                if b:
                    for i in range(len(arr)):
                        arr[i] += b[i]
            q, k = rope(q, pos, H), rope(k, pos, HKV)
            kc[il].append(k)
            vc[il].append(v)
            att = []
            for hh in range(H):
                kvh = hh // (H // HKV)
                qh = q[hh * hd:(hh + 1) * hd]
                sc = [math.fsum(a * b for a, b in zip(qh, kk[kvh * hd:(kvh + 1) * hd]))
                      / math.sqrt(hd) for kk in kc[il]]
                m = max(sc)
                e = [math.exp(s - m) for s in sc]
                z = math.fsum(e)
                for d in range(hd):
                    att.append(math.fsum(e[j] / z * vc[il][j][kvh * hd + d]
                                         for j in range(len(e))))
            o = mat(p + "attn_output.weight").apply(att, rounding)
            x = [a + b for a, b in zip(x, o)]
            h = rmsnorm(x, vec(p + "ffn_norm.weight"))
            gt = mat(p + "ffn_gate.weight").apply(h, rounding)
            up = mat(p + "ffn_up.weight").apply(h, rounding)
            act = [a / (1.0 + math.exp(-a)) * b for a, b in zip(gt, up)]
            dn = mat(p + "ffn_down.weight").apply(act, rounding)
            x = [a + b for a, b in zip(x, dn)]
    h = rmsnorm(x, vec("output_norm.weight"))
    for v in out.apply(h, rounding):
        print(repr(v))


if __name__ == "__main__":
    main(sys.argv[1:])
