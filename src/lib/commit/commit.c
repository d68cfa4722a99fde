/*
 * commit.c - writing a tree as a new checkpoint, atomically.
 *
 * The new file is written beside the target as an unnamed O_TMPFILE (a
 * crash leaves nothing behind), fsynced, linked under a temporary name,
 * renamed over the target, and the directory is fsynced: at every instant
 * the target holds the complete old or the complete new checkpoint.
 *
 * Output follows MindSpore >= 2.3 (format document, section 11): one
 * Checkpoint message per parameter slice, fields in number order, dims
 * unpacked, exact dtype spellings, slices of 512 MiB.  Parameters whose
 * bytes, dtype, shape and name are unchanged are copied record for record,
 * so their original encoding is kept.
 *
 * A plain output is written with O_DIRECT in 16 MiB chunks by a writer
 * thread (dio.c), the sources read straight into its buffers: a commit
 * writes a whole checkpoint once and does not read it back, and on the VMs
 * we measured on, filling fresh page-cache pages ran at 60-200 MiB/s while
 * the disk took 400-500 MiB/s direct (docs/performance.md, section 6).
 * The new file is then not in the page cache; the old one's pages go with
 * it.  Encrypted output keeps the page cache: its blocks are read back.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format/ckpt/ckpt_format.h"
#include "crypt/crypt.h"
#include "commit/commit.h"

struct out {
	int fd;
	uint64_t off;  /* bytes of the file written so far */
	uint64_t plain; /* plaintext bytes written so far (for messages) */
	bool crc_on;
	uint32_t crc;
	struct ckpt_encw *encw; /* encrypted output: the stream is described
				 * here, then encrypted on all cores */
	const char *path; /* for messages */
	struct ckpt_error *err;
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	uint64_t total, reported;
	uint64_t flushed; /* writeback started for bytes [0, flushed) */
	struct ckpt_dio *dio; /* O_DIRECT output (dio.c); NULL: through the
			       * page cache */
};

/* Starts writeback of each 32 MiB written (SYNC_FILE_RANGE_WRITE does not
 * wait for it), so the disk writes while the commit copies and the final
 * fsync finds little left to do.  An error here is ignored: the fsync that
 * follows reports it. */
static void out_writeback(struct out *o)
{
	const uint64_t step = 32u << 20;

	if (o->dio || o->off - o->flushed < step)
		return;
	(void)sync_file_range(o->fd, (off64_t)o->flushed,
			      (off64_t)(o->off - o->flushed),
			      SYNC_FILE_RANGE_WRITE);
	o->flushed = o->off;
}

/* Reports progress every 16 MiB of plaintext. */
static void out_progress(struct out *o)
{
	if (o->progress && o->plain - o->reported >= (16u << 20)) {
		o->reported = o->plain;
		o->progress(o->progress_ctx, o->plain, o->total);
	}
}

static ckpt_err out_fail_at(struct out *o, const char *what, uint64_t at)
{
	return ckpt_fail(o->err, CKPT_ERR_IO, at,
			 "writing the new checkpoint %s failed (%s at offset "
			 "%llu): %s; the original is untouched and all "
			 "edits are kept", o->path, what,
			 (unsigned long long)at, strerror(errno));
}

static ckpt_err out_fail(struct out *o, const char *what)
{
	return out_fail_at(o, what, o->off);
}

/* Counts n bytes about to be appended at p: CRC and progress. */
static void out_account(struct out *o, const void *p, size_t n)
{
	if (o->crc_on)
		o->crc = ckpt_crc32(o->crc, p, n);
	o->plain += n;
	out_progress(o);
}

/* n bytes were put where ckpt_dio_room pointed: they are part of the
 * output now. */
static ckpt_err out_dio_fill(struct out *o, size_t n)
{
	uint64_t at;

	o->off += n;
	if (ckpt_dio_fill(o->dio, n, &at) < 0)
		return out_fail_at(o, "write", at);
	return CKPT_OK;
}

/* Reads n bytes of fd at pos into p; a short read is an error (EIO). */
static ckpt_err out_read(struct out *o, int fd, void *p, size_t n,
			 uint64_t pos)
{
	ssize_t got = ckpt_pread_full(fd, p, n, pos);

	if (got == (ssize_t)n)
		return CKPT_OK;
	if (got >= 0)
		errno = EIO;
	return out_fail(o, "read of the source");
}

static ckpt_err out_raw(struct out *o, const void *buf, size_t n)
{
	const uint8_t *p = buf;

	if (!o->dio) {
		if (ckpt_pwrite_full(o->fd, buf, n, o->off) < 0)
			return out_fail(o, "write");
		o->off += n;
		out_writeback(o);
		return CKPT_OK;
	}
	while (n) {
		size_t room, k;
		uint8_t *dst = ckpt_dio_room(o->dio, &room);
		ckpt_err r;
		k = room < n ? room : n;
		memcpy(dst, p, k);
		r = out_dio_fill(o, k);
		if (r)
			return r;
		p += k;
		n -= k;
	}
	return CKPT_OK;
}

static ckpt_err out_bytes(struct out *o, const void *buf, size_t n)
{
	if (o->encw) /* no CRC with encryption */
		return ckpt_encw_bytes(o->encw, buf, n, o->err);
	out_account(o, buf, n);
	return out_raw(o, buf, n);
}

/* Appends len bytes of fd at pos to an O_DIRECT output, read straight into
 * its buffer. */
static ckpt_err out_copy_direct(struct out *o, int fd, uint64_t pos,
				uint64_t len)
{
	while (len) {
		size_t room, n;
		uint8_t *p = ckpt_dio_room(o->dio, &room);
		ckpt_err r;
		n = room < len ? room : (size_t)len;
		r = out_read(o, fd, p, n, pos);
		if (r)
			return r;
		out_account(o, p, n);
		r = out_dio_fill(o, n);
		if (r)
			return r;
		pos += n;
		len -= n;
	}
	return CKPT_OK;
}

/* Appends len bytes of fd at pos: in the kernel unless the CRC or the
 * encryption needs to see them. */
static ckpt_err out_copy(struct out *o, int fd, uint64_t pos, uint64_t len)
{
	char buf[1 << 16];

	if (o->encw)
		return ckpt_encw_fd(o->encw, fd, pos, len, o->err);
	if (o->dio)
		return out_copy_direct(o, fd, pos, len);
	while (len && !o->crc_on) {
		ssize_t n = ckpt_kernel_copy(fd, pos, o->fd, o->off, len);
		if (n == 0)
			break;
		if (n < 0)
			return out_fail(o, "copy in the kernel");
		pos += (uint64_t)n;
		o->off += (uint64_t)n;
		o->plain += (uint64_t)n;
		len -= (uint64_t)n;
		out_progress(o);
		out_writeback(o);
	}
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ckpt_err e = out_read(o, fd, buf, n, pos);
		if (!e)
			e = out_bytes(o, buf, n);
		if (e)
			return e;
		pos += n;
		len -= n;
	}
	return CKPT_OK;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	do {
		p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
	return n;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v > 0x7f) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Writes the header of one record of a tensor slice: everything up to the
 * content bytes, which the caller appends (clen of them). */
static ckpt_err out_header(struct out *o, const struct entry *e,
			   const int64_t *dims, uint32_t ndims,
			   const char *type, uint64_t clen)
{
	size_t tlen = strlen(type), dlen = 0, n = 0;
	uint64_t tensor_len, value_len;
	uint8_t *h;
	ckpt_err r;

	for (uint32_t i = 0; i < ndims; i++)
		dlen += 1 + varint_len((uint64_t)dims[i]);
	tensor_len = dlen + 1 + varint_len(tlen) + tlen + 1 +
		     varint_len(clen) + clen;
	value_len = 1 + varint_len(e->name_len) + e->name_len + 1 +
		    varint_len(tensor_len) + tensor_len;
	h = malloc(e->name_len + dlen + tlen + 64);
	if (!h)
		return ckpt_fail(o->err, CKPT_ERR_NOMEM, 0, "out of memory");
	h[n++] = 0x0A; /* Checkpoint.value */
	n += put_varint(h + n, value_len);
	h[n++] = 0x0A; /* Value.tag */
	n += put_varint(h + n, e->name_len);
	memcpy(h + n, e->name, e->name_len);
	n += e->name_len;
	h[n++] = 0x12; /* Value.tensor */
	n += put_varint(h + n, tensor_len);
	for (uint32_t i = 0; i < ndims; i++) {
		h[n++] = 0x08; /* TensorProto.dims, unpacked */
		n += put_varint(h + n, (uint64_t)dims[i]);
	}
	h[n++] = 0x12; /* TensorProto.tensor_type */
	n += put_varint(h + n, tlen);
	memcpy(h + n, type, tlen);
	n += tlen;
	h[n++] = 0x1A; /* TensorProto.tensor_content */
	n += put_varint(h + n, clen);
	r = out_bytes(o, h, n);
	free(h);
	return r;
}

/* ckpt_piece_fn: copies a piece into the buffer at ctx. */
static ckpt_err fill_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			   struct ckpt_error *err)
{
	uint8_t **buf = ctx;
	size_t done;
	ckpt_err r = ckpt_pieces_copy(p, 1, *buf, &done, err);

	(void)at;
	*buf += done;
	return r;
}

/* ckpt_encw_fill_fn for a file entry: bytes [off, off+len) of it. */
static ckpt_err fill_entry(const void *ctx, uint64_t off, size_t len,
			   uint8_t *buf, struct ckpt_error *err)
{
	const struct entry *e = ctx;
	ckpt_err r = ckpt_entry_walk(e, off, len, fill_piece, &buf, err);

	if (r)
		ckpt_fail(err, r, off, "reading parameter '%s' for the new "
			  "checkpoint failed: %s; the original is untouched "
			  "and all edits are kept", e->fname, strerror(errno));
	return r;
}

struct out_walk {
	struct out *o;
	bool wrote; /* the failure, if any, was the output's */
};

/* ckpt_piece_fn: appends a piece to the output. */
static ckpt_err out_piece(void *ctx, const struct ckpt_piece *p, uint64_t at,
			  struct ckpt_error *err)
{
	struct out_walk *w = ctx;
	ckpt_err r = p->fd >= 0 ? out_copy(w->o, p->fd, p->pos, p->len)
				: out_bytes(w->o, p->mem, p->len);

	(void)at;
	(void)err; /* w->o->err, the same */
	w->wrote = r != CKPT_OK;
	return r;
}

/* Appends bytes [off, off+len) of file entry e. */
static ckpt_err out_entry_bytes(struct out *o, const struct entry *e,
				uint64_t off, uint64_t len)
{
	struct out_walk w = {.o = o};
	ckpt_err r;

	if (o->encw)
		return ckpt_encw_fill(o->encw, e, off, len, o->err);
	r = ckpt_entry_walk(e, off, len, out_piece, &w, o->err);
	if (r && !w.wrote)
		return out_fail(o, "reading parameter data");
	return r;
}

static ckpt_err out_entry(struct out *o, const struct entry *e,
			  bool recovery)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	ckpt_dtype dt;
	uint64_t off = 0;
	ckpt_err r;

	if (e->orig && e->orig->rec_len &&
	    (e->kind == CKPT_ENTRY_DIR ||
	     (!e->data_changed && !e->meta_changed && !e->renamed)))
		return out_copy(o, ckpt_fd(e->src), e->orig->rec_off,
				e->orig->rec_len);
	if (e->kind == CKPT_ENTRY_DIR)
		return ckpt_fail(o->err, CKPT_ERR_UNSUPPORTED, 0,
				 "map parameter '%s' is stored in separated "
				 "records, which cannot be rewritten yet",
				 e->fname);
	if (recovery && e->size == 0)
		return CKPT_OK; /* nothing to keep */
	if (!ckpt_entry_dims(e, dims, &ndims, &dt, recovery, o->err))
		return CKPT_ERR_INVAL;
	if (ndims == 0 && dt == CKPT_DT_STR) {
		dims[0] = 0; /* str is always written with dims [0] */
		ndims = 1;
	}
	do { /* slices of CKPT_SLICE_SIZE bytes; one (maybe empty) at least */
		uint64_t n = e->size - off < CKPT_SLICE_SIZE
				     ? e->size - off
				     : CKPT_SLICE_SIZE;
		r = out_header(o, e, dims, ndims, ckpt_dtype_name(dt), n);
		if (!r)
			r = out_entry_bytes(o, e, off, n);
		if (r)
			return r;
		off += n;
	} while (off < e->size);
	return CKPT_OK;
}

/* Reads the block headers of an encrypted output back: a cheap check that
 * every block is where the next reader will look for it. */
static ckpt_err check_blocks(int fd, const char *path,
			     const struct ckpt_key *key, uint64_t end,
			     uint64_t nblocks, struct ckpt_error *err)
{
	uint64_t off = 0, n = 0;
	struct ckpt_enc_block b;

	while (off < end) {
		ckpt_err e = ckpt_enc_read_header(fd, path, off, end, key, &b,
						  err);
		if (e)
			return e;
		off = b.cipher_off + b.cipher_len;
		n++;
	}
	if (n != nblocks)
		return ckpt_fail(err, CKPT_ERR_IO, off, "internal error: %s "
				 "holds %llu encrypted blocks, %llu were "
				 "written; the original is untouched", path,
				 (unsigned long long)n,
				 (unsigned long long)nblocks);
	return CKPT_OK;
}

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
	if (l->len > 4000) /* enough to tell; the count says the rest */
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

/* True if e is written into a checkpoint: live and not scratch.  With
 * lost (a recovery file), an entry whose bytes came from a file modified
 * underneath is left out and named there instead. */
static bool written(const struct entry *e, struct lost *lost)
{
	if (e->scratch)
		return false;
	if (lost && e->kind == CKPT_ENTRY_FILE && e->stage_fd < 0 && e->src &&
	    e->size && ckpt_file_changed(e->src)) {
		lost_add(lost, e->fname);
		return false;
	}
	if (lost && e->kind == CKPT_ENTRY_DIR && ckpt_file_changed(e->src)) {
		lost_add(lost, e->fname);
		return false;
	}
	return true;
}

/* Writes the entries of t into fd, the new file, from offset 0 (dio
 * stays O_DIRECT-free afterwards), and fsyncs nothing: the caller does. */
static ckpt_err write_body(struct ckpt_tree *t, int fd, const char *path,
			   struct lost *lost, struct ckpt_error *err)
{
	struct out o = {.fd = fd, .path = path, .err = err};
	bool recovery = lost != NULL;
	int flags;
	ckpt_err r;

	o.crc_on = !recovery && !t->out_key && t->crc != CKPT_CRC_DROP &&
		   (t->crc == CKPT_CRC_ADD ||
		    (t->base && ckpt_stats(t->base)->has_crc));
	o.progress = t->progress;
	o.progress_ctx = t->progress_ctx;
	for (size_t i = 0; i < t->norder; i++)
		if (!t->order[i]->scratch)
			o.total += t->order[i]->kind == CKPT_ENTRY_FILE
					   ? t->order[i]->size
					   : t->order[i]->orig->rec_len;
	if (t->out_key) {
		r = ckpt_encw_new(t->out_key, fill_entry, &o.encw, err);
		if (r)
			goto out;
	} else {
		o.dio = ckpt_dio_start(o.fd); /* see the top of the file */
	}
	for (size_t i = 0; i < t->norder; i++) {
		if (!written(t->order[i], lost))
			continue;
		r = out_entry(&o, t->order[i], recovery);
		if (r)
			goto out;
	}
	if (o.encw) {
		uint64_t blocks;
		o.plain = ckpt_encw_total(o.encw);
		r = ckpt_encw_run(o.encw, o.fd, 0, path, o.progress,
				  o.progress_ctx, &o.off, &blocks, err);
		if (!r)
			r = check_blocks(o.fd, path, t->out_key, o.off, blocks,
					 err);
		if (r)
			goto out;
	}
	if (o.crc_on) {
		uint8_t tr[CKPT_CRC_TRAILER_LEN] = CKPT_CRC_MARK;
		for (int k = 0; k < 4; k++)
			tr[CKPT_CRC_TRAILER_LEN - 1 - k] =
				(uint8_t)(o.crc >> (8 * k));
		o.crc_on = false;
		r = out_bytes(&o, tr, sizeof(tr));
		if (r)
			goto out;
	}
	if (o.dio) {
		uint64_t at;
		if (ckpt_dio_finish(o.dio, &at) < 0) {
			r = out_fail_at(&o, "write", at);
			goto out;
		}
	}
	if (o.progress)
		o.progress(o.progress_ctx, o.plain,
			   o.total > o.plain ? o.total : o.plain);
	r = CKPT_OK;
out:
	ckpt_dio_free(o.dio); /* its thread may still write to o.fd */
	flags = fcntl(fd, F_GETFL);
	if (flags >= 0 && (flags & O_DIRECT)) /* read normally from now on */
		fcntl(fd, F_SETFL, flags & ~O_DIRECT);
	ckpt_encw_free(o.encw);
	return r;
}

/* After a commit of a plain checkpoint: the tree continues on the new
 * file fd (a descriptor of its own is taken).  If it cannot be scanned,
 * the tree stays on the old one (still open) and stays dirty. */
static void rebind(struct ckpt_tree *t, int fd)
{
	struct ckpt_open_opts oo = t->open_opts;
	struct ckpt_file *nf = NULL;
	bool keep_old = false;
	size_t k = 0, n = 0;
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);

	oo.skip_crc = true; /* we just computed it */
	oo.key = NULL;
	for (size_t i = 0; i < t->norder; i++)
		n += !t->order[i]->scratch;
	if (nfd < 0 || ckpt_open_fd(nfd, t->tgt_pl.path, &oo, &nf, NULL) !=
			       CKPT_OK ||
	    ckpt_count(nf) != n) {
		ckpt_close(nf);
		return;
	}
	/* an entry left out (deleted but open, scratch) that reads from the
	 * old file keeps it open while it exists */
	for (size_t i = 0; i < t->nslots && !keep_old; i++) {
		const struct entry *e = t->slots[i];
		keep_old = e && t->base && e->src == t->base &&
			   (!e->live || e->scratch);
	}
	if (keep_old) {
		struct ckpt_file **r = realloc(
			t->retired, (t->nretired + 1) * sizeof(*r));
		if (!r) {
			ckpt_close(nf);
			return;
		}
		t->retired = r;
		t->retired[t->nretired++] = t->base;
	} else {
		ckpt_close(t->base);
	}
	for (size_t i = 0; i < t->norder; i++)
		if (!t->order[i]->scratch)
			ckpt_entry_bind(t->order[i], ckpt_param_at(nf, k++),
					nf);
	t->base = nf;
	ckpt_tree_release_retired(t);
	t->base_mtime_ns = ckpt_ts_ns(&nf->ident.mtime);
	t->dirty = false;
}

/* Every entry to write must have the bytes its dtype and shape need,
 * and those still read from an earlier checkpoint (a backup renamed
 * back) must find that file unchanged; the current one is checked by
 * ckpt_tree_check_target. */
static ckpt_err check_entries(struct ckpt_tree *t, struct ckpt_error *err)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	ckpt_dtype dt;

	for (size_t i = 0; i < t->norder; i++) {
		const struct entry *e = t->order[i];
		if (e->scratch)
			continue;
		if (e->kind == CKPT_ENTRY_FILE &&
		    !ckpt_entry_dims(e, dims, &ndims, &dt, false, err))
			return CKPT_ERR_INVAL;
		if (e->src && e->src != t->base && e->stage_fd < 0 &&
		    ckpt_file_changed(e->src))
			return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
					 "'%s' still reads from %s, which was "
					 "modified underneath the mount: "
					 "nothing was written", e->fname,
					 ckpt_path(e->src));
	}
	return CKPT_OK;
}

/* The tree now matches what fd holds: continue on it. */
static void committed(struct ckpt_tree *t, int fd)
{
	/* An encrypted tree stays on its decrypted copy and its staged
	 * edits, which are exactly what was committed: reopening would
	 * decrypt the whole file again, next to the copy already held. */
	if (t->one_shot || t->out_key) {
		for (size_t i = 0; i < t->norder; i++)
			if (!t->order[i]->scratch)
				ckpt_entry_pin_shape(t->order[i]);
		t->dirty = false;
	} else {
		rebind(t, fd); /* the target is the new checkpoint */
	}
	ckpt_tombs_clear(t);
	ckpt_repin(t, fd);
}

ckpt_err ckpt_tree_commit(struct ckpt_tree *t, struct ckpt_error *err)
{
	char tmp[300];
	ckpt_err r = CKPT_OK;
	bool in_place = false;
	int fd = -1, lfd = -1;

	pthread_rwlock_wrlock(&t->lock);
	if (!t->dirty && t->dir_unsynced) { /* the last commit's last step */
		t->dir_unsynced = fsync(t->tgt_pl.dirfd) != 0;
		if (t->dir_unsynced)
			r = ckpt_fail(err, CKPT_ERR_IO, 0,
				      "the directory of %s could not be synced "
				      "(%s): the last commit may not survive a "
				      "power failure", t->tgt_pl.path,
				      strerror(errno));
	}
	if (!t->dirty)
		goto out;
	r = ckpt_tree_writable(t, err);
	if (!r)
		r = ckpt_tree_check_target(t, err); /* what happened first */
	if (!r)
		r = check_entries(t, err);
	if (r)
		goto out;
	fd = ckpt_out_create(t->tgt_pl.dirfd, t->tgt_pl.base, tmp, sizeof(tmp));
	if (fd < 0) {
		r = ckpt_fail(err, CKPT_ERR_IO, 0, "writing the new checkpoint "
			      "%s failed (creating a file in its directory): "
			      "%s; the original is untouched and all edits "
			      "are kept", t->tgt_pl.path, strerror(errno));
		goto out;
	}
	r = write_body(t, fd, t->tgt_pl.path, NULL, err);
	if (!r)
		r = ckpt_replace_target(t, fd, tmp, &in_place, &lfd, err);
	else if (*tmp)
		unlinkat(t->tgt_pl.dirfd, tmp, 0);
	if (!r || in_place)
		committed(t, lfd); /* takes lfd */
	t->dir_unsynced = in_place && r;
out:
	if (fd >= 0)
		close(fd);
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Writes the recovery file into directory dirfd; the path in *path. */
static ckpt_err recover_into(struct ckpt_tree *t, int dirfd, char **path,
			     struct lost *lost, struct ckpt_error *err)
{
	char tmp[300];
	int fd = ckpt_out_create(dirfd, t->tgt_pl.base, tmp, sizeof(tmp));
	ckpt_err r;

	if (fd < 0)
		return ckpt_fail(err, CKPT_ERR_IO, 0, "cannot create the "
				 "recovery file: %s", strerror(errno));
	if (*tmp) { /* no unnamed files here: not worth a named one */
		unlinkat(dirfd, tmp, 0);
		close(fd);
		return ckpt_fail(err, CKPT_ERR_IO, 0, "cannot create the "
				 "recovery file: no O_TMPFILE");
	}
	free(lost->names);
	*lost = (struct lost){0};
	r = write_body(t, fd, t->tgt_pl.path, lost, err);
	if (!r)
		r = ckpt_link_recovery(t, fd, dirfd, path, err);
	close(fd);
	return r;
}

ckpt_err ckpt_tree_save_recovery(struct ckpt_tree *t, char **path,
				 char **lost, struct ckpt_error *err)
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
		     l.count > 1 && l.len > 4000 ? ", ..." : "") < 0)
		*lost = NULL;
	free(l.names);
	return r;
}
