/*
 * registry.h - service registration and cluster health (DESIGN section 5).
 *
 * Each service writes ab:svc:<role>:<id> (a JSON object: role, id, url,
 * version, pid, started_ms, load) with a 3 s TTL and refreshes it every
 * second from a heartbeat thread; its key is also in the set
 * ab:svc:index so that listing needs no SCAN. A service that dies
 * vanishes from the registry within 3 s without any probe.
 *
 * Cluster health merges the services the config expects with those in
 * the registry and probes each concurrently (HTTP GET /health; Redis by
 * AUTH + PING), each within one probe timeout.
 */
#ifndef AB_REGISTRY_H
#define AB_REGISTRY_H

#include "config.h"
#include "redis.h"

#define AB_KEY_SVC_PREFIX "ab:svc:"
#define AB_KEY_SVC_INDEX "ab:svc:index"
#define AB_REGISTRY_TTL_S 3

struct ab_registry;

/* Starts heartbeats for one service. role/id/url are copied. */
int ab_registry_start(struct ab_redis *r, const char *role, const char *id,
		      const char *url, struct ab_registry **out);
/* Stops the heartbeat and deletes the entry (best effort). NULL ok. */
void ab_registry_stop(struct ab_registry *reg);
/* Sets the load figure published with each heartbeat (e.g. requests in
 * flight). Until it is called, the host's 1-minute load average per core
 * is published. */
void ab_registry_set_load(struct ab_registry *reg, double load);

/* Lists live entries as a JSON array of objects (caller decrefs), or NULL
 * with *err set (AB_EUNAVAIL when Redis is down). */
json_t *ab_registry_list(struct ab_redis *r, int *err);
/* The command ab_registry_list sends (4 arguments into argv), and the
 * parsing of its reply, for callers with their own connection (health
 * reads the registry on its probe's connection, within the probe's time). */
void ab_registry_list_cmd(const char **argv);
json_t *ab_registry_list_reply(const redisReply *vals, int *err);

struct ab_probe {
	char role[24];
	char id[64];         /* registry id, or "" when only configured */
	char url[256];
	char source[12];     /* "config", "registry" or "both" */
	char status[12];     /* "ok", "degraded" or "down" */
	double latency_ms;
	char error[200];     /* why not ok; "" when ok */
};

/*
 * Probes the services cfg enables, merged with the registry entries when
 * r is given and up, all concurrently, each within timeout_ms. *out is an
 * array (free()) of *n entries in role order. Returns 0 or a negative code.
 * The redis password comes from cfg.
 */
int ab_health_cluster(const struct ab_config *cfg, struct ab_redis *r, int timeout_ms,
		      struct ab_probe **out, size_t *n);
/* Worst of the statuses: "ok", "degraded" or "down". */
const char *ab_health_overall(const struct ab_probe *p, size_t n);
/* {"status":..,"elapsed_ms":..,"services":[...]} (caller decrefs). */
json_t *ab_health_to_json(const struct ab_probe *p, size_t n, double elapsed_ms);

#endif
