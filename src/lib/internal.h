/*
 * internal.h - definitions shared by the files of libckpt, not installed.
 */
#ifndef CKPT_INTERNAL_H
#define CKPT_INTERNAL_H

#include <sys/stat.h>

#include "ckpt.h"

/* Fills err (if non-NULL) with code, offset and a printf-style message, and
 * returns code.  sys_errno is taken from errno for CKPT_ERR_IO. */
ckpt_err ckpt_fail(struct ckpt_error *err, ckpt_err code, uint64_t offset,
		   const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* True if the len bytes at s are valid UTF-8 (no overlong forms, no
 * surrogates), as protobuf requires of a string field. */
bool ckpt_utf8_valid(const char *s, size_t len);

/* Windowed pread reader used by the scanner: hands out pointers to byte
 * ranges of the source without reading tensor content. */
struct ckpt_reader {
	int fd;
	const char *label;
	uint64_t size;     /* readable bytes (the stream, not the trailer) */
	uint8_t *buf;
	size_t cap;
	uint64_t boff;     /* file offset of buf[0] */
	size_t blen;       /* valid bytes in buf */
};

/* Makes [off, off+n) available and points *p at it.  The pointer stays
 * valid until the next call.  Fails with CKPT_ERR_CORRUPT if the range
 * passes the end, CKPT_ERR_IO if the read fails. */
ckpt_err ckpt_reader_get(struct ckpt_reader *r, uint64_t off, size_t n,
			 const uint8_t **p, struct ckpt_error *err);

/* Decodes a varint at *pos (below limit), advancing *pos. */
ckpt_err ckpt_reader_varint(struct ckpt_reader *r, uint64_t *pos,
			    uint64_t limit, uint64_t *val,
			    struct ckpt_error *err);

/* Skips a field of wire type wt whose key ended at *pos. */
ckpt_err ckpt_reader_skip(struct ckpt_reader *r, uint64_t *pos,
			  uint64_t limit, unsigned wt, struct ckpt_error *err);

/* pread that retries on EINTR and short reads; returns bytes read or -1. */
ssize_t ckpt_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* pwrite of all n bytes, retrying on EINTR and short writes; 0 or -1. */
int ckpt_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

/* A file written front to back with O_DIRECT by a thread of its own
 * (dio.c): the caller fills one chunk while the previous one is written. */
struct ckpt_dio;

/* Switches fd to O_DIRECT and starts the writer, which will write the file
 * from offset 0.  NULL when the file system has no direct I/O, or memory
 * or a thread is short: then write through the page cache instead. */
struct ckpt_dio *ckpt_dio_start(int fd);

/* Where the next bytes go: *room (> 0) bytes free at the returned pointer,
 * valid until the next ckpt_dio_fill. */
uint8_t *ckpt_dio_room(struct ckpt_dio *d, size_t *room);

/* Appends the n (<= room) bytes just put at ckpt_dio_room's pointer; a full
 * chunk goes to the writer.  0, or -1 with errno and *at (the offset of
 * the chunk) of the first failed write. */
int ckpt_dio_fill(struct ckpt_dio *d, size_t n, uint64_t *at);

/* Waits for the writer and writes the rest through the page cache.  0, or
 * -1 with errno and *at as ckpt_dio_fill.  The data is not yet durable. */
int ckpt_dio_finish(struct ckpt_dio *d, uint64_t *at);

/* Stops the writer, waiting for a write in progress, and frees d (NULL is
 * allowed).  Call before closing the fd. */
void ckpt_dio_free(struct ckpt_dio *d);

/* What identifies a file and its content: device and inode, and size and
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

/* A block of the memory the index of an open file lives in (index.c). */
struct ckpt_block;

struct ckpt_file {
	int fd;
	char *path;
	struct ckpt_ident ident; /* of fd when it was scanned */
	struct ckpt_stats stats;
	struct ckpt_param *params;
	size_t nparams, cap;
	uint32_t *hash;      /* open addressing: index+1, 0 = empty */
	size_t hash_size;    /* power of two, at least 2 x nparams; 0 until
			      * ckpt_index_build */
	struct ckpt_block *blocks; /* names, dims, extents, map tensors */
};

/* Appends a parameter in file order.  Its pointers must be into memory
 * from ckpt_index_alloc(f, ...).  Used by the scanner. */
ckpt_err ckpt_index_put(struct ckpt_file *f, const struct ckpt_param *p,
			struct ckpt_error *err);

/* n bytes aligned for any of the index's types, owned by f (freed by
 * ckpt_index_free); NULL when out of memory. */
void *ckpt_index_alloc(struct ckpt_file *f, size_t n);

/* After the last ckpt_index_put: builds the hash, keeps one parameter per
 * name (a name seen again gives its data to the first position, as in a
 * dict), sets stats.duplicates and data_bytes, and gives back unused
 * room.  ckpt_find works from here on. */
ckpt_err ckpt_index_build(struct ckpt_file *f, struct ckpt_error *err);

/* Frees the parameters, the hash and every ckpt_index_alloc block. */
void ckpt_index_free(struct ckpt_file *f);

/* Like ckpt_open on an open descriptor of path (owned from here on, closed
 * on failure): detects and decrypts, then scans. */
ckpt_err ckpt_open_file(int fd, const char *path,
			const struct ckpt_open_opts *opts,
			struct ckpt_file **out, struct ckpt_error *err);

/* True if the file f was scanned from has changed since (or cannot be
 * examined): its bytes can no longer be trusted. */
bool ckpt_file_changed(const struct ckpt_file *f);

/* Scans f->fd (stream of f->stats.stream_size bytes) into f's index. */
ckpt_err ckpt_scan(struct ckpt_file *f, struct ckpt_error *err);

#endif /* CKPT_INTERNAL_H */
