/* registry.c -- functions and their versions in SQLite (DATA/flint.db, WAL mode). */
#include "control/registry.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"

/* Bumped with every schema change; migrate() brings older files forward in steps. */
#define SCHEMA_VERSION 1

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_GET_CURRENT,
	ST_INSERT_FN,
	ST_UPDATE_FN,
	ST_INSERT_VERSION,
	ST_UPDATE_SPEC,
	ST_DELETE_FN,
	ST_DELETE_VERSIONS,
	ST_GET,
	ST_LIST,
	ST_VERSIONS,
	ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_GET_CURRENT] = "SELECT current_version FROM functions WHERE name = ?1",
    [ST_INSERT_FN] = "INSERT INTO functions(name, current_version, created_ms, updated_ms) "
		     "VALUES (?1, ?2, ?3, ?3)",
    [ST_UPDATE_FN] = "UPDATE functions SET current_version = ?2, updated_ms = ?3 WHERE name = ?1",
    [ST_INSERT_VERSION] = "INSERT INTO versions(name, version, spec_json, created_ms) "
			  "VALUES (?1, ?2, ?3, ?4)",
    [ST_UPDATE_SPEC] = "UPDATE versions SET spec_json = ?3 WHERE name = ?1 AND version = ?2",
    [ST_DELETE_FN] = "DELETE FROM functions WHERE name = ?1",
    [ST_DELETE_VERSIONS] = "DELETE FROM versions WHERE name = ?1",
    [ST_GET] = "SELECT f.current_version, v.spec_json FROM functions f JOIN versions v "
	       "ON v.name = f.name AND v.version = f.current_version WHERE f.name = ?1",
    [ST_LIST] = "SELECT f.name, f.current_version, v.spec_json, v.created_ms, f.updated_ms "
		"FROM functions f JOIN versions v ON v.name = f.name AND "
		"v.version = f.current_version ORDER BY f.name",
    [ST_VERSIONS] = "SELECT v.name, v.version, v.spec_json, v.created_ms, f.updated_ms "
		    "FROM versions v JOIN functions f ON f.name = v.name WHERE v.name = ?1 "
		    "ORDER BY v.version",
};

struct fl_registry {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
};

static const char schema_v1[] = "CREATE TABLE IF NOT EXISTS functions ("
				" name TEXT PRIMARY KEY,"
				" current_version INTEGER NOT NULL,"
				" created_ms INTEGER NOT NULL,"
				" updated_ms INTEGER NOT NULL);"
				"CREATE TABLE IF NOT EXISTS versions ("
				" name TEXT NOT NULL,"
				" version INTEGER NOT NULL,"
				" spec_json TEXT NOT NULL,"
				" created_ms INTEGER NOT NULL,"
				" PRIMARY KEY (name, version));";

static int exec(fl_registry *r, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "database error: %s", msg ? msg : sqlite3_errmsg(r->db));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

/* Applies the schema steps the file has not seen yet, each with its version in one
 * transaction, so an interrupted migration is redone from where it stopped. */
static int migrate(fl_registry *r, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version, rc;

	if (sqlite3_prepare_v2(r->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errlen, "database error reading the schema version: %s",
			 sqlite3_errmsg(r->db));
		sqlite3_finalize(st);
		return -EIO;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "the database was written by a newer flint (schema %d, this one knows "
			 "%d): upgrade flint or use another data directory",
			 version, SCHEMA_VERSION);
		return -EPROTO;
	}
	if (version < 1) {
		if ((rc = exec(r, "BEGIN IMMEDIATE", err, errlen)) < 0)
			return rc;
		if ((rc = exec(r, schema_v1, err, errlen)) < 0 ||
		    (rc = exec(r, "PRAGMA user_version = 1", err, errlen)) < 0) {
			sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		if ((rc = exec(r, "COMMIT", err, errlen)) < 0)
			return rc;
	}
	return 0;
}

int fl_registry_open(const char *data_dir, fl_registry **out, char *err, size_t errlen)
{
	fl_registry *r = fl_xcalloc(1, sizeof(*r));
	char path[4096];
	int rc;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((rc = fl_mkdirs(data_dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the data directory %s: %s", data_dir,
			 strerror(-rc));
		goto fail;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/flint.db", data_dir) >= sizeof(path)) {
		snprintf(err, errlen, "the data directory path is too long");
		rc = -ENAMETOOLONG;
		goto fail;
	}
	if (sqlite3_open_v2(path, &r->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path,
			 r->db ? sqlite3_errmsg(r->db) : "out of memory");
		rc = -EIO;
		goto fail;
	}
	/* Another flint (or the sqlite3 shell) may hold the lock for a moment. */
	sqlite3_busy_timeout(r->db, 5000);
	if ((rc = exec(r,
		       "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		       "PRAGMA foreign_keys = ON;",
		       err, errlen)) < 0 ||
	    (rc = migrate(r, err, errlen)) < 0)
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		if (sqlite3_prepare_v3(r->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "database error preparing a statement: %s",
				 sqlite3_errmsg(r->db));
			rc = -EIO;
			goto fail;
		}
	}
	*out = r;
	return 0;
fail:
	fl_registry_close(r);
	return rc;
}

void fl_registry_close(fl_registry *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
	free(r);
}

/* Logs a database error for statement i; returns -EIO. */
static int db_error(fl_registry *r, int i)
{
	fl_error("registry", "%s: %s", sql_text[i], sqlite3_errmsg(r->db));
	return -EIO;
}

/* Runs a statement that returns no rows; leaves it reset and unbound. */
static int step_done(fl_registry *r, int i)
{
	int rc = sqlite3_step(r->st[i]);

	sqlite3_reset(r->st[i]);
	sqlite3_clear_bindings(r->st[i]);
	return rc == SQLITE_DONE ? 0 : db_error(r, i);
}

static int begin(fl_registry *r)
{
	return step_done(r, ST_BEGIN);
}

/* Ends the transaction: commits if rc is 0, else rolls back and keeps rc. */
static int end(fl_registry *r, int rc)
{
	if (rc == 0)
		return step_done(r, ST_COMMIT) == 0 ? 0 : (step_done(r, ST_ROLLBACK), -EIO);
	step_done(r, ST_ROLLBACK);
	return rc;
}

/* Current version of name inside a transaction: 0 and *v, -ENOENT, or -EIO. */
static int current_version(fl_registry *r, const char *name, uint64_t *v)
{
	sqlite3_stmt *st = r->st[ST_GET_CURRENT];
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : db_error(r, ST_GET_CURRENT);
}

int fl_registry_put(fl_registry *r, const char *name, const char *spec_json, uint64_t *version)
{
	sqlite3_int64 now = (sqlite3_int64)fl_wall_ms();
	uint64_t v = 0;
	int rc, st;

	if ((rc = begin(r)) < 0)
		return rc;
	rc = current_version(r, name, &v);
	if (rc == -EIO)
		goto out;
	st = rc == 0 ? ST_UPDATE_FN : ST_INSERT_FN;
	/* A function deleted and created again starts at version 1 again: its old versions
	 * went with it, so no number is ever reused for a different spec while it exists. */
	v = rc == 0 ? v + 1 : 1;
	sqlite3_bind_text(r->st[ST_INSERT_VERSION], 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->st[ST_INSERT_VERSION], 2, (sqlite3_int64)v);
	sqlite3_bind_text(r->st[ST_INSERT_VERSION], 3, spec_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->st[ST_INSERT_VERSION], 4, now);
	if ((rc = step_done(r, ST_INSERT_VERSION)) < 0)
		goto out;
	sqlite3_bind_text(r->st[st], 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->st[st], 2, (sqlite3_int64)v);
	sqlite3_bind_int64(r->st[st], 3, now);
	rc = step_done(r, st);
out:
	rc = end(r, rc);
	if (rc == 0)
		*version = v;
	return rc;
}

int fl_registry_update_current(fl_registry *r, const char *name, const char *spec_json)
{
	sqlite3_int64 now = (sqlite3_int64)fl_wall_ms();
	uint64_t v;
	int rc;

	if ((rc = begin(r)) < 0)
		return rc;
	if ((rc = current_version(r, name, &v)) < 0)
		goto out;
	sqlite3_bind_text(r->st[ST_UPDATE_SPEC], 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->st[ST_UPDATE_SPEC], 2, (sqlite3_int64)v);
	sqlite3_bind_text(r->st[ST_UPDATE_SPEC], 3, spec_json, -1, SQLITE_STATIC);
	if ((rc = step_done(r, ST_UPDATE_SPEC)) < 0)
		goto out;
	sqlite3_bind_text(r->st[ST_UPDATE_FN], 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->st[ST_UPDATE_FN], 2, (sqlite3_int64)v);
	sqlite3_bind_int64(r->st[ST_UPDATE_FN], 3, now);
	rc = step_done(r, ST_UPDATE_FN);
out:
	return end(r, rc);
}

int fl_registry_delete(fl_registry *r, const char *name)
{
	uint64_t v;
	int rc;

	if ((rc = begin(r)) < 0)
		return rc;
	if ((rc = current_version(r, name, &v)) < 0)
		goto out;
	sqlite3_bind_text(r->st[ST_DELETE_VERSIONS], 1, name, -1, SQLITE_STATIC);
	if ((rc = step_done(r, ST_DELETE_VERSIONS)) < 0)
		goto out;
	sqlite3_bind_text(r->st[ST_DELETE_FN], 1, name, -1, SQLITE_STATIC);
	rc = step_done(r, ST_DELETE_FN);
out:
	return end(r, rc);
}

int fl_registry_get(fl_registry *r, const char *name, uint64_t *version, char **spec_json)
{
	sqlite3_stmt *st = r->st[ST_GET];
	int rc;

	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*version = (uint64_t)sqlite3_column_int64(st, 0);
		*spec_json = fl_xstrdup((const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : db_error(r, ST_GET);
}

/* Steps statement i (already bound) and hands each row to cb; *rows counts them. */
static int each_row(fl_registry *r, int i, fl_registry_cb cb, void *ctx, size_t *rows)
{
	sqlite3_stmt *st = r->st[i];
	int rc;

	*rows = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct fl_registry_row row = {
		    .name = (const char *)sqlite3_column_text(st, 0),
		    .version = (uint64_t)sqlite3_column_int64(st, 1),
		    .spec_json = (const char *)sqlite3_column_text(st, 2),
		    .created_ms = (uint64_t)sqlite3_column_int64(st, 3),
		    .updated_ms = (uint64_t)sqlite3_column_int64(st, 4),
		};
		(*rows)++;
		cb(ctx, &row);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : db_error(r, i);
}

int fl_registry_list(fl_registry *r, fl_registry_cb cb, void *ctx)
{
	size_t rows;

	return each_row(r, ST_LIST, cb, ctx, &rows);
}

int fl_registry_versions(fl_registry *r, const char *name, fl_registry_cb cb, void *ctx)
{
	size_t rows;
	int rc;

	sqlite3_bind_text(r->st[ST_VERSIONS], 1, name, -1, SQLITE_STATIC);
	rc = each_row(r, ST_VERSIONS, cb, ctx, &rows);
	if (rc == 0 && rows == 0)
		return -ENOENT;
	return rc;
}
