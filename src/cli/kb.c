/*
 * kb.c - `autobot kb`: the knowledge base from a terminal.
 *
 *   kb add PATH... [--tags a,b] [--title T] [--no-wait]
 *       uploads files (folders recursively: .txt .md .markdown .html .htm
 *       .pdf) to the coordinator, then follows their ingestion jobs, with a
 *       progress bar on a terminal;
 *   kb search QUERY [--k N] [--mode hybrid|bm25|vector] [--json]
 *   kb rm ID...
 *   kb eval DIR [--json] [--redis HOST:PORT] [--password PW]
 *       a BEIR-layout collection (corpus.jsonl, queries.jsonl,
 *       qrels/test.tsv) ingested into a fresh index of its own (a private
 *       redis-server with autobot.so on a free 127.0.0.1 port, unless
 *       --redis names a running one), every judged query run in each mode,
 *       and nDCG@10, MAP (top 1000) and Recall@100 printed.
 *
 * add/search/rm talk to the coordinator's API with the admin token, like
 * `autobot chat`; eval runs the knowledge-base code in this process.
 */
#include "cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "config.h"
#include "dict.h"
#include "httpc.h"
#include "kb.h"
#include "log.h"
#include "redis.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot kb add PATH... [--tags a,b] [--title T] [--no-wait]\n"
		"       autobot kb search QUERY [--k N] [--mode hybrid|bm25|vector] [--json]\n"
		"       autobot kb rm ID...\n"
		"       autobot kb eval DIR [--json] [--redis HOST:PORT] [--password PW]\n"
		"\n"
		"add uploads files (folders recursively: .txt .md .html .pdf) to the coordinator and\n"
		"follows their indexing; search and rm use the same API. eval ingests a BEIR-layout\n"
		"folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) into a private redis-server\n"
		"with autobot.so and prints nDCG@10, MAP and Recall@100 for each search mode.\n"
		"The token is $AUTOBOT_TOKEN or <state_dir>/admin.token.\n"
		"Common options: --config FILE, --env-file FILE, --set key=value, --state-dir DIR\n");
}

/* ---- talking to the coordinator ----------------------------------------- */

struct api {
	char *base;
	char token[256];
};

static long call(struct api *a, const char *method, const char *path, const char *ctype,
		 const char *body, size_t body_len, json_t **out)
{
	char *url = ab_xasprintf("%s%s", a->base, path);
	char *auth = ab_xasprintf("Authorization: Bearer %s", a->token);
	char *ct = ctype ? ab_xasprintf("Content-Type: %s", ctype) : NULL;
	const char *headers[] = {auth, ct, NULL};
	struct ab_httpc_req r = {.method = method, .url = url, .body = body, .body_len = body_len,
				 .headers = headers, .timeout_ms = 120000, .connect_timeout_ms = 3000};
	int rc = ab_httpc_run(&r, 1);
	long st = rc < 0 ? -1 : r.status;
	if (rc < 0)
		fprintf(stderr, "autobot kb: %s: %s\n", url, ab_strerror(rc));
	if (out)
		*out = r.resp ? json_loads(r.resp, 0, NULL) : NULL;
	ab_httpc_req_clear(&r);
	free(url);
	free(auth);
	free(ct);
	return st;
}

static const char *api_error(const json_t *j)
{
	const char *m = json_string_value(json_object_get(j, "message"));
	if (!m)
		m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	if (!m)
		m = json_string_value(json_object_get(j, "error"));
	return m ? m : "no details";
}

static bool supported(const char *name)
{
	const char *dot = strrchr(name, '.');
	static const char *const ext[] = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".text"};
	for (size_t i = 0; dot && i < sizeof(ext) / sizeof(ext[0]); i++)
		if (!strcasecmp(dot, ext[i]))
			return true;
	return false;
}

/* Collects files: named files always, folder contents by extension. */
static void collect(const char *path, bool named, char ***files, size_t *n)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		fprintf(stderr, "autobot kb: %s: %s\n", path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		if (!d) {
			fprintf(stderr, "autobot kb: %s: %s\n", path, strerror(errno));
			return;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char *sub = ab_xasprintf("%s/%s", path, e->d_name);
			collect(sub, false, files, n);
			free(sub);
		}
		closedir(d);
	} else if (S_ISREG(st.st_mode) && (named || supported(path))) {
		*files = ab_xrealloc(*files, (*n + 1) * sizeof(char *));
		(*files)[(*n)++] = ab_xstrdup(path);
	}
}

static int read_file(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	struct ab_buf b;
	ab_buf_init(&b);
	char tmp[65536];
	size_t got;
	while ((got = fread(tmp, 1, sizeof(tmp), f)) > 0)
		ab_buf_append(&b, tmp, got);
	int rc = ferror(f) ? -EIO : 0;
	fclose(f);
	*len = b.len;
	*data = ab_buf_steal(&b);
	return rc;
}

static void part(struct ab_buf *b, const char *boundary, const char *name, const char *filename,
		 const char *data, size_t len)
{
	ab_buf_printf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, name);
	if (filename) {
		ab_buf_puts(b, "; filename=\"");
		for (const char *p = filename; *p; p++)
			if (*p != '"' && *p != '\r' && *p != '\n')
				ab_buf_putc(b, *p);
		ab_buf_puts(b, "\"\r\nContent-Type: application/octet-stream");
	}
	ab_buf_puts(b, "\r\n\r\n");
	ab_buf_append(b, data, len);
	ab_buf_puts(b, "\r\n");
}

static void bar(bool tty, size_t done, size_t total, const char *what)
{
	if (!tty)
		return;
	int w = 30, fill = total ? (int)(w * done / total) : w;
	fprintf(stderr, "\r[%.*s%*s] %zu/%zu %-40.40s", fill, "==============================", w - fill,
		"", done, total, what);
	fflush(stderr);
}

static int kb_add(struct api *a, const char *const *paths, size_t npaths, const char *tags,
		  const char *title, bool wait)
{
	char **files = NULL;
	size_t n = 0;
	for (size_t i = 0; i < npaths; i++)
		collect(paths[i], true, &files, &n);
	if (!n) {
		fprintf(stderr, "autobot kb add: no files to add\n");
		return 1;
	}
	bool tty = isatty(2);
	char **jobs = ab_xcalloc(n, sizeof(char *));
	int failures = 0;
	for (size_t i = 0; i < n; i++) {
		bar(tty, i, n, files[i]);
		char *data;
		size_t len;
		int rc = read_file(files[i], &data, &len);
		if (rc < 0) {
			fprintf(stderr, "%sautobot kb add: %s: %s\n", tty ? "\n" : "", files[i], ab_strerror(rc));
			failures++;
			continue;
		}
		char boundary[40] = "ab-";
		ab_random_hex(boundary + 3, 12);
		struct ab_buf body;
		ab_buf_init(&body);
		const char *base = strrchr(files[i], '/');
		part(&body, boundary, "file", base ? base + 1 : files[i], data, len);
		part(&body, boundary, "source", NULL, files[i], strlen(files[i]));
		if (tags)
			part(&body, boundary, "tags", NULL, tags, strlen(tags));
		if (title && n == 1)
			part(&body, boundary, "title", NULL, title, strlen(title));
		ab_buf_printf(&body, "--%s--\r\n", boundary);
		free(data);
		char *ct = ab_xasprintf("multipart/form-data; boundary=%s", boundary);
		json_t *out = NULL;
		long st = call(a, "POST", "/api/knowledge/documents", ct, body.data, body.len, &out);
		free(ct);
		ab_buf_free(&body);
		if (st == 200 || st == 202) {
			const char *id = json_string_value(json_object_get(out, "id"));
			const char *job = json_string_value(json_object_get(out, "job"));
			if (!tty || st == 200)
				printf("%s %s%s\n", id ? id : "?", files[i],
				       st == 200 ? " (already there)" : "");
			if (st == 202 && job)
				jobs[i] = ab_xstrdup(job);
		} else {
			fprintf(stderr, "%sautobot kb add: %s: %ld %s\n", tty ? "\n" : "", files[i], st,
				api_error(out));
			failures++;
		}
		json_decref(out);
	}
	bar(tty, n, n, "uploaded");
	if (wait) {
		/* follow the jobs until each ends */
		size_t pending = 0;
		for (size_t i = 0; i < n; i++)
			pending += jobs[i] != NULL;
		size_t total = pending, finished = 0;
		int64_t deadline = ab_now_ms() + 3600 * 1000;
		while (pending && ab_now_ms() < deadline) {
			for (size_t i = 0; i < n; i++) {
				if (!jobs[i])
					continue;
				char *path = ab_xasprintf("/api/jobs/%s", jobs[i]);
				json_t *j = NULL;
				long st = call(a, "GET", path, NULL, NULL, 0, &j);
				free(path);
				const char *state = json_string_value(json_object_get(j, "state"));
				if (st == 200 && state &&
				    (!strcmp(state, "done") || !strcmp(state, "failed") ||
				     !strcmp(state, "cancelled"))) {
					finished++;
					pending--;
					if (strcmp(state, "done")) {
						failures++;
						fprintf(stderr, "%sautobot kb add: %s: %s: %s\n", tty ? "\n" : "",
							files[i], state,
							json_string_value(json_object_get(j, "error"))
								? json_string_value(json_object_get(j, "error"))
								: "");
					} else if (tty) {
						/* printed on the bar line otherwise */
					}
					free(jobs[i]);
					jobs[i] = NULL;
				}
				json_decref(j);
			}
			bar(tty, finished, total, "indexed");
			if (pending)
				ab_sleep_ms(300);
		}
	}
	if (tty)
		fputc('\n', stderr);
	for (size_t i = 0; i < n; i++) {
		free(files[i]);
		free(jobs[i]);
	}
	free(files);
	free(jobs);
	fprintf(stderr, "%zu file(s), %d failed\n", n, failures);
	return failures ? 1 : 0;
}

static int kb_search(struct api *a, const char *query, long long k, const char *mode, bool as_json)
{
	json_t *q = json_pack("{s:s, s:I, s:s}", "query", query, "k", (json_int_t)k, "mode",
			      mode ? mode : "hybrid");
	char *body = json_dumps(q, JSON_COMPACT);
	json_decref(q);
	json_t *out = NULL;
	long st = call(a, "POST", "/api/knowledge/search", "application/json", body, strlen(body), &out);
	free(body);
	if (st != 200) {
		fprintf(stderr, "autobot kb search: %ld %s\n", st, api_error(out));
		json_decref(out);
		return 1;
	}
	if (as_json) {
		char *s = json_dumps(out, JSON_INDENT(2));
		puts(s);
		free(s);
	} else {
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(out, "results"), i, r) {
			printf("%zu. %.4f  %s  %s (chunk %lld, page %lld)\n", i + 1,
			       json_number_value(json_object_get(r, "score")),
			       json_string_value(json_object_get(r, "doc_id")),
			       json_string_value(json_object_get(r, "title")),
			       (long long)json_integer_value(json_object_get(r, "chunk")),
			       (long long)json_integer_value(json_object_get(r, "page")));
			const char *t = json_string_value(json_object_get(r, "text"));
			if (t)
				printf("   %.200s%s\n", t, strlen(t) > 200 ? "..." : "");
		}
	}
	json_decref(out);
	return 0;
}

static int kb_rm(struct api *a, const char *const *ids, size_t n)
{
	int fails = 0;
	for (size_t i = 0; i < n; i++) {
		char *path = ab_xasprintf("/api/knowledge/documents/%s", ids[i]);
		json_t *out = NULL;
		long st = call(a, "DELETE", path, NULL, NULL, 0, &out);
		free(path);
		if (st == 204) {
			printf("removed %s\n", ids[i]);
		} else {
			fprintf(stderr, "autobot kb rm: %s: %ld %s\n", ids[i], st, api_error(out));
			fails++;
		}
		json_decref(out);
	}
	return fails ? 1 : 0;
}

/* ---- eval --------------------------------------------------------------- */

struct qrel {
	char *qid;
	struct ab_dict *rel; /* corpus id -> (void *)1 */
};

static json_t *read_jsonl(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	json_t *arr = json_array();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		json_t *j = json_loadb(line, (size_t)len, 0, NULL);
		if (json_is_object(j))
			json_array_append_new(arr, j);
		else
			json_decref(j);
	}
	free(line);
	fclose(f);
	*n = json_array_size(arr);
	return arr;
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof(a);
	int port = -1;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

/* Starts redis-server with the module on a free port; *pid and *port set. */
static int private_redis(const struct ab_config *cfg, const char *dir, pid_t *pid, int *port)
{
	char module[PATH_MAX];
	if (ab_cli_module_path(cfg, module, sizeof(module)) < 0 || !module[0]) {
		fprintf(stderr, "autobot kb eval: autobot.so not found (build it, or set "
				"services.redis.module)\n");
		return -1;
	}
	*port = free_port();
	if (*port <= 0)
		return -1;
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", *port);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (*pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("redis-server", "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save",
		       "", "--appendonly", "no", "--dir", dir, "--loadmodule", module, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		double ms;
		char err[128];
		if (ab_redis_probe("127.0.0.1", *port, NULL, 200, &ms, err, sizeof(err)) == 0)
			return 0;
		int st;
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			fprintf(stderr, "autobot kb eval: redis-server exited (is it installed?)\n");
			return -1;
		}
		ab_sleep_ms(50);
	}
	fprintf(stderr, "autobot kb eval: redis-server did not start\n");
	return -1;
}

struct metrics {
	double ndcg10, map, recall100;
};

static void score_query(const char *const *ranked, size_t n, const struct ab_dict *rel,
			struct metrics *m)
{
	size_t nrel = ab_dict_count(rel);
	double dcg = 0, idcg = 0, ap = 0;
	size_t hits = 0, hits100 = 0;
	for (size_t i = 0; i < n && i < 1000; i++) {
		bool r = ab_dict_get(rel, ranked[i], strlen(ranked[i])) != NULL;
		if (!r)
			continue;
		hits++;
		if (i < 10)
			dcg += 1.0 / log2((double)i + 2.0);
		if (i < 100)
			hits100++;
		ap += (double)hits / (double)(i + 1);
	}
	for (size_t i = 0; i < nrel && i < 10; i++)
		idcg += 1.0 / log2((double)i + 2.0);
	m->ndcg10 = idcg > 0 ? dcg / idcg : 0;
	m->map = nrel ? ap / (double)nrel : 0;
	m->recall100 = nrel ? (double)hits100 / (double)nrel : 0;
}

static int kb_eval(const struct ab_config *cfg, const char *dir, bool as_json, const char *redis_at,
		   const char *password)
{
	int rc = 1;
	pid_t pid = -1;
	char tmp[] = "/tmp/autobot-kbeval-XXXXXX";
	bool have_tmp = false;
	struct ab_redis *r = NULL;
	struct ab_kb *kb = NULL;
	json_t *corpus = NULL, *queries = NULL;
	struct qrel *qrels = NULL;
	size_t nq = 0, ndocs = 0, nqueries = 0;
	struct ab_dict *qindex = ab_dict_new();
	char **docids = NULL;
	char *p = ab_xasprintf("%s/corpus.jsonl", dir);
	corpus = read_jsonl(p, &ndocs);
	free(p);
	p = ab_xasprintf("%s/queries.jsonl", dir);
	queries = read_jsonl(p, &nqueries);
	free(p);
	p = ab_xasprintf("%s/qrels/test.tsv", dir);
	FILE *qf = fopen(p, "r");
	if (!corpus || !queries || !qf) {
		fprintf(stderr, "autobot kb eval: %s is not a BEIR folder (corpus.jsonl, queries.jsonl, "
				"qrels/test.tsv)\n", dir);
		free(p);
		if (qf)
			fclose(qf);
		goto out;
	}
	free(p);
	char *line = NULL;
	size_t cap = 0;
	bool header = true;
	while (getline(&line, &cap, qf) > 0) {
		char *save = NULL;
		char *qid = strtok_r(line, "\t\r\n", &save);
		char *cid = strtok_r(NULL, "\t\r\n", &save);
		char *sc = strtok_r(NULL, "\t\r\n", &save);
		if (header) {
			header = false;
			if (sc && !strcmp(sc, "score"))
				continue;
		}
		if (!qid || !cid || !sc || atof(sc) <= 0)
			continue;
		struct qrel *q = ab_dict_get(qindex, qid, strlen(qid));
		if (!q) {
			qrels = ab_xrealloc(qrels, (nq + 1) * sizeof(*qrels));
			/* the dict borrows keys: re-point every entry after realloc */
			q = &qrels[nq++];
			q->qid = ab_xstrdup(qid);
			q->rel = ab_dict_new();
			ab_dict_free(qindex, NULL);
			qindex = ab_dict_new();
			for (size_t i = 0; i < nq; i++)
				ab_dict_set(qindex, qrels[i].qid, strlen(qrels[i].qid), &qrels[i]);
		}
		if (!ab_dict_get(q->rel, cid, strlen(cid))) {
			char *c = ab_xstrdup(cid);
			ab_dict_set(q->rel, c, strlen(c), c);
		}
	}
	free(line);
	fclose(qf);

	/* the index */
	char host[256] = "127.0.0.1";
	int port = 0;
	if (redis_at) {
		const char *colon = strrchr(redis_at, ':');
		if (!colon || colon == redis_at || (size_t)(colon - redis_at) >= sizeof(host) ||
		    (port = atoi(colon + 1)) <= 0) {
			fprintf(stderr, "autobot kb eval: --redis HOST:PORT\n");
			goto out;
		}
		memcpy(host, redis_at, (size_t)(colon - redis_at));
		host[colon - redis_at] = '\0';
	} else {
		if (!mkdtemp(tmp)) {
			perror("autobot kb eval: mkdtemp");
			goto out;
		}
		have_tmp = true;
		if (private_redis(cfg, tmp, &pid, &port) < 0)
			goto out;
	}
	struct ab_redis_opts ro = {.host = host, .port = port, .password = password,
				   .command_timeout_ms = 30000, .pool_size = 2};
	if (ab_redis_new(&ro, &r) < 0)
		goto out;
	for (int i = 0; i < 100 && !ab_redis_is_up(r); i++)
		ab_sleep_ms(50);
	if (!ab_redis_is_up(r)) {
		fprintf(stderr, "autobot kb eval: cannot reach redis at %s:%d\n", host, port);
		goto out;
	}
	struct ab_kb_opts ko = {.embedder = "builtin", .chunk_tokens = cfg->kb.chunk_tokens,
				.chunk_overlap = cfg->kb.chunk_overlap};
	if (ab_kb_new(r, &ko, &kb) < 0)
		goto out;
	const char *name = strrchr(dir, '/');
	name = name && name[1] ? name + 1 : dir;
	int64_t t0 = ab_now_ms();
	docids = ab_xcalloc(ndocs ? ndocs : 1, sizeof(char *));
	struct ab_dict *back = ab_dict_new(); /* our id -> BEIR id */
	bool tty = isatty(2) && !as_json;
	for (size_t i = 0; i < ndocs; i++) {
		json_t *d = json_array_get(corpus, i);
		const char *cid = json_string_value(json_object_get(d, "_id"));
		const char *title = json_string_value(json_object_get(d, "title"));
		const char *text = json_string_value(json_object_get(d, "text"));
		if (!cid || !text)
			continue;
		char id[32];
		snprintf(id, sizeof(id), "e%zu", i);
		docids[i] = ab_xstrdup(id);
		ab_dict_set(back, docids[i], strlen(docids[i]), (void *)cid);
		/* an empty text still gets its title indexed */
		char *body = text[0] ? NULL : ab_xstrdup(title && title[0] ? title : "(empty)");
		struct ab_kb_doc_in in = {.id = id, .title = title ? title : "", .mime = "text/plain",
					  .data = body ? body : text, .len = strlen(body ? body : text),
					  .source = cid};
		char err[256];
		json_t *out = NULL;
		int e = ab_kb_add(kb, &in, false, &out, err, sizeof(err));
		json_decref(out);
		if (e == 0)
			e = ab_kb_index(kb, id, NULL, NULL, NULL, err, sizeof(err));
		free(body);
		if (e < 0 && e != AB_EINVAL) {
			fprintf(stderr, "autobot kb eval: %s: %s\n", cid, err[0] ? err : ab_strerror(e));
			goto out_back;
		}
		if (tty && i % 50 == 0)
			bar(true, i, ndocs, "ingesting");
	}
	if (tty)
		fputc('\n', stderr);
	int64_t t_ingest = ab_now_ms() - t0;
	static const char *const modes[] = {"hybrid", "bm25", "vector"};
	struct metrics sum[3] = {{0}};
	size_t judged = 0;
	t0 = ab_now_ms();
	for (size_t qi = 0; qi < nqueries; qi++) {
		json_t *q = json_array_get(queries, qi);
		const char *qid = json_string_value(json_object_get(q, "_id"));
		const char *text = json_string_value(json_object_get(q, "text"));
		struct qrel *qr = qid ? ab_dict_get(qindex, qid, strlen(qid)) : NULL;
		if (!qr || !text || !text[0])
			continue;
		judged++;
		for (int m = 0; m < 3; m++) {
			struct ab_kb_query kq = {.text = text, .k = 1000, .mode = (enum ab_kb_mode)m,
						 .per_document = true, .ids_only = true};
			json_t *out = NULL;
			char err[256];
			int e = ab_kb_search(kb, &kq, &out, err, sizeof(err));
			if (e < 0) {
				fprintf(stderr, "autobot kb eval: query %s: %s\n", qid, err);
				goto out_back;
			}
			json_t *res = json_object_get(out, "results");
			size_t n = json_array_size(res);
			const char **ranked = ab_xcalloc(n ? n : 1, sizeof(char *));
			for (size_t k = 0; k < n; k++) {
				const char *did = json_string_value(json_object_get(json_array_get(res, k), "doc_id"));
				const char *orig = did ? ab_dict_get(back, did, strlen(did)) : NULL;
				ranked[k] = orig ? orig : "";
			}
			struct metrics mm;
			score_query(ranked, n, qr->rel, &mm);
			sum[m].ndcg10 += mm.ndcg10;
			sum[m].map += mm.map;
			sum[m].recall100 += mm.recall100;
			free(ranked);
			json_decref(out);
		}
	}
	int64_t t_query = ab_now_ms() - t0;
	if (!judged) {
		fprintf(stderr, "autobot kb eval: no judged queries\n");
		goto out_back;
	}
	if (as_json) {
		json_t *mj = json_object();
		for (int m = 0; m < 3; m++)
			json_object_set_new(mj, modes[m],
					    json_pack("{s:f, s:f, s:f}", "ndcg@10", sum[m].ndcg10 / judged,
						      "map", sum[m].map / judged, "recall@100",
						      sum[m].recall100 / judged));
		json_t *o = json_pack("{s:s, s:I, s:I, s:o, s:I, s:I}", "collection", name, "docs",
				      (json_int_t)ndocs, "queries", (json_int_t)judged, "modes", mj,
				      "ingest_ms", (json_int_t)t_ingest, "search_ms", (json_int_t)t_query);
		char *s = json_dumps(o, JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(o);
	} else {
		printf("%s: %zu documents, %zu judged queries (ingest %.1f s, %zu x 3 searches %.1f s)\n",
		       name, ndocs, judged, t_ingest / 1000.0, judged, t_query / 1000.0);
		printf("%-8s %8s %8s %10s\n", "mode", "nDCG@10", "MAP", "Recall@100");
		for (int m = 0; m < 3; m++)
			printf("%-8s %8.4f %8.4f %10.4f\n", modes[m], sum[m].ndcg10 / judged,
			       sum[m].map / judged, sum[m].recall100 / judged);
	}
	rc = 0;
out_back:
	ab_dict_free(back, NULL);
out:
	ab_kb_free(kb);
	ab_redis_free(r);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (have_tmp) {
		char *cmd = ab_xasprintf("%s/dump.rdb", tmp);
		unlink(cmd);
		free(cmd);
		rmdir(tmp);
	}
	for (size_t i = 0; docids && i < ndocs; i++)
		free(docids[i]);
	free(docids);
	for (size_t i = 0; i < nq; i++) {
		free(qrels[i].qid);
		ab_dict_free(qrels[i].rel, free);
	}
	free(qrels);
	ab_dict_free(qindex, NULL);
	json_decref(corpus);
	json_decref(queries);
	return rc;
}

int ab_cmd_kb(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? AB_EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	struct ab_cli_common co = {0};
	const char *tags = NULL, *title = NULL, *k = NULL, *mode = NULL, *redis_at = NULL,
		   *password = NULL, *pos[256];
	bool nowait = false, as_json = false;
	size_t n_pos = 0;
	const struct ab_cli_opt opts[] = {
		{"--tags", NULL, &tags},       {"--title", NULL, &title}, {"--no-wait", &nowait, NULL},
		{"--k", NULL, &k},             {"--mode", NULL, &mode},   {"--json", &as_json, NULL},
		{"--redis", NULL, &redis_at},  {"--password", NULL, &password},
		{NULL, NULL, NULL},
	};
	char cmd[32];
	snprintf(cmd, sizeof(cmd), "kb %s", sub);
	int pr = ab_cli_parse(argc - 1, argv + 1, cmd, &co, opts, pos, 256, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	ab_log_init("cli", AB_LOG_ERROR, false);
	ab_httpc_global_init();
	int rc = AB_EXIT_USAGE;
	if (!strcmp(sub, "eval")) {
		if (n_pos != 1) {
			usage(stderr);
			goto out;
		}
		rc = kb_eval(cfg, pos[0], as_json, redis_at, password);
		goto out;
	}
	struct api a = {.base = ab_config_service_url(cfg, AB_ROLE_COORDINATOR)};
	if (ab_cli_token(cfg, cmd, a.token, sizeof(a.token)) < 0) {
		free(a.base);
		rc = 1;
		goto out;
	}
	long long kk = 5;
	if (!strcmp(sub, "add") && n_pos >= 1) {
		rc = kb_add(&a, pos, n_pos, tags, title, !nowait);
	} else if (!strcmp(sub, "search") && n_pos == 1) {
		if (k && ab_cli_int(cmd, "--k", k, 1, 1000, &kk) < 0)
			rc = AB_EXIT_USAGE;
		else
			rc = kb_search(&a, pos[0], kk, mode, as_json);
	} else if (!strcmp(sub, "rm") && n_pos >= 1) {
		rc = kb_rm(&a, pos, n_pos);
	} else {
		usage(stderr);
	}
	free(a.base);
out:
	ab_config_free(cfg);
	return rc;
}
