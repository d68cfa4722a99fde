/*
 * inode.c - inode numbers and attributes of ckptfs (see ckptfs.h).
 *
 * The id scheme.  Inode numbers are the tree's entry ids, unchanged: the
 * root is FUSE_ROOT_ID (1, directory 0 in the tree), a root entry's id is
 * a multiple of CKPT_TREE_ID_STEP (ckpt_tree_id_is_entry), and the three
 * tensors of a map entry are the ids right after it.  The tree never
 * hands out 0 or 1, which the assertion below holds it to.  Ids stay
 * valid across renames and commits, and an id is reused only after its
 * entry was deleted and the kernel forgot every lookup of it.
 *
 * Lookup counts live in the tree's entries (ckpt_tree_lookup, _create and
 * _list with count add one; ckpt_tree_forget takes them back).  This file
 * only makes sure that every count the kernel does not get back in a
 * reply is given back at once (make_entry, reply_entry).
 *
 * With -o tree the root and the directories of the view are treefs.c's
 * (tv_dir_ino): lookups in them, their attributes and their counts.
 *
 * Attributes show the checkpoint's owner, group and permission bits:
 * files mode & 0666 (& 0444 when read-only), directories add x where r
 * is set; only the root and plain parameter files can be writable.
 *
 * Locking: none of its own (the tree locks itself).  Never changes the
 * tree beyond lookup counts; never replies twice to a request.
 */
#include <errno.h>
#include <time.h>

#include "ckptfs.h"

_Static_assert(FUSE_ROOT_ID % CKPT_TREE_ID_STEP != 0,
	       "the root's inode must never be a tree id");

struct ckptfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

void reply_fail(fuse_req_t req, const struct ckpt_error *err)
{
	fuse_reply_err(req, ckpt_errno(err));
}

uint64_t tree_dir(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? 0 : ino;
}

bool name_fits(fuse_req_t req, const char *name)
{
	if (name_listable(name))
		return true;
	fuse_reply_err(req, ENAMETOOLONG);
	return false;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- attributes -------------------------------------------------------- */

void get_shown(struct ckptfs *fs, struct shown *s)
{
	mode_t mode;

	ckpt_tree_owner(fs->tree, &mode, &s->uid, &s->gid);
	s->file = mode & (ckpt_tree_read_only(fs->tree) ? 0444 : 0666);
	s->npy = fs->npy;
}

/* A directory's mode for file mode m: x wherever r is set. */
static mode_t dir_mode(mode_t m)
{
	return m | ((m & 0444) >> 2);
}

/* Only the root and plain parameter files can be writable: map
 * parameters (directories) and their tensors (ids that are not
 * ckpt_tree_id_is_entry) are read-only. */
void fill_attr(const struct shown *s, fuse_ino_t ino,
	       const struct ckpt_entry_info *info, struct stat *st)
{
	bool file = info->kind == CKPT_ENTRY_FILE;
	bool writable = ino == FUSE_ROOT_ID ||
			(file && ckpt_tree_id_is_entry(ino));
	mode_t m = writable ? s->file : s->file & 0444;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	st->st_mode = file ? S_IFREG | m : S_IFDIR | dir_mode(m);
	st->st_nlink = file ? 1 : 2;
	st->st_mtim.tv_sec = (time_t)(info->mtime_ns / 1000000000u);
	st->st_mtim.tv_nsec = (long)(info->mtime_ns % 1000000000u);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
	if (file) {
		size_t hl = 0;
		if (s->npy && npy_viewed(info) && !npy_header(info, NULL, &hl))
			hl = 0;
		st->st_size = (off_t)(info->size + hl);
		st->st_blocks = (blkcnt_t)((info->size + 511) / 512);
	}
}

bool ino_info(struct ckptfs *fs, fuse_ino_t ino, struct ckpt_entry_info *info)
{
	struct stat st;

	if (fs->tv && tv_dir_ino(ino) && !tv_stat(fs, ino, &st))
		return false;
	if (ino != FUSE_ROOT_ID && !(fs->tv && tv_dir_ino(ino)))
		return ckpt_tree_stat(fs->tree, ino, info, NULL) == CKPT_OK;
	memset(info, 0, sizeof(*info));
	info->kind = CKPT_ENTRY_DIR;
	info->mtime_ns = fs->mount_ns;
	return true;
}

/* Stats ino into st; false if it does not exist. */
static bool stat_ino(struct ckptfs *fs, fuse_ino_t ino, struct stat *st)
{
	struct ckpt_entry_info info;
	struct shown s;

	if (fs->tv && tv_dir_ino(ino))
		return tv_stat(fs, ino, st);
	if (!ino_info(fs, ino, &info))
		return false;
	get_shown(fs, &s);
	fill_attr(&s, ino, &info, st);
	return true;
}

bool ino_get(fuse_req_t req, fuse_ino_t ino, struct ckpt_entry_info *info)
{
	if (ino_info(fs_of(req), ino, info))
		return true;
	fuse_reply_err(req, ENOENT);
	return false;
}

bool ino_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st)
{
	if (stat_ino(fs_of(req), ino, st))
		return true;
	fuse_reply_err(req, ENOENT);
	return false;
}

/* ---- entries and lookup counts ----------------------------------------- */

bool make_entry(fuse_req_t req, uint64_t id, struct fuse_entry_param *e)
{
	struct ckptfs *fs = fs_of(req);

	memset(e, 0, sizeof(*e));
	if (!stat_ino(fs, id, &e->attr)) {
		ckpt_tree_forget(fs->tree, id, 1);
		fuse_reply_err(req, ENOENT);
		return false;
	}
	e->ino = id;
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
	return true;
}

void reply_entry(fuse_req_t req, uint64_t id)
{
	struct fuse_entry_param e;

	if (make_entry(req, id, &e) && fuse_reply_entry(req, &e) != 0)
		ckpt_tree_forget(fs_of(req)->tree, id, 1);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ckptfs *fs = fs_of(req);
	uint64_t id;

	if (fs->tv && tv_dir_ino(parent)) {
		tv_lookup(req, parent, name);
		return;
	}
	if (fs->npy ? !npy_lookup(fs, tree_dir(parent), name, &id)
		    : ckpt_tree_lookup(fs->tree, tree_dir(parent), name, &id,
				       NULL) != CKPT_OK)
		fuse_reply_err(req, ENOENT);
	else
		reply_entry(req, id);
}

/* Gives back n lookups of ino: a directory of -o tree or a tree id. */
static void forget_ino(struct ckptfs *fs, fuse_ino_t ino, uint64_t n)
{
	if (fs->tv && tv_dir_ino(ino))
		tv_forget(fs, ino, n);
	else
		ckpt_tree_forget(fs->tree, ino, n);
}

/* The kernel forgets nlookup lookups of ino. */
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_ino(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

/* op_forget for a batch. */
void op_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_ino(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* Attributes of ino (ENOENT once it is gone). */
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	(void)fi;
	if (ino_attr(req, ino, &st))
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}
