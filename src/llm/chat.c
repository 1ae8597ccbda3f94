/*
 * chat.c - chat templates: turns a conversation (a list of role/content
 * messages) into the exact prompt text a chat model was trained on.
 *
 * A GGUF file carries its template as Jinja source (tokenizer.chat_template).
 * We do not run Jinja. Like llama.cpp's llama_chat_apply_template, we look
 * for a few distinctive substrings to decide which family the template
 * belongs to (ab_chat_detect) and then format with a small built-in
 * formatter per family (ab_chat_render). The output matches llama.cpp's
 * byte for byte for the supported families: no BOS text (the tokenizer adds
 * BOS), Llama 2 in its "sys-strip" variant, Mistral in its v3-tekken
 * variant, and Gemma with the system message merged into the first user
 * turn. A NULL or unrecognised template falls back to ChatML. See
 * docs/llm-chat-templates.md.
 */
#include "chat.h"

#include <string.h>

#include "common.h"

/* ---- small helpers ---- */

static bool has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* The C locale's isspace() set, without the locale or sign pitfalls. */
static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends s with leading and trailing whitespace removed. */
static void put_trimmed(struct ab_buf *b, const char *s)
{
	size_t start = 0, end = strlen(s);

	while (start < end && is_space((unsigned char)s[start]))
		start++;
	while (end > start && is_space((unsigned char)s[end - 1]))
		end--;
	ab_buf_append(b, s + start, end - start);
}

/* Length of s once trimmed (0: empty or whitespace only). */
static size_t trimmed_len(const char *s)
{
	size_t start = 0, end = strlen(s);

	while (start < end && is_space((unsigned char)s[start]))
		start++;
	while (end > start && is_space((unsigned char)s[end - 1]))
		end--;
	return end - start;
}

static bool role_is(const struct ab_chat_msg *m, const char *role)
{
	return strcmp(m->role, role) == 0;
}

/* ---- names ---- */

static const char *const family_names[] = {
	[AB_CHAT_CHATML] = "chatml",
	[AB_CHAT_LLAMA2] = "llama2",
	[AB_CHAT_LLAMA3] = "llama3",
	[AB_CHAT_MISTRAL] = "mistral",
	[AB_CHAT_GEMMA] = "gemma",
	[AB_CHAT_PHI3] = "phi3",
};

const char *ab_chat_family_name(enum ab_chat_family f)
{
	if ((unsigned)f >= AB_ARRAY_LEN(family_names))
		return "unknown";
	return family_names[f];
}

int ab_chat_family_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < AB_ARRAY_LEN(family_names); i++)
		if (strcmp(name, family_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---- detection ---- */

/*
 * The order matters: a template can mention several markers (a ChatML
 * template that explains [INST], say), and the first test that matches
 * wins, as in llama.cpp.
 */
enum ab_chat_family ab_chat_detect(const char *tmpl)
{
	if (!tmpl)
		return AB_CHAT_CHATML;
	if (has(tmpl, "<|im_start|>"))
		return AB_CHAT_CHATML;
	if (has(tmpl, "[INST]")) {
		/*
		 * Mistral's official templates write the tag as a quoted
		 * literal with no space ("[INST]") or support tool calls;
		 * Llama 2 and its derivatives write '[INST] ' with <<SYS>>.
		 */
		if (has(tmpl, "[SYSTEM_PROMPT]"))
			return AB_CHAT_MISTRAL; /* v7: closest we have */
		if (has(tmpl, "<<SYS>>"))
			return AB_CHAT_LLAMA2;
		if (has(tmpl, "\"[INST]\"") || has(tmpl, "'[INST]'") ||
		    has(tmpl, "[AVAILABLE_TOOLS]") || has(tmpl, "[/INST]\""))
			return AB_CHAT_MISTRAL;
		return AB_CHAT_LLAMA2;
	}
	if (has(tmpl, "<|assistant|>") && has(tmpl, "<|end|>"))
		return AB_CHAT_PHI3;
	if (has(tmpl, "<|start_header_id|>") && has(tmpl, "<|end_header_id|>"))
		return AB_CHAT_LLAMA3;
	if (has(tmpl, "<start_of_turn>"))
		return AB_CHAT_GEMMA;
	return AB_CHAT_CHATML;
}

/* ---- formatters ---- */

/* <|im_start|>role\ncontent<|im_end|>\n ... [<|im_start|>assistant\n] */
static void render_chatml(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n,
			  bool add_assistant)
{
	for (size_t i = 0; i < n; i++) {
		ab_buf_puts(b, "<|im_start|>");
		ab_buf_puts(b, msgs[i].role);
		ab_buf_putc(b, '\n');
		ab_buf_puts(b, msgs[i].content);
		ab_buf_puts(b, "<|im_end|>\n");
	}
	if (add_assistant)
		ab_buf_puts(b, "<|im_start|>assistant\n");
}

/*
 * Llama 2 chat, llama.cpp's "llama2-sys-strip": contents trimmed, the
 * system message wrapped in <<SYS>> inside the first [INST], assistant
 * replies glued to [/INST] and closed with </s>. The template always ends
 * inside an open or closed [INST] turn, so add_assistant changes nothing.
 */
static void render_llama2(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n)
{
	bool in_turn = true;

	ab_buf_puts(b, "[INST] ");
	for (size_t i = 0; i < n; i++) {
		const struct ab_chat_msg *m = &msgs[i];

		if (!in_turn) {
			ab_buf_puts(b, "[INST] ");
			in_turn = true;
		}
		if (role_is(m, "system")) {
			ab_buf_puts(b, "<<SYS>>\n");
			put_trimmed(b, m->content);
			ab_buf_puts(b, "\n<</SYS>>\n\n");
		} else if (role_is(m, "user")) {
			put_trimmed(b, m->content);
			ab_buf_puts(b, " [/INST]");
		} else {
			put_trimmed(b, m->content);
			ab_buf_puts(b, "</s>");
			in_turn = false;
		}
	}
}

/* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ... */
static void render_llama3(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n,
			  bool add_assistant)
{
	for (size_t i = 0; i < n; i++) {
		ab_buf_puts(b, "<|start_header_id|>");
		ab_buf_puts(b, msgs[i].role);
		ab_buf_puts(b, "<|end_header_id|>\n\n");
		put_trimmed(b, msgs[i].content);
		ab_buf_puts(b, "<|eot_id|>");
	}
	if (add_assistant)
		ab_buf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/*
 * Mistral v3 "tekken" (Nemo): [INST]user[/INST]assistant</s>, contents
 * trimmed, a system message held back and put in front of the next user
 * message with a blank line. No open assistant tag exists, so
 * add_assistant changes nothing.
 */
static void render_mistral(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n)
{
	const char *sys = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct ab_chat_msg *m = &msgs[i];

		if (role_is(m, "system")) {
			sys = m->content;
		} else if (role_is(m, "user")) {
			ab_buf_puts(b, "[INST]");
			if (sys && trimmed_len(sys) > 0) {
				put_trimmed(b, sys);
				ab_buf_puts(b, "\n\n");
			}
			sys = NULL;
			put_trimmed(b, m->content);
			ab_buf_puts(b, "[/INST]");
		} else {
			put_trimmed(b, m->content);
			ab_buf_puts(b, "</s>");
		}
	}
}

/*
 * Gemma: <start_of_turn>user\n...<end_of_turn>\n, "assistant" spelled
 * "model". Gemma has no system role: system texts are collected and put
 * in front of the next non-model turn, separated by a blank line.
 */
static void render_gemma(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n,
			 bool add_assistant)
{
	struct ab_buf sys = {0};

	for (size_t i = 0; i < n; i++) {
		const struct ab_chat_msg *m = &msgs[i];
		const char *role = role_is(m, "assistant") ? "model" : m->role;

		if (role_is(m, "system")) {
			put_trimmed(&sys, m->content);
			continue;
		}
		ab_buf_puts(b, "<start_of_turn>");
		ab_buf_puts(b, role);
		ab_buf_putc(b, '\n');
		if (strcmp(role, "model") != 0 && sys.len > 0) {
			ab_buf_append(b, sys.data, sys.len);
			ab_buf_puts(b, "\n\n");
			ab_buf_reset(&sys);
		}
		put_trimmed(b, m->content);
		ab_buf_puts(b, "<end_of_turn>\n");
	}
	if (add_assistant)
		ab_buf_puts(b, "<start_of_turn>model\n");
	ab_buf_free(&sys);
}

/* <|role|>\ncontent<|end|>\n ... [<|assistant|>\n] */
static void render_phi3(struct ab_buf *b, const struct ab_chat_msg *msgs, size_t n,
			bool add_assistant)
{
	for (size_t i = 0; i < n; i++) {
		ab_buf_puts(b, "<|");
		ab_buf_puts(b, msgs[i].role);
		ab_buf_puts(b, "|>\n");
		ab_buf_puts(b, msgs[i].content);
		ab_buf_puts(b, "<|end|>\n");
	}
	if (add_assistant)
		ab_buf_puts(b, "<|assistant|>\n");
}

int ab_chat_render(enum ab_chat_family f, const struct ab_chat_msg *msgs, size_t n,
		   bool add_assistant, char **out)
{
	struct ab_buf b = {0};

	if (!out)
		return AB_EINVAL;
	*out = NULL;
	if (n > 0 && !msgs)
		return AB_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			return AB_EINVAL;

	switch (f) {
	case AB_CHAT_CHATML:
		render_chatml(&b, msgs, n, add_assistant);
		break;
	case AB_CHAT_LLAMA2:
		render_llama2(&b, msgs, n);
		break;
	case AB_CHAT_LLAMA3:
		render_llama3(&b, msgs, n, add_assistant);
		break;
	case AB_CHAT_MISTRAL:
		render_mistral(&b, msgs, n);
		break;
	case AB_CHAT_GEMMA:
		render_gemma(&b, msgs, n, add_assistant);
		break;
	case AB_CHAT_PHI3:
		render_phi3(&b, msgs, n, add_assistant);
		break;
	default:
		return AB_EINVAL;
	}
	/* An empty conversation still yields a (possibly empty) string. */
	if (!b.data)
		ab_buf_append(&b, "", 0);
	*out = ab_buf_steal(&b);
	return 0;
}

/* ---- stop strings ---- */

static const char *const stop_chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
static const char *const stop_llama2[] = {"</s>", NULL};
static const char *const stop_llama3[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", NULL};
static const char *const stop_mistral[] = {"</s>", NULL};
static const char *const stop_gemma[] = {"<end_of_turn>", NULL};
static const char *const stop_phi3[] = {"<|end|>", "<|endoftext|>", NULL};

const char *const *ab_chat_stop_strings(enum ab_chat_family f)
{
	switch (f) {
	case AB_CHAT_LLAMA2:
		return stop_llama2;
	case AB_CHAT_LLAMA3:
		return stop_llama3;
	case AB_CHAT_MISTRAL:
		return stop_mistral;
	case AB_CHAT_GEMMA:
		return stop_gemma;
	case AB_CHAT_PHI3:
		return stop_phi3;
	case AB_CHAT_CHATML:
	default:
		return stop_chatml;
	}
}
