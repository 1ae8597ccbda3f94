/*
 * main.c - the autobot binary: one program, every role and every tool,
 * chosen by the first argument (like redis-server or consul agent).
 */
#include "cli/cli.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("autobot %s\n", AB_VERSION);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"up", ab_cmd_up, "start the whole platform on this machine (foreground)"},
	{"serve", ab_cmd_serve, "run one role in the foreground (for systemd)"},
	{"health", ab_cmd_health, "probe every service; exit 0 ok, 1 degraded, 2 down"},
	{"status", ab_cmd_status, "registry, state and health of the cluster"},
	{"config", ab_cmd_config, "check, show or list the configuration"},
	{"model", ab_cmd_model, "inspect, convert, synthesise and list models"},
	{"run", ab_cmd_run, "generate text with a model on this machine"},
	{"chat", ab_cmd_chat, "chat with the cluster's LLM through the coordinator"},
	{"kb", ab_cmd_kb, "the knowledge base: add, search, rm, eval"},
	{"ssh-setup", ab_cmd_ssh_setup, "make and install the cluster's SSH key on every host"},
	{"deploy", ab_cmd_deploy, "copy, install and start AutoBot on the configured hosts"},
	{"backup", ab_cmd_backup, "create, list, verify and restore backups"},
	{"logs", ab_cmd_logs, "read the logs of every role on every host"},
	{"version", cmd_version, "print the version"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"autobot %s - a self-hosted AI assistant platform\n"
		"\n"
		"usage: autobot COMMAND [options]   (autobot COMMAND --help for more)\n"
		"\ncommands:\n",
		AB_VERSION);
	for (size_t i = 0; i < AB_ARRAY_LEN(commands); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nmake run starts everything; see README.md\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return AB_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V"))
		return cmd_version(0, NULL);
	for (size_t i = 0; i < AB_ARRAY_LEN(commands); i++) {
		if (strcmp(cmd, commands[i].name) == 0) {
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "autobot: unknown command \"%s\"\n\n", cmd);
	usage(stderr);
	return AB_EXIT_USAGE;
}
