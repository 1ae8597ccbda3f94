/* testutil.h - placeholder */
#ifndef AB_TESTUTIL_H
#define AB_TESTUTIL_H
#endif
