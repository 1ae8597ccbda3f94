#!/usr/bin/env bash
# bench/vector/run.sh - the HNSW engine (src/vector) side by side with
# hnswlib on the same data, in the same run: inserts/s, queries/s and
# recall@10 against exact float search at several ef, memory per vector.
#
# Data is generated deterministically (gen_data.py, numpy) into a temporary
# directory: "random" (i.i.d. Gaussian) and "clustered" (Gaussian clusters).
# Our side is bench_hnsw.c, built here with cc (runtime-dispatched kernels,
# no -march); the hnswlib side is hnswlib_bench.py under /usr/bin/python3
# (Debian's python3-hnswlib). Both use the same M, ef_construction, ef and
# number of query threads; both insert with one thread (our engine has a
# single writer, as the Redis module does). The machine's load moves the
# figures (+-30% on a shared box), so compare within one run only.
#
# Knobs (environment):
#   BENCH_VECTOR_N        base vectors            (100000; develop with 20000)
#   BENCH_VECTOR_DIM      dimensions              (384)
#   BENCH_VECTOR_Q        queries                 (1000)
#   BENCH_VECTOR_DATA     data sets               ("random clustered")
#   BENCH_VECTOR_QUANTS   our quantisations       ("q8 f32"; also "bin")
#   BENCH_VECTOR_M        M                       (16)
#   BENCH_VECTOR_EFC      ef_construction         (200)
#   BENCH_VECTOR_EF       search ef list          ("50,100,200,400,800")
#   BENCH_VECTOR_THREADS  query threads           (nproc)
#   BENCH_VECTOR_SECS     seconds per timing      (1)
#   BENCH_VECTOR_DELETE   fraction to delete after the timings, 0 = none (0)
#   BENCH_VECTOR_OUT      keep the JSON lines in this file (default: a temp file)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
N=${BENCH_VECTOR_N:-100000}
DIM=${BENCH_VECTOR_DIM:-384}
NQ=${BENCH_VECTOR_Q:-1000}
DATA=${BENCH_VECTOR_DATA:-"random clustered"}
QUANTS=${BENCH_VECTOR_QUANTS:-"q8 f32"}
M=${BENCH_VECTOR_M:-16}
EFC=${BENCH_VECTOR_EFC:-200}
EFS=${BENCH_VECTOR_EF:-"50,100,200,400,800"}
THREADS=${BENCH_VECTOR_THREADS:-$(nproc)}
SECS=${BENCH_VECTOR_SECS:-1}
DEL=${BENCH_VECTOR_DELETE:-0}
PY=/usr/bin/python3
CC=${CC:-cc}

if ! "$PY" -c 'import numpy' 2>/dev/null; then
	echo "bench/vector: $PY has no numpy (apt-get install python3-numpy); cannot make data" >&2
	exit 1
fi
have_hnswlib=1
if ! "$PY" -c 'import hnswlib' 2>/dev/null; then
	echo "bench/vector: no hnswlib for $PY (apt-get install python3-hnswlib): our side only" >&2
	have_hnswlib=0
fi

tmp=$(mktemp -d /tmp/bench-vector.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=${BENCH_VECTOR_OUT:-$tmp/results.jsonl}
: >"$out"

echo "bench/vector: n=$N dim=$DIM queries=$NQ M=$M efc=$EFC ef=$EFS threads=$THREADS" >&2
"$CC" -std=c17 -O2 -D_GNU_SOURCE -I"$root/src/core" -I"$root/src/vector" \
	"$root/bench/vector/bench_hnsw.c" "$root"/src/vector/*.c "$root/src/core/common.c" \
	-lm -lpthread -o "$tmp/bench_hnsw"

for d in $DATA; do
	echo "bench/vector: generating $d" >&2
	"$PY" "$here/gen_data.py" "$tmp" "$d" "$N" "$DIM" "$NQ"
	files=(--dim "$DIM" --base "$tmp/$d.base" --query "$tmp/$d.query" --gt "$tmp/$d.gt")
	for q in $QUANTS; do
		echo "bench/vector: $d autobot $q" >&2
		"$tmp/bench_hnsw" "${files[@]}" --quant "$q" --m "$M" --efc "$EFC" --ef "$EFS" \
			--threads "$THREADS" --min-secs "$SECS" --exact 200 --delete "$DEL" |
			sed "s/^{/{\"data\":\"$d\",/" >>"$out"
	done
	if [ "$have_hnswlib" = 1 ]; then
		echo "bench/vector: $d hnswlib f32" >&2
		"$PY" "$here/hnswlib_bench.py" run "${files[@]}" --m "$M" --efc "$EFC" --ef "$EFS" \
			--threads "$THREADS" --min-secs "$SECS" | sed "s/^{/{\"data\":\"$d\",/" >>"$out"
	fi
	rm -f "$tmp/$d.base" "$tmp/$d.query" "$tmp/$d.gt"
done

echo
echo "HNSW, n=$N dim=$DIM, M=$M ef_construction=$EFC, $THREADS query threads, $(uname -m)," \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$PY" "$here/hnswlib_bench.py" table "$out"
