/*
 * builder.c - see builder.h.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"

void buf_bytes(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

void buf_append(struct buf *b, const struct buf *src)
{
	buf_bytes(b, src->p, src->len);
}

void buf_varint(struct buf *b, uint64_t v)
{
	uint8_t t[10];
	size_t n = 0;

	do {
		t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	buf_bytes(b, t, n);
}

void buf_key(struct buf *b, unsigned field, unsigned wt)
{
	buf_varint(b, (uint64_t)field << 3 | wt);
}

void buf_len_field(struct buf *b, unsigned field, const void *data, size_t n)
{
	buf_key(b, field, 2);
	buf_varint(b, n);
	buf_bytes(b, data, n);
}

void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void buf_tensor(struct buf *b, const int64_t *dims, unsigned ndims,
		const char *type, const void *content, size_t n)
{
	for (unsigned i = 0; i < ndims; i++) {
		buf_key(b, 1, 0);
		buf_varint(b, (uint64_t)dims[i]);
	}
	buf_len_field(b, 2, type, strlen(type));
	buf_len_field(b, 3, content, n);
}

void buf_tensor_packed(struct buf *b, const int64_t *dims, unsigned ndims,
		       const char *type, const void *content, size_t n)
{
	struct buf d = {0};

	for (unsigned i = 0; i < ndims; i++)
		buf_varint(&d, (uint64_t)dims[i]);
	buf_len_field(b, 1, d.p, d.len);
	buf_len_field(b, 2, type, strlen(type));
	buf_len_field(b, 3, content, n);
	buf_free(&d);
}

size_t buf_record(struct buf *b, const char *tag, const int64_t *dims,
		  unsigned ndims, const char *type, const void *content,
		  size_t n)
{
	struct buf t = {0};

	buf_tensor(&t, dims, ndims, type, content, n);
	buf_value_record(b, tag, strlen(tag), 2, &t);
	buf_free(&t);
	return b->len - n;
}

void buf_value_record(struct buf *b, const char *tag, size_t tag_len,
		      unsigned field, const struct buf *payload)
{
	struct buf v = {0};

	buf_len_field(&v, 1, tag, tag_len);
	buf_len_field(&v, field, payload->p, payload->len);
	buf_len_field(b, 1, v.p, v.len);
	buf_free(&v);
}

void buf_map_record(struct buf *b, const char *tag, const struct buf *keys,
		    const struct buf *values, const struct buf *status)
{
	struct buf m = {0};

	buf_len_field(&m, 1, keys->p, keys->len);
	buf_len_field(&m, 1, values->p, values->len);
	buf_len_field(&m, 1, status->p, status->len);
	buf_value_record(b, tag, strlen(tag), 3, &m);
	buf_free(&m);
}

uint32_t ref_crc32(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

void buf_crc_trailer(struct buf *b)
{
	uint32_t crc = ref_crc32(b->p, b->len);
	uint8_t t[17] = "crc_num";

	for (int i = 0; i < 4; i++)
		t[16 - i] = (uint8_t)(crc >> (8 * i));
	buf_bytes(b, t, sizeof(t));
}

void buf_pack_checkpoint(struct buf *b, const Checkpoint *c)
{
	size_t n = checkpoint__get_packed_size(c);
	uint8_t *tmp = malloc(n ? n : 1);

	if (!tmp || checkpoint__pack(c, tmp) != n)
		abort();
	buf_bytes(b, tmp, n);
	free(tmp);
}

char *buf_to_tmpfile(const struct buf *b)
{
	char *path = strdup("/tmp/ckpt-unit-XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, b->p, b->len) != (ssize_t)b->len)
		abort();
	close(fd);
	return path;
}

ckpt_err buf_open(const struct buf *b, const struct ckpt_open_opts *opts,
		  struct ckpt_file **f, struct ckpt_error *err, char **path)
{
	char *tmp = buf_to_tmpfile(b);
	ckpt_err e = ckpt_open(tmp, opts, f, err);

	unlink(tmp);
	if (path)
		*path = tmp;
	else
		free(tmp);
	return e;
}

const char *fixtures_dir(void)
{
	static char def[4096];
	const char *env = getenv("CKPT_FIXTURES");
	const char *slash;

	if (env && *env)
		return env;
	/* __FILE__ is .../tests/unit/builder.c (CMake passes absolute source
	 * paths); the fixtures are in .../tests/fixtures/real. */
	slash = strrchr(__FILE__, '/');
	if (!slash)
		return "../../../tests/fixtures/real";
	snprintf(def, sizeof(def), "%.*s/../fixtures/real",
		 (int)(slash - __FILE__), __FILE__);
	return def;
}

bool buf_read_file(struct buf *b, const char *path)
{
	uint8_t tmp[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return false;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_bytes(b, tmp, (size_t)n);
	close(fd);
	return n == 0;
}

/* ---- reference comparison with protobuf-c ------------------------------ */

uint8_t *read_tensor(const struct ckpt_file *f, const struct ckpt_tensor *t)
{
	uint8_t *p = malloc(t->size + 1);
	struct ckpt_error err = {0};
	ssize_t n;

	assert_non_null(p);
	n = tensor_read_n(f, t, p, (size_t)t->size + 1, 0, &err);
	if (n < 0)
		print_error("%s\n", err.msg);
	assert_int_equal(n, t->size);
	return p;
}

struct exp_tensor {
	struct buf content;
	const TensorProto *last;
	uint64_t rows;
};

struct exp_param {
	const char *name;
	int kind;
	struct exp_tensor t[CKPT_MAP_NTENSORS];
};

static void exp_free(struct exp_param *e)
{
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++)
		buf_free(&e->t[i].content);
}

static void check_tensor(const struct ckpt_file *f, const struct ckpt_tensor *t,
			 const struct exp_tensor *x, bool map)
{
	const TensorProto *tp = x->last;
	const struct buf *c = &x->content;
	uint8_t *stored, *shown;
	uint64_t pos = 0;

	assert_non_null(tp);
	assert_string_equal(t->type_str, tp->tensor_type);
	if (map) {
		assert_int_equal(t->ndims, tp->n_dims);
		assert_true(t->ndims > 0);
		assert_int_equal(t->dims[0], x->rows);
		for (size_t i = 1; i < tp->n_dims; i++)
			assert_int_equal(t->dims[i], tp->dims[i]);
	} else if (strcmp(tp->tensor_type, "str") == 0 ||
		   (tp->n_dims == 1 && tp->dims[0] == 0)) {
		assert_int_equal(t->ndims, 0);
	} else {
		assert_int_equal(t->ndims, tp->n_dims);
		for (size_t i = 0; i < tp->n_dims; i++)
			assert_int_equal(t->dims[i], tp->dims[i]);
	}
	/* stored bytes, through the extents */
	assert_int_equal(t->stored, c->len);
	stored = malloc(c->len + 1);
	assert_non_null(stored);
	for (uint32_t i = 0; i < t->nextents; i++) {
		const struct ckpt_extent *e = &t->extents[i];
		assert_int_equal(e->pos, pos);
		assert_true(e->len > 0);
		assert_int_equal(pread(ckpt_fd(f), stored + pos, e->len,
				       (off_t)e->src),
				 (ssize_t)e->len);
		pos += e->len;
	}
	assert_int_equal(pos, c->len);
	if (c->len)
		assert_memory_equal(stored, c->p, c->len);
	/* shown bytes */
	shown = read_tensor(f, t);
	if (t->bf16_from_f32) {
		assert_int_equal(t->size * 2, t->stored);
		for (uint64_t k = 0; k < t->size; k++)
			assert_int_equal(shown[k],
					 c->p[(k / 2) * 4 + 2 + k % 2]);
	} else {
		assert_int_equal(t->size, c->len);
		if (c->len)
			assert_memory_equal(shown, c->p, c->len);
	}
	free(stored);
	free(shown);
}

bool oracle_check(const uint8_t *data, size_t n, const struct ckpt_file *f)
{
	Checkpoint *c = checkpoint__unpack(NULL, n, data);
	struct exp_param *e;
	size_t ne = 0, cur = (size_t)-1;

	if (!c)
		return false;
	e = calloc(c->n_value + 1, sizeof(*e));
	assert_non_null(e);
	for (size_t i = 0; i < c->n_value; i++) {
		const Checkpoint__Value *v = c->value[i];
		int kind = v->value_case == CHECKPOINT__VALUE__VALUE_TENSOR
				   ? CKPT_PARAM_TENSOR
				   : CKPT_PARAM_MAP;
		if (cur == (size_t)-1 || strcmp(e[cur].name, v->tag) != 0) {
			size_t k;
			for (k = 0; k < ne; k++) /* dict: replace in place */
				if (strcmp(e[k].name, v->tag) == 0)
					break;
			if (k < ne)
				exp_free(&e[k]);
			else
				ne++;
			memset(&e[k], 0, sizeof(e[k]));
			e[k].name = v->tag;
			e[k].kind = kind;
			cur = k;
		}
		assert_int_equal(e[cur].kind, kind);
		if (kind == CKPT_PARAM_TENSOR) {
			const TensorProto *tp = v->tensor;
			buf_bytes(&e[cur].t[0].content, tp->tensor_content.data,
				  tp->tensor_content.len);
			e[cur].t[0].last = tp;
		} else {
			assert_non_null(v->maptensor);
			assert_int_equal(v->maptensor->n_tensor, 3);
			for (int k = 0; k < 3; k++) {
				const TensorProto *tp = v->maptensor->tensor[k];
				struct exp_tensor *x = &e[cur].t[k];
				buf_bytes(&x->content, tp->tensor_content.data,
					  tp->tensor_content.len);
				x->last = tp;
				assert_true(tp->n_dims > 0);
				x->rows += (uint64_t)tp->dims[0];
			}
		}
	}
	assert_int_equal(ckpt_count(f), ne);
	for (size_t i = 0; i < ne; i++) {
		const struct ckpt_param *p = ckpt_param_at(f, i);
		assert_non_null(p);
		assert_int_equal(p->name_len, strlen(e[i].name));
		assert_memory_equal(p->name, e[i].name, p->name_len);
		assert_int_equal(p->kind, e[i].kind);
		assert_int_equal(ckpt_find(f, p->fname), (ssize_t)i);
		if (p->kind == CKPT_PARAM_TENSOR)
			check_tensor(f, &p->tensor, &e[i].t[0], false);
		else
			for (int k = 0; k < 3; k++)
				check_tensor(f, &p->map[k], &e[i].t[k], true);
		exp_free(&e[i]);
	}
	free(e);
	checkpoint__free_unpacked(c, NULL);
	return true;
}

ssize_t tensor_read_n(const struct ckpt_file *f, const struct ckpt_tensor *t,
		      void *buf, size_t size, uint64_t off,
		      struct ckpt_error *err)
{
	size_t done;

	if (ckpt_tensor_read(f, t, buf, size, off, &done, err))
		return -1;
	return (ssize_t)done;
}

/* A map record: keys int64 [2], values float32 [2,3], status int32 [2]. */
void buf_small_map(struct buf *b, const char *name)
{
	int64_t kd[1] = {2}, vd[2] = {2, 3}, sd[1] = {2};
	int64_t k[2] = {7, 8};
	float v[6] = {1, 2, 3, 4, 5, 6};
	int32_t st[2] = {0, 1};
	struct buf keys = {0}, values = {0}, status = {0};

	buf_tensor(&keys, kd, 1, "int64", k, sizeof(k));
	buf_tensor(&values, vd, 2, "float32", v, sizeof(v));
	buf_tensor(&status, sd, 1, "int32", st, sizeof(st));
	buf_map_record(b, name, &keys, &values, &status);
	buf_free(&keys);
	buf_free(&values);
	buf_free(&status);
}
