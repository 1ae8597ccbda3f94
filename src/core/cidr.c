/*
 * cidr.c - parsing, formatting and matching of IPv4 and IPv6 address ranges
 * for the allowlist middleware and the config validator. Parsing is strict:
 * an address accepted by inet_pton(), optionally followed by '/' and a
 * decimal prefix without sign, spaces or leading zeros. IPv4 ranges also
 * match IPv4-mapped IPv6 peers (::ffff:a.b.c.d), and IPv4-mapped IPv6
 * ranges match plain IPv4 peers, so a dual-stack socket behaves like two.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Longest textual IPv6 address (with embedded IPv4) is 45 characters. */
#define ADDR_MAX 64

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parses a decimal prefix in [0,max]: digits only, no leading zeros. */
static int parse_prefix(const char *s, int max, int *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 3)
		return AB_EINVAL;
	if (n > 1 && s[0] == '0')
		return AB_EINVAL;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return AB_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return AB_EINVAL;
	*out = v;
	return 0;
}

/* Clears every bit of addr (len bytes) beyond the first prefix bits. */
static void clear_host_bits(uint8_t *addr, size_t len, int prefix)
{
	for (size_t i = 0; i < len; i++) {
		int bit = (int)i * 8;
		if (bit >= prefix)
			addr[i] = 0;
		else if (prefix - bit < 8)
			addr[i] &= (uint8_t)(0xff << (8 - (prefix - bit)));
	}
}

/* True when the first prefix bits of a and b are equal. */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, int prefix)
{
	int full = prefix / 8, rest = prefix % 8;
	if (full && memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & mask) != (b[full] & mask))
			return false;
	}
	return true;
}

int ab_cidr_parse(const char *s, struct ab_cidr *out)
{
	if (!s || !out)
		return AB_EINVAL;
	char addr[ADDR_MAX];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(addr))
		return AB_EINVAL;
	memcpy(addr, s, alen);
	addr[alen] = '\0';

	struct ab_cidr c;
	memset(&c, 0, sizeof(c));
	int max;
	if (strchr(addr, ':')) {
		if (inet_pton(AF_INET6, addr, c.addr) != 1)
			return AB_EINVAL;
		c.family = AF_INET6;
		max = 128;
	} else {
		if (inet_pton(AF_INET, addr, c.addr) != 1)
			return AB_EINVAL;
		c.family = AF_INET;
		max = 32;
	}
	c.prefix = max;
	if (slash && parse_prefix(slash + 1, max, &c.prefix) != 0)
		return AB_EINVAL;
	clear_host_bits(c.addr, c.family == AF_INET ? 4 : 16, c.prefix);
	*out = c;
	return 0;
}

void ab_cidr_format(const struct ab_cidr *c, char *out, size_t size)
{
	char addr[INET6_ADDRSTRLEN];
	if (!size)
		return;
	if (!c || (c->family != AF_INET && c->family != AF_INET6) ||
	    !inet_ntop(c->family, c->addr, addr, sizeof(addr))) {
		ab_strlcpy(out, "invalid", size);
		return;
	}
	snprintf(out, size, "%s/%d", addr, c->prefix);
}

bool ab_cidr_match(const struct ab_cidr *c, const struct sockaddr *sa)
{
	if (!c || !sa)
		return false;
	uint8_t peer[16];
	int family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(peer, &in->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(peer, &in6->sin6_addr, 16);
		family = AF_INET6;
	} else {
		return false;
	}

	if (c->family == AF_INET) {
		if (family == AF_INET6) {
			if (memcmp(peer, v4mapped_prefix, sizeof(v4mapped_prefix)) != 0)
				return false;
			memmove(peer, peer + 12, 4);
		}
		return prefix_equal(c->addr, peer, c->prefix);
	}
	if (c->family == AF_INET6) {
		if (family == AF_INET) {
			/* a plain IPv4 peer seen through an IPv4-mapped range */
			memmove(peer + 12, peer, 4);
			memcpy(peer, v4mapped_prefix, sizeof(v4mapped_prefix));
		}
		return prefix_equal(c->addr, peer, c->prefix);
	}
	return false;
}

bool ab_cidr_list_match(const struct ab_cidr *list, size_t n, const struct sockaddr *sa)
{
	for (size_t i = 0; i < n; i++)
		if (ab_cidr_match(&list[i], sa))
			return true;
	return false;
}

int ab_sockaddr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	char h6[INET6_ADDRSTRLEN + 2];
	memset(ss, 0, sizeof(*ss));
	if (!host || strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*len = sizeof(*s4);
		return 0;
	}
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof(h6)) {
		memcpy(h6, host + 1, hl - 2);
		h6[hl - 2] = '\0';
		host = h6;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
		return AB_EINVAL;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons((uint16_t)port);
	*len = sizeof(*s6);
	return 0;
}
