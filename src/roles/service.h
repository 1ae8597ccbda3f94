/*
 * service.h - what every role shares when it runs: the config, secrets,
 * Redis client, registry heartbeat, HTTP server with /health, bearer-token
 * auth, and an orderly shutdown on SIGTERM/SIGINT.
 *
 * A role is one struct ab_role_def in one file under src/roles: its route
 * table, optional init/fini, and optional extra health checks. Adding a
 * role means writing that file and listing it in roles.c.
 */
#ifndef AB_SERVICE_H
#define AB_SERVICE_H

#include "config.h"
#include "http.h"
#include "redis.h"
#include "registry.h"
#include "secrets.h"

#include <jansson.h>

struct ab_service;

struct ab_role_def {
	enum ab_role role;
	const char *summary;
	const struct ab_route *routes;
	size_t n_routes;
	/* Called before the server starts; svc->state is the role's. */
	int (*init)(struct ab_service *svc, char *err, size_t errlen);
	void (*fini)(struct ab_service *svc);
	/* Appends role checks to the "checks" object of /health, each as
	 * ',"name":{"status":..}'; returns the worst status it found:
	 * 0 ok, 1 degraded, 2 down. NULL = none. */
	int (*health)(struct ab_service *svc, struct ab_buf *checks);
};

struct ab_service {
	const struct ab_config *cfg;
	const struct ab_role_def *def;
	struct ab_secrets secrets;
	struct ab_redis *redis;
	struct ab_registry *reg;
	struct ab_http_server *http;
	struct ab_route *routes;  /* common + role routes (owned) */
	size_t n_routes;
	char id[80];
	char url[320];
	int64_t started_ms;       /* monotonic */
	int64_t started_wall_ms;
	void *state;              /* the role's own */
};

/* Implemented roles, and the lookup by name (NULL if not implemented). */
const struct ab_role_def *ab_role_def_find(const char *name);
/* Names of implemented roles, NULL-terminated. */
extern const char *const ab_implemented_roles[];

struct ab_serve_opts {
	const char *bind_override;  /* address to bind instead of the service host */
	int port_override;          /* > 0: port instead of the configured one */
};

/*
 * Runs def with cfg until SIGTERM or SIGINT. Blocks. Returns the process
 * exit status (0 on a clean stop). cfg stays owned by the caller; the
 * effective Redis password is filled into it (ab_secrets_apply).
 */
int ab_service_run(struct ab_config *cfg, const struct ab_role_def *def,
		   const struct ab_serve_opts *opts);

/* Appends the /health document of svc to out; sets *http_status. */
void ab_service_health(struct ab_service *svc, struct ab_buf *out, int *http_status);

/* Handler shared by every role for GET /health. */
void ab_service_health_handler(struct ab_http_req *req);

/* Answers 503 {"error":{"code":"redis_unavailable",...}} or 500 for a
 * failed Redis call with error code err, and frees reply (NULL ok). */
void ab_service_reply_redis_error(struct ab_http_req *req, int err, redisReply *reply);

#endif
