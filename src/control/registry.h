/* registry.h -- the durable registry of functions and their versions (SQLite).
 *
 * One database file, DATA/flint.db, in WAL mode. Only the control thread uses it.
 * Kept behind this interface so another store (etcd, for many hosts) can replace
 * it. Specs are stored as normalized JSON text (see spec.h). */
#ifndef FL_REGISTRY_H
#define FL_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

typedef struct fl_registry fl_registry;

/* One version of one function, as handed to callbacks; pointers are valid only
 * during the callback. */
struct fl_registry_row {
	const char *name;
	uint64_t version;
	const char *spec_json;
	uint64_t created_ms; /* wall clock ms of this version */
	uint64_t updated_ms; /* wall clock ms of the last change to the function */
};

typedef void (*fl_registry_cb)(void *ctx, const struct fl_registry_row *row);

/* Opens (creating if needed) DATA/flint.db. Returns 0 and *out, or -errno with a
 * sentence in err. */
int fl_registry_open(const char *data_dir, fl_registry **out, char *err, size_t errlen);
void fl_registry_close(fl_registry *r);

/* Stores spec_json as a new version of name (the first version is 1) and makes
 * it current. Returns 0 with *version set, or -errno (-EIO on a database error,
 * logged). */
int fl_registry_put(fl_registry *r, const char *name, const char *spec_json, uint64_t *version);

/* Replaces the spec of the current version without making a new one (for
 * `flint scale`). -ENOENT if name does not exist. */
int fl_registry_update_current(fl_registry *r, const char *name, const char *spec_json);

/* Removes the function and all its versions. -ENOENT if it does not exist. */
int fl_registry_delete(fl_registry *r, const char *name);

/* Current version of name: 0 and *spec_json (caller frees) and *version; or -ENOENT. */
int fl_registry_get(fl_registry *r, const char *name, uint64_t *version, char **spec_json);

/* Calls cb for the current version of every function, by name. Returns 0 or -EIO. */
int fl_registry_list(fl_registry *r, fl_registry_cb cb, void *ctx);

/* Calls cb for every version of name, oldest first. -ENOENT if none. */
int fl_registry_versions(fl_registry *r, const char *name, fl_registry_cb cb, void *ctx);

#endif
