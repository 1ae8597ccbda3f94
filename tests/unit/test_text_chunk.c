/*
 * test_text_chunk.c - the sentence splitter and the chunker of
 * src/text/chunk.h: sentence rules, token counts, chunk sizes, overlap,
 * heading paths, pages, and arbitrary bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "common.h"

/* The sentences of text joined by '|'. */
static char *sentences(const char *text)
{
	struct ab_text_span *sp;
	size_t n = ab_text_sentences(text, strlen(text), &sp);
	struct ab_buf b = {0};
	ab_buf_puts(&b, "");
	for (size_t i = 0; i < n; i++) {
		if (i)
			ab_buf_putc(&b, '|');
		cr_assert_lt(sp[i].start, sp[i].end);
		cr_assert_leq(sp[i].end, strlen(text));
		ab_buf_append(&b, text + sp[i].start, sp[i].end - sp[i].start);
	}
	free(sp);
	return ab_buf_steal(&b);
}

static void expect_sentences(const char *text, const char *want)
{
	char *got = sentences(text);
	cr_expect_str_eq(got, want, "sentences of \"%s\"", text);
	free(got);
}

Test(sentences, basic_punctuation)
{
	expect_sentences("One two. Three four! Five six? Seven.",
			 "One two.|Three four!|Five six?|Seven.");
	expect_sentences("  Leading and trailing space.  ", "Leading and trailing space.");
	expect_sentences("No final stop", "No final stop");
	expect_sentences("", "");
	expect_sentences(" \n\t ", "");
	expect_sentences("Wait... What? Really?! Yes.", "Wait...|What?|Really?!|Yes.");
}

Test(sentences, abbreviations_initials_numbers)
{
	expect_sentences("Dr. Smith arrived. He sat.", "Dr. Smith arrived.|He sat.");
	expect_sentences("Use tools, e.g. hammers. Then stop.",
			 "Use tools, e.g. hammers.|Then stop.");
	expect_sentences("See Fig. 3 for details. It helps.", "See Fig. 3 for details.|It helps.");
	expect_sentences("J. R. R. Tolkien wrote it. Fine.", "J. R. R. Tolkien wrote it.|Fine.");
	expect_sentences("Pi is 3.14 roughly. Next one.", "Pi is 3.14 roughly.|Next one.");
	expect_sentences("Visit example.com today. Bye.", "Visit example.com today.|Bye.");
	expect_sentences("It costs approx. five euros.", "It costs approx. five euros.");
	/* a lower-case word after a full stop continues the sentence */
	expect_sentences("The ratio was 2. then it fell.", "The ratio was 2. then it fell.");
	/* a detached full stop (as in the Cranfield texts) always ends one */
	expect_sentences("a wing in a slipstream . an experimental study .",
			 "a wing in a slipstream .|an experimental study .");
}

Test(sentences, quotes_and_brackets)
{
	expect_sentences("He said \"Stop.\" Then he left.", "He said \"Stop.\"|Then he left.");
	expect_sentences("(This is an aside.) Main text.", "(This is an aside.)|Main text.");
	expect_sentences("\xe2\x80\x9cQuoted.\xe2\x80\x9d Next.",
			 "\xe2\x80\x9cQuoted.\xe2\x80\x9d|Next.");
}

Test(sentences, lines_paragraphs_lists)
{
	/* a single newline is a wrapped line, not a boundary */
	expect_sentences("This line is\nwrapped here. Done.", "This line is\nwrapped here.|Done.");
	expect_sentences("A heading like line\n\nA paragraph", "A heading like line|A paragraph");
	expect_sentences("Steps:\n- open it\n- close it\n1. first\n2) second",
			 "Steps:|- open it|- close it|1. first|2) second");
	expect_sentences("| a | b |\n| 1 | 2 |", "| a | b ||| 1 | 2 |");
}

Test(sentences, cjk)
{
	expect_sentences("今日は晴れ。明日は雨！本当？", "今日は晴れ。|明日は雨！|本当？");
}

Test(sentences, arbitrary_bytes_are_safe)
{
	char buf[512];
	uint64_t s = 12345;
	for (int round = 0; round < 2000; round++) {
		size_t n = 1 + (size_t)(round % 500);
		for (size_t i = 0; i < n; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			const char pool[] = ". !?\n\xe3\x80\x82\xff\xc3\"')aZ9";
			buf[i] = pool[(s >> 33) % (sizeof(pool) - 1)];
		}
		struct ab_text_span *sp;
		size_t k = ab_text_sentences(buf, n, &sp);
		size_t last = 0;
		for (size_t i = 0; i < k; i++) {
			cr_assert_leq(last, sp[i].start);
			cr_assert_lt(sp[i].start, sp[i].end);
			cr_assert_leq(sp[i].end, n);
			last = sp[i].end;
		}
		free(sp);
	}
}

Test(tokens, counting)
{
	cr_expect_eq(ab_text_count_tokens("hello world", 11), 2);
	cr_expect_eq(ab_text_count_tokens("  hello,   world!  ", 19), 2);
	cr_expect_eq(ab_text_count_tokens("東京 tower", strlen("東京 tower")), 3);
	cr_expect_eq(ab_text_count_tokens("東京tower", strlen("東京tower")), 3);
	cr_expect_eq(ab_text_count_tokens("", 0), 0);
	cr_expect_eq(ab_text_count_tokens("a\xc2\xa0" "b", 4), 2, "no-break space separates");
}

/* ---- chunks ---- */

/* 60 sentences of exactly 10 words: "sN w1 ... w8 end." */
static char *ten_word_sentences(int count)
{
	struct ab_buf b = {0};
	for (int i = 0; i < count; i++)
		ab_buf_printf(&b, "S%d one two three four five six seven eight end. ", i);
	return ab_buf_steal(&b);
}

static struct ab_chunks *chunk(const char *text, uint32_t target, uint32_t overlap)
{
	struct ab_chunk_params p;
	ab_chunk_params_default(&p);
	p.target_tokens = target;
	p.overlap_tokens = overlap;
	struct ab_chunks *c = NULL;
	cr_assert_eq(ab_chunk_text(text, strlen(text), &p, &c), 0);
	cr_assert_not_null(c);
	return c;
}

Test(chunks, packs_whole_sentences_up_to_target)
{
	char *text = ten_word_sentences(60);
	struct ab_chunks *c = chunk(text, 45, 0);
	cr_assert_eq(c->n, 15, "4 sentences of 10 fit in 45");
	for (size_t i = 0; i < c->n; i++) {
		const struct ab_chunk *k = &c->v[i];
		cr_expect_eq(k->tokens, 40);
		cr_expect_eq(k->overlap, 0);
		cr_expect_eq(ab_text_count_tokens(k->text, k->len), k->tokens);
		char want[16];
		snprintf(want, sizeof(want), "S%zu ", i * 4);
		cr_expect_eq(strncmp(k->text, want, strlen(want)), 0, "chunk %zu: %s", i, k->text);
		cr_expect_eq(k->text[k->len - 1], '.', "ends on a sentence end");
		cr_expect_eq(k->len, strlen(k->text));
		cr_expect_eq(memcmp(text + k->start, k->text, k->len), 0);
		cr_expect_str_eq(k->heading, "");
		cr_expect_eq(k->page, 1);
		cr_expect_eq(k->page_last, 1);
	}
	ab_chunks_free(c);
	free(text);
}

Test(chunks, sentence_overlap)
{
	char *text = ten_word_sentences(30);
	struct ab_chunks *c = chunk(text, 45, 15);
	cr_assert_gt(c->n, 2);
	cr_expect_eq(c->v[0].overlap, 0);
	for (size_t i = 1; i < c->n; i++) {
		const struct ab_chunk *prev = &c->v[i - 1], *k = &c->v[i];
		cr_expect_eq(k->overlap, 10, "one whole sentence fits in 15");
		cr_expect_leq(k->tokens, 45);
		/* it begins with the previous chunk's last sentence */
		const char *last = strrchr(prev->text, 'S');
		cr_assert_not_null(last);
		cr_expect_eq(strncmp(k->text, last, strlen(last)), 0, "chunk %zu", i);
		cr_expect_lt(k->start, prev->end);
	}
	/* every sentence is in some chunk */
	for (int s = 0; s < 30; s++) {
		char want[16];
		snprintf(want, sizeof(want), "S%d ", s);
		bool found = false;
		for (size_t i = 0; i < c->n && !found; i++)
			found = strstr(c->v[i].text, want) != NULL;
		cr_expect(found, "sentence %d", s);
	}
	ab_chunks_free(c);
	free(text);
}

Test(chunks, long_sentence_is_cut_with_word_overlap)
{
	struct ab_buf b = {0};
	for (int i = 0; i < 250; i++)
		ab_buf_printf(&b, "w%d ", i);
	struct ab_chunks *c = chunk(b.data, 100, 20);
	/* pieces of 100 words: w0-99, w100-199, w200-249; each chunk after the
	 * first repeats the last words of the previous one that still fit */
	cr_assert_eq(c->n, 3);
	cr_expect_eq(c->v[0].tokens, 100);
	cr_expect_eq(strncmp(c->v[0].text, "w0 ", 3), 0);
	cr_expect_eq(c->v[1].overlap, 0, "a 100-word piece leaves no room");
	cr_expect_eq(strncmp(c->v[1].text, "w100 ", 5), 0);
	cr_expect_eq(c->v[2].overlap, 20);
	cr_expect_eq(c->v[2].tokens, 70);
	cr_expect_eq(strncmp(c->v[2].text, "w180 ", 5), 0, "%s", c->v[2].text);
	for (size_t i = 0; i < c->n; i++)
		cr_expect_leq(c->v[i].tokens, 100);
	ab_chunks_free(c);
	ab_buf_free(&b);
}

Test(chunks, overlap_is_capped_at_half_the_target)
{
	char *text = ten_word_sentences(20);
	struct ab_chunks *c = chunk(text, 40, 1000);
	for (size_t i = 1; i < c->n; i++) {
		cr_expect_leq(c->v[i].overlap, 20);
		cr_expect_leq(c->v[i].tokens, 40);
		cr_expect_gt(c->v[i].tokens, c->v[i].overlap, "every chunk brings new text");
	}
	ab_chunks_free(c);
	free(text);
}

Test(chunks, markdown_heading_paths)
{
	const char *md = "Intro text before any heading.\n"
			 "# Guide\n"
			 "Guide text.\n"
			 "## Install ##\n"
			 "Install text.\n"
			 "```\n"
			 "# not a heading, a shell comment\n"
			 "```\n"
			 "### Linux\n"
			 "Linux text.\n"
			 "## Use\n"
			 "Use text.\n"
			 "\n"
			 "Setext Title\n"
			 "============\n"
			 "Setext body.\n"
			 "#hashtag is not a heading.\n";
	struct ab_chunks *c = chunk(md, 200, 0);
	const char *want_heading[] = {"", "Guide", "Guide > Install", "Guide > Install > Linux",
				      "Guide > Use", "Setext Title"};
	const char *want_start[] = {"Intro", "Guide text", "Install text", "Linux text",
				    "Use text", "Setext body"};
	uint32_t want_depth[] = {0, 1, 2, 3, 2, 1};
	cr_assert_eq(c->n, 6);
	for (size_t i = 0; i < c->n; i++) {
		cr_expect_str_eq(c->v[i].heading, want_heading[i]);
		cr_expect_eq(c->v[i].depth, want_depth[i]);
		cr_expect_eq(strncmp(c->v[i].text, want_start[i], strlen(want_start[i])), 0,
			     "chunk %zu: %s", i, c->v[i].text);
		cr_expect_null(strstr(c->v[i].text, "Setext Title"));
	}
	cr_expect_not_null(strstr(c->v[2].text, "# not a heading"), "fenced code stays");
	cr_expect_not_null(strstr(c->v[5].text, "#hashtag"));

	struct ab_chunk_params p;
	ab_chunk_params_default(&p);
	p.no_headings = true;
	struct ab_chunks *plain;
	cr_assert_eq(ab_chunk_text(md, strlen(md), &p, &plain), 0);
	cr_expect_eq(plain->n, 1);
	cr_expect_str_eq(plain->v[0].heading, "");
	ab_chunks_free(plain);
	ab_chunks_free(c);
}

Test(chunks, chunks_do_not_cross_sections)
{
	const char *md = "# A\nOne sentence here. Two sentence here.\n# B\nThree sentence here.\n";
	struct ab_chunks *c = chunk(md, 100, 20);
	cr_assert_eq(c->n, 2);
	cr_expect_str_eq(c->v[0].heading, "A");
	cr_expect_str_eq(c->v[1].heading, "B");
	cr_expect_eq(c->v[1].overlap, 0, "no overlap across a heading");
	cr_expect_str_eq(c->v[1].text, "Three sentence here.");
	ab_chunks_free(c);
}

Test(chunks, form_feed_pages)
{
	struct ab_buf b = {0};
	for (int page = 0; page < 3; page++) {
		if (page)
			ab_buf_putc(&b, '\f');
		for (int s = 0; s < 4; s++)
			ab_buf_printf(&b, "Page%d sentence%d has five words. ", page + 1, s);
	}
	struct ab_chunks *c = chunk(b.data, 5, 0);
	cr_assert_eq(c->n, 12);
	for (size_t i = 0; i < c->n; i++) {
		char want[16];
		snprintf(want, sizeof(want), "Page%zu ", i / 4 + 1);
		cr_expect_eq(strncmp(c->v[i].text, want, strlen(want)), 0);
		cr_expect_eq(c->v[i].page, i / 4 + 1, "chunk %zu", i);
		cr_expect_eq(c->v[i].page_last, i / 4 + 1);
	}
	ab_chunks_free(c);

	/* a chunk spanning a page break; the form feed becomes a newline */
	c = chunk(b.data, 100, 0);
	cr_assert_eq(c->n, 1);
	cr_expect_eq(c->v[0].page, 1);
	cr_expect_eq(c->v[0].page_last, 3);
	cr_expect_null(strchr(c->v[0].text, '\f'));
	ab_chunks_free(c);
	ab_buf_free(&b);
}

Test(chunks, explicit_page_starts)
{
	const char *t = "First page text. Second page text. Third page text.";
	const char *p2 = strstr(t, "Second"), *p3 = strstr(t, "Third");
	size_t starts[] = {0, (size_t)(p2 - t), (size_t)(p3 - t)};
	struct ab_chunk_params p;
	ab_chunk_params_default(&p);
	p.target_tokens = 3;
	p.overlap_tokens = 0;
	p.page_starts = starts;
	p.npage_starts = 3;
	struct ab_chunks *c;
	cr_assert_eq(ab_chunk_text(t, strlen(t), &p, &c), 0);
	cr_assert_eq(c->n, 3);
	for (size_t i = 0; i < 3; i++)
		cr_expect_eq(c->v[i].page, i + 1);
	ab_chunks_free(c);

	size_t bad[] = {10, 5};
	p.page_starts = bad;
	p.npage_starts = 2;
	cr_expect_eq(ab_chunk_text(t, strlen(t), &p, &c), AB_EINVAL);
	cr_expect_null(c);
	p.page_starts = NULL;
	cr_expect_eq(ab_chunk_text(t, strlen(t), &p, &c), AB_EINVAL);
}

Test(chunks, empty_and_invalid_input)
{
	struct ab_chunks *c;
	cr_assert_eq(ab_chunk_text("", 0, NULL, &c), 0);
	cr_expect_eq(c->n, 0);
	ab_chunks_free(c);
	cr_assert_eq(ab_chunk_text(" \n\n# Only a heading\n", 20, NULL, &c), 0);
	cr_expect_eq(c->n, 0);
	ab_chunks_free(c);
	cr_expect_eq(ab_chunk_text(NULL, 5, NULL, &c), AB_EINVAL);
	cr_expect_eq(ab_chunk_text("x", 1, NULL, NULL), AB_EINVAL);
	ab_chunks_free(NULL);

	const char bad[] = "Caf\xc3 au lait\xff. Next sentence.";
	cr_assert_eq(ab_chunk_text(bad, sizeof(bad) - 1, NULL, &c), 0);
	cr_assert_eq(c->n, 1);
	cr_expect_str_eq(c->v[0].text, "Caf au lait. Next sentence.");
	ab_chunks_free(c);
}

Test(chunks, random_text_respects_limits)
{
	uint64_t s = 99;
	for (int round = 0; round < 200; round++) {
		struct ab_buf b = {0};
		int words = 1 + (int)(round * 7 % 900);
		for (int i = 0; i < words; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t r = (uint32_t)(s >> 33);
			static const char *const seps[] = {" ", " ", " ", ". ", "\n", "\n\n", "! ",
							   "\f", "\n# H\n", " e.g. "};
			ab_buf_printf(&b, "word%u%s", r % 1000, seps[r % AB_ARRAY_LEN(seps)]);
		}
		uint32_t target = 5 + (uint32_t)(round % 60), overlap = (uint32_t)(round % 30);
		struct ab_chunks *c = chunk(b.data, target, overlap);
		for (size_t i = 0; i < c->n; i++) {
			const struct ab_chunk *k = &c->v[i];
			cr_assert_leq(k->tokens, target);
			cr_assert_leq(k->overlap, overlap);
			cr_assert_leq(k->overlap, target / 2);
			cr_assert_gt(k->tokens, k->overlap);
			cr_assert_eq(ab_text_count_tokens(k->text, k->len), k->tokens);
			cr_assert_lt(k->start, k->end);
			cr_assert_leq(k->end, b.len);
			cr_assert_leq(k->page, k->page_last);
		}
		ab_chunks_free(c);
		ab_buf_free(&b);
	}
}

Test(chunks, arbitrary_bytes_are_safe)
{
	char buf[700];
	uint64_t s = 777;
	const char pool[] = "# .!?\n\f\r\t`~-=|*1)\xe3\x80\x82\xe6\x9d\xb1\xff\xc3\x80 aZ";
	for (int round = 0; round < 1500; round++) {
		size_t n = (size_t)(round % 700);
		for (size_t i = 0; i < n; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			buf[i] = pool[(s >> 33) % (sizeof(pool) - 1)];
		}
		struct ab_chunk_params p;
		ab_chunk_params_default(&p);
		p.target_tokens = 1 + (uint32_t)(round % 40);
		p.overlap_tokens = (uint32_t)(round % 25);
		struct ab_chunks *c;
		cr_assert_eq(ab_chunk_text(buf, n, &p, &c), 0);
		for (size_t i = 0; i < c->n; i++) {
			cr_assert_leq(c->v[i].end, n);
			cr_assert_leq(c->v[i].tokens, p.target_tokens);
			cr_assert_eq(strlen(c->v[i].text), c->v[i].len);
		}
		ab_chunks_free(c);
	}
}
