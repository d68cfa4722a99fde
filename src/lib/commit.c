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

#include "ckpt_format.h"
#include "crypt_internal.h"
#include "tree_internal.h"

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

/* Copies in the kernel: copy_file_range, or sendfile when the source is on
 * another filesystem (staging in tmpfs).  Returns bytes copied, 0 when
 * neither call applies here, -1 on an error (errno set). */
static ssize_t kernel_copy(struct out *o, int fd, uint64_t pos, uint64_t len)
{
	size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
	loff_t in = (loff_t)pos, outp = (loff_t)o->off;
	off_t sin = (off_t)pos;
	ssize_t n;

	do
		n = copy_file_range(fd, &in, o->fd, &outp, want, 0);
	while (n < 0 && errno == EINTR);
	if (n != 0 && !(n < 0 && (errno == EXDEV || errno == EINVAL ||
				  errno == ENOSYS || errno == EOPNOTSUPP)))
		return n;
	if (lseek(o->fd, (off_t)o->off, SEEK_SET) < 0)
		return 0;
	do
		n = sendfile(o->fd, fd, &sin, want);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EINVAL || errno == ENOSYS))
		return 0;
	if (n == 0)
		errno = EIO; /* the source is shorter than it should be */
	return n == 0 ? -1 : n;
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
		ssize_t n = kernel_copy(o, fd, pos, len);
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

/* ckpt_encw_fill_fn for a file entry: bytes [off, off+len) of it. */
static ckpt_err fill_entry(const void *ctx, uint64_t off, size_t len,
			   uint8_t *buf, struct ckpt_error *err)
{
	const struct entry *e = ctx;

	while (len) {
		struct ckpt_piece *pc;
		void *mem;
		int n = ckpt_entry_pieces(e, e->src,
					  e->orig ? &e->orig->tensor : NULL,
					  off, len, &pc, &mem);
		ssize_t got = n > 0 ? ckpt_pieces_copy(pc, (uint32_t)n, buf)
				    : -1;
		int saved = n < 0 ? -n : n == 0 ? EIO : errno;

		if (mem) /* converted bfloat16 (one piece): maybe plaintext of
			  * an encrypted tree */
			OPENSSL_cleanse(mem, pc[0].len);
		free(pc);
		free(mem);
		errno = saved; /* for ckpt_fail's sys_errno */
		if (got <= 0)
			return ckpt_fail(err, CKPT_ERR_IO, off,
					 "reading parameter '%s' for the new "
					 "checkpoint failed: %s; the original "
					 "is untouched and all edits are kept",
					 e->fname, strerror(saved));
		buf += got;
		off += (uint64_t)got;
		len -= (size_t)got;
	}
	return CKPT_OK;
}

/* Appends bytes [off, off+len) of file entry e. */
static ckpt_err out_entry_bytes(struct out *o, const struct entry *e,
				uint64_t off, uint64_t len)
{
	if (o->encw)
		return ckpt_encw_fill(o->encw, e, off, len, o->err);
	while (len) {
		size_t want = len > (1u << 30) ? (1u << 30) : (size_t)len;
		struct ckpt_piece *pc;
		void *mem;
		ckpt_err r = CKPT_OK;
		int n = ckpt_entry_pieces(e, e->src,
					  e->orig ? &e->orig->tensor : NULL,
					  off, want, &pc, &mem);
		uint64_t got = 0;

		if (n <= 0) {
			errno = n < 0 ? -n : EIO;
			return out_fail(o, "reading parameter data");
		}
		for (int k = 0; k < n && !r; k++) {
			r = pc[k].fd >= 0
				    ? out_copy(o, pc[k].fd, pc[k].pos, pc[k].len)
				    : out_bytes(o, pc[k].mem, pc[k].len);
			got += pc[k].len;
		}
		free(pc);
		free(mem);
		if (r)
			return r;
		off += got;
		len -= got;
	}
	return CKPT_OK;
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

/* Creates an unnamed file in dirfd, or a named temporary one when the
 * filesystem has no O_TMPFILE (*tmpname is then set); readable, so an
 * encrypted output can be checked. */
static int create_tmp(int dirfd, const char *base, char *tmpname,
		      size_t size, mode_t mode)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd;
	for (int i = 0; i < 100; i++) {
		snprintf(tmpname, size, ".%s.ckptfs-%d-%d", base, getpid(), i);
		fd = openat(dirfd, tmpname, O_CREAT | O_EXCL | O_RDWR |
			    O_CLOEXEC, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	return -1;
}

/* Gives the written file fd a temporary name in dirfd (if it has none). */
static int link_tmp(int fd, int dirfd, const char *base, char *tmpname,
		    size_t size)
{
	char proc[64];

	if (*tmpname)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	for (int i = 0; i < 100; i++) {
		snprintf(tmpname, size, ".%s.ckptfs-%d-%d", base, getpid(), i);
		if (linkat(AT_FDCWD, proc, dirfd, tmpname, AT_SYMLINK_FOLLOW) ==
		    0)
			return 0;
		if (errno != EEXIST) {
			*tmpname = '\0';
			return -1;
		}
	}
	*tmpname = '\0';
	return -1;
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

/* Writes every live entry of t to a new file and renames it to path.  A
 * recovery file never replaces anything: CKPT_ERR_EXISTS if path exists.
 * *in_place is set when the file was renamed into place but the fsync of
 * its directory failed (then the error says so). */
static ckpt_err write_checkpoint(struct ckpt_tree *t, const char *path,
				 bool recovery, bool *in_place,
				 struct ckpt_error *err)
{
	char *dcopy = strdup(path), *bcopy = strdup(path), tmpname[512] = "";
	struct out o = {.fd = -1, .path = path, .err = err};
	const char *dir, *base;
	int dirfd = -1;
	mode_t mode = 0644;
	struct stat st;
	ckpt_err r;

	if (!dcopy || !bcopy) {
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
		goto out;
	}
	dir = dirname(dcopy);
	base = basename(bcopy);
	if (stat(path, &st) == 0)
		mode = st.st_mode & 07777;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd >= 0)
		o.fd = create_tmp(dirfd, base, tmpname, sizeof(tmpname), mode);
	if (o.fd < 0) {
		r = out_fail(&o, "creating a file in its directory");
		goto out;
	}
	o.crc_on = !recovery && !t->out_key && !t->drop_crc &&
		   (t->add_crc || (t->base && ckpt_stats(t->base)->has_crc));
	o.progress = t->progress;
	o.progress_ctx = t->progress_ctx;
	for (size_t i = 0; i < t->norder; i++)
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
	r = CKPT_ERR_IO;
	if (fchmod(o.fd, mode) < 0) {
		out_fail(&o, "fchmod");
		goto out;
	}
	if (fsync(o.fd) < 0) {
		out_fail(&o, "fsync");
		goto out;
	}
	if (link_tmp(o.fd, dirfd, base, tmpname, sizeof(tmpname)) < 0) {
		out_fail(&o, "link");
		goto out;
	}
	if (renameat2(dirfd, tmpname, dirfd, base,
		      recovery ? RENAME_NOREPLACE : 0) < 0) {
		if (errno == EEXIST)
			r = ckpt_fail(err, CKPT_ERR_EXISTS, 0, "%s exists",
				      path);
		else
			out_fail(&o, "rename");
		goto out;
	}
	*tmpname = '\0';
	if (fsync(dirfd) < 0) {
		/* the rename is done and cannot be undone: say so */
		r = ckpt_fail(err, CKPT_ERR_IO, 0,
			      "the new checkpoint %s is complete and in place, "
			      "but its directory could not be synced (%s): it "
			      "may not survive a power failure; commit again",
			      path, strerror(errno));
		*in_place = true;
		goto out;
	}
	r = CKPT_OK;
out:
	ckpt_dio_free(o.dio); /* its thread may still write to o.fd */
	if (*tmpname)
		unlinkat(dirfd, tmpname, 0);
	if (o.fd >= 0)
		close(o.fd);
	if (dirfd >= 0)
		close(dirfd);
	ckpt_encw_free(o.encw);
	free(dcopy);
	free(bcopy);
	return r;
}

/* fsyncs the directory holding path. */
static ckpt_err sync_dir_of(const char *path, struct ckpt_error *err)
{
	char *copy = strdup(path);
	int fd = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY |
			     O_CLOEXEC) : -1;
	ckpt_err r = CKPT_OK;

	if (fd < 0 || fsync(fd) < 0)
		r = ckpt_fail(err, CKPT_ERR_IO, 0,
			      "the directory of %s could not be synced (%s): "
			      "the last commit may not survive a power "
			      "failure", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return r;
}

/* After a commit of a plain checkpoint: the tree continues on the new
 * file.  If it cannot be opened, the tree stays on the old one (still
 * open) and stays dirty. */
static void rebind(struct ckpt_tree *t)
{
	struct ckpt_open_opts oo = t->open_opts;
	struct ckpt_file *nf;
	bool keep_old = false;
	struct stat st;

	oo.skip_crc = true; /* we just computed it */
	oo.key = NULL;
	if (ckpt_open(t->target, &oo, &nf, NULL) != CKPT_OK ||
	    ckpt_count(nf) != t->norder) {
		ckpt_close(nf);
		return;
	}
	/* every entry gets its dims before any is rebound: all or nothing */
	for (size_t i = 0; i < t->norder; i++) {
		struct entry *e = t->order[i];
		const struct ckpt_param *p = ckpt_param_at(nf, i);
		uint32_t n = p->kind == CKPT_PARAM_TENSOR ? p->tensor.ndims : 0;
		int64_t *d = realloc(e->dims, (n ? n : 1) * sizeof(*d));
		if (!d) {
			ckpt_close(nf);
			return;
		}
		e->dims = d;
	}
	/* a deleted entry that is still open may read from the old file,
	 * which then stays open while such an entry refers to it */
	for (size_t i = 0; i < t->nslots && !keep_old; i++) {
		const struct entry *e = t->slots[i];
		keep_old = !e->live && e->stage_fd < 0 && e->orig &&
			   e->src == t->base;
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
		for (size_t i = 0; i < t->nslots; i++) {
			struct entry *e = t->slots[i];
			if (!e->live && e->src == t->base) { /* staged ones */
				e->orig = NULL;
				e->src = NULL;
			}
		}
		ckpt_close(t->base);
	}
	for (size_t i = 0; i < t->norder; i++)
		ckpt_entry_rebind(t->order[i], ckpt_param_at(nf, i), nf);
	t->base = nf;
	ckpt_tree_release_retired(t);
	if (fstat(ckpt_fd(nf), &st) == 0)
		t->base_mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
				   (uint64_t)st.st_mtim.tv_nsec;
	t->dirty = false;
}

ckpt_err ckpt_tree_commit(struct ckpt_tree *t, struct ckpt_error *err)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t ndims;
	ckpt_dtype dt;
	ckpt_err r = CKPT_OK;
	bool in_place = false;

	pthread_rwlock_wrlock(&t->lock);
	if (!t->dirty && t->dir_unsynced) { /* the last commit's last step */
		r = sync_dir_of(t->target, err);
		t->dir_unsynced = r != CKPT_OK;
	}
	if (!t->dirty)
		goto out;
	if (t->ro_reason) {
		r = ckpt_fail(err, CKPT_ERR_READONLY, 0,
			      "the checkpoint is read-only: %s", t->ro_reason);
		goto out;
	}
	for (size_t i = 0; i < t->norder; i++) {
		const struct entry *e = t->order[i];
		if (e->kind == CKPT_ENTRY_FILE &&
		    !ckpt_entry_dims(e, dims, &ndims, &dt, false, err)) {
			r = CKPT_ERR_INVAL;
			goto out;
		}
	}
	r = write_checkpoint(t, t->target, false, &in_place, err);
	/* An encrypted tree stays on its decrypted copy and its staged
	 * edits, which are exactly what was committed: reopening would
	 * decrypt the whole file again, next to the copy already held. */
	if ((!r || in_place) && (t->one_shot || t->out_key)) {
		for (size_t i = 0; i < t->norder; i++)
			ckpt_entry_pin_shape(t->order[i]);
		t->dirty = false;
	} else if (!r || in_place) {
		rebind(t); /* the target is the new checkpoint */
	}
	t->dir_unsynced = in_place;
out:
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_save_recovery(struct ckpt_tree *t, char **path,
				 char **lost, struct ckpt_error *err)
{
	char stamp[32], *p = NULL;
	const char *tmp = getenv("TMPDIR");
	char *bcopy = strdup(t->target);
	time_t now = time(NULL);
	struct tm tm;
	ckpt_err r = CKPT_ERR_NOMEM;

	*lost = NULL;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	pthread_rwlock_wrlock(&t->lock);
	/* beside the target, else in $TMPDIR; -N when the name is taken */
	for (int attempt = 0; bcopy && attempt < 200; attempt++) {
		size_t n = strlen(t->target) + strlen(tmp ? tmp : "/tmp") + 64;
		int where = attempt / 100, seq = attempt % 100;
		char suffix[16] = "";
		free(p);
		p = malloc(n);
		if (!p)
			break;
		if (seq)
			snprintf(suffix, sizeof(suffix), "-%d", seq);
		if (where == 0)
			snprintf(p, n, "%s.recovery-%s%s.ckpt", t->target,
				 stamp, suffix);
		else
			snprintf(p, n, "%s/%s.recovery-%s%s.ckpt",
				 tmp && *tmp ? tmp : "/tmp", basename(bcopy),
				 stamp, suffix);
		bool in_place = false;
		r = write_checkpoint(t, p, true, &in_place, err);
		if (in_place)
			r = CKPT_OK; /* it is there: say where */
		if (!r)
			break;
		if (r != CKPT_ERR_EXISTS && where == 0)
			attempt = 99; /* cannot write here: try $TMPDIR */
		else if (r != CKPT_ERR_EXISTS)
			break;
	}
	pthread_rwlock_unlock(&t->lock);
	if (r == CKPT_ERR_NOMEM && (!bcopy || !p))
		ckpt_fail(err, r, 0, "out of memory");
	free(bcopy);
	if (r) {
		free(p);
		return r;
	}
	*path = p;
	return CKPT_OK;
}
