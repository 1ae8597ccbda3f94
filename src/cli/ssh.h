/*
 * ssh.h - running commands on, and copying files to, the cluster's hosts
 * through the system OpenSSH client (`ssh`, `scp`).
 *
 * The client is started with fork/exec and an argv array; no local shell
 * ever sees a command line. The remote side always runs a shell (that is
 * how sshd executes a command), so every remote argument is quoted for a
 * POSIX shell here before it is sent. Every connection uses BatchMode (no
 * password or passphrase prompt can hang a run), a ConnectTimeout, the
 * cluster's own known_hosts file (StrictHostKeyChecking=accept-new: a host
 * is learned on first contact, a changed key is refused), and, when one is
 * given, only the named identity file (IdentitiesOnly).
 */
#ifndef AB_SSH_H
#define AB_SSH_H

#include "config.h"

#include <stddef.h>

/* Where and how to reach one host. Strings are borrowed. user, key and
 * known_hosts may be NULL: the ssh defaults (current user, the agent and
 * default keys, ~/.ssh/known_hosts) apply then. port 0 = 22. */
struct ab_ssh_target {
	const char *host;
	int port;
	const char *user;
	const char *key;
	const char *known_hosts;
	const char *control_path; /* set by ab_ssh_share_open; NULL = one connection per call */
};

/*
 * Connection sharing: opens one authenticated connection to t (OpenSSH's
 * ControlMaster, with opts as for ab_ssh_run_opts) that later calls on t
 * reuse instead of a new handshake each. The control socket is in a new
 * 0700 folder under $TMPDIR or /tmp; its path is written into path (len
 * bytes, 108 is enough) and t->control_path points at it. The master ends
 * at ab_ssh_share_close, or by itself after 2 idle minutes if this
 * process dies first. Returns 0, or the ssh status / negative code of the
 * failed login (t is then unchanged and calls connect one by one).
 */
int ab_ssh_share_open(struct ab_ssh_target *t, const char *const *opts, char *path,
		      size_t len, int timeout_ms);
/* Ends the shared connection of t, if any, and clears t->control_path. */
void ab_ssh_share_close(struct ab_ssh_target *t);

/* Default for timeout_ms arguments of 0 or less. */
#define AB_SSH_TIMEOUT_MS 60000

/*
 * Fills *t for host_name, a name from the config's hosts: (or, if no host
 * has that name, an address used as it is) with deploy.ssh_user,
 * deploy.ssh_port, deploy.ssh_key (default ~/.ssh/autobot_distributed) and
 * the cluster known_hosts file <state_dir>/ssh/known_hosts. The strings of
 * *t point into buf (buflen bytes; 4096 is plenty). Returns 0, AB_EINVAL
 * for an empty name, or AB_ETOOBIG when buf is too small.
 */
int ab_ssh_target_for(const struct ab_config *cfg, const char *host_name,
		      struct ab_ssh_target *t, char *buf, size_t buflen);

/*
 * Runs remote_argv (NULL-terminated, at least one word) on the target,
 * each word quoted for the remote shell. in/in_len, if in is not NULL, is
 * written to the command's stdin (else stdin is /dev/null). out and err,
 * each may be NULL (discarded), collect stdout and stderr, each capped at
 * 16 MiB (more is dropped). The whole run is killed after timeout_ms.
 * Returns the remote exit status (0..255; ssh itself reports its own
 * failures, such as an unreachable host or a refused key, as 255), or
 * AB_ETIMEOUT, or -errno when ssh could not be started.
 */
int ab_ssh_run(const struct ab_ssh_target *t, const char *const *remote_argv,
	       const void *in, size_t in_len, struct ab_buf *out, struct ab_buf *err,
	       int timeout_ms);

/*
 * Like ab_ssh_run but with extra ssh options (-o words, e.g.
 * "PasswordAuthentication=no"), each passed as "-o" "opt" before the
 * defaults so that they win (ssh keeps the first value it is given).
 * opts may be NULL.
 */
int ab_ssh_run_opts(const struct ab_ssh_target *t, const char *const *opts,
		    const char *const *remote_argv, const void *in, size_t in_len,
		    struct ab_buf *out, struct ab_buf *err, int timeout_ms);

/*
 * Copies local_path to remote_path on the target and sets its mode (e.g.
 * 0755) atomically: the bytes go to "<remote_path>.ab-tmp.<random>" in the
 * same folder, are chmod'ed, then renamed over remote_path, so a reader
 * sees the old file or the whole new one. The remote folder must exist.
 * Returns 0, the remote exit status as a positive number when the remote
 * side failed (255: ssh failed), or a negative code.
 */
int ab_ssh_copy(const struct ab_ssh_target *t, const char *local_path,
		const char *remote_path, int mode);

/* Like ab_ssh_copy, from memory: len bytes of data to remote_path. */
int ab_ssh_write(const struct ab_ssh_target *t, const void *data, size_t len,
		 const char *remote_path, int mode);

/*
 * Copies remote_path from the target into local_path (replaced only when
 * the whole file arrived; made with mode 0600): `cat` on the remote side,
 * stdout into a temporary file next to local_path, then a rename.
 * Returns 0, a positive exit status (1: the remote file is not readable;
 * 255: ssh failed), or a negative code. timeout_ms <= 0: 10 minutes.
 */
int ab_ssh_fetch(const struct ab_ssh_target *t, const char *remote_path,
		 const char *local_path, int timeout_ms);

/*
 * Runs a local program (argv[0] looked up in PATH; no shell) the way
 * ab_ssh_run runs ssh: stdin from in/in_len or /dev/null, stdout and
 * stderr into out and err (NULL: discarded), killed after timeout_ms.
 * Returns its exit status, AB_ETIMEOUT, or -errno. For ssh-keygen.
 */
int ab_ssh_spawn(const char *const *argv, const void *in, size_t in_len, struct ab_buf *out,
		 struct ab_buf *err, int timeout_ms);

/* Appends s to b quoted for a POSIX shell ('...' with ' as '\''). */
void ab_ssh_quote(struct ab_buf *b, const char *s);

#endif
