/*
 * io.c - full reads and writes, kernel copies, clones, unnamed files.
 *
 * Every read and write of libckpt that moves bytes between descriptors
 * goes through here, so retries on EINTR and short transfers, the 1 GiB
 * clamp of the copy calls and their fallbacks are written once.  These
 * functions keep the system calls' convention (-1 and errno): their
 * callers turn a failure into a ckpt_error that names the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "base/base.h"

#define COPY_MAX (1u << 30) /* the kernel copies at most this per call */
#define COPY_BUF (1u << 16)

ssize_t ckpt_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = pread(fd, (char *)buf + done, n - done,
				  (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int ckpt_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;

	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int ckpt_set_direct(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	if (!(fl & O_DIRECT) == !on)
		return 0;
	return fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT);
}

int ckpt_pwrite_direct(int fd, const void *buf, size_t n, uint64_t off)
{
	if (ckpt_pwrite_full(fd, buf, n, off) == 0)
		return 0;
	if (errno != EINVAL && errno != EOPNOTSUPP)
		return -1;
	/* refused: maybe by a direct write that another thread has turned
	 * into a buffered one since; the page cache takes any alignment */
	if (ckpt_set_direct(fd, false) < 0)
		return -1;
	return ckpt_pwrite_full(fd, buf, n, off);
}

/* errno values with which copy_file_range says "not for these files" */
static bool copy_unsupported(int e)
{
	return e == EXDEV || e == EINVAL || e == ENOSYS || e == EOPNOTSUPP;
}

ssize_t ckpt_kernel_copy(int in_fd, uint64_t in_off, int out_fd,
			 uint64_t out_off, uint64_t len)
{
	size_t want = len > COPY_MAX ? COPY_MAX : (size_t)len;
	loff_t in = (loff_t)in_off, out = (loff_t)out_off;
	off_t sin = (off_t)in_off;
	ssize_t n;

	do
		n = copy_file_range(in_fd, &in, out_fd, &out, want, 0);
	while (n < 0 && errno == EINTR);
	if (n != 0 && !(n < 0 && copy_unsupported(errno)))
		return n;
	if (n == 0 && want) {
		errno = EIO; /* the source is shorter than it should be */
		return -1;
	}
	if (lseek(out_fd, (off_t)out_off, SEEK_SET) < 0)
		return 0;
	do
		n = sendfile(out_fd, in_fd, &sin, want);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EINVAL || errno == ENOSYS))
		return 0;
	if (n == 0 && want)
		errno = EIO;
	return n == 0 ? -1 : n;
}

/* ckpt_copy_range of one run. */
static int copy_run(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
		    uint64_t len)
{
	char buf[COPY_BUF];

	while (len) {
		ssize_t n =
			ckpt_kernel_copy(in_fd, in_off, out_fd, out_off, len);
		if (n < 0)
			return -1;
		if (n == 0)
			break; /* not in the kernel here: by hand */
		in_off += (uint64_t)n;
		out_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = ckpt_pread_full(in_fd, buf, n, in_off);
		if (r != (ssize_t)n) {
			if (r >= 0)
				errno = EIO;
			return -1;
		}
		if (ckpt_pwrite_full(out_fd, buf, n, out_off) < 0)
			return -1;
		in_off += n;
		out_off += n;
		len -= n;
	}
	return 0;
}

uint64_t ckpt_block_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) != 0 || st.st_blksize <= 0 || st.st_blksize > 65536)
		return 4096;
	return (uint64_t)st.st_blksize;
}

bool ckpt_block_split(uint64_t in_off, uint64_t out_off, uint64_t len,
		      uint64_t blk, uint64_t *head, uint64_t *mid)
{
	if (in_off % blk != out_off % blk || len < blk)
		return false;
	*head = (blk - in_off % blk) % blk;
	*mid = (len - *head) / blk * blk;
	return true;
}

int ckpt_copy_range(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
		    uint64_t len)
{
	uint64_t head, mid;

	if (!ckpt_block_split(in_off, out_off, len, ckpt_block_size(out_fd),
			      &head, &mid))
		return copy_run(in_fd, in_off, out_fd, out_off, len);
	if (copy_run(in_fd, in_off, out_fd, out_off, head) != 0 ||
	    copy_run(in_fd, in_off + head, out_fd, out_off + head, mid) != 0)
		return -1;
	return copy_run(in_fd, in_off + head + mid, out_fd,
			out_off + head + mid, len - head - mid);
}

int ckpt_clone_file(int in_fd, int out_fd)
{
	int r;

	do
		r = ioctl(out_fd, FICLONE, in_fd);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

int ckpt_tmpfile_at(int dirfd, const char *prefix, char *keep, size_t size)
{
	char name[320];
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (keep)
		*keep = '\0';
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd;
	for (int i = 0; i < 100; i++) { /* no O_TMPFILE here: a named one */
		ckpt_random_name(name, sizeof(name), prefix, "");
		fd = openat(dirfd, name,
			    O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd >= 0)
			break;
		if (errno != EEXIST)
			return -1;
	}
	if (fd < 0)
		return -1;
	if (!keep)
		unlinkat(dirfd, name, 0);
	else
		snprintf(keep, size, "%s", name);
	return fd;
}
