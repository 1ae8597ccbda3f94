/*
 * kb_api.h - the coordinator's knowledge-base and job routes (kb_api.c).
 */
#ifndef AB_KB_API_H
#define AB_KB_API_H

#include "http.h"
#include "service.h"

struct ab_kb;
struct ab_kb_api;

/* The knowledge base of a coordinator and its ingestion workers. The
 * caller frees *out with ab_kb_api_free. */
int ab_kb_api_new(struct ab_service *svc, struct ab_kb_api **out, char *err, size_t errlen);
void ab_kb_api_free(struct ab_kb_api *a);
struct ab_kb *ab_kb_api_kb(struct ab_kb_api *a);
/* The coordinator's instance (coordinator.c). */
struct ab_kb_api *ab_coord_kb(struct ab_service *svc);

void ab_kb_h_add(struct ab_http_req *req);
void ab_kb_h_list(struct ab_http_req *req);
void ab_kb_h_get(struct ab_http_req *req);
void ab_kb_h_delete(struct ab_http_req *req);
void ab_kb_h_search(struct ab_http_req *req);
void ab_kb_h_stats(struct ab_http_req *req);
void ab_job_h_get(struct ab_http_req *req);
void ab_job_h_events(struct ab_http_req *req);
void ab_job_h_cancel(struct ab_http_req *req);

#endif
