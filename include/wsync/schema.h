/* SPDX-License-Identifier: MIT */
/*
 * schema.h - a working set's schema as a record that travels.
 *
 * The working set owns its schema: the CREATE statements, exactly as
 * SQLite keeps them in sqlite_schema, of its tracked tables, of their
 * indexes, and of the views and triggers that read only tracked tables.
 * A schema record carries all of them, with a generation number: the hub
 * numbers each schema it adopts, and a site sends its record with the
 * generation it last took from the hub (see wsync-protocol(5)).  It is
 * the payload of a WS_FRAME_SCHEMA frame, and travels before any batch
 * that needs it.
 *
 * Binary encoding ("varint" unsigned LEB128, "str" a varint length and
 * that many bytes of NUL-free UTF-8):
 *
 *     varint  format            WS_SCHEMA_FORMAT
 *     varint  generation
 *     varint  nobjects
 *       varint  type            enum ws_objtype
 *       str     name
 *       str     table           the table an index or trigger is on; for
 *                               a table or view, its own name
 *       str     sql             the CREATE statement
 *
 * Objects are in the order the sender's sqlite_schema holds them, which
 * is an order SQLite can create them in; each copy creates them in that
 * order, so `.schema` lists them alike everywhere.  Names are unique
 * (SQLite compares them without regard to ASCII case): the decoder
 * refuses a repeated one, so decode->encode gives the same bytes.
 */
#ifndef WSYNC_SCHEMA_H
#define WSYNC_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define WS_SCHEMA_FORMAT 1
#define WS_SCHEMA_MAX_OBJECTS 4096
#define WS_SCHEMA_MAX_NAME 1024       /* bytes in a name */
#define WS_SCHEMA_MAX_SQL (256u << 10) /* bytes in one object's SQL */

enum ws_objtype {
	WS_OBJ_TABLE = 1,
	WS_OBJ_INDEX = 2,
	WS_OBJ_VIEW = 3,
	WS_OBJ_TRIGGER = 4,
};

/* One object; the strings are owned by the record. */
struct ws_schema_obj {
	uint8_t type;  /* enum ws_objtype */
	char *name;
	char *table;
	char *sql;
};

struct ws_schema {
	uint64_t gen;
	struct ws_schema_obj *obj;
	size_t n;
	/* private */
	size_t cap;
};

#define WS_SCHEMA_INIT {0, NULL, 0, 0}

void ws_schema_init(struct ws_schema *sc);
/* Free every object; sc is empty (generation 0) afterwards. */
void ws_schema_release(struct ws_schema *sc);

/* "table", "index", "view", "trigger", or NULL. */
const char *ws_objtype_name(unsigned type);
/* The type for a name, or 0. */
unsigned ws_objtype_from_name(const char *name);

/*
 * Add a copy of one object at the end (an object of the same type and
 * name is replaced in place; one of another type with the same name is
 * WS_EINVAL).  WS_EINVAL, with a detail in err,
 * for an unknown type, an empty or over-long name or SQL, or strings that
 * are not NUL-free UTF-8; WS_ERANGE past WS_SCHEMA_MAX_OBJECTS.
 */
int ws_schema_add(struct ws_schema *sc, unsigned type, const char *name,
    const char *table, const char *sql, char *err) WS_MUST_CHECK;

/* The object of this type and name, or NULL. */
const struct ws_schema_obj *ws_schema_find(const struct ws_schema *sc,
    unsigned type, const char *name);

/* 1 if a and b hold the same objects (generations aside). */
int ws_schema_same(const struct ws_schema *a, const struct ws_schema *b);

/* Append the binary encoding of sc to out.  0 or WS_ENOMEM. */
int ws_schema_encode(const struct ws_schema *sc, struct ws_buf *out) WS_MUST_CHECK;

/*
 * Decode a record from p[0..n), replacing sc's contents; nothing points
 * into p afterwards.  Errors: WS_ETRUNC, WS_ECORRUPT, WS_EVERSION (an
 * unknown format), WS_ETOOBIG, WS_ERANGE, WS_ENOMEM, with the byte
 * offset in err.  On error sc is left empty.
 */
int ws_schema_decode(struct ws_schema *sc, const uint8_t *p, size_t n, char *err) WS_MUST_CHECK;

#endif
