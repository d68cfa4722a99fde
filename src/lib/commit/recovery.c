/*
 * recovery.c - saving what a tree holds when it cannot be committed: a
 * recovery file, "BASE.recovery-STAMP-XXXXXXXX.ckpt" (or .safetensors) beside the target,
 * else in $TMPDIR (the name is made and linked by replace.c).
 *
 * It is written as a commit is (ckpt_commit_write), but keeps what it can:
 * parameters whose bytes came from a file modified underneath are left out
 * and named in the lost-list, shapes that do not fit are made to fit, and
 * no checksum is added.  Takes the tree's lock for writing; must never
 * touch the target.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commit/commit.h"

/* Bytes of names a message lists: enough to tell; the count says the rest. */
#define LOST_MAX 4000

/* Names of parameters a recovery file could not hold: "a, b, c". */
struct lost {
	char *names;
	size_t len, count;
};

static void lost_add(struct lost *l, const char *fname)
{
	size_t n = strlen(fname);
	char *p;

	l->count++;
	if (l->len > LOST_MAX)
		return;
	p = realloc(l->names, l->len + n + 3);
	if (!p)
		return;
	l->names = p;
	if (l->len)
		memcpy(p + l->len, ", ", 2), l->len += 2;
	memcpy(p + l->len, fname, n + 1);
	l->len += n;
}

/* ckpt_write_opts keep: false (and e named in the struct lost at ctx)
 * if e's bytes came from a file modified underneath. */
static bool keep_unchanged(void *ctx, const struct entry *e)
{
	struct lost *lost = ctx;

	if ((e->kind == CKPT_ENTRY_FILE && e->stage_fd < 0 && e->src &&
	     e->size && ckpt_file_changed(e->src)) ||
	    (e->kind == CKPT_ENTRY_DIR && ckpt_file_changed(e->src))) {
		lost_add(lost, e->fname);
		return false;
	}
	return true;
}

/* Writes the recovery file into directory dirfd; the path in *path. */
static ckpt_err recover_into(struct ckpt_tree *t, int dirfd, char **path,
			     struct lost *lost, struct ckpt_error *err)
{
	const struct ckpt_write_opts o = {
		.recovery = true,
		.keep = keep_unchanged,
		.keep_ctx = lost,
	};
	char tmp[300];
	int fd = ckpt_out_create(dirfd, t->tgt_pl.base, tmp, sizeof(tmp));
	ckpt_err r;

	if (fd < 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0,
				 "cannot create the "
				 "recovery file: %s",
				 strerror(errno));
	if (*tmp) { /* no unnamed files here: not worth a named one */
		unlinkat(dirfd, tmp, 0);
		close(fd);
		return ckpt_fail(err, CKPT_ERR_IO, 0,
				 "cannot create the "
				 "recovery file: no O_TMPFILE");
	}
	free(lost->names);
	*lost = (struct lost){0};
	r = ckpt_commit_write(t, fd, &o, err);
	if (!r)
		r = ckpt_link_recovery(t, fd, dirfd, path, err);
	close(fd);
	return r;
}

ckpt_err ckpt_tree_save_recovery(struct ckpt_tree *t, char **path, char **lost,
				 struct ckpt_error *err)
{
	struct lost l = {0};
	ckpt_err r;

	*lost = NULL;
	pthread_rwlock_wrlock(&t->lock);
	/* beside the target, else in $TMPDIR; written once per place */
	r = recover_into(t, t->tgt_pl.dirfd, path, &l, err);
	if (r && t->tmp_dirfd >= 0)
		r = recover_into(t, t->tmp_dirfd, path, &l, err);
	pthread_rwlock_unlock(&t->lock);
	if (!r && l.count && l.names &&
	    asprintf(lost, "%s%s", l.names,
		     l.count > 1 && l.len > LOST_MAX ? ", ..." : "") < 0)
		*lost = NULL;
	free(l.names);
	return r;
}
