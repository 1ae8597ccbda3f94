/*
 * supervise.c - the supervisor of supervise.h.
 *
 * One thread does everything. Signals only set a flag and write a byte to
 * a self-pipe, so that poll() in ab_supervisor_pump() wakes up; the pump
 * then reads children's output, reaps exited children with waitpid()
 * (WNOHANG) and restarts those whose backoff has elapsed.
 *
 * Children run in their own process group, so a Ctrl-C in the terminal
 * reaches only the supervisor, which then stops them in reverse start
 * order (the coordinator before the Redis it writes to). Each child also
 * asks the kernel for SIGTERM when the supervisor dies (PR_SET_PDEATHSIG),
 * so even a kill -9 of `autobot up` leaves no orphan behind.
 *
 * Backoff: a child that dies is restarted after 250 ms, doubling up to
 * 30 s; a child that ran for more than 10 s starts again from 250 ms.
 */
#include "supervise.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 16
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 10000

struct child {
	char name[32];
	char **argv;
	pid_t pid;
	int out_fd;
	bool want_running;
	int64_t started_ms;
	int64_t restart_at_ms;
	int backoff_ms;
	int restarts;
	struct ab_buf line;
};

struct ab_supervisor {
	int out_fd;
	struct child kids[MAX_CHILDREN];
	int n;
};

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	int saved = errno;
	if (sig == SIGINT || sig == SIGTERM)
		stop_flag = 1;
	if (sig_pipe[1] >= 0) {
		char c = (char)sig;
		ssize_t w = write(sig_pipe[1], &c, 1);
		(void)w;
	}
	errno = saved;
}

int ab_supervisor_install_signals(void)
{
	if (sig_pipe[0] < 0) {
		if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
			return -errno;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

bool ab_supervisor_stop_requested(void)
{
	return stop_flag != 0;
}

struct ab_supervisor *ab_supervisor_new(int out_fd)
{
	struct ab_supervisor *sv = ab_xcalloc(1, sizeof(*sv));
	sv->out_fd = out_fd;
	return sv;
}

int ab_supervisor_add(struct ab_supervisor *sv, const char *name, char *const argv[])
{
	if (sv->n >= MAX_CHILDREN)
		return AB_ETOOBIG;
	struct child *c = &sv->kids[sv->n];
	memset(c, 0, sizeof(*c));
	ab_strlcpy(c->name, name, sizeof(c->name));
	size_t argc = 0;
	while (argv[argc])
		argc++;
	c->argv = ab_xcalloc(argc + 1, sizeof(char *));
	for (size_t i = 0; i < argc; i++)
		c->argv[i] = ab_xstrdup(argv[i]);
	c->pid = -1;
	c->out_fd = -1;
	c->backoff_ms = BACKOFF_MIN_MS;
	return sv->n++;
}

pid_t ab_supervisor_pid(struct ab_supervisor *sv, int idx)
{
	return (idx >= 0 && idx < sv->n) ? sv->kids[idx].pid : -1;
}

int ab_supervisor_restarts(struct ab_supervisor *sv, int idx)
{
	return (idx >= 0 && idx < sv->n) ? sv->kids[idx].restarts : 0;
}

static void emit(struct ab_supervisor *sv, struct child *c, const char *line, size_t len)
{
	struct ab_buf b = {0};
	ab_buf_printf(&b, "[%s] ", c->name);
	ab_buf_append(&b, line, len);
	ab_buf_putc(&b, '\n');
	ssize_t w = write(sv->out_fd, b.data, b.len);
	(void)w;
	ab_buf_free(&b);
}

/* Forwards complete lines of c's buffered output; flush emits the rest. */
static void drain_lines(struct ab_supervisor *sv, struct child *c, bool flush)
{
	size_t start = 0;
	for (size_t i = 0; i < c->line.len; i++) {
		if (c->line.data[i] == '\n') {
			emit(sv, c, c->line.data + start, i - start);
			start = i + 1;
		}
	}
	if (flush && start < c->line.len) {
		emit(sv, c, c->line.data + start, c->line.len - start);
		start = c->line.len;
	}
	if (start > 0) {
		memmove(c->line.data, c->line.data + start, c->line.len - start);
		c->line.len -= start;
		c->line.data[c->line.len] = '\0';
	}
	if (c->line.len > 16384) /* a line without end: cut it */
		drain_lines(sv, c, true);
}

static void read_output(struct ab_supervisor *sv, struct child *c)
{
	char buf[8192];
	for (;;) {
		ssize_t n = read(c->out_fd, buf, sizeof(buf));
		if (n > 0) {
			ab_buf_append(&c->line, buf, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			drain_lines(sv, c, true);
			close(c->out_fd);
			c->out_fd = -1;
		}
		break;
	}
	drain_lines(sv, c, false);
}

int ab_supervisor_start(struct ab_supervisor *sv, int idx)
{
	struct child *c = &sv->kids[idx];
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		dup2(p[1], 1);
		dup2(p[1], 2);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGCHLD, &sa, NULL);
		sigaction(SIGPIPE, &sa, NULL);
		execvp(c->argv[0], c->argv);
		fprintf(stderr, "cannot run %s: %s\n", c->argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	if (c->out_fd >= 0)
		close(c->out_fd);
	c->out_fd = p[0];
	c->pid = pid;
	c->want_running = true;
	c->started_ms = ab_now_ms();
	c->restart_at_ms = 0;
	ab_log(AB_LOG_INFO, "started %s (pid %d)", c->name, (int)pid);
	return 0;
}

static void reap(struct ab_supervisor *sv)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (int i = 0; i < sv->n; i++) {
			struct child *c = &sv->kids[i];
			if (c->pid != pid)
				continue;
			c->pid = -1;
			if (c->out_fd >= 0)
				read_output(sv, c);
			if (!c->want_running)
				break;
			int64_t ran = ab_now_ms() - c->started_ms;
			if (ran > STABLE_MS)
				c->backoff_ms = BACKOFF_MIN_MS;
			if (WIFSIGNALED(status))
				ab_log(AB_LOG_WARN, "%s (pid %d) killed by signal %d after %lld ms; restarting in %d ms",
				       c->name, (int)pid, WTERMSIG(status), (long long)ran, c->backoff_ms);
			else
				ab_log(AB_LOG_WARN, "%s (pid %d) exited with status %d after %lld ms; restarting in %d ms",
				       c->name, (int)pid, WEXITSTATUS(status), (long long)ran, c->backoff_ms);
			c->restart_at_ms = ab_now_ms() + c->backoff_ms;
			c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
									   : c->backoff_ms * 2;
			break;
		}
	}
}

int ab_supervisor_pump(struct ab_supervisor *sv, int timeout_ms)
{
	int64_t deadline = ab_now_ms() + timeout_ms;
	for (;;) {
		struct pollfd fds[MAX_CHILDREN + 1];
		int map[MAX_CHILDREN + 1];
		nfds_t n = 0;
		if (sig_pipe[0] >= 0) {
			fds[n].fd = sig_pipe[0];
			fds[n].events = POLLIN;
			map[n++] = -1;
		}
		int64_t now = ab_now_ms();
		int wait = (int)(deadline - now);
		for (int i = 0; i < sv->n; i++) {
			struct child *c = &sv->kids[i];
			if (c->out_fd >= 0) {
				fds[n].fd = c->out_fd;
				fds[n].events = POLLIN;
				map[n++] = i;
			}
			if (c->want_running && c->pid < 0 && c->restart_at_ms) {
				int until = (int)(c->restart_at_ms - now);
				if (until < wait)
					wait = until;
			}
		}
		if (wait < 0)
			wait = 0;
		if (stop_flag)
			return 1;
		int r = poll(fds, n, wait);
		if (r < 0 && errno != EINTR)
			return -errno;
		for (nfds_t k = 0; r > 0 && k < n; k++) {
			if (!fds[k].revents)
				continue;
			if (map[k] < 0) {
				char tmp[64];
				while (read(sig_pipe[0], tmp, sizeof(tmp)) > 0)
					;
			} else {
				read_output(sv, &sv->kids[map[k]]);
			}
		}
		reap(sv);
		if (stop_flag)
			return 1;
		now = ab_now_ms();
		for (int i = 0; i < sv->n; i++) {
			struct child *c = &sv->kids[i];
			if (c->want_running && c->pid < 0 && c->restart_at_ms &&
			    now >= c->restart_at_ms) {
				c->restarts++;
				int rc = ab_supervisor_start(sv, i);
				if (rc < 0) {
					ab_log(AB_LOG_ERROR, "cannot restart %s: %s", c->name,
					       ab_strerror(rc));
					c->restart_at_ms = now + c->backoff_ms;
				}
			}
		}
		if (ab_now_ms() >= deadline)
			return 0;
	}
}

static bool wait_exit(struct ab_supervisor *sv, struct child *c, int ms)
{
	int64_t deadline = ab_now_ms() + ms;
	while (ab_now_ms() < deadline) {
		int status;
		pid_t r = waitpid(c->pid, &status, WNOHANG);
		if (r == c->pid || (r < 0 && errno == ECHILD)) {
			c->pid = -1;
			if (c->out_fd >= 0)
				read_output(sv, c);
			return true;
		}
		if (c->out_fd >= 0) {
			struct pollfd pfd = {c->out_fd, POLLIN, 0};
			if (poll(&pfd, 1, 20) > 0)
				read_output(sv, c);
		} else {
			ab_sleep_ms(20);
		}
	}
	return false;
}

void ab_supervisor_stop_all(struct ab_supervisor *sv, int grace_ms)
{
	for (int i = sv->n - 1; i >= 0; i--) {
		struct child *c = &sv->kids[i];
		c->want_running = false;
		if (c->pid <= 0)
			continue;
		pid_t pgid = c->pid;
		ab_log(AB_LOG_INFO, "stopping %s (pid %d)", c->name, (int)c->pid);
		kill(c->pid, SIGTERM);
		if (!wait_exit(sv, c, grace_ms)) {
			ab_log(AB_LOG_WARN, "%s did not stop within %d ms; killing it", c->name,
			       grace_ms);
			kill(-c->pid, SIGKILL);
			kill(c->pid, SIGKILL);
			wait_exit(sv, c, 2000);
		}
		/* Anything the child left in its process group goes too. */
		kill(-pgid, SIGKILL);
	}
}

void ab_supervisor_free(struct ab_supervisor *sv)
{
	if (!sv)
		return;
	ab_supervisor_stop_all(sv, 5000);
	for (int i = 0; i < sv->n; i++) {
		struct child *c = &sv->kids[i];
		for (char **a = c->argv; a && *a; a++)
			free(*a);
		free(c->argv);
		if (c->out_fd >= 0)
			close(c->out_fd);
		ab_buf_free(&c->line);
	}
	free(sv);
}
