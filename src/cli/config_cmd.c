/*
 * config_cmd.c - `autobot config check|show|keys`: validate the layered
 * config, print it with secrets redacted, list every key.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot config check|show|keys [options]\n"
		"\n"
		"  check   validate the config (YAML < .env < AUTOBOT_* variables < flags);\n"
		"          prints \"config ok\" or the first error with file, line and key\n"
		"  show    print the effective config as JSON, secrets redacted\n"
		"  keys    list every key with its environment variable and meaning\n"
		"\noptions:\n%s"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

static void print_key(void *ud, const char *key, const char *env, const char *type,
		      const char *help)
{
	(void)ud;
	printf("%-34s %-44s %-8s %s\n", key, env, type, help);
}

int ab_cmd_config(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *pos[1];
	size_t n_pos = 0;
	int pr = ab_cli_parse(argc, argv, "config", &co, NULL, pos, 1, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	const char *sub = n_pos ? pos[0] : NULL;
	if (!sub) {
		usage(stderr);
		return AB_EXIT_USAGE;
	}
	if (!strcmp(sub, "keys")) {
		printf("%-34s %-44s %-8s %s\n", "KEY", "ENVIRONMENT", "TYPE", "MEANING");
		ab_config_each_key(print_key, NULL);
		return 0;
	}
	if (strcmp(sub, "check") && strcmp(sub, "show")) {
		fprintf(stderr, "autobot config: unknown subcommand %s\n", sub);
		usage(stderr);
		return AB_EXIT_USAGE;
	}
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	if (!strcmp(sub, "check")) {
		printf("config ok: %s\n", cfg->path ? cfg->path : "(no file: defaults)");
	} else {
		json_t *j = ab_config_to_json(cfg, true);
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(j);
	}
	ab_config_free(cfg);
	return 0;
}
