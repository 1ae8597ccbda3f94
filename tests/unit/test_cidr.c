/*
 * test_cidr.c - unit tests for cidr.c: parsing of IPv4 and IPv6 ranges and
 * bare addresses, host-bit clearing, formatting, matching (including
 * IPv4-mapped IPv6 peers) and the rejection of malformed input.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

static struct sockaddr_storage peer(const char *addr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		cr_assert_eq(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1, "%s", addr);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, addr, &in->sin_addr), 1, "%s", addr);
	}
	return ss;
}

static bool matches(const char *range, const char *addr)
{
	struct ab_cidr c;
	cr_assert_eq(ab_cidr_parse(range, &c), 0, "parse %s", range);
	struct sockaddr_storage ss = peer(addr);
	return ab_cidr_match(&c, (struct sockaddr *)&ss);
}

static void assert_format(const char *in, const char *want)
{
	struct ab_cidr c;
	char out[64];
	cr_assert_eq(ab_cidr_parse(in, &c), 0, "parse %s", in);
	ab_cidr_format(&c, out, sizeof(out));
	cr_assert_str_eq(out, want, "%s formats as %s, not %s", in, out, want);
}

Test(cidr, parse_v4)
{
	struct ab_cidr c;
	cr_assert_eq(ab_cidr_parse("10.1.2.3/8", &c), 0);
	cr_assert_eq(c.family, AF_INET);
	cr_assert_eq(c.prefix, 8);
	cr_assert_eq(c.addr[0], 10);
	cr_assert_eq(c.addr[1], 0, "host bits cleared");
	cr_assert_eq(c.addr[3], 0);
	assert_format("10.1.2.3/8", "10.0.0.0/8");
	assert_format("172.16.168.77/24", "172.16.168.0/24");
	assert_format("192.168.1.255/25", "192.168.1.128/25");
	assert_format("1.2.3.4/32", "1.2.3.4/32");
}

Test(cidr, parse_v6)
{
	struct ab_cidr c;
	cr_assert_eq(ab_cidr_parse("fd00:1:2:3::9/48", &c), 0);
	cr_assert_eq(c.family, AF_INET6);
	cr_assert_eq(c.prefix, 48);
	assert_format("fd00:1:2:3::9/48", "fd00:1:2::/48");
	assert_format("::1/128", "::1/128");
	assert_format("2001:db8::ff/127", "2001:db8::fe/127");
}

Test(cidr, bare_address)
{
	struct ab_cidr c;
	cr_assert_eq(ab_cidr_parse("127.0.0.1", &c), 0);
	cr_assert_eq(c.prefix, 32);
	cr_assert_eq(ab_cidr_parse("::1", &c), 0);
	cr_assert_eq(c.prefix, 128);
	cr_assert(matches("127.0.0.1", "127.0.0.1"));
	cr_assert_not(matches("127.0.0.1", "127.0.0.2"));
}

Test(cidr, zero_prefix)
{
	assert_format("8.8.8.8/0", "0.0.0.0/0");
	assert_format("2001:db8::1/0", "::/0");
	cr_assert(matches("0.0.0.0/0", "8.8.8.8"));
	cr_assert(matches("0.0.0.0/0", "255.255.255.255"));
	cr_assert(matches("::/0", "2001:db8::1"));
	cr_assert_not(matches("0.0.0.0/0", "2001:db8::1"), "v4 /0 is not v6");
}

Test(cidr, match_and_mismatch)
{
	cr_assert(matches("172.16.168.0/24", "172.16.168.25"));
	cr_assert_not(matches("172.16.168.0/24", "172.16.169.25"));
	cr_assert(matches("10.0.0.0/9", "10.127.255.255"));
	cr_assert_not(matches("10.0.0.0/9", "10.128.0.0"));
	cr_assert(matches("fd00::/8", "fdab:cd::1"));
	cr_assert_not(matches("fd00::/8", "fe80::1"));
	cr_assert(matches("::1/128", "::1"));
	cr_assert_not(matches("::1/128", "::2"));
	cr_assert_not(matches("127.0.0.0/8", "::1"), "v4 range, v6 peer");
	cr_assert_not(matches("::1/128", "127.0.0.1"));
}

Test(cidr, mapped_v4)
{
	cr_assert(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
	cr_assert(matches("172.16.168.0/24", "::ffff:172.16.168.21"));
	cr_assert_not(matches("172.16.168.0/24", "::ffff:172.16.167.21"));
	/* not mapped: the 0xffff marker is required */
	cr_assert_not(matches("127.0.0.0/8", "::127.0.0.1"));
	/* a mapped range matches plain v4 peers too */
	cr_assert(matches("::ffff:10.0.0.0/104", "10.9.8.7"));
	cr_assert_not(matches("::ffff:10.0.0.0/104", "11.9.8.7"));
}

Test(cidr, list_match)
{
	struct ab_cidr l[2];
	cr_assert_eq(ab_cidr_parse("127.0.0.0/8", &l[0]), 0);
	cr_assert_eq(ab_cidr_parse("::1/128", &l[1]), 0);
	struct sockaddr_storage a = peer("127.0.0.1"), b = peer("::1"), c = peer("10.0.0.1");
	cr_assert(ab_cidr_list_match(l, 2, (struct sockaddr *)&a));
	cr_assert(ab_cidr_list_match(l, 2, (struct sockaddr *)&b));
	cr_assert_not(ab_cidr_list_match(l, 2, (struct sockaddr *)&c));
	cr_assert_not(ab_cidr_list_match(l, 0, (struct sockaddr *)&a), "n == 0");
}

Test(cidr, other_family_never_matches)
{
	struct ab_cidr c;
	cr_assert_eq(ab_cidr_parse("0.0.0.0/0", &c), 0);
	struct sockaddr sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	cr_assert_not(ab_cidr_match(&c, &sa));
	cr_assert_not(ab_cidr_match(&c, NULL));
}

Test(cidr, invalid)
{
	static const char *bad[] = {
		"", "x", "/8", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/+8",
		"1.2.3.4/08", "1.2.3.4/8/8", "1.2.3.4/ 8", " 1.2.3.4", "1.2.3.4 ",
		"1.2.3.4/8 ", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4",
		"::1/129", "::1/", "fe80::1%eth0", ":::1", "1.2.3.4/1000",
		"1.2.3.4/a", "localhost", "*", "0x7f.0.0.1",
		"aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa:aaaa/8",
	};
	struct ab_cidr c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(ab_cidr_parse(bad[i], &c), AB_EINVAL, "accepted \"%s\"", bad[i]);
	cr_expect_eq(ab_cidr_parse(NULL, &c), AB_EINVAL);
}

Test(cidr, format_small_buffer)
{
	struct ab_cidr c;
	char out[6];
	cr_assert_eq(ab_cidr_parse("172.16.168.0/24", &c), 0);
	ab_cidr_format(&c, out, sizeof(out));
	cr_assert_str_eq(out, "172.1");
	memset(&c, 0, sizeof(c));
	char out2[32];
	ab_cidr_format(&c, out2, sizeof(out2));
	cr_assert_str_eq(out2, "invalid");
}

Test(sockaddr, parse_literals_only)
{
	struct sockaddr_storage ss;
	socklen_t len;
	cr_assert_eq(ab_sockaddr_parse("127.0.0.2", 80, &ss, &len), 0);
	cr_assert_eq(ss.ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
	cr_assert_eq(ab_sockaddr_parse("[::1]", 8002, &ss, &len), 0);
	cr_assert_eq(ss.ss_family, AF_INET6);
	cr_assert_eq(len, sizeof(struct sockaddr_in6));
	cr_assert_eq(ab_sockaddr_parse("::1", 1, &ss, &len), 0);
	cr_assert_eq(ab_sockaddr_parse("localhost", 1, &ss, &len), 0);
	cr_assert_eq(ss.ss_family, AF_INET);
	cr_assert_eq(ab_sockaddr_parse("example.com", 1, &ss, &len), AB_EINVAL);
	cr_assert_eq(ab_sockaddr_parse("[::1", 1, &ss, &len), AB_EINVAL);
	cr_assert_eq(ab_sockaddr_parse("1.2.3.4.5", 1, &ss, &len), AB_EINVAL);
}
