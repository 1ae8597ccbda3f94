/*
 * up.c - `autobot up`: the whole platform on this machine, in the
 * foreground. Generates the secrets on first start, writes the private
 * redis-server's config (password, AOF on, bound to the configured
 * address), starts Redis and then every role this build implements that
 * the config places on a local address, supervises them, and stops them
 * all in reverse order on Ctrl-C or SIGTERM.
 *
 * Log files: each role gets --set log.file=<state_dir>/logs/<role>.log
 * (unless the config names a log.file of its own) and `up` itself writes
 * logs/up.log. SIGHUP to `up` reopens up.log and is passed on to every
 * role, so one signal after logrotate renamed the files is enough; its
 * handler only raises flags, acted on by the supervising loop.
 */
#include "cli.h"

#include "httpc.h"
#include "log.h"
#include "redis.h"
#include "secrets.h"
#include "service.h"
#include "supervise.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot up [options]\n"
		"\n"
		"Starts the platform on this machine in the foreground: a private\n"
		"redis-server (unless services.redis.managed is false) and every role\n"
		"built into this autobot that the config enables. Prints the URL and\n"
		"the admin token file; Ctrl-C stops everything.\n"
		"\noptions:\n%s"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

/* Is host:port free to bind? Returns 0, or -errno of bind(). */
static int port_free(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (ab_sockaddr_parse(host, port, &ss, &len) < 0)
		return 0; /* a name: let the service report it */
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int rc = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int write_redis_conf(const struct ab_config *cfg, const struct ab_secrets *sec,
			    char *path, size_t pathlen, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/redis", cfg->state_dir);
	int rc = ab_mkdir_p(dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create %s: %s", dir, ab_strerror(rc));
		return rc;
	}
	char adir[PATH_MAX];
	if (!realpath(dir, adir))
		ab_strlcpy(adir, dir, sizeof(adir));
	snprintf(path, pathlen, "%s/redis.conf", adir);
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	struct ab_buf b = {0};
	ab_buf_printf(&b,
		      "# written by autobot up at every start; edit the autobot config instead\n"
		      "bind %s\n"
		      "port %d\n"
		      "protected-mode yes\n"
		      "daemonize no\n"
		      "supervised no\n"
		      "logfile \"\"\n"
		      "dir \"%s\"\n"
		      "dbfilename dump.rdb\n"
		      "appendonly yes\n"
		      "appendfilename \"appendonly.aof\"\n"
		      "appendfsync everysec\n"
		      "save 3600 1 300 100 60 10000\n",
		      rs->host, rs->port, adir);
	if (sec->redis_password[0])
		ab_buf_printf(&b, "requirepass \"%s\"\n", sec->redis_password);
	char module[PATH_MAX];
	rc = ab_cli_module_path(cfg, module, sizeof(module));
	if (rc < 0) {
		snprintf(err, errlen, "services.redis.module: cannot read %s", cfg->redis_module);
		ab_buf_free(&b);
		return rc;
	}
	if (module[0])
		ab_buf_printf(&b, "loadmodule \"%s\"\n", module);
	else if (strcmp(cfg->redis_module, "none") != 0)
		ab_log(AB_LOG_WARN, "autobot.so not found next to %s: redis starts without it and "
				    "the knowledge base is unavailable (set services.redis.module)",
		       "the autobot binary");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot write %s: %s", path, ab_strerror(rc));
		ab_buf_free(&b);
		return rc;
	}
	fchmod(fd, 0600);
	ssize_t w = write(fd, b.data, b.len);
	rc = (w == (ssize_t)b.len) ? 0 : -EIO;
	close(fd);
	ab_buf_free(&b);
	if (rc < 0)
		snprintf(err, errlen, "cannot write %s: %s", path, ab_strerror(rc));
	return rc;
}

static bool is_local(const char *host)
{
	if (!strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	    !strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		return true;
	/* an address of this machine can be bound */
	return port_free(host, 0) == 0;
}

/* Pumps the supervisor until check() succeeds, the child dies for good,
 * a stop is requested, or timeout_ms pass. Returns 0 when ready. */
static int wait_ready(struct ab_supervisor *sv, int idx, int timeout_ms,
		      int (*check)(const void *arg), const void *arg)
{
	int64_t deadline = ab_now_ms() + timeout_ms;
	while (ab_now_ms() < deadline) {
		if (check(arg) == 0)
			return 0;
		if (ab_supervisor_pump(sv, 20) == 1)
			return AB_ECLOSED;
		if (ab_supervisor_restarts(sv, idx) > 2)
			return AB_EUNAVAIL;
	}
	return AB_ETIMEOUT;
}

struct redis_check {
	const char *host;
	int port;
	const char *password;
};

static int check_redis(const void *arg)
{
	const struct redis_check *rc = arg;
	double ms;
	char err[160];
	return ab_redis_probe(rc->host, rc->port, rc->password, 200, &ms, err, sizeof(err));
}

static volatile sig_atomic_t hup_seen;

static void on_hup(int sig)
{
	(void)sig;
	hup_seen = 1;
	ab_log_request_reopen();
}

static int check_http(const void *arg)
{
	struct ab_httpc_req req = {.url = arg, .timeout_ms = 300};
	ab_httpc_run(&req, 1);
	int ok = (req.err == 0 && req.status == 200) ? 0 : -1;
	ab_httpc_req_clear(&req);
	return ok;
}

int ab_cmd_up(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	int pr = ab_cli_parse(argc, argv, "up", &co, NULL, NULL, 0, NULL, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	ab_log_init("up", cfg->log_level, cfg->log_json);
	int64_t t0 = ab_now_ms();
	int status = 1;
	struct ab_supervisor *sv = NULL;
	char err[1024];
	struct ab_secrets sec;
	char **child_argv = NULL;
	char *role_log = NULL;
	int role_idx[AB_ROLE__COUNT];
	size_t n_role_idx = 0;

	if (ab_secrets_load(cfg, AB_SECRETS_CREATE_TOKENS | AB_SECRETS_CREATE_REDIS, &sec, err,
			    sizeof(err)) < 0) {
		fprintf(stderr, "autobot up: %s\n", err);
		goto out;
	}
	/* logs/: one file per role, and up.log (or the configured log.file) */
	char logs_dir[PATH_MAX];
	snprintf(logs_dir, sizeof(logs_dir), "%s/logs", cfg->state_dir);
	bool own_log_files = !(cfg->log_file && cfg->log_file[0]);
	int le = ab_mkdir_p(logs_dir, 0750);
	if (le == 0) {
		char *up_log = own_log_files ? ab_xasprintf("%s/up.log", logs_dir)
					     : ab_xstrdup(cfg->log_file);
		le = ab_log_open_file(up_log);
		if (le < 0)
			ab_log(AB_LOG_WARN, "cannot open log file %s: %s", up_log, ab_strerror(le));
		free(up_log);
	} else {
		ab_log(AB_LOG_WARN, "cannot create %s: %s (no log files)", logs_dir, ab_strerror(le));
		own_log_files = false;
	}
	ab_httpc_global_init();
	ab_supervisor_install_signals();
	struct sigaction hup;
	memset(&hup, 0, sizeof(hup));
	hup.sa_handler = on_hup;
	sigemptyset(&hup.sa_mask);
	hup.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &hup, NULL);
	sv = ab_supervisor_new(2);

	/* 1. the data layer */
	const struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	if (rs->enabled && rs->managed) {
		int rc = port_free(rs->host, rs->port);
		if (rc < 0) {
			fprintf(stderr,
				"autobot up: cannot use %s:%d for redis: %s (another redis-server? "
				"set services.redis.port, or services.redis.managed: false to use it)\n",
				rs->host, rs->port, ab_strerror(rc));
			goto out;
		}
		char conf[PATH_MAX];
		if (write_redis_conf(cfg, &sec, conf, sizeof(conf), err, sizeof(err)) < 0) {
			fprintf(stderr, "autobot up: %s\n", err);
			goto out;
		}
		char *rargv[] = {"redis-server", conf, NULL};
		int idx = ab_supervisor_add(sv, "redis", rargv);
		rc = ab_supervisor_start(sv, idx);
		if (rc < 0) {
			fprintf(stderr, "autobot up: cannot start redis-server: %s\n", ab_strerror(rc));
			goto out;
		}
		struct redis_check chk = {rs->host, rs->port, sec.redis_password};
		rc = wait_ready(sv, idx, 10000, check_redis, &chk);
		if (rc == AB_ECLOSED) {
			status = 0;
			goto out;
		}
		if (rc < 0) {
			fprintf(stderr, "autobot up: redis-server did not become ready: %s\n",
				ab_strerror(rc));
			goto out;
		}
		ab_log(AB_LOG_INFO, "redis ready on %s:%d after %lld ms", rs->host, rs->port,
		       (long long)(ab_now_ms() - t0));
	} else if (rs->enabled) {
		ab_log(AB_LOG_INFO, "using the external redis at %s:%d", rs->host, rs->port);
	}

	/* 2. every implemented role the config puts on this machine */
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0) {
		fprintf(stderr, "autobot up: cannot find my own executable\n");
		goto out;
	}
	self[sl] = '\0';
	char *coordinator_url = NULL;
	for (const char *const *name = ab_implemented_roles; *name; name++) {
		enum ab_role role = (enum ab_role)ab_role_parse(*name);
		const struct ab_service_cfg *sc = &cfg->services[role];
		if (!sc->enabled || !is_local(sc->host))
			continue;
		int rc = port_free(sc->host, sc->port);
		if (rc < 0 && role != AB_ROLE_COORDINATOR) {
			/* e.g. an Ollama already on 11434: use that, start no llm */
			ab_log(AB_LOG_WARN,
			       "%s:%d is in use (%s); not starting the %s role (set services.%s.port "
			       "to run ours elsewhere)",
			       sc->host, sc->port, ab_strerror(rc), *name, *name);
			continue;
		}
		if (rc < 0) {
			fprintf(stderr, "autobot up: cannot use %s:%d for %s: %s (set services.%s.port)\n",
				sc->host, sc->port, *name, ab_strerror(rc), *name);
			goto out;
		}
		size_t n = 0;
		free(child_argv);
		child_argv = ab_xcalloc(14 + 2 * co.n_sets, sizeof(char *));
		child_argv[n++] = self;
		child_argv[n++] = "serve";
		child_argv[n++] = (char *)*name;
		child_argv[n++] = "--state-dir";
		child_argv[n++] = cfg->state_dir;
		if (co.config) {
			child_argv[n++] = "--config";
			child_argv[n++] = (char *)co.config;
		}
		if (co.env_file) {
			child_argv[n++] = "--env-file";
			child_argv[n++] = (char *)co.env_file;
		}
		for (size_t k = 0; k < co.n_sets; k++) {
			child_argv[n++] = "--set";
			child_argv[n++] = (char *)co.sets[k];
		}
		if (own_log_files) {
			free(role_log);
			role_log = ab_xasprintf("log.file=%s/%s.log", logs_dir, *name);
			child_argv[n++] = "--set";
			child_argv[n++] = role_log;
		}
		int idx = ab_supervisor_add(sv, *name, child_argv);
		role_idx[n_role_idx++] = idx;
		rc = ab_supervisor_start(sv, idx);
		if (rc < 0) {
			fprintf(stderr, "autobot up: cannot start %s: %s\n", *name, ab_strerror(rc));
			goto out;
		}
		char *url = ab_config_service_url(cfg, role);
		char *hurl = ab_xasprintf("%s/health", url);
		rc = wait_ready(sv, idx, 10000, check_http, hurl);
		free(hurl);
		if (rc == AB_ECLOSED) {
			free(url);
			status = 0;
			goto out;
		}
		if (rc < 0) {
			fprintf(stderr, "autobot up: %s did not become healthy: %s\n", *name,
				ab_strerror(rc));
			free(url);
			goto out;
		}
		if (role == AB_ROLE_COORDINATOR) {
			free(coordinator_url);
			coordinator_url = url;
		} else {
			free(url);
		}
	}

	printf("autobot is up (%lld ms)\n", (long long)(ab_now_ms() - t0));
	if (coordinator_url)
		printf("  url:         %s\n", coordinator_url);
	printf("  admin token: %s\n", sec.admin_token_path);
	printf("  state dir:   %s\n", cfg->state_dir);
	printf("  try:         curl -H \"Authorization: Bearer $(cat %s)\" %s/api/health/cluster\n",
	       sec.admin_token_path, coordinator_url ? coordinator_url : "http://127.0.0.1:8002");
	printf("press Ctrl-C to stop\n");
	fflush(stdout);
	free(coordinator_url);

	while (ab_supervisor_pump(sv, 1000) == 0) {
		if (!hup_seen)
			continue;
		hup_seen = 0;
		for (size_t k = 0; k < n_role_idx; k++) {
			pid_t pid = ab_supervisor_pid(sv, role_idx[k]);
			if (pid > 0)
				kill(pid, SIGHUP);
		}
		ab_log(AB_LOG_INFO, "log files reopened on SIGHUP (passed on to the roles)");
	}
	ab_log(AB_LOG_INFO, "stopping");
	status = 0;
out:
	if (sv) {
		ab_supervisor_stop_all(sv, 5000);
		ab_supervisor_free(sv);
	}
	if (status == 0)
		ab_log(AB_LOG_INFO, "all stopped");
	free(child_argv);
	free(role_log);
	ab_config_free(cfg);
	return status;
}
