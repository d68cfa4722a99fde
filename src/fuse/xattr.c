/*
 * xattr.c - the extended attributes of ckptfs (see ckptfs.h).
 *
 * Parameter files have user.dtype and user.shape, always both: reading
 * them describes the tensor, setting them changes the tree (malformed
 * values: EINVAL, logged), removing user.shape makes the shape inferred
 * again.  Map parameters and their tensors have none.  The root answers
 * the control values of 'ckpt umount' (ckpt_common.h), which it does not
 * list, and takes user.ckptfs.force; the others of user.ckptfs.* cannot
 * be set or removed (EPERM); control.c owns what they mean.  The root's
 * user.metadata.* are the checkpoint's metadata (metaxattr.c).
 * Other namespaces (security.*, system.*, trusted.*) are EOPNOTSUPP.
 *
 * Locking: none of its own.  Never commits.
 */
#include <errno.h>
#include <sys/xattr.h>
#include <syslog.h>

#include "ckptfs.h"

static const char xattr_list[] = "user.dtype\0user.shape";

/* Replies to getxattr/listxattr with the len bytes at v (size 0: the
 * length only; too small: ERANGE). */
static void reply_value(fuse_req_t req, const char *v, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

/* The control values of the root for 'ckpt umount' (ckpt_common.h). */
static void root_getxattr(fuse_req_t req, const char *name, size_t size)
{
	struct ckptfs *fs = fs_of(req);
	char buf[sizeof(fs->last_error)];

	if (ctl_value(fs, name, buf, sizeof(buf)))
		reply_value(req, buf, strlen(buf), size);
	else
		fuse_reply_err(req, ENODATA);
}

/* user.dtype and user.shape of files; the root's control values. */
void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID && meta_key_of(name)) {
		meta_getxattr(req, meta_key_of(name), size);
		return;
	}
	if (ino == FUSE_ROOT_ID) {
		root_getxattr(req, name, size);
		return;
	}
	if (strncmp(name, "user.", 5) != 0) {
		/* no security.*, system.* (ACLs), trusted.*: saying so stops
		 * ls -l from asking again for every file */
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (!ino_get(req, ino, &info))
		return;
	if (info.kind != CKPT_ENTRY_FILE)
		fuse_reply_err(req, ENODATA);
	else if (strcmp(name, "user.dtype") == 0)
		reply_value(req, info.dtype, strlen(info.dtype), size);
	else if (strcmp(name, "user.shape") == 0)
		reply_value(req, info.shape, strlen(info.shape), size);
	else
		fuse_reply_err(req, ENODATA);
}

/* Files list user.dtype and user.shape; the root its metadata. */
void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ckpt_entry_info info;

	if (ino == FUSE_ROOT_ID) {
		meta_listxattr(req, size);
		return;
	}
	if (!ino_get(req, ino, &info))
		return;
	reply_value(req, xattr_list,
		    info.kind == CKPT_ENTRY_FILE ? sizeof(xattr_list) : 0,
		    size);
}

/* True if XATTR_CREATE is asked for user.dtype or user.shape of the
 * parameter file ino, which always has both: EEXIST. */
static bool exists_already(struct ckptfs *fs, fuse_ino_t ino, int flags)
{
	struct ckpt_entry_info info;

	return (flags & XATTR_CREATE) && ino_info(fs, ino, &info) &&
	       info.kind == CKPT_ENTRY_FILE;
}

/* True if name is one of the root's control values (user.ckptfs.*). */
static bool control_name(fuse_ino_t ino, const char *name)
{
	return ino == FUSE_ROOT_ID && strncmp(name, "user.ckptfs.", 12) == 0;
}

/* Sets user.dtype or user.shape (XATTR_CREATE: EEXIST, they always
 * exist; malformed: EINVAL, logged), or user.ckptfs.force on the root;
 * the root's other control values are read-only (EPERM). */
void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	struct ckptfs *fs = fs_of(req);
	struct ckpt_error err;
	bool dtype = strcmp(name, "user.dtype") == 0;
	char text[sizeof(err.msg) + 200];
	ckpt_err r;

	if (ino == FUSE_ROOT_ID && strcmp(name, CKPT_XATTR_FORCE) == 0) {
		fuse_reply_err(req, ctl_force(req));
		return;
	}
	if (ino == FUSE_ROOT_ID && meta_key_of(name)) {
		meta_setxattr(req, meta_key_of(name), value, size, flags);
		return;
	}
	if (control_name(ino, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!dtype && strcmp(name, "user.shape") != 0) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (exists_already(fs, ino, flags)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	r = dtype ? ckpt_tree_set_dtype(fs->tree, ino, value, size, &err)
		  : ckpt_tree_set_shape(fs->tree, ino, value, size, &err);
	if (r == CKPT_ERR_INVAL)
		logmsg(LOG_NOTICE, "setxattr %s: %s", name,
		       ckpt_error_text(&err, CKPT_FRONT_MOUNT, text,
				       sizeof(text)));
	if (r) {
		reply_fail(req, &err);
		return;
	}
	if (fs->npy) /* -o npy: the header changed */
		npy_changed(fs, ino);
	fuse_reply_err(req, 0);
}

/* Removing user.shape makes it inferred again; user.dtype and the root's
 * control values cannot go. */
void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct ckpt_error err;

	if (control_name(ino, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (ino == FUSE_ROOT_ID && meta_key_of(name)) {
		meta_removexattr(req, meta_key_of(name));
		return;
	}
	if (strcmp(name, "user.shape") == 0) { /* back to inferred (1-D) */
		if (ckpt_tree_clear_shape(fs_of(req)->tree, ino, &err)) {
			reply_fail(req, &err);
			return;
		}
		if (fs_of(req)->npy)
			npy_changed(fs_of(req), ino);
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, strcmp(name, "user.dtype") == 0 ? EPERM : ENODATA);
}
