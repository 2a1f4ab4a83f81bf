/* secrets.c -- the secret store: DATA/secrets/NAME/KEY files, written 0600 in 0700 directories. */
#include "control/secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

int fl_secret_valid_key(const char *key)
{
	size_t i, n = strlen(key);

	if (n == 0 || n > 255 || key[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

void fl_secret_dir(const char *data_dir, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/secrets/%s", data_dir, name);
}

int fl_secret_exists(const char *data_dir, const char *name)
{
	char dir[4096];
	struct stat st;

	if (!fl_valid_name(name))
		return 0;
	fl_secret_dir(data_dir, name, dir, sizeof(dir));
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Removes a secret directory with its files (there are no subdirectories). */
static int rm_secret_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int fd, r = 0;

	if (d == NULL)
		return -errno;
	fd = dirfd(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && unlinkat(fd, e->d_name, 0) < 0 && r == 0)
			r = -errno;
	closedir(d);
	if (rmdir(dir) < 0 && r == 0)
		r = -errno;
	return r;
}

static int write_key(const char *dir, const struct fl_secret_kv *kv)
{
	char path[4400];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, kv->key);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = fl_write_all(fd, kv->val, kv->len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int fl_secret_put(const char *data_dir, const char *name, const struct fl_secret_kv *kv, int n,
		  int *created)
{
	char base[4096], dir[4200], tmp[4200], old[4200], rnd[17];
	int r, i, had;

	snprintf(base, sizeof(base), "%s/secrets", data_dir);
	if ((r = fl_mkdirs(base, 0700)) < 0)
		return r;
	/* An existing directory keeps its mode with mkdir -p: tighten it. */
	if (chmod(base, 0700) < 0)
		return -errno;
	fl_random_hex(rnd, 8);
	fl_secret_dir(data_dir, name, dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.new-%s-%s", base, name, rnd);
	snprintf(old, sizeof(old), "%s/.old-%s-%s", base, name, rnd);
	if (mkdir(tmp, 0700) < 0)
		return -errno;
	for (i = 0; i < n; i++)
		if ((r = write_key(tmp, &kv[i])) < 0)
			goto fail;
	had = fl_secret_exists(data_dir, name);
	if (had && rename(dir, old) < 0) {
		r = -errno;
		goto fail;
	}
	if (rename(tmp, dir) < 0) {
		r = -errno;
		if (had)
			rename(old, dir);
		goto fail;
	}
	if (had)
		rm_secret_dir(old);
	*created = !had;
	return 0;
fail:
	rm_secret_dir(tmp);
	return r;
}

static int cmp_json_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The visible entries of dir (no dot files), sorted, as a JSON array; dirs_only
 * keeps directories, else regular files. NULL if dir cannot be read. */
static json_t *list_dir(const char *dir, int dirs_only)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	json_t *arr;

	if (d == NULL)
		return NULL;
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (e->d_name[0] == '.' ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (dirs_only ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(names, cap * sizeof(*names));
			if (nn == NULL)
				break;
			names = nn;
		}
		names[n++] = fl_xstrdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_json_str);
	arr = json_array();
	for (i = 0; i < n; i++) {
		json_array_append_new(arr, json_string(names[i]));
		free(names[i]);
	}
	free(names);
	return arr;
}

json_t *fl_secret_keys(const char *data_dir, const char *name)
{
	char dir[4096];

	if (!fl_secret_exists(data_dir, name))
		return NULL;
	fl_secret_dir(data_dir, name, dir, sizeof(dir));
	return list_dir(dir, 0);
}

json_t *fl_secret_names(const char *data_dir)
{
	char base[4096];
	json_t *arr;

	snprintf(base, sizeof(base), "%s/secrets", data_dir);
	arr = list_dir(base, 1);
	return arr ? arr : json_array();
}

int fl_secret_remove(const char *data_dir, const char *name)
{
	char dir[4096];

	if (!fl_secret_exists(data_dir, name))
		return -ENOENT;
	fl_secret_dir(data_dir, name, dir, sizeof(dir));
	return rm_secret_dir(dir);
}
