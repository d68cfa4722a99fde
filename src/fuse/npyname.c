/*
 * npyname.c - -o npy: the names of the .npy view (see docs/npy-mount.md
 * and ckptfs.h; the files' contents are npyfs.c's).
 *
 * The one mapping is npy_shown_name (tree -> kernel) and its inverse,
 * npy_lookup and npy_new_name: a file that is not a scratch
 * file is NAME.npy; scratch files (editors' temporaries) and map
 * parameters (directories) keep their names; map tensors are keys.npy,
 * values.npy, status.npy.  A file of more than 32 dims has no .npy form
 * and is not shown (logged once per mount).  With -o tree, NAME is a
 * leaf's file name (treefs.c): the tree view maps its leaves through
 * the same rules (npy_strip, npy_shows, npy_new_pick, npy_rename_check),
 * and everything but names is npyfs.c's code in both views.
 *
 * Locking: none of its own (the tree locks itself).
 */
#include <errno.h>
#include <stdatomic.h>
#include <syslog.h>

#include "ckpt_npy.h"
#include "ckptfs.h"

#define SUFFIX ".npy"
#define SUFFIX_LEN 4

/* True if fname ends in ".npy" after at least one byte. */
static bool has_suffix(const char *fname, size_t len)
{
	return len > SUFFIX_LEN && !strcmp(fname + len - SUFFIX_LEN, SUFFIX);
}

/* Logs, once per mount, a file that has no .npy form. */
static void note_no_form(const char *name, const struct ckpt_entry_info *info)
{
	static atomic_flag logged = ATOMIC_FLAG_INIT;

	if (!atomic_flag_test_and_set(&logged))
		logmsg(LOG_NOTICE,
		       "-o npy: '%s' (%s %s) has no .npy form (numpy arrays "
		       "have at most %d dims and 2^63 - 1 bytes): not shown; "
		       "mount without -o npy to reach it (further ones are "
		       "not logged)",
		       name, info->dtype, info->shape, CKPT_NPY_MAX_DIMS);
}

const char *npy_shown_name(const char *name, const struct ckpt_entry_info *info,
			   char *buf)
{
	size_t len = strlen(name), hl;

	if (!npy_viewed(info))
		return name_listable(name) ? name : NULL;
	if (!npy_header(info, NULL, &hl)) {
		note_no_form(name, info);
		return NULL;
	}
	if (len + SUFFIX_LEN > NAME_MAX)
		return NULL;
	memcpy(buf, name, len);
	memcpy(buf + len, SUFFIX, SUFFIX_LEN + 1);
	return buf;
}

bool npy_shows(const char *name, const struct ckpt_entry_info *info,
	       const char *fname)
{
	char buf[NAME_MAX + 1];
	const char *shown = npy_shown_name(name, info, buf);

	return shown && !strcmp(shown, fname);
}

const char *npy_strip(const char *fname, char *buf)
{
	size_t len = strlen(fname);

	if (!has_suffix(fname, len))
		return NULL;
	memcpy(buf, fname, len - SUFFIX_LEN);
	buf[len - SUFFIX_LEN] = '\0';
	return buf;
}

/* Looks up the tree's name tname in dir and checks that the entry found
 * is shown as fname; its id into *id (a lookup counted) if so. */
static bool lookup_as(struct ckptfs *fs, uint64_t dir, const char *tname,
		      const char *fname, uint64_t *id)
{
	struct ckpt_entry_info info;

	if (ckpt_tree_lookup(fs->tree, dir, tname, id, NULL))
		return false;
	if (ckpt_tree_stat(fs->tree, *id, &info, NULL) == CKPT_OK &&
	    npy_shows(tname, &info, fname))
		return true;
	if (!dir) /* map tensors are not counted */
		ckpt_tree_forget(fs->tree, *id, 1);
	return false;
}

/* Finds the entry shown as fname in dir: NAME.npy is the file NAME,
 * another name a scratch file or a map of that name.  The tree's name
 * into buf (NAME_MAX + 1), the id into *id, a lookup counted. */
static const char *npy_find(struct ckptfs *fs, uint64_t dir, const char *fname,
			    char *buf, uint64_t *id)
{
	if (npy_strip(fname, buf) && lookup_as(fs, dir, buf, fname, id))
		return buf;
	if (lookup_as(fs, dir, fname, fname, id))
		return fname;
	return NULL;
}

bool npy_lookup(struct ckptfs *fs, uint64_t dir, const char *fname,
		uint64_t *id)
{
	char buf[NAME_MAX + 1];

	return npy_find(fs, dir, fname, buf, id) != NULL;
}

const char *npy_lookup_name(struct ckptfs *fs, const char *fname, char *buf)
{
	uint64_t id;
	const char *name = npy_find(fs, 0, fname, buf, &id);

	if (name)
		ckpt_tree_forget(fs->tree, id, 1);
	return name;
}

const char *npy_new_pick(struct ckptfs *fs, const char *fname, const char *raw,
			 const char *stripped)
{
	if (raw && ckpt_tree_name_is_scratch(fs->tree, raw))
		return raw;
	if (stripped && !ckpt_tree_name_is_scratch(fs->tree, stripped))
		return stripped;
	logmsg(LOG_NOTICE,
	       "-o npy: refused the name '%s': parameters are files named "
	       "NAME.npy (NAME not a scratch name), other names only "
	       "scratch files",
	       fname);
	return NULL;
}

const char *npy_new_name(fuse_req_t req, const char *fname, char *buf)
{
	const char *t =
		npy_new_pick(fs_of(req), fname, fname, npy_strip(fname, buf));

	if (!t)
		fuse_reply_err(req, EINVAL);
	return t;
}

int npy_rename_check(const char *name, bool from_raw, const char *newname,
		     bool to_raw)
{
	if (!from_raw || to_raw)
		return 0;
	logmsg(LOG_NOTICE,
	       "-o npy: refused renaming '%s' to '%s': a raw scratch "
	       "file cannot become a parameter (write %s directly)",
	       name, newname, newname);
	return EINVAL;
}
