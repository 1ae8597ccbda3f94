/*
 * supervise.h - a small process supervisor for `autobot up`: it starts
 * child processes in order, prefixes every line they print with their
 * name, restarts a child that dies with capped exponential backoff, and
 * stops them all in reverse order (SIGTERM, then SIGKILL after a grace
 * period) so that nothing is left behind.
 */
#ifndef AB_SUPERVISE_H
#define AB_SUPERVISE_H

#include "common.h"

#include <sys/types.h>

struct ab_supervisor;

/* Log lines of children go to out_fd, as "[name] line". */
struct ab_supervisor *ab_supervisor_new(int out_fd);
/* Stops what still runs, then frees. NULL ok. */
void ab_supervisor_free(struct ab_supervisor *sv);

/* Adds a child (argv copied; argv[0] is the program path, looked up in
 * PATH when it has no slash). Returns its index, or a negative code. */
int ab_supervisor_add(struct ab_supervisor *sv, const char *name, char *const argv[]);
/* Starts child idx now. Returns 0 or -errno. */
int ab_supervisor_start(struct ab_supervisor *sv, int idx);
pid_t ab_supervisor_pid(struct ab_supervisor *sv, int idx);
/* Times child idx has been restarted after dying. */
int ab_supervisor_restarts(struct ab_supervisor *sv, int idx);

/*
 * Installs SIGINT/SIGTERM/SIGCHLD handlers. Then ab_supervisor_pump()
 * forwards output, reaps and restarts children for at most timeout_ms, and
 * returns 1 when a stop was requested by a signal, else 0.
 */
int ab_supervisor_install_signals(void);
int ab_supervisor_pump(struct ab_supervisor *sv, int timeout_ms);
bool ab_supervisor_stop_requested(void);
/* Stops every child, last started first; waits grace_ms per child. */
void ab_supervisor_stop_all(struct ab_supervisor *sv, int grace_ms);

#endif
