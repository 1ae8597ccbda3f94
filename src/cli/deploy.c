/*
 * deploy.c - `autobot ssh-setup` and `autobot deploy`: not built yet.
 */
#include "cli.h"

#include <stdio.h>

int ab_cmd_ssh_setup(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot ssh-setup: not built yet\n");
	return 1;
}

int ab_cmd_deploy(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot deploy: not built yet\n");
	return 1;
}
