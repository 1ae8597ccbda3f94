/*
 * rmapi.h - the part of the Redis module API that autobot.so uses, declared
 * here from the API reference (redis.io, "Modules API reference"), not taken
 * from Redis's header.
 *
 * How the API reaches a module: redis-server dlopen()s the module and calls
 * RedisModule_OnLoad(ctx, argv, argc). The first pointer-sized field of ctx
 * is a function, GetApi(name, &fnptr), that fills in the address of each
 * API function by its name ("RedisModule_ReplyWithError", ...). ab_rm_init()
 * walks a table of the functions below, fetches each one, fails if any is
 * missing (Redis older than 7.0), and then registers the module's name.
 *
 * The function pointers keep the API's own names, so that the calls read
 * like the reference. Every type is opaque to us except the type-methods
 * table, whose first fields are fixed by the ABI (we fill version 1 only).
 */
#ifndef AB_RMAPI_H
#define AB_RMAPI_H

#include <stddef.h>
#include <stdint.h>

#define REDISMODULE_OK 0
#define REDISMODULE_ERR 1
#define REDISMODULE_APIVER_1 1

#define REDISMODULE_READ (1 << 0)
#define REDISMODULE_WRITE (1 << 1)

#define REDISMODULE_KEYTYPE_EMPTY 0
#define REDISMODULE_KEYTYPE_MODULE 6

#define REDISMODULE_POSTPONED_LEN -1L

#define REDISMODULE_CTX_FLAGS_LUA (1 << 0)
#define REDISMODULE_CTX_FLAGS_MULTI (1 << 1)
#define REDISMODULE_CTX_FLAGS_LOADING (1 << 13)
#define REDISMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)
#define REDISMODULE_CTX_FLAGS_RESP3 (1 << 22)

/* RedisModule_SetModuleOptions: loading callbacks check IsIOError rather
 * than Redis aborting on a short read. */
#define REDISMODULE_OPTIONS_HANDLE_IO_ERRORS (1 << 0)

typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleType RedisModuleType;
typedef struct RedisModuleIO RedisModuleIO;
typedef struct RedisModuleDigest RedisModuleDigest;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;

typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* Data-type callbacks, version 1 of the methods table. */
struct ab_rm_type_methods {
	uint64_t version; /* 1 */
	void *(*rdb_load)(RedisModuleIO *rdb, int encver);
	void (*rdb_save)(RedisModuleIO *rdb, void *value);
	void (*aof_rewrite)(RedisModuleIO *aof, RedisModuleString *key, void *value);
	size_t (*mem_usage)(const void *value);
	void (*digest)(RedisModuleDigest *digest, void *value);
	void (*free)(void *value);
};

/* The module's entry points into Redis (filled by ab_rm_init). */
extern int (*RedisModule_CreateCommand)(RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn,
					const char *flags, int firstkey, int lastkey, int keystep);
extern void (*RedisModule_SetModuleAttribs)(RedisModuleCtx *ctx, const char *name, int ver, int apiver);
extern int (*RedisModule_IsModuleNameBusy)(const char *name);
extern void (*RedisModule_SetModuleOptions)(RedisModuleCtx *ctx, int options);
extern int (*RedisModule_GetContextFlags)(RedisModuleCtx *ctx);
extern void (*RedisModule_Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...);
extern void (*RedisModule_LogIOError)(RedisModuleIO *io, const char *level, const char *fmt, ...);
extern void (*RedisModule_Free)(void *ptr);

extern int (*RedisModule_WrongArity)(RedisModuleCtx *ctx);
extern int (*RedisModule_ReplyWithError)(RedisModuleCtx *ctx, const char *err);
extern int (*RedisModule_ReplyWithSimpleString)(RedisModuleCtx *ctx, const char *msg);
extern int (*RedisModule_ReplyWithLongLong)(RedisModuleCtx *ctx, long long ll);
extern int (*RedisModule_ReplyWithDouble)(RedisModuleCtx *ctx, double d);
extern int (*RedisModule_ReplyWithStringBuffer)(RedisModuleCtx *ctx, const char *buf, size_t len);
extern int (*RedisModule_ReplyWithNull)(RedisModuleCtx *ctx);
extern int (*RedisModule_ReplyWithArray)(RedisModuleCtx *ctx, long len);
extern int (*RedisModule_ReplyWithMap)(RedisModuleCtx *ctx, long len);
extern void (*RedisModule_ReplySetArrayLength)(RedisModuleCtx *ctx, long len);

extern const char *(*RedisModule_StringPtrLen)(const RedisModuleString *str, size_t *len);
extern int (*RedisModule_StringToLongLong)(const RedisModuleString *str, long long *ll);
extern int (*RedisModule_StringToDouble)(const RedisModuleString *str, double *d);

extern void *(*RedisModule_OpenKey)(RedisModuleCtx *ctx, RedisModuleString *name, int mode);
extern void (*RedisModule_CloseKey)(RedisModuleKey *key);
extern int (*RedisModule_KeyType)(RedisModuleKey *key);
extern int (*RedisModule_DeleteKey)(RedisModuleKey *key);
extern RedisModuleType *(*RedisModule_CreateDataType)(RedisModuleCtx *ctx, const char *name, int encver,
						      void *methods);
extern RedisModuleType *(*RedisModule_ModuleTypeGetType)(RedisModuleKey *key);
extern void *(*RedisModule_ModuleTypeGetValue)(RedisModuleKey *key);
extern int (*RedisModule_ModuleTypeSetValue)(RedisModuleKey *key, RedisModuleType *mt, void *value);

extern int (*RedisModule_ReplicateVerbatim)(RedisModuleCtx *ctx);

extern void (*RedisModule_SaveUnsigned)(RedisModuleIO *io, uint64_t value);
extern uint64_t (*RedisModule_LoadUnsigned)(RedisModuleIO *io);
extern void (*RedisModule_SaveStringBuffer)(RedisModuleIO *io, const char *str, size_t len);
extern char *(*RedisModule_LoadStringBuffer)(RedisModuleIO *io, size_t *lenptr);
extern void (*RedisModule_SaveFloat)(RedisModuleIO *io, float value);
extern float (*RedisModule_LoadFloat)(RedisModuleIO *io);
extern void (*RedisModule_SaveDouble)(RedisModuleIO *io, double value);
extern double (*RedisModule_LoadDouble)(RedisModuleIO *io);
extern int (*RedisModule_IsIOError)(RedisModuleIO *io);
extern void (*RedisModule_EmitAOF)(RedisModuleIO *io, const char *cmdname, const char *fmt, ...);

extern RedisModuleBlockedClient *(*RedisModule_BlockClient)(RedisModuleCtx *ctx, RedisModuleCmdFunc reply,
							    RedisModuleCmdFunc timeout,
							    void (*free_privdata)(RedisModuleCtx *, void *),
							    long long timeout_ms);
extern int (*RedisModule_UnblockClient)(RedisModuleBlockedClient *bc, void *privdata);
extern void *(*RedisModule_GetBlockedClientPrivateData)(RedisModuleCtx *ctx);

/* Fetches every function above through ctx's GetApi and registers the
 * module as name/ver. REDISMODULE_OK or REDISMODULE_ERR. */
int ab_rm_init(RedisModuleCtx *ctx, const char *name, int ver);

#endif
