/*
 * metaxattr.c - the checkpoint's metadata (safetensors __metadata__) as
 * extended attributes of the mount's root: user.metadata.KEY for every
 * key, listed by listxattr (getfattr -d shows them), set by setxattr
 * (a new key comes last), removed by removexattr.  Edits make the tree
 * dirty like any other; the commit writes them.
 *
 * What the tree refuses: crc_num and the Int4 markers (EPERM), a value
 * that is not UTF-8 (EINVAL), any key on a ckpt mount, whose format has
 * no metadata (ENOTSUP).  A key that is not there is ENODATA, as for any
 * missing attribute.  Locking: none of its own (the tree locks itself).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <syslog.h>

#include "ckptfs.h"

#define PREFIX "user.metadata."
#define PREFIX_LEN (sizeof(PREFIX) - 1)

const char *meta_key_of(const char *name)
{
	return strncmp(name, PREFIX, PREFIX_LEN) == 0 ? name + PREFIX_LEN
						      : NULL;
}

/* Replies to a metadata request that failed: ENODATA for a missing key,
 * else the library's errno; refusals are logged with their reason. */
static void reply_meta_fail(fuse_req_t req, const char *op,
			    const struct ckpt_error *err)
{
	char text[sizeof(err->msg) + 200];

	if (err->code == CKPT_ERR_NOTFOUND) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (err->code == CKPT_ERR_PERM || err->code == CKPT_ERR_INVAL ||
	    err->code == CKPT_ERR_UNSUPPORTED)
		logmsg(LOG_NOTICE, "%s: %s", op,
		       ckpt_error_text(err, CKPT_FRONT_MOUNT, text,
				       sizeof(text)));
	reply_fail(req, err);
}

void meta_getxattr(fuse_req_t req, const char *key, size_t size)
{
	struct ckpt_error err;
	char *value;
	size_t len;

	if (ckpt_tree_meta_get(fs_of(req)->tree, key, &value, &err)) {
		reply_meta_fail(req, "getxattr", &err);
		return;
	}
	len = strlen(value);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
	free(value);
}

/* The names being listed. */
struct names {
	char *buf;
	size_t len, cap;
	bool nomem;
};

/* ckpt_tree_meta_list fn: appends "user.metadata.KEY\0". */
static bool add_name(void *ctx, const char *key, const char *value)
{
	struct names *n = ctx;
	size_t need = PREFIX_LEN + strlen(key) + 1;

	(void)value;
	if (n->len + need > n->cap) {
		size_t cap = (n->cap + need) * 2;
		char *b = realloc(n->buf, cap);
		if (!b) {
			n->nomem = true;
			return false;
		}
		n->buf = b;
		n->cap = cap;
	}
	memcpy(n->buf + n->len, PREFIX, PREFIX_LEN);
	memcpy(n->buf + n->len + PREFIX_LEN, key, need - PREFIX_LEN);
	n->len += need;
	return true;
}

void meta_listxattr(fuse_req_t req, size_t size)
{
	struct names n = {0};

	ckpt_tree_meta_list(fs_of(req)->tree, add_name, &n);
	if (n.nomem)
		fuse_reply_err(req, ENOMEM);
	else if (size == 0)
		fuse_reply_xattr(req, n.len);
	else if (n.len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, n.buf, n.len);
	free(n.buf);
}

/* True if key is there now (for XATTR_CREATE and XATTR_REPLACE). */
static bool has_key(struct ckpt_tree *t, const char *key)
{
	char *value;
	bool there = ckpt_tree_meta_get(t, key, &value, NULL) == CKPT_OK;

	free(value);
	return there;
}

void meta_setxattr(fuse_req_t req, const char *key, const char *value,
		   size_t size, int flags)
{
	struct ckpt_tree *t = fs_of(req)->tree;
	struct ckpt_error err;

	if ((flags & XATTR_CREATE) && has_key(t, key)) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if ((flags & XATTR_REPLACE) && !has_key(t, key)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (ckpt_tree_meta_set(t, key, value, size, &err))
		reply_meta_fail(req, "setxattr", &err);
	else
		fuse_reply_err(req, 0);
}

void meta_removexattr(fuse_req_t req, const char *key)
{
	struct ckpt_error err;

	if (ckpt_tree_meta_remove(fs_of(req)->tree, key, &err))
		reply_meta_fail(req, "removexattr", &err);
	else
		fuse_reply_err(req, 0);
}
