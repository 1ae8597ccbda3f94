/* test_sha256.c - SHA-256 against the FIPS 180-4 example vectors. */
#include <criterion/criterion.h>
#include <string.h>

#include "sha256.h"

static void check(const char *msg, const char *want)
{
	char hex[65];
	ab_sha256_hex(msg, strlen(msg), hex);
	cr_assert_str_eq(hex, want, "sha256(\"%s\")", msg);
}

Test(sha256, known_vectors)
{
	check("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	check("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	check("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(sha256, million_a_in_pieces)
{
	struct ab_sha256 s;
	uint8_t d[32];
	char chunk[1001];
	memset(chunk, 'a', sizeof(chunk));
	ab_sha256_init(&s);
	for (int i = 0; i < 1000; i++)
		ab_sha256_update(&s, chunk, (size_t)(i % 2 ? 999 : 1001));
	ab_sha256_final(&s, d);
	static const uint8_t want[4] = {0xcd, 0xc7, 0x6e, 0x5c};
	cr_assert_eq(memcmp(d, want, 4), 0);
}
