/*
 * secrets.c - generation and loading of the cluster's secrets (secrets.h).
 * New files are created with O_EXCL and mode 0600, so two processes
 * starting at once cannot both write a different token: the loser of the
 * race reads the winner's file.
 */
#include "secrets.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ab_mkdir_p(const char *path, unsigned mode)
{
	char tmp[4096];
	if (ab_strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int ab_secrets_read_file(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, out, size - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	if ((size_t)n == size - 1)
		return AB_ETOOBIG;
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = '\0';
	return 0;
}

/* Reads path into out; if absent and create, writes a fresh random value. */
static int load_one(const char *dir, const char *name, bool create, char *out, size_t size,
		    char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int rc = ab_secrets_read_file(path, out, size);
	if (rc == 0) {
		struct stat st;
		if (stat(path, &st) == 0 && (st.st_mode & 077))
			ab_log(AB_LOG_WARN, "%s is readable by others (mode %o); chmod 600 it",
			       path, (unsigned)(st.st_mode & 0777));
		if (out[0] == '\0') {
			snprintf(err, errlen, "%s is empty; delete it to generate a new one", path);
			return AB_ECONFIG;
		}
		return 0;
	}
	if (rc != -ENOENT) {
		snprintf(err, errlen, "cannot read %s: %s", path, ab_strerror(rc));
		return rc;
	}
	out[0] = '\0';
	if (!create)
		return 0;
	char value[65];
	rc = ab_random_hex(value, 32);
	if (rc < 0) {
		snprintf(err, errlen, "cannot get random bytes: %s", ab_strerror(rc));
		return rc;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST) /* lost a race: read the winner's */
			return load_one(dir, name, false, out, size, err, errlen);
		rc = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, ab_strerror(rc));
		return rc;
	}
	size_t len = strlen(value);
	value[len] = '\n';
	ssize_t w = write(fd, value, len + 1);
	rc = (w == (ssize_t)(len + 1)) ? 0 : -EIO;
	if (fsync(fd) != 0 && rc == 0)
		rc = -errno;
	close(fd);
	value[len] = '\0';
	if (rc < 0) {
		unlink(path);
		snprintf(err, errlen, "cannot write %s: %s", path, ab_strerror(rc));
		return rc;
	}
	ab_strlcpy(out, value, size);
	ab_log(AB_LOG_INFO, "generated %s", path);
	return 0;
}

int ab_secrets_load(const struct ab_config *cfg, unsigned create, struct ab_secrets *out,
		    char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *dir = cfg->state_dir;
	if (create) {
		int rc = ab_mkdir_p(dir, 0700);
		if (rc < 0) {
			snprintf(err, errlen, "cannot create state directory %s: %s", dir,
				 ab_strerror(rc));
			return rc;
		}
	}
	snprintf(out->admin_token_path, sizeof(out->admin_token_path), "%s/admin.token", dir);
	bool tok = (create & AB_SECRETS_CREATE_TOKENS) != 0;
	int rc = load_one(dir, "admin.token", tok, out->admin_token,
			  sizeof(out->admin_token), err, errlen);
	if (rc < 0)
		return rc;
	if (cfg->cluster_token && cfg->cluster_token[0]) {
		ab_strlcpy(out->cluster_token, cfg->cluster_token, sizeof(out->cluster_token));
	} else {
		rc = load_one(dir, "cluster.token", tok, out->cluster_token,
			      sizeof(out->cluster_token), err, errlen);
		if (rc < 0)
			return rc;
	}
	const char *pw = cfg->services[AB_ROLE_REDIS].password;
	if (pw && pw[0]) {
		ab_strlcpy(out->redis_password, pw, sizeof(out->redis_password));
	} else {
		/* Only a managed Redis gets a generated password; an external
		 * one without a configured password is used without AUTH. */
		bool gen = (create & AB_SECRETS_CREATE_REDIS) &&
			   cfg->services[AB_ROLE_REDIS].managed;
		rc = load_one(dir, "redis.password", gen, out->redis_password,
			      sizeof(out->redis_password), err, errlen);
		if (rc < 0)
			return rc;
	}
	ab_log_add_secret(out->admin_token);
	ab_log_add_secret(out->cluster_token);
	ab_log_add_secret(out->redis_password);
	return 0;
}

void ab_secrets_apply(struct ab_config *cfg, const struct ab_secrets *sec)
{
	struct ab_service_cfg *rs = &cfg->services[AB_ROLE_REDIS];
	if ((!rs->password || !rs->password[0]) && sec->redis_password[0]) {
		free(rs->password);
		rs->password = ab_xstrdup(sec->redis_password);
	}
}
