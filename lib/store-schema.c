/* SPDX-License-Identifier: MIT */
/*
 * store-schema.c - the working set owns its schema.
 *
 * The rule, stated once:
 *
 *   A working set's schema is the exact CREATE text SQLite keeps in
 *   sqlite_schema for its tracked tables, their indexes, and the views
 *   and triggers that touch only tracked tables.  It travels as a record
 *   (schema.h) before the batches that need it.  A copy adopts a record
 *   atomically, in one transaction, or not at all:
 *
 *   - a table it lacks is created from the record's text and tracked;
 *   - a table whose text is its own plus columns added at the end gets
 *     those columns, with the same ALTER TABLE ADD COLUMN text, so the
 *     stored CREATE text ends up identical (and so do the DEFAULTs that
 *     rows written before the change read);
 *   - a table whose text is the record's plus columns added here keeps
 *     them: the peer gets them from this copy's record;
 *   - any other difference refuses the whole record (WS_ESCHEMA, naming
 *     the table and the first difference): rows are never merged into an
 *     incompatible table;
 *   - an FTS5 table whose content is a tracked table (external content)
 *     is created like a table, not tracked, and rebuilt from its content
 *     table after every merge that changed it (sto_fts_rebuild()); other
 *     virtual tables do not travel;
 *   - an index, view or trigger it lacks is created, unless this copy
 *     dropped it since the last agreed record;
 *   - one that differs, or that the record lacks, is replaced or dropped
 *     only when the record is newer than the last one agreed and this
 *     copy has not changed it since.
 *
 *   "Newer": the hub numbers each schema it adopts (the generation).  A
 *   site sends its record with the generation it last took from the
 *   hub: for the hub it is newer when that is the hub's own generation
 *   (the site had seen everything); for a site, a hub record is newer
 *   when its generation is above the last one agreed.  The last agreed
 *   record is kept in wsync_schema, its generation in wsync_meta.
 *
 * SQL text from a peer is never run as it comes: it is prepared under an
 * authorizer that allows only the CREATE of the object the record names,
 * and once created, its stored text must be the record's, byte for byte,
 * and a view or trigger must touch only tracked tables.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

#define SQL_AGREED "SELECT type, name, tbl, sql FROM wsync_schema ORDER BY seq"

/* Authorizer state: what a prepared statement may do, and what it did. */
struct authz {
	struct ws_store *s;
	int expect;          /* SQLITE_CREATE_* allowed, or 0 to only watch */
	const char *name;    /* the object it may create */
	const char *table;   /* the table an index or trigger must be on */
	const char *trigger; /* watch: accesses on behalf of this trigger only */
	int bad;             /* a forbidden action was attempted */
	char **views;        /* watch: the views here (their reads are checked
	                        on their own behalf) */
	size_t nviews;
	char what[256];      /* the first table touched outside the set */
};

static int tracked(struct ws_store *s, const char *name)
{
	return name && sto_find_tbl(s, name) != NULL;
}

/* Skip blanks and SQL comments. */
static const char *skip_blank(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f')
			p++;
		if (p[0] == '-' && p[1] == '-') {
			while (*p && *p != '\n')
				p++;
		} else if (p[0] == '/' && p[1] == '*') {
			const char *e = strstr(p + 2, "*/");

			p = e ? e + 2 : p + strlen(p);
		} else {
			return p;
		}
	}
}

/*
 * Read one token at p into out (n bytes; quotes taken off, doubled
 * quotes made single): a quoted string or name ('..', "..", `..`, [..]),
 * or a run of other characters up to a blank, comma, parenthesis or
 * '='.  The position after it, or NULL (nothing there, unterminated, or
 * longer than out).
 */
static const char *token(const char *p, char *out, size_t n)
{
	size_t k = 0;
	char close;

	p = skip_blank(p);
	if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
		close = *p == '[' ? ']' : *p;
		for (p++; *p; p++) {
			if (*p == close && !(close != ']' && p[1] == close))
				break;
			if (*p == close)
				p++;
			if (k + 1 >= n)
				return NULL;
			out[k++] = *p;
		}
		if (*p != close)
			return NULL;
		out[k] = 0;
		return p + 1;
	}
	while (*p && !strchr(" \t\n\r\f,()=", *p)) {
		if (k + 1 >= n)
			return NULL;
		out[k++] = *p++;
	}
	out[k] = 0;
	return k ? p : NULL;
}

/*
 * Is sql "CREATE VIRTUAL TABLE name USING fts5(..., content=T, ...)"?
 * Then 1, with T in content (n bytes); else 0.
 */
static int fts5_content(const char *sql, char *content, size_t n)
{
	static const char *const head[] = {"CREATE", "VIRTUAL", "TABLE"};
	char w[WS_SCHEMA_MAX_NAME + 1], key[16];
	const char *p = sql;
	size_t i;
	int found = 0;

	for (i = 0; i < 3; i++)
		if (!p || !(p = token(p, w, sizeof(w))) || sqlite3_stricmp(w, head[i]))
			return 0;
	/* [schema.]name USING fts5 ( */
	if (!(p = token(p, w, sizeof(w))))
		return 0;
	if (*skip_blank(p) == '.' && !(p = token(skip_blank(p) + 1, w, sizeof(w))))
		return 0;
	if (!(p = token(p, w, sizeof(w))) || sqlite3_stricmp(w, "USING") ||
	    !(p = token(p, w, sizeof(w))) || sqlite3_stricmp(w, "fts5") ||
	    *(p = skip_blank(p)) != '(')
		return 0;
	/* Each argument: "key = value", or anything else up to a comma. */
	for (p++;;) {
		const char *a = skip_blank(p), *q = token(a, key, sizeof(key));

		if (q && *skip_blank(q) == '=' && sqlite3_stricmp(key, "content") == 0) {
			if (!(q = token(skip_blank(q) + 1, content, n)))
				return 0;
			found = content[0] != 0;
			p = q;
		} else {
			/* Skip the argument, minding quotes and parentheses. */
			int depth = 0;

			for (p = a; *p && (depth || (*p != ',' && *p != ')')); ) {
				if (*p == '\'' || *p == '"' || *p == '`' || *p == '[') {
					if (!(p = token(p, w, sizeof(w))))
						return 0;
					continue;
				}
				depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
				p++;
			}
		}
		p = skip_blank(p);
		if (*p == ',') {
			p++;
			continue;
		}
		return *p == ')' && found;
	}
}

/*
 * Does table object `name` (its CREATE text sql) travel as an FTS5 table
 * rebuilt from a tracked content table?
 */
static int fts5_travels(struct ws_store *s, const char *sql)
{
	char content[WS_SCHEMA_MAX_NAME + 1];

	return sql && fts5_content(sql, content, sizeof(content)) && tracked(s, content);
}

static int is_view(const struct authz *z, const char *name)
{
	size_t i;

	for (i = 0; name && i < z->nviews; i++)
		if (strcmp(z->views[i], name) == 0)
			return 1;
	return 0;
}

/*
 * Load the names of the views here, and of the FTS5 tables that travel,
 * into z (an authorizer may not query).
 */
static int load_views(struct ws_store *s, struct authz *z, char *err)
{
	sqlite3_stmt *st;
	char **p;
	int rc;

	/* FTS5 tables that travel count as views: the working set has them. */
	if ((rc = sto_prep(s->db, "SELECT name, type, sql FROM sqlite_schema WHERE type = "
	    "'view' OR (type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%')", &st, err)))
		return rc;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (strcmp((const char *)sqlite3_column_text(st, 1), "table") == 0 &&
		    !fts5_travels(s, (const char *)sqlite3_column_text(st, 2)))
			continue;
		if (!(p = realloc(z->views, (z->nviews + 1) * sizeof(*p))) ||
		    !(p[z->nviews] = strdup((const char *)sqlite3_column_text(st, 0)))) {
			if (p)
				z->views = p;
			rc = WS_ENOMEM;
			break;
		}
		z->views = p;
		z->nviews++;
	}
	sqlite3_finalize(st);
	return rc;
}

static void authz_release(struct authz *z)
{
	size_t i;

	for (i = 0; i < z->nviews; i++)
		free(z->views[i]);
	free(z->views);
	z->views = NULL;
	z->nviews = 0;
}

/*
 * Watch mode: note the first table read or written that is not tracked
 * (views are expanded by SQLite into the tables they read).
 */
static int watch_cb(void *cd, int action, const char *a1, const char *a2,
    const char *db, const char *inner)
{
	struct authz *z = cd;

	(void)a2;
	(void)db;
	/* Only what is done on the object's behalf: a view's statement
	 * reads the view itself at the top level. */
	if (!inner || (z->trigger && strcmp(inner, z->trigger) != 0))
		return SQLITE_OK;
	switch (action) {
	case SQLITE_READ: case SQLITE_INSERT: case SQLITE_UPDATE: case SQLITE_DELETE:
		if (!tracked(z->s, a1) && !is_view(z, a1) && !z->bad) {
			z->bad = 1;
			snprintf(z->what, sizeof(z->what), "%s", a1 ? a1 : "?");
		}
		return SQLITE_OK;
	default:
		return SQLITE_OK;
	}
}

/* Create mode: only the one CREATE, and SQLite's own bookkeeping. */
static int create_cb(void *cd, int action, const char *a1, const char *a2,
    const char *db, const char *inner)
{
	struct authz *z = cd;

	(void)db;
	(void)inner;
	switch (action) {
	case SQLITE_CREATE_TABLE: case SQLITE_CREATE_VIEW:
		if (action == z->expect && a1 && strcmp(a1, z->name) == 0)
			return SQLITE_OK;
		/* AUTOINCREMENT makes SQLite create its own sequence table. */
		if (action == SQLITE_CREATE_TABLE && z->expect == action && a1 &&
		    strcmp(a1, "sqlite_sequence") == 0)
			return SQLITE_OK;
		break;
	case SQLITE_CREATE_INDEX: case SQLITE_CREATE_TRIGGER:
		if (action == z->expect && a1 && a2 && strcmp(a1, z->name) == 0 &&
		    strcmp(a2, z->table) == 0)
			return SQLITE_OK;
		/* UNIQUE and PRIMARY KEY constraints: SQLite's own indexes. */
		if (action == SQLITE_CREATE_INDEX && z->expect == SQLITE_CREATE_TABLE &&
		    a1 && a2 && strncmp(a1, "sqlite_autoindex_", 17) == 0 &&
		    strcmp(a2, z->name) == 0)
			return SQLITE_OK;
		break;
	case SQLITE_CREATE_VTABLE:
		/* a1 the table, a2 the module: FTS5 alone */
		if (action == z->expect && a1 && strcmp(a1, z->name) == 0 && a2 &&
		    sqlite3_stricmp(a2, "fts5") == 0)
			return SQLITE_OK;
		break;
	case SQLITE_ALTER_TABLE:
		/* a1 is the database, a2 the table */
		if (action == z->expect && a2 && strcmp(a2, z->name) == 0)
			return SQLITE_OK;
		break;
	case SQLITE_REINDEX:
		if (z->expect == SQLITE_CREATE_INDEX && a1 && strcmp(a1, z->name) == 0)
			return SQLITE_OK;
		break;
	case SQLITE_INSERT: case SQLITE_UPDATE:
		if (a1 && (strcmp(a1, "sqlite_master") == 0 ||
		    strcmp(a1, "sqlite_sequence") == 0))
			return SQLITE_OK;
		break;
	case SQLITE_READ: case SQLITE_SELECT: case SQLITE_FUNCTION:
		return SQLITE_OK;
	default:
		break;
	}
	z->bad = 1;
	return SQLITE_DENY;
}

/*
 * Run text from a peer (or from this copy's schema, which a peer may
 * have written) on db as exactly one statement, under z's authorizer:
 * it may only do z->expect to z->name.  0, or RUN_REFUSED (it does not
 * parse, or does anything else), RUN_MORE (a second statement follows)
 * or RUN_FAILED (it ran and SQLite refused it); db's message tells why.
 * Never sqlite3_exec() such text: it runs every statement it holds.
 */
enum { RUN_REFUSED = 1, RUN_MORE, RUN_FAILED };

static int run_one(sqlite3 *db, const char *sql, struct authz *z)
{
	const char *tail = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	z->bad = 0;
	sqlite3_set_authorizer(db, create_cb, z);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, &tail);
	sqlite3_set_authorizer(db, NULL, NULL);
	if (rc != SQLITE_OK || !st) {
		sqlite3_finalize(st);
		return RUN_REFUSED;
	}
	while (tail && (*tail == ' ' || *tail == '\t' || *tail == '\n' ||
	    *tail == '\r' || *tail == ';'))
		tail++;
	if (tail && *tail)
		rc = RUN_MORE;
	else
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : RUN_FAILED;
	sqlite3_finalize(st);
	return rc;
}

/* A scratch copy of table `name` made from `sql` in a new memory database. */
static sqlite3 *scratch(const char *name, const char *sql)
{
	struct authz z = {NULL, SQLITE_CREATE_TABLE, name, name, NULL, 0, NULL, 0, ""};
	sqlite3 *db = NULL;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK || run_one(db, sql, &z)) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/*
 * Prepare the text of q under the watching authorizer (never stepped).
 * Ends q.  0, or WS_ENOMEM when building the text failed.
 */
static int watch(struct ws_store *s, struct authz *z, sqlite3_str *q)
{
	sqlite3_stmt *st = NULL;
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, NULL)))
		return rc;
	sqlite3_set_authorizer(s->db, watch_cb, z);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK && !z->bad) {
		z->bad = 1;
		snprintf(z->what, sizeof(z->what), "%s", sqlite3_errmsg(s->db));
	}
	sqlite3_set_authorizer(s->db, NULL, NULL);
	sqlite3_finalize(st);
	sqlite3_free(sql);
	return 0;
}

/*
 * Does the view or trigger `name` touch only tracked tables?  For a
 * trigger on `table`, every statement that could fire it is prepared
 * (never run), and the accesses made on its behalf are checked.  1 yes,
 * 0 no (z->what names the first other table), or a negative WS_E* code.
 */
static int travels(struct ws_store *s, unsigned type, const char *name,
    const char *table, struct authz *z)
{
	sqlite3_str *q;
	struct tbl *t;
	uint32_t i;
	int rc;

	memset(z, 0, sizeof(*z));
	z->s = s;
	if ((rc = load_views(s, z, NULL))) {
		authz_release(z);
		return rc;
	}
	if (type == WS_OBJ_VIEW) {
		q = sqlite3_str_new(s->db);
		sqlite3_str_appendf(q, "SELECT * FROM \"%w\"", name);
		rc = watch(s, z, q);
	} else {
		if (!(t = sto_find_tbl(s, table))) {
			snprintf(z->what, sizeof(z->what), "%s", table);
			authz_release(z);
			return 0;
		}
		z->trigger = name;
		q = sqlite3_str_new(s->db);
		sqlite3_str_appendf(q, "INSERT INTO \"%w\" DEFAULT VALUES", t->name);
		rc = watch(s, z, q);
		if (rc == 0) {
			q = sqlite3_str_new(s->db);
			sqlite3_str_appendf(q, "DELETE FROM \"%w\"", t->name);
			rc = watch(s, z, q);
		}
		if (rc == 0) {
			q = sqlite3_str_new(s->db);
			sqlite3_str_appendf(q, "UPDATE \"%w\"", t->name);
			for (i = 0; i < t->ncols; i++)
				sqlite3_str_appendf(q, "%s\"%w\" = \"%w\"", i ? ", " : " SET ",
				    t->cols[i], t->cols[i]);
			rc = watch(s, z, q);
		}
	}
	authz_release(z);
	if (rc)
		return rc;
	return !z->bad;
}

static int load_agreed(struct ws_store *s, struct ws_schema *out, char *err);
static int agreed_views(struct ws_store *s, struct ws_schema *out, char *err);

/*
 * The schema as it stands in this database, into out (replacing it):
 * tracked tables, their indexes, and the views and triggers that travel.
 * out->gen is the last agreed generation.
 */
static int collect(struct ws_store *s, struct ws_schema *out, char *err)
{
	sqlite3_stmt *st = NULL;
	struct authz z;
	size_t i;
	int rc;

	ws_schema_release(out);
	out->gen = (uint64_t)sto_meta_int(s, "schema_gen");
	if ((rc = sto_prep(s->db, "SELECT type, name, tbl_name, sql FROM sqlite_schema "
	    "WHERE sql IS NOT NULL AND type IN ('table', 'index', 'view', 'trigger') "
	    "AND name NOT LIKE 'wsync\\_%' ESCAPE '\\' AND name NOT LIKE "
	    "'sqlite\\_%' ESCAPE '\\' ORDER BY rowid", &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *tbl = (const char *)sqlite3_column_text(st, 2);
		const char *sql = (const char *)sqlite3_column_text(st, 3);
		unsigned ty = ws_objtype_from_name(type);

		if (!ty || !name || !tbl || !sql)
			continue;
		if ((ty == WS_OBJ_TABLE || ty == WS_OBJ_INDEX) && !tracked(s, tbl) &&
		    !(ty == WS_OBJ_TABLE && fts5_travels(s, sql)))
			continue;
		/* Views and triggers are decided below, once every table is known. */
		if ((rc = ws_schema_add(out, ty, name, tbl, sql, err)))
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "schema", err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = 0;
	for (i = 0; i < out->n; ) {
		struct ws_schema_obj *o = &out->obj[i];
		int r = 1;

		if (o->type == WS_OBJ_VIEW || o->type == WS_OBJ_TRIGGER)
			r = s->local_views ? 0 : travels(s, o->type, o->name, o->table, &z);
		if (r < 0) {
			rc = r;
			goto out;
		}
		if (r) {
			i++;
			continue;
		}
		free(o->name);
		free(o->table);
		free(o->sql);
		memmove(o, o + 1, (out->n - i - 1) * sizeof(*o));
		out->n--;
	}
	/* Views and triggers kept local: the record says the working set's
	 * as last agreed, so no peer reads their absence as a drop. */
	if (s->local_views && (rc = agreed_views(s, out, err)))
		goto out;
out:
	sqlite3_finalize(st);
	if (rc)
		ws_schema_release(out);
	return rc;
}

void ws_store_keep_views_local(struct ws_store *s, int on)
{
	s->local_views = on != 0;
	s->schema_told = -1;
}

int ws_store_schema(struct ws_store *s, struct ws_schema *out, char *err)
{
	return collect(s, out, err);
}

/* The last agreed record, from wsync_schema. */
static int load_agreed(struct ws_store *s, struct ws_schema *out, char *err)
{
	sqlite3_stmt *st;
	int rc;

	ws_schema_release(out);
	out->gen = (uint64_t)sto_meta_int(s, "schema_gen");
	if ((rc = sto_prep(s->db, SQL_AGREED, &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = ws_schema_add(out, (unsigned)sqlite3_column_int(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    (const char *)sqlite3_column_text(st, 3), err)))
			break;
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 0;
	return rc < 0 ? rc : ws_error(err, WS_ECORRUPT, "wsync_schema is damaged");
}

/* Add the views and triggers of the last agreed record to out. */
static int agreed_views(struct ws_store *s, struct ws_schema *out, char *err)
{
	struct ws_schema agreed = WS_SCHEMA_INIT;
	size_t i;
	int rc;

	if ((rc = load_agreed(s, &agreed, err)))
		return rc;
	for (i = 0; rc == 0 && i < agreed.n; i++)
		if (agreed.obj[i].type == WS_OBJ_VIEW || agreed.obj[i].type == WS_OBJ_TRIGGER)
			rc = ws_schema_add(out, agreed.obj[i].type, agreed.obj[i].name,
			    agreed.obj[i].table, agreed.obj[i].sql, err);
	ws_schema_release(&agreed);
	return rc;
}

/* Make sc the last agreed record. */
static int save_agreed(struct ws_store *s, const struct ws_schema *sc, char *err)
{
	sqlite3_stmt *st;
	size_t i;
	int rc;

	if ((rc = sto_exec(s->db, "DELETE FROM wsync_schema", err)) ||
	    (rc = sto_meta_set_int(s, "schema_gen", (int64_t)sc->gen, err)) ||
	    (rc = sto_prep(s->db, "INSERT INTO wsync_schema(type, name, tbl, sql) VALUES(?1, ?2, ?3, ?4)", &st,
	    err)))
		return rc;
	for (i = 0; rc == 0 && i < sc->n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, sc->obj[i].type);
		sqlite3_bind_text(st, 2, sc->obj[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, sc->obj[i].table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, sc->obj[i].sql, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "schema", err);
	}
	sqlite3_finalize(st);
	return rc;
}

int ws_store_schema_pending(struct ws_store *s, struct ws_schema *out, char *err)
{
	struct ws_schema agreed = WS_SCHEMA_INIT;
	int rc, ver;

	if ((rc = sto_schema_version(s, &ver, err)))
		return rc;
	if (ver == s->schema_told)
		return 0;
	if ((rc = collect(s, out, err)) || (rc = load_agreed(s, &agreed, err)))
		goto out;
	s->schema_told = ver;
	rc = !ws_schema_same(out, &agreed);
out:
	ws_schema_release(&agreed);
	return rc;
}

/* The stored text of an object here, or NULL; the caller frees it. */
static char *local_sql(struct ws_store *s, const char *type, const char *name)
{
	sqlite3_stmt *st;
	char *sql = NULL;

	if (sto_prep(s->db, "SELECT sql FROM sqlite_schema WHERE type = ?1 AND name = ?2",
	    &st, NULL))
		return NULL;
	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		sql = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return sql;
}

/* Is `name` taken here by any object (of any type)? */
static int name_taken(struct ws_store *s, const char *name, char *type, size_t n)
{
	sqlite3_stmt *st;
	int taken = 0;

	if (sto_prep(s->db, "SELECT type FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE",
	    &st, NULL))
		return 1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		taken = 1;
		snprintf(type, n, "%s", sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	return taken;
}

/* Some of s, for a message: at most 60 bytes from off, controls as '?'. */
static void snippet(char *out, size_t n, const char *s, size_t off)
{
	size_t len = strlen(s), i, k = 0;

	if (off > len)
		off = len;
	for (i = off; i < len && i < off + 60 && k + 1 < n; i++)
		out[k++] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	out[k] = 0;
}

/*
 * The first difference between a site's definition of table `name`
 * (`local`, where `where` says: "here" on the site itself, "at the site"
 * on the hub) and the working set's (`ws`), as a message into err.
 */
static int differs(const char *name, const char *local, const char *ws,
    const char *where, char *err)
{
	static const char *const what[] = {"", "name", "type", "NOT NULL", "DEFAULT",
	    "key position", "hidden"};
	sqlite3 *dm = scratch(name, local), *dw = scratch(name, ws);
	char *q = sqlite3_mprintf("PRAGMA table_xinfo(%Q)", name), sa[64], sb[64];
	sqlite3_stmt *a = NULL, *b = NULL;
	int rc = 0, ra, rb, k;
	size_t i;

	/* Column by column, from scratch copies of both definitions. */
	if (!dm || !dw) {
		rc = ws_error(err, WS_ESCHEMA, "table '%s': the %s%s is not a CREATE "
		    "table of it", name, dw ? "definition " : "working set's definition",
		    dw ? where : "");
		goto out;
	}
	if (!q || sqlite3_prepare_v2(dm, q, -1, &a, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(dw, q, -1, &b, NULL) != SQLITE_OK)
		goto text;
	for (i = 1; rc == 0; i++) {
		ra = sqlite3_step(a);
		rb = sqlite3_step(b);
		if (ra != SQLITE_ROW && rb != SQLITE_ROW)
			break;
		if (ra != SQLITE_ROW || rb != SQLITE_ROW) {
			rc = ws_error(err, WS_ESCHEMA, "table '%s' differs from the working "
			    "set's: column %zu ('%s') is %s %s", name, i, sqlite3_column_text(
			    ra == SQLITE_ROW ? a : b, 1), ra == SQLITE_ROW ? "only" :
			    "missing", where);
			goto out;
		}
		for (k = 1; k <= 6; k++) {
			const char *x = (const char *)sqlite3_column_text(a, k);
			const char *y = (const char *)sqlite3_column_text(b, k);

			if ((x || y) && (!x || !y || strcmp(x, y) != 0)) {
				rc = ws_error(err, WS_ESCHEMA, "table '%s' differs from the "
				    "working set's: column %zu ('%s'): %s '%s' %s, '%s' in "
				    "the working set", name, i, sqlite3_column_text(a, 1),
				    what[k], x ? x : "", where, y ? y : "");
				goto out;
			}
		}
	}
text:
	/* Same columns: the constraints or options differ. */
	for (i = 0; local[i] && local[i] == ws[i]; i++)
		;
	snippet(sa, sizeof(sa), local, i);
	snippet(sb, sizeof(sb), ws, i);
	rc = ws_error(err, WS_ESCHEMA, "table '%s' differs from the working set's at "
	    "byte %zu of its definition: '%s' %s, '%s' in the working set", name, i,
	    sa, where, sb);
out:
	sqlite3_finalize(a);
	sqlite3_finalize(b);
	sqlite3_close(dm);
	sqlite3_close(dw);
	sqlite3_free(q);
	return rc;
}

/* Text of the scratch copy's table `name`, or NULL. */
static char *scratch_sql(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st;
	char *sql = NULL;

	if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'table' "
	    "AND name = ?1", -1, &st, NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		sql = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return sql;
}

/*
 * Is `theirs` the text SQLite makes of `mine` by ALTER TABLE ADD COLUMN,
 * once or more?  Then the column definitions added go into defs (each
 * NUL-terminated, one after the other; *ndefs of them) and 1 is
 * returned; 0 otherwise.  SQLite writes ", <definition>" before the
 * column list's closing parenthesis; the definitions are found by
 * trying each split on a scratch copy, and the result must give
 * `theirs` byte for byte.
 */
static int added_columns(const char *name, const char *mine, const char *theirs,
    struct ws_buf *defs, unsigned *ndefs)
{
	struct authz z = {NULL, SQLITE_ALTER_TABLE, name, name, NULL, 0, NULL, 0, ""};
	size_t lm = strlen(mine), lt = strlen(theirs), k, pos, j, tail;
	sqlite3 *db = NULL;
	char *q, *now;
	int ok = 0;

	*ndefs = 0;
	if (lt <= lm + 2)
		return 0;
	for (k = lm; k-- > 0 && !ok; ) {
		if (mine[k] != ')')
			continue;
		tail = lm - k;
		if (strncmp(mine, theirs, k) != 0 || strcmp(mine + k, theirs + lt - tail) ||
		    strncmp(theirs + k, ", ", 2) != 0)
			continue;
		/* theirs = mine[0..k) ", d1, d2..." mine[k..) */
		if (!(db = scratch(name, mine)))
			return 0;
		defs->len = 0;
		*ndefs = 0;
		pos = k + 2;
		while (pos < lt - tail) {
			int found = 0;

			for (j = pos + 1; j <= lt - tail && !found; j++) {
				if (j < lt - tail && strncmp(theirs + j, ", ", 2) != 0)
					continue;
				q = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN %.*s", name,
				    (int)(j - pos), theirs + pos);
				if (!q)
					break;
				sqlite3_exec(db, "SAVEPOINT a", NULL, NULL, NULL);
				if (run_one(db, q, &z) == 0 && (now = scratch_sql(db, name))) {
					found = strlen(now) == j + tail &&
					    strncmp(now, theirs, j) == 0 &&
					    strcmp(now + j, mine + k) == 0;
					free(now);
				}
				sqlite3_exec(db, found ? "RELEASE a" : "ROLLBACK TO a; RELEASE a",
				    NULL, NULL, NULL);
				sqlite3_free(q);
				if (found) {
					if (ws_buf_append(defs, theirs + pos, j - pos) ||
					    ws_buf_putc(defs, 0)) {
						found = 0;
						break;
					}
					(*ndefs)++;
					pos = j + 2;
				}
			}
			if (!found)
				break;
		}
		ok = pos >= lt - tail && *ndefs > 0;
		sqlite3_close(db);
		db = NULL;
	}
	return ok;
}

/*
 * Run the CREATE statement of o here, checked: it must create exactly o
 * (type, name, table) and store o's text unchanged.
 */
static int create_object(struct ws_store *s, const struct ws_schema_obj *o, char *err)
{
	static const int action[] = {0, SQLITE_CREATE_TABLE, SQLITE_CREATE_INDEX,
	    SQLITE_CREATE_VIEW, SQLITE_CREATE_TRIGGER};
	int virt = o->type == WS_OBJ_TABLE && sqlite3_strnicmp(o->sql, "CREATE VIRTUAL", 14) == 0;
	struct authz z = {s, virt ? SQLITE_CREATE_VTABLE : action[o->type], o->name,
	    o->table, NULL, 0, NULL, 0, ""};
	const char *kind = ws_objtype_name(o->type);
	char *got, taken[16];
	int rc = 0;

	if (sto_reserved_name(o->name) || sto_reserved_name(o->table))
		return ws_error(err, WS_ESCHEMA, "%s '%s': the name is reserved", kind,
		    o->name);
	if ((o->type == WS_OBJ_TABLE || o->type == WS_OBJ_VIEW) &&
	    strcmp(o->name, o->table) != 0)
		return ws_error(err, WS_ESCHEMA, "%s '%s': bad schema record", kind,
		    o->name);
	if (name_taken(s, o->name, taken, sizeof(taken)))
		return ws_error(err, WS_ESCHEMA, "%s '%s': the name is taken here by "
		    "a %s", kind, o->name, taken);
	switch (run_one(s->db, o->sql, &z)) {
	case RUN_REFUSED:
		return ws_error(err, WS_ESCHEMA, "%s '%s': the working set's definition "
		    "is not a CREATE %s of it%s%s", kind, o->name, kind,
		    z.bad ? "" : ": ", z.bad ? "" : sqlite3_errmsg(s->db));
	case RUN_MORE:
		return ws_error(err, WS_ESCHEMA, "%s '%s': the working set's definition "
		    "holds more than one statement", kind, o->name);
	case RUN_FAILED:
		return ws_error(err, WS_ESCHEMA, "%s '%s': %s", kind, o->name,
		    sqlite3_errmsg(s->db));
	}
	if (!(got = local_sql(s, kind, o->name)) || strcmp(got, o->sql) != 0)
		rc = ws_error(err, WS_ESCHEMA, "%s '%s': the working set's definition "
		    "is not a CREATE %s of it", kind, o->name, kind);
	free(got);
	return rc;
}

/* Track table `name`, created or found here (WS_ESCHEMA if it cannot be). */
static int track_one(struct ws_store *s, const char *name, char *err)
{
	struct tbl t;
	int rc;

	if (sto_find_tbl(s, name))
		return 0;
	if ((rc = sto_describe(s, name, &t, err)))
		return rc == WS_ENOTFOUND ? ws_error(err, WS_ESCHEMA, "no table '%s'",
		    name) : rc;
	rc = sto_register_table(s, &t, err);
	sto_tbl_release(&t);
	return rc;
}

/* Rebuild FTS5 table `name` from its content table. */
static int fts5_rebuild(struct ws_store *s, const char *name, char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);

	sqlite3_str_appendf(q, "INSERT INTO \"%w\"(\"%w\") VALUES('rebuild')", name, name);
	return sto_str_exec(s->db, q, err);
}

int sto_fts_rebuild(struct ws_store *s, uint64_t first, char *err)
{
	char content[WS_SCHEMA_MAX_NAME + 1];
	sqlite3_stmt *st = NULL, *chg = NULL;
	char **names = NULL, **p;
	size_t n = 0, i;
	struct tbl *t;
	int rc;

	/* The names first: no cursor on the schema while tables change. */
	if ((rc = sto_prep(s->db, "SELECT name, sql FROM sqlite_schema WHERE type = "
	    "'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'", &st, err)) ||
	    (rc = sto_prep(s->db, "SELECT 1 FROM wsync_log WHERE tbl = ?1 AND usn >= ?2 "
	    "LIMIT 1", &chg, err)))
		goto out;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *sql = (const char *)sqlite3_column_text(st, 1);

		if (!sql || !fts5_content(sql, content, sizeof(content)) ||
		    !(t = sto_find_tbl(s, content)))
			continue;
		sqlite3_reset(chg);
		sqlite3_bind_int64(chg, 1, t->id);
		sqlite3_bind_int64(chg, 2, (int64_t)first);
		if (sqlite3_step(chg) != SQLITE_ROW)
			continue;
		if (!(p = realloc(names, (n + 1) * sizeof(*p))) ||
		    !(p[n] = strdup((const char *)sqlite3_column_text(st, 0)))) {
			if (p)
				names = p;
			rc = WS_ENOMEM;
			goto out;
		}
		names = p;
		n++;
	}
	sqlite3_finalize(st);
	st = NULL;
	for (i = 0; rc == 0 && i < n; i++)
		rc = fts5_rebuild(s, names[i], err);
out:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	sqlite3_finalize(st);
	sqlite3_finalize(chg);
	return rc;
}

int sto_fts_travels(struct ws_store *s, const char *sql)
{
	return fts5_travels(s, sql);
}

/* Adopt table o of a record (see the rule at the top). */
static int adopt_table(struct ws_store *s, const struct ws_schema_obj *o, int hub,
    int *changed, char *err)
{
	struct authz z = {s, SQLITE_ALTER_TABLE, o->name, o->name, NULL, 0, NULL, 0, ""};
	struct ws_buf defs = WS_BUF_INIT;
	char *mine = local_sql(s, "table", o->name), *sql;
	sqlite3_str *q;
	const char *d;
	unsigned n, i;
	struct tbl *t;
	int rc = 0;

	if (sqlite3_strnicmp(o->sql, "CREATE VIRTUAL", 14) == 0) {
		/* An FTS5 table on a tracked content table: made and rebuilt. */
		if (!fts5_travels(s, o->sql))
			rc = ws_error(err, WS_ESCHEMA, "virtual table '%s': only FTS5 "
			    "tables with a tracked content table travel", o->name);
		else if (mine && strcmp(mine, o->sql) != 0)
			rc = ws_error(err, WS_ESCHEMA, "virtual table '%s' differs from "
			    "the working set's", o->name);
		else if (!mine && (rc = create_object(s, o, err)) == 0 &&
		    (rc = fts5_rebuild(s, o->name, err)) == 0)
			*changed = 1;
		goto out;
	}
	if (!mine) {
		if ((rc = create_object(s, o, err)) == 0 &&
		    (rc = track_one(s, o->name, err)) == 0)
			*changed = 1;
		goto out;
	}
	if (strcmp(mine, o->sql) == 0 || added_columns(o->name, o->sql, mine, &defs, &n)) {
		/* The same, or this copy is ahead: its record tells the peer. */
		rc = track_one(s, o->name, err);
		goto out;
	}
	if (!added_columns(o->name, mine, o->sql, &defs, &n)) {
		/* On the hub the working set's definition is its own. */
		rc = hub ? differs(o->name, o->sql, mine, "at the site", err) :
		    differs(o->name, mine, o->sql, "here", err);
		goto out;
	}
	for (i = 0, d = (const char *)defs.p; rc == 0 && i < n; i++, d += strlen(d) + 1) {
		q = sqlite3_str_new(s->db);
		sqlite3_str_appendf(q, "ALTER TABLE \"%w\" ADD COLUMN %s", o->name, d);
		if ((rc = sto_str_finish(q, &sql, err)) == 0 && run_one(s->db, sql, &z))
			rc = ws_error(err, WS_ESCHEMA, "table '%s': cannot add column "
			    "'%s': %s", o->name, d, sqlite3_errmsg(s->db));
		sqlite3_free(sql);
	}
	free(mine);
	mine = rc ? NULL : local_sql(s, "table", o->name);
	if (rc == 0 && (!mine || strcmp(mine, o->sql) != 0))
		rc = ws_error(err, WS_ESCHEMA, "table '%s': adding its new columns "
		    "did not give the working set's definition", o->name);
	if (rc == 0 && (rc = track_one(s, o->name, err)) == 0 &&
	    (t = sto_find_tbl(s, o->name)) && (rc = sto_retrack(s, t, err)) == 0)
		*changed = 1;
out:
	free(mine);
	ws_buf_release(&defs);
	return rc;
}

/* DROP the index, view or trigger o here. */
static int drop_object(struct ws_store *s, unsigned type, const char *name, char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);

	sqlite3_str_appendf(q, "DROP %s \"%w\"", type == WS_OBJ_INDEX ? "INDEX" :
	    type == WS_OBJ_VIEW ? "VIEW" : "TRIGGER", name);
	return sto_str_exec(s->db, q, err);
}

/* Adopt an index, view or trigger of a record. */
static int adopt_other(struct ws_store *s, const struct ws_schema_obj *o,
    const struct ws_schema *agreed, int newer, int *changed, char *err)
{
	const struct ws_schema_obj *a = ws_schema_find(agreed, o->type, o->name);
	const char *kind = ws_objtype_name(o->type);
	char *mine = local_sql(s, kind, o->name);
	struct authz z;
	int rc = 0;

	if (s->local_views && o->type != WS_OBJ_INDEX)
		goto out; /* this copy keeps its views and triggers to itself */
	if (mine && strcmp(mine, o->sql) == 0)
		goto out;
	if (mine) {
		/* Replaced only by a newer record, and only if unchanged here. */
		if (!newer || !a || strcmp(a->sql, mine) != 0)
			goto out;
		if ((rc = drop_object(s, o->type, o->name, err)))
			goto out;
	} else if (a && strcmp(a->sql, o->sql) == 0) {
		goto out; /* dropped here since it was agreed: the drop travels */
	}
	if ((rc = create_object(s, o, err)))
		goto out;
	if (o->type != WS_OBJ_INDEX) {
		if ((rc = travels(s, o->type, o->name, o->table, &z)) < 0)
			goto out;
		if (rc == 0) {
			rc = ws_error(err, WS_ESCHEMA, "%s '%s' touches table '%s', which "
			    "is not in the working set", kind, o->name, z.what);
			goto out;
		}
		rc = 0;
	}
	*changed = 1;
out:
	free(mine);
	return rc;
}

int ws_store_adopt_schema(struct ws_store *s, const struct ws_schema *in, int hub,
    int *changed, char *err)
{
	struct ws_schema agreed = WS_SCHEMA_INIT, now = WS_SCHEMA_INIT;
	size_t i;
	int rc, newer, ch = 0;

	if (changed)
		*changed = 0;
	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = load_agreed(s, &agreed, err)))
		goto out;
	newer = hub ? in->gen == agreed.gen : in->gen > agreed.gen;
	/* In the record's order, which is its sender's sqlite_schema order. */
	for (i = 0; rc == 0 && i < in->n; i++)
		rc = in->obj[i].type == WS_OBJ_TABLE ?
		    adopt_table(s, &in->obj[i], hub, &ch, err) :
		    adopt_other(s, &in->obj[i], &agreed, newer, &ch, err);
	/* What a newer record lacks, and this copy kept as agreed, goes. */
	for (i = 0; rc == 0 && newer && i < agreed.n; i++) {
		const struct ws_schema_obj *a = &agreed.obj[i];
		char *mine;

		if (a->type == WS_OBJ_TABLE || ws_schema_find(in, a->type, a->name) ||
		    (s->local_views && a->type != WS_OBJ_INDEX))
			continue;
		mine = local_sql(s, ws_objtype_name(a->type), a->name);
		if (mine && strcmp(mine, a->sql) == 0 &&
		    (rc = drop_object(s, a->type, a->name, err)) == 0)
			ch = 1;
		free(mine);
	}
	if (rc || (rc = sto_triggers_last(s, 0, err)))
		goto out;
	if (hub) {
		/* The hub's schema is the working set's: number each new one. */
		if ((rc = collect(s, &now, err)))
			goto out;
		now.gen = agreed.gen + (ch || !ws_schema_same(&now, &agreed));
		if (now.gen != agreed.gen)
			ch = 1;
		rc = save_agreed(s, &now, err);
	} else if (in->gen >= agreed.gen) {
		rc = save_agreed(s, in, err);
	}
out:
	rc = sto_tables_end(s, rc, err);
	s->schema_told = -1;
	if (rc == 0 && changed)
		*changed = ch;
	ws_schema_release(&agreed);
	ws_schema_release(&now);
	return rc;
}

int sto_schema_check_local(struct ws_store *s, char *err)
{
	struct ws_schema agreed = WS_SCHEMA_INIT;
	struct ws_buf defs = WS_BUF_INIT;
	char *mine, why[WS_ERRLEN];
	unsigned n;
	size_t i;
	int rc;

	if ((rc = load_agreed(s, &agreed, err)))
		return rc;
	for (i = 0; rc == 0 && i < agreed.n; i++) {
		const struct ws_schema_obj *o = &agreed.obj[i];

		if (o->type != WS_OBJ_TABLE || !tracked(s, o->name) ||
		    !(mine = local_sql(s, "table", o->name)))
			continue;
		if (strcmp(mine, o->sql) != 0 &&
		    !added_columns(o->name, o->sql, mine, &defs, &n)) {
			differs(o->name, mine, o->sql, "here", why);
			rc = ws_error(err, WS_ESCHEMA, "%s: only ALTER TABLE ADD COLUMN "
			    "changes a tracked table (see MIGRATION in wsync(7))", why);
		}
		free(mine);
	}
	ws_schema_release(&agreed);
	ws_buf_release(&defs);
	return rc;
}
