/*
 * ckpt_view.h - the tree view of parameter names (libckpt, no FUSE):
 * dotted names shown as paths, model.layers.0.wq as model/layers/0/wq
 * (ckptfs -o tree, docs/tree-view.md).
 *
 * The rules, which make name <-> path a bijection:
 *   - A name is split into components at a '.' only where both
 *     neighbouring characters exist and are not '.'; any other '.'
 *     (leading, trailing, doubled) stays inside its component.
 *   - A component is shown with '%', '/', '.', control characters and
 *     DEL written as %XX (upper-case hex); the empty name is "%".
 *     Components are joined by '/'.
 *   - A parameter whose path is also the prefix of others (fc1 and
 *     fc1.weight) is the leaf CKPT_VIEW_SELF inside its directory:
 *     fc1/%self ("%se" is no escape, so no name is shown so).
 *   - A leaf's file name is rendered by ckpt_view_leaf alone.
 *
 * struct ckpt_view is the sorted set of the paths of a tree's parameters
 * and of the directories that exist without one (made by mkdir, or left
 * empty by an unlink or a move): it answers what a path is and lists a
 * directory's children.  It does no locking; the caller serialises.
 */
#ifndef CKPT_VIEW_H
#define CKPT_VIEW_H

#include "ckpt.h"

/* The leaf of a parameter that is also a directory, inside it. */
#define CKPT_VIEW_SELF "%self"

/* ---- the mapping (pure functions) --------------------------------------- */

/* The malloc'd path of the stored name name (len bytes, may hold NUL
 * bytes); NULL if out of memory. */
char *ckpt_view_path(const char *name, size_t len);

/* The stored name (malloc'd, NUL-terminated, length in *len) whose path
 * is path.  CKPT_ERR_INVAL if no name has that path (ckpt_view_path would
 * not give path back), CKPT_ERR_NOMEM. */
ckpt_err ckpt_view_name(const char *path, char **name, size_t *len);

/* True if the stored name (len bytes) lies under the directory whose
 * stored name is prefix (plen bytes): its components start with all of
 * prefix's.  A name is not under itself. */
bool ckpt_view_under(const char *name, size_t len, const char *prefix,
		     size_t plen);

/* The malloc'd file name of a leaf whose last path component is comp, or
 * of the self leaf (CKPT_VIEW_SELF) when self; NULL if out of memory.
 * The one place a leaf's name is rendered. */
char *ckpt_view_leaf(const char *comp, bool self);

/* The inverse of ckpt_view_leaf: *self, or the malloc'd component of the
 * leaf file name fname in *comp.  CKPT_ERR_INVAL if fname is no leaf's
 * name, CKPT_ERR_NOMEM. */
ckpt_err ckpt_view_leaf_parse(const char *fname, char **comp, bool *self);

/* ---- the index ---------------------------------------------------------- */

struct ckpt_view;

/* What a path is (ckpt_view_kind) or a child (ckpt_view_children). */
enum ckpt_view_kind {
	CKPT_VIEW_NONE,	    /* nothing */
	CKPT_VIEW_LEAF,	    /* a parameter */
	CKPT_VIEW_DIR,	    /* a directory (maybe also a parameter: BOTH) */
	CKPT_VIEW_BOTH,	    /* a parameter that is also a directory */
	CKPT_VIEW_SELFLEAF, /* child only: the directory's own parameter */
};

/* An empty view; NULL if out of memory. */
struct ckpt_view *ckpt_view_new(void);

void ckpt_view_free(struct ckpt_view *v);

/* Adds the parameter at path (a path of ckpt_view_path).  CKPT_ERR_EXISTS
 * if it is there, _NOMEM. */
ckpt_err ckpt_view_add(struct ckpt_view *v, const char *path,
		       struct ckpt_error *err);

/* Removes the parameter at path; its directory stays, empty or not.
 * CKPT_ERR_NOTFOUND, _NOMEM (nothing removed). */
ckpt_err ckpt_view_remove(struct ckpt_view *v, const char *path,
			  struct ckpt_error *err);

/* Allocates what removing the parameter or directory at path needs (that
 * its parent stays), so that a ckpt_view_remove or ckpt_view_rmdir of
 * path that follows cannot fail for want of memory; the parent then
 * stays when path goes in any way.  CKPT_ERR_NOMEM. */
ckpt_err ckpt_view_prepare_remove(struct ckpt_view *v, const char *path,
				  struct ckpt_error *err);

/* Makes the directory path ("" is the root, which always exists).
 * CKPT_ERR_EXISTS if path is a parameter or a directory, _NOMEM. */
ckpt_err ckpt_view_mkdir(struct ckpt_view *v, const char *path,
			 struct ckpt_error *err);

/* Removes the directory path; its parent stays.  CKPT_ERR_NOTFOUND if
 * there is none, _NOTEMPTY if it has children (its own parameter counts),
 * _NOMEM. */
ckpt_err ckpt_view_rmdir(struct ckpt_view *v, const char *path,
			 struct ckpt_error *err);

/* What path is: NONE, LEAF, DIR or BOTH. */
enum ckpt_view_kind ckpt_view_kind(const struct ckpt_view *v, const char *path);

/* Calls fn with each child of directory dir ("" the root) in order until
 * fn returns false: first its own parameter (SELFLEAF, comp NULL), then
 * each component comp (clen bytes, not NUL-terminated) below it, as LEAF
 * or DIR (a BOTH child is a DIR).  fn must not change v.  CKPT_ERR_NOMEM
 * if the listing stopped for want of memory. */
ckpt_err ckpt_view_children(const struct ckpt_view *v, const char *dir,
			    bool (*fn)(void *ctx, const char *comp, size_t clen,
				       enum ckpt_view_kind kind),
			    void *ctx, struct ckpt_error *err);

/* Moves directory from, with everything under it and its own parameter,
 * to path to (the rename of a prefix); from's parent stays.  to may be
 * an empty directory, which is replaced.  CKPT_ERR_NOTFOUND if from is
 * no directory, _INVAL if to is from or lies under it, _EXISTS if to is
 * a parameter, _NOTEMPTY if to is a directory with children, _NOMEM;
 * nothing changes on failure. */
ckpt_err ckpt_view_move(struct ckpt_view *v, const char *from, const char *to,
			struct ckpt_error *err);

#endif /* CKPT_VIEW_H */
