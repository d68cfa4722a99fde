/*
 * cli_json.c - ls --json and info --json: the listing and the summary of
 * a checkpoint as JSON documents for scripts (see cli.h).  docs/json.md
 * is their schema; CLI_JSON_SCHEMA is its version, raised only by an
 * incompatible change (fields are added, never renamed or removed).
 *
 * Names are bytes, JSON strings are UTF-8: "name" is the name ls shows
 * with every byte that is not part of valid UTF-8 written %XX as well (ls
 * writes '%' as %25, so percent-decoding it always gives the stored
 * bytes); "stored_name" is the stored name as a JSON string, or null when
 * it is not UTF-8, and then "stored_name_base64" holds its bytes.
 *
 * ls streams: the envelope is written by hand and each parameter as one
 * compact jansson object on a line of its own, so memory does not grow
 * with the number of parameters.  info builds one small document.  Both
 * write nothing before the file is open and read, so a bad file gives an
 * empty stdout.  Single-threaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define CLI_JSON_SCHEMA 1

/* How each value is written: ASCII only (\uXXXX beyond it), as diff. */
#define DUMP_FLAGS (JSON_ENCODE_ANY | JSON_ENSURE_ASCII)

/* ---- values -------------------------------------------------------------- */

static json_t *json_u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

/* The byte count of the UTF-8 sequence a lead byte c starts (0: none). */
static size_t utf8_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

json_t *cli_json_text(const char *s, size_t len)
{
	char *out = malloc(len * 3 + 1), *o = out;
	json_t *v;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_len((unsigned char)s[i]);
		if (n && n <= len - i && ckpt_utf8_valid(s + i, n)) {
			memcpy(o, s + i, n);
			o += n;
			i += n;
		} else {
			o += sprintf(o, "%%%02X", (unsigned char)s[i++]);
		}
	}
	v = json_stringn(out, (size_t)(o - out));
	free(out);
	return v;
}

/* The len bytes at s in base64 (RFC 4648, padded); NULL when out of
 * memory. */
static json_t *json_base64(const char *s, size_t len)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
	json_t *v;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t w = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			w |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			w |= p[i + 2];
		*o++ = digits[w >> 18 & 63];
		*o++ = digits[w >> 12 & 63];
		*o++ = i + 1 < len ? digits[w >> 6 & 63] : '=';
		*o++ = i + 2 < len ? digits[w & 63] : '=';
	}
	v = json_stringn(out, (size_t)(o - out));
	free(out);
	return v;
}

/* Sets key of o to v (taking v; NULL is a failure): 0, or -1. */
static int set(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new(o, key, v);
}

/* The message after a document could not be written; exit status 1. */
static int failed(void)
{
	if (ferror(stdout))
		fprintf(stderr,
			"ckpt: writing the JSON document to stdout "
			"failed: %s\n",
			strerror(errno));
	else
		fprintf(stderr, "ckpt: out of memory while building the JSON "
				"document\n");
	return 1;
}

/* ---- ls --json ------------------------------------------------------------ */

/* [{"offset", "length"}, ...] of t, or null when the offsets are not
 * offsets in the file (encrypted); NULL when out of memory. */
static json_t *extents_json(const struct ckpt_file *f,
			    const struct ckpt_tensor *t)
{
	json_t *a;

	if (!ckpt_extents_in_file(f))
		return json_null();
	a = json_array();
	for (uint32_t i = 0; a && i < t->nextents; i++)
		if (json_array_append_new(
			    a,
			    json_pack("{s:I, s:I}", "offset",
				      (json_int_t)t->extents[i].src, "length",
				      (json_int_t)t->extents[i].len))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* The dims of t as a JSON array of integers; NULL when out of memory. */
static json_t *shape_json(const struct ckpt_tensor *t)
{
	json_t *a = json_array();

	for (uint32_t i = 0; a && i < t->ndims; i++)
		if (json_array_append_new(a, json_integer(t->dims[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* The facts of tensor t into o: dtype, stored_dtype, shape, bytes,
 * stored_bytes, layout, extents.  0, or -1 when out of memory. */
static int tensor_fields(json_t *o, const struct ckpt_file *f,
			 const struct ckpt_tensor *t)
{
	int bad = 0;

	bad |= set(o, "dtype", json_string(ckpt_dtype_name(t->dtype)));
	bad |= set(o, "stored_dtype",
		   cli_json_text(t->type_str, strlen(t->type_str)));
	bad |= set(o, "shape", shape_json(t));
	bad |= set(o, "bytes", json_u64(t->size));
	bad |= set(o, "stored_bytes", json_u64(t->stored));
	bad |= set(o, "layout",
		   json_string(t->bf16_from_f32 ? "bfloat16_in_float32"
						: "raw"));
	bad |= set(o, "extents", extents_json(f, t));
	return bad;
}

/* {"keys": {...}, "values": {...}, "status": {...}} of map parameter p
 * (each named as ls shows it); NULL when out of memory. */
static json_t *map_json(const struct ckpt_file *f, const struct ckpt_param *p)
{
	json_t *m = json_object();
	int bad = !m;

	for (int k = 0; !bad && k < CKPT_MAP_NTENSORS; k++) {
		size_t n = strlen(p->fname), s = strlen(ckpt_map_names[k]);
		char *sub = malloc(n + s + 2);
		json_t *t = json_object();

		if (set(m, ckpt_map_names[k], t) || !sub) { /* m takes t */
			bad = 1;
		} else {
			memcpy(sub, p->fname, n);
			sub[n] = '/';
			memcpy(sub + n + 1, ckpt_map_names[k], s + 1);
			bad = set(t, "name", cli_json_text(sub, n + s + 1)) ||
			      tensor_fields(t, f, &p->map[k]);
		}
		free(sub);
	}
	if (bad) {
		json_decref(m);
		return NULL;
	}
	return m;
}

/* The entry of parameter p; NULL when out of memory. */
static json_t *param_json(const struct ckpt_file *f, const struct ckpt_param *p)
{
	bool utf8 = ckpt_utf8_valid(p->name, p->name_len);
	bool map = p->kind == CKPT_PARAM_MAP;
	json_t *o = json_object();
	uint64_t bytes = p->tensor.size;
	int bad = !o;

	if (bad)
		return NULL;
	bad |= set(o, "name", cli_json_text(p->fname, strlen(p->fname)));
	bad |= set(o, "stored_name",
		   utf8 ? json_stringn(p->name, p->name_len) : json_null());
	bad |= set(o, "stored_name_base64",
		   utf8 ? json_null() : json_base64(p->name, p->name_len));
	bad |= set(o, "kind", json_string(map ? "map" : "tensor"));
	bad |= set(o, "slices", json_integer(p->nslices));
	if (map) { /* the fields of tensor_fields, in its order */
		for (int k = 0; k < CKPT_MAP_NTENSORS; k++)
			bytes += p->map[k].size;
		bad |= set(o, "dtype", json_null());
		bad |= set(o, "stored_dtype", json_null());
		bad |= set(o, "shape", json_null());
		bad |= set(o, "bytes", json_u64(bytes));
		bad |= set(o, "stored_bytes", json_null());
		bad |= set(o, "layout", json_null());
		bad |= set(o, "extents", json_null());
		bad |= set(o, "map", map_json(f, p));
	} else {
		bad |= tensor_fields(o, f, &p->tensor);
		bad |= set(o, "map", json_null());
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Writes v to stdout and drops it: 0, or -1 (NULL v: out of memory). */
static int put(json_t *v)
{
	int r = v ? json_dumpf(v, stdout, DUMP_FLAGS) : -1;

	json_decref(v);
	return r;
}

int cli_json_ls(const struct cli *c, const struct ckpt_file *f)
{
	const char *path = ckpt_path(f);
	const char *sep = "\n";
	int bad = 0;

	printf("{\"schema\": %d, \"file\": ", CLI_JSON_SCHEMA);
	bad |= put(cli_json_text(path, strlen(path)));
	printf(", \"format\": ");
	bad |= put(json_string(ckpt_format_of(f)));
	printf(", \"encrypted\": %s,\n \"parameters\": [",
	       ckpt_stats(f)->enc_mode != CKPT_ENC_NONE ? "true" : "false");
	for (size_t i = 0; !bad && i < ckpt_count(f); i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		if (!cli_select_keep(&c->sel, p->name))
			continue;
		printf("%s  ", sep);
		sep = ",\n";
		bad |= put(param_json(f, p));
	}
	if (bad) /* left unclosed: no parser takes it for the whole list */
		return failed();
	printf("%s]}\n", *sep == ',' ? "\n " : "");
	return 0;
}

/* ---- info --json ---------------------------------------------------------- */

/* {"Float32": n, ...}: the dtypes counted in n, in ckpt_dtype order. */
static json_t *dtypes_json(const struct cli_counts *n)
{
	json_t *o = json_object();

	for (int d = 0; o && d < CKPT_DT_COUNT; d++)
		if (n->dtype[d] && set(o, ckpt_dtype_name((ckpt_dtype)d),
				       json_u64(n->dtype[d]))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/* {"state", "value"}: whether f has a crc and what became of it. */
static json_t *crc_json(const struct cli *c, const struct ckpt_stats *st)
{
	const char *state = !st->has_crc      ? "absent"
			    : st->crc_checked ? "verified"
			    : c->ignore_crc   ? "ignored"
					      : "present";
	bool value = st->has_crc && !st->crc_wide;

	return json_pack("{s:s, s:o}", "state", state, "value",
			 value ? json_u64(st->crc_stored) : json_null());
}

/* {"mode", "blocks", "legacy"}: how f was encrypted. */
static json_t *encryption_json(const struct ckpt_stats *st)
{
	return json_pack("{s:s, s:I, s:b}", "mode",
			 ckpt_enc_mode_name(st->enc_mode), "blocks",
			 (json_int_t)st->enc_blocks, "legacy", st->enc_legacy);
}

/* The metadata of f as one object (every key, as stored, the Int4
 * markers too), or null when it has none; NULL when out of memory. */
static json_t *metadata_json(const struct ckpt_file *f)
{
	json_t *o;

	if (!ckpt_has_metadata(f))
		return json_null();
	o = json_object();
	for (size_t i = 0; o && i < ckpt_meta_count(f); i++) {
		const struct ckpt_meta_item *it = ckpt_meta_at(f, i);
		json_t *v =
			it->json ? json_loads(it->value, JSON_DECODE_ANY, NULL)
				 : json_string(it->value);
		if (set(o, it->key, v)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* v if f is in format fmt (a count only that format has), else null. */
static json_t *for_format(const struct ckpt_file *f, const char *fmt,
			  uint64_t v)
{
	return strcmp(ckpt_format_of(f), fmt) ? json_null() : json_u64(v);
}

int cli_json_info(const struct cli *c, const struct ckpt_file *f,
		  const struct cli_counts *n)
{
	const struct ckpt_stats *st = ckpt_stats(f);
	const char *path = ckpt_path(f);
	bool sel = c->sel.ninclude || c->sel.nexclude;
	json_t *o = json_object();
	int bad = !o;

	if (bad)
		goto out;
	bad |= set(o, "schema", json_integer(CLI_JSON_SCHEMA));
	bad |= set(o, "file", cli_json_text(path, strlen(path)));
	bad |= set(o, "format", json_string(ckpt_format_of(f)));
	bad |= set(o, "size", json_u64(st->disk_size));
	bad |= set(o, "header_bytes",
		   for_format(f, "safetensors", st->header_size));
	bad |= set(o, "records", for_format(f, "ckpt", st->records));
	bad |= set(o, "selection", json_boolean(sel));
	bad |= set(o, "parameters", json_u64(n->selected));
	bad |= set(o, "all_parameters", json_u64(ckpt_count(f)));
	bad |= set(o, "maps", json_u64(n->maps));
	bad |= set(o, "sliced", json_u64(n->sliced));
	bad |= set(o, "data_bytes", json_u64(sel ? n->data : st->data_bytes));
	bad |= set(o, "dtypes", dtypes_json(n));
	bad |= set(o, "encryption", encryption_json(st));
	bad |= set(o, "crc", crc_json(c, st));
	bad |= set(o, "unknown_fields", json_u64(st->unknown_fields));
	bad |= set(o, "duplicate_names", json_u64(st->duplicates));
	bad |= set(o, "metadata", metadata_json(f));
	if (!bad)
		bad = json_dumpf(o, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	if (!bad)
		putchar('\n');
out:
	json_decref(o);
	return bad ? failed() : 0;
}
