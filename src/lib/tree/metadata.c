/*
 * metadata.c - the tree's metadata: a copy of its file's (safetensors
 * __metadata__, in file order), edited by key, written by the commit
 * (struct ckpt_snapshot's meta) and reloaded from what it wrote.
 *
 * Locking: the public functions take t->lock (read for list and get,
 * write for the edits); the load and free are called with it held or
 * before the tree is shared.
 *
 * Never: set crc_num (the commit computes it), or an Int4 marker (it is
 * its tensor's dtype), or hold a string that is not valid UTF-8 without
 * NUL (the file must stay JSON).
 */
#include <stdlib.h>
#include <string.h>

#include "tree/tree.h"

static const char crc_key[] = "crc_num";

static void free_items(struct ckpt_meta_item *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(CKPT_UNCONST(m[i].key));
		free(CKPT_UNCONST(m[i].value));
	}
	free(m);
}

void ckpt_tree_meta_free(struct ckpt_tree *t)
{
	free_items(t->meta, t->nmeta);
	t->meta = NULL;
	t->nmeta = t->meta_cap = 0;
}

ckpt_err ckpt_tree_meta_load(struct ckpt_tree *t, const struct ckpt_file *f,
			     struct ckpt_error *err)
{
	size_t n = f ? ckpt_meta_count(f) : 0;
	struct ckpt_meta_item *m = calloc(n + 1, sizeof(*m));

	if (!m)
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct ckpt_meta_item *it = ckpt_meta_at(f, i);
		m[i] = *it;
		m[i].key = strdup(it->key);
		m[i].value = strdup(it->value);
		if (!m[i].key || !m[i].value) {
			free_items(m, i + 1);
			return ckpt_fail(err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		}
	}
	ckpt_tree_meta_free(t);
	t->meta = m;
	t->nmeta = t->meta_cap = n;
	t->has_meta = f && ckpt_has_metadata(f);
	t->own_meta = f && t->format->metadata &&
		      !strcmp(ckpt_format_of(f), t->format->name);
	return CKPT_OK;
}

/* The item of key, or NULL. */
static struct ckpt_meta_item *find(struct ckpt_tree *t, const char *key)
{
	for (size_t i = 0; i < t->nmeta; i++)
		if (strcmp(t->meta[i].key, key) == 0)
			return &t->meta[i];
	return NULL;
}

const char *ckpt_tree_format(const struct ckpt_tree *t)
{
	return t->format->name;
}

bool ckpt_tree_has_metadata(const struct ckpt_tree *t)
{
	return t->format->metadata;
}

void ckpt_tree_meta_list(struct ckpt_tree *t,
			 bool (*fn)(void *ctx, const char *key,
				    const char *value),
			 void *ctx)
{
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < t->nmeta; i++)
		if (!t->meta[i].marker &&
		    !fn(ctx, t->meta[i].key, t->meta[i].value))
			break;
	pthread_rwlock_unlock(&t->lock);
}

ckpt_err ckpt_tree_meta_get(struct ckpt_tree *t, const char *key, char **value,
			    struct ckpt_error *err)
{
	struct ckpt_meta_item *it;
	ckpt_err r = CKPT_OK;

	*value = NULL;
	pthread_rwlock_rdlock(&t->lock);
	it = find(t, key);
	if (!it || it->marker)
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0,
			      "no metadata key '%.200s'", key);
	else if (!(*value = strdup(it->value)))
		r = ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	pthread_rwlock_unlock(&t->lock);
	return r;
}

/* Whether key may be edited; err says why not. */
static ckpt_err editable(struct ckpt_tree *t, const char *key,
			 struct ckpt_error *err)
{
	const struct ckpt_meta_item *it = find(t, key);
	ckpt_err r = ckpt_tree_writable(t, err);

	if (r)
		return r;
	if (!t->format->metadata)
		return ckpt_fail(err, CKPT_ERR_UNSUPPORTED, 0,
				 "the %s format has no metadata",
				 t->format->name);
	if (strcmp(key, crc_key) == 0)
		return ckpt_fail(err, CKPT_ERR_PERM, 0,
				 "crc_num is computed by every commit of a "
				 "file that has one (-o crc adds it); it "
				 "cannot be set or removed by hand");
	if (it && it->marker)
		return ckpt_fail(err, CKPT_ERR_PERM, 0,
				 "metadata key '%.200s' is the Int4 marker of "
				 "the tensor of that name: set its user.dtype "
				 "instead",
				 key);
	if (!*key || !ckpt_utf8_valid(key, strlen(key)))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "a metadata key must be a non-empty UTF-8 "
				 "string");
	return CKPT_OK;
}

/* Appends an item key = value (both taken over) to the metadata. */
static ckpt_err append(struct ckpt_tree *t, char *key, char *value,
		       struct ckpt_error *err)
{
	if (t->nmeta == t->meta_cap) {
		size_t cap = t->meta_cap ? 2 * t->meta_cap : 8;
		struct ckpt_meta_item *m = realloc(t->meta, cap * sizeof(*m));
		if (!m)
			return ckpt_fail(err, CKPT_ERR_NOMEM, 0,
					 "out of memory");
		t->meta = m;
		t->meta_cap = cap;
	}
	t->meta[t->nmeta++] =
		(struct ckpt_meta_item){.key = key, .value = value};
	return CKPT_OK;
}

/* The edit of ckpt_tree_meta_set under the write lock. */
static ckpt_err set_locked(struct ckpt_tree *t, const char *key,
			   const char *value, size_t len,
			   struct ckpt_error *err)
{
	struct ckpt_meta_item *it;
	char *v, *k = NULL;
	ckpt_err r = editable(t, key, err);

	if (r)
		return r;
	if (memchr(value, '\0', len) || !ckpt_utf8_valid(value, len))
		return ckpt_fail(err, CKPT_ERR_INVAL, 0,
				 "metadata value of '%.200s' is not a UTF-8 "
				 "string without NUL",
				 key);
	v = malloc(len + 1);
	it = find(t, key);
	if (v && !it)
		k = strdup(key);
	if (!v || (!it && !k)) {
		free(v);
		return ckpt_fail(err, CKPT_ERR_NOMEM, 0, "out of memory");
	}
	memcpy(v, value, len);
	v[len] = '\0';
	if (it) {
		free(CKPT_UNCONST(it->value));
		it->value = v;
		it->json = false;
	} else if ((r = append(t, k, v, err))) {
		free(k);
		free(v);
		return r;
	}
	t->own_meta = true;
	t->dirty = true;
	return CKPT_OK;
}

ckpt_err ckpt_tree_meta_set(struct ckpt_tree *t, const char *key,
			    const char *value, size_t len,
			    struct ckpt_error *err)
{
	ckpt_err r;

	pthread_rwlock_wrlock(&t->lock);
	r = set_locked(t, key, value, len, err);
	pthread_rwlock_unlock(&t->lock);
	return r;
}

ckpt_err ckpt_tree_meta_remove(struct ckpt_tree *t, const char *key,
			       struct ckpt_error *err)
{
	struct ckpt_meta_item *it;
	ckpt_err r;

	pthread_rwlock_wrlock(&t->lock);
	r = editable(t, key, err);
	it = r ? NULL : find(t, key);
	if (!r && !it)
		r = ckpt_fail(err, CKPT_ERR_NOTFOUND, 0,
			      "no metadata key '%.200s'", key);
	if (!r) {
		size_t i = (size_t)(it - t->meta);
		free(CKPT_UNCONST(it->key));
		free(CKPT_UNCONST(it->value));
		memmove(it, it + 1, (t->nmeta - i - 1) * sizeof(*it));
		t->nmeta--;
		t->own_meta = true;
		t->dirty = true;
	}
	pthread_rwlock_unlock(&t->lock);
	return r;
}
