/* image.c -- OCI image layouts unpacked once per manifest digest, whiteouts applied. */
#include "control/image.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"

#define REF_NAME "org.opencontainers.image.ref.name"
/* index.json, manifests and configs are small; anything bigger is not one. */
#define MAX_JSON_BLOB (4u << 20)

void fl_image_split(const char *ref, char **path, char **tag)
{
	const char *colon = strrchr(ref, ':');

	if (colon && strchr(colon, '/'))
		colon = NULL;
	*path = colon ? fl_xstrndup(ref, (size_t)(colon - ref)) : fl_xstrdup(ref);
	*tag = colon ? fl_xstrdup(colon + 1) : NULL;
}

/* Points *hex at the 64 hex digits of "sha256:<hex>", or returns -EINVAL. */
static int digest_hex(const char *digest, const char **hex)
{
	const char *p;

	if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71)
		return -EINVAL;
	for (p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -EINVAL;
	*hex = digest + 7;
	return 0;
}

/* Hashes the file at path and compares with hex; 0, -EBADMSG on a mismatch, or -errno. */
static int check_file_digest(const char *path, const char *hex)
{
	unsigned char buf[65536], sum[32];
	char got[65];
	fl_sha256 c;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), i;

	if (fd < 0)
		return -errno;
	fl_sha256_init(&c);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			close(fd);
			return rc;
		}
		fl_sha256_update(&c, buf, (size_t)n);
	}
	close(fd);
	fl_sha256_final(&c, sum);
	for (i = 0; i < 32; i++)
		snprintf(got + 2 * i, 3, "%02x", sum[i]);
	return strcmp(got, hex) == 0 ? 0 : -EBADMSG;
}

/* Reads the JSON blob of a descriptor's digest from the layout, checking the digest.
 * what names it in errors ("manifest", "config"). NULL with a sentence in err. */
static json_t *read_json_blob(const char *layout, const char *digest, const char *what, char *err,
			      size_t errlen)
{
	char path[4200];
	const char *hex;
	json_error_t jerr;
	json_t *j;
	char *text;
	size_t len;
	int rc;

	if (digest_hex(digest, &hex) < 0) {
		snprintf(err, errlen,
			 "image: the %s digest \"%s\" is not \"sha256:\" and 64 hex digits", what,
			 digest ? digest : "");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/blobs/sha256/%s", layout, hex);
	if ((rc = check_file_digest(path, hex)) < 0) {
		snprintf(err, errlen, "image: the %s blob %s %s", what, path,
			 rc == -EBADMSG ? "does not match its digest" : strerror(-rc));
		return NULL;
	}
	text = fl_read_file(path, &len);
	if (text == NULL || len > MAX_JSON_BLOB) {
		snprintf(err, errlen, "image: cannot read the %s blob %s: %s", what, path,
			 text ? "too large" : strerror(errno));
		free(text);
		return NULL;
	}
	j = json_loadb(text, len, 0, &jerr);
	free(text);
	if (!json_is_object(j)) {
		snprintf(err, errlen, "image: the %s blob %s is not a JSON object: %s", what, path,
			 j ? "wrong type" : jerr.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The OCI/Go name of this machine's architecture. */
static const char *host_arch(void)
{
	static const char *const map[][2] = {
	    {"x86_64", "amd64"},    {"aarch64", "arm64"}, {"armv7l", "arm"},	 {"i686", "386"},
	    {"ppc64le", "ppc64le"}, {"s390x", "s390x"},	  {"riscv64", "riscv64"}};
	static struct utsname u;
	size_t i;

	if (uname(&u) < 0)
		return "";
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(u.machine, map[i][0]) == 0)
			return map[i][1];
	return u.machine;
}

/* Picks the manifest descriptor of an index: by tag (ref.name), or "latest", or the only
 * one; in a nested index (tag == NULL), the one for this platform. Borrowed from index. */
static json_t *pick(json_t *index, const char *tag, const char *ref, int nested, char *err,
		    size_t errlen)
{
	json_t *ms = json_object_get(index, "manifests"), *m, *found = NULL;
	size_t i;

	if (!json_is_array(ms) || json_array_size(ms) == 0) {
		snprintf(err, errlen, "image: %s lists no manifests", ref);
		return NULL;
	}
	json_array_foreach(ms, i, m)
	{
		const char *name = str_of(json_object_get(m, "annotations"), REF_NAME);
		json_t *pf = json_object_get(m, "platform");
		if (nested) {
			if (pf && (!str_of(pf, "os") || strcmp(str_of(pf, "os"), "linux") != 0 ||
				   !str_of(pf, "architecture") ||
				   strcmp(str_of(pf, "architecture"), host_arch()) != 0))
				continue;
		} else if (name == NULL || strcmp(name, tag ? tag : "latest") != 0) {
			continue;
		}
		found = m;
		break;
	}
	if (found == NULL && !tag && json_array_size(ms) == 1)
		found = json_array_get(ms, 0);
	if (found == NULL && nested)
		snprintf(err, errlen, "image: %s has no manifest for linux/%s", ref, host_arch());
	else if (found == NULL)
		snprintf(err, errlen,
			 "image: %s has no manifest tagged \"%s\" (annotation " REF_NAME
			 " in index.json)%s",
			 ref, tag ? tag : "latest", tag ? "" : "; name a tag with PATH:TAG");
	return found;
}

/* The strings of a JSON array as a NULL-terminated vector (never NULL); non-strings are
 * an error (-EINVAL). */
static int strv_of(const json_t *a, char ***out)
{
	size_t i, n = json_is_array(a) ? json_array_size(a) : 0;
	json_t *v;

	*out = fl_xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		v = json_array_get(a, i);
		if (!json_is_string(v))
			return -EINVAL;
		(*out)[i] = fl_xstrdup(json_string_value(v));
	}
	return 0;
}

/* ---- unpacking ---- */

struct layer {
	char *path; /* blobs/sha256/<hex> in the layout */
	char digest[72];
};

struct unpack_job {
	const char *tmp; /* the directory being filled */
	struct layer *layers;
	size_t n;
	int rc;
	char *err;
	size_t errlen;
	unsigned skipped_devices;
};

/* Removes name under dfd, recursively, never following a symbolic link. */
static int rm_at(int dfd, const char *name)
{
	struct dirent *e;
	DIR *d;
	int fd, rc = 0;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return -errno;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	while (rc == 0 && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rc = rm_at(dirfd(d), e->d_name);
	closedir(d);
	if (rc == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = -errno;
	return rc;
}

/* Opens dir of the tree (root) as the image itself would see it: symbolic links resolved
 * inside the tree, never beyond it. -ENOENT when it is not there. */
static int open_in_root(int root, const char *dir)
{
	struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	long fd = syscall(SYS_openat2, root, dir[0] ? dir : ".", &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* Strips leading "./" (and repeated slashes after it) from an entry name. */
static const char *entry_name(const char *p)
{
	while (p[0] == '.' && p[1] == '/') {
		p += 2;
		while (*p == '/')
			p++;
	}
	return p;
}

/* Whether a name is absolute or has a ".." component. */
static const char *unsafe_path(const char *p)
{
	const char *c;

	if (p[0] == '/')
		return "is an absolute path";
	for (c = p; (c = strstr(c, "..")) != NULL; c += 2)
		if ((c == p || c[-1] == '/') && (c[2] == '\0' || c[2] == '/'))
			return "contains \"..\"";
	return NULL;
}

static struct archive *open_layer(const struct layer *l)
{
	struct archive *a = archive_read_new();

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	/* A failure here shows again, with its message, on the first header. */
	archive_read_open_filename(a, l->path, 65536);
	return a;
}

static int job_fail(struct unpack_job *j, const struct layer *l, size_t idx, const char *entry,
		    const char *why)
{
	if (entry)
		snprintf(j->err, j->errlen,
			 "image: layer %zu (%.19s) has an unsafe entry \"%.200s\" (%s); refusing "
			 "the image",
			 idx + 1, l->digest, entry, why);
	else
		snprintf(j->err, j->errlen, "image: layer %zu (%.19s) cannot be unpacked: %s",
			 idx + 1, l->digest, why);
	return -EINVAL;
}

/* First pass over a layer: checks every name, and applies its whiteouts to the layers
 * below (a whiteout never touches entries of its own layer, whatever their order). */
static int apply_whiteouts(struct unpack_job *j, int root, const struct layer *l, size_t idx)
{
	struct archive *a = open_layer(l);
	struct archive_entry *e;
	int r, rc = 0;

	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *raw = archive_entry_pathname(e), *name, *why, *base, *hl;
		char dir[4096];
		int fd;

		if (raw == NULL) {
			rc = job_fail(j, l, idx, NULL, "an entry has no name");
			break;
		}
		name = entry_name(raw);
		hl = archive_entry_hardlink(e);
		if ((why = unsafe_path(name)) != NULL ||
		    (hl && (why = unsafe_path(entry_name(hl))) != NULL)) {
			rc = job_fail(j, l, idx, raw, why);
			break;
		}
		base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (strncmp(base, ".wh.", 4) != 0)
			continue;
		snprintf(dir, sizeof(dir), "%.*s", (int)(base - name), name);
		fd = open_in_root(root, dir);
		if (fd == -ENOENT || fd == -ENOTDIR)
			continue; /* nothing below to delete */
		if (fd < 0) {
			rc = job_fail(j, l, idx, raw, strerror(-fd));
			break;
		}
		if (strcmp(base, ".wh..wh..opq") == 0) {
			DIR *d = fdopendir(fd);
			struct dirent *de;
			if (d == NULL) {
				close(fd);
				rc = job_fail(j, l, idx, raw, strerror(errno));
				break;
			}
			while (rc == 0 && (de = readdir(d)) != NULL)
				if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
					rc = rm_at(dirfd(d), de->d_name);
			closedir(d);
		} else {
			rc = base[4] ? rm_at(fd, base + 4) : 0;
			close(fd);
		}
		if (rc < 0) {
			rc = job_fail(j, l, idx, raw, strerror(-rc));
			break;
		}
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = job_fail(j, l, idx, NULL, archive_error_string(a) ?: "not a tar archive");
	archive_read_free(a);
	return rc;
}

/* Second pass: extracts everything but whiteouts and device nodes, relative to the
 * working directory (the tree), with libarchive's own refusals switched on as well. */
static int extract(struct unpack_job *j, const struct layer *l, size_t idx)
{
	const int flags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
			  ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_PERM |
			  ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_OWNER;
	struct archive *a = open_layer(l), *w = archive_write_disk_new();
	struct archive_entry *e;
	int r, rc = 0;

	archive_write_disk_set_options(w, flags);
	archive_write_disk_set_standard_lookup(w);
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = entry_name(archive_entry_pathname(e)), *base;
		mode_t type = archive_entry_filetype(e);
		const char *hl = archive_entry_hardlink(e);

		base = strrchr(name, '/');
		base = base ? base + 1 : name;
		if (name[0] == '\0' || strncmp(base, ".wh.", 4) == 0)
			continue;
		/* The tree is mounted nodev anyway; devices come from flint's own /dev. */
		if (type == AE_IFCHR || type == AE_IFBLK) {
			j->skipped_devices++;
			continue;
		}
		archive_entry_set_pathname(e, name);
		if (hl)
			archive_entry_set_hardlink(e, entry_name(hl));
		r = archive_write_header(w, e);
		if (r == ARCHIVE_OK && archive_entry_size(e) > 0) {
			const void *buf;
			size_t size;
			la_int64_t off;
			while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK)
				if ((r = (int)archive_write_data_block(w, buf, size, off)) <
				    ARCHIVE_OK)
					break;
			if (r == ARCHIVE_EOF)
				r = ARCHIVE_OK;
			else if (r < ARCHIVE_OK && archive_error_string(a)) {
				rc = job_fail(j, l, idx, NULL, archive_error_string(a));
				break;
			}
		}
		if (r == ARCHIVE_OK)
			r = archive_write_finish_entry(w);
		if (r < ARCHIVE_WARN) {
			rc = job_fail(j, l, idx, name,
				      archive_error_string(w) ?: "cannot be extracted");
			break;
		}
	}
	if (rc == 0 && r != ARCHIVE_EOF)
		rc = job_fail(j, l, idx, NULL, archive_error_string(a) ?: "not a tar archive");
	archive_read_free(a);
	archive_write_free(w);
	return rc;
}

/* The extraction thread: a working directory of its own (CLONE_FS), so libarchive's
 * relative paths, and its refusal of absolute ones, work without touching the daemon's. */
static void *unpack_thread(void *arg)
{
	struct unpack_job *j = arg;
	size_t i;
	int root;

	if (unshare(CLONE_FS) < 0 || chdir(j->tmp) < 0) {
		j->rc = -errno;
		snprintf(j->err, j->errlen, "image: cannot enter %s: %s", j->tmp, strerror(errno));
		return NULL;
	}
	umask(022);
	root = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		j->rc = -errno;
		snprintf(j->err, j->errlen, "image: cannot open %s: %s", j->tmp, strerror(errno));
		return NULL;
	}
	for (i = 0; i < j->n && j->rc == 0; i++) {
		int rc = check_file_digest(j->layers[i].path, j->layers[i].digest + 7);
		if (rc < 0) {
			j->rc = job_fail(j, &j->layers[i], i, NULL,
					 rc == -EBADMSG ? "the blob does not match its digest"
							: strerror(-rc));
			break;
		}
		if ((j->rc = apply_whiteouts(j, root, &j->layers[i], i)) == 0)
			j->rc = extract(j, &j->layers[i], i);
	}
	close(root);
	return NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 ? -1 : 0;
}

static void remove_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int layer_type_ok(const char *t)
{
	static const char *const ok[] = {
	    "application/vnd.oci.image.layer.v1.tar",
	    "application/vnd.oci.image.layer.v1.tar+gzip",
	    "application/vnd.oci.image.layer.v1.tar+zstd",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar",
	    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	    "application/vnd.docker.image.rootfs.diff.tar",
	    "application/vnd.docker.image.rootfs.diff.tar.gzip",
	    NULL};

	for (size_t i = 0; ok[i]; i++)
		if (t && strcmp(t, ok[i]) == 0)
			return 1;
	return 0;
}

/* Unpacks the manifest's layers into dest through a temporary directory next to it. */
static int unpack(const char *layout, const json_t *manifest, const char *dest, char *err,
		  size_t errlen)
{
	json_t *ls = json_object_get(manifest, "layers"), *l;
	struct unpack_job j = {.err = err, .errlen = errlen};
	char tmp[4200];
	pthread_t th;
	size_t i;
	int rc = 0;

	if (!json_is_array(ls)) {
		snprintf(err, errlen, "image: the manifest has no \"layers\" list");
		return -EINVAL;
	}
	j.layers = fl_xcalloc(json_array_size(ls) + 1, sizeof(*j.layers));
	json_array_foreach(ls, i, l)
	{
		const char *d = str_of(l, "digest"), *t = str_of(l, "mediaType"), *hex;
		char p[4200];
		if (!layer_type_ok(t)) {
			snprintf(
			    err, errlen,
			    "image: layer %zu has media type \"%s\"; flint unpacks tar layers, "
			    "plain, gzip or zstd",
			    i + 1, t ? t : "");
			rc = -ENOTSUP;
			goto out;
		}
		if (digest_hex(d, &hex) < 0) {
			snprintf(err, errlen, "image: layer %zu has no valid sha256 digest", i + 1);
			rc = -EINVAL;
			goto out;
		}
		snprintf(p, sizeof(p), "%s/blobs/sha256/%s", layout, hex);
		j.layers[i].path = fl_xstrdup(p);
		snprintf(j.layers[i].digest, sizeof(j.layers[i].digest), "%s", d);
		j.n++;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dest);
	if (mkdtemp(tmp) == NULL || chmod(tmp, 0755) < 0) {
		rc = -errno;
		snprintf(err, errlen, "image: cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	j.tmp = tmp;
	if ((rc = -pthread_create(&th, NULL, unpack_thread, &j)) < 0) {
		snprintf(err, errlen, "image: cannot start unpacking: %s", strerror(-rc));
		remove_tree(tmp);
		goto out;
	}
	pthread_join(th, NULL);
	if ((rc = j.rc) == 0 && rename(tmp, dest) < 0) {
		/* Another unpack of the same manifest finished first: theirs is as good. */
		if (!((errno == EEXIST || errno == ENOTEMPTY) && access(dest, F_OK) == 0)) {
			rc = -errno;
			snprintf(err, errlen, "image: cannot move the tree into %s: %s", dest,
				 strerror(errno));
		}
	}
	if (rc < 0 || access(tmp, F_OK) == 0)
		remove_tree(tmp);
	if (rc == 0 && j.skipped_devices)
		fl_info("image", "%s: skipped %u device nodes (instances get flint's /dev)", dest,
			j.skipped_devices);
out:
	for (i = 0; i < j.n; i++)
		free(j.layers[i].path);
	free(j.layers);
	return rc;
}

int fl_image_open(const char *data_dir, const char *ref, fl_image **out, char *err, size_t errlen)
{
	char *layout = NULL, *tag = NULL, path[4200], dest[4200];
	json_t *index = NULL, *nested = NULL, *manifest = NULL, *config = NULL, *desc, *cc;
	const char *mdigest, *hex;
	fl_image *img = fl_xcalloc(1, sizeof(*img));
	json_error_t jerr;
	int rc = -EINVAL;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	fl_image_split(ref, &layout, &tag);
	snprintf(path, sizeof(path), "%s/index.json", layout);
	index = json_load_file(path, 0, &jerr);
	if (!json_is_object(index)) {
		snprintf(err, errlen, "image: cannot read %s: %s", path,
			 index ? "not a JSON object" : jerr.text);
		goto fail;
	}
	if ((desc = pick(index, tag, ref, 0, err, errlen)) == NULL)
		goto fail;
	mdigest = str_of(desc, "digest");
	/* A multi-platform image: its index names one manifest per platform. */
	if (str_of(desc, "mediaType") &&
	    (strcmp(str_of(desc, "mediaType"), "application/vnd.oci.image.index.v1+json") == 0 ||
	     strcmp(str_of(desc, "mediaType"),
		    "application/vnd.docker.distribution.manifest.list.v2+json") == 0)) {
		if ((nested = read_json_blob(layout, mdigest, "index", err, errlen)) == NULL ||
		    (desc = pick(nested, NULL, ref, 1, err, errlen)) == NULL)
			goto fail;
		mdigest = str_of(desc, "digest");
	}
	if ((manifest = read_json_blob(layout, mdigest, "manifest", err, errlen)) == NULL)
		goto fail;
	if ((config = read_json_blob(layout, str_of(json_object_get(manifest, "config"), "digest"),
				     "config", err, errlen)) == NULL)
		goto fail;
	cc = json_object_get(config, "config");
	if (strv_of(json_object_get(cc, "Entrypoint"), &img->entrypoint) < 0 ||
	    strv_of(json_object_get(cc, "Cmd"), &img->cmd) < 0 ||
	    strv_of(json_object_get(cc, "Env"), &img->env) < 0) {
		snprintf(err, errlen,
			 "image: the config's Entrypoint, Cmd and Env must be lists of "
			 "strings");
		goto fail;
	}
	for (char **e = img->env; *e; e++)
		if (strchr(*e, '=') == NULL || **e == '=') {
			snprintf(err, errlen,
				 "image: the config's Env entry \"%.100s\" is not NAME=value", *e);
			goto fail;
		}
	if (str_of(cc, "WorkingDir") && str_of(cc, "WorkingDir")[0]) {
		if (str_of(cc, "WorkingDir")[0] != '/') {
			snprintf(err, errlen,
				 "image: the config's WorkingDir \"%.100s\" is not absolute",
				 str_of(cc, "WorkingDir"));
			goto fail;
		}
		img->workdir = fl_xstrdup(str_of(cc, "WorkingDir"));
	}
	digest_hex(mdigest, &hex); /* checked by read_json_blob */
	img->digest = fl_xstrdup(mdigest);
	snprintf(path, sizeof(path), "%s/images/%s", data_dir, hex);
	if ((rc = fl_mkdirs(path, 0755)) < 0) {
		snprintf(err, errlen, "image: cannot create %s: %s", path, strerror(-rc));
		goto fail;
	}
	snprintf(dest, sizeof(dest), "%s/rootfs", path);
	if (access(dest, F_OK) != 0) {
		uint64_t t0 = fl_now_ms();
		if ((rc = unpack(layout, manifest, dest, err, errlen)) < 0)
			goto fail;
		fl_info("image", "unpacked %s (%zu layers) into %s in %llu ms", ref,
			json_array_size(json_object_get(manifest, "layers")), dest,
			(unsigned long long)(fl_now_ms() - t0));
	}
	img->rootfs = fl_xstrdup(dest);
	*out = img;
	img = NULL;
	rc = 0;
fail:
	json_decref(config);
	json_decref(manifest);
	json_decref(nested);
	json_decref(index);
	free(layout);
	free(tag);
	fl_image_free(img);
	return rc;
}

char **fl_image_command(const fl_image *img)
{
	size_t ne = 0, nc = 0, i;
	char **v;

	while (img->entrypoint[ne])
		ne++;
	while (img->cmd[nc])
		nc++;
	if (ne + nc == 0)
		return NULL;
	v = fl_xcalloc(ne + nc + 1, sizeof(char *));
	for (i = 0; i < ne; i++)
		v[i] = fl_xstrdup(img->entrypoint[i]);
	for (i = 0; i < nc; i++)
		v[ne + i] = fl_xstrdup(img->cmd[i]);
	return v;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

void fl_image_free(fl_image *img)
{
	if (img == NULL)
		return;
	free(img->digest);
	free(img->rootfs);
	free_strv(img->entrypoint);
	free_strv(img->cmd);
	free_strv(img->env);
	free(img->workdir);
	free(img);
}
