/*
 * curl_lazy.c - libcurl, loaded on first use.
 *
 * libcurl brings TLS, Kerberos, LDAP, SSH and compression libraries with
 * it: about 30 shared objects and 4 MiB of resident pages in a process
 * that may never make an outgoing request (an idle coordinator only
 * answers). So autobot is not linked against libcurl; instead this file
 * defines the curl functions AutoBot calls, and the first call dlopen()s
 * libcurl (the GnuTLS build if present, else libcurl.so.4) and resolves
 * the real ones. Callers use the ordinary curl
 * API. If libcurl is missing, curl_global_init() fails and
 * curl_easy_init()/curl_multi_init() return NULL, which callers already
 * treat as an error.
 *
 * curl_easy_setopt() and curl_easy_getinfo() are variadic; the type of
 * their one extra argument follows from the option number (libcurl's
 * CURLOPTTYPE_* and CURLINFO_* ranges), so it is read with that type and
 * passed on.
 */
#include "common.h"

/* the type-checking macros of curl.h would rename the definitions below */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_perform)(CURLM *, int *);
	CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_wakeup)(CURLM *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loaded;

#define RESOLVE(h, field, name)                                                \
	do {                                                                   \
		void *p_ = dlsym(h, name);                                     \
		if (!p_)                                                       \
			return;                                                \
		memcpy(&fn.field, &p_, sizeof(p_));                            \
	} while (0)

static void load(void)
{
	/* The GnuTLS build first: libmicrohttpd has GnuTLS loaded already,
	 * so it costs fewer new pages than the OpenSSL build. Same API. */
	void *h = dlopen("libcurl-gnutls.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "autobot: cannot load libcurl.so.4: %s\n", dlerror());
		return;
	}
	RESOLVE(h, global_init, "curl_global_init");
	RESOLVE(h, easy_init, "curl_easy_init");
	RESOLVE(h, easy_cleanup, "curl_easy_cleanup");
	RESOLVE(h, easy_perform, "curl_easy_perform");
	RESOLVE(h, easy_setopt, "curl_easy_setopt");
	RESOLVE(h, easy_getinfo, "curl_easy_getinfo");
	RESOLVE(h, easy_strerror, "curl_easy_strerror");
	RESOLVE(h, multi_init, "curl_multi_init");
	RESOLVE(h, multi_cleanup, "curl_multi_cleanup");
	RESOLVE(h, multi_add_handle, "curl_multi_add_handle");
	RESOLVE(h, multi_remove_handle, "curl_multi_remove_handle");
	RESOLVE(h, multi_perform, "curl_multi_perform");
	RESOLVE(h, multi_poll, "curl_multi_poll");
	RESOLVE(h, multi_info_read, "curl_multi_info_read");
	RESOLVE(h, multi_wakeup, "curl_multi_wakeup");
	RESOLVE(h, slist_append, "curl_slist_append");
	RESOLVE(h, slist_free_all, "curl_slist_free_all");
	/* once, here, so that no caller needs to (it is not thread-safe) */
	if (fn.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "autobot: libcurl failed to initialise\n");
		return;
	}
	loaded = true;
}

static bool ready(void)
{
	pthread_once(&once, load);
	return loaded;
}

/* Initialised once by load(); later calls only make sure of that. */
CURLcode curl_global_init(long flags)
{
	(void)flags;
	return ready() ? CURLE_OK : CURLE_FAILED_INIT;
}

/* Kept initialised until exit: other threads may still use curl. */
void curl_global_cleanup(void)
{
}

CURL *curl_easy_init(void)
{
	return ready() ? fn.easy_init() : NULL;
}

void curl_easy_cleanup(CURL *c)
{
	if (loaded && c)
		fn.easy_cleanup(c);
}

CURLcode curl_easy_perform(CURL *c)
{
	return ready() ? fn.easy_perform(c) : CURLE_FAILED_INIT;
}

CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	if (!ready())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, opt);
	CURLcode rc;
	if (opt < CURLOPTTYPE_OBJECTPOINT) {
		long v = va_arg(ap, long);
		rc = fn.easy_setopt(c, opt, v);
	} else if (opt < CURLOPTTYPE_OFF_T) {
		/* data and function pointers travel alike through varargs here */
		void *v = va_arg(ap, void *);
		rc = fn.easy_setopt(c, opt, v);
	} else if (opt < CURLOPTTYPE_BLOB) {
		curl_off_t v = va_arg(ap, curl_off_t);
		rc = fn.easy_setopt(c, opt, v);
	} else {
		void *v = va_arg(ap, void *);
		rc = fn.easy_setopt(c, opt, v);
	}
	va_end(ap);
	return rc;
}

CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	if (!ready())
		return CURLE_FAILED_INIT;
	va_list ap;
	va_start(ap, info);
	void *p = va_arg(ap, void *); /* always a pointer to the result */
	va_end(ap);
	return fn.easy_getinfo(c, info, p);
}

const char *curl_easy_strerror(CURLcode code)
{
	return ready() ? fn.easy_strerror(code) : "libcurl is not available";
}

CURLM *curl_multi_init(void)
{
	return ready() ? fn.multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *m)
{
	return loaded ? fn.multi_cleanup(m) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
	return ready() ? fn.multi_add_handle(m, c) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
	return ready() ? fn.multi_remove_handle(m, c) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_perform(CURLM *m, int *running)
{
	return ready() ? fn.multi_perform(m, running) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *extra, unsigned int n, int timeout_ms,
			  int *numfds)
{
	return ready() ? fn.multi_poll(m, extra, n, timeout_ms, numfds) : CURLM_BAD_HANDLE;
}

CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
	return ready() ? fn.multi_info_read(m, left) : NULL;
}

CURLMcode curl_multi_wakeup(CURLM *m)
{
	return ready() ? fn.multi_wakeup(m) : CURLM_BAD_HANDLE;
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	return ready() ? fn.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
	if (loaded)
		fn.slist_free_all(l);
}
