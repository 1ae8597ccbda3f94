#!/usr/bin/env bash
# bench/text/run.sh - retrieval quality and speed of the text engine
# (src/text), in process, with the engine's default settings.
#
#   1. Quality: eval_engine.c over the IR collections in the BEIR layout
#      under ../shared/eval/ir (cran, cisi, med, adi): nDCG@10, MAP (top
#      1000) and Recall@100 of bm25, vector (the built-in embedder, exact
#      cosine) and hybrid (reciprocal-rank fusion of both), beside the
#      reference BM25 figures of ../shared/README.md, with the deltas; then
#      one table of all four collections. Search results from 4 threads at
#      once are checked against the single-threaded ones.
#   2. Speed (BENCH_TEXT_SPEED=1, on by default): bench_search.c, BM25 over
#      BENCH_TEXT_DOCS synthetic chunks drawn from the collections' word
#      frequencies, searched with their real queries: p50/p99 at k = 10 and
#      100, on one thread and on BENCH_TEXT_THREADS threads at once, and
#      the cost of embedding a query.
#
# Both drivers are built here with cc from the sources (no build directory
# needed), -O2, into a temporary directory. Extra arguments go to
# eval_engine (e.g. --k1 1.5 --no-stem; see its header comment), so
# settings can be compared, but the figures the project reports are those
# of a run without arguments. The machine's load moves the timings
# (+-30% on a shared box): compare them within one run only.
#
# Environment knobs:
#   AB_SHARED_DIR       [../shared next to the repository]
#   BENCH_TEXT_SPEED    [1] 0 skips the speed part
#   BENCH_TEXT_DOCS     [100000] synthetic chunks for the speed part
#   BENCH_TEXT_WORDS    [150] words per synthetic chunk
#   BENCH_TEXT_THREADS  [2] concurrent searchers
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${AB_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}
ir="$shared/eval/ir"
CC=${CC:-cc}

colls=()
for c in cran cisi med adi; do
	if [ -f "$ir/$c/corpus.jsonl" ] && [ -f "$ir/$c/queries.jsonl" ] &&
		[ -f "$ir/$c/qrels/test.tsv" ]; then
		colls+=("$ir/$c")
	else
		echo "bench/text: $ir/$c is missing; skipping it" >&2
	fi
done
if [ ${#colls[@]} -eq 0 ]; then
	echo "bench/text: no IR collections under $ir (../shared absent?); nothing to do" >&2
	exit 0
fi

tmp=$(mktemp -d /tmp/bench-text.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c17 -O2 -D_GNU_SOURCE -fno-strict-aliasing -I"$root/src/core" -I"$root/src/text")
libs=(-lutf8proc -lstemmer -ljansson -lm -lpthread)
srcs=("$root"/src/text/*.c "$root/src/core/common.c")
echo "bench/text: building eval_engine and bench_search" >&2
"$CC" "${flags[@]}" "$here/eval_engine.c" "${srcs[@]}" "${libs[@]}" -o "$tmp/eval_engine"
"$CC" "${flags[@]}" "$here/bench_search.c" "${srcs[@]}" "${libs[@]}" -o "$tmp/bench_search"

echo "== quality (in process; reference = ../shared/README.md BM25)"
"$tmp/eval_engine" --threads 4 "$@" "${colls[@]}"
echo
echo "== summary: ours (delta to the reference)"
"$tmp/eval_engine" --tsv "$@" "${colls[@]}" | awk -F'\t' '
	BEGIN {
		ref["cran"] = "0.3726 0.2890 0.7132"; ref["cisi"] = "0.2903 0.1502 0.3995"
		ref["med"] = "0.6890 0.5076 0.7974"; ref["adi"] = "0.4255 0.3532 0.8092"
		printf "%-6s %-7s %-17s %-17s %-17s\n", "coll", "mode", "nDCG@10", "MAP", "R@100"
	}
	{
		if ($1 in ref) {
			split(ref[$1], r, " ")
			if ($2 == "bm25")
				printf "%-6s %-7s %-17s %-17s %-17s\n", $1, "ref", r[1], r[2], r[3]
			printf "%-6s %-7s %.4f (%+.4f) %.4f (%+.4f) %.4f (%+.4f)\n", $1, $2,
				$3, $3 - r[1], $4, $4 - r[2], $5, $5 - r[3]
		} else {
			printf "%-6s %-7s %.4f          %.4f          %.4f\n", $1, $2, $3, $4, $5
		}
	}'

if [ "${BENCH_TEXT_SPEED:-1}" != 0 ]; then
	echo
	echo "== speed: BM25 at knowledge-base scale (synthetic chunks, real queries)"
	"$tmp/bench_search" --docs "${BENCH_TEXT_DOCS:-100000}" --words "${BENCH_TEXT_WORDS:-150}" \
		--threads "${BENCH_TEXT_THREADS:-2}" "${colls[@]}"
fi
