/*
 * cli.c - option handling shared by the subcommands (cli.h).
 */
#include "cli.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
