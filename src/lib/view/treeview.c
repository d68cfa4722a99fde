/*
 * treeview.c - the tree view of parameter names: the mapping between a
 * stored name and its path, and the sorted index of a tree's paths that
 * lists a directory's children (ckpt_view.h has the rules).
 *
 * The index is one sorted array of malloc'd keys: the path of each
 * parameter, and for each directory that exists without one below it
 * (made by mkdir, left empty by an unlink or a move) a marker, its path
 * followed by '/' (an empty last component).  Keys compare byte by byte
 * with '/' below every other byte (no path holds a byte below 0x20), so
 * the keys under a directory are one run: a directory's children are
 * found by binary search, and a child's whole subtree is skipped at once.
 *
 * Never: hand out a path that does not map back to its name; change the
 * index half-way (what can fail is allocated first).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "ckpt_view.h"

static const char no_memory[] = "out of memory";

/* ---- the mapping -------------------------------------------------------- */

/* True if the '.' at name[i] separates two components. */
static bool splits(const char *name, size_t len, size_t i)
{
	return name[i] == '.' && i > 0 && i + 1 < len && name[i - 1] != '.' &&
	       name[i + 1] != '.';
}

/* True if byte c is written as %XX in a component. */
static bool escaped(unsigned char c)
{
	return c == '%' || c == '/' || c == '.' || c < 0x20 || c == 0x7f;
}

char *ckpt_view_path(const char *name, size_t len)
{
	char *out, *o;

	if (len == 0)
		return strdup("%");
	out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	o = out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (splits(name, len, i))
			*o++ = '/';
		else if (escaped(c))
			o += sprintf(o, "%%%02X", c);
		else
			*o++ = (char)c;
	}
	*o = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1; /* lower case never maps back: not accepted */
}

/* Decodes path into out (room for strlen(path) + 1); the length. */
static size_t decode(const char *path, char *out)
{
	size_t o = 0;

	if (strcmp(path, "%") == 0)
		return 0;
	for (size_t i = 0; path[i]; i++) {
		int hi, lo;
		if (path[i] == '/') {
			out[o++] = '.';
		} else if (path[i] == '%' && (hi = hexval(path[i + 1])) >= 0 &&
			   (lo = hexval(path[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = path[i];
		}
	}
	out[o] = '\0';
	return o;
}

ckpt_err ckpt_view_name(const char *path, char **name, size_t *len)
{
	char *out = malloc(strlen(path) + 1), *check = NULL;
	size_t n;
	ckpt_err r = CKPT_ERR_NOMEM;

	if (!out)
		return CKPT_ERR_NOMEM;
	n = decode(path, out);
	check = ckpt_view_path(out, n);
	if (!check)
		goto fail;
	r = CKPT_ERR_INVAL;
	if (strcmp(check, path) != 0)
		goto fail;
	free(check);
	*name = out;
	*len = n;
	return CKPT_OK;
fail:
	free(check);
	free(out);
	return r;
}

bool ckpt_view_under(const char *name, size_t len, const char *prefix,
		     size_t plen)
{
	return len > plen && memcmp(name, prefix, plen) == 0 &&
	       splits(name, len, plen);
}

char *ckpt_view_leaf(const char *comp, bool self)
{
	return strdup(self ? CKPT_VIEW_SELF : comp);
}

ckpt_err ckpt_view_leaf_parse(const char *fname, char **comp, bool *self)
{
	*self = strcmp(fname, CKPT_VIEW_SELF) == 0;
	*comp = NULL;
	if (*self)
		return CKPT_OK;
	if (!*fname || strchr(fname, '/'))
		return CKPT_ERR_INVAL;
	*comp = strdup(fname);
	return *comp ? CKPT_OK : CKPT_ERR_NOMEM;
}

/* ---- the index ---------------------------------------------------------- */

struct ckpt_view {
	char **keys; /* sorted by key_cmp */
	size_t n, cap;
};

/* Byte order with '/' lowest: a byte's rank. */
static unsigned rank(char c)
{
	return c == '/' ? 1 : (unsigned char)c;
}

/* Compares the first n bytes of a and b (or up to a NUL) in key order. */
static int key_ncmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned x = a[i] ? rank(a[i]) : 0, y = b[i] ? rank(b[i]) : 0;
		if (x != y)
			return x < y ? -1 : 1;
		if (!x)
			return 0;
	}
	return 0;
}

static int key_cmp(const char *a, const char *b)
{
	return key_ncmp(a, b, (size_t)-1);
}

static int key_qcmp(const void *a, const void *b)
{
	return key_cmp(*(char *const *)a, *(char *const *)b);
}

/* The first position whose key is not below key. */
static size_t lower_bound(const struct ckpt_view *v, const char *key)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(v->keys[mid], key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The end of the run of keys from lo on that start with pre (plen). */
static size_t run_end(const struct ckpt_view *v, size_t lo, const char *pre,
		      size_t plen)
{
	size_t hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_ncmp(v->keys[mid], pre, plen) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* True if key is at v's position i. */
static bool at(const struct ckpt_view *v, size_t i, const char *key)
{
	return i < v->n && strcmp(v->keys[i], key) == 0;
}

/* "dir/" for dir, "" for the root; malloc'd. */
static char *dir_prefix(const char *dir)
{
	size_t n = strlen(dir);
	char *p = malloc(n + 2);

	if (!p)
		return NULL;
	memcpy(p, dir, n);
	p[n] = '/';
	p[n ? n + 1 : 0] = '\0';
	return p;
}

struct ckpt_view *ckpt_view_new(void)
{
	return calloc(1, sizeof(struct ckpt_view));
}

void ckpt_view_free(struct ckpt_view *v)
{
	for (size_t i = 0; v && i < v->n; i++)
		free(v->keys[i]);
	if (v)
		free(v->keys);
	free(v);
}

/* Makes room for one more key. */
static ckpt_err reserve(struct ckpt_view *v, struct ckpt_error *err)
{
	size_t cap = v->cap ? v->cap * 2 : 64;
	char **k;

	if (v->n < v->cap)
		return CKPT_OK;
	k = realloc(v->keys, cap * sizeof(*k));
	if (!k)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	v->keys = k;
	v->cap = cap;
	return CKPT_OK;
}

/* Inserts the malloc'd key (taken over) at position i; room reserved. */
static void insert_at(struct ckpt_view *v, size_t i, char *key)
{
	memmove(v->keys + i + 1, v->keys + i, (v->n - i) * sizeof(*v->keys));
	v->keys[i] = key;
	v->n++;
}

static void remove_at(struct ckpt_view *v, size_t i)
{
	free(v->keys[i]);
	memmove(v->keys + i, v->keys + i + 1,
		(v->n - i - 1) * sizeof(*v->keys));
	v->n--;
}

/* Inserts a copy of key unless it is there; false if out of memory. */
static bool insert_key(struct ckpt_view *v, const char *key)
{
	size_t i = lower_bound(v, key);
	char *k;

	if (at(v, i, key))
		return true;
	if (reserve(v, NULL) || !(k = strdup(key)))
		return false;
	insert_at(v, i, k);
	return true;
}

enum ckpt_view_kind ckpt_view_kind(const struct ckpt_view *v, const char *path)
{
	size_t plen = strlen(path), i;
	bool leaf, dir;

	if (!plen)
		return CKPT_VIEW_DIR;
	i = lower_bound(v, path);
	leaf = at(v, i, path);
	i += leaf; /* the keys under path/ come right after path */
	dir = i < v->n && strncmp(v->keys[i], path, plen) == 0 &&
	      v->keys[i][plen] == '/';
	if (leaf)
		return dir ? CKPT_VIEW_BOTH : CKPT_VIEW_LEAF;
	return dir ? CKPT_VIEW_DIR : CKPT_VIEW_NONE;
}

ckpt_err ckpt_view_add(struct ckpt_view *v, const char *path,
		       struct ckpt_error *err)
{
	size_t i = lower_bound(v, path);
	char *k;

	if (at(v, i, path))
		return ckpt_fail(err, CKPT_ERR_EXISTS, 0, "'%s' exists", path);
	if (reserve(v, err))
		return CKPT_ERR_NOMEM;
	k = strdup(path);
	if (!k)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	insert_at(v, i, k);
	return CKPT_OK;
}

/* The parent directory of path (malloc'd, "" for the root); NULL if out
 * of memory. */
static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return strndup(path, slash ? (size_t)(slash - path) : 0);
}

/* Makes sure directory dir stays when something under it goes: its
 * marker (none for the root); false if out of memory. */
static bool keep_dir(struct ckpt_view *v, const char *dir)
{
	char *pre;
	bool ok;

	if (!*dir)
		return true;
	pre = dir_prefix(dir);
	ok = pre && insert_key(v, pre);
	free(pre);
	return ok;
}

/* keep_dir of path's parent. */
static bool keep_parent(struct ckpt_view *v, const char *path)
{
	char *parent = parent_of(path);
	bool ok = parent && keep_dir(v, parent);

	free(parent);
	return ok;
}

ckpt_err ckpt_view_remove(struct ckpt_view *v, const char *path,
			  struct ckpt_error *err)
{
	size_t i = lower_bound(v, path);

	if (!at(v, i, path))
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no '%s'", path);
	if (!keep_parent(v, path))
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	remove_at(v, lower_bound(v, path)); /* the marker may come before */
	return CKPT_OK;
}

ckpt_err ckpt_view_prepare_remove(struct ckpt_view *v, const char *path,
				  struct ckpt_error *err)
{
	if (!keep_parent(v, path))
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	return CKPT_OK;
}

ckpt_err ckpt_view_mkdir(struct ckpt_view *v, const char *path,
			 struct ckpt_error *err)
{
	if (ckpt_view_kind(v, path) != CKPT_VIEW_NONE)
		return ckpt_fail(err, CKPT_ERR_EXISTS, 0, "'%s' exists", path);
	if (!keep_dir(v, path))
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	return CKPT_OK;
}

/* The number of keys under directory dir other than its marker in *n. */
static ckpt_err count_under(const struct ckpt_view *v, const char *dir,
			    size_t *n, struct ckpt_error *err)
{
	char *pre = dir_prefix(dir);
	size_t i, end;

	if (!pre)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	i = lower_bound(v, pre);
	end = run_end(v, i, pre, strlen(pre));
	*n = end - i - at(v, i, pre);
	free(pre);
	return CKPT_OK;
}

ckpt_err ckpt_view_rmdir(struct ckpt_view *v, const char *path,
			 struct ckpt_error *err)
{
	enum ckpt_view_kind k = ckpt_view_kind(v, path);
	char *pre;
	size_t n;

	if (k == CKPT_VIEW_NONE || k == CKPT_VIEW_LEAF || !*path)
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no directory '%s'",
				 path);
	if (count_under(v, path, &n, err))
		return CKPT_ERR_NOMEM;
	if (k == CKPT_VIEW_BOTH || n)
		return ckpt_fail(err, CKPT_ERR_NOTEMPTY, 0, "'%s' is not empty",
				 path);
	pre = dir_prefix(path);
	if (!pre || !keep_parent(v, path)) {
		free(pre);
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	}
	remove_at(v, lower_bound(v, pre));
	free(pre);
	return CKPT_OK;
}

/* True if key has the prefix "p/" where p is the first plen bytes of
 * base. */
static bool below(const char *key, const char *base, size_t plen)
{
	return strncmp(key, base, plen) == 0 && key[plen] == '/';
}

ckpt_err ckpt_view_children(const struct ckpt_view *v, const char *dir,
			    bool (*fn)(void *ctx, const char *comp, size_t clen,
				       enum ckpt_view_kind kind),
			    void *ctx, struct ckpt_error *err)
{
	char *pre = dir_prefix(dir);
	size_t plen, i, end;

	if (!pre)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
	plen = strlen(pre);
	if (*dir && at(v, lower_bound(v, dir), dir) &&
	    !fn(ctx, NULL, 0, CKPT_VIEW_SELFLEAF))
		goto out;
	i = lower_bound(v, pre);
	end = run_end(v, i, pre, plen);
	while (i < end) {
		const char *key = v->keys[i], *comp = key + plen;
		size_t clen = strcspn(comp, "/"), j = i;
		bool dir_too;

		if (!clen) { /* the directory's marker */
			i++;
			continue;
		}
		if (!comp[clen]) /* a parameter; its subtree, if any, follows */
			j = i + 1;
		dir_too = j < end && below(v->keys[j], key, plen + clen);
		/* the subtree: the keys that start as keys[j] up to its '/' */
		i = dir_too ? run_end(v, j, v->keys[j], plen + clen + 1) : j;
		if (!fn(ctx, comp, clen,
			dir_too ? CKPT_VIEW_DIR : CKPT_VIEW_LEAF))
			break;
	}
out:
	free(pre);
	return CKPT_OK;
}

/* Checks a move of directory from to to (see ckpt_view_move). */
static ckpt_err move_check(const struct ckpt_view *v, const char *from,
			   const char *to, struct ckpt_error *err)
{
	enum ckpt_view_kind kf = ckpt_view_kind(v, from);
	enum ckpt_view_kind kt = ckpt_view_kind(v, to);
	size_t flen = strlen(from), n = 0;

	if (!*from || (kf != CKPT_VIEW_DIR && kf != CKPT_VIEW_BOTH))
		return ckpt_fail(err, CKPT_ERR_NOTFOUND, 0, "no directory '%s'",
				 from);
	if (!*to || (strncmp(to, from, flen) == 0 &&
		     (to[flen] == '\0' || to[flen] == '/')))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "'%s' cannot move into itself ('%s')", from,
				 to);
	if (kt == CKPT_VIEW_LEAF)
		return ckpt_fail(err, CKPT_ERR_EXISTS, 0, "'%s' is a parameter",
				 to);
	if (kt == CKPT_VIEW_DIR && count_under(v, to, &n, err))
		return CKPT_ERR_NOMEM;
	if (kt == CKPT_VIEW_BOTH || (kt == CKPT_VIEW_DIR && n))
		return ckpt_fail(err, CKPT_ERR_NOTEMPTY, 0, "'%s' is not empty",
				 to);
	return CKPT_OK;
}

/* True if key is from itself or lies under it (flen bytes). */
static bool moves(const char *key, const char *from, size_t flen)
{
	return strncmp(key, from, flen) == 0 &&
	       (key[flen] == '\0' || key[flen] == '/');
}

/* key, with from (flen bytes) at its start replaced by to (tlen):
 * malloc'd, NULL if out of memory. */
static char *moved(const char *key, size_t flen, const char *to, size_t tlen)
{
	char *k = malloc(tlen + strlen(key + flen) + 1);

	if (!k)
		return NULL;
	memcpy(k, to, tlen);
	strcpy(k + tlen, key + flen);
	return k;
}

/* Sorts keys (n) into v, each once, freeing the duplicates; cap is the
 * room of keys, which v takes over. */
static void take_keys(struct ckpt_view *v, char **keys, size_t n, size_t cap)
{
	size_t j = 0;

	qsort(keys, n, sizeof(*keys), key_qcmp);
	for (size_t i = 0; i < n; i++) {
		if (j && strcmp(keys[j - 1], keys[i]) == 0)
			free(keys[i]);
		else
			keys[j++] = keys[i];
	}
	free(v->keys);
	v->keys = keys;
	v->n = j;
	v->cap = cap;
}

ckpt_err ckpt_view_move(struct ckpt_view *v, const char *from, const char *to,
			struct ckpt_error *err)
{
	size_t flen = strlen(from), tlen = strlen(to), m = 0, k = 0;
	size_t cap = v->n + 1;
	char **fresh = NULL, **keys = NULL, *tmark = NULL, *parent = NULL;
	ckpt_err r = move_check(v, from, to, err);

	if (r)
		return r;
	fresh = calloc(cap, sizeof(*fresh));
	keys = malloc(cap * sizeof(*keys));
	tmark = dir_prefix(to);
	parent = parent_of(from);
	if (!fresh || !keys || !tmark || !parent)
		goto nomem;
	for (size_t i = 0; i < v->n; i++)
		if (moves(v->keys[i], from, flen) &&
		    !(fresh[m++] = moved(v->keys[i], flen, to, tlen)))
			goto nomem;
	if (*parent && !(fresh[m++] = dir_prefix(parent)))
		goto nomem;
	/* nothing fails from here on */
	for (size_t i = 0; i < v->n; i++) {
		char *key = v->keys[i];
		if (moves(key, from, flen) || strcmp(key, tmark) == 0)
			free(key);
		else
			keys[k++] = key;
	}
	memcpy(keys + k, fresh, m * sizeof(*fresh));
	take_keys(v, keys, k + m, cap);
	free(fresh);
	free(tmark);
	free(parent);
	return CKPT_OK;
nomem:
	for (size_t i = 0; fresh && i < m; i++)
		free(fresh[i]);
	free(fresh);
	free(keys);
	free(tmark);
	free(parent);
	return ckpt_fail(err, CKPT_ERR_NOMEM, 0, no_memory);
}
