/*
 * reindex.c - the index of the checkpoint a commit writes, built from
 * what encode.c emits instead of a scan of the written file.
 *
 * After a plain commit the tree continues on the new file, and a scan of
 * it reads every record header again: on a clone (a reflink commit) none
 * of them is in the page cache, and a checkpoint of a thousand parameters
 * costs tens of milliseconds of reads to index, more than the commit
 * itself.  The encoder knows every record it emits, so it tells them
 * here: a record it wrote becomes the struct ckpt_rec_value the scan
 * would decode from it, assembled by the scan's own params.c (slices
 * joined, sizes checked, stored); records copied as they are give the old
 * parameter, moved (index/copy.c).  The debug build scans the file as
 * well and compares (tree/rebase.c).
 *
 * Runs on the encoding thread; reads nothing.  A failure only stops the
 * building (x->f becomes NULL): the caller then scans the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/ckpt/ckpt_format.h"
#include "format/format.h"

void ckpt_reindex_start(struct ckpt_reindex *x, struct ckpt_file *f)
{
	memset(x, 0, sizeof(*x));
	x->f = f;
	x->s.f = f;
	x->s.err = &x->err;
	x->s.r.fd = -1; /* never read */
	x->s.r.label = "the new checkpoint";
}

/* Frees the assembly's buffers; stops the building if failed. */
static void finish(struct ckpt_reindex *x, bool failed)
{
	ckpt_params_free(&x->s);
	if (failed) {
		ckpt_index_free(x->f);
		x->f = NULL;
	}
}

void ckpt_reindex_slice(struct ckpt_reindex *x, const struct ckpt_out_param *p,
			const char *type, uint64_t off, uint64_t hlen,
			uint64_t clen)
{
	struct ckpt_rec_value v = {.off = off,
				   .len = hlen + clen,
				   .name_len = p->name_len,
				   .kind = CKPT_PARAM_TENSOR,
				   .nt = 1};
	struct ckpt_rec_tensor *t = &v.t[0];

	if (!x->f)
		return;
	if (ckpt_scan_name(&x->s, p->name, p->name_len) != CKPT_OK ||
	    strlen(type) > CKPT_MAX_TYPE_LEN) {
		finish(x, true);
		return;
	}
	v.name = x->s.vname.p;
	t->ndims = p->ndims;
	memcpy(t->dims, p->dims, p->ndims * sizeof(*p->dims));
	t->has_content = true;
	t->content_off = off + hlen;
	t->content_len = clen;
	strcpy(t->type, type);
	if (ckpt_params_take(&x->s, &v) != CKPT_OK) {
		finish(x, true);
		return;
	}
	x->f->stats.records++;
}

void ckpt_reindex_copied(struct ckpt_reindex *x, const struct ckpt_param *orig,
			 uint64_t off)
{
	if (!x->f)
		return;
	if (ckpt_params_finish(&x->s) != CKPT_OK ||
	    ckpt_index_put_moved(x->f, orig, off - orig->rec_off, &x->err) !=
		    CKPT_OK) {
		finish(x, true);
		return;
	}
	x->f->stats.records += orig->nslices;
}

void ckpt_reindex_end(struct ckpt_reindex *x, uint64_t stream_size,
		      bool has_crc, uint32_t crc)
{
	struct ckpt_stats *st;

	if (!x->f)
		return;
	if (ckpt_params_finish(&x->s) != CKPT_OK) {
		finish(x, true);
		return;
	}
	st = &x->f->stats;
	st->stream_size = stream_size;
	st->file_size = stream_size + (has_crc ? CKPT_CRC_TRAILER_LEN : 0);
	st->disk_size = st->file_size;
	st->has_crc = has_crc;
	st->crc_stored = has_crc ? crc : 0;
	if (ckpt_index_build(x->f, &x->err) != CKPT_OK) {
		finish(x, true);
		return;
	}
	finish(x, false);
	x->f->format = &ckpt_format_ckpt;
}

void ckpt_reindex_drop(struct ckpt_reindex *x)
{
	if (x->f)
		finish(x, true);
}
