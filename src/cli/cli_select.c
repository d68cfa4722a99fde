/*
 * cli_select.c - which parameters ls, info and convert take, and the names
 * convert gives them (see cli.h):
 *
 *   --include GLOB, --exclude GLOB   fnmatch(3) globs on the stored name
 *                                    (ckpt_select_keep), repeatable
 *   --rename s/REGEX/REPL/[g]        sed-style, POSIX extended regex;
 *                                    repeatable, applied in order
 *   --name-map FILE.json             MindSpore's name_map: a JSON object
 *                                    old -> new, applied before --rename
 *
 * Owns the parsing of those arguments, the substitution (sed's rules: &
 * and \1..\9 in REPL, an empty match right after a match is skipped) and
 * the mapping onto the tree (ckpt_tree_drop_hidden, ckpt_tree_rename_all:
 * every new name is known and checked before anything is renamed, so a
 * collision names both parameters and changes nothing).  Bad arguments
 * (a malformed s command, a regex regcomp refuses, a name map that is not
 * a JSON object of strings) are exit status 2, found before IN is opened.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_tree.h"
#include "cli.h"

/* One --rename: the regex and the replacement, normalized so that a
 * backslash is always followed by a digit (\0 the whole match, \1..\9 a
 * group), '\' or '&' (themselves). */
struct sed {
	regex_t re;
	char *repl;
	bool global;
};

struct cli_renames {
	json_t *map; /* the --name-map object, or NULL */
	struct sed *sed;
	size_t nsed;
};

static int nomem(void)
{
	fprintf(stderr, "ckpt: out of memory\n");
	return 1;
}

/* ---- the options ---------------------------------------------------------- */

/* Appends arg to the NULL-terminated list *l of *n entries. */
static int push(const char ***l, size_t *n, const char *arg)
{
	const char **nl = realloc(*l, (*n + 2) * sizeof(*nl));

	if (!nl)
		return nomem();
	nl[(*n)++] = arg;
	nl[*n] = NULL;
	*l = nl;
	return 0;
}

int cli_select_add(struct cli_select *s, enum cli_select_opt which,
		   const char *arg)
{
	switch (which) {
	case CLI_SEL_INCLUDE:
		return push(&s->include, &s->ninclude, arg);
	case CLI_SEL_EXCLUDE:
		return push(&s->exclude, &s->nexclude, arg);
	case CLI_SEL_RENAME:
		return push(&s->rename, &s->nrename, arg);
	case CLI_SEL_NAME_MAP:
		if (s->name_map) {
			fprintf(stderr, "ckpt: --name-map is given twice\n");
			return 2;
		}
		s->name_map = arg;
		return 0;
	}
	return 2;
}

int cli_select_check(const struct cli_select *s, const char *cmd)
{
	bool convert = !strcmp(cmd, "convert");

	if ((s->ninclude || s->nexclude) && !convert && strcmp(cmd, "ls") &&
	    strcmp(cmd, "info")) {
		fprintf(stderr, "ckpt: --include and --exclude are options of "
				"'ls', 'info' and 'convert'\n");
		return 2;
	}
	if ((s->nrename || s->name_map) && !convert) {
		fprintf(stderr, "ckpt: --rename and --name-map are options of "
				"'convert'\n");
		return 2;
	}
	return 0;
}

bool cli_select_keep(const struct cli_select *s, const char *name)
{
	return ckpt_select_keep(s->include, s->exclude, name);
}

void cli_select_free(struct cli_select *s)
{
	struct cli_renames *r = s->renames;

	if (r) {
		for (size_t i = 0; i < r->nsed; i++) {
			regfree(&r->sed[i].re);
			free(r->sed[i].repl);
		}
		free(r->sed);
		json_decref(r->map);
		free(r);
	}
	free(s->include);
	free(s->exclude);
	free(s->rename);
	memset(s, 0, sizeof(*s));
}

/* ---- parsing s/REGEX/REPL/FLAGS ------------------------------------------ */

/* Reads the part of a s command at *p up to the delimiter d into out
 * (malloc'd): "\d" is d itself; in the replacement (repl), the rest is
 * normalized (see struct sed), else kept as written.  *p is left after
 * the delimiter.  NULL: no delimiter ends it (or out of memory, *oom). */
static char *sed_part(const char **p, char d, bool repl, bool *oom)
{
	const char *s = *p;
	char *out = malloc(2 * strlen(s) + 1), *o = out;

	if (!out) {
		*oom = true;
		return NULL;
	}
	for (; *s && *s != d; s++) {
		if (*s == '&' && repl) {
			*o++ = '\\';
			*o++ = '0';
			continue;
		}
		if (*s != '\\') {
			*o++ = *s;
			continue;
		}
		if (!*++s)
			break; /* a lone backslash at the end */
		if (*s == d && d != '&') {
			*o++ = d;
		} else if (!repl) {
			*o++ = '\\';
			*o++ = *s;
		} else if (*s == 'n') {
			*o++ = '\n';
		} else if (isdigit((unsigned char)*s) || *s == '\\' ||
			   *s == '&') {
			*o++ = '\\';
			*o++ = *s;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	if (*s != d) {
		free(out);
		return NULL;
	}
	*p = s + 1;
	return out;
}

/* The highest group \N the normalized replacement refers to. */
static int max_group(const char *repl)
{
	int n = 0;

	for (const char *s = repl; *s; s++) {
		if (*s != '\\' || !*++s) /* (always a pair: see sed_part) */
			continue;
		if (isdigit((unsigned char)*s) && *s - '0' > n)
			n = *s - '0';
	}
	return n;
}

/* Parses arg into s: 0, or 2 after a message (1 when out of memory). */
static int sed_parse(const char *arg, struct sed *s)
{
	const char *p = arg + 2, *why = NULL;
	char d = arg[0] ? arg[1] : '\0', *re = NULL, err[256];
	bool oom = false;
	int rc;

	if (arg[0] != 's' || !d || d == '\\' || d == '\n' ||
	    isalnum((unsigned char)d)) {
		fprintf(stderr,
			"ckpt: --rename '%s': not a substitution "
			"s/REGEX/REPL/ (any delimiter but a letter, digit, "
			"backslash or newline may stand for '/'), with the "
			"flag g or none\n",
			arg);
		return 2;
	}
	re = sed_part(&p, d, false, &oom);
	if (re)
		s->repl = sed_part(&p, d, true, &oom);
	if (oom) {
		free(re);
		return nomem();
	}
	if (!re || !s->repl)
		why = "it does not end with the delimiter";
	else if (!*re)
		why = "the regular expression is empty";
	for (; !why && *p; p++)
		if (*p == 'g')
			s->global = true;
		else
			why = "the only flag is g";
	if (why) {
		fprintf(stderr, "ckpt: --rename '%s': %s\n", arg, why);
		free(re);
		free(s->repl);
		s->repl = NULL;
		return 2;
	}
	rc = regcomp(&s->re, re, REG_EXTENDED);
	free(re);
	if (rc) {
		regerror(rc, NULL, err, sizeof(err));
		fprintf(stderr, "ckpt: --rename '%s': %s\n", arg, err);
		free(s->repl);
		s->repl = NULL;
		return 2;
	}
	if ((size_t)max_group(s->repl) > s->re.re_nsub) {
		fprintf(stderr,
			"ckpt: --rename '%s': the replacement refers to "
			"group \\%d, but the regular expression has %zu\n",
			arg, max_group(s->repl), s->re.re_nsub);
		regfree(&s->re);
		free(s->repl);
		s->repl = NULL;
		return 2;
	}
	return 0;
}

/* ---- the name map ------------------------------------------------------------ */

/* Reads the --name-map file: 0, or 2 after a message. */
static int load_map(const char *path, json_t **out)
{
	json_error_t je;
	json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *v;
	const char *key;

	if (!m) {
		if (je.line > 0)
			fprintf(stderr,
				"ckpt: --name-map %s: line %d, column %d: "
				"%s\n",
				path, je.line, je.column, je.text);
		else
			fprintf(stderr, "ckpt: --name-map %s: %s\n", path,
				je.text);
		return 2;
	}
	if (!json_is_object(m)) {
		fprintf(stderr,
			"ckpt: --name-map %s: not a JSON object of names "
			"(as MindSpore's name_map: {\"old\": \"new\", ...})\n",
			path);
		json_decref(m);
		return 2;
	}
	json_object_foreach(m, key, v)
	{
		if (json_is_string(v))
			continue;
		fprintf(stderr,
			"ckpt: --name-map %s: the value of \"%s\" is not a "
			"string\n",
			path, key);
		json_decref(m);
		return 2;
	}
	*out = m;
	return 0;
}

int cli_select_prepare(struct cli_select *s)
{
	struct cli_renames *r;
	int rc = 0;

	if (!s->nrename && !s->name_map)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->sed = calloc(s->nrename + 1, sizeof(*r->sed)))) {
		free(r);
		return nomem();
	}
	s->renames = r;
	if (s->name_map)
		rc = load_map(s->name_map, &r->map);
	for (size_t i = 0; !rc && i < s->nrename; i++) {
		rc = sed_parse(s->rename[i], &r->sed[i]);
		if (!rc)
			r->nsed++;
	}
	return rc;
}

/* ---- renaming ----------------------------------------------------------------- */

/* A growing string. */
struct str {
	char *p;
	size_t len, cap;
	bool oom;
};

static void str_add(struct str *s, const char *p, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *np = realloc(s->p, cap);
		if (!np) {
			s->oom = true;
			return;
		}
		s->p = np;
		s->cap = cap;
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

/* Appends the replacement of match m (offsets in at) to o. */
static void expand(struct str *o, const char *repl, const char *at,
		   const regmatch_t *m)
{
	for (const char *r = repl; *r; r++) {
		if (*r != '\\') {
			str_add(o, r, 1);
			continue;
		}
		r++;
		if (isdigit((unsigned char)*r)) {
			const regmatch_t *g = &m[*r - '0'];
			if (g->rm_so >= 0)
				str_add(o, at + g->rm_so,
					(size_t)(g->rm_eo - g->rm_so));
		} else {
			str_add(o, r, 1); /* '\' or '&' */
		}
	}
}

/* in with s applied (malloc'd), or NULL when out of memory. */
static char *sed_apply(const struct sed *s, const char *in)
{
	struct str o = {0};
	regmatch_t m[10];
	size_t pos = 0;
	int flags = 0;
	bool after_match = false;

	str_add(&o, "", 0);
	while (regexec(&s->re, in + pos, 10, m, flags) == 0) {
		size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
		flags = REG_NOTBOL;
		if (so == eo && so == 0 && after_match) {
			/* no empty match right after a match (sed) */
			if (!in[pos])
				break;
			str_add(&o, in + pos++, 1);
			after_match = false;
			continue;
		}
		str_add(&o, in + pos, so);
		expand(&o, s->repl, in + pos, m);
		if (so == eo) { /* empty: step over one character */
			if (!in[pos + so]) {
				pos += so;
				break;
			}
			str_add(&o, in + pos + so, 1);
			pos += so + 1;
			after_match = false;
		} else {
			pos += eo;
			after_match = true;
		}
		if (!s->global)
			break;
	}
	str_add(&o, in + pos, strlen(in + pos));
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

/* ckpt_rename_fn: the name map, then the renames in order. */
static ckpt_err rename_one(void *ctx, const char *name, size_t len, char **out,
			   struct ckpt_error *err)
{
	const struct cli_renames *r = ctx;
	const char *mapped = NULL;
	char *cur;

	*out = NULL;
	if (strlen(name) != len)
		return CKPT_OK; /* a NUL inside: neither JSON nor regex */
	if (r->map)
		mapped = json_string_value(json_object_get(r->map, name));
	cur = strdup(mapped ? mapped : name);
	for (size_t i = 0; cur && i < r->nsed; i++) {
		char *next = sed_apply(&r->sed[i], cur);
		free(cur);
		cur = next;
	}
	if (!cur) {
		err->code = CKPT_ERR_NOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return CKPT_ERR_NOMEM;
	}
	*out = cur;
	return CKPT_OK;
}

int cli_select_apply(const struct cli_select *s, struct ckpt_tree *t)
{
	struct ckpt_error err;

	if (ckpt_tree_hidden_count(t) && ckpt_tree_drop_hidden(t, &err)) {
		cli_report(&err);
		return 1;
	}
	if (s->renames &&
	    ckpt_tree_rename_all(t, rename_one, s->renames, &err)) {
		cli_report(&err);
		return 1;
	}
	return 0;
}
