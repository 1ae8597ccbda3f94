/*
 * ssh.c - the cluster's SSH helper: runs the system `ssh` client for
 * `autobot ssh-setup`, `autobot deploy` and `autobot backup`.
 *
 * Why the ssh binary and not a library: the operator's OpenSSH already
 * knows their agent, their ~/.ssh/config (jump hosts, proxies) and their
 * password prompts, and it is the most audited SSH code there is. What this
 * file adds is the discipline around it:
 *
 *  - no local shell: ssh is started with fork/execvp and an argv array;
 *  - the remote command is one string (that is what the SSH protocol
 *    carries; sshd hands it to the user's shell), built here by quoting
 *    every word in single quotes, so a path with spaces, quotes or $ stays
 *    one literal argument;
 *  - every connection has BatchMode=yes (fail instead of prompting),
 *    ConnectTimeout, and the cluster's own known_hosts file with
 *    StrictHostKeyChecking=accept-new (trust on first use, then a changed
 *    host key is refused); a key given is used alone (IdentitiesOnly);
 *  - one deadline for the whole run: stdin is fed, stdout and stderr are
 *    drained through poll() (so neither pipe can fill up and stall ssh),
 *    and ssh is killed when the deadline passes;
 *  - SIGPIPE from a remote side that stops reading early is blocked for
 *    the calling thread and swallowed, never fatal.
 *
 * Copies do not use scp: the bytes go over the same ssh channel as stdin
 * of a fixed remote script that writes them to a temporary name next to
 * the target, checks the byte count, sets the mode and renames - atomic on
 * the remote file system, and a transfer cut short never replaces a file.
 */
#include "ssh.h"

#include "log.h"
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAP (16u << 20)
#define MAX_ARGS 64
#define COPY_TIMEOUT_MS (10 * 60 * 1000)

/* ---- targets ------------------------------------------------------------- */

/* Appends s and its NUL to buf at *used; returns the copy or NULL. */
static const char *put(char *buf, size_t buflen, size_t *used, const char *s)
{
	size_t n = strlen(s) + 1;
	if (*used + n > buflen)
		return NULL;
	memcpy(buf + *used, s, n);
	const char *r = buf + *used;
	*used += n;
	return r;
}

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && h[0] == '/')
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw && pw->pw_dir ? pw->pw_dir : "/";
}

/* Fills *t from cfg; the strings live in buf (see ssh.h). */
int ab_ssh_target_for(const struct ab_config *cfg, const char *host_name,
		      struct ab_ssh_target *t, char *buf, size_t buflen)
{
	if (!host_name || !host_name[0] || host_name[0] == '-')
		return AB_EINVAL;
	memset(t, 0, sizeof(*t));
	const char *addr = host_name;
	for (size_t i = 0; i < cfg->n_hosts; i++)
		if (strcmp(cfg->hosts[i].name, host_name) == 0)
			addr = cfg->hosts[i].addr;
	if (!addr[0] || addr[0] == '-')
		return AB_EINVAL;
	size_t used = 0;
	char tmp[PATH_MAX + 64];
	t->host = put(buf, buflen, &used, addr);
	t->port = cfg->deploy.ssh_port > 0 ? cfg->deploy.ssh_port : 22;
	if (cfg->deploy.ssh_user && cfg->deploy.ssh_user[0])
		t->user = put(buf, buflen, &used, cfg->deploy.ssh_user);
	if (cfg->deploy.ssh_key && cfg->deploy.ssh_key[0])
		ab_strlcpy(tmp, cfg->deploy.ssh_key, sizeof(tmp));
	else
		snprintf(tmp, sizeof(tmp), "%s/.ssh/autobot_distributed", home_dir());
	t->key = put(buf, buflen, &used, tmp);
	snprintf(tmp, sizeof(tmp), "%s/ssh/known_hosts", cfg->state_dir);
	t->known_hosts = put(buf, buflen, &used, tmp);
	if (!t->host || (cfg->deploy.ssh_user && cfg->deploy.ssh_user[0] && !t->user) ||
	    !t->key || !t->known_hosts)
		return AB_ETOOBIG;
	if (t->user && t->user[0] == '-')
		return AB_EINVAL;
	return 0;
}

/* ---- quoting -------------------------------------------------------------- */

void ab_ssh_quote(struct ab_buf *b, const char *s)
{
	ab_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			ab_buf_puts(b, "'\\''");
		else
			ab_buf_putc(b, *s);
	}
	ab_buf_putc(b, '\'');
}

/* ---- running ssh ---------------------------------------------------------- */

struct argv_b {
	const char *v[MAX_ARGS + 1];
	size_t n;
	bool overflow;
};

static void arg(struct argv_b *a, const char *s)
{
	if (a->n >= MAX_ARGS) {
		a->overflow = true;
		return;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Reads what fd has into b (capped); returns false at EOF or error. */
static bool drain(int fd, struct ab_buf *b)
{
	char tmp[16384];
	for (;;) {
		ssize_t n = read(fd, tmp, sizeof(tmp));
		if (n > 0) {
			if (b && b->len < OUT_CAP) {
				size_t room = OUT_CAP - b->len;
				ab_buf_append(b, tmp, (size_t)n < room ? (size_t)n : room);
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		return false;
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * Starts argv (argv[0] looked up in PATH) with stdin from in_fd (or a pipe
 * fed with in/in_len when in_fd < 0 and in != NULL, else /dev/null), and
 * waits for it with a deadline. stdout goes to out_fd when >= 0, else into
 * out. Returns the exit status, AB_ETIMEOUT, or -errno.
 */
static int spawn_wait(const char *const *argv, int in_fd, const void *in, size_t in_len,
		      int out_fd, struct ab_buf *out, struct ab_buf *err, int timeout_ms)
{
	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	int rc = 0;
	pid_t pid = -1;
	sigset_t pipe_set, old_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

	if ((in_fd < 0 && in && pipe2(pin, O_CLOEXEC) < 0) ||
	    (out_fd < 0 && pipe2(pout, O_CLOEXEC) < 0) || pipe2(perr, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		int ifd = in_fd >= 0 ? in_fd : in ? pin[0] : open("/dev/null", O_RDONLY);
		int ofd = out_fd >= 0 ? out_fd : pout[1];
		if (ifd < 0 || dup2(ifd, 0) < 0 || dup2(ofd, 1) < 0 || dup2(perr[1], 2) < 0)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close_fd(&pin[0]);
	close_fd(&pout[1]);
	close_fd(&perr[1]);
	if (pin[1] >= 0)
		set_nonblock(pin[1]);
	if (pout[0] >= 0)
		set_nonblock(pout[0]);
	set_nonblock(perr[0]);

	int64_t deadline = ab_now_ms() + (timeout_ms > 0 ? timeout_ms : AB_SSH_TIMEOUT_MS);
	size_t in_off = 0;
	if (pin[1] >= 0 && in_len == 0)
		close_fd(&pin[1]);
	while (pin[1] >= 0 || pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd pf[3];
		nfds_t n = 0;
		int ix_in = -1, ix_out = -1, ix_err = -1;
		if (pin[1] >= 0) {
			ix_in = (int)n;
			pf[n++] = (struct pollfd){.fd = pin[1], .events = POLLOUT};
		}
		if (pout[0] >= 0) {
			ix_out = (int)n;
			pf[n++] = (struct pollfd){.fd = pout[0], .events = POLLIN};
		}
		if (perr[0] >= 0) {
			ix_err = (int)n;
			pf[n++] = (struct pollfd){.fd = perr[0], .events = POLLIN};
		}
		int64_t left = deadline - ab_now_ms();
		if (left <= 0) {
			rc = AB_ETIMEOUT;
			break;
		}
		int pr = poll(pf, n, left > 1000 ? 1000 : (int)left);
		if (pr < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (pr <= 0)
			continue;
		if (ix_in >= 0 && pf[ix_in].revents) {
			if (pf[ix_in].revents & (POLLERR | POLLHUP)) {
				close_fd(&pin[1]);
			} else {
				ssize_t w = write(pin[1], (const char *)in + in_off, in_len - in_off);
				if (w > 0)
					in_off += (size_t)w;
				else if (w < 0 && errno != EAGAIN && errno != EINTR)
					close_fd(&pin[1]); /* EPIPE: the remote stopped reading */
				if (in_off >= in_len)
					close_fd(&pin[1]);
			}
		}
		if (ix_out >= 0 && pf[ix_out].revents && !drain(pout[0], out))
			close_fd(&pout[0]);
		if (ix_err >= 0 && pf[ix_err].revents && !drain(perr[0], err))
			close_fd(&perr[0]);
	}
	if (rc == AB_ETIMEOUT || rc < 0)
		kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (rc == 0) {
		if (WIFEXITED(st))
			rc = WEXITSTATUS(st);
		else
			rc = 255; /* killed by a signal: count it as ssh's own failure */
	}
out:
	close_fd(&pin[0]);
	close_fd(&pin[1]);
	close_fd(&pout[0]);
	close_fd(&pout[1]);
	close_fd(&perr[0]);
	close_fd(&perr[1]);
	/* swallow a SIGPIPE raised while writing, then restore the mask */
	struct timespec zero = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		;
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	return rc;
}

/* The ssh argv up to and including the host; store (4 slots) keeps the
 * formatted option strings alive (caller frees them). */
static int ssh_argv(const struct ab_ssh_target *t, const char *const *opts, int timeout_ms,
		    struct argv_b *a, char **store)
{
	size_t si = 0;
	if (!t || !t->host || !t->host[0] || t->host[0] == '-' || (t->user && t->user[0] == '-'))
		return AB_EINVAL;
	if (t->known_hosts && t->known_hosts[0]) {
		char dir[PATH_MAX];
		ab_strlcpy(dir, t->known_hosts, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			int e = ab_mkdir_p(dir, 0700);
			if (e < 0)
				return e;
		}
	}
	int ct = timeout_ms > 0 ? timeout_ms / 1000 : 10;
	if (ct > 10)
		ct = 10;
	if (ct < 1)
		ct = 1;
	arg(a, "ssh");
	for (size_t i = 0; opts && opts[i]; i++) {
		arg(a, "-o");
		arg(a, opts[i]);
	}
	/* ssh keeps the first value of an option: the caller's opts win */
	arg(a, "-o");
	arg(a, "BatchMode=yes");
	store[si++] = ab_xasprintf("ConnectTimeout=%d", ct);
	arg(a, "-o");
	arg(a, store[si - 1]);
	arg(a, "-o");
	arg(a, "StrictHostKeyChecking=accept-new");
	arg(a, "-o");
	arg(a, "LogLevel=ERROR");
	arg(a, "-o");
	arg(a, "ServerAliveInterval=15");
	if (t->known_hosts && t->known_hosts[0]) {
		store[si++] = ab_xasprintf("UserKnownHostsFile=%s", t->known_hosts);
		arg(a, "-o");
		arg(a, store[si - 1]);
	}
	if (t->key && t->key[0]) {
		arg(a, "-o");
		arg(a, "IdentitiesOnly=yes");
		arg(a, "-i");
		arg(a, t->key);
	}
	if (t->control_path && t->control_path[0]) {
		arg(a, "-o");
		arg(a, "ControlMaster=no");
		store[si++] = ab_xasprintf("ControlPath=%s", t->control_path);
		arg(a, "-o");
		arg(a, store[si - 1]);
	}
	store[si++] = ab_xasprintf("%d", t->port > 0 ? t->port : 22);
	arg(a, "-p");
	arg(a, store[si - 1]);
	if (t->user && t->user[0]) {
		arg(a, "-l");
		arg(a, t->user);
	}
	arg(a, "--");
	arg(a, t->host);
	return a->overflow ? AB_ETOOBIG : 0;
}

static int run_ssh(const struct ab_ssh_target *t, const char *const *opts,
		   const char *const *remote_argv, int in_fd, const void *in, size_t in_len,
		   int out_fd, struct ab_buf *out, struct ab_buf *err, int timeout_ms)
{
	if (!remote_argv || !remote_argv[0])
		return AB_EINVAL;
	struct argv_b a = {0};
	char *store[4] = {0};
	struct ab_buf cmd = {0};
	int rc = ssh_argv(t, opts, timeout_ms, &a, store);
	if (rc < 0)
		goto out;
	for (size_t i = 0; remote_argv[i]; i++) {
		if (i)
			ab_buf_putc(&cmd, ' ');
		ab_ssh_quote(&cmd, remote_argv[i]);
	}
	arg(&a, cmd.data);
	if (a.overflow) {
		rc = AB_ETOOBIG;
		goto out;
	}
	rc = spawn_wait(a.v, in_fd, in, in_len, out_fd, out, err, timeout_ms);
out:
	for (size_t i = 0; i < AB_ARRAY_LEN(store); i++)
		free(store[i]);
	ab_buf_free(&cmd);
	return rc;
}

/* Runs remote_argv on t with extra -o options first (see ssh.h). */
int ab_ssh_run_opts(const struct ab_ssh_target *t, const char *const *opts,
		    const char *const *remote_argv, const void *in, size_t in_len,
		    struct ab_buf *out, struct ab_buf *err, int timeout_ms)
{
	return run_ssh(t, opts, remote_argv, -1, in, in_len, -1, out, err, timeout_ms);
}

/* Runs remote_argv on t (see ssh.h); out/err are the caller's. */
int ab_ssh_run(const struct ab_ssh_target *t, const char *const *remote_argv,
	       const void *in, size_t in_len, struct ab_buf *out, struct ab_buf *err,
	       int timeout_ms)
{
	return run_ssh(t, NULL, remote_argv, -1, in, in_len, -1, out, err, timeout_ms);
}

/* ---- connection sharing ------------------------------------------------------ */

/* Opens a ControlMaster connection for t (see ssh.h). */
int ab_ssh_share_open(struct ab_ssh_target *t, const char *const *opts, char *path,
		      size_t len, int timeout_ms)
{
	const char *tmp = getenv("TMPDIR");
	char dir[96];
	/* a unix socket path has ~108 bytes: keep the folder short */
	if (!tmp || tmp[0] != '/' || strlen(tmp) > 40)
		tmp = "/tmp";
	if (snprintf(dir, sizeof(dir), "%s/ab-ssh.XXXXXX", tmp) >= (int)sizeof(dir) || !mkdtemp(dir))
		return -errno;
	if (snprintf(path, len, "%s/c", dir) >= (int)len) {
		rmdir(dir);
		return AB_ETOOBIG;
	}
	const char *o[24];
	size_t n = 0;
	for (size_t i = 0; opts && opts[i] && n < AB_ARRAY_LEN(o) - 4; i++)
		o[n++] = opts[i];
	char *cp = ab_xasprintf("ControlPath=%s", path);
	o[n++] = "ControlMaster=yes";
	o[n++] = "ControlPersist=120";
	o[n++] = cp;
	o[n] = NULL;
	static const char *const argv[] = {"true", NULL};
	struct ab_ssh_target mt = *t;
	mt.control_path = NULL;
	/* the master daemonizes after `true` with its stdio on /dev/null, so
	 * the pipes reach EOF and this returns */
	int rc = run_ssh(&mt, o, argv, -1, NULL, 0, -1, NULL, NULL, timeout_ms);
	free(cp);
	struct stat st;
	if (rc == 0 && stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		t->control_path = path;
		return 0;
	}
	unlink(path);
	rmdir(dir);
	path[0] = '\0';
	return rc ? rc : AB_EPROTO;
}

/* Ends the shared connection of t (see ssh.h). */
void ab_ssh_share_close(struct ab_ssh_target *t)
{
	if (!t || !t->control_path || !t->control_path[0])
		return;
	struct argv_b a = {0};
	char *cp = ab_xasprintf("ControlPath=%s", t->control_path);
	arg(&a, "ssh");
	arg(&a, "-o");
	arg(&a, cp);
	arg(&a, "-O");
	arg(&a, "exit");
	arg(&a, "--");
	arg(&a, t->host);
	spawn_wait(a.v, -1, NULL, 0, -1, NULL, NULL, 10000);
	free(cp);
	char dir[PATH_MAX];
	ab_strlcpy(dir, t->control_path, sizeof(dir));
	unlink(dir);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		rmdir(dir);
	}
	t->control_path = NULL;
}

/* Runs a local program (see ssh.h). */
int ab_ssh_spawn(const char *const *argv, const void *in, size_t in_len, struct ab_buf *out,
		 struct ab_buf *err, int timeout_ms)
{
	if (!argv || !argv[0])
		return AB_EINVAL;
	return spawn_wait(argv, -1, in, in_len, -1, out, err, timeout_ms);
}

/* ---- copies ----------------------------------------------------------------- */

/*
 * The remote half of a copy: $1 target, $2 octal mode, $3 expected size.
 * The temporary name is removed on every failure path by the trap.
 */
static const char put_script[] =
	"set -e\n"
	"t=\"$1.ab-tmp.$$\"\n"
	"trap 'rm -f \"$t\"' EXIT\n"
	"cat > \"$t\"\n"
	"n=$(wc -c < \"$t\" | tr -d ' ')\n"
	"if [ \"$n\" != \"$3\" ]; then echo \"short copy: $n of $3 bytes\" >&2; exit 3; fi\n"
	"chmod \"$2\" \"$t\"\n"
	"mv -f \"$t\" \"$1\"\n";

static int put_remote(const struct ab_ssh_target *t, int in_fd, const void *data, size_t len,
		      const char *remote_path, int mode, struct ab_buf *err)
{
	if (!remote_path || !remote_path[0])
		return AB_EINVAL;
	char mode_s[16], size_s[32];
	snprintf(mode_s, sizeof(mode_s), "%o", (unsigned)mode & 07777u);
	snprintf(size_s, sizeof(size_s), "%zu", len);
	const char *argv[] = {"sh", "-c", put_script, "sh", remote_path, mode_s, size_s, NULL};
	int rc = run_ssh(t, NULL, argv, in_fd, data, len, -1, NULL, err, COPY_TIMEOUT_MS);
	return rc;
}

/* Copies a local file to the target atomically (see ssh.h). */
int ab_ssh_copy(const struct ab_ssh_target *t, const char *local_path,
		const char *remote_path, int mode)
{
	int fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno ? -errno : AB_EINVAL;
		close(fd);
		return e;
	}
	struct ab_buf err = {0};
	int rc = put_remote(t, fd, NULL, (size_t)st.st_size, remote_path, mode, &err);
	close(fd);
	if (rc > 0 && err.len)
		ab_log(AB_LOG_DEBUG, "ssh copy to %s: %.*s", t->host, (int)strcspn(err.data, "\n"),
		       err.data);
	ab_buf_free(&err);
	return rc;
}

/* Writes data to remote_path on the target atomically (see ssh.h). */
int ab_ssh_write(const struct ab_ssh_target *t, const void *data, size_t len,
		 const char *remote_path, int mode)
{
	struct ab_buf err = {0};
	int rc = put_remote(t, -1, data ? data : "", len, remote_path, mode, &err);
	ab_buf_free(&err);
	return rc;
}

/* Fetches remote_path into local_path (see ssh.h). */
int ab_ssh_fetch(const struct ab_ssh_target *t, const char *remote_path,
		 const char *local_path, int timeout_ms)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.ab-tmp.%ld", local_path, (long)getpid()) >=
	    (int)sizeof(tmp))
		return AB_ETOOBIG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const char *argv[] = {"cat", "--", remote_path, NULL};
	int rc = run_ssh(t, NULL, argv, -1, NULL, 0, fd, NULL, NULL,
			 timeout_ms > 0 ? timeout_ms : COPY_TIMEOUT_MS);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, local_path) < 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}
