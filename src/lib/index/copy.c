/*
 * copy.c - parameters of one index put into another, and two indexes
 * compared.
 *
 * A commit that copies a parameter's records unchanged into the new file
 * puts the old parameter into the new file's index, moved by the distance
 * its records moved (ckpt_index_put_moved): everything it points to is
 * copied into the new index's blocks, so the old file may close.  The
 * comparison (ckpt_index_same) is how the debug build and the unit tests
 * check an index built that way against a scan of the same file.
 */
#include <stdio.h>
#include <string.h>

#include "index/index.h"

/* Bytes the copy of tensor t needs besides the struct. */
static size_t tensor_room(const struct ckpt_tensor *t)
{
	uint32_t ndims = t->ndims ? t->ndims : 1; /* dims is never empty */

	return t->nextents * sizeof(struct ckpt_extent) +
	       ndims * sizeof(int64_t) + strlen(t->type_str) + 1;
}

/* Copies t into *d with its extents moved by delta, the rest at *blk
 * (advanced; 8-byte aligned things first, the type string last). */
static void copy_tensor(struct ckpt_tensor *d, const struct ckpt_tensor *t,
			uint64_t delta, uint8_t **blk)
{
	uint32_t ndims = t->ndims ? t->ndims : 1;
	size_t n = strlen(t->type_str) + 1;

	*d = *t;
	d->extents = t->nextents ? (struct ckpt_extent *)(void *)*blk : NULL;
	for (uint32_t i = 0; i < t->nextents; i++) {
		d->extents[i] = t->extents[i];
		d->extents[i].src += delta;
	}
	*blk += t->nextents * sizeof(*t->extents);
	d->dims = (int64_t *)(void *)*blk;
	memcpy(d->dims, t->dims, ndims * sizeof(*t->dims));
	*blk += ndims * sizeof(*t->dims);
	memcpy(*blk, t->type_str, n);
	d->type_str = (const char *)*blk;
	*blk += n;
}

ckpt_err ckpt_index_put_moved(struct ckpt_file *f, const struct ckpt_param *p,
			      uint64_t delta, struct ckpt_error *err)
{
	int nt = p->kind == CKPT_PARAM_MAP ? CKPT_MAP_NTENSORS : 1;
	const struct ckpt_tensor *ts = nt > 1 ? p->map : &p->tensor;
	bool same_name = p->fname == p->name;
	size_t flen = strlen(p->fname), room = 0;
	struct ckpt_param q = *p;
	uint8_t *blk, *strs;

	if (nt > 1)
		room += CKPT_MAP_NTENSORS * sizeof(struct ckpt_tensor);
	for (int i = 0; i < nt; i++)
		room += (tensor_room(&ts[i]) + 7) & ~(size_t)7;
	blk = ckpt_index_alloc(f, room + p->name_len + 1 +
					  (same_name ? 0 : flen + 1));
	if (!blk)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	/* [map tensors] [each tensor's extents, dims, type] [name, fname] */
	strs = blk + room;
	if (nt > 1) {
		q.map = (struct ckpt_tensor *)(void *)blk;
		blk += CKPT_MAP_NTENSORS * sizeof(struct ckpt_tensor);
	}
	for (int i = 0; i < nt; i++) {
		uint8_t *start = blk;
		copy_tensor(nt > 1 ? &q.map[i] : &q.tensor, &ts[i], delta,
			    &blk);
		blk = start + ((tensor_room(&ts[i]) + 7) & ~(size_t)7);
	}
	memcpy(strs, p->name, p->name_len + 1);
	q.name = (char *)strs;
	q.fname = same_name ? q.name : (char *)strs + p->name_len + 1;
	if (!same_name)
		memcpy(q.fname, p->fname, flen + 1);
	q.rec_off += delta;
	return ckpt_index_put(f, &q, err);
}

/* ---- comparing ---------------------------------------------------------- */

/* Whether tensors a and b say the same; else why not, into why. */
static bool tensor_same(const struct ckpt_tensor *a,
			const struct ckpt_tensor *b, char *why, size_t n)
{
	const char *what = NULL;

	if (a->dtype != b->dtype || strcmp(a->type_str, b->type_str) != 0)
		what = "dtype";
	else if (a->ndims != b->ndims ||
		 memcmp(a->dims, b->dims, a->ndims * sizeof(*a->dims)) != 0)
		what = "dims";
	else if (a->size != b->size || a->stored != b->stored)
		what = "size";
	else if (a->dims_zero_form != b->dims_zero_form ||
		 a->bf16_from_f32 != b->bf16_from_f32)
		what = "form";
	else if (a->nextents != b->nextents ||
		 (a->nextents && memcmp(a->extents, b->extents,
					a->nextents * sizeof(*a->extents))))
		what = "extents";
	if (what)
		snprintf(why, n, "%s differ", what);
	return !what;
}

/* Whether parameters a and b say the same; else why not, into why. */
static bool param_same(const struct ckpt_param *a, const struct ckpt_param *b,
		       char *why, size_t n)
{
	if (a->name_len != b->name_len ||
	    memcmp(a->name, b->name, a->name_len) != 0 ||
	    strcmp(a->fname, b->fname) != 0) {
		snprintf(why, n, "names differ");
		return false;
	}
	if (a->kind != b->kind || a->rec_off != b->rec_off ||
	    a->rec_len != b->rec_len || a->nslices != b->nslices) {
		snprintf(why, n, "records differ");
		return false;
	}
	if (a->kind == CKPT_PARAM_TENSOR)
		return tensor_same(&a->tensor, &b->tensor, why, n);
	for (int i = 0; i < CKPT_MAP_NTENSORS; i++)
		if (!tensor_same(&a->map[i], &b->map[i], why, n))
			return false;
	return true;
}

bool ckpt_index_same(const struct ckpt_file *a, const struct ckpt_file *b,
		     char *why, size_t n)
{
	const struct ckpt_stats *x = &a->stats, *y = &b->stats;
	char what[64];

	if (a->nparams != b->nparams) {
		snprintf(why, n, "%zu parameters against %zu", a->nparams,
			 b->nparams);
		return false;
	}
	for (size_t i = 0; i < a->nparams; i++)
		if (!param_same(&a->params[i], &b->params[i], what,
				sizeof(what))) {
			snprintf(why, n, "parameter %zu ('%s'): %s", i,
				 a->params[i].fname, what);
			return false;
		}
	if (x->file_size != y->file_size || x->stream_size != y->stream_size ||
	    x->records != y->records ||
	    x->unknown_fields != y->unknown_fields ||
	    x->duplicates != y->duplicates || x->data_bytes != y->data_bytes ||
	    x->has_crc != y->has_crc || x->crc_wide != y->crc_wide ||
	    x->crc_stored != y->crc_stored || a->format != b->format) {
		snprintf(why, n, "the file's figures differ");
		return false;
	}
	return true;
}
