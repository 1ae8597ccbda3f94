/*
 * roles.c - the table of roles this build implements. A new role is one
 * file under src/roles defining a struct ab_role_def, plus one line here.
 */
#include "service.h"

#include <string.h>

extern const struct ab_role_def ab_role_coordinator;
extern const struct ab_role_def ab_role_llm;

static const struct ab_role_def *const table[] = {
	&ab_role_coordinator,
	&ab_role_llm,
};

const char *const ab_implemented_roles[] = {"coordinator", "llm", NULL};

const struct ab_role_def *ab_role_def_find(const char *name)
{
	for (size_t i = 0; i < AB_ARRAY_LEN(table); i++)
		if (strcmp(ab_role_name(table[i]->role), name) == 0)
			return table[i];
	return NULL;
}
