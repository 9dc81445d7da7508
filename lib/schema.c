/* SPDX-License-Identifier: MIT */
/*
 * schema.c - schema records: building, comparing, and the binary codec.
 * See schema.h.  Nothing here touches SQLite: the store (store-schema.c)
 * reads and adopts records.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wsync/schema.h"

static const char *const type_names[] = {
	[WS_OBJ_TABLE] = "table",
	[WS_OBJ_INDEX] = "index",
	[WS_OBJ_VIEW] = "view",
	[WS_OBJ_TRIGGER] = "trigger",
};

const char *ws_objtype_name(unsigned type)
{
	return type >= WS_OBJ_TABLE && type <= WS_OBJ_TRIGGER ? type_names[type] : NULL;
}

unsigned ws_objtype_from_name(const char *name)
{
	unsigned t;

	for (t = WS_OBJ_TABLE; name && t <= WS_OBJ_TRIGGER; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return 0;
}

void ws_schema_init(struct ws_schema *sc)
{
	memset(sc, 0, sizeof(*sc));
}

void ws_schema_release(struct ws_schema *sc)
{
	size_t i;

	for (i = 0; i < sc->n; i++) {
		free(sc->obj[i].name);
		free(sc->obj[i].table);
		free(sc->obj[i].sql);
	}
	free(sc->obj);
	ws_schema_init(sc);
}

/* Index of the object named name (ASCII case aside, as SQLite), or n. */
static size_t find_name(const struct ws_schema *sc, const char *name)
{
	size_t i;

	for (i = 0; i < sc->n; i++)
		if (strcasecmp(sc->obj[i].name, name) == 0)
			break;
	return i;
}

static int check_str(const char *s, size_t max, const char *what, char *err)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0)
		return ws_error(err, WS_EINVAL, "schema record: empty %s", what);
	if (n > max)
		return ws_error(err, WS_EINVAL, "schema record: %s longer than %zu "
		    "bytes", what, max);
	if (!ws_utf8_valid((const uint8_t *)s, n))
		return ws_error(err, WS_EINVAL, "schema record: %s is not UTF-8", what);
	return 0;
}

/* Insert at position i (copies made before anything moves). */
static int insert_at(struct ws_schema *sc, size_t i, unsigned type,
    const char *name, const char *table, const char *sql)
{
	struct ws_schema_obj o = {(uint8_t)type, strdup(name), strdup(table), strdup(sql)};

	if (!o.name || !o.table || !o.sql)
		goto nomem;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 8;
		struct ws_schema_obj *p = realloc(sc->obj, cap * sizeof(*p));

		if (!p)
			goto nomem;
		sc->obj = p;
		sc->cap = cap;
	}
	memmove(&sc->obj[i + 1], &sc->obj[i], (sc->n - i) * sizeof(*sc->obj));
	sc->obj[i] = o;
	sc->n++;
	return 0;
nomem:
	free(o.name);
	free(o.table);
	free(o.sql);
	return WS_ENOMEM;
}

int ws_schema_add(struct ws_schema *sc, unsigned type, const char *name,
    const char *table, const char *sql, char *err)
{
	size_t i;
	int rc;

	if (!ws_objtype_name(type))
		return ws_error(err, WS_EINVAL, "schema record: unknown object type %u",
		    type);
	if ((rc = check_str(name, WS_SCHEMA_MAX_NAME, "name", err)) ||
	    (rc = check_str(table, WS_SCHEMA_MAX_NAME, "table name", err)) ||
	    (rc = check_str(sql, WS_SCHEMA_MAX_SQL, "SQL", err)))
		return rc;
	if ((i = find_name(sc, name)) < sc->n) {
		char *t, *s;

		if (sc->obj[i].type != type)
			return ws_error(err, WS_EINVAL, "schema record: two objects "
			    "named '%s'", name);
		if (!(t = strdup(table)) || !(s = strdup(sql))) {
			free(t);
			return WS_ENOMEM;
		}
		free(sc->obj[i].table);
		free(sc->obj[i].sql);
		sc->obj[i].table = t;
		sc->obj[i].sql = s;
		return 0;
	}
	if (sc->n >= WS_SCHEMA_MAX_OBJECTS)
		return ws_error(err, WS_ERANGE, "schema record: more than %d objects",
		    WS_SCHEMA_MAX_OBJECTS);
	return insert_at(sc, sc->n, type, name, table, sql);
}

const struct ws_schema_obj *ws_schema_find(const struct ws_schema *sc,
    unsigned type, const char *name)
{
	size_t i = find_name(sc, name);

	return i < sc->n && sc->obj[i].type == type ? &sc->obj[i] : NULL;
}

int ws_schema_same(const struct ws_schema *a, const struct ws_schema *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (a->obj[i].type != b->obj[i].type ||
		    strcmp(a->obj[i].name, b->obj[i].name) ||
		    strcmp(a->obj[i].table, b->obj[i].table) ||
		    strcmp(a->obj[i].sql, b->obj[i].sql))
			return 0;
	return 1;
}

static int put_str(struct ws_buf *out, const char *s)
{
	size_t n = strlen(s);
	int rc = ws_buf_put_varint(out, n);

	return rc ? rc : ws_buf_append(out, s, n);
}

int ws_schema_encode(const struct ws_schema *sc, struct ws_buf *out)
{
	size_t i;
	int rc;

	if ((rc = ws_buf_put_varint(out, WS_SCHEMA_FORMAT)) ||
	    (rc = ws_buf_put_varint(out, sc->gen)) ||
	    (rc = ws_buf_put_varint(out, sc->n)))
		return rc;
	for (i = 0; i < sc->n; i++)
		if ((rc = ws_buf_put_varint(out, sc->obj[i].type)) ||
		    (rc = put_str(out, sc->obj[i].name)) ||
		    (rc = put_str(out, sc->obj[i].table)) ||
		    (rc = put_str(out, sc->obj[i].sql)))
			return rc;
	return 0;
}

/* Read one string into a fresh NUL-terminated copy. */
static int get_str(struct ws_rd *r, size_t max, char **out, const char *what,
    const uint8_t *base, char *err)
{
	const uint8_t *p;
	size_t n;
	int rc;

	*out = NULL;
	if ((rc = ws_rd_bytes(r, max, &p, &n)))
		return ws_error(err, rc, "schema record: bad %s at byte %zu", what,
		    (size_t)(r->p - base));
	if (n == 0 || memchr(p, 0, n) || !ws_utf8_valid(p, n))
		return ws_error(err, WS_ECORRUPT, "schema record: %s at byte %zu is "
		    "not NUL-free UTF-8", what, (size_t)(r->p - base));
	if (!(*out = malloc(n + 1)))
		return WS_ENOMEM;
	memcpy(*out, p, n);
	(*out)[n] = 0;
	return 0;
}

int ws_schema_decode(struct ws_schema *sc, const uint8_t *p, size_t n, char *err)
{
	struct ws_schema_obj o = {0};
	struct ws_rd r;
	uint64_t fmt, count, type, i;
	int rc;

	ws_schema_release(sc);
	ws_rd_init(&r, p, n);
	if ((rc = ws_rd_varint(&r, &fmt)) || (rc = ws_rd_varint(&r, &sc->gen)) ||
	    (rc = ws_rd_varint(&r, &count))) {
		rc = ws_error(err, rc, "schema record: bad header");
		goto out;
	}
	if (fmt != WS_SCHEMA_FORMAT) {
		rc = ws_error(err, WS_EVERSION, "schema record: unknown format %llu",
		    (unsigned long long)fmt);
		goto out;
	}
	if (count > WS_SCHEMA_MAX_OBJECTS || count > ws_rd_left(&r) / 4) {
		rc = ws_error(err, WS_ERANGE, "schema record: %llu objects",
		    (unsigned long long)count);
		goto out;
	}
	for (i = 0; i < count; i++) {
		if ((rc = ws_rd_varint(&r, &type))) {
			rc = ws_error(err, rc, "schema record: bad object type at byte %zu",
			    ws_rd_offset(&r));
			goto out;
		}
		if (!ws_objtype_name((unsigned)type) || type > WS_OBJ_TRIGGER) {
			rc = ws_error(err, WS_ECORRUPT, "schema record: unknown object "
			    "type %llu at byte %zu", (unsigned long long)type,
			    ws_rd_offset(&r));
			goto out;
		}
		o.type = (uint8_t)type;
		if ((rc = get_str(&r, WS_SCHEMA_MAX_NAME, &o.name, "name", p, err)) ||
		    (rc = get_str(&r, WS_SCHEMA_MAX_NAME, &o.table, "table name", p, err)) ||
		    (rc = get_str(&r, WS_SCHEMA_MAX_SQL, &o.sql, "SQL", p, err)))
			goto out;
		if (find_name(sc, o.name) < sc->n) {
			rc = ws_error(err, WS_ECORRUPT, "schema record: two objects "
			    "named '%s'", o.name);
			goto out;
		}
		if (sc->n == sc->cap) {
			size_t cap = sc->cap ? sc->cap * 2 : 8;
			struct ws_schema_obj *np = realloc(sc->obj, cap * sizeof(*np));

			if (!np) {
				rc = WS_ENOMEM;
				goto out;
			}
			sc->obj = np;
			sc->cap = cap;
		}
		sc->obj[sc->n++] = o;
		memset(&o, 0, sizeof(o));
	}
	if (ws_rd_left(&r)) {
		rc = ws_error(err, WS_ECORRUPT, "schema record: %zu bytes after the "
		    "last object", ws_rd_left(&r));
		goto out;
	}
	rc = 0;
out:
	free(o.name);
	free(o.table);
	free(o.sql);
	if (rc)
		ws_schema_release(sc);
	return rc;
}
