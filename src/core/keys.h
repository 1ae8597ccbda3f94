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
/* Registry keys (ab:svc:<role>:<id>, ab:svc:index) are in registry.h. */

#endif
