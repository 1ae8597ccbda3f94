/*
 * config.c - loads AutoBot's layered configuration (DESIGN section 3):
 * defaults, then one YAML file, then a .env file, then AUTOBOT_* environment
 * variables, then --set flags and --state-dir; each layer overrides the one
 * before it, key by key (a list is replaced as a whole, hosts: are merged
 * by name).
 *
 * Everything about a key lives in one row of the static table keys[]: its
 * dotted path, type, where it is stored in struct ab_config, its range, its
 * default, whether it is secret, and its help text. The table drives YAML
 * parsing (including the "unknown key, expected one of" messages), the
 * environment names (AUTOBOT_ + path, dots to underscores, upper case),
 * validation, defaults, ab_config_to_json() and ab_config_each_key().
 *
 * ${VAR} and ${VAR:-default} in YAML scalars expand from the environment
 * first and then from the .env file; an unset variable without a default
 * expands to "". An unterminated "${" is an error.
 *
 * Only the first error is reported, as "<where><key>: <what was expected>",
 * where <where> is "file:line: " (YAML), "file:line: AUTOBOT_X: " (.env),
 * "environment AUTOBOT_X: " or "--set ".
 */
#include "config.h"

#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

/* ---- roles ------------------------------------------------------------ */

static const struct {
	const char *name;
	int port;
} roles[AB_ROLE__COUNT] = {
	[AB_ROLE_COORDINATOR] = {"coordinator", 8002},
	[AB_ROLE_FRONTEND] = {"frontend", 5173},
	[AB_ROLE_NPU] = {"npu", 8081},
	[AB_ROLE_REDIS] = {"redis", 6379},
	[AB_ROLE_AI] = {"ai", 8080},
	[AB_ROLE_BROWSER] = {"browser", 3000},
	[AB_ROLE_LLM] = {"llm", 11434},
	[AB_ROLE_DESKTOP] = {"desktop", 6080},
};

const char *ab_role_name(enum ab_role r)
{
	if ((int)r < 0 || r >= AB_ROLE__COUNT)
		return "?";
	return roles[r].name;
}

int ab_role_parse(const char *name)
{
	for (int i = 0; name && i < AB_ROLE__COUNT; i++)
		if (strcmp(name, roles[i].name) == 0)
			return i;
	return AB_EINVAL;
}

int ab_role_default_port(enum ab_role r)
{
	if ((int)r < 0 || r >= AB_ROLE__COUNT)
		return 0;
	return roles[r].port;
}

/* ---- the key table ------------------------------------------------------ */

enum ktype {
	T_STR,    /* char *; no control characters */
	T_NAME,   /* char *; [A-Za-z0-9._-], 1..64 */
	T_PATH,   /* char *; non-empty */
	T_INT,    /* int in [min,max] */
	T_LLONG,  /* long long in [min,max] */
	T_BOOL,   /* bool */
	T_LEVEL,  /* int AB_LOG_* */
	T_FORMAT, /* bool log_json: logfmt | json */
	T_HOST,   /* char *host_ref at off, resolved char *host at off2 */
	T_LIST,   /* char ** at off, size_t count at off2 */
	T_HOSTS,  /* the hosts: map */
};

struct key {
	const char *path;
	enum ktype type;
	size_t off;
	size_t off2;
	long long min, max;
	const char *def;  /* default as text, parsed like any value; NULL = computed */
	bool secret;
	int role;         /* services.<role>.*: the role, else -1 */
	int (*check)(const char *item, struct ab_buf *why); /* list items */
	const char *help;
};

static int check_cidr(const char *item, struct ab_buf *why);
static int check_provider(const char *item, struct ab_buf *why);
static int check_embedder(const char *item, struct ab_buf *why);
static int check_origin(const char *item, struct ab_buf *why);
static int check_deploy_mode(const char *item, struct ab_buf *why);

#define OFF(m) offsetof(struct ab_config, m)
#define SVC_BASE(n, R, p, en)                                                  \
	{.path = "services." n ".host", .type = T_HOST,                        \
	 .off = OFF(services[R].host_ref), .off2 = OFF(services[R].host),      \
	 .def = "127.0.0.1", .role = R,                                        \
	 .help = "host of the " n " service: a name from hosts: or an address"}, \
	{.path = "services." n ".port", .type = T_INT,                         \
	 .off = OFF(services[R].port), .min = 1, .max = 65535, .def = #p,      \
	 .role = R, .help = "TCP port of the " n " service"},                  \
	{.path = "services." n ".enabled", .type = T_BOOL,                     \
	 .off = OFF(services[R].enabled), .def = en, .role = R,                \
	 .help = "whether the " n " service is expected to run (default "      \
		 en ", or true when listed under services: in the file)"}

static const struct key keys[] = {
	{.path = "state_dir", .type = T_PATH, .off = OFF(state_dir), .role = -1,
	 .help = "directory for generated secrets and state (default "
		 "/var/lib/autobot as root, else $HOME/.local/state/autobot)"},
	{.path = "cluster.name", .type = T_NAME, .off = OFF(cluster_name),
	 .def = "autobot", .role = -1, .help = "name of this cluster"},
	{.path = "cluster.token", .type = T_STR, .off = OFF(cluster_token),
	 .def = "", .secret = true, .role = -1,
	 .help = "service-to-service bearer token (\"\" = not configured)"},
	{.path = "hosts", .type = T_HOSTS, .role = -1,
	 .help = "map of host names to addresses, usable in services.<role>.host"},
	SVC_BASE("coordinator", AB_ROLE_COORDINATOR, 8002, "true"),
	SVC_BASE("frontend", AB_ROLE_FRONTEND, 5173, "false"),
	SVC_BASE("npu", AB_ROLE_NPU, 8081, "false"),
	SVC_BASE("redis", AB_ROLE_REDIS, 6379, "true"),
	{.path = "services.redis.password", .type = T_STR,
	 .off = OFF(services[AB_ROLE_REDIS].password), .def = "", .secret = true,
	 .role = AB_ROLE_REDIS, .help = "Redis AUTH password (\"\" = no AUTH)"},
	{.path = "services.redis.managed", .type = T_BOOL,
	 .off = OFF(services[AB_ROLE_REDIS].managed), .role = AB_ROLE_REDIS,
	 .help = "whether autobot up starts a private redis-server (default: "
		 "true when the redis host is a loopback address)"},
	{.path = "services.redis.module", .type = T_STR, .off = OFF(redis_module), .def = "",
	 .role = AB_ROLE_REDIS,
	 .help = "autobot.so for the managed redis-server (\"\" = the one built or installed "
		 "with this autobot; \"none\" = load no module: no knowledge base)"},
	SVC_BASE("ai", AB_ROLE_AI, 8080, "false"),
	SVC_BASE("browser", AB_ROLE_BROWSER, 3000, "false"),
	SVC_BASE("llm", AB_ROLE_LLM, 11434, "true"),
	{.path = "services.llm.provider", .type = T_NAME, .off = OFF(llm.provider),
	 .def = "builtin", .role = AB_ROLE_LLM, .check = check_provider,
	 .help = "builtin (AutoBot's engine), ollama or openai (forward to services.llm.url)"},
	{.path = "services.llm.url", .type = T_STR, .off = OFF(llm.url), .def = "",
	 .role = AB_ROLE_LLM, .help = "base URL of the ollama/openai server the llm role forwards to"},
	{.path = "services.llm.api_key", .type = T_STR, .off = OFF(llm.api_key), .def = "",
	 .secret = true, .role = AB_ROLE_LLM,
	 .help = "bearer key sent to an openai provider (\"\" = none)"},
	{.path = "services.llm.model", .type = T_STR, .off = OFF(llm.model), .def = "",
	 .role = AB_ROLE_LLM, .help = "default model: a name from autobot model list or a file path"},
	SVC_BASE("desktop", AB_ROLE_DESKTOP, 6080, "false"),
	{.path = "security.allow_cidrs", .type = T_LIST, .off = OFF(allow_cidrs),
	 .off2 = OFF(n_allow), .def = "127.0.0.0/8,::1/128", .role = -1,
	 .check = check_cidr,
	 .help = "client address ranges every service accepts"},
	{.path = "security.cors_origins", .type = T_LIST, .off = OFF(cors_origins),
	 .off2 = OFF(n_cors), .def = "", .role = -1, .check = check_origin,
	 .help = "exact browser origins allowed by CORS (scheme://host[:port])"},
	{.path = "security.max_body_bytes", .type = T_LLONG,
	 .off = OFF(max_body_bytes), .min = 1, .max = 1LL << 30, .def = "1048576",
	 .role = -1, .help = "largest request body accepted"},
	{.path = "security.max_header_bytes", .type = T_LLONG,
	 .off = OFF(max_header_bytes), .min = 1024, .max = 1LL << 20,
	 .def = "16384", .role = -1, .help = "largest request header block accepted"},
	{.path = "timeouts.probe_ms", .type = T_INT, .off = OFF(probe_ms), .min = 1,
	 .max = 600000, .def = "500", .role = -1,
	 .help = "health probe timeout in milliseconds"},
	{.path = "timeouts.redis_connect_ms", .type = T_INT,
	 .off = OFF(redis_connect_ms), .min = 1, .max = 600000, .def = "2000",
	 .role = -1, .help = "Redis connect timeout in milliseconds"},
	{.path = "timeouts.redis_command_ms", .type = T_INT,
	 .off = OFF(redis_command_ms), .min = 1, .max = 600000, .def = "1000",
	 .role = -1, .help = "Redis command timeout in milliseconds"},
	{.path = "timeouts.request_ms", .type = T_INT,
	 .off = OFF(request_timeout_ms), .min = 1, .max = 3600000, .def = "30000",
	 .role = -1, .help = "HTTP request timeout in milliseconds"},
	{.path = "http.threads", .type = T_INT, .off = OFF(http_threads), .min = 1,
	 .max = 256, .def = "2", .role = -1,
	 .help = "HTTP worker threads per service"},
	{.path = "llm.models_dir", .type = T_STR, .off = OFF(llm.models_dir), .def = "",
	 .role = -1, .help = "folder of .gguf/.bin models (\"\" = <state_dir>/models)"},
	{.path = "llm.ollama_dir", .type = T_STR, .off = OFF(llm.ollama_dir), .def = "",
	 .role = -1,
	 .help = "an Ollama model store to list too (\"\" = $OLLAMA_MODELS or ~/.ollama/models)"},
	{.path = "llm.keep_alive_s", .type = T_INT, .off = OFF(llm.keep_alive_s), .min = 0,
	 .max = 86400 * 365, .def = "300", .role = -1,
	 .help = "seconds an idle model stays loaded"},
	{.path = "llm.max_loaded", .type = T_INT, .off = OFF(llm.max_loaded), .min = 1,
	 .max = 64, .def = "2", .role = -1, .help = "models loaded at once at most"},
	{.path = "llm.mem_budget_mb", .type = T_LLONG, .off = OFF(llm.mem_budget_mb),
	 .min = 0, .max = 1LL << 40, .def = "0", .role = -1,
	 .help = "memory for loaded models in MiB (0 = what the system has available)"},
	{.path = "llm.queue_max", .type = T_INT, .off = OFF(llm.queue_max), .min = 1,
	 .max = 100000, .def = "16", .role = -1,
	 .help = "requests waiting for the engine before 429"},
	{.path = "llm.parallel", .type = T_INT, .off = OFF(llm.parallel), .min = 1,
	 .max = 64, .def = "1", .role = -1, .help = "generations running at once"},
	{.path = "llm.threads", .type = T_INT, .off = OFF(llm.threads), .min = 0,
	 .max = 256, .def = "0", .role = -1,
	 .help = "compute threads per generation (0 = by model size)"},
	{.path = "llm.num_ctx", .type = T_INT, .off = OFF(llm.num_ctx), .min = 16,
	 .max = 1 << 20, .def = "2048", .role = -1,
	 .help = "default context length in tokens"},
	{.path = "kb.embedder", .type = T_NAME, .off = OFF(kb.embedder), .def = "builtin",
	 .role = -1, .check = check_embedder,
	 .help = "builtin (hashed n-grams, no model), llm (the llm role), ollama or openai "
		 "(kb.embed_url)"},
	{.path = "kb.embed_model", .type = T_STR, .off = OFF(kb.embed_model), .def = "",
	 .role = -1, .help = "embedding model for the llm/ollama/openai embedders"},
	{.path = "kb.embed_url", .type = T_STR, .off = OFF(kb.embed_url), .def = "",
	 .role = -1, .help = "base URL of the ollama/openai embedding server"},
	{.path = "kb.embed_api_key", .type = T_STR, .off = OFF(kb.embed_api_key), .def = "",
	 .secret = true, .role = -1, .help = "bearer key for an openai embedding server"},
	{.path = "kb.chunk_tokens", .type = T_INT, .off = OFF(kb.chunk_tokens), .min = 16,
	 .max = 8192, .def = "256", .role = -1, .help = "target chunk size in tokens"},
	{.path = "kb.chunk_overlap", .type = T_INT, .off = OFF(kb.chunk_overlap), .min = 0,
	 .max = 4096, .def = "32", .role = -1, .help = "tokens shared by consecutive chunks"},
	{.path = "kb.max_upload_mb", .type = T_INT, .off = OFF(kb.max_upload_mb), .min = 1,
	 .max = 4096, .def = "64", .role = -1, .help = "largest document accepted, in MiB"},
	{.path = "kb.workers", .type = T_INT, .off = OFF(kb.workers), .min = 0, .max = 64,
	 .def = "1", .role = -1,
	 .help = "ingestion workers per coordinator (0 = this one takes no jobs)"},
	{.path = "kb.job_attempts", .type = T_INT, .off = OFF(kb.job_attempts), .min = 1,
	 .max = 100, .def = "3", .role = -1,
	 .help = "deliveries of a job before it goes to the dead-letter stream"},
	{.path = "kb.job_visibility_ms", .type = T_INT, .off = OFF(kb.job_visibility_ms),
	 .min = 100, .max = 86400000, .def = "60000", .role = -1,
	 .help = "a job idle this long is taken over by another worker"},
	{.path = "deploy.ssh_user", .type = T_STR, .off = OFF(deploy.ssh_user), .def = "",
	 .role = -1, .help = "user autobot deploy and ssh-setup log in as (\"\" = the local user)"},
	{.path = "deploy.ssh_port", .type = T_INT, .off = OFF(deploy.ssh_port), .min = 1,
	 .max = 65535, .def = "22", .role = -1, .help = "SSH port of the hosts"},
	{.path = "deploy.ssh_key", .type = T_STR, .off = OFF(deploy.ssh_key), .def = "",
	 .role = -1,
	 .help = "private key for the hosts (\"\" = ~/.ssh/autobot_distributed; made by ssh-setup)"},
	{.path = "deploy.mode", .type = T_NAME, .off = OFF(deploy.mode), .def = "auto",
	 .role = -1, .check = check_deploy_mode,
	 .help = "how deploy starts roles: systemd (autobot@ROLE units), detached (autobot serve "
		 "with a pid file) or auto (systemd when the host runs it)"},
	{.path = "deploy.prefix", .type = T_PATH, .off = OFF(deploy.prefix), .def = "/usr/local",
	 .role = -1, .help = "install prefix on the hosts: bin/autobot, lib/autobot/autobot.so"},
	{.path = "deploy.remote_state_dir", .type = T_PATH, .off = OFF(deploy.remote_state_dir),
	 .def = "/var/lib/autobot", .role = -1, .help = "state directory of the roles on the hosts"},
	{.path = "deploy.config_path", .type = T_PATH, .off = OFF(deploy.config_path),
	 .def = "/etc/autobot/autobot.yaml", .role = -1,
	 .help = "where deploy puts this config file on the hosts"},
	{.path = "deploy.authorized_keys", .type = T_PATH, .off = OFF(deploy.authorized_keys),
	 .def = ".ssh/authorized_keys", .role = -1,
	 .help = "file ssh-setup adds the public key to on the hosts (relative = to the home)"},
	{.path = "deploy.health_timeout_ms", .type = T_INT, .off = OFF(deploy.health_timeout_ms),
	 .min = 100, .max = 3600000, .def = "30000", .role = -1,
	 .help = "how long deploy waits for a started role's /health"},
	{.path = "log.level", .type = T_LEVEL, .off = OFF(log_level), .def = "info",
	 .role = -1, .help = "debug, info, warn or error"},
	{.path = "log.format", .type = T_FORMAT, .off = OFF(log_json),
	 .def = "logfmt", .role = -1, .help = "logfmt or json"},
	{.path = "log.file", .type = T_STR, .off = OFF(log_file), .def = "", .role = -1,
	 .help = "also append log lines to this file, reopened on SIGHUP (\"\" = none; "
		 "autobot up sets <state_dir>/logs/<role>.log)"},
	{.path = "log.stream_max", .type = T_LLONG, .off = OFF(log_stream_max), .min = 0,
	 .max = 100000000, .def = "100000", .role = -1,
	 .help = "log lines kept in the ab:log stream, approximately (0 = do not write it)"},
};

#define N_KEYS AB_ARRAY_LEN(keys)

#define FIELD(cfg, off, T) ((T *)(void *)((char *)(cfg) + (off)))
#define CFIELD(cfg, off, T) ((const T *)(const void *)((const char *)(cfg) + (off)))

static int find_key(const char *path)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* True when some key lives below path (path is an inner node). */
static bool is_section(const char *path)
{
	size_t n = strlen(path);
	if (n == 0)
		return true;
	for (size_t i = 0; i < N_KEYS; i++)
		if (strncmp(keys[i].path, path, n) == 0 && keys[i].path[n] == '.')
			return true;
	return false;
}

/* Appends the names one level below section path ("" = the top level),
 * comma-separated, in table order. */
static void list_children(struct ab_buf *b, const char *path)
{
	size_t n = strlen(path), start = b->len;
	bool first = true;
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *p = keys[i].path;
		if (n) {
			if (strncmp(p, path, n) != 0 || p[n] != '.')
				continue;
			p += n + 1;
		}
		size_t len = strcspn(p, ".");
		/* skip names already listed */
		bool seen = false;
		const char *q = b->data ? b->data + start : NULL;
		while (q && *q) {
			size_t ql = strcspn(q, ",");
			if (ql == len && strncmp(q, p, len) == 0) {
				seen = true;
				break;
			}
			q += ql;
			while (*q == ',' || *q == ' ')
				q++;
		}
		if (seen)
			continue;
		if (!first)
			ab_buf_puts(b, ", ");
		ab_buf_append(b, p, len);
		first = false;
	}
}

/* Writes "AUTOBOT_" + path upper-cased with '.' -> '_' into out. */
static void env_name(const char *path, char *out, size_t size)
{
	size_t j = ab_strlcpy(out, "AUTOBOT_", size);
	for (const char *p = path; *p && j + 1 < size; p++, j++)
		out[j] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
	if (j < size)
		out[j] = '\0';
}

/* ---- the loader ------------------------------------------------------- */

struct dotenv_entry {
	char *key;
	char *val;
	int line;
};

struct loader {
	struct ab_config *cfg;
	bool set[N_KEYS];
	char *origin[N_KEYS];          /* where each key was last set */
	bool listed[AB_ROLE__COUNT];   /* role named under services: in the file */
	char *const *environ;
	struct dotenv_entry *dotenv;
	size_t n_dotenv;
	const char *dotenv_path;
	char *err;
	size_t errlen;
	bool failed;
};

static void loader_free(struct loader *L)
{
	for (size_t i = 0; i < N_KEYS; i++)
		free(L->origin[i]);
	for (size_t i = 0; i < L->n_dotenv; i++) {
		free(L->dotenv[i].key);
		free(L->dotenv[i].val);
	}
	free(L->dotenv);
}

/* Records the first error as "<where><key>: <message>"; returns AB_ECONFIG. */
AB_PRINTF(4, 5)
static int fail(struct loader *L, const char *where, const char *key, const char *fmt, ...)
{
	if (L->failed)
		return AB_ECONFIG;
	L->failed = true;
	struct ab_buf b = {0};
	ab_buf_puts(&b, where ? where : "");
	if (key && *key)
		ab_buf_printf(&b, "%s: ", key);
	va_list ap;
	va_start(ap, fmt);
	ab_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (L->err && L->errlen)
		ab_strlcpy(L->err, b.data ? b.data : "", L->errlen);
	ab_buf_free(&b);
	return AB_ECONFIG;
}

/* Appends v as a quoted, escaped string, cut at 60 bytes. */
static void quote(struct ab_buf *b, const char *v)
{
	size_t n = strlen(v);
	if (n > 60) {
		ab_buf_json_strn(b, v, 60);
		ab_buf_puts(b, "...");
	} else {
		ab_buf_json_strn(b, v, n);
	}
}

/* Fails with "<why>, got \"value\"" (the value left out for secrets). */
static int fail_value(struct loader *L, const char *where, const struct key *k,
		      const char *why, const char *value)
{
	struct ab_buf b = {0};
	ab_buf_puts(&b, why);
	if (!k->secret) {
		ab_buf_puts(&b, ", got ");
		quote(&b, value);
	}
	int rc = fail(L, where, k->path, "%s", b.data);
	ab_buf_free(&b);
	return rc;
}

static const char *env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; envp && envp[i]; i++)
		if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
			return envp[i] + n + 1;
	return NULL;
}

/* ---- value checks ------------------------------------------------------ */

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-'. */
static bool is_hostname(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return false;
	bool all_numeric = true;
	const char *p = s;
	while (*p) {
		size_t len = strcspn(p, ".");
		if (len == 0 || len > 63 || p[0] == '-' || p[len - 1] == '-')
			return false;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];
			if (!isalnum(c) && c != '-')
				return false;
			if (!isdigit(c))
				all_numeric = false;
		}
		p += len;
		if (*p == '.' && p[1] == '\0')
			return false;
		if (*p == '.')
			p++;
	}
	/* "1.2.3.999" is a broken address, not a name */
	return !all_numeric;
}

static bool is_loopback(const char *host)
{
	unsigned char a[16];
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char lo[16] = {[15] = 1};
		static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
		return memcmp(a, lo, 16) == 0 ||
		       (memcmp(a, mapped, 12) == 0 && a[12] == 127);
	}
	return false;
}

static int check_provider(const char *item, struct ab_buf *why)
{
	if (!strcmp(item, "builtin") || !strcmp(item, "ollama") || !strcmp(item, "openai"))
		return 0;
	ab_buf_printf(why, "expected builtin, ollama or openai, got \"%s\"", item);
	return -1;
}

static int check_embedder(const char *item, struct ab_buf *why)
{
	if (!strcmp(item, "builtin") || !strcmp(item, "llm") || !strcmp(item, "ollama") ||
	    !strcmp(item, "openai"))
		return 0;
	ab_buf_printf(why, "expected builtin, llm, ollama or openai, got \"%s\"", item);
	return -1;
}

static int check_deploy_mode(const char *item, struct ab_buf *why)
{
	if (!strcmp(item, "auto") || !strcmp(item, "systemd") || !strcmp(item, "detached"))
		return 0;
	ab_buf_printf(why, "expected auto, systemd or detached, got \"%s\"", item);
	return -1;
}

static int check_cidr(const char *item, struct ab_buf *why)
{
	struct ab_cidr c;
	if (ab_cidr_parse(item, &c) == 0)
		return 0;
	ab_buf_puts(why, "expected an address range like 10.0.0.0/8 or fd00::/8, got ");
	quote(why, item);
	return AB_EINVAL;
}

static int check_origin(const char *item, struct ab_buf *why)
{
	if (strcmp(item, "*") == 0 || strchr(item, '*')) {
		ab_buf_puts(why, "wildcard origins are not allowed; list each origin "
				 "as scheme://host[:port]");
		return AB_EINVAL;
	}
	const char *rest;
	if (strncmp(item, "http://", 7) == 0)
		rest = item + 7;
	else if (strncmp(item, "https://", 8) == 0)
		rest = item + 8;
	else
		goto bad;
	/* host part: [v6] or name/IPv4, then optional :port, nothing else */
	char host[256];
	const char *end;
	if (*rest == '[') {
		end = strchr(rest, ']');
		if (!end || (size_t)(end - rest - 1) >= sizeof(host))
			goto bad;
		memcpy(host, rest + 1, (size_t)(end - rest - 1));
		host[end - rest - 1] = '\0';
		unsigned char a[16];
		if (inet_pton(AF_INET6, host, a) != 1)
			goto bad;
		end++;
	} else {
		size_t len = strcspn(rest, ":/?#");
		if (len == 0 || len >= sizeof(host))
			goto bad;
		memcpy(host, rest, len);
		host[len] = '\0';
		if (!is_ip(host) && !is_hostname(host))
			goto bad;
		end = rest + len;
	}
	if (*end == ':') {
		long long port;
		if (ab_parse_int(end + 1, 1, 65535, &port) != 0 || end[1] == '+' ||
		    end[1] == '-')
			goto bad;
		return 0;
	}
	if (*end == '\0')
		return 0;
bad:
	ab_buf_puts(why, "expected an origin scheme://host[:port] with scheme http or "
			 "https and no path, got ");
	quote(why, item);
	return AB_EINVAL;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *yes[] = {"true", "yes", "on", "1"};
	static const char *no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < AB_ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return AB_EINVAL;
}

/* ---- setting values ------------------------------------------------------ */

static void note_set(struct loader *L, size_t ki, const char *where)
{
	L->set[ki] = true;
	free(L->origin[ki]);
	L->origin[ki] = ab_xstrdup(where);
}

static void replace_str(char **slot, const char *v)
{
	free(*slot);
	*slot = ab_xstrdup(v);
}

/* Parses value for the scalar key ki and stores it in L->cfg. */
static int set_scalar(struct loader *L, size_t ki, const char *value, const char *where)
{
	const struct key *k = &keys[ki];
	struct ab_config *cfg = L->cfg;
	char why[128];
	long long n;
	bool b;

	switch (k->type) {
	case T_STR:
		if (has_control(value))
			return fail_value(L, where, k, "expected a string without "
					  "control characters", value);
		replace_str(FIELD(cfg, k->off, char *), value);
		break;
	case T_NAME: {
		size_t len = strlen(value);
		bool ok = len > 0 && len <= 64;
		for (size_t i = 0; ok && i < len; i++) {
			unsigned char c = (unsigned char)value[i];
			ok = isalnum(c) || c == '.' || c == '_' || c == '-';
		}
		if (!ok)
			return fail_value(L, where, k, "expected a name of 1 to 64 "
					  "letters, digits, '.', '_' or '-'", value);
		if (k->check) {
			struct ab_buf cw = {0};
			if (k->check(value, &cw) != 0) {
				int rc = fail(L, where, k->path, "%s", cw.data);
				ab_buf_free(&cw);
				return rc;
			}
		}
		replace_str(FIELD(cfg, k->off, char *), value);
		break;
	}
	case T_PATH:
		if (!*value || has_control(value))
			return fail_value(L, where, k, "expected a non-empty path", value);
		replace_str(FIELD(cfg, k->off, char *), value);
		break;
	case T_HOST:
		/* resolved against hosts: once every layer is in */
		if (!*value || has_control(value) || strlen(value) > 253)
			return fail_value(L, where, k, "expected a name from hosts: or "
					  "an address", value);
		replace_str(FIELD(cfg, k->off, char *), value);
		break;
	case T_INT:
	case T_LLONG:
		if (ab_parse_int(value, k->min, k->max, &n) != 0 || value[0] == '+' ||
		    isspace((unsigned char)value[0])) {
			snprintf(why, sizeof(why), "expected an integer from %lld to %lld",
				 k->min, k->max);
			return fail_value(L, where, k, why, value);
		}
		if (k->type == T_INT)
			*FIELD(cfg, k->off, int) = (int)n;
		else
			*FIELD(cfg, k->off, long long) = n;
		break;
	case T_BOOL:
		if (parse_bool(value, &b) != 0)
			return fail_value(L, where, k, "expected true or false", value);
		*FIELD(cfg, k->off, bool) = b;
		break;
	case T_LEVEL: {
		int lv = ab_log_level_parse(value);
		if (lv < 0)
			return fail_value(L, where, k, "expected one of debug, info, "
					  "warn, error", value);
		*FIELD(cfg, k->off, int) = lv;
		break;
	}
	case T_FORMAT:
		if (strcmp(value, "logfmt") == 0)
			b = false;
		else if (strcmp(value, "json") == 0)
			b = true;
		else
			return fail_value(L, where, k, "expected logfmt or json", value);
		*FIELD(cfg, k->off, bool) = b;
		break;
	case T_LIST:
	case T_HOSTS:
		return fail(L, where, k->path, "internal error: not a scalar key");
	}
	note_set(L, ki, where);
	return 0;
}

static void list_clear(struct ab_config *cfg, const struct key *k)
{
	char ***list = FIELD(cfg, k->off, char **);
	size_t *n = FIELD(cfg, k->off2, size_t);
	for (size_t i = 0; *list && i < *n; i++)
		free((*list)[i]);
	free(*list);
	*list = NULL;
	*n = 0;
}

/* Validates item and appends it to the list key ki (already cleared). */
static int list_add(struct loader *L, size_t ki, const char *item, const char *where)
{
	const struct key *k = &keys[ki];
	struct ab_buf why = {0};
	if (k->check && k->check(item, &why) != 0) {
		int rc = fail(L, where, k->path, "%s", why.data);
		ab_buf_free(&why);
		return rc;
	}
	char ***list = FIELD(L->cfg, k->off, char **);
	size_t *n = FIELD(L->cfg, k->off2, size_t);
	*list = ab_xrealloc(*list, (*n + 1) * sizeof(char *));
	(*list)[(*n)++] = ab_xstrdup(item);
	return 0;
}

/* Replaces the list key ki by the comma-separated items of value
 * (whitespace around items and empty items are dropped). */
static int set_list_csv(struct loader *L, size_t ki, const char *value, const char *where)
{
	list_clear(L->cfg, &keys[ki]);
	const char *p = value;
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *s = p, *e = p + len;
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e > s) {
			char *item = ab_xstrndup(s, (size_t)(e - s));
			int rc = list_add(L, ki, item, where);
			free(item);
			if (rc < 0)
				return rc;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	note_set(L, ki, where);
	return 0;
}

/* Sets hosts.<name> = addr (merging by name). */
static int set_host(struct loader *L, const char *name, const char *addr, const char *where)
{
	struct ab_config *cfg = L->cfg;
	char key[96];
	snprintf(key, sizeof(key), "hosts.%.80s", name);
	size_t nl = strlen(name);
	bool ok = nl > 0 && nl <= 63;
	for (size_t i = 0; ok && i < nl; i++) {
		unsigned char c = (unsigned char)name[i];
		ok = isalnum(c) || c == '_' || c == '-';
	}
	if (!ok)
		return fail(L, where, key, "expected a host name of letters, digits, "
			    "'_' or '-'");
	if (!is_ip(addr) && !is_hostname(addr)) {
		struct ab_buf b = {0};
		quote(&b, addr);
		int rc = fail(L, where, key, "expected an IP address or a host name, got %s",
			      b.data);
		ab_buf_free(&b);
		return rc;
	}
	for (size_t i = 0; i < cfg->n_hosts; i++) {
		if (strcmp(cfg->hosts[i].name, name) == 0) {
			replace_str(&cfg->hosts[i].addr, addr);
			return 0;
		}
	}
	cfg->hosts = ab_xrealloc(cfg->hosts, (cfg->n_hosts + 1) * sizeof(*cfg->hosts));
	cfg->hosts[cfg->n_hosts].name = ab_xstrdup(name);
	cfg->hosts[cfg->n_hosts].addr = ab_xstrdup(addr);
	cfg->n_hosts++;
	return 0;
}

/* Sets a key from text (env, .env, flags): lists are comma-separated. */
static int set_text(struct loader *L, size_t ki, const char *value, const char *where)
{
	if (keys[ki].type == T_LIST)
		return set_list_csv(L, ki, value, where);
	return set_scalar(L, ki, value, where);
}

/* ---- defaults and final resolution ------------------------------------- */

static char *default_state_dir(void)
{
	if (geteuid() == 0)
		return ab_xstrdup("/var/lib/autobot");
	const char *home = getenv("HOME");
	if (!home || !*home)
		return ab_xstrdup("/tmp/autobot-state");
	return ab_xasprintf("%s/.local/state/autobot", home);
}

/* Applies every static default; cannot fail (the defaults are valid). */
static void apply_defaults(struct loader *L)
{
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		if (!keys[ki].def)
			continue;
		set_text(L, ki, keys[ki].def, "default: ");
		L->set[ki] = false;
	}
	L->cfg->state_dir = default_state_dir();
}

static const char *host_lookup(const struct ab_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_hosts; i++)
		if (strcmp(cfg->hosts[i].name, name) == 0)
			return cfg->hosts[i].addr;
	return NULL;
}

/* Resolves service hosts, fills in computed defaults and parses the
 * allowlist. */
static int finalize(struct loader *L)
{
	struct ab_config *cfg = L->cfg;
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		const struct key *k = &keys[ki];
		if (k->type != T_HOST)
			continue;
		const char *ref = *FIELD(cfg, k->off, char *);
		const char *addr = host_lookup(cfg, ref);
		if (!addr && (is_ip(ref) || strcasecmp(ref, "localhost") == 0 ||
			      (strchr(ref, '.') && is_hostname(ref))))
			addr = ref;
		if (!addr) {
			struct ab_buf b = {0};
			ab_buf_puts(&b, "expected a name from hosts: (");
			for (size_t i = 0; i < cfg->n_hosts; i++)
				ab_buf_printf(&b, "%s%s", i ? ", " : "", cfg->hosts[i].name);
			ab_buf_puts(&b, cfg->n_hosts ? "), " : "none defined), ");
			ab_buf_puts(&b, "an IP address or a dotted host name, got ");
			quote(&b, ref);
			int rc = fail(L, L->origin[ki] ? L->origin[ki] : "", k->path, "%s",
				      b.data);
			ab_buf_free(&b);
			return rc;
		}
		replace_str(FIELD(cfg, k->off2, char *), addr);
	}
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		const struct key *k = &keys[ki];
		if (k->type == T_BOOL && k->role >= 0 && !L->set[ki] &&
		    strstr(k->path, ".enabled") && L->listed[k->role])
			*FIELD(cfg, k->off, bool) = true;
	}
	int mi = find_key("services.redis.managed");
	if (mi >= 0 && !L->set[mi])
		cfg->services[AB_ROLE_REDIS].managed =
			is_loopback(cfg->services[AB_ROLE_REDIS].host);

	free(cfg->allow);
	cfg->allow = ab_xcalloc(cfg->n_allow ? cfg->n_allow : 1, sizeof(*cfg->allow));
	for (size_t i = 0; i < cfg->n_allow; i++)
		if (ab_cidr_parse(cfg->allow_cidrs[i], &cfg->allow[i]) != 0)
			return fail(L, "", "security.allow_cidrs", "internal error");
	return 0;
}

/* ---- ${VAR} expansion ------------------------------------------------- */

static const char *lookup_var(const struct loader *L, const char *name)
{
	const char *v = env_get(L->environ, name);
	if (v)
		return v;
	/* the last assignment in .env wins */
	for (size_t i = L->n_dotenv; i > 0; i--)
		if (strcmp(L->dotenv[i - 1].key, name) == 0)
			return L->dotenv[i - 1].val;
	return NULL;
}

static bool var_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static bool var_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Expands ${VAR} and ${VAR:-default} in in; *out is a new string the
 * caller frees (only on success). */
static int expand(struct loader *L, const char *in, const char *where,
		  const char *key, char **out)
{
	struct ab_buf b = {0};
	const char *p = in;
	ab_buf_puts(&b, "");
	while (*p) {
		if (p[0] != '$' || p[1] != '{') {
			ab_buf_putc(&b, *p++);
			continue;
		}
		const char *close = strchr(p + 2, '}');
		if (!close) {
			ab_buf_free(&b);
			return fail(L, where, key, "unterminated ${ (expected ${VAR} "
				    "or ${VAR:-default})");
		}
		const char *name = p + 2, *n_end = name;
		while (n_end < close && var_char(*n_end))
			n_end++;
		bool has_def = close - n_end >= 2 && n_end[0] == ':' && n_end[1] == '-';
		if (!var_start(*name) || (n_end != close && !has_def)) {
			ab_buf_free(&b);
			return fail(L, where, key, "expected ${VAR} or ${VAR:-default} "
				    "with VAR made of letters, digits and '_'");
		}
		char *var = ab_xstrndup(name, (size_t)(n_end - name));
		const char *v = lookup_var(L, var);
		free(var);
		if (v && (*v || !has_def))
			ab_buf_puts(&b, v);
		else if (has_def)
			ab_buf_append(&b, n_end + 2, (size_t)(close - n_end - 2));
		p = close + 1;
	}
	*out = ab_buf_steal(&b);
	return 0;
}

/* ---- the .env file ------------------------------------------------------ */

/* Parses one .env line into key/val (new strings) or leaves them NULL for
 * blank and comment lines. Returns 0 or AB_EINVAL. */
static int dotenv_line(char *line, char **key, char **val)
{
	*key = *val = NULL;
	char *p = line;
	size_t n = strlen(p);
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		p[--n] = '\0';
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t')) {
		p += 6;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	const char *k = p;
	if (!var_start(*p))
		return AB_EINVAL;
	while (var_char(*p))
		p++;
	const char *k_end = p;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '=')
		return AB_EINVAL;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;

	struct ab_buf v = {0};
	ab_buf_puts(&v, "");
	if (*p == '"' || *p == '\'') {
		char q = *p++;
		while (*p && *p != q) {
			if (q == '"' && *p == '\\' && p[1]) {
				p++;
				ab_buf_putc(&v, *p == 'n' ? '\n' : *p);
				p++;
				continue;
			}
			ab_buf_putc(&v, *p++);
		}
		if (*p != q) {
			ab_buf_free(&v);
			return AB_EINVAL;
		}
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != '#') {
			ab_buf_free(&v);
			return AB_EINVAL;
		}
	} else {
		const char *s = p;
		while (*p && !(*p == '#' && p > s && (p[-1] == ' ' || p[-1] == '\t')))
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		ab_buf_append(&v, s, (size_t)(e - s));
	}
	*key = ab_xstrndup(k, (size_t)(k_end - k));
	*val = ab_buf_steal(&v);
	return 0;
}

/* Reads the .env file (explicit path, or ./.env when present). */
static int dotenv_read(struct loader *L, const char *path)
{
	bool explicit_path = path != NULL;
	if (!path)
		path = "./.env";
	FILE *f = fopen(path, "r");
	if (!f) {
		if (!explicit_path && errno == ENOENT)
			return 0;
		return fail(L, "", path, "cannot read .env file: %s", strerror(errno));
	}
	L->dotenv_path = path;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *k, *v;
		if (dotenv_line(line, &k, &v) != 0) {
			char where[512];
			snprintf(where, sizeof(where), "%s:%d: ", path, lineno);
			rc = fail(L, where, NULL, "expected KEY=VALUE (optionally "
				  "'export KEY=VALUE', quoted values closed on the "
				  "same line)");
			break;
		}
		if (!k)
			continue;
		L->dotenv = ab_xrealloc(L->dotenv, (L->n_dotenv + 1) * sizeof(*L->dotenv));
		L->dotenv[L->n_dotenv++] = (struct dotenv_entry){k, v, lineno};
	}
	free(line);
	fclose(f);
	return rc;
}

#define HOSTS_ENV "AUTOBOT_HOSTS_"

/* Applies one NAME=value pair from the .env file or the environment. */
static int apply_env_var(struct loader *L, const char *name, const char *value,
			 const char *where)
{
	char env[128];
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		if (keys[ki].type == T_HOSTS)
			continue;
		env_name(keys[ki].path, env, sizeof(env));
		if (strcmp(env, name) == 0)
			return set_text(L, ki, value, where);
	}
	size_t hl = strlen(HOSTS_ENV);
	if (strncmp(name, HOSTS_ENV, hl) == 0 && name[hl]) {
		char *host = ab_xstrdup(name + hl);
		for (char *c = host; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		int rc = set_host(L, host, value, where);
		free(host);
		return rc;
	}
	return 0; /* not ours: may be a ${VAR} source */
}

static int apply_dotenv(struct loader *L)
{
	char where[512];
	for (size_t i = 0; i < L->n_dotenv; i++) {
		const struct dotenv_entry *e = &L->dotenv[i];
		if (strncmp(e->key, "AUTOBOT_", 8) != 0)
			continue;
		snprintf(where, sizeof(where), "%s:%d: %s: ", L->dotenv_path, e->line,
			 e->key);
		int rc = apply_env_var(L, e->key, e->val, where);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int apply_environ(struct loader *L)
{
	char env[128], where[192];
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		if (keys[ki].type == T_HOSTS)
			continue;
		env_name(keys[ki].path, env, sizeof(env));
		const char *v = env_get(L->environ, env);
		if (!v)
			continue;
		snprintf(where, sizeof(where), "environment %s: ", env);
		int rc = set_text(L, ki, v, where);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; L->environ && L->environ[i]; i++) {
		const char *e = L->environ[i];
		const char *eq = strchr(e, '=');
		size_t hl = strlen(HOSTS_ENV);
		if (!eq || strncmp(e, HOSTS_ENV, hl) != 0 || eq == e + hl)
			continue;
		char *name = ab_xstrndup(e, (size_t)(eq - e));
		snprintf(where, sizeof(where), "environment %.150s: ", name);
		int rc = apply_env_var(L, name, eq + 1, where);
		free(name);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Fails with "unknown key (expected one of: ...)" for the deepest known
 * section above path. */
static int fail_unknown(struct loader *L, const char *where, const char *path)
{
	char *sec = ab_xstrdup(path);
	char *dot;
	while ((dot = strrchr(sec, '.')) != NULL) {
		*dot = '\0';
		if (is_section(sec))
			break;
	}
	if (!dot)
		sec[0] = '\0';
	struct ab_buf b = {0};
	list_children(&b, sec);
	int rc = fail(L, where, path, "unknown key (expected one of: %s)", b.data);
	ab_buf_free(&b);
	free(sec);
	return rc;
}

static int apply_sets(struct loader *L, const char *const *sets, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *s = sets[i] ? sets[i] : "";
		const char *eq = strchr(s, '=');
		if (!eq)
			return fail(L, "--set ", s, "expected key=value");
		char *path = ab_xstrndup(s, (size_t)(eq - s));
		int rc, ki = find_key(path);
		if (strncmp(path, "hosts.", 6) == 0)
			rc = set_host(L, path + 6, eq + 1, "--set ");
		else if (ki >= 0 && keys[ki].type != T_HOSTS)
			rc = set_text(L, (size_t)ki, eq + 1, "--set ");
		else if (ki >= 0)
			rc = fail(L, "--set ", path, "set hosts one by one as hosts.<name>=ADDRESS");
		else
			rc = fail_unknown(L, "--set ", path);
		free(path);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the YAML file ------------------------------------------------------ */

struct yctx {
	struct loader *L;
	yaml_document_t *doc;
	const char *file;
};

static void yaml_where(const struct yctx *y, const yaml_node_t *node, char *out, size_t size)
{
	snprintf(out, size, "%s:%lu: ", y->file, (unsigned long)node->start_mark.line + 1);
}

static const char *node_kind(const yaml_node_t *node)
{
	switch (node->type) {
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "a scalar";
	}
}

static const char *scalar(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

/* A plain ~, null or empty scalar: an empty section or list. */
static bool is_null(const yaml_node_t *node)
{
	if (node->type != YAML_SCALAR_NODE ||
	    node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = scalar(node);
	return !*v || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

static int walk(struct yctx *y, yaml_node_t *node, const char *path);

static int yaml_list(struct yctx *y, yaml_node_t *node, size_t ki)
{
	struct loader *L = y->L;
	char where[512];
	yaml_where(y, node, where, sizeof(where));
	list_clear(L->cfg, &keys[ki]);
	note_set(L, ki, where);
	if (is_null(node))
		return 0;
	if (node->type != YAML_SEQUENCE_NODE)
		return fail(L, where, keys[ki].path, "expected a list like [a, b], got %s",
			    node_kind(node));
	for (yaml_node_item_t *it = node->data.sequence.items.start;
	     it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(y->doc, *it);
		if (!item)
			continue;
		yaml_where(y, item, where, sizeof(where));
		if (item->type != YAML_SCALAR_NODE)
			return fail(L, where, keys[ki].path, "expected a list of strings, "
				    "got %s inside it", node_kind(item));
		char *v;
		int rc = expand(L, scalar(item), where, keys[ki].path, &v);
		if (rc < 0)
			return rc;
		rc = list_add(L, ki, v, where);
		free(v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int yaml_hosts(struct yctx *y, yaml_node_t *node, size_t ki)
{
	struct loader *L = y->L;
	char where[512];
	yaml_where(y, node, where, sizeof(where));
	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE)
		return fail(L, where, keys[ki].path, "expected a mapping of host names "
			    "to addresses, got %s", node_kind(node));
	for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
	     pr < node->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, pr->value);
		if (!k || !v)
			continue;
		yaml_where(y, k, where, sizeof(where));
		if (k->type != YAML_SCALAR_NODE)
			return fail(L, where, "hosts", "expected a host name, got %s",
				    node_kind(k));
		char key[96];
		snprintf(key, sizeof(key), "hosts.%.80s", scalar(k));
		yaml_where(y, v, where, sizeof(where));
		if (v->type != YAML_SCALAR_NODE)
			return fail(L, where, key, "expected an address, got %s",
				    node_kind(v));
		char *addr;
		int rc = expand(L, scalar(v), where, key, &addr);
		if (rc < 0)
			return rc;
		rc = set_host(L, scalar(k), addr, where);
		free(addr);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A leaf: a key of the table. */
static int yaml_leaf(struct yctx *y, yaml_node_t *node, size_t ki)
{
	struct loader *L = y->L;
	const struct key *k = &keys[ki];
	if (k->type == T_LIST)
		return yaml_list(y, node, ki);
	if (k->type == T_HOSTS)
		return yaml_hosts(y, node, ki);
	char where[512];
	yaml_where(y, node, where, sizeof(where));
	if (node->type != YAML_SCALAR_NODE)
		return fail(L, where, k->path, "expected a single value, got %s",
			    node_kind(node));
	char *v;
	int rc = expand(L, is_null(node) ? "" : scalar(node), where, k->path, &v);
	if (rc < 0)
		return rc;
	rc = set_scalar(L, ki, v, where);
	free(v);
	return rc;
}

/* A section: a mapping whose keys must be known children of path. */
static int walk(struct yctx *y, yaml_node_t *node, const char *path)
{
	struct loader *L = y->L;
	int ki = *path ? find_key(path) : -1;
	if (ki >= 0)
		return yaml_leaf(y, node, (size_t)ki);

	char where[512];
	yaml_where(y, node, where, sizeof(where));
	if (is_null(node))
		return 0;
	if (node->type != YAML_MAPPING_NODE) {
		struct ab_buf b = {0};
		list_children(&b, path);
		int rc = fail(L, where, *path ? path : NULL,
			      "expected a mapping with keys %s, got %s", b.data,
			      node_kind(node));
		ab_buf_free(&b);
		return rc;
	}
	for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
	     pr < node->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, pr->value);
		if (!k || !v)
			continue;
		yaml_where(y, k, where, sizeof(where));
		if (k->type != YAML_SCALAR_NODE)
			return fail(L, where, *path ? path : NULL,
				    "expected a plain key, got %s", node_kind(k));
		for (yaml_node_pair_t *q = node->data.mapping.pairs.start; q < pr; q++) {
			yaml_node_t *qk = yaml_document_get_node(y->doc, q->key);
			if (qk && qk->type == YAML_SCALAR_NODE &&
			    strcmp(scalar(qk), scalar(k)) == 0)
				return fail(L, where, NULL, "%s%s%s: duplicate key", path,
					    *path ? "." : "", scalar(k));
		}
		char *child = *path ? ab_xasprintf("%s.%s", path, scalar(k))
				    : ab_xstrdup(scalar(k));
		int rc;
		if (strchr(scalar(k), '.') || (find_key(child) < 0 && !is_section(child))) {
			rc = fail_unknown(L, where, child);
		} else {
			if (strcmp(path, "services") == 0) {
				int r = ab_role_parse(scalar(k));
				if (r >= 0)
					L->listed[r] = true;
			}
			rc = walk(y, v, child);
		}
		free(child);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int load_yaml(struct loader *L, const char *file)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	bool have_doc = false;
	int rc = 0;
	FILE *f = fopen(file, "rb");
	if (!f)
		return fail(L, "", file, "cannot read config file: %s", strerror(errno));
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return fail(L, "", file, "cannot initialise the YAML parser");
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc))
		goto syntax;
	have_doc = true;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root) {
		if (!yaml_parser_load(&parser, &extra))
			goto syntax;
		bool more = yaml_document_get_root_node(&extra) != NULL;
		yaml_document_delete(&extra);
		if (more) {
			rc = fail(L, "", file, "expected one YAML document, found several");
			goto out;
		}
		struct yctx y = {L, &doc, file};
		rc = walk(&y, root, "");
	}
	goto out;
syntax:
	{
		char where[512];
		snprintf(where, sizeof(where), "%s:%lu: ", file,
			 (unsigned long)(parser.problem ? parser.problem_mark.line
							: parser.context_mark.line) + 1);
		char started[48] = "";
		if (parser.context && parser.problem &&
		    parser.context_mark.line != parser.problem_mark.line)
			snprintf(started, sizeof(started), " started at line %lu",
				 (unsigned long)parser.context_mark.line + 1);
		rc = fail(L, where, NULL, "YAML syntax error: %s%s%s%s",
			  parser.problem ? parser.problem : "malformed document",
			  parser.context ? " " : "", parser.context ? parser.context : "",
			  started);
	}
out:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

/* ---- public API ----------------------------------------------------------- */

static struct ab_config *config_new(void)
{
	struct ab_config *cfg = ab_xcalloc(1, sizeof(*cfg));
	return cfg;
}

void ab_config_free(struct ab_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->state_dir);
	free(cfg->cluster_name);
	free(cfg->cluster_token);
	for (size_t i = 0; i < cfg->n_hosts; i++) {
		free(cfg->hosts[i].name);
		free(cfg->hosts[i].addr);
	}
	free(cfg->hosts);
	for (int r = 0; r < AB_ROLE__COUNT; r++) {
		free(cfg->services[r].host_ref);
		free(cfg->services[r].host);
		free(cfg->services[r].password);
	}
	for (size_t i = 0; i < cfg->n_allow; i++)
		free(cfg->allow_cidrs[i]);
	free(cfg->allow_cidrs);
	free(cfg->allow);
	for (size_t i = 0; i < cfg->n_cors; i++)
		free(cfg->cors_origins[i]);
	free(cfg->cors_origins);
	free(cfg->llm.provider);
	free(cfg->llm.url);
	free(cfg->llm.api_key);
	free(cfg->llm.model);
	free(cfg->llm.models_dir);
	free(cfg->llm.ollama_dir);
	free(cfg->redis_module);
	free(cfg->log_file);
	free(cfg->kb.embedder);
	free(cfg->kb.embed_model);
	free(cfg->kb.embed_url);
	free(cfg->kb.embed_api_key);
	free(cfg->deploy.ssh_user);
	free(cfg->deploy.ssh_key);
	free(cfg->deploy.mode);
	free(cfg->deploy.prefix);
	free(cfg->deploy.remote_state_dir);
	free(cfg->deploy.config_path);
	free(cfg->deploy.authorized_keys);
	free(cfg);
}

/* Defaults only; the caller frees with ab_config_free(). */
struct ab_config *ab_config_default(void)
{
	struct loader L = {0};
	L.cfg = config_new();
	apply_defaults(&L);
	finalize(&L);
	loader_free(&L);
	return L.cfg;
}

/* On success *out belongs to the caller (ab_config_free); on failure *out
 * is NULL and err holds the first error. */
int ab_config_load(const struct ab_config_src *src, struct ab_config **out,
		   char *err, size_t errlen)
{
	static const struct ab_config_src none = {0};
	if (!src)
		src = &none;
	if (err && errlen)
		err[0] = '\0';
	*out = NULL;

	struct loader L = {0};
	L.cfg = config_new();
	L.environ = src->environ;
	L.err = err;
	L.errlen = errlen;
	apply_defaults(&L);

	int rc = dotenv_read(&L, src->env_file);
	if (rc == 0 && src->file) {
		L.cfg->path = ab_xstrdup(src->file);
		rc = load_yaml(&L, src->file);
	}
	if (rc == 0)
		rc = apply_dotenv(&L);
	if (rc == 0)
		rc = apply_environ(&L);
	if (rc == 0)
		rc = apply_sets(&L, src->sets, src->sets ? src->n_sets : 0);
	if (rc == 0 && src->state_dir) {
		int ki = find_key("state_dir");
		rc = set_scalar(&L, (size_t)ki, src->state_dir, "--state-dir: ");
	}
	if (rc == 0)
		rc = finalize(&L);

	if (rc < 0) {
		ab_config_free(L.cfg);
		rc = AB_ECONFIG;
	} else {
		*out = L.cfg;
	}
	loader_free(&L);
	return rc;
}

char *ab_config_service_url(const struct ab_config *cfg, enum ab_role r)
{
	if (!cfg || (int)r < 0 || r >= AB_ROLE__COUNT)
		return ab_xstrdup("");
	const struct ab_service_cfg *s = &cfg->services[r];
	const char *h = s->host ? s->host : "127.0.0.1";
	if (strchr(h, ':'))
		return ab_xasprintf("http://[%s]:%d", h, s->port);
	return ab_xasprintf("http://%s:%d", h, s->port);
}

/* Returns the object at dotted path's parent inside root, creating the
 * objects on the way; *leaf points at the last component. */
static json_t *json_parent(json_t *root, const char *path, const char **leaf)
{
	json_t *obj = root;
	const char *p = path, *dot;
	while ((dot = strchr(p, '.')) != NULL) {
		char *part = ab_xstrndup(p, (size_t)(dot - p));
		json_t *next = json_object_get(obj, part);
		if (!next) {
			next = json_object();
			json_object_set_new(obj, part, next);
		}
		free(part);
		obj = next;
		p = dot + 1;
	}
	*leaf = p;
	return obj;
}

static json_t *json_strv(const char *s)
{
	return json_string(s ? s : "");
}

/* New reference; the caller json_decref()s it. */
json_t *ab_config_to_json(const struct ab_config *cfg, bool redact)
{
	json_t *root = json_object();
	if (!cfg)
		return root;
	json_object_set_new(root, "path", cfg->path ? json_string(cfg->path) : json_null());
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		const struct key *k = &keys[ki];
		const char *leaf;
		json_t *obj = json_parent(root, k->path, &leaf);
		json_t *v = NULL;
		switch (k->type) {
		case T_STR:
		case T_NAME:
		case T_PATH: {
			const char *s = *CFIELD(cfg, k->off, char *);
			if (k->secret && redact)
				v = json_string(s && *s ? "[redacted]" : "");
			else
				v = json_strv(s);
			break;
		}
		case T_HOST:
			json_object_set_new(obj, "host_ref",
					    json_strv(*CFIELD(cfg, k->off, char *)));
			v = json_strv(*CFIELD(cfg, k->off2, char *));
			break;
		case T_INT:
		case T_LEVEL:
			if (k->type == T_LEVEL)
				v = json_string(ab_log_level_name(*CFIELD(cfg, k->off, int)));
			else
				v = json_integer(*CFIELD(cfg, k->off, int));
			break;
		case T_LLONG:
			v = json_integer(*CFIELD(cfg, k->off, long long));
			break;
		case T_BOOL:
			v = json_boolean(*CFIELD(cfg, k->off, bool));
			break;
		case T_FORMAT:
			v = json_string(*CFIELD(cfg, k->off, bool) ? "json" : "logfmt");
			break;
		case T_LIST: {
			char *const *list = *(char **const *)(const void *)((const char *)cfg + k->off);
			size_t n = *CFIELD(cfg, k->off2, size_t);
			v = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(v, json_strv(list[i]));
			break;
		}
		case T_HOSTS:
			v = json_object();
			for (size_t i = 0; i < cfg->n_hosts; i++)
				json_object_set_new(v, cfg->hosts[i].name,
						    json_strv(cfg->hosts[i].addr));
			break;
		}
		json_object_set_new(obj, leaf, v);
	}
	return root;
}

void ab_config_each_key(void (*fn)(void *ud, const char *key, const char *env,
				   const char *type, const char *help),
			void *ud)
{
	static const char *type_names[] = {
		[T_STR] = "string", [T_NAME] = "name", [T_PATH] = "path",
		[T_INT] = "int", [T_LLONG] = "int", [T_BOOL] = "bool",
		[T_LEVEL] = "debug|info|warn|error", [T_FORMAT] = "logfmt|json",
		[T_HOST] = "host", [T_LIST] = "list", [T_HOSTS] = "address",
	};
	char env[128];
	for (size_t ki = 0; ki < N_KEYS; ki++) {
		const struct key *k = &keys[ki];
		const char *type = k->secret ? "secret" : type_names[k->type];
		if (k->type == T_HOSTS) {
			fn(ud, "hosts.<name>", HOSTS_ENV "<NAME>", type, k->help);
			continue;
		}
		env_name(k->path, env, sizeof(env));
		fn(ud, k->path, env, type, k->help);
	}
}
