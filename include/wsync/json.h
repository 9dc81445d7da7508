/* SPDX-License-Identifier: MIT */
/*
 * json.h - the JSON-lines twin of every frame, through jansson.
 *
 * Each frame is one JSON object on one line.  The mapping is lossless in
 * both directions: frame → JSON → frame gives the same bytes, and
 * JSON → frame → JSON the same object (up to key order and white space).
 * The full schema is in wsync-protocol(5); in short:
 *
 *   {"type":"batch","ch":1,"clock":{"<site-hex>":7},
 *    "tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],
 *    "changes":[{"table":"notes","op":"update","dot":"<site-hex>:7",
 *                "pk":[1],"set":{"title":"hello"}}]}
 *   {"type":"clock","ch":1,"clock":{"<site-hex>":7}}
 *   {"type":"schema","ch":1,"generation":3,
 *    "objects":[{"type":"table","name":"notes","table":"notes",
 *                "sql":"CREATE TABLE notes(id INTEGER PRIMARY KEY)"}]}
 *   {"type":"error","ch":0,"code":-8,"message":"..."}
 *   {"type":"heartbeat","ch":0,"time":1763700000000}
 *   {"type":32,"ch":0,"payload":"<base64>"}        any other type
 *
 * A schema record in a format this build does not know, and any frame
 * of another type, travels as "payload".
 * "flags" appears only when it is not 0.  Values: null, integers (all 64
 * bits), finite reals, strings for UTF-8 text; objects for the rest:
 * {"blob":"<base64>"}, {"text":"<base64>"} for text that is not UTF-8,
 * {"real":"nan"|"inf"|"-inf"|"nan:<16 hex digits of the bits>"} for the
 * non-finite reals, and {"real":<number>} to force REAL on input.
 * Base64 is libsodium's original variant with padding.
 */
#ifndef WSYNC_JSON_H
#define WSYNC_JSON_H

#include <jansson.h>

#include "buf.h"
#include "delta.h"
#include "error.h"
#include "frame.h"
#include "schema.h"
#include "vclock.h"

/* Largest JSON line accepted by readers. */
#define WS_JSON_MAX_LINE (64u << 20)

/*
 * Convert a value to a new JSON reference (caller owns it).  NULL only
 * when out of memory.
 */
json_t *ws_json_from_value(const struct ws_value *v);
/*
 * Convert JSON to a value.  TEXT and BLOB bytes are written into *tmp
 * (a buffer the caller owns and releases) and v->p points into it, so v
 * is valid until tmp changes.  WS_EJSON with a detail on a bad shape.
 */
int ws_json_to_value(const json_t *j, struct ws_buf *tmp, struct ws_value *v, char *err) WS_MUST_CHECK;

/* Clock as {"<site-hex>": counter, ...}; NULL when out of memory. */
json_t *ws_json_from_vclock(const struct ws_vclock *vc);
int ws_json_to_vclock(const json_t *j, struct ws_vclock *vc, char *err) WS_MUST_CHECK;

/* A batch's JSON fields (clock, tables, changes) set into object obj. */
int ws_json_from_batch(const struct ws_batch *b, json_t *obj) WS_MUST_CHECK;
/* Build b (emptied first) from an object holding those fields. */
int ws_json_to_batch(const json_t *obj, struct ws_batch *b, char *err) WS_MUST_CHECK;

/*
 * A schema record's JSON fields ("generation", "objects") set into object
 * obj; nothing of sc is kept.  WS_ERANGE (with detail) for a generation
 * above 2^63-1, which has no JSON form; WS_ENOMEM.
 */
int ws_json_from_schema(const struct ws_schema *sc, json_t *obj, char *err) WS_MUST_CHECK;
/*
 * Build sc (emptied first; left empty on error) from an object holding
 * those fields, its objects in the order of the array.  A name taken
 * twice (whatever the type and ASCII case), an unknown type, a member
 * other than "type", "name", "table" and "sql", an empty string, one
 * holding NUL or one over the limits of schema.h is WS_EJSON.
 */
int ws_json_to_schema(const json_t *obj, struct ws_schema *sc, char *err) WS_MUST_CHECK;

/*
 * Convert a frame to a new JSON object in *out (caller owns it).
 * WS_ECORRUPT (with detail) if a known type's payload does not decode.
 */
int ws_json_from_frame(const struct ws_frame *f, json_t **out, char *err) WS_MUST_CHECK;
/* Append the frame that obj describes to out (header, payload, CRC). */
int ws_json_to_frame(const json_t *obj, struct ws_buf *out, char *err) WS_MUST_CHECK;

/* Append one compact JSON line (with '\n') for frame f to out. */
int ws_json_put_frame(const struct ws_frame *f, struct ws_buf *out, char *err) WS_MUST_CHECK;
/*
 * Parse one JSON line p[0..n) (without its newline) and append the frame
 * it describes to out.  Accepts NUL escapes inside strings.
 */
int ws_json_parse_line(const char *p, size_t n, struct ws_buf *out, char *err) WS_MUST_CHECK;

#endif
