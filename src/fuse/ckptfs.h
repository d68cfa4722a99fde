/*
 * ckptfs.h - what the parts of the ckptfs daemon share.
 *
 *   main.c     command line, usage, the open policy, start-up, exit status
 *   session.c  the FUSE session: signals, the loop, unmounting
 *   inode.c    inode numbers, attributes, lookup and forget
 *   dir.c      readdir and readdirplus
 *   ops.c      the requests on files (open, read, write, create, setattr,
 *              statfs) and the table of operations
 *   nameops.c  the requests on names (mknod, unlink, rename, the refused
 *              mkdir, link and symlink outside -o tree)
 *   treefs.c   -o tree: the prefixes of dotted names as directories;
 *              with treefs_ino.c (the view, directory inodes) and
 *              treefs_edit.c (changes of names), sharing treefs.h
 *   xattr.c    user.dtype, user.shape and the root's control values
 *   metaxattr.c the metadata (safetensors) as user.metadata.* of the root
 *   control.c  commits (fsync, at unmount, recovery), who may commit, and
 *              what 'ckpt umount' asks the mount (ckpt_common.h)
 *   npyfs.c    -o npy: parameters as NAME.npy files (docs/npy-mount.md),
 *              their names in npyname.c
 *   fslog.c    messages: stderr, syslog, -o log=PATH
 *   helper.c   started by mount(8): the generic mount options, detection
 *
 * Everything about the format and about editing lives in libckpt; the
 * tree locks itself and is safe to call from any worker thread.
 * fs->lock guards only the fields marked below, is never held across a
 * call into the tree, a reply or a log message, and nests nothing.
 */
#ifndef CKPTFS_H
#define CKPTFS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_common.h"
#include "ckpt_tree.h"

#define ERR_MSG_MAX sizeof(((struct ckpt_error *)0)->msg)

struct tview;

struct ckptfs {
	struct ckpt_tree *tree;
	struct tview *tv;	   /* -o tree: the view (treefs.c), else NULL */
	const char *mountpoint;	   /* absolute (libfuse resolves it) */
	uint64_t mount_ns;	   /* mtime of the root directory */
	unsigned max_read;	   /* -o max_read=N, 0 if not given */
	bool direct_writes;	   /* the kernel invalidates pages on direct
				   * writes */
	bool npy;		   /* -o npy: files are NAME.npy (npyfs.c) */
	struct fuse_session *se;   /* for notifications; set by serve */
	pthread_mutex_t npy_lock;  /* npy_writes (npyfs.c) */
	atomic_bool readahead_set; /* raise_readahead has run */
	struct npy_write *npy_writes;	    /* files waiting for their header */
	struct ckpt_status_server *status;  /* NULL: no status channel */
	pthread_mutex_t lock;		    /* the fields below */
	char last_error[ERR_MSG_MAX + 512]; /* of the last commit, "" if ok */
	bool changed;		      /* it failed: the checkpoint changed */
	char source_msg[ERR_MSG_MAX]; /* the last source problem logged */
	/* Set by the unmount commit (op_destroy, after the last request)
	 * when it failed, read by main once the session is gone: the
	 * malloc'd message for 'ckpt umount' (NULL if out of memory). */
	bool final_failed;
	char *final_error;
	/* The commit in progress for user.ckptfs.progress (control.c): bytes
	 * written and expected, 0 0 when none runs; atomics, no lock. */
	_Atomic uint64_t progress_done, progress_total;
	atomic_uint commits; /* commits running */
};

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

/* The FUSE operations (ops.c); userdata is the struct ckptfs. */
extern const struct fuse_lowlevel_ops ckptfs_ops;

/* ---- inodes and attributes (inode.c) ----------------------------------- */

/* The mount of the request. */
struct ckptfs *fs_of(fuse_req_t req);

/* Replies with the errno of err. */
void reply_fail(fuse_req_t req, const struct ckpt_error *err);

/* The tree's directory id of directory inode ino (the root is 0). */
uint64_t tree_dir(fuse_ino_t ino);

/* True if the kernel can show name: at most NAME_MAX bytes (longer names
 * exist in checkpoints; 'ckpt ls' shows them). */
static inline bool name_listable(const char *name)
{
	return strlen(name) <= NAME_MAX;
}

/* For a new name: true if name_listable, else replies ENAMETOOLONG. */
bool name_fits(fuse_req_t req, const char *name);

/* What every entry shows of the checkpoint: owner, group, the mode of a
 * writable parameter file (mode & 0666, & 0444 if the tree is read-only). */
struct shown {
	uid_t uid;
	gid_t gid;
	mode_t file;
	bool npy; /* -o npy: the sizes of the .npy view */
};

/* What the entries show now (the checkpoint's owner and mode). */
void get_shown(struct ckptfs *fs, struct shown *s);

/* Fills st for ino described by info, as s shows it. */
void fill_attr(const struct shown *s, fuse_ino_t ino,
	       const struct ckpt_entry_info *info, struct stat *st);

/* Describes ino (the root too); false if it does not exist. */
bool ino_info(struct ckptfs *fs, fuse_ino_t ino, struct ckpt_entry_info *info);

/* The get-or-reply helpers: like ino_info (ino_attr: the attributes
 * too), but if ino is gone they reply ENOENT and return false, so that
 * an op starts "if (!ino_get(req, ino, &info)) return;". */
bool ino_get(fuse_req_t req, fuse_ino_t ino, struct ckpt_entry_info *info);
bool ino_attr(fuse_req_t req, fuse_ino_t ino, struct stat *st);

/* Fills e for id, whose lookup the tree has counted; false (ENOENT
 * replied, the count given back) if id is gone. */
bool make_entry(fuse_req_t req, uint64_t id, struct fuse_entry_param *e);

/* Replies with the entry id (lookup counted); a failed reply gives the
 * count back. */
void reply_entry(fuse_req_t req, uint64_t id);

/* The wall clock in ns since the epoch (the root's mtime). */
uint64_t now_ns(void);

/* The requests on names: the libfuse contracts. */
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void op_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets);
void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- directories (dir.c) ----------------------------------------------- */

/* readdir and readdirplus (each entry of readdirplus counts a lookup):
 * ".", "..", then the tree's entries; ENOTDIR for a file. */
void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);

/* opendir and releasedir: a handle only for the directories of -o tree
 * (fi->fh, 0 for the others). */
void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- -o tree (treefs*.c) ----------------------------------------------- *
 * With fs->tv, the root and the directories of the view (inodes for which
 * tv_dir_ino holds) are served here; parameter files keep their tree ids
 * and map parameters their listings, as without -o tree. */

/* Builds the view of fs->tree into fs->tv; 0, or -1 after a message. */
int tv_start(struct ckptfs *fs);

/* Frees fs->tv (if any). */
void tv_free(struct ckptfs *fs);

/* True if ino is the root or a directory of the view. */
bool tv_dir_ino(fuse_ino_t ino);

/* Attributes of directory ino; false if it is gone. */
bool tv_stat(struct ckptfs *fs, fuse_ino_t ino, struct stat *st);

/* The kernel forgets n lookups of directory ino. */
void tv_forget(struct ckptfs *fs, fuse_ino_t ino, uint64_t n);

/* lookup in, opendir, readdir(plus) and releasedir of directory parent,
 * and mkdir in it: the libfuse contracts (they reply). */
void tv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void tv_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tv_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi, bool plus);
void tv_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tv_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name);

/* The changes of names in directories of the view, replied to by the
 * caller: 0 or the errno.  tv_create makes the parameter (one lookup of
 * *id counted); tv_unlink deletes it (only if it is id, unless id is 0);
 * tv_rename renames a file or moves a directory (a prefix: every
 * parameter under it, ckpt_tree_rename_prefix).  With -o npy too, the
 * names of files are those of npy_shown_name (NAME.npy). */
int tv_create(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      uint64_t *id);
int tv_unlink(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      uint64_t id);
int tv_rmdir(struct ckptfs *fs, fuse_ino_t parent, const char *name);
int tv_rename(struct ckptfs *fs, fuse_ino_t parent, const char *name,
	      fuse_ino_t newparent, const char *newname, bool noreplace);

/* ---- requests on names (nameops.c) ------------------------------------- */

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	      dev_t rdev);
void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		const char *name);
void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
	     const char *newname);
void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags);

/* ---- extended attributes (xattr.c) ------------------------------------- */

/* user.dtype and user.shape of parameter files (setting them changes the
 * tree; removing user.shape makes it inferred again) and the root's
 * control values (control.c). */
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags);
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- -o npy (npyfs.c, npyname.c) ---------------------------------------
 * Every file that is not a scratch file is shown as NAME.npy: the .npy
 * header of its dtype and shape (ckpt_npy.h), then its bytes; NAME is
 * the tree's name, or with -o tree a leaf's file name.  The functions
 * below are called only with fs->npy set. */

/* True if info (a file) is shown through the .npy view: not a scratch
 * file. */
static inline bool npy_viewed(const struct ckpt_entry_info *info)
{
	return info->kind == CKPT_ENTRY_FILE && !info->scratch;
}

/* The name shown for the tree's entry name described by info, into buf
 * (NAME_MAX + 1 bytes): name + ".npy" for a viewed file, else name.
 * NULL if the kernel cannot show it, or the file has no .npy form (more
 * than 32 dims: logged once per name). */
const char *npy_shown_name(const char *name, const struct ckpt_entry_info *info,
			   char *buf);

/* True if npy_shown_name shows the entry name (info) as fname. */
bool npy_shows(const char *name, const struct ckpt_entry_info *info,
	       const char *fname);

/* fname without its ".npy" into buf (NAME_MAX + 1 bytes), or NULL if it
 * does not end in ".npy" after at least one byte. */
const char *npy_strip(const char *fname, char *buf);

/* Finds the entry shown as fname in directory dir (0: the root, or a
 * map) and counts a lookup of it (as ckpt_tree_lookup); false if none. */
bool npy_lookup(struct ckptfs *fs, uint64_t dir, const char *fname,
		uint64_t *id);

/* The tree's name for a shown name fname in the root, looked up (scratch
 * files and maps under their own names, files without ".npy"), into buf
 * (NAME_MAX + 1); NULL if fname shows no entry. */
const char *npy_lookup_name(struct ckptfs *fs, const char *fname, char *buf);

/* Which tree's name a new file shown as fname gets (create, a rename's
 * target): raw, the name it has taken as it is, if that is a scratch
 * name, else stripped, the name of the file NAME.npy is (NULL if fname
 * is not one), if that is no scratch name; else NULL (logged).  Either
 * may be NULL (no name). */
const char *npy_new_pick(struct ckptfs *fs, const char *fname, const char *raw,
			 const char *stripped);

/* npy_new_pick for fname in the root, into buf (NAME_MAX + 1); NULL
 * after replying EINVAL. */
const char *npy_new_name(fuse_req_t req, const char *fname, char *buf);

/* A rename of name (from_raw: a scratch file or map, shown as it is) to
 * newname (to_raw: a scratch name): EINVAL (logged) if a raw scratch
 * file would become a parameter (its bytes would be the data behind a
 * header), else 0. */
int npy_rename_check(const char *name, bool from_raw, const char *newname,
		     bool to_raw);

/* The length of the .npy header shown for info (a viewed file), into
 * *len, and its bytes into buf (CKPT_NPY_HEADER_MAX bytes) unless NULL;
 * false if it has no .npy form. */
bool npy_header(const struct ckpt_entry_info *info, char *buf, size_t *len);

/* The requests of -o npy.  A scratch file is served raw: then they
 * return false and do nothing.  npy_read_split splits a read of *size
 * bytes at *off into the header's bytes (into head, CKPT_NPY_HEADER_MAX
 * bytes; their count in *hlen) and the tensor's range (*off, *size).
 * npy_write replies.  npy_truncate sets the file's size (the errno, 0 if
 * it worked, in *err).  npy_opened notes a file that waits for its
 * header (created as fname in directory parent, or opened with O_TRUNC,
 * whose data is emptied only when a valid header came); npy_flush and
 * npy_release finish it. */
bool npy_read_split(struct ckptfs *fs, fuse_ino_t ino, uint64_t *off,
		    size_t *size, char *head, size_t *hlen, int *err);
bool npy_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	       off_t off);
bool npy_truncate(fuse_req_t req, fuse_ino_t ino, uint64_t size, int *err);
int npy_opened(struct ckptfs *fs, fuse_ino_t ino, bool created, bool trunc,
	       fuse_ino_t parent, const char *fname);
void npy_flush(struct ckptfs *fs, fuse_ino_t ino);
void npy_release(struct ckptfs *fs, fuse_ino_t ino);

/* After a change of ino's dtype or shape: the kernel forgets its cached
 * size and pages (the header changed). */
void npy_changed(struct ckptfs *fs, fuse_ino_t ino);

/* ---- metadata on the root (metaxattr.c) -------------------------------- */

/* The key of a user.metadata.KEY attribute name, or NULL for another. */
const char *meta_key_of(const char *name);

/* get, list, set, remove the root's user.metadata.KEY (the list holds
 * only those names). */
void meta_getxattr(fuse_req_t req, const char *key, size_t size);
void meta_listxattr(fuse_req_t req, size_t size);
void meta_setxattr(fuse_req_t req, const char *key, const char *value,
		   size_t size, int flags);
void meta_removexattr(fuse_req_t req, const char *key);

/* ---- commits and control (control.c) ----------------------------------- */

#define FH_WRITABLE 1 /* fi->fh: the file was opened for writing */
#define FH_NPY 2      /* fi->fh: -o npy, the open waits for a header */

/* fsync of a file or a directory commits the whole tree, unless ino is a
 * scratch file or the tree is read-only (nothing to do), or the caller
 * may not write the checkpoint (EACCES). */
void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi);
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi);

/* Commits at unmount; a failure saves a recovery checkpoint and is
 * recorded in fs->final_failed and fs->final_error. */
void op_destroy(void *userdata);

/* The value of the root's control xattr name (CKPT_XATTR_PID, _STATUS,
 * _ERROR, _CHANGED, _PROGRESS) written into buf; false if name is none of
 * them.  Never waits for a commit. */
bool ctl_value(struct ckptfs *fs, const char *name, char *buf, size_t size);

/* The tree's progress callback (ctx: the struct ckptfs): publishes done
 * of total for user.ckptfs.progress.  Any thread, tree locked; atomics
 * only. */
void ctl_progress(void *ctx, uint64_t done, uint64_t total);

/* user.ckptfs.force on the root: makes the next commit replace whatever
 * file the path holds now.  0, or the errno to reply (EROFS, EACCES). */
int ctl_force(fuse_req_t req);

/* ---- messages (fslog.c) ------------------------------------------------ */

#define LOG_LINE_MAX 4096

/* Opens the -o log= file (append, create 0600, no symbolic link, regular
 * files only).  0, or -1 after a message on stderr. */
int log_open_file(const char *path);

/* After fuse_daemonize: stderr keeps getting messages only with -f. */
void log_detach(bool foreground);

/* Closes the log file. */
void log_close(void);

/* A message of the running daemon (syslog priority prio): to stderr while
 * attached, to syslog, to the log file. */
void logmsg(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* A start-up message for the user who mounts: stderr and the log file. */
void say(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the session (session.c) ------------------------------------------- */

/* Mounts fs at opts->mountpoint, daemonizes without -f, starts the status
 * socket, serves until unmounted or signalled, unmounts and commits
 * (op_destroy).  The exit status: 0 if all of that worked. */
int serve(struct ckptfs *fs, struct fuse_args *args,
	  const struct fuse_cmdline_opts *opts);

/* ---- started by mount(8) (helper.c) ------------------------------------ */

/* True for a generic mount option that ckptfs accepts and ignores, on
 * its command line as from mount(8): defaults, auto, noauto, user,
 * nouser, users, owner, group, nofail, _netdev, loud, silent, x-*, X-*,
 * comment=, and the kernel's atime, iversion, mand and symfollow flags
 * that libfuse does not know.  libfuse maps the other kernel flags. */
bool mount_option_ignored(const char *opt);

/* True if mount.fuse3 started this process with argc/argv (the original
 * command line): its parent is the shell mount.fuse3 execs, running
 * exactly the command mount.fuse3 builds for argv, or mount(8) itself
 * (a shell that execs the command).  Reads the parent's /proc cmdline;
 * false if it cannot. */
bool started_by_mount_helper(int argc, char *const argv[]);

#endif /* CKPTFS_H */
