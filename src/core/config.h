/*
 * config.h - AutoBot's configuration: one YAML file, then a .env file, then
 * AUTOBOT_<SECTION>_<KEY> environment variables, then command-line
 * settings; each layer overrides the one before (DESIGN section 3).
 *
 * Every key is described once, in the key table of config.c, which drives
 * parsing, the environment names, validation, the defaults and the
 * redacted dump. Errors name where the bad value came from (file and line,
 * environment variable or flag), the key, and what was expected.
 */
#ifndef AB_CONFIG_H
#define AB_CONFIG_H

#include "cidr.h"
#include "common.h"

#include <jansson.h>

enum ab_role {
	AB_ROLE_COORDINATOR = 0,
	AB_ROLE_FRONTEND,
	AB_ROLE_NPU,
	AB_ROLE_REDIS,
	AB_ROLE_AI,
	AB_ROLE_BROWSER,
	AB_ROLE_LLM,
	AB_ROLE_DESKTOP,
	AB_ROLE__COUNT
};

const char *ab_role_name(enum ab_role r);
/* Returns the role for name, or AB_EINVAL. */
int ab_role_parse(const char *name);
int ab_role_default_port(enum ab_role r);

struct ab_service_cfg {
	char *host_ref;  /* host as written: a name from hosts: or an address */
	char *host;      /* resolved address (hosts: lookup applied) */
	int port;
	bool enabled;    /* expected to run: probed by health */
	bool managed;    /* redis only: autobot up starts it */
	char *password;  /* redis only; "" = no AUTH */
};

struct ab_host_cfg {
	char *name;
	char *addr;
};

struct ab_config {
	char *path;              /* the YAML file read, or NULL */
	char *state_dir;
	char *cluster_name;
	char *cluster_token;     /* "" when not configured */
	struct ab_host_cfg *hosts;
	size_t n_hosts;
	struct ab_service_cfg services[AB_ROLE__COUNT];
	char **allow_cidrs;      /* as written */
	struct ab_cidr *allow;   /* parsed */
	size_t n_allow;
	char **cors_origins;
	size_t n_cors;
	long long max_body_bytes;
	long long max_header_bytes;
	int probe_ms;
	int redis_connect_ms;
	int redis_command_ms;
	int request_timeout_ms;
	int http_threads;
	int log_level;           /* AB_LOG_* */
	bool log_json;
	char *log_file;          /* log.file: also append lines here ("" = no file) */
	long long log_stream_max; /* log.stream_max: entries kept in ab:log (0 = no stream) */
	struct {
		char *provider;      /* services.llm.provider: builtin | ollama | openai */
		char *url;           /* services.llm.url: upstream of a provider */
		char *api_key;       /* services.llm.api_key (secret) */
		char *model;         /* services.llm.model: default model name or path */
		char *models_dir;    /* llm.models_dir ("" = <state_dir>/models) */
		char *ollama_dir;    /* llm.ollama_dir ("" = $OLLAMA_MODELS or ~/.ollama/models) */
		int keep_alive_s;    /* llm.keep_alive_s */
		int max_loaded;      /* llm.max_loaded */
		long long mem_budget_mb; /* llm.mem_budget_mb (0 = MemAvailable) */
		int queue_max;       /* llm.queue_max */
		int parallel;        /* llm.parallel */
		int threads;         /* llm.threads (0 = by model size) */
		int num_ctx;         /* llm.num_ctx */
	} llm;
	char *redis_module;      /* services.redis.module ("" = found; "none") */
	struct {
		char *embedder;      /* kb.embedder: builtin | llm | ollama | openai */
		char *embed_model;   /* kb.embed_model */
		char *embed_url;     /* kb.embed_url */
		char *embed_api_key; /* kb.embed_api_key (secret) */
		int chunk_tokens;    /* kb.chunk_tokens */
		int chunk_overlap;   /* kb.chunk_overlap */
		int max_upload_mb;   /* kb.max_upload_mb */
		int workers;         /* kb.workers */
		int job_attempts;    /* kb.job_attempts */
		int job_visibility_ms; /* kb.job_visibility_ms */
	} kb;
	struct {
		char *ssh_user;      /* deploy.ssh_user ("" = the local user name) */
		int ssh_port;        /* deploy.ssh_port */
		char *ssh_key;       /* deploy.ssh_key ("" = ~/.ssh/autobot_distributed) */
		char *mode;          /* deploy.mode: auto | systemd | detached */
		char *prefix;        /* deploy.prefix: bin/autobot, lib/autobot/autobot.so */
		char *remote_state_dir; /* deploy.remote_state_dir */
		char *config_path;   /* deploy.config_path: where the config goes */
		char *authorized_keys; /* deploy.authorized_keys (relative = to the remote home) */
		int health_timeout_ms; /* deploy.health_timeout_ms */
	} deploy;
};

/* Where the layers come from. Any pointer may be NULL. */
struct ab_config_src {
	const char *file;        /* YAML file; NULL = none (all defaults) */
	const char *env_file;    /* .env file; NULL = "./.env" if it exists */
	char *const *environ;    /* NULL = no environment layer */
	const char *const *sets; /* "key=value" flag settings */
	size_t n_sets;
	const char *state_dir;   /* --state-dir flag */
};

/*
 * Loads and validates the layered config. On success *out is a new config
 * (free with ab_config_free) and 0 is returned. On failure returns
 * AB_ECONFIG and writes one message into err, e.g.
 *   "cfg.yaml:12: timeouts.probe_ms: expected an integer from 1 to 600000, got \"x\""
 */
int ab_config_load(const struct ab_config_src *src, struct ab_config **out,
		   char *err, size_t errlen);
/* The config with no file and no environment: every role on 127.0.0.1. */
struct ab_config *ab_config_default(void);
void ab_config_free(struct ab_config *cfg);

/* "http://host:port" of a role (caller frees). */
char *ab_config_service_url(const struct ab_config *cfg, enum ab_role r);

/* The effective config as JSON; secrets replaced by "[redacted]" (set or
 * not, so their presence is visible) when redact is true. Caller owns the
 * returned reference (json_decref). */
json_t *ab_config_to_json(const struct ab_config *cfg, bool redact);

/* Every key the table knows, with its environment variable name, for
 * `autobot config keys` and the docs: calls fn once per key. */
void ab_config_each_key(void (*fn)(void *ud, const char *key, const char *env,
				   const char *type, const char *help),
			void *ud);

#endif
