/*
 * deploy.c - `autobot ssh-setup` and `autobot deploy`: putting AutoBot on
 * the hosts of a cluster over SSH (DESIGN section 9).
 *
 * ssh-setup makes the cluster key ~/.ssh/autobot_distributed (ed25519,
 * deploy.ssh_key) if there is none, and for every host of hosts: first
 * tries a key-only login; only when that fails does it log in once with
 * the operator's existing access (their agent, default keys or password
 * prompt, or --login-key FILE) and append the public key to the host's
 * authorized_keys (deploy.authorized_keys), unless it is already there;
 * then it checks the key-only login again. Run twice, it changes nothing.
 *
 * deploy goes through the selected hosts one at a time, a rolling update:
 *
 *   connect     key-only login; with deploy.mode auto the host says
 *               whether systemd runs there (/run/systemd/system)
 *   prepare     folders under deploy.prefix, the config folder and the
 *               state dir (0700); the installed binary, module and config
 *               are copied to NAME.prev
 *   copy        binary, autobot.so and the config, each to a temporary
 *               name, then renamed (ssh.c): a reader never sees half a file
 *   check       the new binary must run `autobot version` on the host
 *   secrets     admin.token, cluster.token and redis.password of the local
 *               state dir, when present, so that one token works everywhere
 *   start       systemd: the unit autobot@.service rendered for these
 *               paths, daemon-reload, enable, restart autobot@ROLE;
 *               detached: stop the process of <state>/run/ROLE.pid, start
 *               `autobot serve ROLE` with setsid, write its pid file
 *   health      GET /health of each role, from here, until 200 or
 *               deploy.health_timeout_ms
 *
 * When a role does not become healthy (or the new binary does not run),
 * the .prev files are put back and the roles restarted, and deploy stops
 * there: the hosts after it keep the old version, so a bad build reaches
 * one host at most. Exit 0 when every host is deployed and healthy, else 1.
 *
 * Which roles run on a host: every enabled role whose services.ROLE.host
 * names the host or resolves to its address. Roles this binary does not
 * implement are skipped with a note; the redis role is a redis-server,
 * which deploy does not manage (it installs autobot.so for it).
 *
 * Every remote command is one of the fixed scripts below, run as
 * `sh -c SCRIPT sh ARG...`: values from the config travel only as
 * quoted positional arguments, never as script text.
 */
#include "cli.h"

#include "httpc.h"
#include "log.h"
#include "service.h"
#include "ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TBUF 4096
#define RUN_MS 60000
#define START_MS 150000 /* systemctl restart waits for READY=1 (TimeoutStartSec=90) */
#define INSTALL_MS 180000 /* may wait for a password typed by the operator */

static const char *const key_only_opts[] = {
	"PasswordAuthentication=no",
	"KbdInteractiveAuthentication=no",
	NULL,
};

/* ---- small helpers ------------------------------------------------------- */

/* The first line of b (or "no output"), control characters dropped. */
static const char *first_line(const struct ab_buf *b, char *out, size_t n)
{
	size_t j = 0;
	const char *s = b && b->data ? b->data : "";
	while (*s == '\n' || *s == '\r')
		s++;
	for (; *s && *s != '\n' && j + 1 < n; s++)
		if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			out[j++] = *s;
	out[j] = '\0';
	if (!j)
		ab_strlcpy(out, "no output", n);
	return out;
}

/* Why a remote run failed, for a message. */
static const char *why(int rc, const struct ab_buf *err, char *out, size_t n)
{
	if (rc < 0)
		return ab_strerror(rc);
	char line[200];
	first_line(err, line, sizeof(line));
	if (rc == 255)
		snprintf(out, n, "ssh failed: %s", line);
	else
		snprintf(out, n, "exit %d: %s", rc, line);
	return out;
}

static bool file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Selected hosts: all, or the one --host names. Returns the count or -1. */
static int select_hosts(const struct ab_config *cfg, const char *cmd, const char *only,
			size_t *idx)
{
	if (cfg->n_hosts == 0) {
		fprintf(stderr, "autobot %s: the config has no hosts: (name: address) to work on\n",
			cmd);
		return -1;
	}
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_hosts; i++)
		if (!only || strcmp(cfg->hosts[i].name, only) == 0)
			idx[n++] = i;
	if (n == 0) {
		fprintf(stderr, "autobot %s: no host named \"%s\" in hosts:\n", cmd, only);
		return -1;
	}
	return (int)n;
}

/* ---- ssh-setup ------------------------------------------------------------ */

/*
 * The remote half of ssh-setup: $1 authorized_keys (relative = to $HOME),
 * $2 the key's base64 blob; the whole public key line comes on stdin.
 */
static const char install_key_script[] =
	"set -e\n"
	"f=$1\n"
	"case \"$f\" in /*) ;; *) f=\"$HOME/$f\" ;; esac\n"
	"umask 077\n"
	"mkdir -p \"$(dirname \"$f\")\"\n"
	"if [ -f \"$f\" ] && grep -qF -- \"$2\" \"$f\"; then echo present; exit 0; fi\n"
	"if [ -s \"$f\" ] && [ -n \"$(tail -c 1 \"$f\")\" ]; then echo >> \"$f\"; fi\n"
	"cat >> \"$f\"\n"
	"chmod 600 \"$f\"\n"
	"echo added\n";

static void setup_usage(FILE *f)
{
	fprintf(f,
		"usage: autobot ssh-setup [--config FILE] [--host NAME] [--login-key FILE]\n"
		"\n"
		"Makes the cluster key deploy.ssh_key (default ~/.ssh/autobot_distributed, ed25519)\n"
		"if it is missing, adds its public key to deploy.authorized_keys on every host of\n"
		"hosts: (logging in once with your existing access: ssh agent, default keys or a\n"
		"password prompt, or --login-key FILE), then checks that the key alone logs in.\n"
		"Hosts where it already does are left alone. Prints a table; exit 0 when every\n"
		"host accepts the key, 1 otherwise.\n"
		"\n"
		"options:\n%s"
		"  --host NAME        only this host of hosts:\n"
		"  --login-key FILE   private key of your existing access (default: ssh's own)\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

/* Makes the key pair at key (and key.pub) when missing. */
static int ensure_key(const char *key, bool *created)
{
	char pub[PATH_MAX + 8];
	struct ab_buf out = {0}, err = {0};
	int rc = 0;
	*created = false;
	snprintf(pub, sizeof(pub), "%s.pub", key);
	if (!file_exists(key)) {
		char dir[PATH_MAX];
		ab_strlcpy(dir, key, sizeof(dir));
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			rc = ab_mkdir_p(dir, 0700);
			if (rc < 0)
				goto out;
		}
		char host[256] = "localhost", comment[320];
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(comment, sizeof(comment), "autobot-distributed@%s", host);
		const char *argv[] = {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
				      comment, "-f", key, NULL};
		rc = ab_ssh_spawn(argv, NULL, 0, &out, &err, RUN_MS);
		if (rc != 0) {
			char line[200];
			fprintf(stderr, "autobot ssh-setup: ssh-keygen failed (%s): %s\n",
				rc < 0 ? ab_strerror(rc) : "exit status", first_line(&err, line, sizeof(line)));
			rc = rc < 0 ? rc : AB_EINVAL;
			goto out;
		}
		*created = true;
	}
	if (!file_exists(pub)) {
		const char *argv[] = {"ssh-keygen", "-y", "-f", key, NULL};
		rc = ab_ssh_spawn(argv, NULL, 0, &out, &err, RUN_MS);
		if (rc != 0 || out.len == 0) {
			fprintf(stderr, "autobot ssh-setup: cannot derive %s from %s\n", pub, key);
			rc = AB_EINVAL;
			goto out;
		}
		int fd = open(pub, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, out.data, out.len) != (ssize_t)out.len) {
			rc = -errno;
			if (fd >= 0)
				close(fd);
			goto out;
		}
		close(fd);
		rc = 0;
	}
out:
	ab_buf_free(&out);
	ab_buf_free(&err);
	return rc;
}

/* Reads the public key line of key.pub into line; its blob into blob. */
static int read_pub(const char *key, char *line, size_t n, char *blob, size_t bn)
{
	char pub[PATH_MAX + 8];
	snprintf(pub, sizeof(pub), "%s.pub", key);
	FILE *f = fopen(pub, "re");
	if (!f)
		return -errno;
	bool ok = fgets(line, (int)n, f) != NULL;
	fclose(f);
	if (!ok)
		return AB_EINVAL;
	line[strcspn(line, "\r\n")] = '\0';
	/* "<type> <base64> [comment]" */
	const char *sp = strchr(line, ' ');
	if (strncmp(line, "ssh-", 4) && strncmp(line, "ecdsa-", 6) && strncmp(line, "sk-", 3))
		return AB_EINVAL;
	if (!sp || sp[1] == '\0')
		return AB_EINVAL;
	size_t bl = strcspn(sp + 1, " ");
	if (bl < 16 || bl >= bn)
		return AB_EINVAL;
	memcpy(blob, sp + 1, bl);
	blob[bl] = '\0';
	for (size_t i = 0; i < bl; i++) {
		char c = blob[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '='))
			return AB_EINVAL;
	}
	return 0;
}

static int key_login(const struct ab_ssh_target *t, struct ab_buf *err)
{
	static const char *const argv[] = {"true", NULL};
	ab_buf_reset(err);
	return ab_ssh_run_opts(t, key_only_opts, argv, NULL, 0, NULL, err, RUN_MS);
}

int ab_cmd_ssh_setup(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *only = NULL, *login_key = NULL;
	const struct ab_cli_opt opts[] = {
		{"--host", NULL, &only},
		{"--login-key", NULL, &login_key},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "ssh-setup", &co, opts, NULL, 0, NULL, setup_usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	int ret = 1;
	size_t *idx = ab_xcalloc(cfg->n_hosts + 1, sizeof(*idx));
	char (*res_key)[24] = NULL, (*res_login)[240] = NULL;
	int n = select_hosts(cfg, "ssh-setup", only, idx);
	if (n < 0)
		goto out;
	if (login_key && !file_exists(login_key)) {
		fprintf(stderr, "autobot ssh-setup: --login-key %s: no such file\n", login_key);
		goto out;
	}
	char tb[TBUF];
	struct ab_ssh_target t;
	if (ab_ssh_target_for(cfg, cfg->hosts[idx[0]].name, &t, tb, sizeof(tb)) < 0) {
		fprintf(stderr, "autobot ssh-setup: bad host \"%s\"\n", cfg->hosts[idx[0]].name);
		goto out;
	}
	char key[PATH_MAX];
	ab_strlcpy(key, t.key, sizeof(key));
	bool created;
	if (ensure_key(key, &created) < 0)
		goto out;
	printf("key: %s (%s)\n", key, created ? "created" : "exists");
	char publine[16384], blob[8192];
	if (read_pub(key, publine, sizeof(publine), blob, sizeof(blob)) < 0) {
		fprintf(stderr, "autobot ssh-setup: %s.pub is not an OpenSSH public key\n", key);
		goto out;
	}
	size_t publen = strlen(publine);
	publine[publen++] = '\n';
	publine[publen] = '\0';

	res_key = ab_xcalloc((size_t)n, sizeof(*res_key));
	res_login = ab_xcalloc((size_t)n, sizeof(*res_login));
	int n_ok = 0;
	struct ab_buf out = {0}, err = {0};
	for (int i = 0; i < n; i++) {
		const struct ab_host_cfg *h = &cfg->hosts[idx[i]];
		char msg[200];
		if (ab_ssh_target_for(cfg, h->name, &t, tb, sizeof(tb)) < 0) {
			ab_strlcpy(res_key[i], "-", sizeof(res_key[i]));
			ab_strlcpy(res_login[i], "failed: bad host address", sizeof(res_login[i]));
			continue;
		}
		printf("[%s] key-only login as %s@%s port %d ... ", h->name,
		       t.user ? t.user : "(local user)", t.host, t.port);
		fflush(stdout);
		int rc = key_login(&t, &err);
		if (rc == 0) {
			printf("ok\n");
			ab_strlcpy(res_key[i], "present", sizeof(res_key[i]));
			ab_strlcpy(res_login[i], "ok", sizeof(res_login[i]));
			n_ok++;
			continue;
		}
		printf("no (%s)\n", why(rc, &err, msg, sizeof(msg)));
		/* once, with the operator's existing access */
		struct ab_ssh_target lt = t;
		lt.key = login_key; /* NULL: ssh's defaults, agent, password prompt */
		static const char *const existing_opts[] = {"BatchMode=no", NULL};
		const char *rargv[] = {"sh", "-c", install_key_script, "sh",
				       cfg->deploy.authorized_keys, blob, NULL};
		printf("[%s] install the public key in %s with your existing access ... ",
		       h->name, cfg->deploy.authorized_keys);
		fflush(stdout);
		ab_buf_reset(&out);
		ab_buf_reset(&err);
		rc = ab_ssh_run_opts(&lt, existing_opts, rargv, publine, publen, &out, &err,
				     INSTALL_MS);
		if (rc != 0) {
			printf("FAILED: %s\n", why(rc, &err, msg, sizeof(msg)));
			ab_strlcpy(res_key[i], "failed", sizeof(res_key[i]));
			snprintf(res_login[i], sizeof(res_login[i]), "not checked");
			continue;
		}
		char line[64];
		first_line(&out, line, sizeof(line));
		bool added = strcmp(line, "added") == 0;
		printf("%s\n", added ? "added" : "already there");
		ab_strlcpy(res_key[i], added ? "installed" : "present", sizeof(res_key[i]));
		printf("[%s] key-only login ... ", h->name);
		fflush(stdout);
		rc = key_login(&t, &err);
		if (rc == 0) {
			printf("ok\n");
			ab_strlcpy(res_login[i], "ok", sizeof(res_login[i]));
			n_ok++;
		} else {
			printf("FAILED: %s\n", why(rc, &err, msg, sizeof(msg)));
			snprintf(res_login[i], sizeof(res_login[i]), "failed: %s", msg);
		}
	}
	ab_buf_free(&out);
	ab_buf_free(&err);

	printf("\n%-16s %-28s %-10s %s\n", "HOST", "ADDRESS", "KEY", "KEY-ONLY LOGIN");
	for (int i = 0; i < n; i++) {
		const struct ab_host_cfg *h = &cfg->hosts[idx[i]];
		char addr[300];
		snprintf(addr, sizeof(addr), "%s:%d", h->addr, cfg->deploy.ssh_port);
		printf("%-16s %-28s %-10s %s\n", h->name, addr, res_key[i], res_login[i]);
	}
	ret = n_ok == n ? 0 : 1;
out:
	free(res_key);
	free(res_login);
	free(idx);
	ab_config_free(cfg);
	return ret;
}

/* ---- the systemd unit ----------------------------------------------------- */

/* Characters a path may have to be written into a unit file unquoted. */
static bool unit_safe(const char *p)
{
	if (!p || p[0] != '/')
		return false;
	for (; *p; p++) {
		char c = *p;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '/' || c == '.' || c == '_' || c == '-' || c == '+'))
			return false;
	}
	return true;
}

/*
 * The unit for the paths of cfg. With the defaults it is byte for byte
 * deploy/systemd/autobot@.service (a test compares them).
 */
static int render_unit(const struct ab_config *cfg, struct ab_buf *b)
{
	const char *prefix = cfg->deploy.prefix, *sd = cfg->deploy.remote_state_dir;
	const char *conf = cfg->deploy.config_path;
	if (!unit_safe(prefix) || !unit_safe(sd) || !unit_safe(conf)) {
		fprintf(stderr, "autobot deploy: systemd mode needs absolute deploy.prefix, "
				"deploy.remote_state_dir and deploy.config_path of letters, digits "
				"and / . _ - +\n");
		return AB_EINVAL;
	}
	ab_buf_puts(b,
		    "# One AutoBot role per instance: systemctl enable --now autobot@coordinator\n"
		    "# Written by `autobot deploy` for its deploy.prefix, deploy.config_path and\n"
		    "# deploy.remote_state_dir. The role may write its state dir (and a private\n"
		    "# /tmp) and nothing else.\n"
		    "[Unit]\n"
		    "Description=AutoBot %i\n"
		    "After=network-online.target\n"
		    "Wants=network-online.target\n"
		    "\n"
		    "[Service]\n"
		    "Type=notify\n"
		    "NotifyAccess=main\n");
	ab_buf_printf(b, "ExecStart=%s/bin/autobot serve %%i --config %s --state-dir %s\n", prefix,
		      conf, sd);
	ab_buf_puts(b, "Restart=on-failure\n"
		       "RestartSec=1\n"
		       "TimeoutStartSec=90\n"
		       "UMask=0077\n"
		       "NoNewPrivileges=yes\n"
		       "ProtectSystem=strict\n"
		       "ProtectHome=read-only\n"
		       "PrivateTmp=yes\n"
		       "ProtectKernelTunables=yes\n"
		       "ProtectKernelModules=yes\n"
		       "ProtectControlGroups=yes\n"
		       "RestrictSUIDSGID=yes\n"
		       "LockPersonality=yes\n");
	if (strcmp(sd, "/var/lib/autobot") == 0)
		ab_buf_puts(b, "StateDirectory=autobot\n"
			       "StateDirectoryMode=0700\n");
	ab_buf_printf(b, "ReadWritePaths=%s\n", sd);
	ab_buf_puts(b, "\n"
		       "[Install]\n"
		       "WantedBy=multi-user.target\n");
	return 0;
}

/* ---- deploy: the remote scripts ------------------------------------------- */

static const char probe_script[] =
	"if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then\n"
	"  echo systemd\n"
	"else\n"
	"  echo detached\n"
	"fi\n";

/* $1 prefix, $2 state dir, $3 config folder, $4.. files to keep as .prev */
static const char prepare_script[] =
	"set -e\n"
	"umask 022\n"
	"mkdir -p \"$1/bin\" \"$1/lib/autobot\" \"$3\" \"$2\"\n"
	"chmod 700 \"$2\"\n"
	"shift 3\n"
	"for f; do\n"
	"  if [ -f \"$f\" ]; then\n"
	"    cp -p \"$f\" \"$f.prev.tmp\" && mv -f \"$f.prev.tmp\" \"$f.prev\"\n"
	"    echo \"kept $f.prev\"\n"
	"  else\n"
	"    rm -f \"$f.prev\"\n"
	"  fi\n"
	"done\n";

/* $1.. files: each NAME.prev that exists goes back to NAME; exit 3 when
 * the first one (the binary) has none. */
static const char rollback_script[] =
	"set -e\n"
	"if [ ! -f \"$1.prev\" ]; then echo \"no $1.prev: nothing to go back to\" >&2; exit 3; fi\n"
	"for f; do\n"
	"  if [ -f \"$f.prev\" ]; then\n"
	"    cp -p \"$f.prev\" \"$f.rb.tmp\" && mv -f \"$f.rb.tmp\" \"$f\"\n"
	"    echo \"restored $f\"\n"
	"  fi\n"
	"done\n";

/* $1 role */
static const char systemd_start_script[] =
	"set -e\n"
	"systemctl daemon-reload\n"
	"systemctl enable --quiet \"autobot@$1.service\"\n"
	"if ! systemctl restart \"autobot@$1.service\"; then\n"
	"  systemctl status --no-pager -n 5 \"autobot@$1.service\" >&2 || true\n"
	"  exit 3\n"
	"fi\n"
	"echo \"started autobot@$1\"\n";

/*
 * $1 binary, $2 config, $3 state dir, $4 role. A pid file is trusted only
 * when that process is alive (not a zombie) and its command line is
 * "... serve ROLE ...": a recycled pid is never signalled.
 */
static const char detached_start_script[] =
	"set -u\n"
	"bin=$1 cfg=$2 sd=$3 r=$4\n"
	"alive() {\n"
	"  s=$(sed -n 's/^State:[[:space:]]*\\([A-Z]\\).*/\\1/p' \"/proc/$1/status\" 2>/dev/null)\n"
	"  [ -n \"$s\" ] && [ \"$s\" != Z ] && [ \"$s\" != X ]\n"
	"}\n"
	"mkdir -p \"$sd/run\" \"$sd/logs\" || exit 4\n"
	"pf=\"$sd/run/$r.pid\"\n"
	"if [ -f \"$pf\" ]; then\n"
	"  old=$(head -c 32 \"$pf\")\n"
	"  case \"$old\" in ''|*[!0-9]*) old= ;; esac\n"
	"  if [ -n \"$old\" ] && alive \"$old\" &&\n"
	"     tr '\\000' ' ' < \"/proc/$old/cmdline\" | grep -q -- \" serve $r \"; then\n"
	"    kill -TERM \"$old\" 2>/dev/null || true\n"
	"    i=0\n"
	"    while alive \"$old\" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n"
	"    if alive \"$old\"; then kill -KILL \"$old\" 2>/dev/null || true; sleep 0.2;\n"
	"      echo \"killed old $r process $old\"\n"
	"    else echo \"stopped old $r process $old\"; fi\n"
	"  fi\n"
	"  rm -f \"$pf\"\n"
	"fi\n"
	"setsid \"$bin\" serve \"$r\" --config \"$cfg\" --state-dir \"$sd\" \\\n"
	"  </dev/null >>\"$sd/logs/$r.log\" 2>&1 &\n"
	"pid=$!\n"
	"echo \"$pid\" > \"$pf.tmp\" && mv -f \"$pf.tmp\" \"$pf\"\n"
	"sleep 0.5\n"
	"if ! alive \"$pid\"; then\n"
	"  echo \"$r exited at once; the end of $sd/logs/$r.log:\" >&2\n"
	"  tail -n 5 \"$sd/logs/$r.log\" >&2\n"
	"  rm -f \"$pf\"\n"
	"  exit 3\n"
	"fi\n"
	"echo \"started $r pid $pid\"\n";

/* ---- deploy: one host ------------------------------------------------------ */

enum mode { MODE_AUTO, MODE_SYSTEMD, MODE_DETACHED };

struct deploy {
	const struct ab_config *cfg;
	bool dry;
	const char *binary;     /* local */
	char module[PATH_MAX];  /* local; "" = none */
	const char *config;     /* local */
	const char *secrets[3]; /* names present in the local state dir */
	size_t n_secrets;
	enum mode mode;
	/* remote paths */
	char r_bin[PATH_MAX], r_mod[PATH_MAX], r_conf[PATH_MAX], r_confdir[PATH_MAX];
};

struct host_run {
	const struct ab_host_cfg *h;
	struct ab_ssh_target t;
	char tb[TBUF];
	int roles[AB_ROLE__COUNT]; /* started with autobot serve */
	size_t n_roles;
	enum mode mode;            /* resolved */
	char ctl[128];             /* the shared connection's socket */
	struct ab_buf out, err;
};

/* Prints "[host] [would ]<what>"; returns true when the step is to run. */
static bool step(const struct deploy *d, const struct host_run *hr, const char *fmt, ...)
	AB_PRINTF(3, 4);
static bool step(const struct deploy *d, const struct host_run *hr, const char *fmt, ...)
{
	va_list ap;
	printf("[%s] %s", hr->h->name, d->dry ? "would " : "");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (d->dry) {
		putchar('\n');
		return false;
	}
	fputs(" ... ", stdout);
	fflush(stdout);
	return true;
}

static void note(const struct host_run *hr, const char *fmt, ...) AB_PRINTF(2, 3);
static void note(const struct host_run *hr, const char *fmt, ...)
{
	va_list ap;
	printf("[%s] ", hr->h->name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Prints the result of a step's remote run; returns rc == 0. */
static bool result(struct host_run *hr, int rc, const char *okmsg)
{
	if (rc == 0) {
		printf("ok%s%s\n", okmsg && *okmsg ? ": " : "", okmsg ? okmsg : "");
		return true;
	}
	char msg[300];
	printf("FAILED (%s)\n", why(rc, &hr->err, msg, sizeof(msg)));
	/* the rest of stderr: the log tail of a role that died, systemctl status */
	const char *nl = hr->err.data ? strchr(hr->err.data, '\n') : NULL;
	if (nl && nl[1]) {
		const char *p = nl + 1;
		for (int lines = 0; *p && lines < 12; lines++) {
			size_t l = strcspn(p, "\n");
			printf("    %.*s\n", (int)(l > 300 ? 300 : l), p);
			p += l;
			if (*p)
				p++;
		}
	}
	return false;
}

static int remote(struct host_run *hr, const char *const *argv, int timeout_ms)
{
	ab_buf_reset(&hr->out);
	ab_buf_reset(&hr->err);
	return ab_ssh_run(&hr->t, argv, NULL, 0, &hr->out, &hr->err, timeout_ms);
}

static const char *mode_name(enum mode m)
{
	return m == MODE_SYSTEMD ? "systemd" : m == MODE_DETACHED ? "detached" : "auto";
}

/* Starts (or restarts) one role; returns true on success. */
static bool start_role(struct deploy *d, struct host_run *hr, int r)
{
	const char *role = ab_role_name((enum ab_role)r);
	const char *sd = d->cfg->deploy.remote_state_dir;
	if (d->dry) {
		if (hr->mode != MODE_DETACHED)
			step(d, hr, "start %s (systemd): systemctl daemon-reload; systemctl enable "
				    "autobot@%s.service; systemctl restart autobot@%s.service",
			     role, role, role);
		if (hr->mode != MODE_SYSTEMD)
			step(d, hr,
			     "start %s (detached): stop the process of %s/run/%s.pid, then setsid %s "
			     "serve %s --config %s --state-dir %s >> %s/logs/%s.log, pid to %s/run/%s.pid",
			     role, sd, role, d->r_bin, role, d->r_conf, sd, sd, role, sd, role);
		return true;
	}
	step(d, hr, "start %s (%s)", role, mode_name(hr->mode));
	int rc;
	if (hr->mode == MODE_SYSTEMD) {
		const char *argv[] = {"sh", "-c", systemd_start_script, "sh", role, NULL};
		rc = remote(hr, argv, START_MS);
	} else {
		const char *argv[] = {"sh", "-c", detached_start_script, "sh", d->r_bin,
				      d->r_conf, sd, role, NULL};
		rc = remote(hr, argv, RUN_MS);
	}
	char line[200];
	return result(hr, rc, first_line(&hr->out, line, sizeof(line)));
}

/* Polls url/health until 200 or the deadline; returns true when healthy. */
static bool wait_health(struct deploy *d, struct host_run *hr, int r)
{
	char *base = ab_config_service_url(d->cfg, (enum ab_role)r);
	char *url = ab_xasprintf("%s/health", base);
	int tmo = d->cfg->deploy.health_timeout_ms;
	bool ok = false;
	if (!step(d, hr, "wait up to %d ms for %s", tmo, url)) {
		ok = true; /* dry run */
		goto out;
	}
	int64_t t0 = ab_now_ms(), deadline = t0 + tmo;
	char last[200] = "no answer";
	for (;;) {
		struct ab_httpc_req q = {.url = url, .timeout_ms = 2000, .connect_timeout_ms = 1000,
					 .max_response = 1 << 20};
		int64_t left = deadline - ab_now_ms();
		if (left < q.timeout_ms)
			q.timeout_ms = left > 100 ? (int)left : 100;
		if (ab_httpc_run(&q, 1) == 0 && q.err == 0 && q.status == 200)
			ok = true;
		else if (q.err)
			ab_strlcpy(last, q.errstr[0] ? q.errstr : ab_strerror(q.err), sizeof(last));
		else
			snprintf(last, sizeof(last), "HTTP %d", q.status);
		ab_httpc_req_clear(&q);
		if (ok || ab_now_ms() >= deadline)
			break;
		ab_sleep_ms(200);
	}
	if (ok)
		printf("ok (%.1f s)\n", (double)(ab_now_ms() - t0) / 1000.0);
	else
		printf("FAILED (not healthy within %d ms: %s)\n", tmo, last);
out:
	free(url);
	free(base);
	return ok;
}

/* Puts the .prev files back and restarts the roles; true when healthy. */
static bool rollback(struct deploy *d, struct host_run *hr)
{
	step(d, hr, "roll back: restore %s.prev (and the module and config .prev)", d->r_bin);
	const char *argv[] = {"sh", "-c", rollback_script, "sh", d->r_bin, d->r_mod, d->r_conf,
			      NULL};
	int rc = remote(hr, argv, RUN_MS);
	if (!result(hr, rc, NULL))
		return false;
	for (size_t i = 0; i < hr->n_roles; i++)
		if (!start_role(d, hr, hr->roles[i]) || !wait_health(d, hr, hr->roles[i]))
			return false;
	return true;
}

/* Finds which roles the host runs; with notes, says which it skips. */
static void host_roles(struct deploy *d, struct host_run *hr, bool notes)
{
	const struct ab_config *cfg = d->cfg;
	hr->n_roles = 0;
	for (int r = 0; r < AB_ROLE__COUNT; r++) {
		const struct ab_service_cfg *s = &cfg->services[r];
		if (!s->enabled)
			continue;
		bool here = (s->host_ref && strcmp(s->host_ref, hr->h->name) == 0) ||
			    (s->host && strcmp(s->host, hr->h->addr) == 0);
		if (!here)
			continue;
		const char *name = ab_role_name((enum ab_role)r);
		if (r == AB_ROLE_REDIS && notes)
			note(hr, "redis: a redis-server, not started by deploy; load %s in it "
				 "(--loadmodule)", d->module[0] ? d->r_mod : "autobot.so");
		else if (r != AB_ROLE_REDIS && !ab_role_def_find(name) && notes)
			note(hr, "%s: not built in this version of autobot, skipped", name);
		else if (r != AB_ROLE_REDIS && ab_role_def_find(name))
			hr->roles[hr->n_roles++] = r;
	}
}

/* Deploys one host; returns 0 ok, 1 failed (rolled back or not). */
static int deploy_host(struct deploy *d, struct host_run *hr, bool *rolled_back)
{
	const struct ab_config *cfg = d->cfg;
	const char *sd = cfg->deploy.remote_state_dir;
	char line[200];
	int rc;
	*rolled_back = false;

	if (ab_ssh_target_for(cfg, hr->h->name, &hr->t, hr->tb, sizeof(hr->tb)) < 0) {
		note(hr, "FAILED: bad host address \"%s\"", hr->h->addr);
		return 1;
	}
	host_roles(d, hr, false);
	{
		struct ab_buf rl = {0};
		for (size_t i = 0; i < hr->n_roles; i++)
			ab_buf_printf(&rl, "%s%s", i ? ", " : "", ab_role_name(hr->roles[i]));
		note(hr, "host %s, roles: %s", hr->t.host, rl.len ? rl.data : "none");
		ab_buf_free(&rl);
	}
	host_roles(d, hr, true);

	/* connect, and find out how roles are started there */
	hr->mode = d->mode;
	if (step(d, hr, "log in as %s@%s port %d with %s%s", hr->t.user ? hr->t.user : "(local user)",
		 hr->t.host, hr->t.port, hr->t.key,
		 d->mode == MODE_AUTO ? " and look for /run/systemd/system" : "")) {
		/* one handshake for all the steps of this host; should it fail,
		 * the probe below connects by itself and says why */
		ab_ssh_share_open(&hr->t, key_only_opts, hr->ctl, sizeof(hr->ctl), RUN_MS);
		const char *argv[] = {"sh", "-c", probe_script, NULL};
		ab_buf_reset(&hr->out);
		ab_buf_reset(&hr->err);
		rc = ab_ssh_run_opts(&hr->t, key_only_opts, argv, NULL, 0, &hr->out, &hr->err,
				     RUN_MS);
		if (!result(hr, rc, NULL)) {
			if (rc == 255)
				note(hr, "cannot log in with the cluster key %s: has `autobot "
					 "ssh-setup` been run for this host?", hr->t.key);
			return 1;
		}
		if (d->mode == MODE_AUTO)
			hr->mode = strncmp(first_line(&hr->out, line, sizeof(line)), "systemd", 7) == 0
					   ? MODE_SYSTEMD
					   : MODE_DETACHED;
		note(hr, "mode: %s%s", mode_name(hr->mode),
		     d->mode == MODE_AUTO ? " (deploy.mode auto)" : "");
	}

	/* folders, and the current files kept as .prev */
	if (step(d, hr, "create %s/bin, %s/lib/autobot, %s, %s (0700); keep %s, %s, %s as .prev",
		 cfg->deploy.prefix, cfg->deploy.prefix, d->r_confdir, sd, d->r_bin, d->r_mod,
		 d->r_conf)) {
		const char *argv[] = {"sh", "-c", prepare_script, "sh", cfg->deploy.prefix, sd,
				      d->r_confdir, d->r_bin, d->r_mod, d->r_conf, NULL};
		rc = remote(hr, argv, RUN_MS);
		bool had_prev = hr->out.data && strstr(hr->out.data, ".prev");
		if (!result(hr, rc, had_prev ? "previous version kept" : "first install"))
			return 1;
	}

	/* the binary, checked on the host before anything is restarted */
	if (step(d, hr, "copy %s -> %s (0755, temporary name then rename)", d->binary, d->r_bin)) {
		ab_buf_reset(&hr->err);
		rc = ab_ssh_copy(&hr->t, d->binary, d->r_bin, 0755);
		if (!result(hr, rc, NULL))
			return 1;
	}
	if (step(d, hr, "run %s version", d->r_bin)) {
		const char *argv[] = {d->r_bin, "version", NULL};
		rc = remote(hr, argv, RUN_MS);
		if (rc == 0 && (!hr->out.data || !strstr(hr->out.data, "autobot"))) {
			rc = 1;
			ab_buf_puts(&hr->err, "its version output does not name autobot");
		}
		if (!result(hr, rc, first_line(&hr->out, line, sizeof(line)))) {
			*rolled_back = true;
			step(d, hr, "restore the previous files");
			const char *rargv[] = {"sh", "-c", rollback_script, "sh", d->r_bin, d->r_mod,
					       d->r_conf, NULL};
			rc = remote(hr, rargv, RUN_MS);
			result(hr, rc, NULL);
			return 1;
		}
	}

	/* the module, the web UI, the config and the secrets */
	if (d->module[0]) {
		if (step(d, hr, "copy %s -> %s (0644)", d->module, d->r_mod)) {
			rc = ab_ssh_copy(&hr->t, d->module, d->r_mod, 0644);
			if (!result(hr, rc, NULL))
				goto failed;
		}
	} else {
		note(hr, "module: no autobot.so found next to this binary or in "
			 "services.redis.module, skipped");
	}
	note(hr, "web ui: not built yet in this version, skipped");
	if (step(d, hr, "copy %s -> %s (0600)", d->config, d->r_conf)) {
		rc = ab_ssh_copy(&hr->t, d->config, d->r_conf, 0600);
		if (!result(hr, rc, NULL))
			goto failed;
	}
	for (size_t i = 0; i < d->n_secrets; i++) {
		char local[PATH_MAX], dst[PATH_MAX];
		snprintf(local, sizeof(local), "%s/%s", cfg->state_dir, d->secrets[i]);
		snprintf(dst, sizeof(dst), "%s/%s", sd, d->secrets[i]);
		if (step(d, hr, "copy secret %s -> %s (0600)", d->secrets[i], dst)) {
			rc = ab_ssh_copy(&hr->t, local, dst, 0600);
			if (!result(hr, rc, NULL))
				goto failed;
		}
	}

	/* the unit, then the roles one by one */
	if (hr->mode != MODE_DETACHED && hr->n_roles) {
		struct ab_buf unit = {0};
		if (render_unit(cfg, &unit) < 0) {
			ab_buf_free(&unit);
			goto failed;
		}
		if (step(d, hr, "install /etc/systemd/system/autobot@.service%s",
			 d->dry && hr->mode == MODE_AUTO ? " (if systemd runs there)" : "")) {
			rc = ab_ssh_write(&hr->t, unit.data, unit.len,
					  "/etc/systemd/system/autobot@.service", 0644);
			ab_buf_reset(&hr->err);
			if (!result(hr, rc, NULL)) {
				ab_buf_free(&unit);
				goto failed;
			}
		}
		ab_buf_free(&unit);
	}
	for (size_t i = 0; i < hr->n_roles; i++)
		if (!start_role(d, hr, hr->roles[i]) || !wait_health(d, hr, hr->roles[i]))
			goto failed;
	if (d->dry && hr->n_roles)
		note(hr, "would restore the .prev files and restart the roles if a role is not "
			 "healthy");
	return 0;

failed:
	*rolled_back = true;
	if (rollback(d, hr))
		note(hr, "rolled back to the previous version, which is healthy");
	else
		note(hr, "rollback did not bring the previous version back to health");
	return 1;
}

/* ---- deploy: the command ---------------------------------------------------- */

static void deploy_usage(FILE *f)
{
	fprintf(f,
		"usage: autobot deploy --config FILE [--host NAME] [--dry-run] [--binary FILE]\n"
		"       autobot deploy --print-unit [--config FILE]\n"
		"\n"
		"Installs this autobot (or --binary), autobot.so and the config file on each host\n"
		"of hosts:, one host at a time, over SSH with the cluster key (autobot ssh-setup),\n"
		"then starts the roles the config places on the host and waits for their /health.\n"
		"Files are replaced atomically and the previous ones kept as NAME.prev; if a role\n"
		"does not become healthy they are put back, the roles restarted, and deploy stops.\n"
		"Roles run as systemd units autobot@ROLE (deploy.mode systemd), as detached\n"
		"`autobot serve` processes with pid files (detached), or whichever fits the host\n"
		"(auto: systemd when /run/systemd/system exists there). Exit 0 ok, 1 failed.\n"
		"\n"
		"options:\n%s"
		"  --host NAME        only this host of hosts:\n"
		"  --dry-run          print every action, connect to nothing\n"
		"  --binary FILE      the autobot binary to install (default: this one)\n"
		"  --print-unit       print the systemd unit for the deploy.* paths and exit\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

int ab_cmd_deploy(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *only = NULL, *binary = NULL;
	bool dry = false, print_unit = false;
	const struct ab_cli_opt opts[] = {
		{"--host", NULL, &only},
		{"--dry-run", &dry, NULL},
		{"--binary", NULL, &binary},
		{"--print-unit", &print_unit, NULL},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "deploy", &co, opts, NULL, 0, NULL, deploy_usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	int ret = 1;
	struct deploy d = {.cfg = cfg, .dry = dry};
	size_t *idx = ab_xcalloc(cfg->n_hosts + 1, sizeof(*idx));
	int *status = ab_xcalloc(cfg->n_hosts + 1, sizeof(*status));
	char self[PATH_MAX];

	if (print_unit) {
		struct ab_buf unit = {0};
		if (render_unit(cfg, &unit) == 0) {
			fwrite(unit.data, 1, unit.len, stdout);
			ret = 0;
		}
		ab_buf_free(&unit);
		goto out;
	}
	if (!cfg->path) {
		fprintf(stderr, "autobot deploy: needs --config FILE (or $AUTOBOT_CONFIG): the file "
				"is what the hosts run with\n");
		ret = AB_EXIT_USAGE;
		goto out;
	}
	int n = select_hosts(cfg, "deploy", only, idx);
	if (n < 0)
		goto out;
	d.config = cfg->path;
	d.mode = !strcmp(cfg->deploy.mode, "systemd")	 ? MODE_SYSTEMD
		 : !strcmp(cfg->deploy.mode, "detached") ? MODE_DETACHED
							 : MODE_AUTO;
	if (binary) {
		d.binary = binary;
	} else {
		ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (sl <= 0) {
			fprintf(stderr, "autobot deploy: cannot find this binary; use --binary FILE\n");
			goto out;
		}
		self[sl] = '\0';
		d.binary = self;
	}
	if (!file_exists(d.binary) || access(d.binary, R_OK) != 0) {
		fprintf(stderr, "autobot deploy: %s is not a readable file\n", d.binary);
		goto out;
	}
	if (ab_cli_module_path(cfg, d.module, sizeof(d.module)) < 0) {
		fprintf(stderr, "autobot deploy: services.redis.module %s is not readable\n",
			cfg->redis_module);
		goto out;
	}
	static const char *const secret_names[] = {"admin.token", "cluster.token", "redis.password"};
	for (size_t i = 0; i < AB_ARRAY_LEN(secret_names); i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", cfg->state_dir, secret_names[i]);
		if (file_exists(p))
			d.secrets[d.n_secrets++] = secret_names[i];
	}
	snprintf(d.r_bin, sizeof(d.r_bin), "%s/bin/autobot", cfg->deploy.prefix);
	snprintf(d.r_mod, sizeof(d.r_mod), "%s/lib/autobot/autobot.so", cfg->deploy.prefix);
	ab_strlcpy(d.r_conf, cfg->deploy.config_path, sizeof(d.r_conf));
	ab_strlcpy(d.r_confdir, cfg->deploy.config_path, sizeof(d.r_confdir));
	char *slash = strrchr(d.r_confdir, '/');
	if (slash && slash != d.r_confdir)
		*slash = '\0';
	else
		ab_strlcpy(d.r_confdir, "/", sizeof(d.r_confdir));

	printf("deploy%s: %d host%s, mode %s, binary %s, module %s, config %s\n",
	       dry ? " (dry run)" : "", n, n == 1 ? "" : "s", mode_name(d.mode), d.binary,
	       d.module[0] ? d.module : "(none)", d.config);
	if (co.n_sets || co.env_file)
		printf("note: --set and --env-file values apply here only; the hosts read %s "
		       "and their own environment\n", d.config);
	fflush(stdout);

	int failed_at = -1;
	for (int i = 0; i < n; i++) {
		struct host_run hr = {.h = &cfg->hosts[idx[i]]};
		bool rb = false;
		int rc = deploy_host(&d, &hr, &rb);
		ab_ssh_share_close(&hr.t);
		ab_buf_free(&hr.out);
		ab_buf_free(&hr.err);
		status[i] = rc == 0 ? 1 : rb ? 2 : 3;
		if (rc != 0) {
			failed_at = i;
			break;
		}
	}
	printf("\n%-16s %s\n", "HOST", "RESULT");
	for (int i = 0; i < n; i++) {
		static const char *const words[] = {"skipped (an earlier host failed)", "ok",
						    "FAILED, rolled back", "FAILED"};
		printf("%-16s %s\n", cfg->hosts[idx[i]].name,
		       dry && status[i] == 1 ? "planned (dry run)" : words[status[i]]);
	}
	ret = failed_at < 0 ? 0 : 1;
out:
	free(status);
	free(idx);
	ab_config_free(cfg);
	return ret;
}
