/*
 * npy_parse.c - the parser of .npy headers (ckpt_npy_parse, ckpt_npy.h):
 * versions 1.0 to 3.0, and the part of Python's literal syntax numpy's
 * reader (ast.literal_eval) meets in a header, into a MindSpore dtype and
 * shape (the stand-ins of npy.c read back).  Pure functions on constant
 * tables: no allocation, no state; never reads past the buffer.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ckpt_npy.h"
#include "format/format.h"
#include "view/view.h"

/* ---- the parser --------------------------------------------------------- */

/* Where the parser is in the dict text [i, end) of s. */
struct lex {
	const uint8_t *s;
	size_t i, end;
	bool py2; /* versions 1.0, 2.0: a Python 2 'L' may follow a number */
	struct ckpt_error *err;
};

/* Fails with a message about the text at lx->i (lx in scope). */
#define BAD(...)                                            \
	ckpt_fail(lx->err, CKPT_ERR_INVAL, (uint64_t)lx->i, \
		  "not a valid .npy header: " __VA_ARGS__)

/* A span of the text, for messages. */
struct span {
	const char *p;
	int n;
};

/* The descr as written: a typestr, or the one field of a structured
 * dtype. */
struct descr {
	struct span text, ts, field;
	bool structured;
};

struct parsed {
	struct descr d;
	bool fortran;
	struct npy_shape ns;
	unsigned have; /* 1 descr, 2 fortran_order, 4 shape */
};

static bool ident_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Skips whitespace and comments ('#' to the end of the line, printable
 * ASCII): what Python's tokenizer skips inside brackets. */
static void skip_ws(struct lex *lx)
{
	while (lx->i < lx->end) {
		uint8_t c = lx->s[lx->i];

		if (c == '#') {
			while (lx->i < lx->end &&
			       ((lx->s[lx->i] >= 0x20 && lx->s[lx->i] < 0x7f) ||
				lx->s[lx->i] == '\t'))
				lx->i++;
			continue;
		}
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r' &&
		    c != '\f')
			return;
		lx->i++;
	}
}

/* Takes the character c, after whitespace, if it is next. */
static bool accept(struct lex *lx, char c)
{
	skip_ws(lx);
	if (lx->i < lx->end && lx->s[lx->i] == (uint8_t)c) {
		lx->i++;
		return true;
	}
	return false;
}

/* Takes the name w (True, False, L) if it is the next token. */
static bool word(struct lex *lx, const char *w)
{
	size_t n = strlen(w);

	skip_ws(lx);
	if (lx->end - lx->i < n || memcmp(lx->s + lx->i, w, n) ||
	    (lx->i + n < lx->end && ident_char(lx->s[lx->i + n])))
		return false;
	lx->i += n;
	return true;
}

/* A '...' or "..." string of printable ASCII without escapes. */
static ckpt_err string(struct lex *lx, struct span *out)
{
	size_t start;
	uint8_t q;

	skip_ws(lx);
	if (lx->i >= lx->end || (lx->s[lx->i] != '\'' && lx->s[lx->i] != '"'))
		return BAD("expected a string");
	q = lx->s[lx->i++];
	start = lx->i;
	for (; lx->i < lx->end && lx->s[lx->i] != q; lx->i++) {
		if (lx->s[lx->i] == '\\')
			return BAD("escapes in strings are not supported");
		if (lx->s[lx->i] < 0x20 || lx->s[lx->i] >= 0x7f)
			return BAD("a string holds a control or non-ASCII "
				   "byte");
	}
	if (lx->i >= lx->end)
		return BAD("a string is not closed");
	out->p = (const char *)lx->s + start;
	out->n = (int)(lx->i - start); /* < CKPT_NPY_DICT_MAX */
	lx->i++;
	return CKPT_OK;
}

/* A dim: a decimal Python int (a sign, '_' between digits, an 'L' after
 * it in versions 1.0 and 2.0), at most INT64_MAX and not negative. */
static ckpt_err dim(struct lex *lx, int64_t *v)
{
	uint64_t x = 0;
	bool neg = false;
	size_t start;

	skip_ws(lx);
	if (lx->i < lx->end && (lx->s[lx->i] == '+' || lx->s[lx->i] == '-')) {
		neg = lx->s[lx->i++] == '-';
		skip_ws(lx);
	}
	start = lx->i;
	if (lx->i >= lx->end || !is_digit(lx->s[lx->i]))
		return BAD("expected a dim (a decimal number) in the shape");
	while (lx->i < lx->end) {
		uint8_t c = lx->s[lx->i];

		if (c == '_' && lx->i + 1 < lx->end &&
		    is_digit(lx->s[lx->i + 1])) {
			lx->i++;
			continue;
		}
		if (!is_digit(c))
			break;
		if (x > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10)
			return BAD("a dim does not fit in 64 bits");
		x = x * 10 + (uint64_t)(c - '0');
		lx->i++;
	}
	if (lx->s[start] == '0' && x)
		return BAD("a dim has leading zeros");
	if (!(lx->py2 && word(lx, "L")) && lx->i < lx->end &&
	    ident_char(lx->s[lx->i]))
		return BAD("a dim is not a decimal number");
	if (neg && x)
		return BAD("negative dim -%" PRIu64, x);
	*v = (int64_t)x;
	return CKPT_OK;
}

/* The shape: a tuple of dims ("()", "(5,)", "(2, 3)"). */
static ckpt_err shape(struct lex *lx, struct npy_shape *ns)
{
	bool comma = false;
	uint32_t n = 0;
	ckpt_err e;

	if (!accept(lx, '('))
		return BAD("the shape is not a tuple");
	while (!accept(lx, ')')) {
		if (n == CKPT_NPY_MAX_DIMS)
			return BAD("more than %d dims: numpy arrays have at "
				   "most %d",
				   CKPT_NPY_MAX_DIMS, CKPT_NPY_MAX_DIMS);
		e = dim(lx, &ns->dims[n++]);
		if (e)
			return e;
		if (accept(lx, ','))
			comma = true;
		else if (accept(lx, ')'))
			break;
		else
			return BAD("expected ',' or ')' in the shape");
	}
	if (n == 1 && !comma)
		return BAD("the shape (%" PRId64 ") is a number, not a "
			   "tuple",
			   ns->dims[0]);
	ns->ndims = n;
	return CKPT_OK;
}

/* The descr: a typestr ('<f4') or a list of one (name, typestr) field. */
static ckpt_err descr(struct lex *lx, struct descr *d)
{
	size_t start;
	ckpt_err e;

	skip_ws(lx);
	start = lx->i;
	d->structured = accept(lx, '[');
	if (!d->structured) {
		e = string(lx, &d->ts);
		goto out;
	}
	if (!accept(lx, '('))
		return BAD("a structured descr is not a list of (name, "
			   "type) fields");
	e = string(lx, &d->field);
	if (!e && !accept(lx, ','))
		return BAD("expected ',' after a field name");
	if (!e)
		e = string(lx, &d->ts);
	if (e)
		return e;
	accept(lx, ',');
	if (!accept(lx, ')'))
		return BAD("a field of a structured descr has a shape or "
			   "more: only (name, type) is a tensor");
	accept(lx, ',');
	if (!accept(lx, ']'))
		return BAD("a structured descr of more than one field is not "
			   "a tensor");
out:
	d->text.p = (const char *)lx->s + start;
	d->text.n = (int)(lx->i - start);
	return e;
}

/* The value of the key k. */
static ckpt_err value(struct lex *lx, struct span k, struct parsed *p)
{
	if (k.n == 5 && !memcmp(k.p, "descr", 5)) {
		p->have |= 1;
		return descr(lx, &p->d);
	}
	if (k.n == 13 && !memcmp(k.p, "fortran_order", 13)) {
		p->have |= 2;
		p->fortran = word(lx, "True");
		if (p->fortran || word(lx, "False"))
			return CKPT_OK;
		return BAD("fortran_order is not True or False");
	}
	if (k.n == 5 && !memcmp(k.p, "shape", 5)) {
		p->have |= 4;
		return shape(lx, &p->ns);
	}
	return BAD("unknown key '%.*s' (a header has descr, fortran_order "
		   "and shape)",
		   k.n, k.p);
}

/* The dict literal, and nothing but whitespace after it. */
static ckpt_err dict(struct lex *lx, struct parsed *p)
{
	ckpt_err e;

	if (!accept(lx, '{'))
		return BAD("the header is not a dict");
	while (!accept(lx, '}')) {
		struct span k;

		e = string(lx, &k);
		if (e)
			return e;
		if (!accept(lx, ':'))
			return BAD("expected ':' after a key");
		e = value(lx, k, p); /* a repeated key: the last one counts */
		if (e)
			return e;
		if (accept(lx, ','))
			continue;
		if (accept(lx, '}'))
			break;
		return BAD("expected ',' or '}' in the dict");
	}
	if (p->have != 7)
		return BAD("the key '%s' is missing", !(p->have & 1) ? "descr"
						      : !(p->have & 2)
							      ? "fortran_order"
							      : "shape");
	skip_ws(lx);
	if (lx->i != lx->end)
		return BAD("bytes after the dict (is the header length "
			   "wrong?)");
	return CKPT_OK;
}

/* The dtype whose stand-in or numpy dtype d is; its itemsize into
 * *itemsize. */
static ckpt_err resolve(struct lex *lx, const struct descr *d, ckpt_dtype *dt,
			uint64_t *itemsize)
{
	const char *s = d->ts.p;
	int n = d->ts.n, k = 0;
	char order = '|', kind, canon[32], name[NPY_FIELD_MAX];
	uint64_t size = 0;

	if (n && strchr("<>|=", s[0]))
		order = s[k++];
	kind = k < n ? s[k++] : '\0';
	if (kind == 'O')
		return BAD("descr %.*s: object arrays (pickled Python objects) "
			   "are not tensors",
			   d->text.n, d->text.p);
	if (kind == 'M' || kind == 'm')
		return BAD("descr %.*s: datetime64 and timedelta64 have no "
			   "MindSpore dtype",
			   d->text.n, d->text.p);
	if (!kind || !strchr("biufcVU", kind) || k == n || n - k > 10)
		goto unknown;
	for (; k < n; k++) {
		if (!is_digit((uint8_t)s[k]))
			goto unknown;
		size = size * 10 + (uint64_t)(s[k] - '0');
	}
	if (order == '>' && (kind == 'U' || (kind != 'V' && size > 1)))
		return BAD("descr %.*s: big-endian data; save "
			   "a.astype(a.dtype.newbyteorder('<')) instead",
			   d->text.n, d->text.p);
	if (kind == 'U') {
		if (d->structured || !size || size > NPY_ITEMSIZE_MAX / 4)
			goto unknown;
		*dt = CKPT_DT_STR;
		*itemsize = size * 4;
		return CKPT_OK;
	}
	snprintf(canon, sizeof(canon), "%c%c%" PRIu64,
		 kind == 'V' || size == 1 ? '|' : '<', kind, size);
	for (int i = 0; i < CKPT_DT_COUNT; i++) {
		bool field = false;
		const char *ts = ckpt_dtype_npy((ckpt_dtype)i, &field);

		if (field != d->structured || strcmp(ts, canon))
			continue;
		npy_field_name((ckpt_dtype)i, name);
		if (field && ((size_t)d->field.n != strlen(name) ||
			      memcmp(d->field.p, name, strlen(name))))
			continue;
		*dt = (ckpt_dtype)i;
		*itemsize = size;
		return CKPT_OK;
	}
unknown:
	return BAD("descr %.*s has no MindSpore dtype", d->text.n, d->text.p);
}

/* The MindSpore shape of npy shape ns of dt into out. */
static ckpt_err ms_shape(struct lex *lx, ckpt_dtype dt,
			 const struct npy_shape *ns, struct ckpt_npy_info *out)
{
	unsigned bits = ckpt_dtype_bits(dt);
	uint64_t need;
	int64_t *last;

	out->ndims = ns->ndims;
	memcpy(out->dims, ns->dims, ns->ndims * sizeof(*ns->dims));
	if (dt == CKPT_DT_STR) {
		if (ns->ndims)
			return BAD("a str (descr '<U...') has shape (): a "
				   "MindSpore str parameter is one string");
		return CKPT_OK;
	}
	if (bits % 8 == 0)
		return CKPT_OK;
	if (!ns->ndims)
		return BAD("packed %s data has a dim, its bytes",
			   ckpt_dtype_name(dt));
	last = &out->dims[ns->ndims - 1];
	if (__builtin_mul_overflow(*last, 8, last) || *last % bits)
		return BAD("%" PRId64 " bytes are not a whole number of %s "
			   "elements",
			   ns->dims[ns->ndims - 1], ckpt_dtype_name(dt));
	*last /= bits;
	if (!ckpt_shape_bytes(dt, out->dims, out->ndims, &need) ||
	    need != out->size)
		return BAD("too many %s elements", ckpt_dtype_name(dt));
	return CKPT_OK;
}

/* The version and the header length in the prefix of s (len bytes). */
static ckpt_err prefix(const uint8_t *s, size_t len, struct ckpt_npy_info *out,
		       struct ckpt_error *err)
{
	size_t pre, hlen;

	if (memcmp(s, NPY_MAGIC, len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "not a .npy file: it does not start with "
				 "\\x93NUMPY");
	if (len < NPY_MAGIC_LEN + 2)
		goto truncated;
	if (s[6] < 1 || s[6] > 3 || s[7] != 0)
		return ckpt_fail(err, CKPT_ERR_INVAL, 6,
				 "not a valid .npy header: format version "
				 "%u.%u (numpy reads 1.0, 2.0 and 3.0)",
				 s[6], s[7]);
	out->version = s[6];
	pre = s[6] == 1 ? NPY_PREFIX_V1 : NPY_PREFIX_V2;
	if (len < pre)
		goto truncated;
	hlen = (size_t)s[8] | (size_t)s[9] << 8;
	if (pre == NPY_PREFIX_V2)
		hlen |= (size_t)s[10] << 16 | (size_t)s[11] << 24;
	if (hlen > CKPT_NPY_DICT_MAX)
		return ckpt_fail(err, CKPT_ERR_INVAL, 8,
				 "not a valid .npy header: %zu bytes of dict, "
				 "numpy reads at most %d",
				 hlen, CKPT_NPY_DICT_MAX);
	out->header_len = pre + hlen;
	if (len < out->header_len)
		goto truncated;
	return CKPT_OK;
truncated:
	return ckpt_fail(err, CKPT_ERR_INVAL, len,
			 "not a valid .npy header: it ends after %zu bytes",
			 len);
}

ckpt_err ckpt_npy_parse(const void *buf, size_t len, struct ckpt_npy_info *out,
			struct ckpt_error *err)
{
	struct parsed p = {.have = 0};
	struct lex l = {.s = buf, .err = err}, *lx = &l;
	uint64_t itemsize = 0;
	ckpt_err e = prefix(buf, len, out, err);

	if (e)
		return e;
	lx->i = out->version == 1 ? NPY_PREFIX_V1 : NPY_PREFIX_V2;
	lx->end = out->header_len;
	lx->py2 = out->version < 3;
	e = dict(lx, &p);
	if (e)
		return e;
	if (p.fortran)
		return BAD("fortran_order is True (column-major data); save "
			   "np.ascontiguousarray(a) instead");
	e = resolve(lx, &p.d, &out->dtype, &itemsize);
	if (e)
		return e;
	if (!npy_numpy_fits(&p.ns, itemsize, &out->size))
		return BAD("the shape holds more than 2^63 - 1 bytes");
	return ms_shape(lx, out->dtype, &p.ns, out);
}
