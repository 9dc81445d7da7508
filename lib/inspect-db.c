/* SPDX-License-Identifier: MIT */
/*
 * inspect-db.c - the database view: a summary of an SQLite file (its
 * working set, site, guid, clock, tracked and untracked tables, change
 * log, conflicts and a replicator's state), as text or JSON, and the
 * integrity check of --check.  It reads through the store's API
 * (store.h) and never runs SQL itself.
 */
#include "inspect-int.h"

struct confl {
	struct insp *x;
	json_t *arr;
	size_t n;
	int rc;
};

static int conflict_cb(const struct ws_conflict *c, void *cd)
{
	struct confl *k = cd;
	struct ws_buf *o = &k->x->out;
	char s8[9], hex[WS_SITEID_HEXLEN + 1];
	uint32_t i;
	int rc = 0;

	k->n++;
	if (k->arr) {
		json_t *j = json_object(), *pk = json_array();
		char dot[WS_SITEID_HEXLEN + 24];

		ws_siteid_hex(&c->site, hex);
		snprintf(dot, sizeof(dot), "%s:%" PRIu64, hex, c->counter);
		for (i = 0; i < c->npk && pk; i++)
			if (json_array_append_new(pk, ws_json_from_value(&c->pk[i])))
				rc = WS_ENOMEM;
		if (!j || !pk || rc ||
		    json_object_set_new(j, "id", json_integer(c->id)) ||
		    json_object_set_new(j, "table", json_string(c->table)) ||
		    json_object_set_new(j, "pk", pk) ||
		    json_object_set_new(j, "column", json_string(c->column)) ||
		    json_object_set_new(j, "value", ws_json_from_value(&c->value)) ||
		    json_object_set_new(j, "lost_to_delete", json_boolean(c->lost_to_delete)) ||
		    json_object_set_new(j, "kind", json_string(c->kind)) ||
		    json_object_set_new(j, "dot", json_string(dot)) ||
		    json_array_append_new(k->arr, j))
			return k->rc = WS_ENOMEM;
		return 0;
	}
	if ((rc = ws_buf_printf(o, "  %" PRId64 ": ", c->id)) ||
	    (rc = insp_put_names(o, c->table)) || (rc = ws_buf_printf(o, " pk=(")))
		return k->rc = rc;
	for (i = 0; i < c->npk && !rc; i++)
		if (!(rc = i ? ws_buf_putc(o, ',') : 0))
			rc = ws_inspect_put_value(o, &c->pk[i]);
	insp_short_site(&c->site, s8);
	if (rc || (rc = ws_buf_printf(o, ") ")) || (rc = insp_put_names(o, c->column)) ||
	    (rc = ws_buf_putc(o, '=')) ||
	    (rc = ws_inspect_put_value(o, &c->value)) ||
	    (rc = ws_buf_printf(o, " dot=%s:%" PRIu64, s8, c->counter)))
		return k->rc = rc;
	/* the kind is the database's text: escaped like a name */
	if (c->lost_to_delete && strcmp(c->kind, "delete") == 0)
		rc = ws_buf_printf(o, " (lost to a delete)");
	else if (c->lost_to_delete && !(rc = ws_buf_printf(o, " (lost to a ")) &&
	    !(rc = ws_escape_append(o, c->kind, strlen(c->kind))))
		rc = ws_buf_printf(o, " constraint)");
	if (rc || (rc = ws_buf_putc(o, '\n')))
		return k->rc = rc;
	return 0;
}

/* Collects the replicator's tables, for db_replica(). */
struct replica_out {
	struct insp *x;
	json_t *arr;          /* JSON: one object each; NULL for text */
};

/* A field of the replicator's state as a new JSON string, or JSON null
 * when it is not set; NULL when out of memory. */
static json_t *jstring_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int replica_cb(const struct ws_store_replica *r, void *cd)
{
	struct replica_out *ro = cd;
	struct ws_buf *o = &ro->x->out;
	json_t *j;
	int rc;

	if (ro->arr)
		return (j = json_object()) &&
		    !json_object_set_new(j, "table", json_string(r->table)) &&
		    !json_object_set_new(j, "source", jstring_or_null(r->source)) &&
		    !json_object_set_new(j, "guid", jstring_or_null(r->guid)) &&
		    !json_object_set_new(j, "usn", json_integer(r->usn)) &&
		    !json_object_set_new(j, "updated", jstring_or_null(r->updated)) &&
		    !json_array_append_new(ro->arr, j) ? 0 : WS_ENOMEM;
	if (!(rc = ws_buf_printf(o, "  ")) &&
	    !(rc = insp_put_names(o, r->table)) &&
	    !(rc = ws_buf_printf(o, "  source=")) &&
	    !(rc = insp_put_names(o, r->source ? r->source : "none")) &&
	    !(rc = ws_buf_printf(o, " guid=")) &&
	    !(rc = insp_put_names(o, r->guid ? r->guid : "none")) &&
	    !(rc = ws_buf_printf(o, " usn=%" PRId64 " updated=", r->usn)) &&
	    !(rc = insp_put_names(o, r->updated ? r->updated : "none")))
		rc = ws_buf_putc(o, '\n');
	return rc;
}

/* The replicator's state, if the database has its table. */
static int db_replica(struct insp *x, struct ws_store_file *f, json_t *root)
{
	struct replica_out ro = {x, NULL};
	char e[WS_ERRLEN] = "";
	int64_t n;
	int rc;

	if ((rc = ws_store_file_replica(f, &n, NULL, NULL, e)))
		return ws_error(x->err, rc, "'?': %s", e);
	if (n < 0)
		return root ? (json_object_set_new(root, "replicator", json_null()) ?
		    WS_ENOMEM : 0) : ws_buf_printf(&x->out, "replicator    none\n");
	if (root && (!(ro.arr = json_array()) ||
	    json_object_set_new(root, "replicator", ro.arr)))
		return WS_ENOMEM;
	if (!root && (rc = ws_buf_printf(&x->out, "replicator    %s\n",
	    n == 1 ? "1 table" : "tables:")))
		return rc;
	if ((rc = ws_store_file_replica(f, &n, replica_cb, &ro, e)) && *e)
		rc = ws_error(x->err, rc, "'?': %s", e);
	return rc;
}

/* Collects the tracked tables, for db_tables(). */
struct tables_out {
	struct insp *x;
	json_t *arr;          /* JSON: one object each; NULL for text */
};

/* A new JSON array of the strings s[0..n); NULL when out of memory. */
static json_t *jstrings(const char *const *s, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(s[i]))) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* Append names[0..n), escaped, separated by ", ". */
static int put_list(struct ws_buf *o, const char *const *names, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < n; i++)
		if (!(rc = ws_buf_printf(o, "%s", i ? ", " : "")))
			rc = insp_put_names(o, names[i]);
	return rc;
}

static int table_cb(const struct ws_store_table *t, void *cd)
{
	struct tables_out *to = cd;
	struct ws_buf *o = &to->x->out;
	json_t *j;
	int rc;

	if (to->arr)
		return (j = json_object()) &&
		    !json_object_set_new(j, "name", json_string(t->name)) &&
		    !json_object_set_new(j, "cols", jstrings(t->cols, t->ncols)) &&
		    !json_object_set_new(j, "pk", jstrings(t->pk, t->npk)) &&
		    !json_array_append_new(to->arr, j) ? 0 : WS_ENOMEM;
	if (!(rc = ws_buf_printf(o, "  ")) && !(rc = insp_put_names(o, t->name)) &&
	    !(rc = ws_buf_printf(o, " (")) && !(rc = put_list(o, t->cols, t->ncols)) &&
	    !(rc = ws_buf_printf(o, "; primary key ")) &&
	    !(rc = put_list(o, t->pk, t->npk)))
		rc = ws_buf_printf(o, ")\n");
	return rc;
}

/* The tracked tables: a "tables" array in root, or text lines. */
static int db_tables(struct insp *x, struct ws_store_file *f,
    const struct ws_store_stats *ss, json_t *root)
{
	struct tables_out to = {x, NULL};
	char e[WS_ERRLEN] = "";
	int rc = 0;

	if (root && (!(to.arr = json_array()) ||
	    json_object_set_new(root, "tables", to.arr)))
		return WS_ENOMEM;
	if (!root && (rc = ws_buf_printf(&x->out, "tracked       %" PRId64 " table%s\n",
	    ss->tables, ss->tables == 1 ? "" : "s")))
		return rc;
	if ((rc = ws_store_file_tables(f, table_cb, &to, e)) && *e)
		rc = ws_error(x->err, rc, "'?': %s", e);
	return rc;
}

/* Collects the tables a working set does not track, for insp_db_view(). */
struct untracked {
	struct ws_buf *out;   /* text: one line each */
	json_t *arr;          /* JSON: one object each */
};

static int untracked_cb(const char *table, const char *why, void *cd)
{
	struct untracked *u = cd;
	json_t *j;

	if (u->arr)
		return (j = json_object()) && !json_object_set_new(j, "table",
		    json_string(table)) && !json_object_set_new(j, "why",
		    json_string(why)) && !json_array_append_new(u->arr, j) ? 0 :
		    WS_ENOMEM;
	int rc = ws_buf_printf(u->out, "untracked     ");

	if (rc == 0) rc = insp_put_names(u->out, table);
	if (rc == 0) rc = ws_buf_printf(u->out, ": ");
	/* why may quote a column's name */
	if (rc == 0) rc = ws_escape_append(u->out, why, strlen(why));
	return rc ? rc : ws_buf_printf(u->out, "\n");
}

int insp_db_view(struct insp *x, const char *path)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_store *s = NULL;
	struct ws_store_file *f = NULL;
	struct ws_store_stats ss;
	json_t *root = NULL;
	char wsid[WS_WSID_MAX + 1] = "", hex[WS_SITEID_HEXLEN + 1], e[WS_ERRLEN] = "";
	int asjson = x->o->flags & WS_INSPECT_AS_JSON, rc = 0;
	uint8_t guid[WS_GUID_LEN];
	size_t pending = 0;
	struct confl cf = {x, NULL, 0, 0};
	struct untracked un = {&x->out, NULL};

	if (x->o->mode == WS_INSPECT_ENCODE)
		return ws_error(x->err, WS_EINVAL, "'%s' is an SQLite database, not a "
		    "stream: --encode cannot write it", path);
	if ((rc = ws_store_file_open(&f, path, e))) {
		rc = ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	if (x->o->mode == WS_INSPECT_CHECK) {
		if ((rc = ws_store_file_check(f, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
		if (!(rc = ws_escape_append(&x->out, path, strlen(path))))
			rc = ws_buf_printf(&x->out, ": ok, an SQLite database\n");
		goto out;
	}
	ws_store_file_wsid(f, wsid, sizeof(wsid));
	if (asjson && (!(root = json_object()) ||
	    json_object_set_new(root, "database", json_string(path)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	if (!*wsid) {
		/* Not a working set: its tables, and a replicator's state. */
		if (root) {
			if (json_object_set_new(root, "wsid", json_null()))
				rc = WS_ENOMEM;
		} else {
			if (!(rc = ws_buf_printf(&x->out, "database      ")) &&
			    !(rc = ws_escape_append(&x->out, path, strlen(path))))
				rc = ws_buf_printf(&x->out, "\nworking set   none "
				    "(not a wsync working set)\n");
		}
		if (!rc)
			rc = db_replica(x, f, root);
		goto done;
	}
	if ((rc = ws_store_open(&s, path, wsid, WS_STORE_READONLY, e))) {
		rc = ws_error(x->err, rc, "%s", e);
		goto out;
	}
	ws_siteid_hex(ws_store_site(s), hex);
	if ((rc = ws_store_clock(s, &vc, e)) || (rc = ws_store_pending(s, &pending, e))) {
		rc = ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	ws_store_file_stats(f, &ss);
	if (root) {
		json_t *log = json_object();
		int has_guid = ws_store_guid(s, guid);
		struct ws_siteid g;

		if (has_guid) {
			memcpy(g.b, guid, WS_GUID_LEN);
			ws_siteid_hex(&g, e);
		}
		if (!log || json_object_set_new(root, "wsid", json_string(wsid)) ||
		    json_object_set_new(root, "site", json_string(hex)) ||
		    json_object_set_new(root, "guid", has_guid ? json_string(e) :
		    json_null()) ||
		    json_object_set_new(root, "clock", ws_json_from_vclock(&vc)) ||
		    json_object_set_new(log, "entries", json_integer(ss.entries)) ||
		    json_object_set_new(log, "first_usn", ss.first_usn < 0 ? json_null() :
		    json_integer(ss.first_usn)) ||
		    json_object_set_new(log, "last_usn", ss.last_usn < 0 ? json_null() :
		    json_integer(ss.last_usn)) ||
		    json_object_set_new(log, "batches", json_integer(ss.batches)) ||
		    json_object_set_new(log, "bytes", ss.bytes < 0 ? json_null() :
		    json_integer(ss.bytes)) ||
		    json_object_set_new(root, "log", log) ||
		    json_object_set_new(root, "pending", json_integer((json_int_t)pending)) ||
		    !(cf.arr = json_array()) ||
		    json_object_set_new(root, "conflicts", cf.arr)) {
			rc = WS_ENOMEM;
			goto out;
		}
		if ((rc = db_tables(x, f, &ss, root)))
			goto out;
		if (!(un.arr = json_array()) ||
		    json_object_set_new(root, "untracked", un.arr)) {
			rc = WS_ENOMEM;
			goto out;
		}
		if ((rc = ws_store_untracked(s, untracked_cb, &un, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
	} else {
		struct ws_siteid g;
		struct ws_buf *o = &x->out;
		size_t i;

		if ((rc = ws_buf_printf(o, "database      ")) ||
		    (rc = ws_escape_append(o, path, strlen(path))) ||
		    (rc = ws_buf_printf(o, "\nworking set   ")) || (rc = insp_put_names(o, wsid)) ||
		    (rc = ws_buf_printf(o, "\nsite          %s\n", hex)))
			goto out;
		if (ws_store_guid(s, guid)) {
			memcpy(g.b, guid, WS_GUID_LEN);
			ws_siteid_hex(&g, hex);
			rc = ws_buf_printf(o, "guid          %s\n", hex);
		} else {
			rc = ws_buf_printf(o, "guid          none\n");
		}
		if (rc || (rc = ws_buf_printf(o, "clock         ")))
			goto out;
		for (i = 0; i < vc.n && !rc; i++) {
			ws_siteid_hex(&vc.e[i].site, hex);
			rc = ws_buf_printf(o, "%s%s:%" PRIu64, i ? ", " : "", hex,
			    vc.e[i].counter);
		}
		if (rc || (rc = ws_buf_printf(o, "%s\n", vc.n ? "" : "empty")) ||
		    (rc = db_tables(x, f, &ss, NULL)))
			goto out;
		if ((rc = ws_store_untracked(s, untracked_cb, &un, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
		rc = ws_buf_printf(o, "change log    %" PRId64 " entr%s", ss.entries,
		    ss.entries == 1 ? "y" : "ies");
		if (!rc && ss.entries > 0)
			rc = ws_buf_printf(o, " (usn %" PRId64 " to %" PRId64 ")",
			    ss.first_usn, ss.last_usn);
		if (!rc)
			rc = ws_buf_printf(o, ", %" PRId64 " batch%s", ss.batches,
			    ss.batches == 1 ? "" : "es");
		if (!rc && ss.bytes >= 0)
			rc = ws_buf_printf(o, ", %" PRId64 " bytes", ss.bytes);
		if (!rc)
			rc = ws_buf_printf(o, "\npending       %zu batch%s waiting\n", pending,
			    pending == 1 ? "" : "es");
		if (!rc)
			rc = ws_buf_printf(o, "conflicts     %" PRId64 "\n", ss.conflicts);
		if (rc)
			goto out;
	}
	if ((rc = ws_store_conflicts(s, conflict_cb, &cf, e))) {
		rc = cf.rc ? cf.rc : ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	rc = db_replica(x, f, root);
done:
	if (!rc && root) {
		char *j = json_dumps(root, JSON_COMPACT);

		rc = !j || ws_buf_printf(&x->out, "%s\n", j) ? WS_ENOMEM : 0;
		free(j);
	}
out:
	json_decref(root);
	ws_store_close(s);
	ws_store_file_close(f);
	ws_vclock_release(&vc);
	return rc;
}
