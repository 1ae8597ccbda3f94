/*
 * test_config.c - unit tests for config.c: defaults, a YAML file with every
 * key, the layering order (YAML < .env < environment < --set <
 * --state-dir) key by key, ${VAR} expansion, every error path with the
 * file, line and key it must name, redaction in the JSON dump, the
 * environment names of ab_config_each_key(), and the shipped
 * config/distributed.yaml.
 */
#include "ab_build.h"
#include "config.h"
#include "log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];
static char errbuf[512];

static void setup(void)
{
	ab_strlcpy(tmpdir, "/tmp/ab-config-test-XXXXXX", sizeof(tmpdir));
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Writes text to tmpdir/name; returns the path (static buffer per slot). */
static const char *write_file(const char *name, const char *text)
{
	static char paths[4][256];
	static int slot;
	char *p = paths[slot++ % 4];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static const char *empty_env(void)
{
	return write_file("empty.env", "");
}

/* Loads yaml (may be NULL) with an empty .env and the given environment. */
static int load_yaml(const char *yaml, char *const *envp, struct ab_config **cfg)
{
	struct ab_config_src src = {0};
	if (yaml)
		src.file = write_file("cfg.yaml", yaml);
	src.env_file = empty_env();
	src.environ = envp;
	return ab_config_load(&src, cfg, errbuf, sizeof(errbuf));
}

/* Expects the YAML text to fail with a message containing every needle. */
static void yaml_fails(const char *yaml, const char *n1, const char *n2, const char *n3)
{
	struct ab_config *cfg = (struct ab_config *)1;
	errbuf[0] = '\0';
	int rc = load_yaml(yaml, NULL, &cfg);
	cr_assert_eq(rc, AB_ECONFIG, "accepted:\n%s", yaml);
	cr_assert_null(cfg);
	cr_assert(strstr(errbuf, "cfg.yaml"), "no file name in: %s", errbuf);
	const char *needles[] = {n1, n2, n3};
	for (int i = 0; i < 3; i++)
		if (needles[i])
			cr_assert(strstr(errbuf, needles[i]), "\"%s\" not in: %s",
				  needles[i], errbuf);
}

TestSuite(config, .init = setup, .fini = teardown);

Test(config, roles)
{
	cr_assert_str_eq(ab_role_name(AB_ROLE_COORDINATOR), "coordinator");
	cr_assert_str_eq(ab_role_name(AB_ROLE_DESKTOP), "desktop");
	cr_assert_eq(ab_role_parse("llm"), AB_ROLE_LLM);
	cr_assert_eq(ab_role_parse("redis"), AB_ROLE_REDIS);
	cr_assert_eq(ab_role_parse("nope"), AB_EINVAL);
	cr_assert_eq(ab_role_parse(NULL), AB_EINVAL);
	static const int ports[] = {8002, 5173, 8081, 6379, 8080, 3000, 11434, 6080};
	for (int r = 0; r < AB_ROLE__COUNT; r++) {
		cr_assert_eq(ab_role_default_port((enum ab_role)r), ports[r]);
		cr_assert_eq(ab_role_parse(ab_role_name((enum ab_role)r)), r);
	}
}

static void check_defaults(const struct ab_config *cfg)
{
	cr_assert_null(cfg->path);
	cr_assert_str_eq(cfg->cluster_name, "autobot");
	cr_assert_str_eq(cfg->cluster_token, "");
	cr_assert_eq(cfg->n_hosts, 0);
	for (int r = 0; r < AB_ROLE__COUNT; r++) {
		cr_assert_str_eq(cfg->services[r].host, "127.0.0.1");
		cr_assert_eq(cfg->services[r].port, ab_role_default_port((enum ab_role)r));
		bool on = r == AB_ROLE_COORDINATOR || r == AB_ROLE_REDIS || r == AB_ROLE_LLM;
		cr_assert_eq(cfg->services[r].enabled, on, "role %d", r);
	}
	cr_assert(cfg->services[AB_ROLE_REDIS].managed);
	cr_assert_str_eq(cfg->services[AB_ROLE_REDIS].password, "");
	cr_assert_eq(cfg->n_allow, 2);
	cr_assert_str_eq(cfg->allow_cidrs[0], "127.0.0.0/8");
	cr_assert_str_eq(cfg->allow_cidrs[1], "::1/128");
	cr_assert_eq(cfg->allow[0].family, AF_INET);
	cr_assert_eq(cfg->allow[1].family, AF_INET6);
	cr_assert_eq(cfg->n_cors, 0);
	cr_assert_eq(cfg->max_body_bytes, 1048576);
	cr_assert_eq(cfg->max_header_bytes, 16384);
	cr_assert_eq(cfg->probe_ms, 500);
	cr_assert_eq(cfg->redis_connect_ms, 2000);
	cr_assert_eq(cfg->redis_command_ms, 1000);
	cr_assert_eq(cfg->request_timeout_ms, 30000);
	cr_assert_eq(cfg->http_threads, 2);
	cr_assert_eq(cfg->log_level, AB_LOG_INFO);
	cr_assert_not(cfg->log_json);
	cr_assert_not_null(cfg->state_dir);
	if (geteuid() == 0)
		cr_assert_str_eq(cfg->state_dir, "/var/lib/autobot");
	else
		cr_assert(strstr(cfg->state_dir, "/.local/state/autobot"));
}

Test(config, defaults)
{
	struct ab_config *cfg = ab_config_default();
	check_defaults(cfg);
	char *url = ab_config_service_url(cfg, AB_ROLE_COORDINATOR);
	cr_assert_str_eq(url, "http://127.0.0.1:8002");
	free(url);
	ab_config_free(cfg);
	ab_config_free(NULL);
}

Test(config, load_without_file_equals_defaults)
{
	struct ab_config *cfg = NULL;
	char *envp[] = {"PATH=/bin", "AUTOBOT_UNRELATED_THING=1", NULL};
	cr_assert_eq(load_yaml(NULL, envp, &cfg), 0, "%s", errbuf);
	check_defaults(cfg);
	ab_config_free(cfg);
}

static const char *full_yaml =
	"# every key\n"
	"state_dir: /srv/autobot\n"
	"cluster:\n"
	"  name: lab-1\n"
	"  token: tok-123456\n"
	"hosts:\n"
	"  main: 10.0.0.1\n"
	"  gpu: fd00::2\n"
	"  store: store.example.org\n"
	"services:\n"
	"  coordinator: {host: main, port: 9002, enabled: true}\n"
	"  frontend: {host: 10.0.0.9, port: 5174, enabled: false}\n"
	"  npu: {host: gpu, port: 9081}\n"
	"  redis:\n"
	"    host: store\n"
	"    port: 6380\n"
	"    enabled: yes\n"
	"    password: \"s3cret-pw\"\n"
	"    managed: false\n"
	"  ai: {host: localhost, port: 9080}\n"
	"  browser: {host: main, port: 4000, enabled: off}\n"
	"  llm: {host: main, port: 11435}\n"
	"  desktop: {host: main, port: 6081}\n"
	"security:\n"
	"  allow_cidrs: [10.0.0.0/8, fd00::/8]\n"
	"  cors_origins:\n"
	"    - http://10.0.0.1:5173\n"
	"    - https://ui.example.org\n"
	"  max_body_bytes: 2048\n"
	"  max_header_bytes: 4096\n"
	"timeouts:\n"
	"  probe_ms: 250\n"
	"  redis_connect_ms: 1500\n"
	"  redis_command_ms: 700\n"
	"  request_ms: 10000\n"
	"http:\n"
	"  threads: 8\n"
	"log:\n"
	"  level: debug\n"
	"  format: json\n";

Test(config, full_file)
{
	struct ab_config *cfg = NULL;
	cr_assert_eq(load_yaml(full_yaml, NULL, &cfg), 0, "%s", errbuf);
	cr_assert(strstr(cfg->path, "cfg.yaml"));
	cr_assert_str_eq(cfg->state_dir, "/srv/autobot");
	cr_assert_str_eq(cfg->cluster_name, "lab-1");
	cr_assert_str_eq(cfg->cluster_token, "tok-123456");
	cr_assert_eq(cfg->n_hosts, 3);
	cr_assert_str_eq(cfg->hosts[1].name, "gpu");
	cr_assert_str_eq(cfg->hosts[1].addr, "fd00::2");

	const struct ab_service_cfg *s = cfg->services;
	cr_assert_str_eq(s[AB_ROLE_COORDINATOR].host_ref, "main");
	cr_assert_str_eq(s[AB_ROLE_COORDINATOR].host, "10.0.0.1");
	cr_assert_eq(s[AB_ROLE_COORDINATOR].port, 9002);
	cr_assert(s[AB_ROLE_COORDINATOR].enabled);
	cr_assert_str_eq(s[AB_ROLE_FRONTEND].host, "10.0.0.9");
	cr_assert_not(s[AB_ROLE_FRONTEND].enabled);
	cr_assert_str_eq(s[AB_ROLE_NPU].host, "fd00::2");
	cr_assert(s[AB_ROLE_NPU].enabled, "listed in the file: enabled by default");
	cr_assert_str_eq(s[AB_ROLE_REDIS].host, "store.example.org");
	cr_assert_eq(s[AB_ROLE_REDIS].port, 6380);
	cr_assert_str_eq(s[AB_ROLE_REDIS].password, "s3cret-pw");
	cr_assert_not(s[AB_ROLE_REDIS].managed);
	cr_assert_str_eq(s[AB_ROLE_AI].host, "localhost");
	cr_assert_not(s[AB_ROLE_BROWSER].enabled);
	cr_assert(s[AB_ROLE_LLM].enabled);
	cr_assert_eq(s[AB_ROLE_DESKTOP].port, 6081);

	cr_assert_eq(cfg->n_allow, 2);
	cr_assert_str_eq(cfg->allow_cidrs[1], "fd00::/8");
	cr_assert_eq(cfg->allow[1].prefix, 8);
	cr_assert_eq(cfg->n_cors, 2);
	cr_assert_str_eq(cfg->cors_origins[1], "https://ui.example.org");
	cr_assert_eq(cfg->max_body_bytes, 2048);
	cr_assert_eq(cfg->max_header_bytes, 4096);
	cr_assert_eq(cfg->probe_ms, 250);
	cr_assert_eq(cfg->redis_connect_ms, 1500);
	cr_assert_eq(cfg->redis_command_ms, 700);
	cr_assert_eq(cfg->request_timeout_ms, 10000);
	cr_assert_eq(cfg->http_threads, 8);
	cr_assert_eq(cfg->log_level, AB_LOG_DEBUG);
	cr_assert(cfg->log_json);

	char *url = ab_config_service_url(cfg, AB_ROLE_NPU);
	cr_assert_str_eq(url, "http://[fd00::2]:9081");
	free(url);
	url = ab_config_service_url(cfg, AB_ROLE_COORDINATOR);
	cr_assert_str_eq(url, "http://10.0.0.1:9002");
	free(url);
	ab_config_free(cfg);
}

Test(config, file_defaults)
{
	struct ab_config *cfg = NULL;
	/* an empty file, and a file listing services without settings */
	cr_assert_eq(load_yaml("", NULL, &cfg), 0, "%s", errbuf);
	cr_assert(cfg->services[AB_ROLE_COORDINATOR].enabled);
	cr_assert(cfg->services[AB_ROLE_LLM].enabled, "built roles run by default");
	cr_assert_not(cfg->services[AB_ROLE_NPU].enabled);
	ab_config_free(cfg);
	cr_assert_eq(load_yaml("services:\n  llm:\n  npu: {}\n  redis: {host: 10.1.1.1}\n"
			       "security: {cors_origins: ~}\nhosts:\n", NULL, &cfg),
		     0, "%s", errbuf);
	cr_assert(cfg->services[AB_ROLE_LLM].enabled);
	cr_assert(cfg->services[AB_ROLE_NPU].enabled);
	cr_assert(cfg->services[AB_ROLE_REDIS].enabled);
	cr_assert_not(cfg->services[AB_ROLE_DESKTOP].enabled);
	cr_assert_not(cfg->services[AB_ROLE_REDIS].managed, "remote redis: not managed");
	ab_config_free(cfg);
	cr_assert_eq(load_yaml("services: {redis: {host: '::1'}}\n", NULL, &cfg), 0, "%s", errbuf);
	cr_assert(cfg->services[AB_ROLE_REDIS].managed, "loopback redis: managed");
	ab_config_free(cfg);
}

/* One key per layer: each later layer must win, each earlier survive
 * where the later layers are silent. */
Test(config, layering_order)
{
	const char *yaml = "timeouts:\n"
			   "  probe_ms: 100\n"           /* YAML only */
			   "  redis_connect_ms: 101\n"   /* YAML < .env */
			   "  redis_command_ms: 102\n"   /* YAML < .env < env */
			   "  request_ms: 103\n"         /* YAML < .env < env < set */
			   "state_dir: /yaml\n"          /* ... < --state-dir */
			   "cluster: {name: from-yaml}\n"
			   "security: {allow_cidrs: [10.0.0.0/8]}\n";
	const char *dotenv = "# comment\n"
			     "export AUTOBOT_TIMEOUTS_REDIS_CONNECT_MS=201\n"
			     "AUTOBOT_TIMEOUTS_REDIS_COMMAND_MS='202'\n"
			     "AUTOBOT_TIMEOUTS_REQUEST_MS=\"203\"\n"
			     "AUTOBOT_STATE_DIR=/dotenv\n"
			     "AUTOBOT_HTTP_THREADS=5 # inline comment\n"
			     "AUTOBOT_SECURITY_ALLOW_CIDRS=10.1.0.0/16, 10.2.0.0/16\n"
			     "\n";
	char *envp[] = {
		"AUTOBOT_TIMEOUTS_REDIS_COMMAND_MS=302",
		"AUTOBOT_TIMEOUTS_REQUEST_MS=303",
		"AUTOBOT_STATE_DIR=/environ",
		"AUTOBOT_LOG_LEVEL=warn",
		"AUTOBOT_HOSTS_BOX=10.9.9.9",
		"AUTOBOT_SERVICES_LLM_HOST=box",
		NULL,
	};
	const char *sets[] = {"timeouts.request_ms=403", "state_dir=/set",
			      "log.format=json", "hosts.other=10.8.8.8",
			      "security.cors_origins=http://a.example:1,https://b.example"};
	struct ab_config_src src = {
		.file = write_file("cfg.yaml", yaml),
		.env_file = write_file("x.env", dotenv),
		.environ = envp,
		.sets = sets,
		.n_sets = 5,
		.state_dir = "/flag",
	};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_eq(cfg->probe_ms, 100);
	cr_assert_eq(cfg->redis_connect_ms, 201);
	cr_assert_eq(cfg->redis_command_ms, 302);
	cr_assert_eq(cfg->request_timeout_ms, 403);
	cr_assert_str_eq(cfg->state_dir, "/flag");
	cr_assert_str_eq(cfg->cluster_name, "from-yaml");
	cr_assert_eq(cfg->http_threads, 5);
	cr_assert_eq(cfg->log_level, AB_LOG_WARN);
	cr_assert(cfg->log_json);
	cr_assert_eq(cfg->n_allow, 2);
	cr_assert_str_eq(cfg->allow_cidrs[1], "10.2.0.0/16");
	cr_assert_eq(cfg->n_cors, 2);
	cr_assert_str_eq(cfg->services[AB_ROLE_LLM].host, "10.9.9.9");
	cr_assert_eq(cfg->n_hosts, 2);
	ab_config_free(cfg);

	/* without the --state-dir flag, --set wins; without --set, environ */
	src.state_dir = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->state_dir, "/set");
	ab_config_free(cfg);
	src.n_sets = 0;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->state_dir, "/environ");
	cr_assert_eq(cfg->request_timeout_ms, 303);
	ab_config_free(cfg);
	src.environ = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->state_dir, "/dotenv");
	cr_assert_eq(cfg->request_timeout_ms, 203);
	cr_assert_eq(cfg->redis_command_ms, 202);
	ab_config_free(cfg);
	src.env_file = empty_env();
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->state_dir, "/yaml");
	cr_assert_eq(cfg->redis_connect_ms, 101);
	ab_config_free(cfg);
}

Test(config, expansion)
{
	const char *yaml = "cluster:\n"
			   "  token: ${TOKEN}\n"
			   "  name: ${NAME:-fallback}\n"
			   "services:\n"
			   "  redis: {password: \"${FROM_DOTENV}\", host: \"${RHOST:-127.0.0.1}\"}\n"
			   "  llm: {host: \"${UNSET_VAR}10.0.0.${OCTET}\"}\n"
			   "state_dir: /a/$HOME/${EMPTY:-b}\n";
	const char *dotenv = "FROM_DOTENV=pw-from-dotenv\n"
			     "TOKEN=dotenv-token\n"
			     "OCTET=7\n";
	char *envp[] = {"TOKEN=env-token", "EMPTY=", NULL};
	struct ab_config_src src = {
		.file = write_file("cfg.yaml", yaml),
		.env_file = write_file("x.env", dotenv),
		.environ = envp,
	};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->cluster_token, "env-token", "environment beats .env");
	cr_assert_str_eq(cfg->cluster_name, "fallback");
	cr_assert_str_eq(cfg->services[AB_ROLE_REDIS].password, "pw-from-dotenv");
	cr_assert_str_eq(cfg->services[AB_ROLE_REDIS].host, "127.0.0.1");
	cr_assert_str_eq(cfg->services[AB_ROLE_LLM].host, "10.0.0.7",
			 "unset without default expands to \"\"");
	cr_assert_str_eq(cfg->state_dir, "/a/$HOME/b", "bare $ is literal; empty uses :-");
	ab_config_free(cfg);

	src.environ = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	cr_assert_str_eq(cfg->cluster_token, "dotenv-token");
	ab_config_free(cfg);
}

Test(config, expansion_errors)
{
	yaml_fails("cluster:\n  name: x\n  token: ${OOPS\n", ":3:", "cluster.token", "unterminated");
	yaml_fails("cluster:\n  token: ${1BAD}\n", ":2:", "cluster.token", "${VAR}");
	yaml_fails("cluster:\n  token: ${A B}\n", ":2:", "cluster.token", NULL);
}

Test(config, unknown_keys)
{
	yaml_fails("cluster: {name: a}\nclustr: {}\n", ":2:", "clustr: unknown key",
		   "expected one of: state_dir, cluster, hosts, services, security");
	yaml_fails("cluster:\n  nme: a\n", ":2:", "cluster.nme: unknown key",
		   "expected one of: name, token");
	yaml_fails("services:\n  coordinator: {}\n\n  coordinatr:\n    port: 1\n", ":4:",
		   "services.coordinatr: unknown key",
		   "coordinator, frontend, npu, redis, ai, browser, llm, desktop");
	yaml_fails("services:\n  llm:\n    password: x\n", ":3:",
		   "services.llm.password: unknown key", "host, port, enabled");
	yaml_fails("security:\n  allow: []\n", ":2:", "security.allow", "allow_cidrs");
	yaml_fails("timeouts:\n  probe: 5\n", ":2:", "timeouts.probe", "probe_ms");
	yaml_fails("log: {level: info, colour: true}\n", ":1:", "log.colour", "level, format");
	yaml_fails("http: {thread: 2}\n", ":1:", "http.thread", "threads");
	yaml_fails("cluster.name: x\n", ":1:", "cluster.name", "unknown key");
	yaml_fails("timeouts:\n  probe_ms: 5\n  probe_ms: 6\n", ":3:", "timeouts.probe_ms",
		   "duplicate");
}

Test(config, bad_values)
{
	yaml_fails("services:\n  redis:\n    port: abc\n", ":3:", "services.redis.port",
		   "expected an integer from 1 to 65535, got \"abc\"");
	yaml_fails("services:\n  redis:\n    port: 70000\n", ":3:", "services.redis.port",
		   "from 1 to 65535");
	yaml_fails("services:\n  npu: {port: 0}\n", ":2:", "services.npu.port", "\"0\"");
	yaml_fails("timeouts:\n  probe_ms: 0\n", ":2:", "timeouts.probe_ms",
		   "expected an integer from 1 to 600000, got \"0\"");
	yaml_fails("http:\n  threads: 2.5\n", ":2:", "http.threads", "1 to 256");
	yaml_fails("security:\n  max_header_bytes: 100\n", ":2:",
		   "security.max_header_bytes", "1024 to 1048576");
	yaml_fails("services:\n  ai:\n    enabled: maybe\n", ":3:", "services.ai.enabled",
		   "expected true or false, got \"maybe\"");
	yaml_fails("log:\n  level: loud\n", ":2:", "log.level", "debug, info, warn, error");
	yaml_fails("log:\n  format: xml\n", ":2:", "log.format", "logfmt or json");
	yaml_fails("cluster:\n  name: \"a b\"\n", ":2:", "cluster.name", "expected a name");
	yaml_fails("state_dir: \"\"\n", ":1:", "state_dir", "non-empty");
}

Test(config, bad_security_lists)
{
	yaml_fails("security:\n  allow_cidrs:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", ":4:",
		   "security.allow_cidrs", "10.0.0.0/33");
	yaml_fails("security:\n  cors_origins: [\"*\"]\n", ":2:", "security.cors_origins",
		   "wildcard origins are not allowed");
	yaml_fails("security:\n  cors_origins:\n    - http://a.example:5173/app\n", ":3:",
		   "security.cors_origins", "no path");
	yaml_fails("security:\n  cors_origins: [ftp://a.example]\n", ":2:",
		   "security.cors_origins", "http or https");
	yaml_fails("security:\n  cors_origins: [\"http://a.example:99999\"]\n", ":2:",
		   "security.cors_origins", NULL);
	yaml_fails("security:\n  cors_origins: [\"http://*.example.org\"]\n", ":2:",
		   "security.cors_origins", "wildcard");
}

Test(config, good_origins)
{
	struct ab_config *cfg = NULL;
	cr_assert_eq(load_yaml("security:\n  cors_origins: [\"http://[::1]:5173\", "
			       "\"https://x.example\", \"http://10.0.0.1\"]\n",
			       NULL, &cfg),
		     0, "%s", errbuf);
	cr_assert_eq(cfg->n_cors, 3);
	ab_config_free(cfg);
}

Test(config, bad_hosts)
{
	yaml_fails("hosts: {main: 10.0.0.1}\nservices:\n  llm:\n    host: mian\n", ":4:",
		   "services.llm.host", "expected a name from hosts: (main)");
	yaml_fails("services:\n  llm: {host: \"bad host!\"}\n", ":2:", "services.llm.host",
		   "none defined");
	yaml_fails("services:\n  llm: {host: 10.0.0.300}\n", ":2:", "services.llm.host", NULL);
	yaml_fails("hosts:\n  main: not_an_address!\n", ":2:", "hosts.main",
		   "expected an IP address or a host name");
	yaml_fails("hosts:\n  main: [10.0.0.1]\n", ":2:", "hosts.main", "expected an address");
}

Test(config, bad_structure)
{
	yaml_fails("services:\n  - coordinator\n  - redis\n", ":2:", "services",
		   "expected a mapping");
	yaml_fails("- a\n- b\n", ":1:", "expected a mapping", NULL);
	yaml_fails("services:\n  redis:\n    port: [1, 2]\n", ":3:", "services.redis.port",
		   "expected a single value, got a list");
	yaml_fails("security:\n  allow_cidrs: 10.0.0.0/8\n", ":2:", "security.allow_cidrs",
		   "expected a list");
	yaml_fails("security:\n  allow_cidrs: [[10.0.0.0/8]]\n", ":2:",
		   "security.allow_cidrs", "list of strings");
	yaml_fails("hosts: [a, b]\n", ":1:", "hosts", "expected a mapping");
	yaml_fails("cluster: 5\n", ":1:", "cluster", "expected a mapping with keys name, token");
}

Test(config, yaml_syntax_error)
{
	yaml_fails("cluster:\n  name: a\n  token: [unclosed\nhttp: {threads: 2}\n", "cfg.yaml:",
		   "YAML syntax error", NULL);
	yaml_fails("cluster:\n  name: a\n\tbad: tab\n", ":3:", "YAML syntax error", NULL);
	yaml_fails("a: 1\n---\nb: 2\n", "one YAML document", NULL, NULL);
}

Test(config, missing_file)
{
	struct ab_config_src src = {.file = "/nonexistent/autobot.yaml", .env_file = empty_env()};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert_null(cfg);
	cr_assert(strstr(errbuf, "/nonexistent/autobot.yaml"), "%s", errbuf);
	cr_assert(strstr(errbuf, "No such file"), "%s", errbuf);

	src.file = NULL;
	src.env_file = "/nonexistent/x.env";
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert(strstr(errbuf, "/nonexistent/x.env"), "%s", errbuf);
}

static void dotenv_fails(const char *text, const char *n1, const char *n2)
{
	struct ab_config_src src = {.env_file = write_file("bad.env", text)};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG,
		     "accepted %s", text);
	cr_assert(strstr(errbuf, "bad.env"), "%s", errbuf);
	cr_assert(strstr(errbuf, n1), "\"%s\" not in %s", n1, errbuf);
	if (n2)
		cr_assert(strstr(errbuf, n2), "\"%s\" not in %s", n2, errbuf);
}

Test(config, bad_dotenv)
{
	dotenv_fails("# ok\nA=1\nthis is not an assignment\n", ":3:", "KEY=VALUE");
	dotenv_fails("A=\"unterminated\n", ":1:", "KEY=VALUE");
	dotenv_fails("A='x' trailing\n", ":1:", NULL);
	dotenv_fails("1A=x\n", ":1:", NULL);
	dotenv_fails("\nAUTOBOT_SERVICES_REDIS_PORT=zero\n", ":2: AUTOBOT_SERVICES_REDIS_PORT",
		     "services.redis.port: expected an integer from 1 to 65535, got \"zero\"");
	dotenv_fails("AUTOBOT_HOSTS_MAIN=bad addr\n", ":1: AUTOBOT_HOSTS_MAIN", "hosts.main");
}

Test(config, bad_environment)
{
	struct ab_config_src src = {.env_file = empty_env()};
	struct ab_config *cfg = NULL;
	char *e1[] = {"AUTOBOT_TIMEOUTS_PROBE_MS=fast", NULL};
	src.environ = e1;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert(strstr(errbuf, "environment AUTOBOT_TIMEOUTS_PROBE_MS: timeouts.probe_ms: "
				 "expected an integer"), "%s", errbuf);
	char *e2[] = {"AUTOBOT_SECURITY_CORS_ORIGINS=http://ok.example,*", NULL};
	src.environ = e2;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert(strstr(errbuf, "environment AUTOBOT_SECURITY_CORS_ORIGINS: "
				 "security.cors_origins: wildcard"), "%s", errbuf);
	char *e3[] = {"AUTOBOT_SERVICES_NPU_HOST=typo", NULL};
	src.environ = e3;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert(strstr(errbuf, "environment AUTOBOT_SERVICES_NPU_HOST: services.npu.host"),
		  "%s", errbuf);
	/* AUTOBOT_ variables that match no key are ${VAR} sources, not errors */
	char *e4[] = {"AUTOBOT_CLUSTER_TOKN=x", "AUTOBOT_SOMETHING=1", NULL};
	src.environ = e4;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	ab_config_free(cfg);
}

static void set_fails(const char *set, const char *n1, const char *n2)
{
	struct ab_config_src src = {.env_file = empty_env(), .sets = &set, .n_sets = 1};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG,
		     "accepted %s", set);
	cr_assert(strstr(errbuf, n1), "\"%s\" not in %s", n1, errbuf);
	if (n2)
		cr_assert(strstr(errbuf, n2), "\"%s\" not in %s", n2, errbuf);
}

Test(config, bad_sets)
{
	set_fails("services.redis.port=-1", "--set services.redis.port: expected an integer",
		  "\"-1\"");
	set_fails("services.redis.prot=1", "--set services.redis.prot: unknown key",
		  "host, port, enabled, password, managed");
	set_fails("nokey", "--set nokey: expected key=value", NULL);
	set_fails("services.llm.enabled=sure", "--set services.llm.enabled", "true or false");
	set_fails("hosts.main=a b", "--set hosts.main", NULL);
	set_fails("hosts=x", "--set hosts", NULL);
	set_fails("security.allow_cidrs=10.0.0.0/8,garbage", "--set security.allow_cidrs",
		  "garbage");

	struct ab_config_src src = {.env_file = empty_env(), .state_dir = ""};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), AB_ECONFIG);
	cr_assert(strstr(errbuf, "--state-dir"), "%s", errbuf);
}

Test(config, secrets_not_echoed)
{
	yaml_fails("services:\n  redis:\n    password: \"a\\nb\"\n", ":3:",
		   "services.redis.password", "control characters");
	cr_assert_null(strstr(errbuf, "got"), "secret value echoed: %s", errbuf);
}

Test(config, small_error_buffer)
{
	char small[16];
	struct ab_config_src src = {.file = "/nonexistent/a-long-name.yaml"};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, small, sizeof(small)), AB_ECONFIG);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert_eq(ab_config_load(&src, &cfg, NULL, 0), AB_ECONFIG);
}

Test(config, json_redaction)
{
	struct ab_config *cfg = NULL;
	cr_assert_eq(load_yaml(full_yaml, NULL, &cfg), 0, "%s", errbuf);
	json_t *j = ab_config_to_json(cfg, true);
	char *text = json_dumps(j, JSON_COMPACT);
	cr_assert_null(strstr(text, "tok-123456"), "%s", text);
	cr_assert_null(strstr(text, "s3cret-pw"), "%s", text);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "cluster"),
							   "token")), "[redacted]");
	json_t *redis = json_object_get(json_object_get(j, "services"), "redis");
	cr_assert_str_eq(json_string_value(json_object_get(redis, "password")), "[redacted]");
	cr_assert_str_eq(json_string_value(json_object_get(redis, "host")), "store.example.org");
	cr_assert_str_eq(json_string_value(json_object_get(redis, "host_ref")), "store");
	cr_assert_eq(json_integer_value(json_object_get(redis, "port")), 6380);
	cr_assert(json_is_false(json_object_get(redis, "managed")));
	cr_assert(json_is_true(json_object_get(redis, "enabled")));
	cr_assert(strstr(json_string_value(json_object_get(j, "path")), "cfg.yaml"));
	json_t *t = json_object_get(j, "timeouts");
	cr_assert_eq(json_integer_value(json_object_get(t, "request_ms")), 10000);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "log"), "level")),
			 "debug");
	cr_assert_eq(json_array_size(json_object_get(json_object_get(j, "security"),
						     "allow_cidrs")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "hosts"), "gpu")),
			 "fd00::2");
	for (int r = 0; r < AB_ROLE__COUNT; r++)
		cr_assert_not_null(json_object_get(json_object_get(j, "services"),
						   ab_role_name((enum ab_role)r)));
	free(text);
	json_decref(j);

	j = ab_config_to_json(cfg, false);
	text = json_dumps(j, JSON_COMPACT);
	cr_assert(strstr(text, "tok-123456"));
	cr_assert(strstr(text, "s3cret-pw"));
	free(text);
	json_decref(j);
	ab_config_free(cfg);

	/* unset secrets stay "" so their absence is visible too */
	cfg = ab_config_default();
	j = ab_config_to_json(cfg, true);
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "cluster"),
							   "token")), "");
	cr_assert(json_is_null(json_object_get(j, "path")));
	json_decref(j);
	ab_config_free(cfg);
}

struct key_seen {
	int n;
	bool probe, redis_pw, state, token, hosts, coord_port;
};

static void on_key(void *ud, const char *key, const char *env, const char *type,
		   const char *help)
{
	struct key_seen *s = ud;
	s->n++;
	cr_assert_not_null(help);
	cr_assert_not_null(type);
	if (strcmp(key, "timeouts.probe_ms") == 0)
		s->probe = strcmp(env, "AUTOBOT_TIMEOUTS_PROBE_MS") == 0;
	if (strcmp(key, "services.redis.password") == 0)
		s->redis_pw = strcmp(env, "AUTOBOT_SERVICES_REDIS_PASSWORD") == 0 &&
			      strcmp(type, "secret") == 0;
	if (strcmp(key, "state_dir") == 0)
		s->state = strcmp(env, "AUTOBOT_STATE_DIR") == 0;
	if (strcmp(key, "cluster.token") == 0)
		s->token = strcmp(env, "AUTOBOT_CLUSTER_TOKEN") == 0;
	if (strcmp(key, "hosts.<name>") == 0)
		s->hosts = strcmp(env, "AUTOBOT_HOSTS_<NAME>") == 0;
	if (strcmp(key, "services.coordinator.port") == 0)
		s->coord_port = strcmp(env, "AUTOBOT_SERVICES_COORDINATOR_PORT") == 0;
}

Test(config, each_key_env_names)
{
	struct key_seen s = {0};
	ab_config_each_key(on_key, &s);
	/* 4 top + 8 roles x 3 + 3 redis + 4 llm service + 4 security + 4 timeouts
	 * + 9 llm + 10 kb + 9 deploy + 1 http + 4 log */
	cr_assert_eq(s.n, 76);
	cr_assert(s.probe);
	cr_assert(s.redis_pw);
	cr_assert(s.state);
	cr_assert(s.token);
	cr_assert(s.hosts);
	cr_assert(s.coord_port);
}

Test(config, distributed_yaml)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/config/distributed.yaml", AB_SOURCE_ROOT);
	char *envp[] = {"REDIS_PASSWORD=redis-pw-123", "AUTOBOT_CLUSTER_TOKEN=cluster-tok-1",
			NULL};
	struct ab_config_src src = {.file = path, .env_file = empty_env(), .environ = envp};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, errbuf, sizeof(errbuf)), 0, "%s", errbuf);
	static const char *want[AB_ROLE__COUNT] = {
		[AB_ROLE_COORDINATOR] = "172.16.168.20", [AB_ROLE_FRONTEND] = "172.16.168.21",
		[AB_ROLE_NPU] = "172.16.168.22",         [AB_ROLE_REDIS] = "172.16.168.23",
		[AB_ROLE_AI] = "172.16.168.24",          [AB_ROLE_BROWSER] = "172.16.168.25",
		[AB_ROLE_LLM] = "172.16.168.20",         [AB_ROLE_DESKTOP] = "172.16.168.20",
	};
	for (int r = 0; r < AB_ROLE__COUNT; r++) {
		cr_assert_str_eq(cfg->services[r].host, want[r], "role %d", r);
		cr_assert_eq(cfg->services[r].port, ab_role_default_port((enum ab_role)r));
		cr_assert(cfg->services[r].enabled, "role %d", r);
	}
	cr_assert_str_eq(cfg->services[AB_ROLE_REDIS].password, "redis-pw-123");
	cr_assert_not(cfg->services[AB_ROLE_REDIS].managed);
	cr_assert_str_eq(cfg->cluster_token, "cluster-tok-1");
	cr_assert_eq(cfg->n_allow, 2);
	cr_assert_str_eq(cfg->allow_cidrs[0], "172.16.168.0/24");
	cr_assert_eq(cfg->n_cors, 1);
	cr_assert_str_eq(cfg->cors_origins[0], "http://172.16.168.21:5173");
	cr_assert_eq(cfg->n_hosts, 6);
	ab_config_free(cfg);
}

Test(config, llm_provider_checked)
{
	char err[512];
	const char *sets[] = {"services.llm.provider=openai", "llm.keep_alive_s=60"};
	struct ab_config_src src = {.sets = sets, .n_sets = 2};
	struct ab_config *cfg = NULL;
	cr_assert_eq(ab_config_load(&src, &cfg, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(cfg->llm.provider, "openai");
	cr_assert_eq(cfg->llm.keep_alive_s, 60);
	cr_assert_eq(cfg->llm.num_ctx, 2048);
	ab_config_free(cfg);
	const char *bad[] = {"services.llm.provider=vllm"};
	struct ab_config_src src2 = {.sets = bad, .n_sets = 1};
	cr_assert_eq(ab_config_load(&src2, &cfg, err, sizeof(err)), AB_ECONFIG);
	cr_assert_not_null(strstr(err, "services.llm.provider"), "%s", err);
	cr_assert_not_null(strstr(err, "builtin, ollama or openai"), "%s", err);
}
