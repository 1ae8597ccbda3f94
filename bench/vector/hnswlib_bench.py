#!/usr/bin/python3
"""hnswlib_bench.py - the hnswlib side of bench/vector/run.sh, and its table.

  hnswlib_bench.py run --dim D --base F --query F --gt F [--k 10] [--m 16]
                   [--efc 200] [--ef 50,100] [--threads T] [--min-secs 1]
      Builds an hnswlib index (space "cosine", one insert thread, like our
      single-writer engine) from the same raw float32 files as bench_hnsw,
      times knn_query over all queries with T threads at each ef, and prints
      one JSON object shaped like bench_hnsw's.

  hnswlib_bench.py table RESULTS.jsonl
      Prints the side-by-side table of every JSON line in the file, each of
      our runs against the hnswlib run on the same data.

Needs numpy and hnswlib (Debian: python3-numpy python3-hnswlib; run with
/usr/bin/python3).
"""
import argparse
import json
import os
import sys
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(a):
    import hnswlib
    import numpy as np

    base = np.fromfile(a.base, dtype=np.float32).reshape(-1, a.dim)
    query = np.fromfile(a.query, dtype=np.float32).reshape(-1, a.dim)
    gt = np.fromfile(a.gt, dtype=np.int32).reshape(-1, a.k)
    n = len(base)
    r0 = rss_bytes()
    idx = hnswlib.Index(space="cosine", dim=a.dim)
    idx.init_index(max_elements=n, M=a.m, ef_construction=a.efc, random_seed=1)
    c0, t0 = time.process_time(), time.perf_counter()
    idx.add_items(base, np.arange(n), num_threads=1)
    build = time.perf_counter() - t0
    build_cpu = time.process_time() - c0
    r1 = rss_bytes()
    out = {"engine": "hnswlib", "quant": "f32", "kernels": "hnswlib " + getattr(hnswlib, "__version__", "?"),
           "n": n, "dim": a.dim, "m": a.m, "efc": a.efc, "threads": a.threads, "build_s": round(build, 3),
           "inserts_per_s": round(n / build, 1), "inserts_per_cpu_s": round(n / build_cpu, 1),
           "mem_bytes_per_vec": None,
           "rss_bytes_per_vec": round((r1 - r0) / n, 1), "results": []}
    gts = [set(row) for row in gt.tolist()]
    for ef in [int(x) for x in a.ef.split(",")]:
        idx.set_ef(ef)
        t0 = time.perf_counter()
        labels, _ = idx.knn_query(query, k=a.k, num_threads=a.threads)
        once = time.perf_counter() - t0
        hit = sum(len(gts[i] & set(labels[i].tolist())) for i in range(len(query)))
        reps = min(1000, int(a.min_secs / once) + 1) if once > 0 else 1
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            idx.knn_query(query, k=a.k, num_threads=a.threads)
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        out["results"].append({"ef": ef, "qps": round(len(query) * reps / dt, 1),
                               "qps_cpu": round(len(query) * reps / cpu, 1),
                               "recall": round(hit / (len(query) * a.k), 4)})
    print(json.dumps(out))


def ratio(a, b):
    return f"{a / b:5.2f}" if a and b else "    -"


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip().startswith("{")]
    ref = {r.get("data", "?"): r for r in rows if r["engine"] == "hnswlib"}
    print("Build (one insert thread):")
    print(f"  {'data':<10} {'engine':<8} {'quant':<5} {'inserts/s':>9} {'x':>5} {'ins/cpu-s':>9} "
          f"{'x':>5} {'B/vec':>6} {'RSS/vec':>7}")
    for r in rows:
        h = ref.get(r.get("data", "?"), {})
        mem = f"{r['mem_bytes_per_vec']:.0f}" if r.get("mem_bytes_per_vec") else "-"
        print(f"  {r.get('data', '?'):<10} {r['engine']:<8} {r['quant']:<5} {r['inserts_per_s']:>9.0f} "
              f"{ratio(r['inserts_per_s'], h.get('inserts_per_s'))} {r['inserts_per_cpu_s']:>9.0f} "
              f"{ratio(r['inserts_per_cpu_s'], h.get('inserts_per_cpu_s'))} {mem:>6} "
              f"{r['rss_bytes_per_vec']:>7.0f}")
    print()
    threads = rows[0]["threads"] if rows else 0
    print(f"Queries (k=10, {threads} query threads; recall@10 against exact float search):")
    print(f"  {'data':<10} {'engine':<8} {'quant':<5} {'ef':>4} {'q/s':>8} {'x':>5} {'q/cpu-s':>8} "
          f"{'x':>5} {'recall':>6}")
    efs = sorted({x["ef"] for r in rows for x in r["results"]})
    for d in dict.fromkeys(r.get("data", "?") for r in rows):
        h = {x["ef"]: x for x in ref.get(d, {}).get("results", [])}
        for ef in efs:
            for r in rows:
                if r.get("data", "?") != d:
                    continue
                x = {y["ef"]: y for y in r["results"]}.get(ef)
                if not x:
                    continue
                hx = h.get(ef, {})
                print(f"  {d:<10} {r['engine']:<8} {r['quant']:<5} {ef:>4} {x['qps']:>8.0f} "
                      f"{ratio(x['qps'], hx.get('qps'))} {x['qps_cpu']:>8.0f} "
                      f"{ratio(x['qps_cpu'], hx.get('qps_cpu'))} {x['recall']:>6.4f}")
    extra = [r for r in rows if "exact_recall" in r]
    if extra:
        print()
        print("Exact scan of our index vs exact float search (the quantisation ceiling):")
        for r in extra:
            print(f"  {r.get('data', '?'):<10} {r['quant']:<5} recall@10 {r['exact_recall']:.4f}")
    dels = [r for r in rows if "recall_after_delete_vs_exact" in r]
    if dels:
        print()
        print("After deleting a share of the base (recall against the exact scan of what is left):")
        for r in dels:
            print(f"  {r.get('data', '?'):<10} {r['quant']:<5} deleted {r['deleted']} "
                  f"({r['deletes_per_s']:.0f}/s), graph check {r['check_after_delete']}, "
                  f"recall@10 at ef {r['ef_after_delete']}: {r['recall_after_delete_vs_exact']:.4f}")
    print()
    print("x = ratio to hnswlib (f32) on the same data, M, ef_construction, ef and threads;")
    print("per-CPU-second figures exclude time spent descheduled on a shared machine;")
    print("B/vec = ab_hnsw_memory per vector; RSS/vec = resident-set growth during the build.")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dim", type=int, required=True)
    r.add_argument("--base", required=True)
    r.add_argument("--query", required=True)
    r.add_argument("--gt", required=True)
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--m", type=int, default=16)
    r.add_argument("--efc", type=int, default=200)
    r.add_argument("--ef", default="100")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--min-secs", type=float, default=1.0)
    t = sub.add_parser("table")
    t.add_argument("path")
    a = p.parse_args()
    if a.cmd == "run":
        run(a)
    else:
        table(a.path)


if __name__ == "__main__":
    sys.exit(main())
