/*
 * serve.c - `autobot serve ROLE`: one role in the foreground, for systemd
 * (Type=notify: READY=1 is sent once the port is open) or by hand.
 */
#include "cli.h"

#include "log.h"
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot serve ROLE [options]\n"
		"\n"
		"Runs one role in the foreground until SIGTERM or Ctrl-C.\n"
		"Roles built in this version:");
	for (const char *const *r = ab_implemented_roles; *r; r++)
		fprintf(f, " %s", *r);
	fprintf(f,
		"\n\noptions:\n%s"
		"  --port N           listen on N instead of services.ROLE.port (0 = any free)\n"
		"  --bind ADDR        bind ADDR instead of services.ROLE.host\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

int ab_cmd_serve(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	struct ab_serve_opts so = {0};
	const char *port_s = NULL, *pos[1];
	size_t n_pos = 0;
	const struct ab_cli_opt opts[] = {
		{"--port", NULL, &port_s},
		{"--bind", NULL, &so.bind_override},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "serve", &co, opts, pos, 1, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	const char *role = n_pos ? pos[0] : NULL;
	int port = -1;
	if (port_s) {
		long long p;
		if (ab_cli_int("serve", "--port", port_s, 0, 65535, &p) < 0)
			return AB_EXIT_USAGE;
		port = (int)p;
	}
	if (!role) {
		usage(stderr);
		return AB_EXIT_USAGE;
	}
	if (ab_role_parse(role) < 0) {
		fprintf(stderr, "autobot serve: unknown role \"%s\"\n", role);
		return AB_EXIT_USAGE;
	}
	const struct ab_role_def *def = ab_role_def_find(role);
	if (!def) {
		fprintf(stderr,
			"autobot serve: the %s role is not built in this version of autobot "
			"(built:",
			role);
		for (const char *const *r = ab_implemented_roles; *r; r++)
			fprintf(stderr, " %s", *r);
		fprintf(stderr, ")\n");
		return 1;
	}
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	ab_log_init(role, cfg->log_level, cfg->log_json);
	if (port == 0) /* any free port: validation allows only 1-65535 */
		cfg->services[def->role].port = 0;
	else if (port > 0)
		so.port_override = port;
	int rc = ab_service_run(cfg, def, &so);
	ab_config_free(cfg);
	return rc;
}
