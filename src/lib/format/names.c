/*
 * names.c - the file names parameters are shown under, and the UTF-8 check
 * of the strings a checkpoint stores.
 *
 * Owns the one-to-one mapping between a parameter name (any bytes) and its
 * shown file name: ckpt_name_escape and its inverse ckpt_name_unescape;
 * and ckpt_name_decode, the lenient decoding of names users type, which
 * unescape is built on.
 * Pure functions on their arguments: no state, no locking; they must never
 * accept a file name that would not escape back to itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/format.h"

char *ckpt_name_escape(const char *name, size_t len)
{
	char *out, *o;
	bool dots = (len == 1 || len == 2) && name[0] == '.' &&
		    name[len - 1] == '.';

	if (len == 0)
		return strdup("%");
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '%' || c == '/' || c < 0x20 || c == 0x7f ||
		    (dots && c == '.'))
			o += sprintf(o, "%%%02X", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

ckpt_err ckpt_name_decode(const char *fname, char **name, size_t *len)
{
	size_t n = strlen(fname), o = 0;
	char *out;

	if (strcmp(fname, "%") == 0) {
		*name = strdup("");
		*len = 0;
		return *name ? CKPT_OK : CKPT_ERR_NOMEM;
	}
	out = malloc(n + 1);
	if (!out)
		return CKPT_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (fname[i] != '%') {
			out[o++] = fname[i];
			continue;
		}
		if (i + 2 >= n || (hi = hexval(fname[i + 1])) < 0 ||
		    (lo = hexval(fname[i + 2])) < 0) {
			free(out);
			return CKPT_ERR_INVAL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = '\0';
	*name = out;
	*len = o;
	return CKPT_OK;
}

ckpt_err ckpt_name_unescape(const char *fname, char **name, size_t *len)
{
	ckpt_err r = ckpt_name_decode(fname, name, len);
	char *check;

	if (r)
		return r;
	check = ckpt_name_escape(*name, *len);
	if (!check || strcmp(check, fname) != 0) {
		free(check);
		free(*name);
		*name = NULL;
		return check ? CKPT_ERR_INVAL : CKPT_ERR_NOMEM;
	}
	free(check);
	return CKPT_OK;
}

bool ckpt_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p++, n, cp, min;
		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if ((size_t)(end - p) < n)
			return false;
		for (unsigned i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, too large, surrogate */
	}
	return true;
}
