/*
 * npy.c - the .npy form of a tensor (ckpt_npy.h): the header np.save
 * writes for it, and the parser of .npy headers.
 *
 * The typestr of each dtype is a column of dtype.c's table; this file
 * knows numpy's header layout (numpy/lib/format.py of 1.24: the keys in
 * sorted order, repr() of the values, GROWTH_AXIS_MAX_DIGITS spaces for
 * shape[0] to grow in place, padding to ARRAY_ALIGN) and the part of
 * Python's literal syntax numpy's reader (ast.literal_eval) meets in a
 * header.  Pure functions on constant tables: no allocation, no state.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ckpt_npy.h"
#include "format/format.h"

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define PREFIX_V1 10	     /* magic, version, 2-byte length */
#define PREFIX_V2 12	     /* magic, version, 4-byte length (2.0, 3.0) */
#define GROWTH_DIGITS 21     /* numpy's GROWTH_AXIS_MAX_DIGITS */
#define ITEMSIZE_MAX INT_MAX /* numpy 1.x keeps an itemsize in a C int */
#define FIELD_MAX 32	     /* longer than any lower-case dtype name */

/* A shape as numpy sees it. */
struct npy_shape {
	uint32_t ndims;
	int64_t dims[CKPT_NPY_MAX_DIMS];
};

/* dt's name in lower case: the field name of its structured stand-in. */
static void field_name(ckpt_dtype dt, char name[FIELD_MAX])
{
	const char *s = ckpt_dtype_name(dt);
	size_t i;

	for (i = 0; s[i] && i + 1 < FIELD_MAX; i++)
		name[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a')
						     : s[i];
	name[i] = '\0';
}

int ckpt_npy_descr(ckpt_dtype dt, uint64_t size, char *buf, size_t cap)
{
	bool field = false;
	const char *ts = ckpt_dtype_npy(dt, &field);
	char name[FIELD_MAX];

	if (!ts)
		return -1;
	if (dt == CKPT_DT_STR)
		return snprintf(buf, cap, "'%s%" PRIu64 "'", ts, size / 4);
	if (!field)
		return snprintf(buf, cap, "'%s'", ts);
	field_name(dt, name);
	return snprintf(buf, cap, "[('%s', '%s')]", name, ts);
}

/* numpy's limit on an array (PyArray_NewFromDescr): the nonzero dims
 * times the itemsize fit in an npy_intp.  The data bytes into *bytes. */
static bool numpy_fits(const struct npy_shape *ns, uint64_t itemsize,
		       uint64_t *bytes)
{
	uint64_t n = itemsize;
	bool empty = false;

	for (uint32_t i = 0; i < ns->ndims; i++) {
		if (ns->dims[i] == 0)
			empty = true;
		else if (__builtin_mul_overflow(n, (uint64_t)ns->dims[i], &n) ||
			 n > INT64_MAX)
			return false;
	}
	*bytes = empty ? 0 : n;
	return true;
}

/* F4 and F6 as bytes: the last dim counts bytes when its elements fill
 * whole ones, else the shape is the 1-D byte count. */
static void packed_shape(struct npy_shape *ns, unsigned bits, uint64_t size)
{
	int64_t *last = ns->ndims ? &ns->dims[ns->ndims - 1] : NULL;
	int64_t b;

	if (last && !__builtin_mul_overflow(*last, (int64_t)bits, &b) &&
	    b % 8 == 0) {
		*last = b / 8;
		return;
	}
	ns->ndims = 1;
	ns->dims[0] = (int64_t)size; /* a shown size fits */
}

/* The shape numpy shows for a tensor of dt, dims[ndims], size bytes. */
static ckpt_err npy_shape(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			  uint64_t size, struct npy_shape *ns,
			  struct ckpt_error *err)
{
	unsigned bits = ckpt_dtype_bits(dt);
	char shape[256];
	uint64_t need;

	if (!bits)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 ".npy header: dtype %d out of range", (int)dt);
	if (ndims > CKPT_NPY_MAX_DIMS)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "a tensor of %u dims has no .npy form: numpy "
				 "arrays have at most %d",
				 ndims, CKPT_NPY_MAX_DIMS);
	ckpt_shape_format(dims, ndims, shape, sizeof(shape));
	if (dt == CKPT_DT_STR) {
		if (ndims || !size || size % 4)
			return ckpt_fail(err, CKPT_ERR_INVAL, 0,
					 "a str tensor of shape %s and %" PRIu64
					 " bytes has no .npy form: it needs "
					 "shape [] and whole UTF-32 code "
					 "points",
					 shape, size);
		if (size > ITEMSIZE_MAX)
			return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
					 "a str of %" PRIu64 " bytes has no "
					 ".npy form: numpy strings hold at "
					 "most %d bytes",
					 size, ITEMSIZE_MAX);
		ns->ndims = 0;
		return CKPT_OK;
	}
	if (!ckpt_shape_bytes(dt, dims, ndims, &need) || need != size)
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "a %s tensor of shape %s does not hold its "
				 "%" PRIu64 " bytes: set a shape that fits the "
				 "data for a .npy form",
				 ckpt_dtype_name(dt), shape, size);
	ns->ndims = ndims;
	memcpy(ns->dims, dims, ndims * sizeof(*dims));
	if (bits % 8)
		packed_shape(ns, bits, size);
	if (!numpy_fits(ns, bits % 8 ? 1 : bits / 8, &need))
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "a %s tensor of shape %s has no .npy form: "
				 "numpy arrays hold at most 2^63 - 1 bytes",
				 ckpt_dtype_name(dt), shape);
	return CKPT_OK;
}

/* The dict text of the header, before the padding, into buf (non-NULL)
 * like snprintf: its whole length. */
static size_t dict_text(ckpt_dtype dt, uint64_t size,
			const struct npy_shape *ns, char *buf, size_t cap)
{
	size_t n = 0;
	int w;

#define AT buf + (n < cap ? n : cap), n < cap ? cap - n : 0
#define PUT(...)                               \
	do {                                   \
		w = snprintf(AT, __VA_ARGS__); \
		n += w > 0 ? (size_t)w : 0;    \
	} while (0)
	PUT("{'descr': ");
	w = ckpt_npy_descr(dt, size, AT);
	n += w > 0 ? (size_t)w : 0;
	PUT(", 'fortran_order': False, 'shape': (");
	for (uint32_t i = 0; i < ns->ndims; i++)
		PUT(i ? ", %" PRId64 : "%" PRId64, ns->dims[i]);
	PUT(ns->ndims == 1 ? ",), }" : "), }");
	if (ns->ndims) { /* room for shape[0] to grow, as numpy leaves */
		int digits = snprintf(NULL, 0, "%" PRId64, ns->dims[0]);
		PUT("%*s", GROWTH_DIGITS - digits, "");
	}
#undef PUT
#undef AT
	return n;
}

/* The whole header around a dict text of dict bytes: the prefix, the
 * text, spaces and a '\n' up to a multiple of CKPT_NPY_ALIGN (numpy pads
 * a whole CKPT_NPY_ALIGN when the text alone would end aligned). */
static size_t total_len(size_t dict)
{
	size_t unpadded = PREFIX_V1 + dict + 1;

	return unpadded + CKPT_NPY_ALIGN - unpadded % CKPT_NPY_ALIGN;
}

ckpt_err ckpt_npy_header_len(ckpt_dtype dt, const int64_t *dims, uint32_t ndims,
			     uint64_t size, size_t *len, struct ckpt_error *err)
{
	struct npy_shape ns;
	char none[1];
	ckpt_err e = npy_shape(dt, dims, ndims, size, &ns, err);

	if (e)
		return e;
	*len = total_len(dict_text(dt, size, &ns, none, 0));
	return CKPT_OK;
}

ckpt_err ckpt_npy_header_read(ckpt_dtype dt, const int64_t *dims,
			      uint32_t ndims, uint64_t size, void *buf,
			      size_t cap, uint64_t off, size_t *done,
			      struct ckpt_error *err)
{
	char h[CKPT_NPY_HEADER_MAX];
	struct npy_shape ns;
	size_t dict, total, hlen;
	ckpt_err e = npy_shape(dt, dims, ndims, size, &ns, err);

	if (e)
		return e;
	dict = dict_text(dt, size, &ns, h + PREFIX_V1, sizeof(h) - PREFIX_V1);
	total = total_len(dict);
	if (total > sizeof(h)) /* the bound of ckpt_npy.h is wrong */
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 ".npy header of %zu bytes: more than "
				 "CKPT_NPY_HEADER_MAX",
				 total);
	hlen = total - PREFIX_V1;
	memcpy(h, MAGIC "\x01\x00", 8);
	h[8] = (char)(hlen & 0xff);
	h[9] = (char)(hlen >> 8);
	memset(h + PREFIX_V1 + dict, ' ', hlen - dict - 1);
	h[total - 1] = '\n';
	*done = 0;
	if (off < total) {
		*done = total - (size_t)off < cap ? total - (size_t)off : cap;
		if (*done)
			memcpy(buf, h + off, *done);
	}
	return CKPT_OK;
}

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
	char order = '|', kind, canon[32], name[FIELD_MAX];
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
		if (d->structured || !size || size > ITEMSIZE_MAX / 4)
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
		field_name((ckpt_dtype)i, name);
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

	if (memcmp(s, MAGIC, len < MAGIC_LEN ? len : MAGIC_LEN))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "not a .npy file: it does not start with "
				 "\\x93NUMPY");
	if (len < MAGIC_LEN + 2)
		goto truncated;
	if (s[6] < 1 || s[6] > 3 || s[7] != 0)
		return ckpt_fail(err, CKPT_ERR_INVAL, 6,
				 "not a valid .npy header: format version "
				 "%u.%u (numpy reads 1.0, 2.0 and 3.0)",
				 s[6], s[7]);
	out->version = s[6];
	pre = s[6] == 1 ? PREFIX_V1 : PREFIX_V2;
	if (len < pre)
		goto truncated;
	hlen = (size_t)s[8] | (size_t)s[9] << 8;
	if (pre == PREFIX_V2)
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
	lx->i = out->version == 1 ? PREFIX_V1 : PREFIX_V2;
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
	if (!numpy_fits(&p.ns, itemsize, &out->size))
		return BAD("the shape holds more than 2^63 - 1 bytes");
	return ms_shape(lx, out->dtype, &p.ns, out);
}
