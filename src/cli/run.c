/* run.c - `autobot run`: placeholder until the engine lands. */
#include "cli.h"

int ab_cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot run: not built yet\n");
	return 1;
}
