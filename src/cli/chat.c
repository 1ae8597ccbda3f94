/*
 * chat.c - `autobot chat`: talk to the cluster's LLM through the
 * coordinator's chat sessions, from a terminal. Answers stream token by
 * token (server-sent events read as they arrive).
 */
#include "cli.h"

#include "log.h"
#include "secrets.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: autobot chat [--session ID] [--model M] [PROMPT] [options]\n"
		"\n"
		"Sends PROMPT to a chat session of the coordinator and prints the answer\n"
		"as it streams. Without --session a new session is made (its id goes to\n"
		"stderr). Without PROMPT, reads one message per line until end of input.\n"
		"The token is $AUTOBOT_TOKEN or <state_dir>/admin.token.\n"
		"\noptions:\n%s"
		"  --session ID       continue this session\n"
		"  --model M          model for a new session (default services.llm.model)\n"
		"  --system TEXT      system prompt for a new session\n"
		"  -h, --help         this text\n",
		ab_cli_common_help);
}

struct stream_state {
	struct ab_buf buf;
	int events;
	bool done;
	char error[512];
};

static void on_event(struct stream_state *s, const char *ev, const char *data)
{
	json_t *d = json_loads(data, 0, NULL);
	if (!strcmp(ev, "token")) {
		const char *c = json_string_value(json_object_get(d, "content"));
		if (c) {
			fputs(c, stdout);
			fflush(stdout);
		}
	} else if (!strcmp(ev, "done")) {
		s->done = true;
		const char *e = json_string_value(json_object_get(d, "error"));
		if (e)
			snprintf(s->error, sizeof(s->error), "%s", e);
	} else if (!strcmp(ev, "error")) {
		const char *e = json_string_value(json_object_get(d, "error"));
		snprintf(s->error, sizeof(s->error), "%s", e ? e : data);
	}
	s->events++;
	json_decref(d);
}

static size_t on_sse(char *p, size_t size, size_t nmemb, void *ud)
{
	struct stream_state *s = ud;
	size_t n = size * nmemb;
	ab_buf_append(&s->buf, p, n);
	char *end;
	while (s->buf.data && (end = strstr(s->buf.data, "\n\n")) != NULL) {
		*end = '\0';
		char ev[32] = "";
		const char *data = "";
		for (char *line = strtok(s->buf.data, "\n"); line; line = strtok(NULL, "\n")) {
			if (!strncmp(line, "event: ", 7))
				snprintf(ev, sizeof(ev), "%s", line + 7);
			else if (!strncmp(line, "data: ", 6))
				data = line + 6;
		}
		if (ev[0])
			on_event(s, ev, data);
		size_t used = (size_t)(end - s->buf.data) + 2;
		memmove(s->buf.data, s->buf.data + used, s->buf.len - used);
		s->buf.len -= used;
		s->buf.data[s->buf.len] = '\0';
	}
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	ab_buf_append(ud, p, size * nmemb);
	return size * nmemb;
}

/* POSTs json to url; with sse, streams events, else collects the body. */
static long post(const char *url, const char *token, const char *json, bool sse,
		 struct ab_buf *body, struct stream_state *st)
{
	CURL *c = curl_easy_init();
	if (!c)
		return -1;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char *auth = ab_xasprintf("Authorization: Bearer %s", token);
	h = curl_slist_append(h, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	if (sse) {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
	} else {
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	}
	long status = -1;
	CURLcode rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		fprintf(stderr, "autobot chat: %s: %s\n", url, curl_easy_strerror(rc));
	curl_slist_free_all(h);
	free(auth);
	curl_easy_cleanup(c);
	return status;
}

static int send_message(const char *base, const char *token, const char *sid, const char *text)
{
	char *url = ab_xasprintf("%s/api/chat/sessions/%s/messages", base, sid);
	json_t *j = json_pack("{s:s}", "content", text);
	char *body = json_dumps(j, JSON_COMPACT);
	struct stream_state st;
	memset(&st, 0, sizeof(st));
	long status = post(url, token, body, true, NULL, &st);
	int rc = 0;
	if (status != 200) {
		fprintf(stderr, "autobot chat: the coordinator answered %ld: %s\n", status,
			st.buf.data ? st.buf.data : "");
		rc = 1;
	} else if (st.error[0]) {
		fprintf(stderr, "\nautobot chat: %s\n", st.error);
		rc = 1;
	} else if (!st.done) {
		fprintf(stderr, "\nautobot chat: the answer ended early\n");
		rc = 1;
	}
	printf("\n");
	ab_buf_free(&st.buf);
	free(body);
	json_decref(j);
	free(url);
	return rc;
}

int ab_cmd_chat(int argc, char **argv)
{
	struct ab_cli_common co = {0};
	const char *session = NULL, *model = NULL, *system = NULL, *pos[1];
	size_t n_pos = 0;
	const struct ab_cli_opt opts[] = {
		{"--session", NULL, &session},
		{"--model", NULL, &model},
		{"--system", NULL, &system},
		{NULL, NULL, NULL},
	};
	int pr = ab_cli_parse(argc, argv, "chat", &co, opts, pos, 1, &n_pos, usage);
	if (pr != 0)
		return pr > 0 ? 0 : AB_EXIT_USAGE;
	struct ab_config *cfg = ab_cli_load_config(&co);
	if (!cfg)
		return 1;
	ab_log_init("cli", AB_LOG_ERROR, false);
	int rc = 1;
	char token[256] = "";
	const char *envtok = getenv("AUTOBOT_TOKEN");
	char *base = ab_config_service_url(cfg, AB_ROLE_COORDINATOR);
	char *sid = session ? ab_xstrdup(session) : NULL;
	if (envtok && *envtok) {
		ab_strlcpy(token, envtok, sizeof(token));
	} else {
		char *p = ab_xasprintf("%s/admin.token", cfg->state_dir);
		int e = ab_secrets_read_file(p, token, sizeof(token));
		if (e < 0) {
			fprintf(stderr, "autobot chat: no token: set AUTOBOT_TOKEN or make %s readable (%s)\n",
				p, ab_strerror(e));
			free(p);
			goto out;
		}
		free(p);
	}
	if (!sid) {
		json_t *j = json_pack("{s:s?,s:s?,s:s}", "model", model, "system", system, "title",
				      n_pos ? pos[0] : "autobot chat");
		char *body = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		char *url = ab_xasprintf("%s/api/chat/sessions", base);
		struct ab_buf out = {0};
		long st = post(url, token, body, false, &out, NULL);
		free(url);
		free(body);
		json_t *s = out.data ? json_loads(out.data, 0, NULL) : NULL;
		const char *id = json_string_value(json_object_get(s, "id"));
		if (st != 201 || !id) {
			fprintf(stderr, "autobot chat: cannot create a session (%ld): %s\n", st,
				out.data ? out.data : "");
			json_decref(s);
			ab_buf_free(&out);
			goto out;
		}
		sid = ab_xstrdup(id);
		fprintf(stderr, "session %s\n", sid);
		json_decref(s);
		ab_buf_free(&out);
	}
	if (n_pos) {
		rc = send_message(base, token, sid, pos[0]);
		goto out;
	}
	char line[16384];
	bool tty = isatty(0);
	rc = 0;
	for (;;) {
		if (tty) {
			fputs("> ", stdout);
			fflush(stdout);
		}
		if (!fgets(line, sizeof(line), stdin))
			break;
		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		if (send_message(base, token, sid, line) != 0)
			rc = 1;
	}
out:
	free(sid);
	free(base);
	ab_config_free(cfg);
	return rc;
}
