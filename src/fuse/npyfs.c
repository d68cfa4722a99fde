/*
 * npyfs.c - -o npy: every parameter file shown as NAME.npy, a NumPy .npy
 * file (see docs/npy-mount.md and ckptfs.h): its contents, reads and
 * writes, the same for the flat view and for -o tree's leaves.  Names
 * (NAME.npy, which names a file may have) are npyname.c's.
 *
 * Reads.  A viewed file is its header (ckpt_npy_header_read, computed
 * from the dtype, shape and size at each request, never stored) followed
 * by the tensor's bytes, which are still served as the tree's pieces
 * (zero-copy): ops.c puts the header's bytes before them.  A file whose
 * shape does not hold its bytes (while it is being written) shows the
 * header of its bytes ('|u1', 1-D), so it always is a valid .npy file.
 *
 * Writes.  A file created, or opened with O_TRUNC, waits for a header
 * (struct npy_write): the writes at its start collect in a buffer until
 * a complete header parses; then the dtype and shape are set from it,
 * an O_TRUNC open empties the data only now (a refused header leaves the
 * parameter as it was), and bytes past the header go to the tensor at
 * offset - header length.  Other writes map through the header shown:
 * bytes past it are the tensor's; bytes inside it must leave it as it
 * is or make another valid header of the same length (its dtype and
 * shape are then set).  Everything else is EINVAL with a logged reason.
 *
 * Locking: fs->npy_lock guards the list fs->npy_writes and the reference
 * counts; each struct npy_write has a lock of its own, held across the
 * tree calls of one write (the tree never calls back, so there is no
 * cycle) and of a flush (-o tree: the view's lock, tv_unlink, which
 * never takes ours), never while taking fs->npy_lock.  No notification to the
 * kernel is sent from a write (the writer's pages are locked: it would
 * deadlock), only from setxattr, flush and release.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "ckpt_npy.h"
#include "ckptfs.h"

/* The most header bytes collected: the longest header numpy reads. */
#define PENDING_MAX (CKPT_NPY_HEADER_MAX + CKPT_NPY_DICT_MAX)

/* A file waiting for its header, or written after it (see the top). */
struct npy_write {
	struct npy_write *next;
	fuse_ino_t ino;
	unsigned refs;	      /* opens and writes under way (fs->npy_lock) */
	unsigned opens;	      /* the opens that wait (fs->npy_lock) */
	pthread_mutex_t lock; /* the fields below */
	bool created;	      /* by a create of this mount: removed unless a
			  * header comes */
	fuse_ino_t parent;    /* created: its directory */
	bool trunc;	      /* the data is emptied when the header comes */
	bool gone;	      /* removed at flush: writes are ENOENT */
	char fname[NAME_MAX + 1]; /* created: its name in parent, NAME.npy */
	size_t have;		  /* bytes collected in buf */
	size_t hlen;		  /* the header's length once it parsed */
	unsigned char buf[PENDING_MAX];
};

/* ---- the header ---------------------------------------------------------- */

bool npy_header(const struct ckpt_entry_info *info, char *buf, size_t *len)
{
	int64_t dims[CKPT_MAX_DIMS];
	uint32_t nd = 0;
	ckpt_dtype dt;
	size_t done;
	ckpt_err r = CKPT_ERR_INVAL;

	if (ckpt_dtype_parse(info->dtype, strlen(info->dtype), &dt) &&
	    ckpt_shape_parse(info->shape, strlen(info->shape), dims, &nd))
		r = ckpt_npy_header_len(dt, dims, nd, info->size, len, NULL);
	if (r == CKPT_ERR_UNSUPPORTED)
		return false;
	if (r) { /* the shape does not hold the bytes: show the bytes */
		dt = CKPT_DT_UINT8;
		dims[0] = (int64_t)info->size;
		nd = 1;
		if (ckpt_npy_header_len(dt, dims, nd, info->size, len, NULL))
			return false;
	}
	return !buf || ckpt_npy_header_read(dt, dims, nd, info->size, buf,
					    CKPT_NPY_HEADER_MAX, 0, &done,
					    NULL) == CKPT_OK;
}

/* The entry ino as stat shows it; false (ENOENT in *err) if gone. */
static bool stat_file(struct ckptfs *fs, fuse_ino_t ino,
		      struct ckpt_entry_info *info, int *err)
{
	if (ckpt_tree_stat(fs->tree, ino, info, NULL) == CKPT_OK)
		return true;
	*err = ENOENT;
	return false;
}

bool npy_read_split(struct ckptfs *fs, fuse_ino_t ino, uint64_t *off,
		    size_t *size, char *head, size_t *hlen, int *err)
{
	struct ckpt_entry_info info;
	size_t len, n;

	*hlen = 0;
	*err = 0;
	if (!stat_file(fs, ino, &info, err))
		return true;
	if (!npy_viewed(&info))
		return false;
	if (!npy_header(&info, head, &len)) {
		*err = EIO; /* it changed under the kernel: none any more */
		return true;
	}
	if (*off >= len) {
		*off -= len;
		return true;
	}
	n = len - (size_t)*off < *size ? len - (size_t)*off : *size;
	memmove(head, head + *off, n);
	*hlen = n;
	*size -= n;
	*off = 0;
	return true;
}

/* ---- waiting files ------------------------------------------------------- */

/* The waiting file ino with a reference taken, or NULL. */
static struct npy_write *get_write(struct ckptfs *fs, fuse_ino_t ino)
{
	struct npy_write *w;

	pthread_mutex_lock(&fs->npy_lock);
	for (w = fs->npy_writes; w && w->ino != ino; w = w->next)
		;
	if (w)
		w->refs++;
	pthread_mutex_unlock(&fs->npy_lock);
	return w;
}

/* Gives back a reference (and an open, if open); frees w after the last
 * and takes it off the list after the last open. */
static void put_write(struct ckptfs *fs, struct npy_write *w, bool open)
{
	bool last;

	pthread_mutex_lock(&fs->npy_lock);
	if (open && --w->opens == 0) {
		struct npy_write **p = &fs->npy_writes;
		while (*p != w)
			p = &(*p)->next;
		*p = w->next;
	}
	last = --w->refs == 0;
	pthread_mutex_unlock(&fs->npy_lock);
	if (last) {
		pthread_mutex_destroy(&w->lock);
		free(w);
	}
}

int npy_opened(struct ckptfs *fs, fuse_ino_t ino, bool created, bool trunc,
	       fuse_ino_t parent, const char *fname)
{
	struct npy_write *w;

	pthread_mutex_lock(&fs->npy_lock);
	for (w = fs->npy_writes; w && w->ino != ino; w = w->next)
		;
	if (w) {
		w->refs++;
		w->opens++;
	}
	pthread_mutex_unlock(&fs->npy_lock);
	if (w) { /* another open waits too: this one starts it over */
		pthread_mutex_lock(&w->lock);
		w->have = w->hlen = 0;
		w->trunc = w->trunc || trunc;
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return ENOMEM;
	w->ino = ino;
	w->refs = w->opens = 1;
	w->created = created;
	w->trunc = trunc;
	w->parent = parent;
	snprintf(w->fname, sizeof(w->fname), "%s", fname ? fname : "");
	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_lock(&fs->npy_lock);
	w->next = fs->npy_writes;
	fs->npy_writes = w;
	pthread_mutex_unlock(&fs->npy_lock);
	return 0;
}

void npy_changed(struct ckptfs *fs, fuse_ino_t ino)
{
	if (fs->se) /* attributes and pages; ENOENT: nothing cached */
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

/* Removes the file w created, which got no header, if its name still
 * is w->fname (-o tree: through the view, tv_unlink). */
static bool remove_created(struct ckptfs *fs, struct npy_write *w)
{
	char tname[NAME_MAX + 1];
	uint64_t id;

	if (fs->tv)
		w->gone = !tv_unlink(fs, w->parent, w->fname, w->ino);
	else if (npy_strip(w->fname, tname) &&
		 !ckpt_tree_lookup(fs->tree, 0, tname, &id, NULL)) {
		ckpt_tree_forget(fs->tree, id, 1);
		w->gone = id == w->ino &&
			  !ckpt_tree_unlink(fs->tree, tname, NULL);
	}
	return w->gone;
}

/* The kernel is told after w's lock is given back: an open with O_CREAT
 * holds the directory's lock that the name's invalidation takes, and
 * may wait for w's lock (npy_opened). */
void npy_flush(struct ckptfs *fs, fuse_ino_t ino)
{
	struct npy_write *w = get_write(fs, ino);
	bool removed = false;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	if (!w->hlen && !w->gone) {
		if (w->have)
			logmsg(LOG_NOTICE,
			       "-o npy: inode %llu closed with %zu bytes of "
			       "an incomplete .npy header: %s",
			       (unsigned long long)ino, w->have,
			       w->created ? "the new file is removed"
					  : "the parameter is as it was");
		w->have = 0;
		if (w->created)
			removed = remove_created(fs, w);
	}
	pthread_mutex_unlock(&w->lock);
	if (removed && fs->se)
		fuse_lowlevel_notify_inval_entry(fs->se, w->parent, w->fname,
						 strlen(w->fname));
	put_write(fs, w, false);
	npy_changed(fs, ino); /* the size the kernel assumed is wrong */
}

void npy_release(struct ckptfs *fs, fuse_ino_t ino)
{
	struct npy_write *w = get_write(fs, ino);

	if (!w)
		return;
	put_write(fs, w, true);
	put_write(fs, w, false);
}

/* ---- writing ------------------------------------------------------------- */

/* Logs why a write of ino was refused; EINVAL. */
static int refuse(fuse_ino_t ino, const char *why, const char *detail)
{
	logmsg(LOG_NOTICE, "-o npy: write to inode %llu refused: %s%s%s",
	       (unsigned long long)ino, why, detail ? ": " : "",
	       detail ? detail : "");
	return EINVAL;
}

/* Sets ino's dtype and shape from the header ni; if that fails, the
 * dtype is old's again.  0 or an errno. */
static int apply_header(struct ckptfs *fs, fuse_ino_t ino,
			const struct ckpt_npy_info *ni,
			const struct ckpt_entry_info *old)
{
	char shape[CKPT_NPY_MAX_DIMS * 21 + 3];
	const char *dt = ckpt_dtype_name(ni->dtype);
	struct ckpt_error err;

	ckpt_shape_format(ni->dims, ni->ndims, shape, sizeof(shape));
	if (ckpt_tree_set_dtype(fs->tree, ino, dt, strlen(dt), &err))
		return ckpt_errno(&err) == EINVAL
			       ? refuse(ino, "its dtype", err.msg)
			       : ckpt_errno(&err);
	if (ckpt_tree_set_shape(fs->tree, ino, shape, strlen(shape), &err)) {
		ckpt_tree_set_dtype(fs->tree, ino, old->dtype,
				    strlen(old->dtype), NULL);
		return ckpt_errno(&err) == EINVAL
			       ? refuse(ino, "its shape", err.msg)
			       : ckpt_errno(&err);
	}
	return 0;
}

/* Writes size bytes at data offset off into the tensor (nothing for 0). */
static int write_data(struct ckptfs *fs, fuse_ino_t ino, const void *buf,
		      size_t size, uint64_t off)
{
	struct ckpt_error err;

	if (size && ckpt_tree_write(fs->tree, ino, buf, size, off, &err))
		return ckpt_errno(&err);
	return 0;
}

/* A write of a file whose header hdr (hlen bytes) is in effect: bytes
 * inside it must keep it or make another valid header of its length
 * (then applied, and hdr updated); bytes after it are the tensor's. */
static int headed_write(struct ckptfs *fs, fuse_ino_t ino, unsigned char *hdr,
			size_t hlen, const char *buf, size_t size, uint64_t off)
{
	unsigned char nh[PENDING_MAX];
	struct ckpt_entry_info old;
	struct ckpt_npy_info ni;
	struct ckpt_error err;
	size_t n = 0;
	int r;

	if (off < hlen) {
		n = hlen - (size_t)off < size ? hlen - (size_t)off : size;
		memcpy(nh, hdr, hlen);
		memcpy(nh + off, buf, n);
		if (memcmp(nh, hdr, hlen) != 0) {
			if (ckpt_npy_parse(nh, hlen, &ni, &err))
				return refuse(ino, "the new .npy header",
					      err.msg);
			if (ni.header_len != hlen)
				return refuse(ino,
					      "a header rewritten in place "
					      "must keep its length",
					      NULL);
			if (ckpt_tree_stat(fs->tree, ino, &old, NULL))
				return ENOENT;
			r = apply_header(fs, ino, &ni, &old);
			if (r)
				return r;
			memcpy(hdr, nh, hlen);
		}
	}
	return write_data(fs, ino, buf + n, size - n, off + n - hlen);
}

/* How far the header at the start of buf (have bytes) is known: 0 if
 * more bytes are needed to tell its length, (size_t)-1 if they cannot
 * start a .npy file, else its whole length (maybe more than have). */
static size_t header_total(const unsigned char *buf, size_t have)
{
	static const char magic[] = "\x93NUMPY";
	size_t m = have < 6 ? have : 6;

	if (memcmp(buf, magic, m) != 0 ||
	    (have > 6 && (buf[6] < 1 || buf[6] > 3)))
		return (size_t)-1;
	if (have < 10 || (buf[6] > 1 && have < 12))
		return 0;
	if (buf[6] == 1)
		return 10 + (size_t)(buf[8] | buf[9] << 8);
	return 12 + ((size_t)buf[8] | (size_t)buf[9] << 8 |
		     (size_t)buf[10] << 16 | (size_t)buf[11] << 24);
}

/* The header in w's buffer parsed: applies it, empties the data (an
 * O_TRUNC open) and writes the data bytes collected after it. */
static int header_came(struct ckptfs *fs, struct npy_write *w,
		       const struct ckpt_npy_info *ni)
{
	struct ckpt_entry_info old;
	struct ckpt_error err;
	int r;

	if (ckpt_tree_stat(fs->tree, w->ino, &old, NULL))
		return ENOENT;
	r = apply_header(fs, w->ino, ni, &old);
	if (r)
		return r;
	if (w->trunc && ckpt_tree_truncate(fs->tree, w->ino, 0, &err))
		return ckpt_errno(&err);
	w->trunc = false;
	w->hlen = ni->header_len;
	r = write_data(fs, w->ino, w->buf + w->hlen, w->have - w->hlen, 0);
	w->have = w->hlen;
	return r;
}

/* A write of a file waiting for its header (w locked). */
static int waiting_write(struct ckptfs *fs, struct npy_write *w,
			 const char *buf, size_t size, uint64_t off)
{
	struct ckpt_npy_info ni;
	struct ckpt_error err;
	size_t n, total;
	int r;

	if (w->gone)
		return ENOENT;
	if (w->hlen)
		return headed_write(fs, w->ino, w->buf, w->hlen, buf, size,
				    off);
	if (off > w->have)
		return refuse(w->ino,
			      "data written before the .npy header is "
			      "complete (write the header first)",
			      NULL);
	n = PENDING_MAX - (size_t)off < size ? PENDING_MAX - (size_t)off : size;
	memcpy(w->buf + off, buf, n);
	if (off + n > w->have)
		w->have = (size_t)off + n;
	total = header_total(w->buf, w->have);
	if (total == (size_t)-1 || (total && total > PENDING_MAX)) {
		if (ckpt_npy_parse(w->buf, w->have, &ni, &err) == CKPT_OK)
			snprintf(err.msg, sizeof(err.msg),
				 "a header longer "
				 "than numpy reads");
		w->have = 0;
		return refuse(w->ino, "not a .npy file MindSpore can hold",
			      err.msg);
	}
	if (!total || total > w->have)
		return 0; /* collected: the rest of the header is to come */
	if (ckpt_npy_parse(w->buf, total, &ni, &err)) {
		w->have = 0;
		return refuse(w->ino, "not a .npy file MindSpore can hold",
			      err.msg);
	}
	r = header_came(fs, w, &ni);
	if (r) {
		w->have = w->hlen = 0;
		return r;
	}
	return write_data(fs, w->ino, buf + n, size - n, off + n - w->hlen);
}

bool npy_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	       off_t off)
{
	struct ckptfs *fs = fs_of(req);
	struct npy_write *w = get_write(fs, ino);
	struct ckpt_entry_info info;
	char head[CKPT_NPY_HEADER_MAX];
	size_t hlen;
	int r = 0;

	if (w) {
		pthread_mutex_lock(&w->lock);
		r = waiting_write(fs, w, buf, size, (uint64_t)off);
		pthread_mutex_unlock(&w->lock);
		put_write(fs, w, false);
	} else if (!stat_file(fs, ino, &info, &r)) {
	} else if (!npy_viewed(&info)) {
		return false;
	} else if (!npy_header(&info, head, &hlen)) {
		r = EIO;
	} else {
		r = headed_write(fs, ino, (unsigned char *)head, hlen, buf,
				 size, (uint64_t)off);
	}
	if (r)
		fuse_reply_err(req, r);
	else
		fuse_reply_write(req, size);
	return true;
}

bool npy_truncate(fuse_req_t req, fuse_ino_t ino, uint64_t size, int *err)
{
	struct ckptfs *fs = fs_of(req);
	struct npy_write *w = get_write(fs, ino);
	struct ckpt_entry_info info;
	struct ckpt_error e;
	size_t hlen = 0;

	*err = 0;
	if (w) {
		pthread_mutex_lock(&w->lock);
		if (size == 0) /* wait for a header again */
			w->have = w->hlen = 0, w->trunc = true;
		else if (w->hlen && size >= w->hlen)
			hlen = w->hlen;
		else if (!w->hlen && size <= w->have)
			w->have = (size_t)size;
		else
			*err = refuse(ino, "a size inside the .npy header",
				      NULL);
		pthread_mutex_unlock(&w->lock);
		put_write(fs, w, false);
		if (*err || !hlen)
			return true;
	} else {
		if (!stat_file(fs, ino, &info, err))
			return true;
		if (!npy_viewed(&info))
			return false;
		if (!npy_header(&info, NULL, &hlen))
			hlen = 0;
		if (size && size < hlen) {
			*err = refuse(ino, "a size inside the .npy header",
				      NULL);
			return true;
		}
	}
	if (ckpt_tree_truncate(fs->tree, ino, size ? size - hlen : 0, &e))
		*err = ckpt_errno(&e);
	return true;
}
