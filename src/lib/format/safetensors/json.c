/*
 * json.c - the JSON text of a header as Hugging Face's serializer writes
 * it: compact serde_json (serde-rs/json src/ser.rs).  Strings escape only
 * '"', '\\', \b \t \n \f \r, and other bytes below 0x20 as \u00xx in
 * lowercase hex; everything else, '/' and non-ASCII included, is written
 * as it is.  jansson, which reads our headers, cannot write this: it
 * spells \u escapes in upper case, and a byte-for-byte copy of
 * MindSpore's output needs serde's.
 *
 * A text is one caller's; no locking, no global state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/safetensors/st_format.h"

/* Makes room for n more bytes; false (and nomem) if there is none. */
static bool grow(struct st_text *t, size_t n)
{
	size_t cap = t->cap ? t->cap : 256;
	char *p;

	if (t->nomem)
		return false;
	if (t->len + n <= t->cap)
		return true;
	while (cap < t->len + n) {
		if (cap > SIZE_MAX / 2) {
			t->nomem = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(t->p, cap);
	if (!p) {
		t->nomem = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

void st_text_put(struct st_text *t, const char *s, size_t n)
{
	if (n && grow(t, n)) {
		memcpy(t->p + t->len, s, n);
		t->len += n;
	}
}

/* The escape of byte c, or NULL if it is written as it is. */
static const char *escape_of(unsigned char c, char buf[8])
{
	switch (c) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\b':
		return "\\b";
	case '\t':
		return "\\t";
	case '\n':
		return "\\n";
	case '\f':
		return "\\f";
	case '\r':
		return "\\r";
	default:
		if (c >= 0x20)
			return NULL;
		snprintf(buf, 8, "\\u%04x", c);
		return buf;
	}
}

void st_text_str(struct st_text *t, const char *s, size_t len)
{
	size_t run = 0; /* start of the bytes not yet appended */
	char buf[8];

	st_text_put(t, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		const char *esc = escape_of((unsigned char)s[i], buf);
		if (!esc)
			continue;
		st_text_put(t, s + run, i - run);
		st_text_put(t, esc, strlen(esc));
		run = i + 1;
	}
	st_text_put(t, s + run, len - run);
	st_text_put(t, "\"", 1);
}

void st_text_u64(struct st_text *t, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);

	st_text_put(t, buf, (size_t)n);
}

void st_text_free(struct st_text *t)
{
	free(t->p);
	t->p = NULL;
	t->len = t->cap = 0;
}
