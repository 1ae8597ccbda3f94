/*
 * startlat.c - start-time driver for bench/run.sh.
 *
 *   startlat http PORT RUNS TIMEOUT_MS -- PROG ARGS...
 *       For each run: note the time, fork + exec PROG ARGS (stdout/stderr to
 *       /dev/null), then every 1 ms open a TCP connection to 127.0.0.1:PORT,
 *       send "GET /api/health" and read the status line, until the answer is
 *       "HTTP/1.x 200". The run's figure is the time from just before fork()
 *       to that answer. The child is then stopped (SIGTERM, waited for; SIGKILL
 *       after 2 s) before the next run.
 *
 *   startlat line RUNS TIMEOUT_MS TEXT -- PROG ARGS...
 *       The same, but the figure is the time until PROG prints a line that
 *       contains TEXT on its stdout (read through a pipe). Used for
 *       `autobot up` ("autobot is up").
 *
 * Prints one figure per line in milliseconds (3 decimals), then a summary
 * line "# n=.. min=.. median=.. p90=.. max=..". Exit status 1 if any run
 * timed out (its line says "timeout").
 *
 * Every wait is bounded: TIMEOUT_MS per run, 2 s for the child to exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1e3),
			      .tv_nsec = (long)((ms - (time_t)(ms / 1e3) * 1e3) * 1e6)};
	nanosleep(&ts, NULL);
}

/* One attempt: 1 if the coordinator answered 200 within 200 ms, else 0. */
static int probe(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int ok = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static const char req[] = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
		goto out;
	char buf[64];
	size_t got = 0;
	while (got < 12) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	buf[got] = 0;
	ok = strncmp(buf, "HTTP/1.", 7) == 0 && strncmp(buf + 9, "200", 3) == 0;
out:
	close(fd);
	return ok;
}

static void stop_child(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	for (int i = 0; i < 2000; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return;
		sleep_ms(1);
	}
	kill(-pid, SIGKILL); /* its process group: autobot up's children too */
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static double median(const double *v, int n)
{
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array. */
static double pct(const double *v, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

int main(int argc, char **argv)
{
	int sep = 0;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0) {
			sep = i;
			break;
		}
	if (argc < 2 || !sep || sep + 1 >= argc) {
		fprintf(stderr, "usage: startlat http PORT RUNS TIMEOUT_MS -- PROG ARGS...\n"
				"       startlat line RUNS TIMEOUT_MS TEXT -- PROG ARGS...\n");
		return 64;
	}
	int http = strcmp(argv[1], "http") == 0;
	int port = 0, runs, timeout_ms;
	const char *text = NULL;
	if (http) {
		if (sep != 5)
			return 64;
		port = atoi(argv[2]);
		runs = atoi(argv[3]);
		timeout_ms = atoi(argv[4]);
	} else {
		if (sep != 5)
			return 64;
		runs = atoi(argv[2]);
		timeout_ms = atoi(argv[3]);
		text = argv[4];
	}
	char **prog = argv + sep + 1;
	double *v = calloc((size_t)runs, sizeof(double));
	int n = 0, failed = 0;
	signal(SIGPIPE, SIG_IGN);

	for (int r = 0; r < runs; r++) {
		int pfd[2] = {-1, -1};
		if (!http && pipe2(pfd, O_CLOEXEC) != 0)
			return 1;
		double t0 = now_ms();
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0) {
			int devnull = open("/dev/null", O_RDWR);
			dup2(devnull, 0);
			dup2(http ? devnull : pfd[1], 1);
			dup2(devnull, 2);
			setpgid(0, 0);
			execv(prog[0], prog);
			_exit(127);
		}
		double t = -1;
		if (http) {
			while (now_ms() - t0 < timeout_ms) {
				if (probe(port)) {
					t = now_ms() - t0;
					break;
				}
				int st;
				if (waitpid(pid, &st, WNOHANG) == pid) {
					pid = 0;
					break;
				}
				sleep_ms(1);
			}
		} else {
			close(pfd[1]);
			char buf[8192];
			size_t got = 0;
			while (now_ms() - t0 < timeout_ms) {
				struct pollfd p = {.fd = pfd[0], .events = POLLIN};
				int left = (int)(timeout_ms - (now_ms() - t0)) + 1;
				if (poll(&p, 1, left) <= 0)
					continue;
				ssize_t k = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
				if (k <= 0)
					break;
				got += (size_t)k;
				buf[got] = 0;
				if (strstr(buf, text)) {
					t = now_ms() - t0;
					break;
				}
				if (got > sizeof(buf) / 2) { /* keep the tail only */
					memmove(buf, buf + got - 256, 256);
					got = 256;
				}
			}
			close(pfd[0]);
		}
		if (pid > 0)
			stop_child(pid);
		if (t < 0) {
			printf("timeout\n");
			failed = 1;
		} else {
			printf("%.3f\n", t);
			v[n++] = t;
		}
		fflush(stdout);
		sleep_ms(50); /* let the port and the state dir settle */
	}
	if (n > 0) {
		qsort(v, (size_t)n, sizeof(double), cmp_d);
		printf("# n=%d min=%.3f median=%.3f p90=%.3f max=%.3f\n", n, v[0], median(v, n),
		       pct(v, n, 90), v[n - 1]);
	} else {
		printf("# n=0\n");
	}
	free(v);
	return failed;
}
