/*
 * fuzz_config.c - libFuzzer target for config.c: writes the input to a
 * memfd and loads it as the YAML config file through /proc/self/fd, with
 * no .env file (/dev/null) and no environment. Any result is fine as long
 * as nothing crashes or leaks; a successful load is also dumped to JSON.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	int fd = memfd_create("fuzz-config", 0);
	if (fd < 0)
		return 0;
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct ab_config_src src = {.file = path, .env_file = "/dev/null"};
	struct ab_config *cfg = NULL;
	char err[256];
	if (ab_config_load(&src, &cfg, err, sizeof(err)) == 0) {
		json_t *j = ab_config_to_json(cfg, true);
		char *text = json_dumps(j, JSON_COMPACT);
		free(text);
		json_decref(j);
		for (int r = 0; r < AB_ROLE__COUNT; r++)
			free(ab_config_service_url(cfg, (enum ab_role)r));
		ab_config_free(cfg);
	}
	close(fd);
	return 0;
}
