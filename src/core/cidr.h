/*
 * cidr.h - IPv4 and IPv6 address ranges for the allowlist middleware.
 * An IPv4 range also matches the same address seen as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), which is how a dual-stack socket reports IPv4 peers.
 */
#ifndef AB_CIDR_H
#define AB_CIDR_H

#include "common.h"

#include <sys/socket.h>

struct ab_cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* network bytes; first 4 used for AF_INET */
	int prefix;        /* 0..32 or 0..128 */
};

/* Parses "a.b.c.d/n", "x::y/n" or a bare address (a /32 or /128).
 * Host bits beyond the prefix are cleared. Returns 0 or AB_EINVAL. */
int ab_cidr_parse(const char *s, struct ab_cidr *out);
/* Formats c as "addr/prefix" into out. */
void ab_cidr_format(const struct ab_cidr *c, char *out, size_t size);
/* Fills ss with host:port, host being an IPv4 or IPv6 literal, an IPv6
 * literal in brackets, or "localhost" (127.0.0.1). No DNS. Returns 0 or
 * AB_EINVAL. */
int ab_sockaddr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);
bool ab_cidr_match(const struct ab_cidr *c, const struct sockaddr *sa);
/* True when sa is inside any of the n ranges (n == 0 matches nothing). */
bool ab_cidr_list_match(const struct ab_cidr *list, size_t n, const struct sockaddr *sa);

#endif
