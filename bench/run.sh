#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - AutoBot's foundation benchmarks, each run side by
# side with its anchor in the same script run (see docs/benchmarks.md).
#
#   1. HTTP throughput under wrk (keep-alive, -t1 -c50 and -t2 -c100):
#      autobot GET /api/health and GET /api/services (a Redis round trip),
#      FastAPI + uvicorn serving the same two routes, nginx serving the same
#      static JSON.
#   2. Start time: exec of `autobot serve coordinator` to the first 200 on
#      /api/health (Redis up, Redis down), and `autobot up` to its
#      "autobot is up" line.
#   3. `autobot health` against a six-service loopback config (real redis,
#      real coordinator, four nginx stand-ins), then with one black-holed.
#   4. Idle coordinator RSS, before and after the wrk runs.
#
# Everything listens on 127.0.0.1 on ports picked free at run time; state
# lives in a temporary directory; every process started here is stopped on
# exit (trap). Raw output goes under bench/results/<timestamp>/ (git-ignored),
# bench/results/latest points at it, and the summary is printed at the end.
#
# Environment knobs (defaults in brackets):
#   BENCH_DURATION [10s]  wrk duration per run
#   BENCH_STARTS   [20]   runs per start-time measurement
#   BENCH_UP_RUNS  [5]    runs of `autobot up`
#   BENCH_HEALTH_RUNS [20] hyperfine runs per `autobot health` measurement
#   BENCH_ONLY     [all]  comma list of: http,start,health (rss is with http)
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
AB="$build/autobot"
[ -x "$AB" ] || { echo "bench: $AB not found; build first (ninja -C ${1:-build})" >&2; exit 1; }

DUR=${BENCH_DURATION:-10s}
STARTS=${BENCH_STARTS:-20}
UP_RUNS=${BENCH_UP_RUNS:-5}
HRUNS=${BENCH_HEALTH_RUNS:-20}
ONLY=${BENCH_ONLY:-http,start,health}
# Debian's python3 (the one python3-fastapi/-uvicorn/-redis are installed
# for), not whatever python3 comes first in PATH (pyenv, venv).
PY=/usr/bin/python3

want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

for t in wrk nginx hyperfine redis-server curl cc; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing (bash scripts/install-deps.sh bench)" >&2; exit 1; }
done
"$PY" -c 'import fastapi, uvicorn, redis' 2>/dev/null ||
	{ echo "bench: $PY lacks fastapi/uvicorn/redis (apt-get install python3-fastapi python3-uvicorn python3-redis)" >&2; exit 1; }

stamp=$(date +%Y%m%d-%H%M%S)
RES="$root/bench/results/$stamp"
mkdir -p "$RES"
ln -sfn "$stamp" "$root/bench/results/latest"
TMP=$(mktemp -d /tmp/autobot-bench.XXXXXX)
SUMMARY="$RES/summary.txt"
: >"$SUMMARY"

PIDS=()
cleanup() {
	local i p
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		p=${PIDS[i]}
		kill -TERM "$p" 2>/dev/null
	done
	for ((i = 0; i < 30; i++)); do
		local alive=0
		for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >>"$SUMMARY"; }
say() { printf '[bench] %s\n' "$*" >&2; }

# bg NAME CMD... : start CMD in the background, output to $RES/NAME.log.
bg() {
	local name=$1
	shift
	"$@" >"$RES/$name.log" 2>&1 &
	PIDS+=($!)
	LAST_PID=$!
}
# stop PID: SIGTERM, wait up to 3 s, SIGKILL.
stop() {
	local p=$1 i
	kill -TERM "$p" 2>/dev/null || return 0
	for ((i = 0; i < 30; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
# wait_http URL [SECONDS]: until URL answers 200 (bounded).
wait_http() {
	local url=$1 lim=${2:-10} i
	for ((i = 0; i < lim * 20; i++)); do
		curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench: $url did not answer 200 within ${lim}s" >&2
	return 1
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }
# rss_line PID: "VmRSS x MiB (anon a, file f, shmem s kB; N threads)"
rss_line() {
	awk '/^VmRSS:/ {r = $2} /^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} /^RssShmem:/ {s = $2}
		/^Threads:/ {t = $2} END {printf "%.1f MiB (%d kB: anon %d, file %d, shmem %d; %d threads)", r/1024, r, a, f, s, t}' "/proc/$1/status"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

mapfile -t P < <("$PY" "$here/freeport.py" 13)
REDIS_PORT=${P[0]} COORD_PORT=${P[1]} FA_PORT=${P[2]} NG_PORT=${P[3]}
SI_PORTS=("${P[4]}" "${P[5]}" "${P[6]}" "${P[7]}")
BH_PORT=${P[8]} DEAD_PORT=${P[9]} START_PORT=${P[10]} UP_PORT=${P[11]} UP_REDIS_PORT=${P[12]}

# Benchmark a private copy of the binary: a rebuild of $build during the
# run (others may be working in this tree) must not swap or break it.
AB_SRC=$AB
AB="$TMP/autobot"
cp "$AB_SRC" "$AB" || exit 1

# The start-time driver (C): fork/exec, then connect+GET every 1 ms.
cc -O2 -std=gnu17 -Wall -o "$TMP/startlat" "$here/startlat.c" || exit 1

{
	echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel: $(uname -r)"
	echo "autobot: $("$AB" version 2>&1 | head -1) ($AB_SRC, copied; sha256 $(sha256sum "$AB" | cut -c1-16), built $(date -u -r "$AB_SRC" '+%Y-%m-%d %H:%M UTC'))"
	echo "wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}')  nginx: $(nginx -v 2>&1 | sed 's/.*\///')  redis: $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')  hyperfine: $(hyperfine --version | awk '{print $2}')"
	echo "fastapi: $("$PY" -c 'import fastapi, uvicorn; print(fastapi.__version__, "uvicorn", uvicorn.__version__)')  python: $("$PY" -V 2>&1 | awk '{print $2}')  uvloop: $("$PY" -c 'import uvloop' 2>/dev/null && echo yes || echo no)  httptools: $("$PY" -c 'import httptools' 2>/dev/null && echo yes || echo no)"
	echo "wrk duration: $DUR per run"
} >>"$SUMMARY"

# --- the shared Redis, the state dir, the coordinator under test ----------
STATE="$TMP/state"
mkdir -p "$STATE" "$TMP/redis"
chmod 700 "$STATE"
PW=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
(umask 077 && printf '%s\n' "$PW" >"$STATE/redis.password")
bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --requirepass "$PW" \
	--save '' --appendonly no --dir "$TMP/redis" --daemonize no

for ((i = 0; i < 100; i++)); do
	redis-cli -p "$REDIS_PORT" --no-auth-warning -a "$PW" ping 2>/dev/null | grep -q PONG && break
	sleep 0.05
done

COORD_ARGS=(serve coordinator --state-dir "$STATE" --set "services.coordinator.port=$COORD_PORT"
	--set "services.redis.port=$REDIS_PORT" --set "services.redis.password=$PW"
	--set services.redis.managed=false)
# Its log (one INFO line per authenticated request: tens of MB under wrk)
# goes to the temp dir; the first and last lines are kept in the results.
"$AB" "${COORD_ARGS[@]}" >"$TMP/coordinator.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
wait_http "http://127.0.0.1:$COORD_PORT/api/health" || exit 1
TOKEN=$(cat "$STATE/admin.token")
AUTH="Authorization: Bearer $TOKEN"
# Wait for the coordinator's own registry entry so /api/services lists it.
for ((i = 0; i < 40; i++)); do
	curl -fsS -H "$AUTH" "http://127.0.0.1:$COORD_PORT/api/services" 2>/dev/null | grep -q '"role"' && break
	sleep 0.1
done
curl -fsS "http://127.0.0.1:$COORD_PORT/api/health" >"$TMP/body.json"
curl -fsS -H "$AUTH" "http://127.0.0.1:$COORD_PORT/api/services" >"$RES/autobot-services.json"
cp "$TMP/body.json" "$RES/autobot-health-body.json"

# --- FastAPI + uvicorn (one worker) ------------------------------------------
BENCH_BODY_FILE="$TMP/body.json" BENCH_REDIS_PORT=$REDIS_PORT BENCH_REDIS_PASSWORD=$PW \
	BENCH_TOKEN=$TOKEN bg fastapi "$PY" -m uvicorn fastapi_app:app --app-dir "$here" \
	--host 127.0.0.1 --port "$FA_PORT" --log-level warning

# --- nginx: the static-JSON anchor plus the four health stand-ins ----------
NGX="$TMP/nginx"
mkdir -p "$NGX/tmp"
standins=""
for p in "${SI_PORTS[@]}"; do
	standins+="    server { listen 127.0.0.1:$p; location / { default_type application/json; return 200 '{\"status\":\"ok\"}'; } }"$'\n'
done
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
BODY=$(cat "$TMP/body.json") NGX="$NGX" NG_PORT=$NG_PORT STANDINS=$standins USERLINE=$user_line \
	"$PY" - "$here/nginx.conf.in" "$NGX/nginx.conf" <<'EOF'
import os, sys
s = open(sys.argv[1]).read()
for k, v in (("@PREFIX@", os.environ["NGX"]), ("@PORT@", os.environ["NG_PORT"]),
             ("@BODY@", os.environ["BODY"]), ("@STANDINS@", os.environ["STANDINS"]),
             ("@USER@", os.environ["USERLINE"])):
    s = s.replace(k, v)
open(sys.argv[2], "w").write(s)
EOF
cp "$NGX/nginx.conf" "$RES/nginx.conf"
bg nginx nginx -p "$NGX" -c "$NGX/nginx.conf" -g 'daemon off;'

wait_http "http://127.0.0.1:$FA_PORT/api/health" 20 || exit 1
wait_http "http://127.0.0.1:$NG_PORT/api/health" || exit 1
for p in "${SI_PORTS[@]}"; do wait_http "http://127.0.0.1:$p/health" || exit 1; done
curl -fsS -H "$AUTH" "http://127.0.0.1:$FA_PORT/api/services" >"$RES/fastapi-services.json" ||
	{ echo "bench: FastAPI /api/services failed" >&2; exit 1; }

# --- 4. idle RSS ------------------------------------------------------------
sleep 2
RSS_IDLE=$(rss_line "$COORD_PID")
cp "/proc/$COORD_PID/smaps_rollup" "$RES/coordinator-smaps-idle.txt" 2>/dev/null
awk '$6 != "" {print $2, $6}' "/proc/$COORD_PID/maps" | sort -u >"$RES/coordinator-maps.txt" 2>/dev/null

# --- 1. HTTP throughput -----------------------------------------------------
declare -A RPS P99 ERRS
# wrk_one KEY THREADS CONNS URL [HEADER]
wrk_one() {
	local key=$1 t=$2 c=$3 url=$4 hdr=${5:-}
	local out="$RES/wrk-$key-t$t-c$c.txt"
	if [ -n "$hdr" ]; then
		timeout 60 wrk -t"$t" -c"$c" -d"$DUR" --latency -H "$hdr" "$url" >"$out" 2>&1
	else
		timeout 60 wrk -t"$t" -c"$c" -d"$DUR" --latency "$url" >"$out" 2>&1
	fi
	RPS[$key,$t]=$(awk '/^Requests\/sec:/ {print $2}' "$out")
	P99[$key,$t]=$(awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		m = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; printf "%.2f", m}' "$out")
	ERRS[$key,$t]=$(awk '/Non-2xx|Socket errors/ {sub(/^ +/, ""); printf "%s; ", $0}' "$out")
	say "wrk $key -t$t -c$c: ${RPS[$key,$t]} req/s, p99 ${P99[$key,$t]} ms ${ERRS[$key,$t]}"
	sleep 1
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

if want http; then
	say "HTTP throughput ($DUR per run)"
	for tc in "1 50" "2 100"; do
		set -- $tc
		# Interleaved: each autobot run is followed by its anchors.
		wrk_one ab_health "$1" "$2" "http://127.0.0.1:$COORD_PORT/api/health"
		wrk_one fa_health "$1" "$2" "http://127.0.0.1:$FA_PORT/api/health"
		wrk_one ng_health "$1" "$2" "http://127.0.0.1:$NG_PORT/api/health"
		wrk_one ab_services "$1" "$2" "http://127.0.0.1:$COORD_PORT/api/services" "$AUTH"
		wrk_one fa_services "$1" "$2" "http://127.0.0.1:$FA_PORT/api/services" "$AUTH"
	done
	sleep 2
	RSS_AFTER=$(rss_line "$COORD_PID")
	HWM_AFTER=$(hwm_kb "$COORD_PID")

	log ""
	log "## 1. HTTP throughput (wrk, keep-alive, $DUR per run; req/s and p99 latency in ms)"
	log ""
	log "| server / route | -t1 -c50 req/s | p99 ms | -t2 -c100 req/s | p99 ms |"
	log "|---|---:|---:|---:|---:|"
	for k in ab_health fa_health ng_health ab_services fa_services; do
		case $k in
		ab_health) n="autobot GET /api/health" ;;
		fa_health) n="FastAPI+uvicorn GET /api/health (same body)" ;;
		ng_health) n="nginx static JSON (same body)" ;;
		ab_services) n="autobot GET /api/services (SMEMBERS+MGET)" ;;
		fa_services) n="FastAPI+uvicorn GET /api/services (SMEMBERS+MGET)" ;;
		esac
		log "| $n | ${RPS[$k,1]} | ${P99[$k,1]} | ${RPS[$k,2]} | ${P99[$k,2]} |"
	done
	log ""
	log "| ratio | -t1 -c50 | -t2 -c100 | goal |"
	log "|---|---:|---:|---|"
	log "| autobot/FastAPI, /api/health | $(ratio "${RPS[ab_health,1]}" "${RPS[fa_health,1]}") | $(ratio "${RPS[ab_health,2]}" "${RPS[fa_health,2]}") | >= 10 |"
	log "| autobot/FastAPI, /api/services | $(ratio "${RPS[ab_services,1]}" "${RPS[fa_services,1]}") | $(ratio "${RPS[ab_services,2]}" "${RPS[fa_services,2]}") | >= 10 |"
	log "| autobot/nginx, /api/health | $(ratio "${RPS[ab_health,1]}" "${RPS[ng_health,1]}") | $(ratio "${RPS[ab_health,2]}" "${RPS[ng_health,2]}") | >= 0.5 |"
	errs=""
	for k in "${!ERRS[@]}"; do [ -n "${ERRS[$k]}" ] && errs+="  $k: ${ERRS[$k]}"$'\n'; done
	if [ -n "$errs" ]; then
		log ""
		log "wrk reported errors or non-2xx answers:"
		log "$errs"
	fi
	log ""
	log "## 4. Coordinator RSS (VmRSS of \`autobot serve coordinator\`, goal < 10 MB)"
	log ""
	log "| when | VmRSS |"
	log "|---|---:|"
	log "| idle 2 s after start | $RSS_IDLE |"
	log "| 2 s after the wrk runs | $RSS_AFTER |"
	log "| peak (VmHWM) | $(awk -v k="$HWM_AFTER" 'BEGIN {printf "%.1f MiB (%d kB)", k/1024, k}') |"
fi

# --- 2. start time ----------------------------------------------------------
if want start; then
	say "start time ($STARTS runs each)"
	SSTATE="$TMP/sstate"
	mkdir -p "$SSTATE"
	chmod 700 "$SSTATE"
	cp -p "$STATE/redis.password" "$STATE/admin.token" "$STATE/cluster.token" "$SSTATE/" 2>/dev/null
	common=(--state-dir "$SSTATE" --set "services.coordinator.port=$START_PORT"
		--set "services.redis.password=$PW" --set services.redis.managed=false)
	timeout 300 "$TMP/startlat" http "$START_PORT" "$STARTS" 5000 -- "$AB" serve coordinator \
		"${common[@]}" --set "services.redis.port=$REDIS_PORT" >"$RES/start-redis-up.txt"
	timeout 300 "$TMP/startlat" http "$START_PORT" "$STARTS" 5000 -- "$AB" serve coordinator \
		"${common[@]}" --set "services.redis.port=$DEAD_PORT" >"$RES/start-redis-down.txt"

	# autobot up: a fresh state dir each run (first start: secrets generated,
	# redis creates its AOF), then runs reusing one state dir.
	: >"$RES/up-fresh.txt"
	for ((i = 0; i < UP_RUNS; i++)); do
		d="$TMP/up-fresh-$i"
		timeout 60 "$TMP/startlat" line 1 10000 "autobot is up" -- "$AB" up --state-dir "$d" \
			--set "services.coordinator.port=$UP_PORT" --set "services.redis.port=$UP_REDIS_PORT" |
			grep -v '^#' >>"$RES/up-fresh.txt"
		rm -rf "$d"
	done
	d="$TMP/up-again"
	timeout 60 "$TMP/startlat" line 1 10000 "autobot is up" -- "$AB" up --state-dir "$d" \
		--set "services.coordinator.port=$UP_PORT" --set "services.redis.port=$UP_REDIS_PORT" >/dev/null
	timeout 120 "$TMP/startlat" line "$UP_RUNS" 10000 "autobot is up" -- "$AB" up --state-dir "$d" \
		--set "services.coordinator.port=$UP_PORT" --set "services.redis.port=$UP_REDIS_PORT" >"$RES/up-again.txt"
	# One more, kept running to check that the cluster says ok right after the line.
	bg up-check "$AB" up --state-dir "$d" --set "services.coordinator.port=$UP_PORT" \
		--set "services.redis.port=$UP_REDIS_PORT"
	UPPID=$LAST_PID
	for ((i = 0; i < 100; i++)); do grep -qs 'autobot is up' "$RES/up-check.log" && break; sleep 0.05; done
	UP_CLUSTER=$(curl -sS --max-time 2 -H "Authorization: Bearer $(cat "$d/admin.token")" \
		"http://127.0.0.1:$UP_PORT/api/health/cluster" | tee "$RES/up-cluster.json" |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin).get("status"))' 2>/dev/null)
	stop "$UPPID"

	# summary of a column of figures: median p90 min max (nearest rank p90)
	stats() {
		grep -v '^#' "$1" | grep -v timeout | sort -n | awk '{v[NR] = $1} END {
			if (NR == 0) { print "n=0"; exit }
			med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			k = int(0.9 * NR + 0.999999); if (k < 1) k = 1
			printf "| %d | %.1f | %.1f | %.1f | %.1f |", NR, med, v[k], v[1], v[NR] }'
	}
	to=$(cat "$RES"/start-*.txt "$RES"/up-*.txt | grep -c timeout)
	log ""
	log "## 2. Start time (ms; driver: bench/startlat.c, fork+exec then connect+GET /api/health every 1 ms)"
	log ""
	log "| what | runs | median | p90 | min | max | goal |"
	log "|---|---:|---:|---:|---:|---:|---|"
	log "| serve coordinator to first 200, Redis up $(stats "$RES/start-redis-up.txt") < 50 ms |"
	log "| serve coordinator to first 200, Redis down (nothing on the port) $(stats "$RES/start-redis-down.txt") < 50 ms |"
	log "| autobot up to 'autobot is up', fresh state dir $(stats "$RES/up-fresh.txt") < 1000 ms |"
	log "| autobot up to 'autobot is up', existing state dir $(stats "$RES/up-again.txt") < 1000 ms |"
	log ""
	log "cluster status right after 'autobot is up': ${UP_CLUSTER:-unknown}; runs that timed out: $to"
fi

# --- 3. autobot health ------------------------------------------------------
if want health; then
	say "autobot health ($HRUNS runs each)"
	bg blackhole "$PY" "$here/blackhole.py" "$BH_PORT" 600
	BH_PID=$LAST_PID
	for ((i = 0; i < 40; i++)); do
		"$PY" -c "import socket; socket.create_connection(('127.0.0.1', $BH_PORT), 0.2)" 2>/dev/null && break
		sleep 0.05
	done
	mkcfg() { # mkcfg FILE LLM_PORT
		cat >"$1" <<EOF
# autobot health benchmark: six services on loopback. coordinator and redis
# are real; frontend, npu, ai and llm are STAND-INS (nginx server blocks
# answering GET /health with {"status":"ok"}), as those roles are not built yet.
services:
  coordinator: { host: 127.0.0.1, port: $COORD_PORT }
  redis: { host: 127.0.0.1, port: $REDIS_PORT, managed: false }
  frontend: { host: 127.0.0.1, port: ${SI_PORTS[0]} }
  npu: { host: 127.0.0.1, port: ${SI_PORTS[1]} }
  ai: { host: 127.0.0.1, port: ${SI_PORTS[2]} }
  llm: { host: 127.0.0.1, port: $2 }
EOF
	}
	mkcfg "$TMP/health.yaml" "${SI_PORTS[3]}"
	mkcfg "$TMP/health-bh.yaml" "$BH_PORT"
	cp "$TMP/health.yaml" "$RES/health.yaml"
	cp "$TMP/health-bh.yaml" "$RES/health-blackhole.yaml"
	"$AB" health --config "$TMP/health.yaml" --state-dir "$STATE" >"$RES/health-table.txt" 2>&1
	H_RC=$?
	timeout 10 "$AB" health --config "$TMP/health-bh.yaml" --state-dir "$STATE" --timeout 500 \
		>"$RES/health-blackhole-table.txt" 2>&1
	HB_RC=$?
	timeout 120 hyperfine -N --warmup 3 --runs "$HRUNS" --export-json "$RES/health.json" \
		"$AB health --config $TMP/health.yaml --state-dir $STATE" >"$RES/health-hyperfine.txt" 2>&1
	timeout 120 hyperfine -N -i --warmup 1 --runs "$HRUNS" --export-json "$RES/health-blackhole.json" \
		"$AB health --config $TMP/health-bh.yaml --state-dir $STATE --timeout 500" \
		>"$RES/health-blackhole-hyperfine.txt" 2>&1
	stop "$BH_PID"
	hstats() {
		"$PY" - "$1" 2>/dev/null <<'EOF' || echo "| hyperfine failed, see ${1%.json}-hyperfine.txt |"
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]
t = sorted(x * 1000 for x in r["times"])
k = max(1, min(len(t), int(0.9 * len(t) + 0.999999)))
codes = sorted(set(r.get("exit_codes", [])))
print("| %d | %.1f | %.1f | %.1f | %.1f | %s |" % (len(t), statistics.median(t), t[k - 1], t[0], t[-1],
      ",".join(str(c) for c in codes)))
EOF
	}
	log ""
	log "## 3. autobot health, six services on loopback (ms, hyperfine -N wall time)"
	log ""
	log "coordinator and redis are real; frontend, npu, ai, llm are nginx STAND-INS answering {\"status\":\"ok\"}."
	log ""
	log "| case | runs | median | p90 | min | max | exit codes | goal |"
	log "|---|---:|---:|---:|---:|---:|---|---|"
	log "| all six up $(hstats "$RES/health.json") < 100 ms |"
	log "| llm black-holed (listens, never accepts), --timeout 500 $(hstats "$RES/health-blackhole.json") < 600 ms |"
	log ""
	log "single-run exit codes: all up $H_RC, black-holed $HB_RC (tables in health-table.txt, health-blackhole-table.txt)"
fi

if [ -f "$TMP/coordinator.log" ]; then
	{ head -20 "$TMP/coordinator.log"; echo "... ($(wc -l <"$TMP/coordinator.log") lines, $(wc -c <"$TMP/coordinator.log") bytes in all)"; tail -20 "$TMP/coordinator.log"; } >"$RES/coordinator.log"
fi
log ""
log "raw output: $RES"
say "done; summary in $SUMMARY"
echo
cat "$SUMMARY"
