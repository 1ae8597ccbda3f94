/*
 * chat.h - chat templates: turning a list of messages into the prompt
 * text a model was trained on. The Jinja template in a GGUF file
 * (tokenizer.chat_template) is recognised by its markers and rendered by
 * a built-in formatter per family, as llama.cpp does; an unrecognised
 * template falls back to ChatML (documented in docs/llm.md).
 */
#ifndef AB_CHAT_H
#define AB_CHAT_H

#include <stdbool.h>
#include <stddef.h>

enum ab_chat_family {
	AB_CHAT_CHATML = 0,  /* <|im_start|>role\n...<|im_end|>  (fallback) */
	AB_CHAT_LLAMA2,      /* [INST] <<SYS>> ... [/INST] */
	AB_CHAT_LLAMA3,      /* <|start_header_id|>role<|end_header_id|> ... <|eot_id|> */
	AB_CHAT_MISTRAL,     /* [INST]...[/INST] (v3 tekken, no spaces) */
	AB_CHAT_GEMMA,       /* <start_of_turn>user ... <end_of_turn> */
	AB_CHAT_PHI3,        /* <|user|> ... <|end|> */
};

struct ab_chat_msg {
	const char *role;     /* "system", "user", "assistant" */
	const char *content;
};

/* Recognises the family of a Jinja template (NULL or unknown: ChatML). */
enum ab_chat_family ab_chat_detect(const char *tmpl);
const char *ab_chat_family_name(enum ab_chat_family f);
/* Parses "chatml", "llama2", ... Returns the family or -1. */
int ab_chat_family_parse(const char *name);

/* Renders msgs; with add_assistant, ends with the assistant turn's
 * opening so the model answers. The result (malloc'd, NUL-terminated)
 * goes to *out. Returns 0 or a negative code. */
int ab_chat_render(enum ab_chat_family f, const struct ab_chat_msg *msgs, size_t n,
		   bool add_assistant, char **out);

/* Texts that end an assistant turn for a family (for stop strings),
 * NULL-terminated. */
const char *const *ab_chat_stop_strings(enum ab_chat_family f);

#endif
