/*
 * test_scan.c - the scanner and the index: hand-built checkpoints (with the
 * byte builder and with protobuf-c), valid edge cases, and every kind of
 * malformed input we know of.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "builder.h"
#include "checkpoint.pb-c.h"
#include "ckpt.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ------------------------------------------------------------ */

static struct ckpt_file *open_opts(const struct buf *b,
				   const struct ckpt_open_opts *o)
{
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	ckpt_err rc = buf_open(b, o, &f, &err, NULL);

	if (rc)
		print_error("unexpected error: %s\n", err.msg);
	assert_int_equal(rc, CKPT_OK);
	assert_non_null(f);
	return f;
}

static struct ckpt_file *open_ok(const struct buf *b)
{
	return open_opts(b, NULL);
}

/* Opens b, which must fail with code; the message must name the file and
 * (for CKPT_ERR_CORRUPT) an offset, and contain needle if non-NULL. */
static void expect_err(const struct buf *b, ckpt_err code, const char *needle)
{
	struct ckpt_file *f = (struct ckpt_file *)&f;
	struct ckpt_error err = {0};
	char *path = NULL;
	ckpt_err rc = buf_open(b, NULL, &f, &err, &path);

	if (rc != code)
		print_error("expected %s, got %s: %s\n", ckpt_strerror(code),
			    ckpt_strerror(rc), err.msg);
	assert_int_equal(rc, code);
	assert_null(f);
	assert_int_equal(err.code, code);
	if (!strstr(err.msg, path) ||
	    (code == CKPT_ERR_CORRUPT && !strstr(err.msg, "offset")) ||
	    (needle && !strstr(err.msg, needle)))
		print_error("message: %s\n", err.msg);
	assert_non_null(strstr(err.msg, path));
	if (code == CKPT_ERR_CORRUPT)
		assert_non_null(strstr(err.msg, "offset"));
	if (needle)
		assert_non_null(strstr(err.msg, needle));
	free(path);
}

static void expect_corrupt(const struct buf *b, const char *needle)
{
	expect_err(b, CKPT_ERR_CORRUPT, needle);
}

static void oracle(const struct buf *b, const struct ckpt_file *f)
{
	assert_true(oracle_check(b->p, b->len, f));
}

static const struct ckpt_param *param(const struct ckpt_file *f, size_t i)
{
	const struct ckpt_param *p = ckpt_param_at(f, i);
	assert_non_null(p);
	return p;
}

static const struct ckpt_param *find(const struct ckpt_file *f,
				     const char *fname)
{
	ssize_t i = ckpt_find(f, fname);
	assert_true(i >= 0);
	return param(f, (size_t)i);
}

static void assert_dims(const struct ckpt_tensor *t, const int64_t *dims,
			uint32_t ndims)
{
	assert_int_equal(t->ndims, ndims);
	for (uint32_t i = 0; i < ndims; i++)
		assert_int_equal(t->dims[i], dims[i]);
}

static void assert_read(const struct ckpt_file *f, const struct ckpt_tensor *t,
			const void *want, size_t n)
{
	uint8_t *got = read_tensor(f, t);
	assert_int_equal(t->size, n);
	if (n)
		assert_memory_equal(got, want, n);
	free(got);
}

/* A record whose TensorProto body is given as raw bytes. */
static void rec_raw(struct buf *b, const char *tag, const struct buf *tensor)
{
	buf_value_record(b, tag, strlen(tag), 2, tensor);
}

static const uint8_t bytes64[64] = {
	1,  2,	3,  4,	5,  6,	7,  8,	9,  10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
	33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
	49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
};

/* spec section 1 worked examples */
static const uint8_t global_step[32] = {
	0x0a, 0x1e, 0x0a, 0x0b, 'g',  'l',  'o',  'b',	'a',  'l',  '_',
	's',  't',  'e',  'p',	0x12, 0x0f, 0x08, 0x01, 0x12, 0x05, 'I',
	'n',  't',  '3',  '2',	0x1a, 0x04, 0x07, 0x00, 0x00, 0x00,
};
static const uint8_t epoch_num[32] = {
	0x0a, 0x1e, 0x0a, 0x09, 'e',  'p',  'o',  'c',	'h',  '_',  'n',
	'u',  'm',  0x12, 0x11, 0x12, 0x05, 'I',  'n',	't',  '6',  '4',
	0x1a, 0x08, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};
/* spec section 5: trailer of the global_step file */
static const uint8_t gs_trailer[17] = {
	0x63, 0x72, 0x63, 0x5f, 0x6e, 0x75, 0x6d, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x44, 0x04, 0x53, 0xa5,
};

/* ---- valid files ------------------------------------------------------- */

static void test_single_param(void **state)
{
	static const int64_t dims[] = {2, 3};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	const struct ckpt_stats *st;
	char *path = NULL;
	struct ckpt_error err = {0};
	size_t coff;
	(void)state;

	coff = buf_record(&b, "w", dims, 2, "Float32", bytes64, 24);
	assert_int_equal(buf_open(&b, NULL, &f, &err, &path), CKPT_OK);
	assert_string_equal(ckpt_path(f), path);
	assert_true(ckpt_fd(f) >= 0);
	assert_int_equal(ckpt_count(f), 1);
	assert_null(ckpt_param_at(f, 1));
	p = param(f, 0);
	assert_int_equal(p->name_len, 1);
	assert_memory_equal(p->name, "w", 1);
	assert_string_equal(p->fname, "w");
	assert_int_equal(p->kind, CKPT_PARAM_TENSOR);
	assert_int_equal(p->rec_off, 0);
	assert_int_equal(p->rec_len, b.len);
	assert_int_equal(p->nslices, 1);
	assert_int_equal(p->tensor.dtype, CKPT_DT_FLOAT32);
	assert_string_equal(p->tensor.type_str, "Float32");
	assert_dims(&p->tensor, dims, 2);
	assert_false(p->tensor.dims_zero_form);
	assert_false(p->tensor.bf16_from_f32);
	assert_int_equal(p->tensor.size, 24);
	assert_int_equal(p->tensor.stored, 24);
	assert_int_equal(p->tensor.nextents, 1);
	assert_int_equal(p->tensor.extents[0].pos, 0);
	assert_int_equal(p->tensor.extents[0].src, coff);
	assert_int_equal(p->tensor.extents[0].len, 24);
	assert_read(f, &p->tensor, bytes64, 24);
	st = ckpt_stats(f);
	assert_int_equal(st->file_size, b.len);
	assert_int_equal(st->stream_size, b.len);
	assert_int_equal(st->records, 1);
	assert_int_equal(st->unknown_fields, 0);
	assert_int_equal(st->duplicates, 0);
	assert_int_equal(st->data_bytes, 24);
	assert_false(st->has_crc);
	assert_false(st->crc_checked);
	assert_int_equal(ckpt_find(f, "w"), 0);
	assert_int_equal(ckpt_verify_crc(f, NULL), CKPT_OK); /* no trailer */
	assert_false(st->crc_checked);
	oracle(&b, f);
	ckpt_close(f);
	free(path);
	buf_free(&b);
}

static void test_worked_examples(void **state)
{
	static const int64_t one[] = {1};
	static const uint8_t seven[4] = {7, 0, 0, 0};
	static const uint8_t three[8] = {3};
	struct buf b = {0}, pc = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	/* the builder and protobuf-c both write the documented bytes */
	buf_record(&b, "global_step", one, 1, "Int32", seven, 4);
	assert_int_equal(b.len, sizeof(global_step));
	assert_memory_equal(b.p, global_step, sizeof(global_step));
	{
		int64_t d[] = {1};
		TensorProto t = TENSOR_PROTO__INIT;
		Checkpoint__Value v = CHECKPOINT__VALUE__INIT;
		Checkpoint__Value *vs[] = {&v};
		Checkpoint c = CHECKPOINT__INIT;
		t.n_dims = 1;
		t.dims = d;
		t.tensor_type = UNCONST("Int32");
		t.tensor_content.data = UNCONST(seven);
		t.tensor_content.len = 4;
		v.tag = UNCONST("global_step");
		v.value_case = CHECKPOINT__VALUE__VALUE_TENSOR;
		v.tensor = &t;
		c.n_value = 1;
		c.value = vs;
		buf_pack_checkpoint(&pc, &c);
		assert_int_equal(pc.len, sizeof(global_step));
		assert_memory_equal(pc.p, global_step, sizeof(global_step));

		/* scalar without dims */
		buf_free(&pc);
		t.n_dims = 0;
		t.dims = NULL;
		t.tensor_type = UNCONST("Int64");
		t.tensor_content.data = UNCONST(three);
		t.tensor_content.len = 8;
		v.tag = UNCONST("epoch_num");
		buf_pack_checkpoint(&pc, &c);
		assert_int_equal(pc.len, sizeof(epoch_num));
		assert_memory_equal(pc.p, epoch_num, sizeof(epoch_num));
	}
	buf_free(&b);
	buf_record(&b, "epoch_num", NULL, 0, "Int64", three, 8);
	assert_memory_equal(b.p, epoch_num, sizeof(epoch_num));
	buf_free(&b);

	buf_bytes(&b, global_step, sizeof(global_step));
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 1);
	p = param(f, 0);
	assert_int_equal(p->name_len, 11);
	assert_memory_equal(p->name, "global_step", 11);
	assert_int_equal(p->tensor.dtype, CKPT_DT_INT32);
	assert_dims(&p->tensor, one, 1);
	assert_int_equal(p->tensor.size, 4);
	assert_int_equal(p->tensor.nextents, 1);
	assert_int_equal(p->tensor.extents[0].src, 28);
	assert_int_equal(p->tensor.extents[0].len, 4);
	assert_read(f, &p->tensor, seven, 4);
	assert_int_equal(ckpt_stats(f)->stream_size, 32);
	oracle(&b, f);
	ckpt_close(f);

	buf_bytes(&b, epoch_num, sizeof(epoch_num));
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	assert_int_equal(ckpt_stats(f)->records, 2);
	p = find(f, "epoch_num");
	assert_int_equal(p->rec_off, 32);
	assert_int_equal(p->tensor.dtype, CKPT_DT_INT64);
	assert_int_equal(p->tensor.ndims, 0);
	assert_false(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 8);
	assert_int_equal(p->tensor.extents[0].src, 32 + 24);
	assert_read(f, &p->tensor, three, 8);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&pc);
}

static void test_crc_valid(void **state)
{
	static const uint8_t seven[4] = {7, 0, 0, 0};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_stats *st;
	(void)state;

	buf_bytes(&b, global_step, sizeof(global_step));
	buf_crc_trailer(&b);
	assert_int_equal(b.len, 49);
	assert_memory_equal(b.p + 32, gs_trailer, 17);
	f = open_ok(&b);
	st = ckpt_stats(f);
	assert_true(st->has_crc);
	assert_true(st->crc_checked);
	assert_int_equal(st->crc_stored, 0x440453A5u);
	assert_int_equal(st->crc_computed, 0x440453A5u);
	assert_int_equal(st->file_size, 49);
	assert_int_equal(st->stream_size, 32);
	assert_int_equal(ckpt_count(f), 1);
	assert_read(f, &param(f, 0)->tensor, seven, 4);
	assert_int_equal(ckpt_verify_crc(f, NULL), CKPT_OK);
	ckpt_close(f);

	/* skip_crc: trailer found and stripped, not verified */
	struct ckpt_open_opts o = {.skip_crc = true};
	f = open_opts(&b, &o);
	st = ckpt_stats(f);
	assert_true(st->has_crc);
	assert_false(st->crc_checked);
	assert_int_equal(st->stream_size, 32);
	ckpt_close(f);
	buf_free(&b);

	/* a trailer alone: the CRC of nothing is 0 */
	buf_crc_trailer(&b);
	assert_int_equal(b.len, 17);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 0);
	assert_true(ckpt_stats(f)->has_crc);
	assert_true(ckpt_stats(f)->crc_checked);
	assert_int_equal(ckpt_stats(f)->stream_size, 0);
	ckpt_close(f);
	buf_free(&b);

	/* a bigger file with a trailer */
	for (int i = 0; i < 20; i++) {
		int64_t d[] = {16};
		char tag[16];
		snprintf(tag, sizeof(tag), "p%d", i);
		buf_record(&b, tag, d, 1, "Int32", bytes64, 64);
	}
	buf_crc_trailer(&b);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 20);
	assert_true(ckpt_stats(f)->crc_checked);
	assert_int_equal(ckpt_stats(f)->crc_stored, ref_crc32(b.p, b.len - 17));
	assert_true(oracle_check(b.p, b.len - 17, f));
	ckpt_close(f);
	buf_free(&b);
}

static void test_crc_invalid(void **state)
{
	struct buf b = {0};
	struct ckpt_file *f;
	struct ckpt_error err = {0};
	const struct ckpt_stats *st;
	uint8_t v8[4];
	(void)state;

	buf_bytes(&b, global_step, sizeof(global_step));
	buf_bytes(&b, gs_trailer, sizeof(gs_trailer));
	b.p[28] = 8; /* the data changed, the trailer did not */
	expect_err(&b, CKPT_ERR_CRC, NULL);

	struct ckpt_open_opts o = {.skip_crc = true};
	f = open_opts(&b, &o);
	st = ckpt_stats(f);
	assert_true(st->has_crc);
	assert_false(st->crc_checked);
	assert_int_equal(st->crc_stored, 0x440453A5u);
	assert_int_equal(tensor_read_n(f, &param(f, 0)->tensor, v8, 4, 0, NULL),
			 4);
	assert_int_equal(v8[0], 8);
	assert_int_equal(ckpt_verify_crc(f, &err), CKPT_ERR_CRC);
	assert_int_equal(err.code, CKPT_ERR_CRC);
	assert_true(st->crc_checked);
	assert_int_equal(st->crc_computed, ref_crc32(b.p, 32));
	assert_true(st->crc_computed != st->crc_stored);
	ckpt_close(f);

	/* damage in the trailer itself */
	b.p[28] = 7;
	b.p[b.len - 1] ^= 1;
	expect_err(&b, CKPT_ERR_CRC, NULL);
	b.p[b.len - 1] ^= 1;
	f = open_ok(&b);
	ckpt_close(f);

	/* a stored value that does not fit 32 bits: a CRC error, which
	 * skip_crc (--ignore-crc) can open anyway */
	b.p[32 + 12] = 1;
	expect_err(&b, CKPT_ERR_CRC, "wider");
	f = open_opts(&b, &(struct ckpt_open_opts){.skip_crc = true});
	assert_true(ckpt_stats(f)->has_crc);
	ckpt_close(f);
	b.p[32 + 12] = 0;
	b.p[32 + 7] = 0x80;
	expect_err(&b, CKPT_ERR_CRC, NULL);
	b.p[32 + 7] = 0;

	/* no marker: the 17 bytes are part of the stream, and not protobuf */
	b.p[32 + 6] = 'M';
	expect_corrupt(&b, NULL);
	buf_free(&b);
}

static void test_empty_file(void **state)
{
	struct buf b = {0};
	struct ckpt_file *f;
	(void)state;

	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 0);
	assert_null(ckpt_param_at(f, 0));
	assert_int_equal(ckpt_find(f, "x"), -1);
	assert_int_equal(ckpt_find(f, "%"), -1);
	assert_int_equal(ckpt_stats(f)->records, 0);
	assert_int_equal(ckpt_stats(f)->file_size, 0);
	assert_int_equal(ckpt_stats(f)->data_bytes, 0);
	assert_false(ckpt_stats(f)->has_crc);
	ckpt_close(f);
	ckpt_close(NULL);
}

static void test_scalars(void **state)
{
	static const int64_t zero[] = {0}, one[] = {1};
	static const uint8_t tru[1] = {1};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	buf_record(&b, "lr", NULL, 0, "Float32", bytes64, 4);
	buf_record(&b, "old_lr", zero, 1, "Float32", bytes64 + 4, 4);
	buf_record(&b, "flag", zero, 1, "Bool", tru, 1);
	buf_record(&b, "step", one, 1, "Int64", bytes64, 8);
	buf_record(&b, "d", zero, 1, "Float64", bytes64, 8);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 5);

	p = find(f, "lr");
	assert_int_equal(p->tensor.ndims, 0);
	assert_false(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 4);
	assert_read(f, &p->tensor, bytes64, 4);

	p = find(f, "old_lr");
	assert_int_equal(p->tensor.ndims, 0);
	assert_true(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 4);
	assert_read(f, &p->tensor, bytes64 + 4, 4);

	p = find(f, "flag");
	assert_int_equal(p->tensor.dtype, CKPT_DT_BOOL);
	assert_int_equal(p->tensor.ndims, 0);
	assert_true(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 1);

	p = find(f, "step"); /* [1] is a 1-element vector, not a scalar */
	assert_dims(&p->tensor, one, 1);
	assert_false(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 8);

	p = find(f, "d");
	assert_int_equal(p->tensor.ndims, 0);
	assert_int_equal(p->tensor.size, 8);
	assert_int_equal(ckpt_stats(f)->data_bytes, 4 + 4 + 1 + 8 + 8);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* a scalar holds exactly one element */
	buf_record(&b, "x", NULL, 0, "Float32", bytes64, 0);
	expect_corrupt(&b, "tensor_content");
	buf_free(&b);
	buf_record(&b, "x", zero, 1, "Float32", bytes64, 0);
	expect_corrupt(&b, "tensor_content");
	buf_free(&b);
	buf_record(&b, "x", zero, 1, "Float32", bytes64, 8);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_record(&b, "x", NULL, 0, "Int64", bytes64, 4);
	expect_corrupt(&b, NULL);
	buf_free(&b);
}

static void test_packed_dims(void **state)
{
	static const int64_t d23[] = {2, 3}, d231[] = {2, 3, 1};
	struct buf b = {0}, t = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	buf_tensor_packed(&t, d23, 2, "Int16", bytes64, 12);
	rec_raw(&b, "packed", &t);
	buf_free(&t);

	/* unpacked and packed occurrences are concatenated */
	buf_key(&t, 1, 0);
	buf_varint(&t, 2);
	{
		struct buf d = {0};
		buf_varint(&d, 3);
		buf_varint(&d, 1);
		buf_len_field(&t, 1, d.p, d.len);
		buf_free(&d);
	}
	buf_len_field(&t, 2, "Int8", 4);
	buf_len_field(&t, 3, bytes64, 6);
	rec_raw(&b, "mixed", &t);
	buf_free(&t);

	/* packed with no elements: a scalar */
	buf_tensor_packed(&t, NULL, 0, "Int32", bytes64, 4);
	rec_raw(&b, "empty", &t);
	buf_free(&t);

	/* non-minimal varints are still varints */
	buf_bytes(&t, "\x08\x82\x80\x00\x08\x83\x00", 7);
	buf_len_field(&t, 2, "UInt8", 5);
	buf_len_field(&t, 3, bytes64, 6);
	rec_raw(&b, "longvarint", &t);
	buf_free(&t);

	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 4);
	p = find(f, "packed");
	assert_dims(&p->tensor, d23, 2);
	assert_int_equal(p->tensor.dtype, CKPT_DT_INT16);
	assert_read(f, &p->tensor, bytes64, 12);
	p = find(f, "mixed");
	assert_dims(&p->tensor, d231, 3);
	assert_read(f, &p->tensor, bytes64, 6);
	p = find(f, "empty");
	assert_int_equal(p->tensor.ndims, 0);
	assert_int_equal(p->tensor.size, 4);
	p = find(f, "longvarint");
	assert_dims(&p->tensor, d23, 2);
	assert_int_equal(p->tensor.dtype, CKPT_DT_UINT8);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
}

static void test_noncanonical_order(void **state)
{
	static const int64_t d23[] = {2, 3};
	struct buf b = {0}, t = {0}, v = {0}, v2 = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	size_t coff;
	(void)state;

	/* TensorProto: content, dims, type, dims */
	buf_len_field(&t, 3, bytes64, 12);
	buf_key(&t, 1, 0);
	buf_varint(&t, 2);
	buf_len_field(&t, 2, "Float16", 7);
	buf_key(&t, 1, 0);
	buf_varint(&t, 3);
	/* Value: tensor before tag */
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&v, 1, "rev", 3);
	buf_len_field(&b, 1, v.p, v.len);
	/* record key+len, Value.tensor key+len, content key+len */
	coff = 2 + 2 + 2;
	buf_free(&t);

	/* repeated singular fields: the last one wins */
	buf_tensor(&t, d23, 2, "Int8", bytes64, 5);
	buf_len_field(&t, 2, "UInt8", 5);
	buf_len_field(&t, 3, bytes64 + 10, 6);
	buf_len_field(&v2, 1, "first", 5);
	buf_len_field(&v2, 2, t.p, t.len);
	buf_len_field(&v2, 1, "twice", 5);
	buf_len_field(&b, 1, v2.p, v2.len);
	buf_free(&t);

	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	p = find(f, "rev");
	assert_dims(&p->tensor, d23, 2);
	assert_int_equal(p->tensor.dtype, CKPT_DT_FLOAT16);
	assert_int_equal(p->tensor.extents[0].src, coff);
	assert_read(f, &p->tensor, bytes64, 12);
	assert_int_equal(ckpt_find(f, "first"), -1);
	p = find(f, "twice");
	assert_int_equal(p->tensor.dtype, CKPT_DT_UINT8);
	assert_string_equal(p->tensor.type_str, "UInt8");
	assert_read(f, &p->tensor, bytes64 + 10, 6);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&v);
	buf_free(&v2);
}

/* Two TensorProto fields in one Value merge like protobuf (C++, Python)
 * merges a repeated singular message field: dims append, scalars replace. */
static void test_tensor_field_merge(void **state)
{
	static const int64_t d2[] = {2}, d3[] = {3};
	struct buf b = {0}, t1 = {0}, t2 = {0}, v = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	buf_key(&t1, 1, 0);
	buf_varint(&t1, 2);
	buf_len_field(&t1, 2, "Int8", 4);
	buf_len_field(&t1, 3, bytes64, 2);
	buf_key(&t2, 1, 0);
	buf_varint(&t2, 3);
	buf_len_field(&t2, 2, "Int16", 5);
	buf_len_field(&t2, 3, bytes64 + 8, 12);
	buf_len_field(&v, 1, "m", 1);
	buf_len_field(&v, 2, t1.p, t1.len);
	buf_len_field(&v, 2, t2.p, t2.len);
	buf_len_field(&b, 1, v.p, v.len);
	f = open_ok(&b);
	p = param(f, 0);
	assert_int_equal(p->tensor.ndims, 2);
	assert_int_equal(p->tensor.dims[0], d2[0]);
	assert_int_equal(p->tensor.dims[1], d3[0]);
	assert_int_equal(p->tensor.dtype, CKPT_DT_INT16);
	assert_read(f, &p->tensor, bytes64 + 8, 12);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&t1);
	buf_free(&t2);
	buf_free(&v);
}

static void test_unknown_fields_skipped(void **state)
{
	static const int64_t d4[] = {4};
	struct buf b = {0}, t = {0}, v = {0}, k = {0}, vals = {0}, s = {0},
		   m = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	/* TensorProto with fields 4..7 and a large field number, of every
	 * skippable wire type, between and around the known ones */
	buf_key(&t, 4, 0);
	buf_varint(&t, UINT64_MAX); /* 10-byte varint */
	buf_key(&t, 1, 0);
	buf_varint(&t, 4);
	buf_key(&t, 5, 5);
	buf_bytes(&t, "abcd", 4);
	buf_len_field(&t, 2, "Int32", 5);
	buf_key(&t, 6, 1);
	buf_bytes(&t, "abcdefgh", 8);
	buf_len_field(&t, 7, "\x1a\x7f junk", 7);
	buf_len_field(&t, 3, bytes64, 16);
	buf_key(&t, 536870911, 0); /* largest field number */
	buf_varint(&t, 1);
	buf_len_field(&t, 15, "", 0);
	/* Value with unknown fields before and after */
	buf_key(&v, 9, 0);
	buf_varint(&v, 300);
	buf_len_field(&v, 1, "u", 1);
	buf_len_field(&v, 4, "\x0a\x01x", 3);
	buf_len_field(&v, 2, t.p, t.len);
	buf_key(&v, 5, 5);
	buf_bytes(&v, "wxyz", 4);
	buf_key(&v, 6, 1);
	buf_bytes(&v, "12345678", 8);
	buf_len_field(&b, 1, v.p, v.len);

	/* map with an unknown field in MapTensorProto */
	buf_tensor(&k, d4, 1, "int32", bytes64, 16);
	buf_tensor(&vals, d4, 1, "float32", bytes64 + 16, 16);
	buf_tensor(&s, d4, 1, "int32", bytes64 + 32, 16);
	buf_key(&m, 2, 0);
	buf_varint(&m, 5);
	buf_len_field(&m, 1, k.p, k.len);
	buf_len_field(&m, 9, "zz", 2);
	buf_len_field(&m, 1, vals.p, vals.len);
	buf_len_field(&m, 1, s.p, s.len);
	buf_key(&m, 3, 5);
	buf_bytes(&m, "1234", 4);
	buf_value_record(&b, "map", 3, 3, &m);

	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	assert_int_equal(ckpt_stats(f)->unknown_fields, 0);
	p = find(f, "u");
	assert_dims(&p->tensor, d4, 1);
	assert_int_equal(p->tensor.dtype, CKPT_DT_INT32);
	assert_read(f, &p->tensor, bytes64, 16);
	p = find(f, "map");
	assert_int_equal(p->kind, CKPT_PARAM_MAP);
	assert_read(f, &p->map[CKPT_MAP_VALUES], bytes64 + 16, 16);
	assert_read(f, &p->map[CKPT_MAP_STATUS], bytes64 + 32, 16);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&t);
	buf_free(&v);
	buf_free(&k);
	buf_free(&vals);
	buf_free(&s);
	buf_free(&m);
}

static void test_top_level_unknown(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0};
	struct ckpt_file *f;
	(void)state;

	buf_record(&b, "a", d1, 1, "Int32", bytes64, 4);
	buf_key(&b, 3, 0); /* between records */
	buf_varint(&b, 12345);
	buf_key(&b, 4, 1);
	buf_bytes(&b, "\0\0\0\0\0\0\0\0", 8);
	buf_key(&b, 5, 5);
	buf_bytes(&b, "\0\0\0\0", 4);
	buf_record(&b, "b", d1, 1, "Int32", bytes64 + 4, 4);
	buf_len_field(&b, 2, "normal", 6); /* v0.5 model_type */
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	assert_int_equal(ckpt_stats(f)->records, 2);
	assert_int_equal(ckpt_stats(f)->unknown_fields, 4);
	assert_read(f, &find(f, "b")->tensor, bytes64 + 4, 4);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* only the model_type field */
	buf_len_field(&b, 2, "fusion", 6);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 0);
	assert_int_equal(ckpt_stats(f)->unknown_fields, 1);
	ckpt_close(f);
	buf_free(&b);
}

static void test_two_slices(void **state)
{
	static const int64_t d9[] = {9}, d22[] = {2, 2}, d4[] = {4};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	size_t o1, o2, r2, e2;
	(void)state;

	buf_record(&b, "before", d4, 1, "Int8", bytes64, 4);
	r2 = b.len;
	/* the first slice's dims and type are not the ones shown */
	o1 = buf_record(&b, "w", d9, 1, "Int32", bytes64, 8);
	o2 = buf_record(&b, "w", d22, 2, "Float32", bytes64 + 8, 8);
	e2 = b.len;
	buf_record(&b, "after", d4, 1, "Int8", bytes64, 4);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 3);
	assert_int_equal(ckpt_stats(f)->records, 4);
	assert_int_equal(ckpt_stats(f)->duplicates, 0);
	assert_int_equal(ckpt_find(f, "w"), 1);
	p = param(f, 1);
	assert_int_equal(p->nslices, 2);
	assert_int_equal(p->rec_off, r2);
	assert_int_equal(p->rec_len, e2 - r2);
	assert_int_equal(p->tensor.dtype, CKPT_DT_FLOAT32);
	assert_string_equal(p->tensor.type_str, "Float32");
	assert_dims(&p->tensor, d22, 2);
	assert_int_equal(p->tensor.size, 16);
	assert_int_equal(p->tensor.stored, 16);
	assert_int_equal(p->tensor.nextents, 2);
	assert_int_equal(p->tensor.extents[0].pos, 0);
	assert_int_equal(p->tensor.extents[0].src, o1);
	assert_int_equal(p->tensor.extents[0].len, 8);
	assert_int_equal(p->tensor.extents[1].pos, 8);
	assert_int_equal(p->tensor.extents[1].src, o2);
	assert_int_equal(p->tensor.extents[1].len, 8);
	assert_read(f, &p->tensor, bytes64, 16);
	assert_int_equal(ckpt_stats(f)->data_bytes, 4 + 16 + 4);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* three slices, the middle one empty: no extent for it */
	buf_record(&b, "w", d9, 1, "UInt8", bytes64, 5);
	buf_record(&b, "w", d9, 1, "UInt8", bytes64, 0);
	buf_record(&b, "w", d9, 1, "UInt8", bytes64 + 5, 4);
	f = open_ok(&b);
	p = param(f, 0);
	assert_int_equal(p->nslices, 3);
	assert_int_equal(p->tensor.nextents, 2);
	assert_int_equal(p->tensor.extents[1].pos, 5);
	assert_read(f, &p->tensor, bytes64, 9);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* slices with an unknown top-level field between them are still one
	 * parameter, but their records are not contiguous */
	buf_record(&b, "w", d22, 2, "Float32", bytes64, 8);
	buf_key(&b, 7, 0);
	buf_varint(&b, 1);
	buf_record(&b, "w", d22, 2, "Float32", bytes64 + 8, 8);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 1);
	p = param(f, 0);
	assert_int_equal(p->nslices, 2);
	assert_int_equal(p->rec_off, 0);
	assert_int_equal(p->rec_len, 0);
	assert_int_equal(ckpt_stats(f)->unknown_fields, 1);
	assert_read(f, &p->tensor, bytes64, 16);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* slices that do not add up to the last dims */
	buf_record(&b, "w", d22, 2, "Float32", bytes64, 8);
	buf_record(&b, "w", d22, 2, "Float32", bytes64, 4);
	expect_corrupt(&b, "'w'");
	buf_free(&b);
	/* a slice alone is not the whole tensor */
	buf_record(&b, "w", d22, 2, "Float32", bytes64, 8);
	expect_corrupt(&b, "needs 16");
	buf_free(&b);
}

static void test_duplicate_noncontiguous(void **state)
{
	static const int64_t d1[] = {1}, d2[] = {2};
	static const uint8_t five_six[8] = {5, 0, 0, 0, 6, 0, 0, 0};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	buf_record(&b, "a", d1, 1, "Int32", bytes64, 4);
	buf_record(&b, "b", d1, 1, "Float32", bytes64, 4);
	buf_record(&b, "a", d2, 1, "Int32", five_six, 8);
	buf_record(&b, "c", d1, 1, "Int8", bytes64, 1);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 3);
	assert_int_equal(ckpt_stats(f)->duplicates, 1);
	assert_int_equal(ckpt_stats(f)->records, 4);
	assert_int_equal(ckpt_stats(f)->data_bytes, 8 + 4 + 1);
	/* earlier position, later data */
	assert_int_equal(ckpt_find(f, "a"), 0);
	assert_int_equal(ckpt_find(f, "b"), 1);
	assert_int_equal(ckpt_find(f, "c"), 2);
	p = param(f, 0);
	assert_string_equal(p->fname, "a");
	assert_dims(&p->tensor, d2, 1);
	assert_int_equal(p->tensor.size, 8);
	assert_int_equal(p->nslices, 1);
	assert_read(f, &p->tensor, five_six, 8);
	oracle(&b, f);
	ckpt_close(f);

	/* a third occurrence */
	buf_record(&b, "a", d1, 1, "Int8", bytes64 + 9, 1);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 3);
	assert_int_equal(ckpt_stats(f)->duplicates, 2);
	assert_int_equal(ckpt_stats(f)->data_bytes, 1 + 4 + 1);
	assert_read(f, &param(f, 0)->tensor, bytes64 + 9, 1);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
}

static void test_str(void **state)
{
	static const int64_t zero[] = {0};
	static const uint8_t hi[8] = {'h', 0, 0, 0, 'i', 0, 0, 0};
	static const uint8_t empty[4] = {0};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	buf_record(&b, "note", zero, 1, "str", hi, 8);
	buf_record(&b, "empty", zero, 1, "str", empty, 4);
	buf_record(&b, "nodims", NULL, 0, "str", hi, 4);
	buf_record(&b, "sliced", zero, 1, "str", hi, 4);
	buf_record(&b, "sliced", zero, 1, "str", hi + 4, 4);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 4);
	p = find(f, "note");
	assert_int_equal(p->tensor.dtype, CKPT_DT_STR);
	assert_string_equal(p->tensor.type_str, "str");
	assert_int_equal(p->tensor.ndims, 0);
	assert_int_equal(p->tensor.size, 8);
	assert_read(f, &p->tensor, hi, 8);
	p = find(f, "empty");
	assert_int_equal(p->tensor.size, 4);
	p = find(f, "nodims");
	assert_int_equal(p->tensor.ndims, 0);
	assert_int_equal(p->tensor.size, 4);
	p = find(f, "sliced");
	assert_int_equal(p->nslices, 2);
	assert_int_equal(p->tensor.ndims, 0);
	assert_read(f, &p->tensor, hi, 8);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* even the empty string is one (NUL) code point */
	buf_record(&b, "zero", zero, 1, "str", hi, 0);
	expect_corrupt(&b, "str");
	buf_free(&b);
	/* not a whole number of UTF-32 code points */
	buf_record(&b, "bad", zero, 1, "str", hi, 6);
	expect_corrupt(&b, "str");
	buf_free(&b);
	buf_record(&b, "bad", zero, 1, "str", hi, 4);
	buf_record(&b, "bad", zero, 1, "str", hi, 3);
	expect_corrupt(&b, "'bad'");
	buf_free(&b);
}

static void test_bf16(void **state)
{
	static const int64_t d5[] = {5};
	uint8_t f32[20], want[10], got[16];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	for (int i = 0; i < 20; i++)
		f32[i] = (uint8_t)(0x10 + i * 7);
	for (int i = 0; i < 10; i++)
		want[i] = f32[(i / 2) * 4 + 2 + i % 2];

	buf_record(&b, "old", d5, 1, "BFloat16", f32, 20);
	buf_record(&b, "new", d5, 1, "BFloat16", f32, 10);
	buf_record(&b, "scalar", NULL, 0, "BFloat16", f32, 4);
	f = open_ok(&b);
	p = find(f, "old");
	assert_int_equal(p->tensor.dtype, CKPT_DT_BFLOAT16);
	assert_true(p->tensor.bf16_from_f32);
	assert_int_equal(p->tensor.size, 10);
	assert_int_equal(p->tensor.stored, 20);
	for (uint64_t off = 0; off <= 12; off++)
		for (size_t len = 0; len <= 12; len++) {
			size_t exp =
				off >= 10 ? 0
					  : (10 - off < len ? 10 - off : len);
			memset(got, 0xEE, sizeof(got));
			assert_int_equal(tensor_read_n(f, &p->tensor, got, len,
						       off, NULL),
					 (ssize_t)exp);
			if (exp)
				assert_memory_equal(got, want + off, exp);
			for (size_t k = exp; k < sizeof(got); k++)
				assert_int_equal(got[k], 0xEE);
		}
	p = find(f, "new");
	assert_false(p->tensor.bf16_from_f32);
	assert_int_equal(p->tensor.size, 10);
	assert_int_equal(p->tensor.stored, 10);
	assert_read(f, &p->tensor, f32, 10);
	p = find(f, "scalar");
	assert_true(p->tensor.bf16_from_f32);
	assert_int_equal(p->tensor.size, 2);
	assert_read(f, &p->tensor, f32 + 2, 2);
	assert_int_equal(ckpt_stats(f)->data_bytes, 10 + 10 + 2);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	/* neither 2 nor 4 bytes per element */
	buf_record(&b, "odd", d5, 1, "BFloat16", f32, 15);
	expect_corrupt(&b, "BFloat16");
	buf_free(&b);
	/* the float32 form is only for BFloat16 */
	buf_record(&b, "f16", d5, 1, "Float16", f32, 20);
	expect_corrupt(&b, NULL);
	buf_free(&b);
}

static void test_zero_elements(void **state)
{
	static const int64_t d04[] = {0, 4}, d402[] = {4, 0, 2};
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	uint8_t x[4];
	(void)state;

	buf_record(&b, "e", d04, 2, "Float32", bytes64, 0);
	buf_record(&b, "e3", d402, 3, "Int64", bytes64, 0);
	f = open_ok(&b);
	p = find(f, "e");
	assert_dims(&p->tensor, d04, 2);
	assert_false(p->tensor.dims_zero_form);
	assert_int_equal(p->tensor.size, 0);
	assert_int_equal(p->tensor.stored, 0);
	assert_int_equal(p->tensor.nextents, 0);
	assert_int_equal(tensor_read_n(f, &p->tensor, x, 4, 0, NULL), 0);
	p = find(f, "e3");
	assert_dims(&p->tensor, d402, 3);
	assert_int_equal(p->tensor.size, 0);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	buf_record(&b, "e", d04, 2, "Float32", bytes64, 4);
	expect_corrupt(&b, "[0,4]");
	buf_free(&b);
	/* tensor_content is required even when it would be empty */
	{
		struct buf t = {0};
		for (int i = 0; i < 2; i++) {
			buf_key(&t, 1, 0);
			buf_varint(&t, (uint64_t)d04[i]);
		}
		buf_len_field(&t, 2, "Float32", 7);
		rec_raw(&b, "e", &t);
		expect_corrupt(&b, "tensor_content");
		buf_free(&b);
		buf_free(&t);
	}
}

/* keys [n] int64, values [n,2] float32, status [n] int32 */
static void map_rec(struct buf *b, const char *tag, int64_t n,
		    const uint8_t *kd, const uint8_t *vd, const uint8_t *sd,
		    const char *kt, const char *vt, const char *stt)
{
	int64_t dn[] = {n}, dv[] = {n, 2};
	struct buf k = {0}, v = {0}, s = {0};

	buf_tensor(&k, dn, 1, kt, kd, (size_t)n * 8);
	buf_tensor(&v, dv, 2, vt, vd, (size_t)n * 8);
	buf_tensor(&s, dn, 1, stt, sd, (size_t)n * 4);
	buf_map_record(b, tag, &k, &v, &s);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);
}

static void test_map(void **state)
{
	static const int64_t d3[] = {3}, d32[] = {3, 2};
	struct buf b = {0}, pc = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	map_rec(&b, "emb", 3, bytes64, bytes64 + 24, bytes64 + 48, "int64",
		"float32", "int32");
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 1);
	p = param(f, 0);
	assert_int_equal(p->kind, CKPT_PARAM_MAP);
	assert_int_equal(p->nslices, 1);
	assert_int_equal(p->map[CKPT_MAP_KEYS].dtype, CKPT_DT_INT64);
	assert_string_equal(p->map[CKPT_MAP_KEYS].type_str, "int64");
	assert_dims(&p->map[CKPT_MAP_KEYS], d3, 1);
	assert_int_equal(p->map[CKPT_MAP_VALUES].dtype, CKPT_DT_FLOAT32);
	assert_dims(&p->map[CKPT_MAP_VALUES], d32, 2);
	assert_int_equal(p->map[CKPT_MAP_STATUS].dtype, CKPT_DT_INT32);
	assert_dims(&p->map[CKPT_MAP_STATUS], d3, 1);
	assert_read(f, &p->map[CKPT_MAP_KEYS], bytes64, 24);
	assert_read(f, &p->map[CKPT_MAP_VALUES], bytes64 + 24, 24);
	assert_read(f, &p->map[CKPT_MAP_STATUS], bytes64 + 48, 12);
	assert_int_equal(ckpt_stats(f)->data_bytes, 60);
	assert_string_equal(ckpt_map_names[CKPT_MAP_KEYS], "keys");
	assert_string_equal(ckpt_map_names[CKPT_MAP_VALUES], "values");
	assert_string_equal(ckpt_map_names[CKPT_MAP_STATUS], "status");
	oracle(&b, f);
	ckpt_close(f);

	/* protobuf-c writes the same bytes */
	{
		int64_t dk[] = {3}, dv[] = {3, 2};
		TensorProto t[3] = {TENSOR_PROTO__INIT, TENSOR_PROTO__INIT,
				    TENSOR_PROTO__INIT};
		TensorProto *tp[3] = {&t[0], &t[1], &t[2]};
		MapTensorProto m = MAP_TENSOR_PROTO__INIT;
		Checkpoint__Value v = CHECKPOINT__VALUE__INIT;
		Checkpoint__Value *vs[] = {&v};
		Checkpoint c = CHECKPOINT__INIT;
		const char *types[] = {"int64", "float32", "int32"};
		size_t lens[] = {24, 24, 12};
		for (int i = 0; i < 3; i++) {
			t[i].n_dims = i == 1 ? 2 : 1;
			t[i].dims = i == 1 ? dv : dk;
			t[i].tensor_type = UNCONST(types[i]);
			t[i].tensor_content.data = UNCONST(bytes64 + 24 * i);
			t[i].tensor_content.len = lens[i];
		}
		m.n_tensor = 3;
		m.tensor = tp;
		v.tag = UNCONST("emb");
		v.value_case = CHECKPOINT__VALUE__VALUE_MAPTENSOR;
		v.maptensor = &m;
		c.n_value = 1;
		c.value = vs;
		buf_pack_checkpoint(&pc, &c);
		assert_int_equal(pc.len, b.len);
		assert_memory_equal(pc.p, b.p, b.len);
	}
	buf_free(&b);
	buf_free(&pc);

	/* v2.0 spelled the types the MindSpore way */
	map_rec(&b, "emb", 3, bytes64, bytes64 + 24, bytes64 + 48, "Int64",
		"Float32", "Int32");
	f = open_ok(&b);
	assert_int_equal(param(f, 0)->map[CKPT_MAP_KEYS].dtype, CKPT_DT_INT64);
	ckpt_close(f);
	buf_free(&b);

	/* an empty map */
	map_rec(&b, "none", 0, bytes64, bytes64, bytes64, "int64", "float32",
		"int32");
	f = open_ok(&b);
	p = param(f, 0);
	assert_int_equal(p->map[CKPT_MAP_VALUES].ndims, 2);
	assert_int_equal(p->map[CKPT_MAP_VALUES].dims[0], 0);
	assert_int_equal(p->map[CKPT_MAP_VALUES].size, 0);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
}

static void test_map_sliced(void **state)
{
	static const int64_t d3[] = {3}, d32[] = {3, 2};
	uint8_t keys[24], vals[24], stat[12];
	struct buf b = {0};
	struct ckpt_file *f;
	const struct ckpt_param *p;
	(void)state;

	for (int i = 0; i < 24; i++) {
		keys[i] = (uint8_t)i;
		vals[i] = (uint8_t)(100 + i);
	}
	for (int i = 0; i < 12; i++)
		stat[i] = (uint8_t)(200 + i);
	map_rec(&b, "emb", 2, keys, vals, stat, "int64", "float32", "int32");
	map_rec(&b, "emb", 1, keys + 16, vals + 16, stat + 8, "int64",
		"float32", "int32");
	buf_record(&b, "next", d3, 1, "Int8", bytes64, 3);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	p = param(f, 0);
	assert_int_equal(p->kind, CKPT_PARAM_MAP);
	assert_int_equal(p->nslices, 2);
	assert_dims(&p->map[CKPT_MAP_KEYS], d3, 1);
	assert_dims(&p->map[CKPT_MAP_VALUES], d32, 2);
	assert_dims(&p->map[CKPT_MAP_STATUS], d3, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(p->map[i].nextents, 2);
	assert_read(f, &p->map[CKPT_MAP_KEYS], keys, 24);
	assert_read(f, &p->map[CKPT_MAP_VALUES], vals, 24);
	assert_read(f, &p->map[CKPT_MAP_STATUS], stat, 12);
	assert_int_equal(ckpt_stats(f)->data_bytes, 60 + 3);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
}

/* Slices of a map must agree on everything but the number of rows. */
static void test_map_slices_disagree(void **state)
{
	static const int64_t d2[] = {2}, d1[] = {1}, d21[] = {2, 1},
			     d13[] = {1, 3};
	struct buf b = {0}, k = {0}, v = {0}, s = {0};
	(void)state;

	/* values [2,1] then [1,3]: shown as [3,3] but 5 floats stored */
	buf_tensor(&k, d2, 1, "int32", bytes64, 8);
	buf_tensor(&v, d21, 2, "float32", bytes64, 8);
	buf_tensor(&s, d2, 1, "int32", bytes64, 8);
	buf_map_record(&b, "m", &k, &v, &s);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);
	buf_tensor(&k, d1, 1, "int32", bytes64, 4);
	buf_tensor(&v, d13, 2, "float32", bytes64, 12);
	buf_tensor(&s, d1, 1, "int32", bytes64, 4);
	buf_map_record(&b, "m", &k, &v, &s);
	expect_corrupt(&b, "values");
	buf_free(&b);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);

	/* keys int32 [2] then int64 [1]: shown as int64 [3], 16 bytes */
	buf_tensor(&k, d2, 1, "int32", bytes64, 8);
	buf_tensor(&v, d2, 1, "float32", bytes64, 8);
	buf_tensor(&s, d2, 1, "int32", bytes64, 8);
	buf_map_record(&b, "m", &k, &v, &s);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);
	buf_tensor(&k, d1, 1, "int64", bytes64, 8);
	buf_tensor(&v, d1, 1, "float32", bytes64, 4);
	buf_tensor(&s, d1, 1, "int32", bytes64, 4);
	buf_map_record(&b, "m", &k, &v, &s);
	expect_corrupt(&b, "keys");
	buf_free(&b);
	buf_free(&k);
	buf_free(&v);
	buf_free(&s);
}

static void test_map_errors(void **state)
{
	static const int64_t d2[] = {2}, dneg[] = {-1};
	struct buf b = {0}, k = {0}, m = {0}, bad = {0};
	(void)state;

	buf_tensor(&k, d2, 1, "int32", bytes64, 8);

	/* 2 tensors */
	buf_len_field(&m, 1, k.p, k.len);
	buf_len_field(&m, 1, k.p, k.len);
	buf_value_record(&b, "m", 1, 3, &m);
	expect_corrupt(&b, "2 tensors");
	buf_free(&b);
	/* 4 tensors */
	buf_len_field(&m, 1, k.p, k.len);
	buf_len_field(&m, 1, k.p, k.len);
	buf_value_record(&b, "m", 1, 3, &m);
	expect_corrupt(&b, "more than 3");
	buf_free(&b);
	buf_free(&m);
	/* empty maptensor */
	buf_value_record(&b, "m", 1, 3, &m);
	expect_corrupt(&b, "0 tensors");
	buf_free(&b);

	/* a map tensor without dims */
	buf_tensor(&bad, NULL, 0, "int32", bytes64, 4);
	buf_map_record(&b, "m", &k, &bad, &k);
	expect_corrupt(&b, "values");
	buf_free(&b);
	buf_free(&bad);
	/* content does not match dims */
	buf_tensor(&bad, d2, 1, "int32", bytes64, 12);
	buf_map_record(&b, "m", &k, &k, &bad);
	expect_corrupt(&b, "status");
	buf_free(&b);
	buf_free(&bad);
	/* negative rows */
	buf_tensor(&bad, dneg, 1, "int32", bytes64, 0);
	buf_map_record(&b, "m", &bad, &k, &k);
	expect_corrupt(&b, "keys");
	buf_free(&b);
	buf_free(&bad);
	/* unknown type */
	buf_tensor(&bad, d2, 1, "int33", bytes64, 8);
	buf_map_record(&b, "m", &k, &k, &bad);
	expect_corrupt(&b, "int33");
	buf_free(&b);
	buf_free(&bad);
	/* field 1 of MapTensorProto with the wrong wire type */
	buf_key(&m, 1, 0);
	buf_varint(&m, 1);
	buf_value_record(&b, "m", 1, 3, &m);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&m);
	/* a map tensor running past the map */
	buf_key(&m, 1, 2);
	buf_varint(&m, 50);
	buf_bytes(&m, k.p, k.len);
	buf_value_record(&b, "m", 1, 3, &m);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_free(&m);
	buf_free(&k);
}

static void test_slices_mix_kinds(void **state)
{
	static const int64_t d2[] = {2};
	struct buf b = {0};
	(void)state;

	buf_record(&b, "x", d2, 1, "Int64", bytes64, 16);
	map_rec(&b, "x", 2, bytes64, bytes64, bytes64, "int64", "float32",
		"int32");
	expect_corrupt(&b, "mix");
	buf_free(&b);
	map_rec(&b, "x", 2, bytes64, bytes64, bytes64, "int64", "float32",
		"int32");
	buf_record(&b, "x", d2, 1, "Int64", bytes64, 16);
	expect_corrupt(&b, "mix");
	buf_free(&b);
}

/* oneof: the last of tensor / maptensor wins, as in protobuf */
static void test_oneof_last_wins(void **state)
{
	static const int64_t d2[] = {2};
	struct buf b = {0}, t = {0}, k = {0}, m = {0}, v = {0};
	struct ckpt_file *f;
	(void)state;

	buf_tensor(&t, d2, 1, "Int8", bytes64, 2);
	buf_tensor(&k, d2, 1, "int32", bytes64, 8);
	for (int i = 0; i < 3; i++)
		buf_len_field(&m, 1, k.p, k.len);
	buf_len_field(&v, 1, "x", 1);
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&v, 3, m.p, m.len);
	buf_len_field(&b, 1, v.p, v.len);
	buf_free(&v);
	buf_len_field(&v, 1, "y", 1);
	buf_len_field(&v, 3, m.p, m.len);
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&b, 1, v.p, v.len);
	f = open_ok(&b);
	assert_int_equal(find(f, "x")->kind, CKPT_PARAM_MAP);
	assert_int_equal(find(f, "y")->kind, CKPT_PARAM_TENSOR);
	assert_int_equal(find(f, "y")->tensor.size, 2);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&t);
	buf_free(&k);
	buf_free(&m);
	buf_free(&v);
}

static void test_protobuf_c_file(void **state)
{
	int64_t d23[] = {2, 3}, d0[] = {0};
	TensorProto t[4] = {TENSOR_PROTO__INIT, TENSOR_PROTO__INIT,
			    TENSOR_PROTO__INIT, TENSOR_PROTO__INIT};
	Checkpoint__Value v[4] = {CHECKPOINT__VALUE__INIT,
				  CHECKPOINT__VALUE__INIT,
				  CHECKPOINT__VALUE__INIT,
				  CHECKPOINT__VALUE__INIT};
	Checkpoint__Value *vs[4] = {&v[0], &v[1], &v[2], &v[3]};
	Checkpoint c = CHECKPOINT__INIT;
	static const char *tags[4] = {"conv.weight", "step", "name",
				      "moments.conv.weight"};
	static const char *types[4] = {"Float32", "Int64", "str", "Float32"};
	int64_t *dims[4] = {d23, NULL, d0, d23};
	size_t nd[4] = {2, 0, 1, 2}, len[4] = {24, 8, 12, 24};
	struct buf pc = {0}, b = {0};
	struct ckpt_file *f;
	(void)state;

	for (int i = 0; i < 4; i++) {
		t[i].n_dims = nd[i];
		t[i].dims = dims[i];
		t[i].tensor_type = UNCONST(types[i]);
		t[i].tensor_content.data = (uint8_t *)UNCONST(bytes64) + i;
		t[i].tensor_content.len = len[i];
		v[i].tag = UNCONST(tags[i]);
		v[i].value_case = CHECKPOINT__VALUE__VALUE_TENSOR;
		v[i].tensor = &t[i];
		buf_record(&b, tags[i], dims[i], (unsigned)nd[i], types[i],
			   bytes64 + i, len[i]);
	}
	c.n_value = 4;
	c.value = vs;
	buf_pack_checkpoint(&pc, &c);
	assert_int_equal(pc.len, b.len);
	assert_memory_equal(pc.p, b.p, b.len);
	f = open_ok(&pc);
	assert_int_equal(ckpt_count(f), 4);
	assert_int_equal(find(f, "name")->tensor.dtype, CKPT_DT_STR);
	assert_int_equal(find(f, "step")->tensor.ndims, 0);
	assert_read(f, &find(f, "moments.conv.weight")->tensor, bytes64 + 3,
		    24);
	oracle(&pc, f);
	ckpt_close(f);
	buf_free(&pc);
	buf_free(&b);
}

/* ---- malformed files --------------------------------------------------- */

/* A small file with one of everything; bounds[i] = offset after record i
 * and want[i] = number of parameters if the file ended there (-1: error). */
static void build_mixed(struct buf *b, size_t *bounds, int *want, size_t *nb)
{
	static const int64_t d1[] = {1}, d2[] = {2}, d21[] = {2, 1},
			     d04[] = {0, 4}, d0[] = {0};
	struct buf t = {0};
	size_t n = 0;

#define MARK(w)                     \
	do {                        \
		bounds[n] = b->len; \
		want[n++] = (w);    \
	} while (0)
	MARK(0);
	buf_record(b, "g", d1, 1, "Int32", bytes64, 4);
	MARK(1);
	buf_record(b, "s", NULL, 0, "Float32", bytes64, 4);
	MARK(2);
	buf_record(b, "b", d2, 1, "BFloat16", bytes64, 8);
	MARK(3);
	buf_tensor_packed(&t, d21, 2, "Int16", bytes64, 4);
	rec_raw(b, "p", &t);
	buf_free(&t);
	MARK(4);
	{
		struct buf k = {0}, v = {0}, s = {0};
		buf_tensor(&k, d1, 1, "int32", bytes64, 4);
		buf_tensor(&v, d1, 1, "float32", bytes64, 4);
		buf_tensor(&s, d1, 1, "int32", bytes64, 4);
		buf_map_record(b, "m", &k, &v, &s);
		buf_free(&k);
		buf_free(&v);
		buf_free(&s);
	}
	MARK(5);
	buf_record(b, "z", d04, 2, "Float32", bytes64, 0);
	MARK(6);
	buf_record(b, "t", d0, 1, "str", bytes64, 4);
	MARK(7);
	buf_record(b, "w", d2, 1, "Int8", bytes64, 1);
	MARK(-1); /* first slice alone */
	buf_record(b, "w", d2, 1, "Int8", bytes64 + 1, 1);
	MARK(8);
	buf_len_field(b, 2, "no", 2);
	MARK(8);
#undef MARK
	*nb = n;
}

static void test_truncation_every_offset(void **state)
{
	struct buf b = {0};
	size_t bounds[16], nb, nok = 0;
	int want[16];
	(void)state;

	build_mixed(&b, bounds, want, &nb);
	{ /* the whole file is valid */
		struct ckpt_file *f = open_ok(&b);
		assert_int_equal(ckpt_count(f), 8);
		oracle(&b, f);
		ckpt_close(f);
	}
	for (size_t cut = 0; cut <= b.len; cut++) {
		struct buf c = {0};
		struct ckpt_file *f = NULL;
		struct ckpt_error err = {0};
		char *path;
		int w = -1;
		ckpt_err rc;

		for (size_t i = 0; i < nb; i++)
			if (bounds[i] == cut)
				w = want[i];
		buf_bytes(&c, b.p, cut);
		rc = buf_open(&c, NULL, &f, &err, &path);
		if (w >= 0) {
			if (rc)
				print_error("cut %zu: %s\n", cut, err.msg);
			assert_int_equal(rc, CKPT_OK);
			assert_int_equal(ckpt_count(f), (size_t)w);
			assert_int_equal(ckpt_stats(f)->stream_size, cut);
			oracle(&c, f);
			ckpt_close(f);
			nok++;
		} else {
			if (rc != CKPT_ERR_CORRUPT)
				print_error("cut %zu: rc %d\n", cut, rc);
			assert_int_equal(rc, CKPT_ERR_CORRUPT);
			assert_null(f);
			assert_non_null(strstr(err.msg, path));
			assert_non_null(strstr(err.msg, "offset"));
		}
		free(path);
		buf_free(&c);
	}
	assert_int_equal(nok, nb - 1);
	buf_free(&b);
}

static void test_flip_every_byte(void **state)
{
	static const uint8_t masks[] = {0x01, 0x02, 0x04, 0x08, 0x10,
					0x20, 0x40, 0x80, 0xff};
	struct buf b = {0};
	size_t bounds[16], nb, nok = 0, nerr = 0, noracle = 0;
	int want[16];
	(void)state;

	build_mixed(&b, bounds, want, &nb);
	for (size_t pos = 0; pos < b.len; pos++)
		for (size_t mi = 0; mi < N(masks); mi++) {
			struct ckpt_file *f = NULL;
			struct ckpt_error err = {0};
			char *path;
			ckpt_err rc;

			b.p[pos] ^= masks[mi];
			rc = buf_open(&b, NULL, &f, &err, &path);
			if (rc == CKPT_OK) {
				assert_non_null(f);
				for (size_t i = 0; i < ckpt_count(f); i++) {
					const struct ckpt_param *p =
						param(f, i);
					assert_int_equal(ckpt_find(f, p->fname),
							 (ssize_t)i);
					if (p->kind == CKPT_PARAM_TENSOR) {
						free(read_tensor(f,
								 &p->tensor));
						continue;
					}
					for (int k = 0; k < 3; k++)
						free(read_tensor(f,
								 &p->map[k]));
				}
				/* where protobuf-c agrees it is valid, the
				 * contents must agree too */
				if (oracle_check(b.p, b.len, f))
					noracle++;
				ckpt_close(f);
				nok++;
			} else {
				if (rc != CKPT_ERR_CORRUPT)
					print_error("pos %zu mask %x: %s\n",
						    pos, masks[mi], err.msg);
				assert_int_equal(rc, CKPT_ERR_CORRUPT);
				assert_null(f);
				assert_non_null(strstr(err.msg, path));
				assert_non_null(strstr(err.msg, "offset"));
				nerr++;
			}
			free(path);
			b.p[pos] ^= masks[mi];
		}
	/* both outcomes happen */
	assert_true(nok > 0);
	assert_true(nerr > 0);
	assert_true(noracle > 0);
	buf_free(&b);
}

static void test_strategy_file(void **state)
{
	struct buf b = {0};
	(void)state;

	buf_key(&b, 1, 0); /* field 1, varint */
	buf_varint(&b, 1);
	buf_len_field(&b, 2, "xyz", 3);
	expect_corrupt(&b, "wire type 0");
	buf_free(&b);
	/* field 1 with wire types 1 and 5 */
	buf_key(&b, 1, 1);
	buf_bytes(&b, "12345678", 8);
	expect_corrupt(&b, "wire type 1");
	buf_free(&b);
	buf_key(&b, 1, 5);
	buf_bytes(&b, "1234", 4);
	expect_corrupt(&b, "wire type 5");
	buf_free(&b);
}

static void test_groups(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0}, v = {0};
	(void)state;

	/* top level: field 1 or 2 as a group */
	for (unsigned field = 1; field <= 2; field++)
		for (unsigned wt = 3; wt <= 4; wt++) {
			buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
			buf_key(&b, field, wt);
			buf_key(&b, field, wt == 3 ? 4 : 3);
			expect_corrupt(&b, "wire type");
			buf_free(&b);
		}
	/* wire types 6 and 7 do not exist */
	buf_key(&b, 2, 6);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_key(&b, 2, 7);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	/* inside a Value */
	buf_len_field(&v, 1, "g", 1);
	buf_key(&v, 5, 3);
	buf_key(&v, 5, 4);
	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&v);
	/* inside a TensorProto */
	buf_key(&t, 6, 4);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&t);
	/* known fields with groups */
	buf_key(&t, 1, 3);
	buf_key(&t, 1, 4);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&t);
}

static void test_wrong_wire_types(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0}, v = {0};
	(void)state;

	/* Value.tag as a varint */
	buf_key(&v, 1, 0);
	buf_varint(&v, 5);
	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&v);
	/* Value.tensor as fixed32 */
	buf_len_field(&v, 1, "g", 1);
	buf_key(&v, 2, 5);
	buf_bytes(&v, "1234", 4);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&v);
	/* tensor_type as varint, tensor_content as fixed64, dims as fixed32 */
	buf_key(&t, 2, 0);
	buf_varint(&t, 1);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&t);
	buf_key(&t, 3, 1);
	buf_bytes(&t, "12345678", 8);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&t);
	buf_key(&t, 1, 5);
	buf_bytes(&t, "1234", 4);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "wire type");
	buf_free(&b);
	buf_free(&t);
}

static void test_field_zero(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0}, v = {0};
	(void)state;

	buf_key(&b, 0, 2);
	buf_varint(&b, 0);
	expect_corrupt(&b, "field number 0");
	buf_free(&b);
	buf_bytes(&b, "\x00", 1);
	expect_corrupt(&b, "field number 0");
	buf_free(&b);

	buf_len_field(&v, 1, "g", 1);
	buf_key(&v, 0, 0);
	buf_varint(&v, 0);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "field number 0");
	buf_free(&b);
	buf_free(&v);

	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_key(&t, 0, 0);
	buf_varint(&t, 0);
	rec_raw(&b, "g", &t);
	expect_corrupt(&b, "field number 0");
	buf_free(&b);
	buf_free(&t);
}

static void test_record_past_eof(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0};
	(void)state;

	buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
	buf_key(&b, 1, 2);
	buf_varint(&b, 16);
	buf_bytes(&b, "12345", 5);
	expect_corrupt(&b, "past the end");
	buf_free(&b);
	/* a huge length */
	buf_key(&b, 1, 2);
	buf_varint(&b, UINT64_MAX);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_key(&b, 1, 2);
	buf_varint(&b, (uint64_t)1 << 62);
	buf_bytes(&b, "12345", 5);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	/* an unknown top-level field past the end */
	buf_len_field(&b, 2, "normal", 6);
	b.len--;
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_key(&b, 3, 1); /* fixed64 with 3 bytes */
	buf_bytes(&b, "123", 3);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_key(&b, 3, 5);
	buf_bytes(&b, "123", 3);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	/* key at the very end */
	buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
	buf_bytes(&b, "\x0a", 1);
	expect_corrupt(&b, NULL);
	buf_free(&b);
}

static void test_length_past_message_end(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0}, v = {0};
	(void)state;

	/* tensor_content longer than what is left of the TensorProto, though
	 * the file goes on */
	buf_key(&t, 1, 0);
	buf_varint(&t, 1);
	buf_len_field(&t, 2, "Int8", 4);
	buf_key(&t, 3, 2);
	buf_varint(&t, 9);
	buf_bytes(&t, "x", 1);
	rec_raw(&b, "a", &t);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "tensor_content");
	buf_free(&b);
	buf_free(&t);

	/* tensor_type past the TensorProto */
	buf_key(&t, 2, 2);
	buf_varint(&t, 7);
	buf_bytes(&t, "Int", 3);
	rec_raw(&b, "a", &t);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "tensor_type");
	buf_free(&b);
	buf_free(&t);

	/* packed dims past the TensorProto */
	buf_key(&t, 1, 2);
	buf_varint(&t, 5);
	buf_bytes(&t, "\x01\x02", 2);
	rec_raw(&b, "a", &t);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "dims");
	buf_free(&b);
	buf_free(&t);

	/* a varint dim cut by the end of the TensorProto */
	buf_key(&t, 1, 0);
	buf_bytes(&t, "\x80", 1);
	rec_raw(&b, "a", &t);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "varint");
	buf_free(&b);
	buf_free(&t);

	/* tag past the Value */
	buf_key(&v, 1, 2);
	buf_varint(&v, 30);
	buf_bytes(&v, "ab", 2);
	buf_len_field(&b, 1, v.p, v.len);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "tag");
	buf_free(&b);
	buf_free(&v);

	/* TensorProto past the Value */
	buf_len_field(&v, 1, "a", 1);
	buf_key(&v, 2, 2);
	buf_varint(&v, 40);
	buf_tensor(&v, d1, 1, "Int8", bytes64, 1);
	buf_len_field(&b, 1, v.p, v.len);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "past the end");
	buf_free(&b);
	buf_free(&v);

	/* an unknown field past the TensorProto */
	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_key(&t, 9, 2);
	buf_varint(&t, 3);
	rec_raw(&b, "a", &t);
	buf_record(&b, "b", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	buf_free(&t);
}

static void test_long_varints(void **state)
{
	static const int64_t d1[] = {1};
	static const uint8_t ten_ff[10] = {0xff, 0xff, 0xff, 0xff, 0xff,
					   0xff, 0xff, 0xff, 0xff, 0xff};
	struct buf b = {0}, t = {0};
	(void)state;

	/* 11-byte record length */
	buf_key(&b, 1, 2);
	buf_bytes(&b, ten_ff, 10);
	buf_bytes(&b, "\x01", 1);
	buf_bytes(&b, bytes64, 64);
	expect_corrupt(&b, "varint");
	buf_free(&b);
	/* 11-byte key */
	buf_bytes(&b, ten_ff, 10);
	buf_bytes(&b, "\x00", 1);
	expect_corrupt(&b, "varint");
	buf_free(&b);
	/* 10 bytes whose last byte overflows 64 bits */
	buf_key(&b, 1, 2);
	buf_bytes(&b, ten_ff, 9);
	buf_bytes(&b, "\x02", 1);
	buf_bytes(&b, bytes64, 64);
	expect_corrupt(&b, "varint");
	buf_free(&b);
	/* 11-byte dim */
	buf_key(&t, 1, 0);
	buf_bytes(&t, ten_ff, 10);
	buf_bytes(&t, "\x01", 1);
	buf_len_field(&t, 2, "Int8", 4);
	buf_len_field(&t, 3, bytes64, 1);
	rec_raw(&b, "a", &t);
	expect_corrupt(&b, "varint");
	buf_free(&b);
	buf_free(&t);
	/* 11-byte unknown varint field in a Value */
	{
		struct buf v = {0};
		buf_len_field(&v, 1, "a", 1);
		buf_key(&v, 7, 0);
		buf_bytes(&v, ten_ff, 10);
		buf_bytes(&v, "\x01", 1);
		buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
		buf_len_field(&v, 2, t.p, t.len);
		buf_len_field(&b, 1, v.p, v.len);
		expect_corrupt(&b, "varint");
		buf_free(&b);
		buf_free(&t);
		buf_free(&v);
	}
	/* a file of nothing but continuation bytes */
	buf_bytes(&b, ten_ff, 10);
	buf_bytes(&b, ten_ff, 10);
	expect_corrupt(&b, "varint");
	buf_free(&b);
}

static void test_negative_dim(void **state)
{
	static const int64_t neg[] = {-1}, neg2[] = {2, -3},
			     big[] = {INT64_MIN};
	struct buf b = {0}, t = {0};
	(void)state;

	buf_record(&b, "a", neg, 1, "Int8", bytes64, 0);
	expect_corrupt(&b, "negative");
	buf_free(&b);
	/* -3 * 2 * 1 = -6; must not be accepted with 6 bytes either */
	buf_record(&b, "a", neg2, 2, "Int8", bytes64, 6);
	expect_corrupt(&b, "negative");
	buf_free(&b);
	buf_record(&b, "a", big, 1, "Int8", bytes64, 0);
	expect_corrupt(&b, "negative");
	buf_free(&b);
	/* packed */
	buf_tensor_packed(&t, neg, 1, "Int8", bytes64, 1);
	rec_raw(&b, "a", &t);
	expect_corrupt(&b, "negative");
	buf_free(&b);
	buf_free(&t);
	/* an earlier slice with a negative dim, the last one fine */
	{
		static const int64_t d1[] = {1};
		buf_record(&b, "a", neg, 1, "Int8", bytes64, 0);
		buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
		struct ckpt_file *f = open_ok(&b);
		assert_int_equal(param(f, 0)->tensor.dims[0], 1);
		ckpt_close(f);
		buf_free(&b);
	}
}

static void test_dims_overflow(void **state)
{
	static const int64_t d1[] = {(int64_t)1 << 32, (int64_t)1 << 32};
	static const int64_t d2[] = {(int64_t)1 << 62, 4};
	static const int64_t d4[] = {(int64_t)1 << 61, 1, 1, 1, 1, 1, 8};
	static const int64_t d5[] = {0, INT64_MAX, INT64_MAX};
	struct buf b = {0};
	struct ckpt_file *f;
	(void)state;

	buf_record(&b, "a", d1, 2, "Float32", bytes64, 16);
	expect_corrupt(&b, "overflow");
	buf_free(&b);
	buf_record(&b, "a", d2, 2, "Int8", bytes64, 0);
	expect_corrupt(&b, "overflow");
	buf_free(&b);
	buf_record(&b, "a", d4, 7, "Int8", bytes64, 0);
	expect_corrupt(&b, "overflow");
	buf_free(&b);
	/* a BFloat16 whose doubled size would overflow */
	{
		static const int64_t d6[] = {(int64_t)1 << 62};
		buf_record(&b, "a", d6, 1, "BFloat16", bytes64, 0);
		expect_corrupt(&b, NULL);
		buf_free(&b);
	}
	/* zero first: 0 elements whatever follows */
	buf_record(&b, "a", d5, 3, "Int8", bytes64, 0);
	f = open_ok(&b);
	assert_int_equal(param(f, 0)->tensor.size, 0);
	ckpt_close(f);
	buf_free(&b);
}

static void test_content_size_mismatch(void **state)
{
	static const int64_t d3[] = {3}, d23[] = {2, 3};
	struct buf b = {0};
	(void)state;

	buf_record(&b, "a", d3, 1, "Int32", bytes64, 11);
	expect_corrupt(&b, "needs 12");
	buf_free(&b);
	buf_record(&b, "a", d3, 1, "Int32", bytes64, 13);
	expect_corrupt(&b, "needs 12");
	buf_free(&b);
	buf_record(&b, "a", d23, 2, "Float64", bytes64, 24);
	expect_corrupt(&b, "[2,3]");
	buf_free(&b);
	buf_record(&b, "a", d3, 1, "Complex128", bytes64, 24);
	expect_corrupt(&b, NULL);
	buf_free(&b);
	/* content missing altogether */
	{
		struct buf t = {0};
		buf_key(&t, 1, 0);
		buf_varint(&t, 3);
		buf_len_field(&t, 2, "Int8", 4);
		rec_raw(&b, "a", &t);
		expect_corrupt(&b, NULL);
		buf_free(&b);
		buf_free(&t);
	}
}

static void test_bad_tensor_type(void **state)
{
	static const int64_t d1[] = {1};
	char longtype[80];
	struct buf b = {0}, t = {0};
	(void)state;

	buf_record(&b, "a", d1, 1, "Float33", bytes64, 4);
	expect_corrupt(&b, "Float33");
	buf_free(&b);
	buf_record(&b, "a", d1, 1, "", bytes64, 4);
	expect_corrupt(&b, "tensor_type");
	buf_free(&b);
	buf_record(&b, "a", d1, 1, "random_op", bytes64, 4);
	expect_corrupt(&b, "random_op");
	buf_free(&b);
	/* tensor_type missing altogether */
	buf_key(&t, 1, 0);
	buf_varint(&t, 1);
	buf_len_field(&t, 3, bytes64, 1);
	rec_raw(&b, "a", &t);
	expect_corrupt(&b, "tensor_type");
	buf_free(&b);
	buf_free(&t);
	/* far too long */
	memset(longtype, 'F', sizeof(longtype) - 1);
	longtype[sizeof(longtype) - 1] = '\0';
	buf_record(&b, "a", d1, 1, longtype, bytes64, 4);
	expect_corrupt(&b, "tensor_type");
	buf_free(&b);
	/* a valid name followed by a NUL and more bytes is not that name */
	buf_key(&t, 1, 0);
	buf_varint(&t, 1);
	buf_len_field(&t, 2, "Int32\0xy", 8);
	buf_len_field(&t, 3, bytes64, 4);
	rec_raw(&b, "a", &t);
	expect_corrupt(&b, "tensor_type");
	buf_free(&b);
	buf_free(&t);
	/* every slice's type must be known, not only the last one's */
	buf_record(&b, "a", d1, 1, "Bogus", bytes64, 0);
	buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
	expect_corrupt(&b, "Bogus");
	buf_free(&b);
	/* numpy names are for map tensors; a plain tensor has MindSpore's */
	buf_record(&b, "a", d1, 1, "float32", bytes64, 4);
	expect_corrupt(&b, "float32");
	buf_free(&b);
	buf_record(&b, "a", d1, 1, "int8", bytes64, 1);
	expect_corrupt(&b, "int8");
	buf_free(&b);
	/* ... and the old unsigned spelling is still read */
	buf_record(&b, "a", d1, 1, "Uint16", bytes64, 2);
	{
		struct ckpt_file *f = open_ok(&b);
		assert_int_equal(param(f, 0)->tensor.dtype, CKPT_DT_UINT16);
		assert_string_equal(param(f, 0)->tensor.type_str, "Uint16");
		ckpt_close(f);
	}
	buf_free(&b);
}

static void test_value_without_tag(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0}, v = {0};
	(void)state;

	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_len_field(&v, 2, t.p, t.len);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "no tag");
	buf_free(&b);
	/* an empty Value */
	buf_len_field(&b, 1, "", 0);
	expect_corrupt(&b, "no tag");
	buf_free(&b);
	buf_free(&t);
	buf_free(&v);
}

static void test_value_without_tensor(void **state)
{
	struct buf b = {0}, v = {0};
	(void)state;

	buf_len_field(&v, 1, "lonely", 6);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "neither");
	buf_free(&b);
	buf_key(&v, 4, 0);
	buf_varint(&v, 1);
	buf_len_field(&b, 1, v.p, v.len);
	expect_corrupt(&b, "'lonely'");
	buf_free(&b);
	buf_free(&v);
}

static void test_too_many_dims(void **state)
{
	int64_t ones[65];
	struct buf b = {0}, t = {0};
	struct ckpt_file *f;
	(void)state;

	for (int i = 0; i < 65; i++)
		ones[i] = 1;
	buf_record(&b, "a", ones, 64, "Int8", bytes64, 1);
	f = open_ok(&b);
	assert_int_equal(param(f, 0)->tensor.ndims, 64);
	assert_int_equal(param(f, 0)->tensor.size, 1);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);
	buf_record(&b, "a", ones, 65, "Int8", bytes64, 1);
	expect_corrupt(&b, "dims");
	buf_free(&b);
	buf_tensor_packed(&t, ones, 65, "Int8", bytes64, 1);
	rec_raw(&b, "a", &t);
	expect_corrupt(&b, "dims");
	buf_free(&b);
	buf_free(&t);
}

static void test_neg_fixtures(void **state)
{
	static const char *const names[] = {
		"NEG_mindformers_golden_router_utf8_mangled.ckpt",
		"NEG_mindformers_strategy_4_npus_not_a_checkpoint.ckpt",
		"NEG_nsu2022_LeNet5_1_step_1byte.ckpt",
	};
	(void)state;

	for (size_t i = 0; i < N(names); i++) {
		char path[4096];
		struct ckpt_file *f = (struct ckpt_file *)&f;
		struct ckpt_error err = {0};
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", fixtures_dir(), names[i]);
		if (stat(path, &st) != 0)
			print_error("missing fixture %s\n", path);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(ckpt_open(path, NULL, &f, &err),
				 CKPT_ERR_CORRUPT);
		assert_null(f);
		assert_int_equal(err.code, CKPT_ERR_CORRUPT);
		assert_non_null(strstr(err.msg, path));
		assert_non_null(strstr(err.msg, "offset"));
	}
}

/* The message keeps naming the offset when the path is long. */
static void test_long_path_message(void **state)
{
	char dir1[4096], dir2[4096 + 200], path[4096 + 400], name[160];
	struct buf b = {0};
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	char *tmp;
	int fd;
	(void)state;

	memset(name, 'd', 150);
	name[150] = '\0';
	tmp = buf_to_tmpfile(&b); /* just for a unique name */
	unlink(tmp);
	snprintf(dir1, sizeof(dir1), "%s-%s", tmp, name);
	snprintf(dir2, sizeof(dir2), "%s/%s", dir1, name);
	snprintf(path, sizeof(path), "%s/some-checkpoint-%s.ckpt", dir2, name);
	free(tmp);
	assert_int_equal(mkdir(dir1, 0700), 0);
	assert_int_equal(mkdir(dir2, 0700), 0);
	buf_record(&b, "a", NULL, 0, "Int8", bytes64, 3);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.p, b.len), (ssize_t)b.len);
	close(fd);
	assert_true(strlen(path) > 450);
	assert_int_equal(ckpt_open(path, NULL, &f, &err), CKPT_ERR_CORRUPT);
	unlink(path);
	rmdir(dir2);
	rmdir(dir1);
	if (!strstr(err.msg, "offset"))
		print_error("message: %s\n", err.msg);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "offset"));
	buf_free(&b);
}

static void test_open_errors(void **state)
{
	struct ckpt_file *f = (struct ckpt_file *)&f;
	struct ckpt_error err = {0};
	int fds[2];
	(void)state;

	assert_int_equal(ckpt_open("/nonexistent/dir/x.ckpt", NULL, &f, &err),
			 CKPT_ERR_IO);
	assert_null(f);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_int_equal(ckpt_errno(&err), ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/dir/x.ckpt"));

	f = (struct ckpt_file *)&f;
	assert_int_equal(ckpt_open("/tmp", NULL, &f, &err), CKPT_ERR_INVAL);
	assert_null(f);

	assert_int_equal(pipe(fds), 0);
	f = (struct ckpt_file *)&f;
	assert_int_equal(ckpt_open_fd(fds[0], "a pipe", NULL, &f, &err),
			 CKPT_ERR_INVAL);
	assert_null(f);
	assert_non_null(strstr(err.msg, "a pipe"));
	close(fds[1]);
	/* fds[0] was taken over and closed */
	assert_int_equal(fcntl(fds[0], F_GETFD), -1);
}

static void test_open_fd_label(void **state)
{
	static const int64_t d1[] = {1};
	struct buf b = {0};
	struct ckpt_file *f = NULL;
	struct ckpt_error err = {0};
	int fd;
	(void)state;

	buf_record(&b, "a", d1, 1, "Int8", bytes64, 1);
	fd = memfd_create("ckpt-unit", 0);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b.p, b.len), (ssize_t)b.len);
	assert_int_equal(ckpt_open_fd(fd, "decrypted:x.ckpt", NULL, &f, &err),
			 CKPT_OK);
	assert_string_equal(ckpt_path(f), "decrypted:x.ckpt");
	assert_int_equal(ckpt_fd(f), fd);
	assert_int_equal(ckpt_count(f), 1);
	ckpt_close(f);

	b.p[b.len - 6] = 'X'; /* type "Int8" -> "IXt8" */
	fd = memfd_create("ckpt-unit", 0);
	assert_int_equal(write(fd, b.p, b.len), (ssize_t)b.len);
	assert_int_equal(ckpt_open_fd(fd, "decrypted:y.ckpt", NULL, &f, &err),
			 CKPT_ERR_CORRUPT);
	assert_null(f);
	assert_non_null(strstr(err.msg, "decrypted:y.ckpt"));
	assert_non_null(strstr(err.msg, "offset"));
	/* without an error struct */
	fd = memfd_create("ckpt-unit", 0);
	assert_int_equal(write(fd, b.p, b.len), (ssize_t)b.len);
	assert_int_equal(ckpt_open_fd(fd, "z", NULL, &f, NULL),
			 CKPT_ERR_CORRUPT);
	assert_null(f);
	buf_free(&b);
}

static void test_name_limits(void **state)
{
	static const int64_t d1[] = {1};
	char *name = malloc(CKPT_NAME_MAX + 2);
	struct buf b = {0}, t = {0};
	struct ckpt_file *f;
	(void)state;

	assert_non_null(name);
	memset(name, 'n', CKPT_NAME_MAX + 1);
	name[CKPT_NAME_MAX + 1] = '\0';
	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	buf_value_record(&b, name, CKPT_NAME_MAX, 2, &t);
	buf_value_record(&b, "x", 1, 2, &t);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), 2);
	assert_int_equal(param(f, 0)->name_len, CKPT_NAME_MAX);
	name[CKPT_NAME_MAX] = '\0';
	assert_int_equal(ckpt_find(f, name), 0);
	assert_int_equal(ckpt_find(f, "x"), 1);
	oracle(&b, f);
	ckpt_close(f);
	buf_free(&b);

	name[CKPT_NAME_MAX] = 'n';
	buf_value_record(&b, name, CKPT_NAME_MAX + 1, 2, &t);
	expect_corrupt(&b, "tag");
	buf_free(&b);
	buf_free(&t);
	free(name);
}

/* ---- the index ----------------------------------------------------------- */

static void test_find_escaped(void **state)
{
	static const int64_t d1[] = {1};
	static const struct {
		const char *name;
		size_t len;
		const char *fname;
	} names[] = {
		{"a/b", 3, "a%2Fb"},  {"%", 1, "%25"},
		{"", 0, "%"},	      {".", 1, "%2E"},
		{"..", 2, "%2E%2E"},  {"...", 3, "..."},
		{"x\0y", 3, "x%00y"}, {"layer.0.weight", 14, "layer.0.weight"},
		{"/", 1, "%2F"},      {"%2F", 3, "%252F"},
	};
	struct buf b = {0}, t = {0};
	struct ckpt_file *f;
	(void)state;

	buf_tensor(&t, d1, 1, "Int8", bytes64, 1);
	for (size_t i = 0; i < N(names); i++)
		buf_value_record(&b, names[i].name, names[i].len, 2, &t);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), N(names));
	for (size_t i = 0; i < N(names); i++) {
		const struct ckpt_param *p = param(f, i);
		assert_int_equal(ckpt_find(f, names[i].fname), (ssize_t)i);
		assert_string_equal(p->fname, names[i].fname);
		assert_int_equal(p->name_len, names[i].len);
		if (names[i].len)
			assert_memory_equal(p->name, names[i].name,
					    names[i].len);
	}
	/* raw names that need escaping are not file names */
	assert_int_equal(ckpt_find(f, "a/b"), -1);
	assert_int_equal(ckpt_find(f, "."), -1);
	assert_int_equal(ckpt_find(f, ".."), -1);
	assert_int_equal(ckpt_find(f, ""), -1);
	assert_int_equal(ckpt_find(f, "x"), -1);
	assert_int_equal(ckpt_find(f, "missing"), -1);
	assert_int_equal(ckpt_find(f, "layer.0.weigh"), -1);
	assert_int_equal(ckpt_find(f, "layer.0.weightt"), -1);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&t);
}

static void test_find_10000(void **state)
{
	enum {
		NP = 10000
	};
	static const int64_t d1[] = {1};
	struct buf b = {0}, t = {0};
	struct ckpt_file *f;
	char name[64];
	(void)state;

	buf_tensor(&t, d1, 1, "Int32", bytes64, 4);
	for (int i = 0; i < NP; i++) {
		int n = snprintf(name, sizeof(name),
				 i % 7 ? "net.layer%d.weight" : "opt/%d", i);
		buf_value_record(&b, name, (size_t)n, 2, &t);
	}
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), NP);
	assert_int_equal(ckpt_stats(f)->records, NP);
	assert_int_equal(ckpt_stats(f)->data_bytes, 4 * NP);
	for (int i = 0; i < NP; i++) {
		int n = snprintf(name, sizeof(name),
				 i % 7 ? "net.layer%d.weight" : "opt%%2F%d", i);
		const struct ckpt_param *p;
		(void)n;
		assert_int_equal(ckpt_find(f, name), i);
		p = param(f, (size_t)i);
		assert_string_equal(p->fname, name);
		assert_int_equal(p->tensor.size, 4);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "net.layer%d.weight", NP + i);
		assert_int_equal(ckpt_find(f, name), -1);
		snprintf(name, sizeof(name), "opt/%d", i * 7);
		assert_int_equal(ckpt_find(f, name), -1);
	}
	assert_null(ckpt_param_at(f, NP));
	ckpt_close(f);

	/* duplicates of early names after the table has grown */
	buf_value_record(&b, "opt/0", 5, 2, &t);
	buf_value_record(&b, "net.layer1.weight", 17, 2, &t);
	f = open_ok(&b);
	assert_int_equal(ckpt_count(f), NP);
	assert_int_equal(ckpt_stats(f)->duplicates, 2);
	assert_int_equal(ckpt_find(f, "opt%2F0"), 0);
	assert_int_equal(ckpt_find(f, "net.layer1.weight"), 1);
	assert_int_equal(ckpt_stats(f)->data_bytes, 4 * NP);
	ckpt_close(f);
	buf_free(&b);
	buf_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_param),
		cmocka_unit_test(test_worked_examples),
		cmocka_unit_test(test_crc_valid),
		cmocka_unit_test(test_crc_invalid),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_packed_dims),
		cmocka_unit_test(test_noncanonical_order),
		cmocka_unit_test(test_tensor_field_merge),
		cmocka_unit_test(test_unknown_fields_skipped),
		cmocka_unit_test(test_top_level_unknown),
		cmocka_unit_test(test_two_slices),
		cmocka_unit_test(test_duplicate_noncontiguous),
		cmocka_unit_test(test_str),
		cmocka_unit_test(test_bf16),
		cmocka_unit_test(test_zero_elements),
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_map_sliced),
		cmocka_unit_test(test_map_slices_disagree),
		cmocka_unit_test(test_map_errors),
		cmocka_unit_test(test_slices_mix_kinds),
		cmocka_unit_test(test_oneof_last_wins),
		cmocka_unit_test(test_protobuf_c_file),
		cmocka_unit_test(test_truncation_every_offset),
		cmocka_unit_test(test_flip_every_byte),
		cmocka_unit_test(test_strategy_file),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_wrong_wire_types),
		cmocka_unit_test(test_field_zero),
		cmocka_unit_test(test_record_past_eof),
		cmocka_unit_test(test_length_past_message_end),
		cmocka_unit_test(test_long_varints),
		cmocka_unit_test(test_negative_dim),
		cmocka_unit_test(test_dims_overflow),
		cmocka_unit_test(test_content_size_mismatch),
		cmocka_unit_test(test_bad_tensor_type),
		cmocka_unit_test(test_value_without_tag),
		cmocka_unit_test(test_value_without_tensor),
		cmocka_unit_test(test_too_many_dims),
		cmocka_unit_test(test_neg_fixtures),
		cmocka_unit_test(test_long_path_message),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_fd_label),
		cmocka_unit_test(test_name_limits),
		cmocka_unit_test(test_find_escaped),
		cmocka_unit_test(test_find_10000),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
