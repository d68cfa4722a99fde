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
#include "commit/commit.h"

/* Whether the new file gets a checksum (the crc_num trailer): as the tree
 * asks, or as the file it came from had; never in a recovery file or an
 * encrypted one. */
static bool want_checksum(const struct ckpt_tree *t, bool recovery)
{
	return !recovery && !t->out_key && t->crc != CKPT_CRC_DROP &&
	       (t->crc == CKPT_CRC_ADD ||
		(t->base && ckpt_stats(t->base)->has_crc));
}

/* ckpt_snapshot param: entry i of the order. */
static ckpt_err param_at(const struct ckpt_snapshot *s, size_t i,
			 struct ckpt_out_param *p, struct ckpt_error *err)
{
	const struct ckpt_tree_view *v = s->ctx;
	const struct entry *e = v->t->order[i];
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
	if (p->is_map || (p->untouched && e->orig && e->orig->rec_len))
		return CKPT_OK; /* copied as it is (or refused): no shape */
	if (recovery && e->size == 0) {
		p->skip = true; /* nothing to keep */
		return CKPT_OK;
	}
	if (!ckpt_entry_dims(e, p->dims, &p->ndims, &p->dtype, recovery, err))
		return CKPT_ERR_INVAL;
	return CKPT_OK;
}

void ckpt_snapshot_of(const struct ckpt_tree_view *v, struct ckpt_snapshot *s)
{
	s->count = v->t->norder;
	s->checksum = want_checksum(v->t, v->o->recovery);
	s->param = param_at;
	s->ctx = v;
}
