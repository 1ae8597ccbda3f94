/*
 * secrets.h - the three secrets of a cluster (DESIGN section 8): the admin
 * token, the cluster token (service to service) and the Redis password.
 *
 * They live as files of mode 0600 in the state directory (admin.token,
 * cluster.token, redis.password), are generated on first start from the
 * kernel's CSPRNG, and are never printed: each is registered with the
 * logger's redaction list as soon as it is read. A value set in the config
 * (cluster.token, services.redis.password) wins over the file.
 */
#ifndef AB_SECRETS_H
#define AB_SECRETS_H

#include "config.h"

struct ab_secrets {
	char admin_token[80];
	char cluster_token[80];
	char redis_password[136];
	char admin_token_path[4096];
};

#define AB_SECRETS_CREATE_TOKENS 0x1u /* make the state dir and missing tokens */
#define AB_SECRETS_CREATE_REDIS 0x2u  /* make redis.password (managed Redis only) */

/*
 * Reads the secrets of cfg's state directory. Flags say what to generate
 * when missing (the directory is made with mode 0700 first); a missing
 * file that is not generated leaves its field empty. Returns 0, or a
 * negative code with a message in err.
 */
int ab_secrets_load(const struct ab_config *cfg, unsigned create, struct ab_secrets *out,
		    char *err, size_t errlen);

/* Makes cfg's Redis password the effective one (the configured value, or
 * else the state directory's redis.password), so that every consumer of
 * cfg (clients, probes) uses the same. */
void ab_secrets_apply(struct ab_config *cfg, const struct ab_secrets *sec);

/* Reads a one-line secret file (trailing newline dropped) into out.
 * Returns 0, -ENOENT, or another -errno / AB_ETOOBIG. */
int ab_secrets_read_file(const char *path, char *out, size_t size);

/* mkdir -p with mode for each created component. Returns 0 or -errno. */
int ab_mkdir_p(const char *path, unsigned mode);

#endif
