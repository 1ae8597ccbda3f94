/*
 * logs.c - `autobot logs`: not built yet.
 */
#include "cli.h"

#include <stdio.h>

int ab_cmd_logs(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot logs: not built yet\n");
	return 1;
}
