/*
 * pin.h - directories held open, files pinned by identity, writer locks,
 * names nobody can reserve (pin.c).  Identity itself (struct ckpt_ident)
 * is declared in internal.h, next to the file it describes.
 */
#ifndef CKPT_PIN_H
#define CKPT_PIN_H

#include "internal.h"

/* A path resolved once: its directory, held open, and the final name. */
struct ckpt_place {
	int dirfd;  /* O_RDONLY | O_DIRECTORY */
	char *base; /* the final component */
	char *path; /* absolute, for messages only: never opened again */
};

/* Resolves path (whose final name need not exist) into pl.  A symlink at
 * the final name is followed (resolved once, here) only if the caller
 * owns it; one owned by someone else is refused (CKPT_ERR_PERM).  Release
 * pl with ckpt_place_close, also after a failure. */
ckpt_err ckpt_place_open(const char *path, struct ckpt_place *pl,
			 struct ckpt_error *err);

/* Releases pl (safe on a zeroed or failed one). */
void ckpt_place_close(struct ckpt_place *pl);

/* A second, independent copy of pl.  0, or -1 (out is then empty). */
int ckpt_place_dup(const struct ckpt_place *pl, struct ckpt_place *out);

/* Writes prefix + 8 random characters [0-9a-z] + suffix into buf. */
void ckpt_random_name(char *buf, size_t size, const char *prefix,
		      const char *suffix);

/* An unnamed read-write file (mode 0600) in directory dirfd: O_TMPFILE,
 * or where the filesystem has none, a random name unlinked at once.
 * Returns the descriptor or -1 with errno. */
int ckpt_tmpfile_at(int dirfd);

/* Takes the OFD write lock on fd (open for writing) of the checkpoint at
 * path; CKPT_ERR_BUSY if another writer holds it. */
ckpt_err ckpt_lock_writer(int fd, const char *path, struct ckpt_error *err);

/* The names of a commit's temporary files start with this (a printf
 * format taking the base name, cut so that every name fits NAME_MAX). */
#define CKPT_TMP_PREFIX ".%.200s.ckptfs-"

/* Removes what a crashed commit of pl's file left in its directory: the
 * regular files named CKPT_TMP_PREFIX "*" that the caller owns. */
void ckpt_remove_strays(const struct ckpt_place *pl);

#endif /* CKPT_PIN_H */
