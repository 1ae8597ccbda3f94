"""summarize.py RESULTS_DIR - the summary tables of bench/llm/run.sh.

Reads RESULTS_DIR/run.tsv (one `autobot run` per line),
RESULTS_DIR/llamacpp.jsonl (llamacpp.mjs records: llama.cpp measured in the
same run, round by round beside `autobot run`) and RESULTS_DIR/serve.jsonl
(stream_clients.py records) and prints Markdown tables: medians per (model,
threads) with the min-max over rounds, the same next to llama.cpp measured in
this run with ratios, next to the issue's anchor figures (llama.cpp CPU
build, commit c392e50, AVX2, OpenMP, a 2-core machine of this kind, medians
of 3 rounds; NOT measured in the same run), and the llm role under
concurrent clients.
"""
import csv
import json
import os
import statistics
import sys

# (model, threads) -> (prompt tok/s, generation tok/s, RSS MiB, llama.cpp type)
ANCHOR = {
    ("stories260K", 1): (14800, 9800, 13, "F32"),
    ("110M-q8_0", 1): (540, 153, 146, "Q8_0"),
    ("110M-q8_0", 2): (770, 149, 146, "Q8_0"),
    ("110M-q4_0", 1): (920, 215, 145, "Q4_0"),
    ("110M-q4_0", 2): (1110, 221, 145, "Q4_0"),
    ("1.1B-q8_0", 2): (92, 23, 1144, "Q8_0"),
    ("1.1B-q4_0", 2): (155, 44, 1149, "Q4_0"),
    ("1.1B-q4_k", 2): (65, 34, 665, "Q4_K_M"),
}
ORDER = ["stories260K", "110M-q8_0", "110M-q4_0", "1.1B-q8_0", "1.1B-q4_0", "1.1B-q4_k"]
TYPE = {"stories260K": "F32", "110M-q8_0": "Q8_0", "110M-q4_0": "Q4_0",
        "1.1B-q8_0": "Q8_0", "1.1B-q4_0": "Q4_0", "1.1B-q4_k": "Q4_K"}


def fnum(x, nd=None):
    if x is None:
        return "–"
    if nd is None:
        nd = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{nd}f}"


def rng(xs, nd=None):
    return f"{fnum(min(xs), nd)}–{fnum(max(xs), nd)}" if len(xs) > 1 else fnum(xs[0], nd)


def med(xs):
    return statistics.median(xs) if xs else None


def nearest_rank(xs, p):
    xs = sorted(xs)
    k = max(1, -(-len(xs) * p // 100))
    return xs[int(k) - 1]


def f(row, k):
    try:
        return float(row[k])
    except (KeyError, TypeError, ValueError):
        return None


def run_tables(res, out):
    path = os.path.join(res, "run.tsv")
    if not os.path.exists(path):
        return
    rows = list(csv.DictReader(open(path), delimiter="\t"))
    groups = {}
    for r in rows:
        groups.setdefault((r["model"], int(r["threads"])), []).append(r)
    keys = sorted(groups, key=lambda k: (ORDER.index(k[0]) if k[0] in ORDER else 99, k[1]))
    meds = {}
    out.append("## autobot run: 128-token prompt, 64 generated tokens, --temperature 0")
    out.append("")
    out.append("Medians over rounds (min–max in brackets). prompt/generation tok/s: the figures "
               "`autobot run` prints; TTFT: fork → first byte on stdout (exec, load, prompt, first "
               "token); RSS: peak (ru_maxrss); load avg: the 1-minute load average when each "
               "round started (min–max), a hint of what else ran.")
    out.append("")
    out.append("| model | type | threads | rounds | prompt tokens | prompt tok/s | generation tok/s "
               "| TTFT ms | load ms | peak RSS MiB | load avg |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        g = groups[k]
        ok = [r for r in g if r["rc"] == "0" and f(r, "gen_tps") is not None]
        bad = len(g) - len(ok)
        if not ok:
            out.append(f"| {k[0]} | {TYPE.get(k[0], '?')} | {k[1]} | 0/{len(g)} | | | | | | | |")
            continue
        pt = [f(r, "prompt_tps") for r in ok]
        gt = [f(r, "gen_tps") for r in ok]
        tt = [f(r, "ttft_ms") for r in ok]
        ld = [f(r, "load_ms") for r in ok if f(r, "load_ms") is not None]
        rss = [f(r, "maxrss_kb") / 1024 for r in ok]
        la = [float(r["loadavg"].split()[0]) for r in g if r.get("loadavg")]
        pn = sorted({r["prompt_n"] for r in ok})
        gn = sorted({r["gen_n"] for r in ok})
        meds[k] = (med(pt), med(gt), med(rss), med(tt))
        note = "" if gn == ["64"] else f" (generated {'/'.join(gn)})"
        out.append(f"| {k[0]} | {TYPE.get(k[0], '?')} | {k[1]} | {len(ok)}/{len(g)}"
                   f"{' (' + str(bad) + ' failed)' if bad else ''} | {'/'.join(pn)} | "
                   f"{fnum(med(pt))} ({rng(pt)}) | {fnum(med(gt))} ({rng(gt)}){note} | "
                   f"{fnum(med(tt))} ({rng(tt)}) | {fnum(med(ld)) if ld else '–'} | "
                   f"{fnum(med(rss), 1)} | {rng(la, 2) if la else '–'} |")
    out.append("")
    samerun_table(res, meds, keys, out)
    out.append("## Next to llama.cpp (anchor figures from the issue, NOT the same run)")
    out.append("")
    out.append("llama.cpp CPU build, commit c392e50, AVX2, OpenMP, a 2-core machine of this kind, "
               "medians of 3 rounds. ratio = AutoBot / llama.cpp (tok/s: > 1 is faster; RSS: < 1 "
               "is smaller).")
    out.append("")
    out.append("| model | type (ours / llama.cpp) | threads | prompt tok/s ours | llama.cpp | ratio "
               "| generation tok/s ours | llama.cpp | ratio | RSS MiB ours | llama.cpp | ratio |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in keys:
        if k not in ANCHOR or k not in meds:
            continue
        a = ANCHOR[k]
        o = meds[k]
        out.append(f"| {k[0]} | {TYPE[k[0]]} / {a[3]} | {k[1]} | {fnum(o[0])} | {fnum(a[0])} | "
                   f"{o[0] / a[0]:.2f} | {fnum(o[1])} | {fnum(a[1])} | {o[1] / a[1]:.2f} | "
                   f"{fnum(o[2], 1)} | {fnum(a[2])} | {o[2] / a[2]:.2f} |")
    out.append("")


def samerun_table(res, meds, keys, out):
    path = os.path.join(res, "llamacpp.jsonl")
    if not os.path.exists(path):
        return
    recs = [json.loads(l) for l in open(path) if l.strip()]
    variants = sorted({r.get("cpu_variant", "?") for r in recs if not r.get("error")})
    out.append("## Next to llama.cpp, measured in the same run")
    out.append("")
    out.append("llama.cpp = the prebuilt CPU library of node-llama-cpp (ggml-cpu build: "
               f"{', '.join(variants) or '?'}), driven by llamacpp.mjs round by round beside `autobot "
               "run` (same model file, or for stories260K llama.cpp's own GGUF of the same weights; "
               "same prompt text; greedy; 64 generated tokens). Its prompt/generation rates come "
               "from a second, warm pass (favouring it; \"cold\": its first pass's prompt, as ours always is); its TTFT is load + the cold pass's prompt and "
               "first token (Node's start-up not included; ours includes exec). Its RSS is the peak "
               "less the Node process's RSS before the model loaded. Per-token binding overhead "
               "(~0.7 ms) dominates the stories260K row. ratio = AutoBot / llama.cpp (tok/s: > 1 is "
               "faster; ms and MiB: < 1 is less). Medians (min–max).")
    out.append("")
    out.append("| model | threads | rounds | prompt tok/s llama.cpp warm | ratio | cold | ratio "
               "| generation tok/s llama.cpp | ratio | TTFT ms llama.cpp | ratio | RSS MiB llama.cpp | ratio |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups = {}
    for r in recs:
        groups.setdefault((r["model"], int(r["threads"])), []).append(r)
    for k in keys:
        g = groups.get(k)
        if not g:
            continue
        ok = [r for r in g if not r.get("error") and r.get("gen_ms")]
        if not ok:
            out.append(f"| {k[0]} | {k[1]} | 0/{len(g)} | | | | | | | | | | |")
            continue
        pt = [r["prompt_n"] * 1000 / r["prompt_ms"] for r in ok]
        pc = [r["prompt_n"] * 1000 / r["prompt_cold_ms"] for r in ok if r.get("prompt_cold_ms")]
        gt = [r["gen_n"] * 1000 / r["gen_ms"] for r in ok]
        tt = [r["ttft_ms"] for r in ok]
        rss = [(r["maxrss_kb"] - r["rss_base_kb"]) / 1024 for r in ok]
        pn = sorted({r["prompt_n"] for r in ok})
        o = meds.get(k)
        ours_tt = o[3] if o else None

        def ratio(a, b):
            return f"{a / b:.2f}" if a is not None and b else "–"

        out.append(f"| {k[0]} | {k[1]} | {len(ok)}/{len(g)} | {fnum(med(pt))} ({rng(pt)})"
                   f"{'' if pn == [128] else ' [' + '/'.join(map(str, pn)) + ' tokens]'} | "
                   f"{ratio(o[0] if o else None, med(pt))} | "
                   f"{fnum(med(pc)) + ' (' + rng(pc) + ')' if pc else '–'} | "
                   f"{ratio(o[0] if o else None, med(pc)) if pc else '–'} | {fnum(med(gt))} ({rng(gt)}) | "
                   f"{ratio(o[1] if o else None, med(gt))} | {fnum(med(tt))} ({rng(tt)}) | "
                   f"{ratio(ours_tt, med(tt))} | {fnum(med(rss), 1)} | "
                   f"{ratio(o[2] if o else None, med(rss))} |")
    out.append("")


def serve_table(res, out):
    path = os.path.join(res, "serve.jsonl")
    if not os.path.exists(path):
        return
    recs = [json.loads(l) for l in open(path) if l.strip()]
    labels = []
    for r in recs:
        if r.get("label") not in labels:
            labels.append(r.get("label"))
    out.append("## autobot serve llm: 4 concurrent streaming clients, POST /api/generate, "
               "num_predict 64, temperature 0")
    out.append("")
    out.append("Per configuration 1 warm-up round, then timed rounds of 4 requests sent together. "
               "aggregate tok/s = generated tokens of the round / (last done − first sent), median "
               "over rounds (min–max); TTFT = request sent → first token line, over all timed "
               "requests (p99 nearest-rank: with 20 requests it is the slowest); per-stream tok/s = "
               "the server's eval_count / eval_duration.")
    out.append("")
    out.append("| model | llm.parallel | llm.threads | rounds | aggregate tok/s | TTFT median ms "
               "| TTFT p99 ms | per-stream tok/s | prompt tokens | errors | server VmHWM MiB |")
    out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lab in labels:
        rs = [r for r in recs if r.get("label") == lab and r.get("kind") == "round" and not r.get("warmup")]
        qs = [r for r in recs if r.get("label") == lab and r.get("kind") == "request" and not r.get("warmup")]
        sv = [r for r in recs if r.get("label") == lab and r.get("kind") == "server"]
        agg = [r["agg_tps"] for r in rs if "agg_tps" in r]
        tt = [q["ttft_ms"] for q in qs if "ttft_ms" in q and "error" not in q]
        ps = [q["eval_count"] / (q["eval_duration"] / 1e9) for q in qs
              if q.get("eval_count") and q.get("eval_duration")]
        pn = sorted({str(q.get("prompt_eval_count")) for q in qs if "error" not in q})
        errs = sum(1 for q in qs if "error" in q)
        hwm = sv[0].get("vmhwm_kb") if sv else None
        model, _, rest = lab.partition(" parallel=")
        par, _, thr = rest.partition(" threads=")
        thr = thr or "0 (auto)"
        out.append(f"| {model} | {par} | {thr} | {len(rs)} | "
                   f"{fnum(med(agg)) + ' (' + rng(agg) + ')' if agg else '–'} | "
                   f"{fnum(med(tt)) if tt else '–'} | {fnum(nearest_rank(tt, 99)) if tt else '–'} | "
                   f"{fnum(med(ps)) if ps else '–'} | {'/'.join(pn)} | {errs} | "
                   f"{fnum(hwm / 1024, 1) if hwm else '–'} |")
    out.append("")


def main():
    res = sys.argv[1]
    out = []
    env = os.path.join(res, "env.txt")
    if os.path.exists(env):
        out.append("```")
        out.extend(l.rstrip("\n") for l in open(env))
        out.append("```")
        out.append("")
    run_tables(res, out)
    serve_table(res, out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
