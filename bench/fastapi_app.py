"""fastapi_app.py - the FastAPI + uvicorn anchor for bench/run.sh.

Run with Debian's python3 (one worker):
    BENCH_BODY_FILE=... BENCH_REDIS_PORT=... BENCH_REDIS_PASSWORD=... \
    BENCH_TOKEN=... python3 -m uvicorn fastapi_app:app --app-dir bench \
        --host 127.0.0.1 --port P --log-level warning

GET /api/health   returns the bytes of BENCH_BODY_FILE (a copy of autobot's
                  /api/health body) as application/json, no Redis round trip.
GET /api/services checks the bearer token like autobot does, then does what
                  autobot's registry listing does against the same Redis:
                  SMEMBERS ab:svc:index, one MGET of those keys, parse each
                  JSON value, sort by (role, id), answer {"services": [...]}.
"""
import json
import os

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

BODY = open(os.environ["BENCH_BODY_FILE"], "rb").read()
TOKEN = os.environ.get("BENCH_TOKEN", "")
REDIS = aioredis.Redis(
    host="127.0.0.1",
    port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
    password=os.environ.get("BENCH_REDIS_PASSWORD") or None,
    max_connections=1024,  # more than wrk's 100 connections: never 'Too many connections'
)
INDEX = "ab:svc:index"

app = FastAPI()


@app.get("/api/health")
async def health():
    return Response(content=BODY, media_type="application/json")


@app.get("/api/services")
async def services(request: Request):
    if request.headers.get("authorization", "") != "Bearer " + TOKEN:
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    members = sorted(await REDIS.smembers(INDEX))
    items = []
    if members:
        for v in await REDIS.mget(members):
            if v is None:
                continue
            try:
                o = json.loads(v)
            except ValueError:
                continue
            if isinstance(o, dict):
                items.append(o)
    items.sort(key=lambda o: (o.get("role", ""), o.get("id", "")))
    return {"services": items}
