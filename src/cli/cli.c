/*
 * cli.c - option handling shared by the subcommands (cli.h).
 */
#include "cli.h"

#include "catalog.h"
#include "log.h"
#include "redis.h"
#include "secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

const char ab_cli_common_help[] =
	"  --config FILE      YAML config (default: $AUTOBOT_CONFIG, else none:\n"
	"                     every role on 127.0.0.1 at its default port)\n"
	"  --state-dir DIR    where secrets, data and logs live (state_dir)\n"
	"  --env-file FILE    .env file to read (default: ./.env if present)\n"
	"  --set KEY=VALUE    override one config key, e.g. --set timeouts.probe_ms=300\n";

const char *ab_cli_opt_value(const char *name, int argc, char **argv, int *i)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "autobot: %s needs a value\n", name);
		return "";
	}
	(*i)++;
	return argv[*i];
}

int ab_cli_common_opt(struct ab_cli_common *co, int argc, char **argv, int *i)
{
	const char *v;
	if ((v = ab_cli_opt_value("--config", argc, argv, i))) {
		co->config = v;
	} else if ((v = ab_cli_opt_value("--state-dir", argc, argv, i))) {
		co->state_dir = v;
	} else if ((v = ab_cli_opt_value("--env-file", argc, argv, i))) {
		co->env_file = v;
	} else if ((v = ab_cli_opt_value("--set", argc, argv, i))) {
		if (co->n_sets >= AB_ARRAY_LEN(co->sets)) {
			fprintf(stderr, "autobot: too many --set options\n");
			return -1;
		}
		co->sets[co->n_sets++] = v;
	} else {
		return 0;
	}
	if (!*v) {
		fprintf(stderr, "autobot: %s needs a value\n", argv[*i]);
		return -1;
	}
	return 1;
}

struct ab_config *ab_cli_load_config(const struct ab_cli_common *co)
{
	struct ab_config_src src = {
		.file = co->config ? co->config : getenv("AUTOBOT_CONFIG"),
		.env_file = co->env_file,
		.environ = environ,
		.sets = co->sets,
		.n_sets = co->n_sets,
		.state_dir = co->state_dir,
	};
	if (src.file && !*src.file)
		src.file = NULL;
	struct ab_config *cfg = NULL;
	char err[1024];
	if (ab_config_load(&src, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "autobot: config: %s\n", err);
		return NULL;
	}
	return cfg;
}

int ab_cli_parse(int argc, char **argv, const char *cmd, struct ab_cli_common *co,
		 const struct ab_cli_opt *opts, const char **pos, size_t max_pos, size_t *n_pos,
		 void (*usage)(FILE *f))
{
	if (n_pos)
		*n_pos = 0;
	for (int i = 1; i < argc; i++) {
		int r = ab_cli_common_opt(co, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 1;
		}
		bool matched = false;
		for (const struct ab_cli_opt *o = opts; o && o->name && !matched; o++) {
			if (o->flag && !strcmp(argv[i], o->name)) {
				*o->flag = true;
				matched = true;
			} else if (o->value) {
				const char *v = ab_cli_opt_value(o->name, argc, argv, &i);
				if (v && !*v)
					return -1;
				if (v) {
					*o->value = v;
					matched = true;
				}
			}
		}
		if (matched)
			continue;
		if (argv[i][0] == '-' || !n_pos || *n_pos >= max_pos) {
			fprintf(stderr, "autobot %s: unexpected argument %s\n", cmd, argv[i]);
			usage(stderr);
			return -1;
		}
		pos[(*n_pos)++] = argv[i];
	}
	return 0;
}

int ab_cli_int(const char *cmd, const char *opt, const char *v, long long min, long long max,
	       long long *out)
{
	if (ab_parse_int(v, min, max, out) == 0)
		return 0;
	fprintf(stderr, "autobot %s: %s: expected an integer from %lld to %lld, got \"%s\"\n",
		cmd, opt, min, max, v);
	return -1;
}

void ab_cli_model_dirs(const struct ab_config *cfg, char **models_dir, char **ollama_dir)
{
	if (cfg->llm.models_dir && *cfg->llm.models_dir)
		*models_dir = ab_xstrdup(cfg->llm.models_dir);
	else
		*models_dir = ab_xasprintf("%s/models", cfg->state_dir);
	if (cfg->llm.ollama_dir && *cfg->llm.ollama_dir)
		*ollama_dir = ab_xstrdup(cfg->llm.ollama_dir);
	else
		*ollama_dir = ab_catalog_default_ollama_dir();
}

/* Where autobot.so is: services.redis.module if set, else next to this
 * binary in a build tree (src/redismod/autobot.so) or in the lib folder of
 * an installation (../lib[/<multiarch>]/autobot/autobot.so). out = "" when
 * the config says "none" or nothing is found (then the knowledge base is
 * unavailable, which the coordinator reports). 0 or AB_ENOTFOUND when a
 * configured path is not readable. */
int ab_cli_module_path(const struct ab_config *cfg, char *out, size_t len)
{
	if (len < PATH_MAX)
		return AB_EINVAL; /* realpath() writes up to PATH_MAX */
	out[0] = '\0';
	const char *want = cfg->redis_module;
	if (want && !strcmp(want, "none"))
		return 0;
	if (want && want[0]) {
		if (access(want, R_OK) != 0 || !realpath(want, out)) {
			out[0] = '\0';
			return AB_ENOTFOUND;
		}
		return 0;
	}
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0)
		return 0;
	self[sl] = '\0';
	char *slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	static const char *const rel[] = {
		"src/redismod/autobot.so",
		"../lib/autobot/autobot.so",
		"../lib/x86_64-linux-gnu/autobot/autobot.so",
		"../lib/aarch64-linux-gnu/autobot/autobot.so",
	};
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		char cand[PATH_MAX];
		snprintf(cand, sizeof(cand), "%s/%s", self, rel[i]);
		if (access(cand, R_OK) == 0 && realpath(cand, out))
			return 0;
	}
	out[0] = '\0';
	return 0;
}

int ab_cli_token(const struct ab_config *cfg, const char *cmd, char *out, size_t len)
{
	const char *envtok = getenv("AUTOBOT_TOKEN");
	if (envtok && *envtok) {
		ab_strlcpy(out, envtok, len);
		return 0;
	}
	char *p = ab_xasprintf("%s/admin.token", cfg->state_dir);
	int e = ab_secrets_read_file(p, out, len);
	if (e < 0)
		fprintf(stderr, "autobot %s: no token: set AUTOBOT_TOKEN or make %s readable (%s)\n",
			cmd, p, ab_strerror(e));
	free(p);
	return e;
}

struct ab_redis *ab_cli_redis(struct ab_config *cfg, int connect_ms, int command_ms, int wait_ms)
{
	struct ab_secrets sec;
	char err[256];
	if (ab_secrets_load(cfg, 0, &sec, err, sizeof(err)) < 0)
		sec.redis_password[0] = '\0';
	ab_secrets_apply(cfg, &sec);
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	struct ab_redis_opts ro = {
		.host = rs->host,
		.port = rs->port,
		.password = rs->password,
		.connect_timeout_ms = connect_ms,
		.command_timeout_ms = command_ms,
		.pool_size = 1,
	};
	struct ab_redis *r = NULL;
	if (ab_redis_new(&ro, &r) < 0)
		return NULL;
	int64_t deadline = ab_now_ms() + wait_ms;
	while (ab_now_ms() < deadline) {
		struct ab_redis_status st;
		ab_redis_status(r, &st);
		if (st.state != AB_REDIS_CONNECTING)
			break;
		ab_sleep_ms(1);
	}
	return r;
}
