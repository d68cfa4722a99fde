/*
 * stage.c - staging files: where changed tensor bytes live until a commit.
 *
 * A staging file is an unnamed O_TMPFILE in the staging directory (beside
 * the checkpoint by default), so nothing is left behind after a crash and
 * a big tensor never has to fit in memory.  Untouched bytes are copied in
 * with copy_file_range, which may share blocks on filesystems that can.
 *
 * A staging file is never truncated to 0 bytes: ext4 (auto_da_alloc)
 * marks a file truncated to 0 and writes all its dirty data to the disk
 * when it is closed, i.e. at the end of the next commit, when the staged
 * bytes are no longer needed; for a bulk rewrite that doubled the disk
 * writes of the commit.  Emptying a staged tensor takes a new file instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tree_internal.h"

static int staging_fd(struct ckpt_tree *t, struct ckpt_error *err)
{
	int fd;

	if (t->memory_staging) { /* decrypted data never goes to a disk */
		fd = memfd_create("ckptfs-stage", MFD_CLOEXEC);
		if (fd < 0)
			ckpt_fail(err, CKPT_ERR_IO, 0, "cannot create a "
				  "staging file in memory: %s",
				  strerror(errno));
		return fd;
	}
	fd = ckpt_tmpfile_at(t->stage_dirfd);
	if (fd < 0 && !t->staging_fixed && t->tmp_dirfd >= 0)
		fd = ckpt_tmpfile_at(t->tmp_dirfd);
	if (fd < 0)
		ckpt_fail(err, CKPT_ERR_IO, 0,
			  "cannot create a staging file in %s: %s",
			  t->staging_dir, strerror(errno));
	return fd;
}

/* Copies len bytes from in_fd at in_off to out_fd at out_off. */
static int copy_range(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
		      uint64_t len)
{
	char buf[1 << 16];
	loff_t i = (loff_t)in_off, o = (loff_t)out_off;

	while (len) {
		ssize_t n = copy_file_range(in_fd, &i, out_fd, &o,
					    len > (1u << 30) ? (1u << 30) : len,
					    0);
		if (n > 0) {
			len -= (uint64_t)n;
			continue;
		}
		if (n == 0) {
			errno = EIO; /* source shorter than its index says */
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
		    errno != EOPNOTSUPP)
			return -1;
		break; /* not supported here: copy by hand */
	}
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = ckpt_pread_full(in_fd, buf, n, (uint64_t)i);
		if (r != (ssize_t)n) {
			if (r >= 0)
				errno = EIO;
			return -1;
		}
		if (ckpt_pwrite_full(out_fd, buf, n, (uint64_t)o) < 0)
			return -1;
		i += (loff_t)n;
		o += (loff_t)n;
		len -= n;
	}
	return 0;
}

ckpt_err ckpt_stage(struct ckpt_tree *t, struct entry *e, bool copy,
		    struct ckpt_error *err)
{
	int fd;

	if (e->stage_fd >= 0)
		return CKPT_OK;
	if (copy && e->orig && e->size && ckpt_file_changed(e->src))
		return ckpt_fail(err, CKPT_ERR_CHANGED, 0,
				 "cannot edit '%s': %s was modified underneath "
				 "the mount, so its old bytes are gone",
				 e->fname, ckpt_path(e->src));
	fd = staging_fd(t, err);
	if (fd < 0)
		return CKPT_ERR_IO;
	if (copy && e->orig && e->size) {
		const struct ckpt_tensor *ot = &e->orig->tensor;
		uint64_t done = 0;
		while (done < e->size) {
			struct ckpt_piece *pc;
			void *mem;
			size_t want = e->size - done > (1u << 30)
					      ? (1u << 30)
					      : (size_t)(e->size - done);
			int n = ckpt_entry_pieces(e, e->src, ot, done, want,
						  &pc, &mem);
			if (n < 0) {
				errno = -n;
				goto fail;
			}
			for (int k = 0; k < n; k++) {
				int r = pc[k].fd >= 0
						? copy_range(pc[k].fd, pc[k].pos,
							     fd, done, pc[k].len)
						: ckpt_pwrite_full(fd, pc[k].mem,
								   pc[k].len,
								   done);
				if (r < 0) {
					free(pc);
					free(mem);
					goto fail;
				}
				done += pc[k].len;
			}
			free(pc);
			free(mem);
		}
	}
	if (e->size && ftruncate(fd, (off_t)e->size) < 0)
		goto fail;
	e->stage_fd = fd;
	return CKPT_OK;
fail:
	ckpt_fail(err, CKPT_ERR_IO, 0,
		  "cannot stage '%s' in %s: %s", e->fname, t->staging_dir,
		  strerror(errno));
	close(fd);
	return CKPT_ERR_IO;
}

ckpt_err ckpt_stage_resize(struct ckpt_tree *t, struct entry *e,
			   uint64_t size, struct ckpt_error *err)
{
	bool fresh = e->stage_fd < 0;
	int fd;
	ckpt_err r;

	if (!size) {
		fd = staging_fd(t, err);
		if (fd < 0)
			return CKPT_ERR_IO;
		if (!fresh)
			close(e->stage_fd); /* unlinked: its pages go, unwritten */
		e->stage_fd = fd;
		return CKPT_OK;
	}
	r = ckpt_stage(t, e, true, err);
	if (r)
		return r;
	if (ftruncate(e->stage_fd, (off_t)size) == 0)
		return CKPT_OK;
	ckpt_fail(err, CKPT_ERR_IO, 0, "truncating '%s': %s", e->fname,
		  strerror(errno));
	if (fresh) {
		close(e->stage_fd);
		e->stage_fd = -1;
	}
	return CKPT_ERR_IO;
}

ssize_t ckpt_pieces_copy(const struct ckpt_piece *p, uint32_t n, void *buf)
{
	uint8_t *b = buf;

	for (uint32_t i = 0; i < n; i++) {
		ssize_t r = (ssize_t)p[i].len;
		if (p[i].fd < 0)
			memcpy(b, p[i].mem, p[i].len);
		else
			r = ckpt_pread_full(p[i].fd, b, p[i].len, p[i].pos);
		if (r >= 0 && r != (ssize_t)p[i].len)
			errno = EIO;
		if (r != (ssize_t)p[i].len)
			return -1;
		b += p[i].len;
	}
	return b - (uint8_t *)buf;
}

int ckpt_entry_pieces(const struct entry *e, const struct ckpt_file *src,
		      const struct ckpt_tensor *mt, uint64_t off, size_t size,
		      struct ckpt_piece **pieces, void **mem)
{
	struct ckpt_piece *pc;
	uint64_t total = e ? e->size : mt ? mt->size : 0;
	uint32_t first, n = 0;

	*pieces = NULL;
	*mem = NULL;
	if (off >= total || size == 0)
		return 0;
	if (size > total - off)
		size = (size_t)(total - off);
	if (e && e->stage_fd >= 0) {
		pc = malloc(sizeof(*pc));
		if (!pc)
			return -ENOMEM;
		*pc = (struct ckpt_piece){.fd = e->stage_fd, .pos = off,
					  .len = size};
		*pieces = pc;
		return 1;
	}
	if (!mt || !src)
		return 0; /* a new, never written entry */
	if (mt->bf16_from_f32) {
		struct ckpt_error err;
		void *buf = malloc(size);
		pc = malloc(sizeof(*pc));
		if (!buf || !pc ||
		    ckpt_tensor_read(src, mt, buf, size, off, &err) !=
			    (ssize_t)size) {
			free(buf);
			free(pc);
			return buf && pc ? -EIO : -ENOMEM;
		}
		*pc = (struct ckpt_piece){.fd = -1, .mem = buf, .len = size};
		*mem = buf;
		*pieces = pc;
		return 1;
	}
	first = ckpt_tensor_extent_at(mt, off);
	for (uint32_t i = first;
	     i < mt->nextents && mt->extents[i].pos < off + size; i++)
		n++;
	pc = calloc(n, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct ckpt_extent *x = &mt->extents[first + i];
		uint64_t in = off - x->pos, len = x->len - in;
		if (len > size)
			len = size;
		pc[i] = (struct ckpt_piece){.fd = ckpt_fd(src),
					    .pos = x->src + in,
					    .len = (size_t)len};
		off += len;
		size -= (size_t)len;
	}
	*pieces = pc;
	return (int)n;
}
