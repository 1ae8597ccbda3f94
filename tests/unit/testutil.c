/* testutil.c - placeholder: helpers shared by the unit tests */
#include "testutil.h"
