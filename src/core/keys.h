/*
 * keys.h - every Redis key prefix AutoBot uses, in one place (DESIGN
 * section 4). All keys live in database 0 under "ab:".
 */
#ifndef AB_KEYS_H
#define AB_KEYS_H

#define AB_KEY_TOKEN_PREFIX "ab:token:"   /* ab:token:<sha256 of token> -> JSON */
#define AB_KEY_TOKEN_NAMES "ab:tokens"    /* hash: token name -> sha256 */
#define AB_KEY_CHAT_PREFIX "ab:chat:"     /* ab:chat:<session> hash, ab:chat:<session>:msgs list */
#define AB_KEY_CHATS "ab:chats"           /* sorted set: session ids by last update */
#define AB_KEY_JOB_PREFIX "ab:job:"       /* ab:job:<id> */
#define AB_KEY_JOBS_PREFIX "ab:jobs:"     /* ab:jobs:<role> streams */
#define AB_KEY_LOG "ab:log"               /* capped log stream */
/* The knowledge base (src/kb): */
#define AB_KEY_KB_VEC "ab:kb:vec"                 /* vector set: chunk id -> embedding */
#define AB_KEY_KB_TEXT "ab:kb:text"               /* text index: chunk id -> BM25 terms */
#define AB_KEY_KB_DOC_PREFIX "ab:kb:doc:"         /* ab:kb:doc:<id> hash: metadata, status */
#define AB_KEY_KB_CHUNKS_PREFIX "ab:kb:chunks:"   /* ab:kb:chunks:<id> hash: n -> chunk JSON */
#define AB_KEY_KB_SRC_PREFIX "ab:kb:src:"         /* ab:kb:src:<id> string: the uploaded bytes */
#define AB_KEY_KB_HASH_PREFIX "ab:kb:hash:"       /* ab:kb:hash:<sha256> -> document id */
#define AB_KEY_KB_DOCS "ab:kb:docs"               /* sorted set: document ids by creation */
#define AB_KEY_KB_META "ab:kb:meta"               /* hash: embedder, dims */
/* Registry keys (ab:svc:<role>:<id>, ab:svc:index) are in registry.h. */

#endif
