/*
 * fuzz_cidr.c - libFuzzer target for cidr.c: parses the input as a range,
 * formats it, re-parses the formatted text (which must give the same
 * range) and matches it against IPv4, IPv6 and IPv4-mapped peers.
 */
#include "cidr.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 256)
		return 0;
	char *s = ab_xstrndup((const char *)data, size);
	struct ab_cidr c, again;
	if (ab_cidr_parse(s, &c) == 0) {
		char text[64];
		ab_cidr_format(&c, text, sizeof(text));
		if (ab_cidr_parse(text, &again) != 0 || memcmp(&c, &again, sizeof(c)) != 0)
			abort();

		struct sockaddr_in in4;
		memset(&in4, 0, sizeof(in4));
		in4.sin_family = AF_INET;
		memcpy(&in4.sin_addr, c.addr, 4);
		struct sockaddr_in6 in6;
		memset(&in6, 0, sizeof(in6));
		in6.sin6_family = AF_INET6;
		memcpy(&in6.sin6_addr, c.addr, 16);
		/* a range always contains its own network address */
		const struct sockaddr *own = c.family == AF_INET ? (struct sockaddr *)&in4
								 : (struct sockaddr *)&in6;
		if (!ab_cidr_match(&c, own) || !ab_cidr_list_match(&c, 1, own))
			abort();
		struct sockaddr_in6 mapped;
		memset(&mapped, 0, sizeof(mapped));
		mapped.sin6_family = AF_INET6;
		mapped.sin6_addr.s6_addr[10] = 0xff;
		mapped.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&mapped.sin6_addr.s6_addr[12], c.addr, 4);
		bool m = ab_cidr_match(&c, (struct sockaddr *)&mapped);
		if (c.family == AF_INET && !m)
			abort();
		(void)ab_cidr_match(&c, (struct sockaddr *)(c.family == AF_INET ? (void *)&in6
										 : (void *)&in4));
	}
	free(s);
	return 0;
}
