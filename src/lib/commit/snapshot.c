/*
 * snapshot.c - the locked tree described to a format (struct
 * ckpt_snapshot in format/format.h), so that no format knows the tree.
 *
 * Each parameter is taken from the tree's order when the encode asks for
 * it: its name, the dtype and shape to write (made to fit in a recovery
 * file), whether it is as the file had it, and where its bytes are.  The
 * caller holds the tree's lock for writing for as long as the snapshot is
 * used; this file takes none and changes nothing in the tree.
 */
#include <errno.h>
#include <string.h>

#include "commit/commit.h"

/* Whether the new file gets a checksum (the crc_num trailer or metadata):
 * as the tree asks, or as the file it came from had if it is written in
 * the same format (MindSpore's conversions drop it); never in a recovery
 * file or an encrypted one. */
static bool want_checksum(const struct ckpt_tree *t, bool recovery)
{
	return !recovery && !t->out_key && t->crc != CKPT_CRC_DROP &&
	       (t->crc == CKPT_CRC_ADD ||
		(t->base && t->base->format == t->format &&
		 ckpt_stats(t->base)->has_crc));
}

/* ckpt_snapshot param: entry i of the order. */
static ckpt_err param_at(const struct ckpt_snapshot *s, size_t i,
			 struct ckpt_out_param *p, struct ckpt_error *err)
{
	const struct ckpt_tree_view *v = s->ctx;
	const struct entry *e = v->t->order[v->perm ? v->perm[i] : i];
	bool recovery = v->o->recovery;

	p->skip = e->scratch || (v->o->keep && !v->o->keep(v->o->keep_ctx, e));
	if (p->skip)
		return CKPT_OK;
	p->is_map = e->kind == CKPT_ENTRY_DIR;
	p->untouched = !e->data_changed && !e->meta_changed && !e->renamed;
	p->name = e->name;
	p->name_len = e->name_len;
	p->fname = e->fname;
	p->size = e->size;
	p->entry = e;
	p->orig = e->orig;
	p->orig_fd = e->src ? ckpt_fd(e->src) : -1;
	if (p->is_map)
		return CKPT_OK; /* copied as it is (or refused): no shape */
	if (recovery && e->size == 0) {
		p->skip = true; /* nothing to keep */
		return CKPT_OK;
	}
	if (!ckpt_entry_dims(e, p->dims, &p->ndims, &p->dtype, recovery, err))
		return CKPT_ERR_INVAL;
	return CKPT_OK;
}

/* ckpt_entry_walk fn: copies the piece into the buffer at ctx. */
struct copy_to {
	uint8_t *buf;
	uint64_t off;
};

static ckpt_err copy_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			   struct ckpt_error *err)
{
	const struct copy_to *c = ctx;
	uint8_t *dst = c->buf + (at - c->off);
	ssize_t n;

	if (p->fd < 0) {
		memcpy(dst, p->mem, p->len);
		return CKPT_OK;
	}
	n = ckpt_pread_full(p->fd, dst, p->len, p->pos);
	if (n == (ssize_t)p->len)
		return CKPT_OK;
	return ckpt_fail(err, CKPT_ERR_IO, p->pos, "reading a parameter: %s",
			 n < 0 ? strerror(errno) : "the file is shorter now");
}

/* ckpt_snapshot read: bytes of entry e, wherever they are. */
static ckpt_err read_at(const struct ckpt_snapshot *s, const struct entry *e,
			uint64_t off, void *buf, size_t len,
			struct ckpt_error *err)
{
	struct copy_to c = {.buf = buf, .off = off};

	(void)s;
	return ckpt_entry_walk(e, off, len, copy_piece, &c, err);
}

void ckpt_snapshot_of(const struct ckpt_tree_view *v, struct ckpt_snapshot *s)
{
	const struct ckpt_tree *t = v->t;

	*s = (struct ckpt_snapshot){
		.count = t->norder,
		.checksum = want_checksum(t, v->o->recovery),
		.param = param_at,
		.read = read_at,
		.meta = t->meta,
		.nmeta = t->nmeta,
		.own_meta = t->own_meta,
		.has_meta = t->has_meta,
		.skip_unrepresentable = t->skip_unrepresentable,
		.warn = t->warn,
		.warn_ctx = t->warn_ctx,
		.index = v->o->index,
		.ctx = v,
	};
}
