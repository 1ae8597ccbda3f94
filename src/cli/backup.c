/*
 * backup.c - `autobot backup`: not built yet.
 */
#include "cli.h"

#include <stdio.h>

int ab_cmd_backup(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot backup: not built yet\n");
	return 1;
}
