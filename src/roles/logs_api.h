/*
 * logs_api.h - the coordinator's log routes (logs_api.c): the ab:log
 * stream of every role on every host, read over HTTP.
 *
 *   GET /api/logs         ?role=&host=&level=&since=&limit= -> JSON array,
 *                         newest last (limit 1..1000, default 100)
 *   GET /api/logs/stream  the same filters; server-sent events, one per
 *                         new line ("id: <stream id>", "data: <entry>");
 *                         ?limit=N first replays the last N lines, and a
 *                         Last-Event-ID header resumes after that entry
 *
 * Both need a viewer token. An entry is {id, ts, level, role, host, msg,
 * rid?} as made by ab_logsink_entry_json().
 */
#ifndef AB_LOGS_API_H
#define AB_LOGS_API_H

#include "http.h"

void ab_logs_h_list(struct ab_http_req *req);
void ab_logs_h_stream(struct ab_http_req *req);

#endif
