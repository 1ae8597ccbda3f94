/*
 * module.h - what the parts of autobot.so share: the search thread pool,
 * argument helpers, and each part's registration function.
 */
#ifndef AB_REDISMOD_MODULE_H
#define AB_REDISMOD_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rmapi.h"

/* Runs fn(arg) on one of the module's search threads. Never blocks. */
void ab_rm_pool_submit(void (*fn)(void *arg), void *arg);

/* True when the calling client may be blocked (not in MULTI, Lua, or a
 * module's RM_Call) and threads are on. */
bool ab_rm_can_block(RedisModuleCtx *ctx);
bool ab_rm_resp3(RedisModuleCtx *ctx);

/* Case-insensitive compare of an argument with a keyword. */
bool ab_rm_arg_is(RedisModuleString *arg, const char *word);
/* Parses an integer argument in [min,max]; replies with an error naming
 * what and returns false when it is not. */
bool ab_rm_arg_ll(RedisModuleCtx *ctx, RedisModuleString *arg, long long min, long long max,
		  const char *what, long long *out);
bool ab_rm_arg_double(RedisModuleCtx *ctx, RedisModuleString *arg, double min, double max,
		      const char *what, double *out);

/* Checks that json is a JSON object (what FILTER expressions read). */
bool ab_rm_json_object_ok(const char *json, size_t len);

/* One search result, copied out of an index so that it outlives the lock. */
struct ab_rm_hit {
	char *name;
	size_t name_len;
	double score;
	char *attr; /* NULL: none, or not asked for */
	size_t attr_len;
};
/* Frees n hits and the array. */
void ab_rm_hits_free(struct ab_rm_hit *hits, size_t n);
/* Replies with hits in the shape of Redis 8's VSIM: names; with one of
 * scores/attributes a map name -> value (a flat array in RESP2); with both
 * name, score, attributes triples in RESP2 and name -> [score, attributes]
 * in RESP3. */
void ab_rm_reply_hits(RedisModuleCtx *ctx, const struct ab_rm_hit *hits, size_t n,
		      bool withscores, bool withattribs, bool resp3);

struct ab_filter;

/* A search command's job, shared by VSIM and AB.TEXTSEARCH: the type
 * embeds it as its first member and fills the three callbacks. */
struct ab_rm_search {
	RedisModuleBlockedClient *bc;
	bool withscores, withattribs, resp3;
	struct ab_filter *filter;  /* owned */
	struct ab_rm_hit *hits;    /* results, owned */
	size_t nhits;
	const char *error;         /* static message, or NULL */
	void (*run)(struct ab_rm_search *s);     /* takes the read lock, fills hits */
	void (*release)(struct ab_rm_search *s); /* drops the value's reference */
	void (*free)(struct ab_rm_search *s);    /* frees the type's own fields and s */
};
/* Runs s on a search thread with the client blocked, or inline when the
 * client may not block or nothread is set; replies and frees s either way. */
void ab_rm_search_start(RedisModuleCtx *ctx, struct ab_rm_search *s, bool nothread);
/* Compiles a FILTER argument into *f (replacing one given before); replies
 * with the syntax error and returns false when it does not compile. */
bool ab_rm_arg_filter(RedisModuleCtx *ctx, RedisModuleString *arg, struct ab_filter **f);

int ab_rm_vset_register(RedisModuleCtx *ctx);
/* The types' RDB callbacks and free, public for the unit tests and the
 * RDB-loader fuzzer (which supply their own RedisModule_Load* functions). */
void *ab_rm_vset_rdb_load(RedisModuleIO *io, int encver);
void ab_rm_vset_rdb_save(RedisModuleIO *io, void *value);
void ab_rm_vset_free(void *value);
void *ab_rm_text_rdb_load(RedisModuleIO *io, int encver);
void ab_rm_text_rdb_save(RedisModuleIO *io, void *value);
void ab_rm_text_free(void *value);
/* Values built without a command, for the same tests: */
void *ab_rm_vset_new(uint32_t dim, int quant, uint32_t m);
int ab_rm_vset_put(void *value, const char *name, size_t len, const float *vec, const char *attr,
		   size_t attr_len);
struct ab_textidx_params;
struct ab_textidx;
void *ab_rm_text_new(const struct ab_textidx_params *p);
int ab_rm_text_add(void *value, const char *id, size_t len, const char *text, const char *attr);
struct ab_textidx *ab_rm_text_index(void *value);
int ab_rm_text_register(RedisModuleCtx *ctx);

#endif
