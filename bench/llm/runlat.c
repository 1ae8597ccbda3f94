/*
 * runlat.c - process timer for bench/llm/run.sh. Links nothing of AutoBot's.
 *
 *   runlat TIMEOUT_MS STDOUT_FILE STDERR_FILE -- PROG ARGS...
 *
 * Notes CLOCK_MONOTONIC, forks and execs PROG ARGS with stdin from
 * /dev/null, stdout through a pipe (copied to STDOUT_FILE) and stderr to
 * STDERR_FILE, and prints one line:
 *
 *   ttft_ms=F wall_ms=F maxrss_kb=N rc=N
 *
 * ttft_ms: from just before fork() to the first byte PROG writes on stdout
 *          (`autobot run` flushes stdout after every generated token, so this
 *          is exec + model load + tokenisation + prompt evaluation + the first
 *          sampled token; -1 if PROG printed nothing).
 * wall_ms: from just before fork() to PROG's exit (reaped).
 * maxrss_kb: ru_maxrss of PROG from wait4(), the figure /usr/bin/time -v
 *          prints as "Maximum resident set size" (the child's VmHWM).
 * rc:      PROG's exit status, or 128+signal.
 *
 * Bounded: after TIMEOUT_MS PROG is sent SIGKILL, and the line says rc=137.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 6 || strcmp(argv[4], "--") != 0) {
		fprintf(stderr, "usage: runlat TIMEOUT_MS STDOUT_FILE STDERR_FILE -- PROG ARGS...\n");
		return 2;
	}
	double timeout = atof(argv[1]);
	int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int p[2];
	if (out < 0 || err < 0 || nul < 0 || pipe2(p, O_CLOEXEC) < 0) {
		perror("runlat");
		return 2;
	}
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("runlat: fork");
		return 2;
	}
	if (pid == 0) {
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(err, 2);
		execvp(argv[5], argv + 5);
		_exit(127);
	}
	close(p[1]);
	double ttft = -1;
	char buf[65536];
	bool killed = false;
	for (;;) {
		double left = t0 + timeout - now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		struct pollfd pf = {.fd = p[0], .events = POLLIN};
		int r = poll(&pf, 1, (int)(left > 1000 ? 1000 : left + 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t k = read(p[0], buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break; /* EOF: PROG closed stdout (exited) */
		if (ttft < 0)
			ttft = now_ms() - t0;
		if (write(out, buf, (size_t)k) < 0) {
			/* the copy is for the record only */
		}
	}
	int st = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof ru);
	while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR)
		;
	double wall = now_ms() - t0;
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (killed)
		rc = 137;
	printf("ttft_ms=%.3f wall_ms=%.3f maxrss_kb=%ld rc=%d\n", ttft, wall, ru.ru_maxrss, rc);
	return 0;
}
