/*
 * rmapi.c - fetches the Redis module API functions of rmapi.h by name at
 * load time (table-driven: one row a function) and registers the module.
 */
#include "rmapi.h"

#include <stddef.h>
#include <string.h>

int (*RedisModule_CreateCommand)(RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn,
					const char *flags, int firstkey, int lastkey, int keystep);
void (*RedisModule_SetModuleAttribs)(RedisModuleCtx *ctx, const char *name, int ver, int apiver);
int (*RedisModule_IsModuleNameBusy)(const char *name);
void (*RedisModule_SetModuleOptions)(RedisModuleCtx *ctx, int options);
int (*RedisModule_GetContextFlags)(RedisModuleCtx *ctx);
void (*RedisModule_Log)(RedisModuleCtx *ctx, const char *level, const char *fmt, ...);
void (*RedisModule_LogIOError)(RedisModuleIO *io, const char *level, const char *fmt, ...);
void (*RedisModule_Free)(void *ptr);
int (*RedisModule_WrongArity)(RedisModuleCtx *ctx);
int (*RedisModule_ReplyWithError)(RedisModuleCtx *ctx, const char *err);
int (*RedisModule_ReplyWithSimpleString)(RedisModuleCtx *ctx, const char *msg);
int (*RedisModule_ReplyWithLongLong)(RedisModuleCtx *ctx, long long ll);
int (*RedisModule_ReplyWithDouble)(RedisModuleCtx *ctx, double d);
int (*RedisModule_ReplyWithStringBuffer)(RedisModuleCtx *ctx, const char *buf, size_t len);
int (*RedisModule_ReplyWithNull)(RedisModuleCtx *ctx);
int (*RedisModule_ReplyWithArray)(RedisModuleCtx *ctx, long len);
int (*RedisModule_ReplyWithMap)(RedisModuleCtx *ctx, long len);
void (*RedisModule_ReplySetArrayLength)(RedisModuleCtx *ctx, long len);
const char *(*RedisModule_StringPtrLen)(const RedisModuleString *str, size_t *len);
int (*RedisModule_StringToLongLong)(const RedisModuleString *str, long long *ll);
int (*RedisModule_StringToDouble)(const RedisModuleString *str, double *d);
void *(*RedisModule_OpenKey)(RedisModuleCtx *ctx, RedisModuleString *name, int mode);
void (*RedisModule_CloseKey)(RedisModuleKey *key);
int (*RedisModule_KeyType)(RedisModuleKey *key);
int (*RedisModule_DeleteKey)(RedisModuleKey *key);
RedisModuleType *(*RedisModule_CreateDataType)(RedisModuleCtx *ctx, const char *name, int encver,
						      void *methods);
RedisModuleType *(*RedisModule_ModuleTypeGetType)(RedisModuleKey *key);
void *(*RedisModule_ModuleTypeGetValue)(RedisModuleKey *key);
int (*RedisModule_ModuleTypeSetValue)(RedisModuleKey *key, RedisModuleType *mt, void *value);
int (*RedisModule_ReplicateVerbatim)(RedisModuleCtx *ctx);
void (*RedisModule_SaveUnsigned)(RedisModuleIO *io, uint64_t value);
uint64_t (*RedisModule_LoadUnsigned)(RedisModuleIO *io);
void (*RedisModule_SaveStringBuffer)(RedisModuleIO *io, const char *str, size_t len);
char *(*RedisModule_LoadStringBuffer)(RedisModuleIO *io, size_t *lenptr);
void (*RedisModule_SaveFloat)(RedisModuleIO *io, float value);
float (*RedisModule_LoadFloat)(RedisModuleIO *io);
void (*RedisModule_SaveDouble)(RedisModuleIO *io, double value);
double (*RedisModule_LoadDouble)(RedisModuleIO *io);
int (*RedisModule_IsIOError)(RedisModuleIO *io);
void (*RedisModule_EmitAOF)(RedisModuleIO *io, const char *cmdname, const char *fmt, ...);
RedisModuleBlockedClient *(*RedisModule_BlockClient)(RedisModuleCtx *ctx, RedisModuleCmdFunc reply,
							    RedisModuleCmdFunc timeout,
							    void (*free_privdata)(RedisModuleCtx *, void *),
							    long long timeout_ms);
int (*RedisModule_UnblockClient)(RedisModuleBlockedClient *bc, void *privdata);
void *(*RedisModule_GetBlockedClientPrivateData)(RedisModuleCtx *ctx);

static const struct {
	const char *name;
	void **fn;
} api_table[] = {
	{"RedisModule_CreateCommand", (void **)&RedisModule_CreateCommand},
	{"RedisModule_SetModuleAttribs", (void **)&RedisModule_SetModuleAttribs},
	{"RedisModule_IsModuleNameBusy", (void **)&RedisModule_IsModuleNameBusy},
	{"RedisModule_SetModuleOptions", (void **)&RedisModule_SetModuleOptions},
	{"RedisModule_GetContextFlags", (void **)&RedisModule_GetContextFlags},
	{"RedisModule_Log", (void **)&RedisModule_Log},
	{"RedisModule_LogIOError", (void **)&RedisModule_LogIOError},
	{"RedisModule_Free", (void **)&RedisModule_Free},
	{"RedisModule_WrongArity", (void **)&RedisModule_WrongArity},
	{"RedisModule_ReplyWithError", (void **)&RedisModule_ReplyWithError},
	{"RedisModule_ReplyWithSimpleString", (void **)&RedisModule_ReplyWithSimpleString},
	{"RedisModule_ReplyWithLongLong", (void **)&RedisModule_ReplyWithLongLong},
	{"RedisModule_ReplyWithDouble", (void **)&RedisModule_ReplyWithDouble},
	{"RedisModule_ReplyWithStringBuffer", (void **)&RedisModule_ReplyWithStringBuffer},
	{"RedisModule_ReplyWithNull", (void **)&RedisModule_ReplyWithNull},
	{"RedisModule_ReplyWithArray", (void **)&RedisModule_ReplyWithArray},
	{"RedisModule_ReplyWithMap", (void **)&RedisModule_ReplyWithMap},
	{"RedisModule_ReplySetArrayLength", (void **)&RedisModule_ReplySetArrayLength},
	{"RedisModule_StringPtrLen", (void **)&RedisModule_StringPtrLen},
	{"RedisModule_StringToLongLong", (void **)&RedisModule_StringToLongLong},
	{"RedisModule_StringToDouble", (void **)&RedisModule_StringToDouble},
	{"RedisModule_OpenKey", (void **)&RedisModule_OpenKey},
	{"RedisModule_CloseKey", (void **)&RedisModule_CloseKey},
	{"RedisModule_KeyType", (void **)&RedisModule_KeyType},
	{"RedisModule_DeleteKey", (void **)&RedisModule_DeleteKey},
	{"RedisModule_CreateDataType", (void **)&RedisModule_CreateDataType},
	{"RedisModule_ModuleTypeGetType", (void **)&RedisModule_ModuleTypeGetType},
	{"RedisModule_ModuleTypeGetValue", (void **)&RedisModule_ModuleTypeGetValue},
	{"RedisModule_ModuleTypeSetValue", (void **)&RedisModule_ModuleTypeSetValue},
	{"RedisModule_ReplicateVerbatim", (void **)&RedisModule_ReplicateVerbatim},
	{"RedisModule_SaveUnsigned", (void **)&RedisModule_SaveUnsigned},
	{"RedisModule_LoadUnsigned", (void **)&RedisModule_LoadUnsigned},
	{"RedisModule_SaveStringBuffer", (void **)&RedisModule_SaveStringBuffer},
	{"RedisModule_LoadStringBuffer", (void **)&RedisModule_LoadStringBuffer},
	{"RedisModule_SaveFloat", (void **)&RedisModule_SaveFloat},
	{"RedisModule_LoadFloat", (void **)&RedisModule_LoadFloat},
	{"RedisModule_SaveDouble", (void **)&RedisModule_SaveDouble},
	{"RedisModule_LoadDouble", (void **)&RedisModule_LoadDouble},
	{"RedisModule_IsIOError", (void **)&RedisModule_IsIOError},
	{"RedisModule_EmitAOF", (void **)&RedisModule_EmitAOF},
	{"RedisModule_BlockClient", (void **)&RedisModule_BlockClient},
	{"RedisModule_UnblockClient", (void **)&RedisModule_UnblockClient},
	{"RedisModule_GetBlockedClientPrivateData", (void **)&RedisModule_GetBlockedClientPrivateData},
};

int ab_rm_init(RedisModuleCtx *ctx, const char *name, int ver)
{
	/* The first pointer-sized field of the context is GetApi. */
	void *first = ((void **)ctx)[0];
	int (*get_api)(const char *, void *) = NULL;
	_Static_assert(sizeof(first) == sizeof(get_api), "function and data pointers differ");
	memcpy(&get_api, &first, sizeof(get_api));
	for (size_t i = 0; i < sizeof(api_table) / sizeof(api_table[0]); i++) {
		*api_table[i].fn = NULL;
		if (get_api(api_table[i].name, api_table[i].fn) != REDISMODULE_OK || !*api_table[i].fn)
			return REDISMODULE_ERR;
	}
	if (RedisModule_IsModuleNameBusy(name))
		return REDISMODULE_ERR;
	RedisModule_SetModuleAttribs(ctx, name, ver, REDISMODULE_APIVER_1);
	return REDISMODULE_OK;
}
