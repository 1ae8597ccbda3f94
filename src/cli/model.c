/* model.c - `autobot model`: placeholder until the engine lands. */
#include "cli.h"

int ab_cmd_model(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "autobot model: not built yet\n");
	return 1;
}
