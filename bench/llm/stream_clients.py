"""stream_clients.py - concurrent streaming clients for bench/llm/run.sh.

    stream_clients.py --port P --token-file F --model NAME --prompt-file F
                      [--clients 4] [--rounds 5] [--warmup 1]
                      [--num-predict 64] [--timeout 600] --out FILE.jsonl

Each round starts CLIENTS threads together (a barrier) and each POSTs
/api/generate to 127.0.0.1:P on its own connection:

    {"model": NAME, "prompt": "(round.client) " + PROMPT,
     "options": {"num_predict": 64, "temperature": 0}, "keep_alive": "1h"}

and reads the NDJSON stream line by line as it arrives (http.client
decodes the chunked body). The "(round.client)" tag makes every prompt
differ from its first token, so no request reuses another's KV cache
beyond BOS. Per request it records, on CLOCK_MONOTONIC (time.monotonic):

    ttft_ms    request sent -> first streamed line with a token in it
    total_ms   request sent -> the final line ("done": true)
    and the server's own eval_count, eval_duration, prompt_eval_count,
    prompt_eval_duration from the final line.

Per round: wall_ms = last request done - first request sent, and
agg_tps = sum(eval_count) / wall. Warm-up rounds (model load, contexts
allocated) are run first and written with "warmup": true. One JSON object
per request and per round goes to --out; a one-line summary to stdout.
Every socket operation has --timeout seconds; nothing waits forever.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time


def one_request(port, token, body, timeout, res):
    t0 = time.monotonic()
    res["t_send"] = t0
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/api/generate", body=json.dumps(body),
                     headers={"Authorization": "Bearer " + token,
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        res["status"] = resp.status
        if resp.status != 200:
            res["error"] = "HTTP %d: %s" % (resp.status, resp.read(500).decode("utf-8", "replace"))
            conn.close()
            return
        n_lines = 0
        while n_lines < 100000:
            line = resp.readline()
            if not line:
                break
            n_lines += 1
            line = line.strip()
            if not line:
                continue
            now = time.monotonic()
            obj = json.loads(line)
            if "error" in obj:
                res["error"] = obj["error"]
                break
            if not obj.get("done") and "ttft_ms" not in res:
                res["ttft_ms"] = (now - t0) * 1e3
            if obj.get("done"):
                res["total_ms"] = (now - t0) * 1e3
                res["t_done"] = now
                for k in ("eval_count", "eval_duration", "prompt_eval_count",
                          "prompt_eval_duration", "load_duration", "total_duration",
                          "done_reason"):
                    res[k] = obj.get(k)
                break
        conn.close()
        if "t_done" not in res and "error" not in res:
            res["error"] = "stream ended without a done line"
    except Exception as e:  # noqa: BLE001 - recorded, not raised
        res["error"] = "%s: %s" % (type(e).__name__, e)


def run_round(args, token, prompt, rnd, warmup):
    results = [dict(round=rnd, client=c, warmup=warmup) for c in range(args.clients)]
    barrier = threading.Barrier(args.clients)

    def worker(c):
        body = {"model": args.model, "prompt": "(%d.%d) %s" % (rnd, c, prompt),
                "options": {"num_predict": args.num_predict, "temperature": 0},
                "keep_alive": "1h"}
        try:
            barrier.wait(timeout=args.timeout)
        except threading.BrokenBarrierError:
            pass
        one_request(args.port, token, body, args.timeout, results[c])

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout + 5)
    ok = [r for r in results if "t_done" in r]
    rnd_rec = dict(round=rnd, warmup=warmup, kind="round", ok=len(ok), clients=args.clients)
    if ok:
        t_first = min(r["t_send"] for r in results)
        t_last = max(r["t_done"] for r in ok)
        wall = (t_last - t_first) * 1e3
        gen = sum(r.get("eval_count") or 0 for r in ok)
        rnd_rec.update(wall_ms=wall, tokens=gen, agg_tps=gen * 1e3 / wall if wall > 0 else 0.0)
    for r in results:
        r["kind"] = "request"
        r.pop("t_send", None)
        r.pop("t_done", None)
    return results, rnd_rec


def nearest_rank(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(1, -(-len(xs) * p // 100))  # ceil(n*p/100)
    return xs[int(k) - 1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-file", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--num-predict", type=int, default=64)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", required=True)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    token = open(args.token_file).read().strip()
    prompt = open(args.prompt_file).read().strip()

    errors = 0
    ttfts, aggs = [], []
    with open(args.out, "w") as out:
        for i in range(args.warmup + args.rounds):
            warm = i < args.warmup
            reqs, rnd = run_round(args, token, prompt, i, warm)
            for r in reqs:
                r["label"] = args.label
                out.write(json.dumps(r) + "\n")
                if not warm:
                    if "error" in r:
                        errors += 1
                    elif "ttft_ms" in r:
                        ttfts.append(r["ttft_ms"])
            rnd["label"] = args.label
            out.write(json.dumps(rnd) + "\n")
            out.flush()
            if not warm and "agg_tps" in rnd:
                aggs.append(rnd["agg_tps"])
    summary = dict(label=args.label, rounds=len(aggs), errors=errors,
                   agg_tps_median=statistics.median(aggs) if aggs else None,
                   ttft_median_ms=statistics.median(ttfts) if ttfts else None,
                   ttft_p99_ms=nearest_rank(ttfts, 99) if ttfts else None)
    print(json.dumps(summary))
    return 1 if errors or not aggs else 0


if __name__ == "__main__":
    sys.exit(main())
