/*
 * stopwords.c - the English stop list of the analyzer (analyze.h).
 *
 * Function words only: articles, pronouns and their possessives,
 * auxiliary and modal verbs, prepositions, conjunctions, question words
 * and a few degree adverbs, plus the fragments that splitting contractions
 * on the apostrophe leaves behind ("don't" -> "don" "t"). Content words
 * stay, even very common ones, because BM25's IDF already discounts them
 * and a word that is common in one knowledge base is rare in another.
 *
 * The list is kept sorted bytewise, so a lookup is a binary search; the
 * unit tests check the order.
 */
#include "analyze.h"

#include "common.h"

#include <string.h>

struct stop_word {
	const char *w;
	size_t len;
};

#define W(s) {s, sizeof(s) - 1}

static const struct stop_word stop_list[] = {
	W("a"), W("about"), W("above"), W("after"), W("again"), W("against"), W("all"), W("also"),
	W("am"), W("an"), W("and"), W("any"), W("are"), W("aren"), W("as"), W("at"), W("be"),
	W("because"), W("been"), W("before"), W("being"), W("below"), W("between"), W("both"),
	W("but"), W("by"), W("can"), W("cannot"), W("could"), W("couldn"), W("d"), W("did"),
	W("didn"), W("do"), W("does"), W("doesn"), W("doing"), W("don"), W("down"), W("during"),
	W("each"), W("either"), W("etc"), W("few"), W("for"), W("from"), W("further"), W("had"),
	W("hadn"), W("has"), W("hasn"), W("have"), W("haven"), W("having"), W("he"), W("her"),
	W("here"), W("hers"), W("herself"), W("him"), W("himself"), W("his"), W("how"), W("i"),
	W("if"), W("in"), W("into"), W("is"), W("isn"), W("it"), W("its"), W("itself"), W("just"),
	W("ll"), W("m"), W("may"), W("me"), W("might"), W("more"), W("most"), W("must"), W("my"),
	W("myself"), W("neither"), W("no"), W("nor"), W("not"), W("of"), W("off"), W("on"),
	W("once"), W("only"), W("or"), W("other"), W("our"), W("ours"), W("ourselves"), W("out"),
	W("over"), W("own"), W("re"), W("s"), W("same"), W("shall"), W("she"), W("should"),
	W("shouldn"), W("so"), W("some"), W("such"), W("t"), W("than"), W("that"), W("the"),
	W("their"), W("theirs"), W("them"), W("themselves"), W("then"), W("there"), W("these"),
	W("they"), W("this"), W("those"), W("through"), W("thus"), W("to"), W("too"), W("under"),
	W("until"), W("up"), W("upon"), W("ve"), W("very"), W("was"), W("wasn"), W("we"),
	W("were"), W("weren"), W("what"), W("when"), W("where"), W("whether"), W("which"),
	W("while"), W("who"), W("whom"), W("whose"), W("why"), W("will"), W("with"), W("within"),
	W("without"), W("won"), W("would"), W("wouldn"), W("yet"), W("you"), W("your"),
	W("yours"), W("yourself"), W("yourselves"),
};

static int cmp_word(const char *w, size_t len, const struct stop_word *s)
{
	size_t sl = s->len;
	int c = memcmp(w, s->w, len < sl ? len : sl);
	if (c != 0)
		return c;
	return len < sl ? -1 : len > sl ? 1 : 0;
}

bool ab_text_is_stopword(const char *word, size_t len)
{
	size_t lo = 0, hi = AB_ARRAY_LEN(stop_list);
	if (len == 0 || len > 12) /* longer than any entry */
		return false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_word(word, len, &stop_list[mid]);
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

const char *ab_text_stopword(size_t i)
{
	return i < AB_ARRAY_LEN(stop_list) ? stop_list[i].w : NULL;
}
