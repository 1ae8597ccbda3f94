#!/usr/bin/env bash
# bench/llm/run.sh BUILD_DIR - benchmarks of AutoBot's LLM engine (src/llm)
# and of the llm role; see docs/benchmarks.md, section "LLM engine".
#
#   1. Models: synthetic llama models made with `autobot model synth`
#      (~110M: q8_0, q4_0; ~1.1B: q8_0, q4_0, q4_k; Llama 2 SentencePiece
#      vocabulary from ../shared) cached in BENCH_LLM_MODELS_DIR, plus the
#      real stories260K (llama2.c, F32) from ../shared.
#   2. `autobot run MODEL PROMPT --num-predict 64 --threads N --temperature 0`
#      with a 128-token prompt (BOS included, checked on every run), at 1 and
#      2 threads, BENCH_LLM_ROUNDS rounds: prompt and generation tokens/s
#      from its stderr, time to first token and peak RSS from runlat.c
#      (fork -> first stdout byte; wait4's ru_maxrss).
#   3. `autobot serve llm` with 4 concurrent streaming clients
#      (stream_clients.py: POST /api/generate, num_predict 64, temperature 0)
#      for the 110M q4_0 model and stories260K, llm.parallel 1 and 4 (and 4
#      with llm.threads=1 for 110M, to show the cost of oversubscription):
#      aggregate generated tokens/s per round, median and p99 time to first
#      token over all requests.
#   4. The same-run anchor: llama.cpp itself (the prebuilt CPU library of the
#      npm package node-llama-cpp, installed here from the npm registry into
#      BENCH_LLM_NODE_DIR, driven by llamacpp.mjs) on the same model files
#      (stories260K: the llama.cpp-written GGUF of ../shared/models/reference)
#      and the same prompt text, alternating with `autobot run` round by
#      round (odd rounds autobot first, even rounds llama.cpp first).
#   5. A summary (summarize.py): printed, and written with the raw data to
#      bench/llm/results/<timestamp>/ (git-ignored; results/latest).
#
# Everything listens on 127.0.0.1 on ports picked free at run time (the
# role's Redis port points at a free port where nothing listens: it runs
# degraded); state lives in a temporary directory; every process started
# here is stopped on exit (trap). A private copy of BUILD_DIR/autobot is
# benchmarked, so a rebuild during the run changes nothing.
#
# Environment knobs (defaults in brackets):
#   BENCH_LLM_MODELS_DIR [/tmp/autobot-bench-llm/models] model cache (~2.6 GB)
#   BENCH_LLM_MODELS  [all]   all | small (stories260K + 110M) | a comma list
#                             of: stories260K,110M-q8_0,110M-q4_0,1.1B-q8_0,
#                             1.1B-q4_0,1.1B-q4_k
#   BENCH_LLM_ONLY    [run,serve]  which measurements (models are always made)
#   BENCH_LLM_ROUNDS  [3]     rounds per (model, threads) for `autobot run`
#   BENCH_LLM_THREADS [1 2]   thread counts for `autobot run`
#   BENCH_LLM_SERVE_ROUNDS [5] timed rounds of 4 clients per serve config
#   BENCH_LLM_SERVE_CONFIGS [1 4 4:1] llm.parallel[:llm.threads] per serve
#                             run (threads 0 = the role's default, by model
#                             size; a :threads config is skipped for
#                             stories260K, which runs 1 thread anyway)
#   BENCH_LLM_LLAMACPP [auto] auto: measure llama.cpp beside `autobot run`
#                             when node and npm are here (skipped, saying
#                             why, when the install fails); off: do not
#   BENCH_LLM_LLAMACPP_CPU [best] best: the ggml-cpu build ggml picks for
#                             this CPU; or one build's name (haswell = the
#                             AVX2 build; the prebuilt one measured 3-5x
#                             slower than the issue's AVX2 figures)
#   BENCH_LLM_NODE_DIR [/tmp/autobot-bench-llm/node-llama-cpp-3.22.1]
#   AB_SHARED_DIR     [../shared next to the repository]
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ $# -ge 1 ] || { echo "usage: bench/llm/run.sh BUILD_DIR" >&2; exit 2; }
build=$1
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
[ -x "$build/autobot" ] || { echo "bench/llm: $build/autobot not found; build first (ninja -C $1 autobot)" >&2; exit 1; }

PY=/usr/bin/python3
SHARED=${AB_SHARED_DIR:-$root/../shared}
[ -d "$SHARED" ] && SHARED=$(cd "$SHARED" && pwd)
MDIR=${BENCH_LLM_MODELS_DIR:-/tmp/autobot-bench-llm/models}
SELECT=${BENCH_LLM_MODELS:-all}
ONLY=${BENCH_LLM_ONLY:-run,serve}
ROUNDS=${BENCH_LLM_ROUNDS:-3}
THREADS=${BENCH_LLM_THREADS:-1 2}
SROUNDS=${BENCH_LLM_SERVE_ROUNDS:-5}
SERVE_CONFIGS=${BENCH_LLM_SERVE_CONFIGS:-1 4 4:1}
NPROMPT=128
NPRED=64
CLIENTS=4
RUN_TIMEOUT_MS=600000

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

for t in cc "$PY" sha256sum; do
	command -v "$t" >/dev/null || { echo "bench/llm: $t is missing" >&2; exit 1; }
done

TOK_SPM="$SHARED/models/reference/tokenizers/ggml-vocab-llama-spm.gguf"
S260="$SHARED/models/stories260K.bin"
TOK512="$SHARED/models/tok512.bin"
if [ ! -f "$TOK_SPM" ] || [ ! -f "$S260" ] || [ ! -f "$TOK512" ]; then
	echo "bench/llm: SKIPPED: the shared models are missing ($SHARED/models: need" \
		"stories260K.bin, tok512.bin and reference/tokenizers/ggml-vocab-llama-spm.gguf;" \
		"set AB_SHARED_DIR to the folder that holds models/)" >&2
	exit 0
fi

# name | synth arguments (empty: a file from ../shared)
ALL_MODELS="stories260K 110M-q8_0 110M-q4_0 1.1B-q8_0 1.1B-q4_0 1.1B-q4_k"
case "$SELECT" in
all) MODELS=$ALL_MODELS ;;
small) MODELS="stories260K 110M-q8_0 110M-q4_0" ;;
*) MODELS=$(echo "$SELECT" | tr ',' ' ') ;;
esac
synth_args() {
	local shape
	case "$1" in
	110M-*) shape="--dim 768 --layers 12 --heads 12 --kv-heads 12 --ffn 2048 --vocab 32000" ;;
	1.1B-*) shape="--dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 --vocab 32000" ;;
	*) return 1 ;;
	esac
	echo "$shape --type ${1#*-} --tokenizer $TOK_SPM"
}
for m in $MODELS; do
	case " $ALL_MODELS " in *" $m "*) ;; *) echo "bench/llm: unknown model $m (one of: $ALL_MODELS)" >&2; exit 2 ;; esac
done
model_file() {
	case "$1" in
	stories260K) echo "$S260" ;;
	*) echo "$MDIR/$1.gguf" ;;
	esac
}

stamp=$(date -u +%Y%m%d-%H%M%S)
RES="$here/results/$stamp"
mkdir -p "$RES"
ln -sfn "$stamp" "$here/results/latest"
TMP=$(mktemp -d /tmp/autobot-bench-llm.XXXXXX)
SERVER_PID=

cleanup() {
	if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
		kill "$SERVER_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$SERVER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# A private copy of the binary (a rebuild during the run changes nothing).
AB="$TMP/autobot"
cp "$build/autobot" "$AB"
AB_SHA=$(sha256sum "$AB" | cut -d' ' -f1)
cc -std=gnu17 -O2 -Wall -Wextra -o "$TMP/runlat" "$here/runlat.c" || exit 1

{
	echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "build=$build"
	echo "autobot_sha256=$AB_SHA"
	echo "autobot_version=$("$AB" version 2>&1 | head -1)"
	echo "quant_c_mtime=$(stat -c %y "$root/src/llm/quant.c" 2>/dev/null)"
	echo "git_head=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
	echo "nproc=$(nproc)"
	echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	echo "cpu_flags_avx2=$(grep -m1 -o -w avx2 /proc/cpuinfo)"
	echo "mem=$(grep MemTotal /proc/meminfo | awk '{print $2 " kB"}')"
	echo "kernel=$(uname -r)"
	echo "loadavg_start=$(cat /proc/loadavg)"
	echo "models=$MODELS"
	echo "rounds=$ROUNDS threads=$THREADS serve_rounds=$SROUNDS clients=$CLIENTS"
} >"$RES/env.txt"
log "results in $RES (autobot sha256 ${AB_SHA:0:16}…)"

# ---------------------------------------------------------------- 1. models
mkdir -p "$MDIR"
for m in $MODELS; do
	args=$(synth_args "$m") || continue
	f="$MDIR/$m.gguf"
	cmdline="model synth $args --seed 1 -o $f"
	if [ -f "$f" ] && [ -f "$f.ok" ] && [ "$(sed -n 1p "$f.ok")" = "$cmdline" ] &&
		[ "$(sed -n 2p "$f.ok")" = "$(stat -c %s "$f")" ]; then
		log "model $m: cached ($(stat -c %s "$f") bytes)"
		continue
	fi
	avail_kb=$(df -Pk "$MDIR" | awk 'NR==2 {print $4}')
	if [ "${avail_kb:-0}" -lt 3000000 ]; then
		echo "bench/llm: less than 3 GB free in $MDIR; not making $m" >&2
		exit 1
	fi
	rm -f "$f" "$f.ok"
	log "model $m: making it (autobot $cmdline)"
	t0=$(date +%s)
	# shellcheck disable=SC2086
	if ! "$AB" model synth $args --seed 1 -o "$f" >"$RES/synth-$m.log" 2>&1; then
		cat "$RES/synth-$m.log" >&2
		echo "bench/llm: making $m failed" >&2
		exit 1
	fi
	printf '%s\n%s\n' "$cmdline" "$(stat -c %s "$f")" >"$f.ok"
	log "model $m: $(stat -c %s "$f") bytes in $(($(date +%s) - t0)) s"
done
for m in $MODELS; do
	echo "$m $(stat -L -c %s "$(model_file "$m")") $(model_file "$m")"
done >"$RES/models.txt"

# ------------------------------------------------ prompts of exactly 128 tokens
# A tiny model per vocabulary counts tokens: `autobot run` reports the
# prompt's token count (BOS included) on stderr.
CAL_SPM="$TMP/cal-spm.gguf"
"$AB" model synth --dim 64 --layers 1 --heads 1 --ffn 64 --vocab 32000 --type f32 \
	--ctx 1024 --tokenizer "$TOK_SPM" -o "$CAL_SPM" >/dev/null || exit 1
count_tokens() { # MODEL TEXT -> token count
	"$AB" run "$1" "$2" --num-predict 1 --threads 1 --temperature 0 2>&1 >/dev/null |
		sed -n 's/^prompt: \([0-9]*\) tokens.*/\1/p; s/.*the prompt has \([0-9]*\) tokens.*/\1/p'
}
make_prompt() { # MODEL OUTFILE
	local model=$1 out=$2 lo=1 hi mid n text pad _
	read -r -a words <"$here/prompt.txt"
	hi=${#words[@]}
	n=$(count_tokens "$model" "${words[*]}")
	[ "${n:-0}" -ge "$NPROMPT" ] || { echo "bench/llm: prompt.txt has only $n tokens" >&2; return 1; }
	# largest word prefix with at most NPROMPT tokens (binary search, bounded)
	while [ $((hi - lo)) -gt 1 ]; do
		mid=$(((lo + hi) / 2))
		n=$(count_tokens "$model" "${words[*]:0:mid}")
		if [ "${n:-999999}" -le "$NPROMPT" ]; then lo=$mid; else hi=$mid; fi
	done
	text="${words[*]:0:lo}"
	n=$(count_tokens "$model" "$text")
	# pad with one-token words up to exactly NPROMPT
	for _ in $(seq 8); do
		[ "$n" -lt "$NPROMPT" ] || break
		for pad in " and" " a" " the" "."; do
			local n2
			n2=$(count_tokens "$model" "$text$pad")
			if [ "$n2" -le "$NPROMPT" ] && [ "$n2" -gt "$n" ]; then
				text="$text$pad"
				n=$n2
				break
			fi
		done
	done
	[ "$n" -eq "$NPROMPT" ] || { echo "bench/llm: could not make a $NPROMPT-token prompt ($n)" >&2; return 1; }
	printf '%s' "$text" >"$out"
}
make_prompt "$CAL_SPM" "$RES/prompt-spm.txt" || exit 1
make_prompt "$S260" "$RES/prompt-tok512.txt" || exit 1
log "prompts: $NPROMPT tokens each (prompt-spm.txt: $(wc -w <"$RES/prompt-spm.txt") words," \
	"prompt-tok512.txt: $(wc -w <"$RES/prompt-tok512.txt") words)"
prompt_file() { case "$1" in stories260K) echo "$RES/prompt-tok512.txt" ;; *) echo "$RES/prompt-spm.txt" ;; esac; }
prompt_of() { cat "$(prompt_file "$1")"; }

# ------------------------------------------- llama.cpp, the same-run anchor
NLC_VERSION=3.22.1
NDIR=${BENCH_LLM_NODE_DIR:-/tmp/autobot-bench-llm/node-llama-cpp-$NLC_VERSION}
LCPU=${BENCH_LLM_LLAMACPP_CPU:-best}
LLAMACPP=
LLAMACPP_WHY=
llamacpp_setup() { # -> LLAMACPP = the folder to run llamacpp.mjs in, or LLAMACPP_WHY = why not
	command -v node >/dev/null && command -v npm >/dev/null || {
		LLAMACPP_WHY="node or npm is missing"
		return 1
	}
	if [ ! -f "$NDIR/.ok" ]; then
		rm -rf "$NDIR"
		mkdir -p "$NDIR" || return 1
		echo '{"name": "autobot-bench-llamacpp", "private": true, "type": "module"}' >"$NDIR/package.json"
		log "llama.cpp: npm install node-llama-cpp@$NLC_VERSION (prebuilt CPU library) into $NDIR"
		# --ignore-scripts: the package's postinstall would look for GPU
		# builds; the prebuilt linux-x64 one is named explicitly instead
		(cd "$NDIR" && timeout 600 npm install --no-audit --no-fund --omit=optional --ignore-scripts \
			"node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION") \
			>"$RES/llamacpp-install.log" 2>&1 || {
			LLAMACPP_WHY="npm install failed (see $RES/llamacpp-install.log)"
			return 1
		}
		touch "$NDIR/.ok"
	fi
	local dir=$NDIR bins
	if [ "$LCPU" != best ]; then
		# a copy whose only ggml-cpu build is the one asked for
		dir="$NDIR-$LCPU"
		bins="$dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
		if [ ! -f "$dir/.ok" ]; then
			rm -rf "$dir"
			cp -a "$NDIR" "$dir" || return 1
			[ -f "$bins/libggml-cpu-$LCPU.so" ] || {
				LLAMACPP_WHY="no ggml-cpu build named $LCPU (have: $(cd "$bins" && ls libggml-cpu-*.so | sed 's/libggml-cpu-//; s/\.so//' | tr '\n' ' '))"
				return 1
			}
			find "$bins" -name 'libggml-cpu-*.so' ! -name "libggml-cpu-$LCPU.so" -delete
			touch "$dir/.ok"
		fi
	fi
	cp "$here/llamacpp.mjs" "$dir/llamacpp.mjs" || return 1
	LLAMACPP=$dir
}
llamacpp_model() { # our model name -> the file llama.cpp loads (stories260K: llama.cpp's own GGUF)
	case "$1" in
	stories260K) echo "$SHARED/models/reference/stories260K.gguf" ;;
	*) model_file "$1" ;;
	esac
}
if want run && [ "${BENCH_LLM_LLAMACPP:-auto}" != off ]; then
	if llamacpp_setup; then
		log "llama.cpp: node-llama-cpp $NLC_VERSION in $LLAMACPP (ggml-cpu build: $LCPU)"
		echo "llamacpp=node-llama-cpp $NLC_VERSION ($(sed -n 's/.*"release": *"\([^"]*\)".*/\1/p' \
			"$LLAMACPP/node_modules/node-llama-cpp/llama/binariesGithubRelease.json" 2>/dev/null)) cpu=$LCPU" >>"$RES/env.txt"
	else
		log "llama.cpp anchor SKIPPED: ${LLAMACPP_WHY:-setting it up failed}"
		echo "llamacpp=skipped: ${LLAMACPP_WHY:-setting it up failed}" >>"$RES/env.txt"
	fi
fi
llamacpp_run() { # MODEL THREADS ROUND: one llama.cpp measurement into llamacpp.jsonl
	local m=$1 t=$2 r=$3 f o line
	f=$(llamacpp_model "$m")
	[ -f "$f" ] || return 0
	o="$RES/llamacpp-$m-t$t-r$r"
	line=$(cd "$LLAMACPP" && timeout 600 node llamacpp.mjs "$f" "$(prompt_file "$m")" "$t" "$NPRED" 2>"$o.err" | tail -1)
	if [ -z "$line" ] || [ "${line#\{}" = "$line" ]; then
		echo "bench/llm: llama.cpp $m t$t r$r failed; see $o.err" >&2
		echo "{\"model\": \"$m\", \"threads\": $t, \"round\": $r, \"error\": true}" >>"$RES/llamacpp.jsonl"
		return 0
	fi
	echo "{\"model\": \"$m\", \"threads\": $t, \"round\": $r, \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", ${line#\{}" >>"$RES/llamacpp.jsonl"
	log "llama.cpp $m threads=$t round=$r: $line"
}

# -------------------------------------------------------------- 2. autobot run
if want run; then
	TSV="$RES/run.tsv"
	printf 'model\tthreads\tround\tprompt_n\tprompt_ms\tprompt_tps\tgen_n\tgen_ms\tgen_tps\tload_ms\tttft_ms\twall_ms\tmaxrss_kb\trc\tloadavg\n' >"$TSV"
	for m in $MODELS; do
		f=$(model_file "$m")
		prompt=$(prompt_of "$m")
		# warm-up (untimed): the file into the page cache
		"$TMP/runlat" "$RUN_TIMEOUT_MS" /dev/null /dev/null -- \
			"$AB" run "$f" "$prompt" --num-predict 1 --threads 2 --temperature 0 >/dev/null
		for r in $(seq "$ROUNDS"); do
			for t in $THREADS; do
				[ -n "$LLAMACPP" ] && [ $((r % 2)) = 0 ] && llamacpp_run "$m" "$t" "$r"
				la=$(cut -d' ' -f1-3 /proc/loadavg)
				o="$RES/run-$m-t$t-r$r"
				line=$("$TMP/runlat" "$RUN_TIMEOUT_MS" "$o.out" "$o.err" -- \
					"$AB" run "$f" "$prompt" --num-predict "$NPRED" --threads "$t" --temperature 0)
				ttft=$(echo "$line" | sed -n 's/.*ttft_ms=\([^ ]*\).*/\1/p')
				wall=$(echo "$line" | sed -n 's/.*wall_ms=\([^ ]*\).*/\1/p')
				rss=$(echo "$line" | sed -n 's/.*maxrss_kb=\([^ ]*\).*/\1/p')
				rc=$(echo "$line" | sed -n 's/.*rc=\([^ ]*\).*/\1/p')
				load=$(sed -n 's/^loaded .* in \([0-9.]*\) ms$/\1/p' "$o.err")
				read -r pn pms ptps < <(sed -n 's/^prompt: \([0-9]*\) tokens in \([0-9.]*\) ms (\([0-9.]*\) tokens.*/\1 \2 \3/p' "$o.err")
				read -r gn gms gtps < <(sed -n 's/^generation: \([0-9]*\) tokens in \([0-9.]*\) ms (\([0-9.]*\) tokens.*/\1 \2 \3/p' "$o.err")
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
					"$m" "$t" "$r" "${pn:-}" "${pms:-}" "${ptps:-}" "${gn:-}" "${gms:-}" "${gtps:-}" \
					"${load:-}" "$ttft" "$wall" "$rss" "$rc" "$la" >>"$TSV"
				log "run $m threads=$t round=$r: prompt ${pn:-?} tok ${ptps:-?} tok/s," \
					"gen ${gn:-?} tok ${gtps:-?} tok/s, ttft ${ttft} ms, rss ${rss} kB, rc $rc"
				if [ "$rc" != 0 ] || [ "${pn:-0}" != "$NPROMPT" ]; then
					echo "bench/llm: run $m t$t r$r: rc $rc, prompt ${pn:-?} tokens (want $NPROMPT); see $o.err" >&2
				fi
				[ -n "$LLAMACPP" ] && [ $((r % 2)) = 1 ] && llamacpp_run "$m" "$t" "$r"
			done
		done
	done
fi

# -------------------------------------------------------------- 3. serve llm
wait_http() { # PORT: wait (bounded, 15 s) for GET /health to answer 200
	local _
	for _ in $(seq 150); do
		"$PY" - "$1" <<'EOF' 2>/dev/null && return 0
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
c.request("GET", "/health")
sys.exit(0 if c.getresponse().status == 200 else 1)
EOF
		sleep 0.1
	done
	return 1
}

SERVE_MODELS=""
for m in 110M-q4_0 stories260K; do
	case " $MODELS " in *" $m "*) SERVE_MODELS="$SERVE_MODELS $m" ;; esac
done
if want serve && [ -n "$SERVE_MODELS" ]; then
	SMD="$TMP/serve-models"
	mkdir -p "$SMD"
	ln -s "$S260" "$SMD/stories260K.bin"
	ln -s "$TOK512" "$SMD/tok512.bin"
	[ -f "$MDIR/110M-q4_0.gguf" ] && ln -s "$MDIR/110M-q4_0.gguf" "$SMD/110M-q4_0.gguf"
	: >"$RES/serve.jsonl"
	for m in $SERVE_MODELS; do
		prompt_of "$m" >"$TMP/prompt-$m.txt"
		for cfg in $SERVE_CONFIGS; do
			par=${cfg%%:*}
			thr=0
			case "$cfg" in *:*) thr=${cfg#*:} ;; esac
			# stories260K runs 1 thread per generation anyway (under 50M parameters)
			[ "$m" = stories260K ] && [ "$thr" != 0 ] && continue
			lab="$m parallel=$par"
			[ "$thr" != 0 ] && lab="$lab threads=$thr"
			tag="p$par-t$thr"
			read -r port rport < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
			st="$TMP/state-$m-$tag"
			mkdir -p "$st"
			"$AB" serve llm --state-dir "$st" --port "$port" --bind 127.0.0.1 \
				--set llm.models_dir="$SMD" --set llm.parallel="$par" --set llm.threads="$thr" \
				--set llm.keep_alive_s=3600 --set services.redis.port="$rport" \
				>"$RES/serve-$m-$tag.log" 2>&1 &
			SERVER_PID=$!
			# up, and it is ours (not another process that took the port first)
			if ! wait_http "$port" || ! kill -0 "$SERVER_PID" 2>/dev/null; then
				echo "bench/llm: autobot serve llm did not come up on port $port; see $RES/serve-$m-$tag.log" >&2
				exit 1
			fi
			log "serve llm $lab on 127.0.0.1:$port: $CLIENTS clients x $SROUNDS rounds (after 1 warm-up round)"
			"$PY" "$here/stream_clients.py" --port "$port" --token-file "$st/admin.token" \
				--model "$m" --prompt-file "$TMP/prompt-$m.txt" --clients "$CLIENTS" \
				--rounds "$SROUNDS" --warmup 1 --num-predict "$NPRED" --timeout 600 \
				--label "$lab" --out "$TMP/serve.part" | tee -a "$RES/serve-summary.jsonl" >&2 ||
				echo "bench/llm: some requests failed ($lab): see $RES/serve.jsonl" >&2
			cat "$TMP/serve.part" >>"$RES/serve.jsonl"
			hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$SERVER_PID/status")
			echo "{\"label\": \"$lab\", \"kind\": \"server\", \"vmhwm_kb\": ${hwm:-null}}" >>"$RES/serve.jsonl"
			kill "$SERVER_PID"
			for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$SERVER_PID" 2>/dev/null
			wait "$SERVER_PID" 2>/dev/null
			SERVER_PID=
		done
	done
fi

echo "loadavg_end=$(cat /proc/loadavg)" >>"$RES/env.txt"

# -------------------------------------------------------------- 4. summary
"$PY" "$here/summarize.py" "$RES" | tee "$RES/summary.txt"
log "raw data and summary in $RES"
