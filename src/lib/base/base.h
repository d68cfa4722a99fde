/*
 * base.h - what every part of libckpt builds on, and nothing that knows a
 * checkpoint: errors (error.c), full reads and writes, kernel copies and
 * unnamed files (io.c), the clock and hashing (util.c), CRC-32 of memory
 * (crc32.c) and of files (crcfile.c), and the files underneath a tree held
 * by descriptor (place.c).
 *
 * Not installed: the front ends see only include/.
 */
#ifndef CKPT_BASE_H
#define CKPT_BASE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "ckpt.h"

/* p without its const, for the APIs (OpenSSL's, the static dims table of
 * ckpt.h) that take a non-const pointer to memory they only read. */
#define CKPT_UNCONST(p) ((void *)(uintptr_t)(p))

/* ---- errors (error.c) -------------------------------------------------- */

/* Fills err (if non-NULL) with code, offset and a printf-style message, and
 * returns code.  sys_errno is taken from errno for CKPT_ERR_IO; the hint is
 * CKPT_HINT_IGNORE_CRC for CKPT_ERR_CRC, else none. */
ckpt_err ckpt_fail(struct ckpt_error *err, ckpt_err code, uint64_t offset,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Sets the remedy a front end should suggest for err (if non-NULL). */
void ckpt_set_hint(struct ckpt_error *err, enum ckpt_hint hint, int mode);

/* util.c: names (any bytes, lengths given) in byte order, a prefix
 * first: Python's sorted() of their UTF-8 and Rust's String order.
 * memcmp-style result. */
int ckpt_name_cmp(const char *a, size_t alen, const char *b, size_t blen);

/* ---- CRC-32 (crc32.c) ------------------------------------------------ */

/* ckpt_crc32 (ckpt.h) by the portable slice-by-8 code: what ckpt_crc32 is
 * when built without ISA-L, and the unit tests' reference for it. */
uint32_t ckpt_crc32_portable(uint32_t crc, const void *buf, size_t len);

/* crcfile.c: continues *crc over len bytes of fd from off, over a mapping
 * (no copy; a SIGBUS from a file shrinking underneath or a disk error is
 * caught), or through a buffer where fd cannot be mapped or the range is
 * under 1 MiB.  0, or -1 with
 * errno (EIO where the bytes could not be read: the file is shorter than
 * off + len, or the disk failed) and *bad the offset that failed; *crc is
 * then undefined.  Safe from several threads. */
int ckpt_crc32_fd(int fd, uint64_t off, uint64_t len, uint32_t *crc,
		  uint64_t *bad);

/* ---- I/O (io.c) ---------------------------------------------------------
 * These mirror the system calls they wrap: -1 with errno on failure. */

/* pread that retries on EINTR and short reads; returns bytes read (fewer
 * than n only at the end of the file) or -1. */
ssize_t ckpt_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* pwrite of all n bytes, retrying on EINTR and short writes; 0 or -1. */
int ckpt_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

/* Turns O_DIRECT on or off on fd; 0, or -1 with errno (EINVAL where the
 * file system has no direct I/O). */
int ckpt_set_direct(int fd, bool on);

/* ckpt_pwrite_full for a descriptor that may be O_DIRECT: where the file
 * system refuses the direct write (EINVAL: stricter alignment than the
 * caller's; EOPNOTSUPP), O_DIRECT is turned off on fd for good and the
 * write made again through the page cache.  Safe from several threads
 * writing disjoint ranges of one descriptor.  0 or -1. */
int ckpt_pwrite_direct(int fd, const void *buf, size_t n, uint64_t off);

/* One copy in the kernel of up to len bytes (at most 1 GiB) from in_fd at
 * in_off to out_fd at out_off: copy_file_range, or sendfile where the two
 * files are on different filesystems.  Returns the bytes copied, 0 when
 * neither call works for these files (copy by hand then), -1 with errno
 * on an error (EIO for a source shorter than len). */
ssize_t ckpt_kernel_copy(int in_fd, uint64_t in_off, int out_fd,
			 uint64_t out_off, uint64_t len);

/* The block size of fd's file system as st_blksize says: 4 KiB where it
 * says nothing useful (or more than 64 KiB). */
uint64_t ckpt_block_size(int fd);

/* How a copy of len bytes from in_off to out_off splits so that its
 * whole blocks of blk bytes go apart from its ends (a reflinking file
 * system shares those, and copies a range that starts or ends inside a
 * block in full): *head bytes up to the first block boundary, then *mid
 * bytes of whole blocks, then the rest.  False, with nothing set, where
 * the offsets differ modulo blk or len is under a block. */
bool ckpt_block_split(uint64_t in_off, uint64_t out_off, uint64_t len,
		      uint64_t blk, uint64_t *head, uint64_t *mid);

/* Copies len bytes from in_fd at in_off to out_fd at out_off: in the
 * kernel where it can (the whole blocks apart from the ends where the two
 * offsets are alike modulo the block size, so that XFS or Btrfs share
 * them), else through a buffer.  0, or -1 with errno (EIO for a source
 * shorter than len). */
int ckpt_copy_range(int in_fd, uint64_t in_off, int out_fd, uint64_t out_off,
		    uint64_t len);

/* Makes out_fd a clone of all of in_fd (ioctl FICLONE): the two files
 * share their blocks until either is written (XFS, Btrfs, bcachefs, ZFS
 * >= 2.2 copy on write).  0, or -1 with errno: EOPNOTSUPP, EXDEV, EINVAL
 * or ENOTTY where the file system cannot (write out_fd otherwise then). */
int ckpt_clone_file(int in_fd, int out_fd);

/* A new read-write file (mode 0600) in directory dirfd: unnamed
 * (O_TMPFILE), or where the filesystem has none, named prefix + 8 random
 * characters.  With keep NULL such a name is unlinked at once; else it is
 * left in keep (size bytes), which is "" for an unnamed file.  Returns the
 * descriptor or -1 with errno. */
int ckpt_tmpfile_at(int dirfd, const char *prefix, char *keep, size_t size);

/* ---- clock and hashing (util.c) ---------------------------------------- */

/* Nanoseconds since the epoch of ts. */
uint64_t ckpt_ts_ns(const struct timespec *ts);

/* CLOCK_REALTIME now, in nanoseconds since the epoch. */
uint64_t ckpt_now_ns(void);

/* FNV-1a of the NUL-terminated string s. */
uint64_t ckpt_hash_str(const char *s);

/* The index of the extent of x[0..n), sorted by pos, that holds byte pos:
 * the last whose pos is at most pos (0 if there is none).  The one binary
 * search for tensors (read.c) and the encrypted writer's segments. */
size_t ckpt_extent_at(const struct ckpt_extent *x, size_t n, uint64_t pos);

/* ---- identity of a file (place.c) ---------------------------------------
 * What identifies a file and its content: device and inode, and size and
 * mtime, which every write changes (ctime also changes on chmod, link and
 * rename, which leave the bytes alone, so it is not compared). */
struct ckpt_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/* Records the identity of the file st describes. */
void ckpt_ident_of(const struct stat *st, struct ckpt_ident *id);

/* True if st is the file id was taken of (device and inode). */
bool ckpt_ident_same_file(const struct ckpt_ident *id, const struct stat *st);

/* True if st is that file with the same content (also size and mtime). */
bool ckpt_ident_same(const struct ckpt_ident *id, const struct stat *st);

/* ---- places: paths resolved once (place.c) ----------------------------- */

/* A path resolved once: its directory, held open, and the final name. */
struct ckpt_place {
	int dirfd;  /* O_RDONLY | O_DIRECTORY */
	char *base; /* the final component */
	char *path; /* absolute, for messages only: never opened again */
};

/* Resolves path (whose final name need not exist) into pl.  A symlink at
 * the final name is followed (resolved once, here) only if the caller
 * owns it; one owned by someone else is refused (CKPT_ERR_PERM).  Release
 * pl with ckpt_place_close, also after a failure. */
ckpt_err ckpt_place_open(const char *path, struct ckpt_place *pl,
			 struct ckpt_error *err);

/* Releases pl (safe on a zeroed or failed one). */
void ckpt_place_close(struct ckpt_place *pl);

/* A second, independent copy of pl.  0, or -1 (out is then empty). */
int ckpt_place_dup(const struct ckpt_place *pl, struct ckpt_place *out);

/* Writes prefix + 8 random characters [0-9a-z] + suffix into buf. */
void ckpt_random_name(char *buf, size_t size, const char *prefix,
		      const char *suffix);

/* Takes the OFD write lock on fd (open for writing) of the checkpoint at
 * path; CKPT_ERR_BUSY if another writer holds it. */
ckpt_err ckpt_lock_writer(int fd, const char *path, struct ckpt_error *err);

/* The names of a commit's temporary files start with this (a printf
 * format taking the base name, cut so that every name fits NAME_MAX). */
#define CKPT_TMP_PREFIX ".%.200s.ckptfs-"

/* Removes what a crashed commit of pl's file left in its directory: the
 * regular files named CKPT_TMP_PREFIX "*" that the caller owns. */
void ckpt_remove_strays(const struct ckpt_place *pl);

#endif /* CKPT_BASE_H */
