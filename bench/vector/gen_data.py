#!/usr/bin/python3
"""gen_data.py - deterministic benchmark data for bench/vector/run.sh.

Writes <out>/<kind>.base (n x dim float32), <kind>.query (q x dim float32)
and <kind>.gt (q x k int32: the exact cosine top-k of each query in base,
best first), all raw little-endian.

kind "random":    i.i.d. N(0, 1) components: no structure at all, the
                  hardest case for any graph index (in 384 dimensions the
                  nearest neighbours are barely nearer than the rest).
kind "clustered": n/100 Gaussian centres, each point a centre plus 0.7 x
                  N(0, 1) noise; queries drawn the same way: neighbourhoods
                  like those of real embeddings.

usage: gen_data.py OUT_DIR KIND N DIM Q [K] [SEED]
"""
import sys

import numpy as np


def main():
    out, kind, n, dim, nq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    k = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else (1 if kind == "random" else 2)
    rng = np.random.default_rng(seed)
    if kind == "random":
        base = rng.standard_normal((n, dim), dtype=np.float32)
        query = rng.standard_normal((nq, dim), dtype=np.float32)
    elif kind == "clustered":
        nc = max(10, n // 100)
        centres = rng.standard_normal((nc, dim), dtype=np.float32)
        base = centres[rng.integers(nc, size=n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
        query = centres[rng.integers(nc, size=nq)] + 0.7 * rng.standard_normal((nq, dim), dtype=np.float32)
    else:
        sys.exit(f"gen_data.py: unknown kind {kind}")
    base = base.astype(np.float32)
    query = query.astype(np.float32)
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    gt = np.empty((nq, k), dtype=np.int32)
    for i in range(0, nq, 256):
        sims = qn[i:i + 256] @ bn.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
        gt[i:i + 256] = np.take_along_axis(top, order, 1)
    base.tofile(f"{out}/{kind}.base")
    query.tofile(f"{out}/{kind}.query")
    gt.tofile(f"{out}/{kind}.gt")


if __name__ == "__main__":
    main()
