/* secrets.h -- named secrets stored in the data directory, one file per key.
 *
 * A secret NAME lives in DATA/secrets/NAME/ (mode 0700), each key KEY in the file
 * DATA/secrets/NAME/KEY (mode 0600). Instances that list the secret get a copy of
 * those files under /run/secrets/NAME/ in their sandbox (runtime/sandbox_linux.c);
 * values never leave this module otherwise. Names follow the rules of function names
 * (fl_valid_name). */
#ifndef FL_SECRETS_H
#define FL_SECRETS_H

#include <jansson.h>
#include <stddef.h>

#define FL_SECRET_MAX_KEYS  64
#define FL_SECRET_MAX_BYTES (1u << 20) /* all values of one secret together */

/* One key and its value (bytes, not necessarily text). */
struct fl_secret_kv {
	const char *key;
	const unsigned char *val;
	size_t len;
};

/* 1 when key may name a file of a secret: 1-255 characters of [A-Za-z0-9._-], not
 * starting with '.'. */
int fl_secret_valid_key(const char *key);

/* Writes the directory of secret name into out ("DATA/secrets/NAME"). */
void fl_secret_dir(const char *data_dir, const char *name, char *out, size_t outlen);

/* 1 if secret name is stored, 0 if not (or the name is not valid). */
int fl_secret_exists(const char *data_dir, const char *name);

/* Stores secret name with exactly the n given keys, replacing any earlier keys as
 * one step (the old directory is swapped for a complete new one). *created is 1
 * when no secret of that name existed. Names and keys must have been checked.
 * Returns 0 or -errno. Nothing is retained. */
int fl_secret_put(const char *data_dir, const char *name, const struct fl_secret_kv *kv, int n,
		  int *created);

/* The sorted key names of secret name as a new JSON array, or NULL if there is no
 * such secret. */
json_t *fl_secret_keys(const char *data_dir, const char *name);

/* The sorted names of every stored secret as a new JSON array (empty if none). */
json_t *fl_secret_names(const char *data_dir);

/* Deletes secret name and its files. Returns 0, -ENOENT or another -errno. */
int fl_secret_remove(const char *data_dir, const char *name);

#endif
