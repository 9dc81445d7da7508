/* SPDX-License-Identifier: MIT */
/*
 * json.c - frames and changes as JSON lines, with jansson; base64 and
 * hex through libsodium.
 *
 * The mapping is lossless both ways (json.h).  Input is checked as
 * strictly as the binary decoders check theirs: unknown keys, values of
 * the wrong type and out-of-range numbers are refused with a message
 * that names the key, so a typo in a jq edit is reported, not dropped.
 */
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsync/json.h"

#define B64 sodium_base64_VARIANT_ORIGINAL
#define CANON_NAN 0x7ff8000000000000ull

/* A new string holding base64 of p[0..n); NULL when out of memory. */
static json_t *b64_string(const uint8_t *p, size_t n)
{
	size_t len = sodium_base64_ENCODED_LEN(n, B64);
	json_t *j;
	char *s;

	if (!(s = malloc(len)))
		return NULL;
	sodium_bin2base64(s, len, p, n, B64);
	j = json_stringn(s, len - 1);
	free(s);
	return j;
}

/* Decode base64 string j and append the bytes to out. */
static int b64_decode(const json_t *j, struct ws_buf *out, const char *key,
    char *err)
{
	const char *s = json_string_value(j), *end;
	size_t n = json_string_length(j), got;

	if (!s)
		return ws_error(err, WS_EJSON, "\"%s\" must be a base64 string", key);
	if (ws_buf_reserve(out, n / 4 * 3 + 3))
		return WS_ENOMEM;
	if (sodium_base642bin(out->p + out->len, out->cap - out->len, s, n,
	    NULL, &got, &end, B64) != 0 || end != s + n)
		return ws_error(err, WS_EJSON, "\"%s\" is not valid base64", key);
	out->len += got;
	return 0;
}

static json_t *obj1(const char *key, json_t *v)
{
	json_t *o;

	if (!v)
		return NULL;
	if (!(o = json_object()) || json_object_set_new(o, key, v)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *ws_json_from_value(const struct ws_value *v)
{
	uint64_t bits;
	char s[32];

	switch (v->type) {
	case WS_INTEGER:
		return json_integer(v->i);
	case WS_REAL:
		if (isfinite(v->r))
			return json_real(v->r);
		memcpy(&bits, &v->r, 8);
		if (isinf(v->r))
			return obj1("real", json_string(v->r > 0 ? "inf" : "-inf"));
		if (bits == CANON_NAN)
			return obj1("real", json_string("nan"));
		snprintf(s, sizeof(s), "nan:%016" PRIx64, bits);
		return obj1("real", json_string(s));
	case WS_TEXT:
		if (ws_utf8_valid(v->p, v->n))
			return json_stringn((const char *)v->p, v->n);
		return obj1("text", b64_string(v->p, v->n));
	case WS_BLOB:
		return obj1("blob", b64_string(v->p, v->n));
	default:
		return json_null();
	}
}

/* A REAL given as a number or as "nan", "inf", "-inf", "nan:<hex>". */
static int real_from_json(const json_t *j, double *r, char *err)
{
	const char *s = json_string_value(j);
	uint64_t bits;
	char *end;

	if (json_is_number(j)) {
		*r = json_number_value(j);
		return 0;
	}
	if (!s)
		return ws_error(err, WS_EJSON, "\"real\" must be a number or a string");
	if (strcmp(s, "nan") == 0) {
		bits = CANON_NAN;
	} else if (strcmp(s, "inf") == 0 || strcmp(s, "-inf") == 0) {
		*r = s[0] == '-' ? -INFINITY : INFINITY;
		return 0;
	} else if (strncmp(s, "nan:", 4) == 0 && strlen(s) == 20 &&
	    strspn(s + 4, "0123456789abcdef") == 16) {
		bits = strtoull(s + 4, &end, 16);
	} else {
		return ws_error(err, WS_EJSON, "bad real '%s' (want a number, "
		    "\"nan\", \"inf\", \"-inf\" or \"nan:<16 hex digits>\")", s);
	}
	memcpy(r, &bits, 8);
	if (!isnan(*r))
		return ws_error(err, WS_EJSON, "real '%s' is not a NaN", s);
	return 0;
}

/*
 * The conversion behind ws_json_to_value(): bytes go to tmp and their
 * offset into *off, because tmp may move while a change is converted.
 */
static int to_value(const json_t *j, struct ws_buf *tmp, struct ws_value *v,
    size_t *off, char *err)
{
	const char *key;
	json_t *inner;
	int rc;

	memset(v, 0, sizeof(*v));
	*off = tmp->len;
	switch (json_typeof(j)) {
	case JSON_NULL:
		v->type = WS_NULL;
		return 0;
	case JSON_INTEGER:
		v->type = WS_INTEGER;
		v->i = json_integer_value(j);
		return 0;
	case JSON_REAL:
		v->type = WS_REAL;
		v->r = json_real_value(j);
		return 0;
	case JSON_STRING:
		v->type = WS_TEXT;
		v->n = json_string_length(j);
		return ws_buf_append(tmp, json_string_value(j), v->n);
	case JSON_OBJECT:
		if (json_object_size(j) != 1)
			break;
		key = json_object_iter_key(json_object_iter((json_t *)j));
		inner = json_object_iter_value(json_object_iter((json_t *)j));
		if (strcmp(key, "real") == 0) {
			v->type = WS_REAL;
			return real_from_json(inner, &v->r, err);
		}
		if (strcmp(key, "blob") == 0 || strcmp(key, "text") == 0) {
			v->type = key[0] == 'b' ? WS_BLOB : WS_TEXT;
			if ((rc = b64_decode(inner, tmp, key, err)))
				return rc;
			v->n = tmp->len - *off;
			return 0;
		}
		break;
	default:
		break;
	}
	return ws_error(err, WS_EJSON, "bad value: want null, a number, a "
	    "string, or {\"blob\"|\"text\"|\"real\": ...}");
}

int ws_json_to_value(const json_t *j, struct ws_buf *tmp, struct ws_value *v,
    char *err)
{
	size_t off;
	int rc = to_value(j, tmp, v, &off, err);

	if (rc == 0 && (v->type == WS_TEXT || v->type == WS_BLOB))
		v->p = tmp->p ? tmp->p + off : (const uint8_t *)"";
	return rc;
}

json_t *ws_json_from_vclock(const struct ws_vclock *vc)
{
	char hex[WS_SITEID_HEXLEN + 1];
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < vc->n; i++) {
		ws_siteid_hex(&vc->e[i].site, hex);
		if (json_object_set_new(o, hex, json_integer((json_int_t)vc->e[i].counter))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int ws_json_to_vclock(const json_t *j, struct ws_vclock *vc, char *err)
{
	struct ws_siteid site;
	const char *key;
	json_t *val;
	int rc;

	ws_vclock_reset(vc);
	if (!json_is_object(j))
		return ws_error(err, WS_EJSON, "a clock must be an object of "
		    "\"<site-hex>\": counter");
	json_object_foreach((json_t *)j, key, val) {
		if (ws_siteid_parse(&site, key, strlen(key)))
			return ws_error(err, WS_EJSON, "clock: bad site id '%s' "
			    "(want 32 hex digits)", key);
		if (!json_is_integer(val) || json_integer_value(val) < 1)
			return ws_error(err, WS_EJSON, "clock: counter of '%s' must "
			    "be an integer from 1 to 2^63-1", key);
		if ((rc = ws_vclock_set(vc, &site, (uint64_t)json_integer_value(val))))
			return rc;
	}
	return 0;
}

/* Dots are "<site-hex>:<counter>". */
static json_t *dot_string(const struct ws_siteid *site, uint64_t counter)
{
	char hex[WS_SITEID_HEXLEN + 1], s[WS_SITEID_HEXLEN + 24];

	ws_siteid_hex(site, hex);
	snprintf(s, sizeof(s), "%s:%" PRIu64, hex, counter);
	return json_string(s);
}

static int parse_dot(const char *s, struct ws_siteid *site, uint64_t *counter)
{
	char *end;

	if (!s || strlen(s) < WS_SITEID_HEXLEN + 2 || s[WS_SITEID_HEXLEN] != ':' ||
	    ws_siteid_parse(site, s, WS_SITEID_HEXLEN))
		return WS_EJSON;
	s += WS_SITEID_HEXLEN + 1;
	if (*s < '0' || *s > '9')
		return WS_EJSON;
	*counter = strtoull(s, &end, 10);
	if (*end || *counter == 0 || *counter > WS_VCLOCK_COUNTER_MAX)
		return WS_EJSON;
	return 0;
}

/* The text of string j, or NULL if j is not a string or holds a NUL. */
static const char *name_value(const json_t *j)
{
	const char *s = json_string_value(j);

	return s && strlen(s) == json_string_length(j) ? s : NULL;
}

/* Build {"name":..,"cols":[..],"pk":[..]} for a table. */
static json_t *table_json(const struct ws_table *t)
{
	json_t *o = json_object(), *cols = json_array(), *pk = json_array();
	uint32_t i;
	int bad = !o || !cols || !pk;

	for (i = 0; !bad && i < t->ncols; i++)
		bad = json_array_append_new(cols, json_string(t->cols[i]));
	for (i = 0; !bad && i < t->npk; i++)
		bad = json_array_append_new(pk, json_string(t->cols[t->pk[i]]));
	if (!bad)
		bad = json_object_set_new(o, "name", json_string(t->name)) ||
		    json_object_set(o, "cols", cols) || json_object_set(o, "pk", pk);
	json_decref(cols);
	json_decref(pk);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *change_json(const struct ws_batch *b, const struct ws_change *c)
{
	const struct ws_table *t = &b->tables[c->table];
	json_t *o = json_object(), *pk = json_array(), *set = NULL;
	uint32_t i, k;
	int bad = !o || !pk;

	for (i = 0; !bad && i < t->npk; i++)
		bad = json_array_append_new(pk, ws_json_from_value(&c->pk[i]));
	if (!bad && c->op != WS_OP_DELETE) {
		bad = !(set = json_object());
		for (i = 0, k = 0; !bad && i < t->ncols; i++)
			if (ws_mask_test(c->mask, i))
				bad = json_object_set_new(set, t->cols[i],
				    ws_json_from_value(&c->vals[k++]));
	}
	if (!bad)
		bad = json_object_set_new(o, "table", json_string(t->name)) ||
		    json_object_set_new(o, "op", json_string(ws_op_name(c->op))) ||
		    json_object_set_new(o, "dot", dot_string(&b->sites[c->site],
		    c->counter)) || json_object_set(o, "pk", pk) ||
		    (set && json_object_set(o, "set", set));
	json_decref(pk);
	json_decref(set);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int ws_json_from_batch(const struct ws_batch *b, json_t *obj)
{
	json_t *tables = json_array(), *changes = json_array();
	size_t i;
	int bad = !tables || !changes;

	if (!bad && b->has_clock)
		bad = json_object_set_new(obj, "clock", ws_json_from_vclock(&b->clock));
	if (!bad && b->has_dot)
		bad = json_object_set_new(obj, "dot", dot_string(&b->dot_site,
		    b->dot_counter));
	if (!bad && b->has_lamport)
		bad = b->lamport > INT64_MAX || json_object_set_new(obj, "lamport",
		    json_integer((json_int_t)b->lamport));
	for (i = 0; !bad && i < b->ntables; i++)
		bad = json_array_append_new(tables, table_json(&b->tables[i]));
	for (i = 0; !bad && i < b->nchanges; i++)
		bad = json_array_append_new(changes, change_json(b, &b->changes[i]));
	if (!bad)
		bad = json_object_set(obj, "tables", tables) ||
		    json_object_set(obj, "changes", changes);
	json_decref(tables);
	json_decref(changes);
	return bad ? WS_ENOMEM : 0;
}

/* Refuse keys of obj that are not in the NULL-terminated list. */
static int only_keys(const json_t *obj, const char *const *keys,
    const char *what, char *err)
{
	const char *key;
	json_t *val;
	size_t i;

	json_object_foreach((json_t *)obj, key, val) {
		for (i = 0; keys[i] && strcmp(keys[i], key) != 0; i++)
			;
		if (!keys[i])
			return ws_error(err, WS_EJSON, "%s: unknown key '%s'", what, key);
	}
	return 0;
}

static int table_from_json(const json_t *j, size_t index, struct ws_batch *b,
    char *err)
{
	static const char *const keys[] = {"name", "cols", "pk", NULL};
	const json_t *name = json_object_get(j, "name");
	const json_t *cols = json_object_get(j, "cols"), *pk = json_object_get(j, "pk");
	const char **cn = NULL, *s;
	uint32_t *pki = NULL, k;
	size_t i, nc, np;
	char what[64];
	int rc;

	snprintf(what, sizeof(what), "table %zu", index);
	if (!json_is_object(j))
		return ws_error(err, WS_EJSON, "%s must be an object", what);
	if ((rc = only_keys(j, keys, what, err)))
		return rc;
	if (!name_value(name) || !json_is_array(cols) || !json_is_array(pk))
		return ws_error(err, WS_EJSON, "%s needs \"name\" (a string), "
		    "\"cols\" and \"pk\" (arrays of column names)", what);
	nc = json_array_size(cols);
	np = json_array_size(pk);
	if (nc > WS_DELTA_MAX_COLUMNS)
		return ws_error(err, WS_EJSON, "%s has too many columns", what);
	cn = malloc((nc ? nc : 1) * sizeof(*cn));
	pki = malloc((np ? np : 1) * sizeof(*pki));
	if (!cn || !pki) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < nc; i++)
		if (!(cn[i] = name_value(json_array_get(cols, i)))) {
			rc = ws_error(err, WS_EJSON, "%s: column %zu is not a NUL-free string",
			    what, i);
			goto out;
		}
	for (i = 0; i < np; i++) {
		s = name_value(json_array_get(pk, i));
		for (k = 0; s && k < nc && strcmp(cn[k], s) != 0; k++)
			;
		if (!s || k == nc) {
			rc = ws_error(err, WS_EJSON, "%s: primary-key entry %zu is "
			    "not one of its columns", what, i);
			goto out;
		}
		pki[i] = k;
	}
	rc = ws_batch_add_table(b, json_string_value(name), (uint32_t)nc, cn,
	    (uint32_t)np, pki, NULL, err);
	if (rc == WS_EINVAL)
		rc = WS_EJSON;
out:
	free(cn);
	free(pki);
	return rc;
}

struct setcol {
	uint32_t col;
	const json_t *val;
};

static int cmp_setcol(const void *a, const void *b)
{
	uint32_t x = ((const struct setcol *)a)->col, y = ((const struct setcol *)b)->col;

	return x < y ? -1 : x > y;
}

static int change_from_json(const json_t *j, size_t index, struct ws_batch *b,
    struct ws_buf *tmp, char *err)
{
	static const char *const keys[] = {"table", "op", "dot", "pk", "set", NULL};
	const json_t *pk = json_object_get(j, "pk"), *set = json_object_get(j, "set");
	struct ws_value *vals = NULL;
	struct setcol *sc = NULL;
	struct ws_change c = {0};
	const struct ws_table *t;
	struct ws_siteid site;
	size_t i, n, *offs = NULL, npk = 0;
	const char *key;
	uint8_t *mask = NULL;
	json_t *val;
	char what[64];
	long ti;
	int rc;

	snprintf(what, sizeof(what), "change %zu", index);
	if (!json_is_object(j))
		return ws_error(err, WS_EJSON, "%s must be an object", what);
	if ((rc = only_keys(j, keys, what, err)))
		return rc;
	key = name_value(json_object_get(j, "table"));
	if (!key || (ti = ws_batch_find_table(b, key)) < 0)
		return ws_error(err, WS_EJSON, "%s: \"table\" must name one of "
		    "the batch's tables", what);
	t = &b->tables[ti];
	c.table = (uint32_t)ti;
	key = name_value(json_object_get(j, "op"));
	if (!key || !(c.op = (uint8_t)ws_op_from_name(key)))
		return ws_error(err, WS_EJSON, "%s: \"op\" must be \"insert\", "
		    "\"update\" or \"delete\"", what);
	if (parse_dot(json_string_value(json_object_get(j, "dot")), &site, &c.counter))
		return ws_error(err, WS_EJSON, "%s: \"dot\" must be "
		    "\"<32 hex digits>:<counter 1..2^63-1>\"", what);
	if ((rc = ws_batch_site(b, &site, &c.site)))
		return rc;
	if (!json_is_array(pk) || json_array_size(pk) != t->npk)
		return ws_error(err, WS_EJSON, "%s: \"pk\" must be an array of "
		    "the table's primary-key values (%" PRIu32 ")", what, t->npk);
	if ((c.op == WS_OP_DELETE) != (set == NULL) || (set && !json_is_object(set)))
		return ws_error(err, WS_EJSON, "%s: %s", what, c.op == WS_OP_DELETE ?
		    "a delete has no \"set\"" : "\"set\" must be an object of "
		    "column: value");
	n = set ? json_object_size(set) : 0;
	tmp->len = 0;
	vals = malloc((t->npk + n) * sizeof(*vals));
	offs = malloc((t->npk + n) * sizeof(*offs));
	sc = malloc((n ? n : 1) * sizeof(*sc));
	mask = calloc(1, ws_mask_len(t->ncols));
	if (!vals || !offs || !sc || !mask) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (npk = 0; npk < t->npk; npk++)
		if ((rc = to_value(json_array_get(pk, npk), tmp, &vals[npk],
		    &offs[npk], err)))
			goto fail;
	i = 0;
	if (set)
		json_object_foreach((json_t *)set, key, val) {
			for (sc[i].col = 0; sc[i].col < t->ncols &&
			    strcmp(t->cols[sc[i].col], key) != 0; sc[i].col++)
				;
			if (sc[i].col == t->ncols) {
				rc = ws_error(err, WS_EJSON, "%s: table '%s' has no "
				    "column '%s'", what, t->name, key);
				goto out;
			}
			sc[i++].val = val;
		}
	qsort(sc, n, sizeof(*sc), cmp_setcol);
	for (i = 0; i < n; i++) {
		ws_mask_set(mask, sc[i].col);
		if ((rc = to_value(sc[i].val, tmp, &vals[npk + i], &offs[npk + i],
		    err)))
			goto fail;
	}
	for (i = 0; i < npk + n; i++)
		if (vals[i].type == WS_TEXT || vals[i].type == WS_BLOB)
			vals[i].p = tmp->p ? tmp->p + offs[i] : (const uint8_t *)"";
	c.pk = vals;
	c.vals = vals + npk;
	c.nvals = (uint32_t)n;
	c.mask = c.op == WS_OP_DELETE ? NULL : mask;
	rc = ws_batch_add_change(b, &c, err);
	if (rc == WS_EINVAL)
		goto fail;
	goto out;
fail:
	if (rc != WS_ENOMEM) {
		char why[WS_ERRLEN];

		snprintf(why, sizeof(why), "%s", err ? err : "bad value");
		rc = ws_error(err, WS_EJSON, "%s: %s", what, why);
	}
out:
	free(vals);
	free(offs);
	free(sc);
	free(mask);
	return rc;
}

int ws_json_to_batch(const json_t *obj, struct ws_batch *b, char *err)
{
	const json_t *tables = json_object_get(obj, "tables");
	const json_t *changes = json_object_get(obj, "changes");
	const json_t *clock = json_object_get(obj, "clock");
	const json_t *dot = json_object_get(obj, "dot");
	const json_t *lamport = json_object_get(obj, "lamport");
	struct ws_siteid site;
	uint64_t counter;
	struct ws_buf tmp = WS_BUF_INIT;
	size_t i;
	int rc = 0;

	ws_batch_release(b);
	if (!json_is_array(tables) || !json_is_array(changes))
		return ws_error(err, WS_EJSON, "a batch needs \"tables\" and "
		    "\"changes\" arrays");
	if (clock) {
		if ((rc = ws_json_to_vclock(clock, &b->clock, err)))
			goto out;
		b->has_clock = 1;
	}
	if (dot) {
		if (parse_dot(json_string_value(dot), &site, &counter)) {
			rc = ws_error(err, WS_EJSON, "batch: \"dot\" must be "
			    "\"<32 hex digits>:<counter 1..2^63-1>\"");
			goto out;
		}
		rc = ws_batch_set_dot(b, &site, counter);
	}
	if (rc == 0 && lamport) {
		if (!json_is_integer(lamport) || json_integer_value(lamport) < 0) {
			rc = ws_error(err, WS_EJSON, "batch: \"lamport\" must be an "
			    "integer 0..2^63-1");
			goto out;
		}
		ws_batch_set_lamport(b, (uint64_t)json_integer_value(lamport));
	}
	for (i = 0; rc == 0 && i < json_array_size(tables); i++)
		if ((rc = table_from_json(json_array_get(tables, i), i, b, err)))
			goto out;
	for (i = 0; i < json_array_size(changes); i++)
		if ((rc = change_from_json(json_array_get(changes, i), i, b, &tmp, err)))
			goto out;
out:
	ws_buf_release(&tmp);
	if (rc)
		ws_batch_release(b);
	return rc;
}

/* Build {"type":..,"name":..,"table":..,"sql":..} for one schema object. */
static json_t *schema_obj_json(const struct ws_schema_obj *so)
{
	json_t *o = json_object();

	if (o && (json_object_set_new(o, "type",
	    json_string(ws_objtype_name(so->type))) ||
	    json_object_set_new(o, "name", json_string(so->name)) ||
	    json_object_set_new(o, "table", json_string(so->table)) ||
	    json_object_set_new(o, "sql", json_string(so->sql)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int ws_json_from_schema(const struct ws_schema *sc, json_t *obj, char *err)
{
	json_t *objs;
	size_t i;
	int bad;

	if (sc->gen > INT64_MAX)
		return ws_error(err, WS_ERANGE, "schema record: generation %" PRIu64
		    " has no JSON form", sc->gen);
	if (!(objs = json_array()))
		return WS_ENOMEM;
	bad = json_object_set_new(obj, "generation", json_integer((json_int_t)sc->gen));
	for (i = 0; !bad && i < sc->n; i++)
		bad = json_array_append_new(objs, schema_obj_json(&sc->obj[i]));
	if (!bad)
		bad = json_object_set(obj, "objects", objs);
	json_decref(objs);
	return bad ? WS_ENOMEM : 0;
}

/* Add the object j, entry index of "objects", at the end of sc. */
static int schema_obj_from_json(const json_t *j, size_t index,
    struct ws_schema *sc, char *err)
{
	static const char *const keys[] = {"type", "name", "table", "sql", NULL};
	const char *type, *name, *table, *sql;
	char what[64], e[WS_ERRLEN] = "";
	unsigned t, k;
	int rc;

	snprintf(what, sizeof(what), "schema object %zu", index);
	if (!json_is_object(j))
		return ws_error(err, WS_EJSON, "%s must be an object", what);
	if ((rc = only_keys(j, keys, what, err)))
		return rc;
	type = name_value(json_object_get(j, "type"));
	if (!type || !(t = ws_objtype_from_name(type)))
		return ws_error(err, WS_EJSON, "%s: \"type\" must be \"table\", "
		    "\"index\", \"view\" or \"trigger\"", what);
	name = name_value(json_object_get(j, "name"));
	table = name_value(json_object_get(j, "table"));
	sql = name_value(json_object_get(j, "sql"));
	if (!name || !table || !sql || !*name || !*table || !*sql)
		return ws_error(err, WS_EJSON, "%s needs \"name\", \"table\" and "
		    "\"sql\": non-empty strings without NUL", what);
	if (strlen(name) > WS_SCHEMA_MAX_NAME || strlen(table) > WS_SCHEMA_MAX_NAME)
		return ws_error(err, WS_EJSON, "%s: a name is longer than %d bytes",
		    what, WS_SCHEMA_MAX_NAME);
	if (strlen(sql) > WS_SCHEMA_MAX_SQL)
		return ws_error(err, WS_EJSON, "%s: \"sql\" is longer than %u bytes",
		    what, WS_SCHEMA_MAX_SQL);
	/* A name is taken once, whatever the type and ASCII case (as in
	 * SQLite); a repeat is refused, not replaced as ws_schema_add() would. */
	for (k = WS_OBJ_TABLE; k <= WS_OBJ_TRIGGER; k++)
		if (ws_schema_find(sc, k, name))
			return ws_error(err, WS_EJSON, "%s: the name '%s' is taken by "
			    "an earlier %s", what, name, ws_objtype_name(k));
	rc = ws_schema_add(sc, t, name, table, sql, e);
	if (rc && rc != WS_ENOMEM)
		rc = ws_error(err, WS_EJSON, "%s: %s", what, e);
	return rc;
}

int ws_json_to_schema(const json_t *obj, struct ws_schema *sc, char *err)
{
	const json_t *gen = json_object_get(obj, "generation");
	const json_t *objs = json_object_get(obj, "objects");
	size_t i;
	int rc = 0;

	ws_schema_release(sc);
	if (!json_is_integer(gen) || json_integer_value(gen) < 0)
		return ws_error(err, WS_EJSON, "a schema record needs \"generation\", "
		    "an integer from 0 to 2^63-1");
	if (!json_is_array(objs))
		return ws_error(err, WS_EJSON, "a schema record needs an \"objects\" "
		    "array");
	if (json_array_size(objs) > WS_SCHEMA_MAX_OBJECTS)
		return ws_error(err, WS_EJSON, "a schema record holds at most %d "
		    "objects", WS_SCHEMA_MAX_OBJECTS);
	sc->gen = (uint64_t)json_integer_value(gen);
	for (i = 0; i < json_array_size(objs); i++)
		if ((rc = schema_obj_from_json(json_array_get(objs, i), i, sc, err)))
			break;
	if (rc)
		ws_schema_release(sc);
	return rc;
}

/* The payloads of the frame types that have a structured JSON form. */

static int error_payload_json(const struct ws_frame *f, json_t *o, char *err)
{
	struct ws_rd r;
	int64_t code;

	ws_rd_init(&r, f->payload, f->len);
	if (ws_rd_svarint(&r, &code) || code < INT32_MIN || code > INT32_MAX ||
	    !ws_utf8_valid(r.p, ws_rd_left(&r)))
		return ws_error(err, WS_ECORRUPT, "bad error frame payload");
	if (json_object_set_new(o, "code", json_integer(code)) ||
	    json_object_set_new(o, "message", json_stringn((const char *)r.p,
	    ws_rd_left(&r))))
		return WS_ENOMEM;
	return 0;
}

int ws_json_from_frame(const struct ws_frame *f, json_t **out, char *err)
{
	const char *name = ws_frame_type_name(f->type);
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_batch b;
	struct ws_rd r;
	uint64_t t;
	json_t *o;
	int rc = WS_ENOMEM;

	*out = NULL;
	ws_batch_init(&b);
	if (!(o = json_object()))
		return WS_ENOMEM;
	if (json_object_set_new(o, "type", name ? json_string(name) :
	    json_integer(f->type)) ||
	    json_object_set_new(o, "ch", json_integer(f->channel)) ||
	    (f->flags && json_object_set_new(o, "flags", json_integer(f->flags))))
		goto out;
	switch (f->type) {
	case WS_FRAME_BATCH:
		if ((rc = ws_batch_decode(&b, f->payload, f->len, err)))
			goto out;
		rc = ws_json_from_batch(&b, o);
		break;
	case WS_FRAME_CLOCK:
		if ((rc = ws_vclock_decode_all(&vc, f->payload, f->len, err)))
			goto out;
		rc = json_object_set_new(o, "clock", ws_json_from_vclock(&vc)) ?
		    WS_ENOMEM : 0;
		break;
	case WS_FRAME_SCHEMA:
		/* A record format this build does not know travels raw. */
		ws_rd_init(&r, f->payload, f->len);
		if (ws_rd_varint(&r, &t) == 0 && t != WS_SCHEMA_FORMAT) {
			rc = json_object_set_new(o, "payload", b64_string(f->payload,
			    f->len)) ? WS_ENOMEM : 0;
			break;
		}
		if ((rc = ws_schema_decode(&sc, f->payload, f->len, err)) == 0)
			rc = ws_json_from_schema(&sc, o, err);
		break;
	case WS_FRAME_ERROR:
		rc = error_payload_json(f, o, err);
		break;
	case WS_FRAME_LOG: {
		struct ws_log_record lr;
		json_t *inner;

		if (ws_log_record_decode(&lr, f->payload, f->len) ||
		    lr.time_us > INT64_MAX || !ws_utf8_valid((const uint8_t *)lr.peer,
		    lr.peerlen)) {
			rc = ws_error(err, WS_ECORRUPT, "bad log record");
			goto out;
		}
		if ((rc = ws_json_from_frame(&lr.frame, &inner, err)))
			goto out;
		rc = json_object_set_new(o, "time", json_integer((json_int_t)lr.time_us)) ||
		    json_object_set_new(o, "dir", json_string(lr.dir ? "out" : "in")) ||
		    json_object_set_new(o, "peer", json_stringn(lr.peer, lr.peerlen)) ||
		    json_object_set_new(o, "frame", inner) ? WS_ENOMEM : 0;
		break;
	}
	case WS_FRAME_HEARTBEAT:
		ws_rd_init(&r, f->payload, f->len);
		if (ws_rd_varint(&r, &t) || ws_rd_left(&r) || t > INT64_MAX) {
			rc = ws_error(err, WS_ECORRUPT, "bad heartbeat frame payload");
			goto out;
		}
		rc = json_object_set_new(o, "time", json_integer((json_int_t)t)) ?
		    WS_ENOMEM : 0;
		break;
	default:
		rc = json_object_set_new(o, "payload", b64_string(f->payload, f->len)) ?
		    WS_ENOMEM : 0;
		break;
	}
out:
	ws_batch_release(&b);
	ws_vclock_release(&vc);
	ws_schema_release(&sc);
	/* Inside a frame whose checksum held, a short payload is malformed. */
	if (rc == WS_ETRUNC || rc == WS_ETOOBIG || rc == WS_ERANGE)
		rc = WS_ECORRUPT;
	if (rc)
		json_decref(o);
	else
		*out = o;
	return rc;
}

/* Integer member key of o in [lo, hi], or def when absent. */
static int get_int(const json_t *o, const char *key, json_int_t lo,
    json_int_t hi, json_int_t def, json_int_t *v, char *err)
{
	const json_t *j = json_object_get(o, key);

	if (!j) {
		*v = def;
		return 0;
	}
	if (!json_is_integer(j) || json_integer_value(j) < lo ||
	    json_integer_value(j) > hi)
		return ws_error(err, WS_EJSON, "\"%s\" must be an integer from %"
		    JSON_INTEGER_FORMAT " to %" JSON_INTEGER_FORMAT, key, lo, hi);
	*v = json_integer_value(j);
	return 0;
}

static int payload_from_json(const json_t *obj, unsigned type, struct ws_buf *pl,
    char *err)
{
	static const char *const batch_keys[] = {"type", "ch", "flags", "clock",
	    "dot", "lamport", "tables", "changes", NULL};
	static const char *const clock_keys[] = {"type", "ch", "flags", "clock", NULL};
	static const char *const schema_keys[] = {"type", "ch", "flags",
	    "generation", "objects", NULL};
	static const char *const error_keys[] = {"type", "ch", "flags", "code",
	    "message", NULL};
	static const char *const hb_keys[] = {"type", "ch", "flags", "time", NULL};
	static const char *const raw_keys[] = {"type", "ch", "flags", "payload", NULL};
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_schema sc = WS_SCHEMA_INIT;
	const json_t *msg;
	struct ws_batch b;
	json_int_t v;
	int rc;

	ws_batch_init(&b);
	if (json_object_get(obj, "payload")) {
		if (!(rc = only_keys(obj, raw_keys, "frame", err)))
			rc = b64_decode(json_object_get(obj, "payload"), pl, "payload", err);
		goto out;
	}
	switch (type) {
	case WS_FRAME_BATCH:
		if (!(rc = only_keys(obj, batch_keys, "batch", err)) &&
		    !(rc = ws_json_to_batch(obj, &b, err)))
			rc = ws_batch_encode(&b, pl);
		break;
	case WS_FRAME_CLOCK:
		if (!(rc = only_keys(obj, clock_keys, "clock frame", err)) &&
		    !(rc = ws_json_to_vclock(json_object_get(obj, "clock"), &vc, err)))
			rc = ws_vclock_encode(&vc, pl);
		break;
	case WS_FRAME_SCHEMA:
		if (!(rc = only_keys(obj, schema_keys, "schema frame", err)) &&
		    !(rc = ws_json_to_schema(obj, &sc, err)))
			rc = ws_schema_encode(&sc, pl);
		break;
	case WS_FRAME_ERROR:
		msg = json_object_get(obj, "message");
		if ((rc = only_keys(obj, error_keys, "error frame", err)) ||
		    (rc = get_int(obj, "code", INT32_MIN, INT32_MAX, 0, &v, err)))
			break;
		if (!json_is_string(msg)) {
			rc = ws_error(err, WS_EJSON, "error frame needs a \"message\" string");
			break;
		}
		if (!(rc = ws_buf_put_svarint(pl, v)))
			rc = ws_buf_append(pl, json_string_value(msg),
			    json_string_length(msg));
		break;
	case WS_FRAME_LOG: {
		static const char *const log_keys[] = {"type", "ch", "flags", "time",
		    "dir", "peer", "frame", NULL};
		const char *dir = json_string_value(json_object_get(obj, "dir"));
		const json_t *peer = json_object_get(obj, "peer");
		struct ws_log_record lr = {0};
		struct ws_buf inner = WS_BUF_INIT;
		size_t used;

		if ((rc = only_keys(obj, log_keys, "log record", err)) ||
		    (rc = get_int(obj, "time", 0, INT64_MAX, -1, &v, err)))
			break;
		if (v < 0 || !dir || (strcmp(dir, "in") && strcmp(dir, "out")) ||
		    !json_is_string(peer) || json_string_length(peer) > 255 ||
		    !json_is_object(json_object_get(obj, "frame"))) {
			rc = ws_error(err, WS_EJSON, "a log record needs \"time\", "
			    "\"dir\" (\"in\" or \"out\"), \"peer\" and \"frame\"");
			break;
		}
		if ((rc = ws_json_to_frame(json_object_get(obj, "frame"), &inner, err)) == 0 &&
		    (rc = ws_frame_parse(inner.p, inner.len, WS_FRAME_MAX_LIMIT,
		    &lr.frame, &used)) == 0) {
			lr.time_us = (uint64_t)v;
			lr.dir = dir[0] == 'o' ? WS_LOG_OUT : WS_LOG_IN;
			lr.peer = json_string_value(peer);
			lr.peerlen = json_string_length(peer);
			rc = lr.frame.type == WS_FRAME_LOG ? ws_error(err, WS_EJSON,
			    "a log record cannot wrap another") :
			    ws_log_record_encode(&lr, pl);
		}
		ws_buf_release(&inner);
		break;
	}
	case WS_FRAME_HEARTBEAT:
		if (!json_object_get(obj, "time")) {
			rc = ws_error(err, WS_EJSON, "heartbeat frame needs \"time\"");
			break;
		}
		if (!(rc = only_keys(obj, hb_keys, "heartbeat frame", err)) &&
		    !(rc = get_int(obj, "time", 0, INT64_MAX, 0, &v, err)))
			rc = ws_buf_put_varint(pl, (uint64_t)v);
		break;
	default:
		rc = ws_error(err, WS_EJSON, "frame of type %u needs \"payload\" "
		    "(base64)", type);
		break;
	}
out:
	ws_batch_release(&b);
	ws_vclock_release(&vc);
	ws_schema_release(&sc);
	return rc;
}

int ws_json_to_frame(const json_t *obj, struct ws_buf *out, char *err)
{
	const json_t *type = json_object_get(obj, "type");
	struct ws_buf pl = WS_BUF_INIT;
	json_int_t ch, flags, t = 0;
	int rc;

	if (!json_is_object(obj))
		return ws_error(err, WS_EJSON, "a frame must be a JSON object");
	if (json_is_string(type))
		t = ws_frame_type_from_name(json_string_value(type));
	else if (json_is_integer(type))
		t = json_integer_value(type);
	if (t < 1 || t > 255)
		return ws_error(err, WS_EJSON, "\"type\" must be a frame type name "
		    "or a number from 1 to 255");
	if ((rc = get_int(obj, "ch", 0, UINT32_MAX, 0, &ch, err)) ||
	    (rc = get_int(obj, "flags", 0, 255, 0, &flags, err)))
		return rc;
	if (!json_object_get(obj, "ch"))
		return ws_error(err, WS_EJSON, "a frame needs \"ch\" (its channel)");
	if (!(rc = payload_from_json(obj, (unsigned)t, &pl, err))) {
		if (pl.len > WS_FRAME_MAX_LIMIT)
			rc = ws_error(err, WS_ETOOBIG, "frame payload too large");
		else
			rc = ws_frame_put(out, (uint8_t)t, (uint8_t)flags,
			    (uint32_t)ch, pl.p, pl.len);
	}
	ws_buf_release(&pl);
	return rc;
}

static int dump_cb(const char *p, size_t n, void *data)
{
	return ws_buf_append(data, p, n) ? -1 : 0;
}

int ws_json_put_frame(const struct ws_frame *f, struct ws_buf *out, char *err)
{
	json_t *o;
	size_t start = out->len;
	int rc;

	if ((rc = ws_json_from_frame(f, &o, err)))
		return rc;
	if (json_dump_callback(o, dump_cb, out, JSON_COMPACT) != 0 ||
	    ws_buf_putc(out, '\n')) {
		out->len = start;
		rc = WS_ENOMEM;
	}
	json_decref(o);
	return rc;
}

int ws_json_parse_line(const char *p, size_t n, struct ws_buf *out, char *err)
{
	json_error_t je;
	json_t *o;
	int rc;

	if (!(o = json_loadb(p, n, JSON_ALLOW_NUL, &je)))
		return ws_error(err, WS_EJSON, "column %d: %s%s", je.column,
		    json_error_code(&je) == json_error_invalid_utf8 ?
		    "invalid UTF-8: " : "", je.text);
	rc = ws_json_to_frame(o, out, err);
	json_decref(o);
	return rc;
}
