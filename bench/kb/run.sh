#!/usr/bin/env bash
# Knowledge-base benchmark: ingestion throughput and hybrid/bm25/vector
# search latency through a real redis-server with autobot.so.
# Usage: bench/kb/run.sh BUILD_DIR   (BENCH_KB_CHUNKS=100000, BENCH_KB_QUERIES=500)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
shared=${AB_SHARED_DIR:-$root/../shared}
ir=$shared/eval/ir
if [ ! -d "$ir/cran" ]; then
	echo "SKIPPED: $ir not present (the IR collections give the text)"
	exit 0
fi
ninja -C "$build" bench_kb src/redismod/autobot.so >/dev/null
chunks=${BENCH_KB_CHUNKS:-100000}
queries=${BENCH_KB_QUERIES:-500}
tmp=$(mktemp -d /tmp/autobot-bench-kb-XXXXXX)
port=$(/usr/bin/python3 "$root/bench/freeport.py")
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
	--loadmodule "$build/src/redismod/autobot.so" >"$tmp/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $chunks chunks, $queries queries per mode"
"$build/bench_kb" "$port" "$chunks" "$queries" "$ir/cran" "$ir/cisi" "$ir/med" "$ir/adi" | tee "$tmp/result.json"
echo "redis used_memory: $(redis-cli -p "$port" info memory | grep '^used_memory_human' | cut -d: -f2)"
echo "MEMORY USAGE ab:kb:vec: $(redis-cli -p "$port" memory usage ab:kb:vec) bytes; ab:kb:text: $(redis-cli -p "$port" memory usage ab:kb:text) bytes"
