/* blobs.c -- content-addressed code archives and their unpacked trees under the data directory. */
#include "control/blobs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/util.h"

extern char **environ;

/* Keeps tar's output bounded: a listing of millions of names is not a function's code. */
#define MAX_TOOL_OUTPUT (64u << 20)

int fl_blobs_init(const char *data_dir)
{
	char path[4096];
	int rc;

	/* 0755: sandboxed instances run as another uid and must read their code. */
	snprintf(path, sizeof(path), "%s/blobs", data_dir);
	if ((rc = fl_mkdirs(path, 0755)) < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/code", data_dir);
	return fl_mkdirs(path, 0755);
}

/* Points hex at the 64 hex digits of a well-formed digest, or returns -EINVAL. */
static int digest_hex(const char *digest, const char **hex)
{
	const char *p;

	if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != FL_DIGEST_LEN)
		return -EINVAL;
	for (p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -EINVAL;
	*hex = digest + 7;
	return 0;
}

/* Makes a rename inside dir durable. */
static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int fl_blob_put(const char *data_dir, const void *data, size_t len, char *digest_out, int *created)
{
	char hex[65], dir[4096], path[4096], tmp[4200], rnd[17];
	int fd = -1, rc;

	*created = 0;
	fl_sha256_hex(data, len, hex);
	snprintf(digest_out, FL_DIGEST_LEN + 1, "sha256:%s", hex);
	snprintf(dir, sizeof(dir), "%s/blobs", data_dir);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, hex) >= sizeof(path))
		return -ENAMETOOLONG;
	if (access(path, F_OK) == 0)
		return 0;
	/* A random suffix keeps two uploads of the same archive from sharing a temporary. */
	fl_random_hex(rnd, 8);
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%s", dir, hex, rnd);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = fl_write_all(fd, data, len)) < 0)
		goto fail;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = fsync_dir(dir)) < 0)
		fl_warn("blobs", "fsync of %s failed: %s", dir, strerror(-rc));
	*created = 1;
	return 0;
fail:
	fl_error("blobs", "storing %s failed: %s", path, strerror(-rc));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int fl_blob_exists(const char *data_dir, const char *digest)
{
	char path[4096];
	const char *hex;

	if (digest_hex(digest, &hex) < 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s/blobs/%s", data_dir, hex);
	return access(path, F_OK) == 0;
}

/* Runs argv (found on PATH) with stdin from /dev/null, collecting stdout and stderr.
 * Returns the exit status (0-255), or -errno if it could not run or was killed. */
static int run_tool(char *const argv[], fl_buf *out, fl_buf *errout)
{
	posix_spawn_file_actions_t fa;
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, rc, status;
	pid_t pid = -1;

	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		rc = -rc;
		goto out;
	}
	/* dup2 clears close-on-exec on the copies, so only these two ends reach the child. */
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, po[1], 1)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, pe[1], 2)) == 0)
		rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	if (rc != 0) {
		pid = -1;
		rc = -rc;
		goto out;
	}
	/* Both pipes are drained together so a chatty stderr cannot stall the child. */
	for (int open_fds = 2; open_fds > 0;) {
		/* Closed ends are -1, which poll ignores. */
		struct pollfd p[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		for (int i = 0; i < 2; i++) {
			int *fd = i == 0 ? &po[0] : &pe[0];
			fl_buf *b = i == 0 ? out : errout;
			char chunk[65536];
			ssize_t n;
			if (*fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(*fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(*fd);
				*fd = -1;
				open_fds--;
				continue;
			}
			/* Output beyond the bound is read and dropped so the child never blocks. */
			if (b->len < MAX_TOOL_OUTPUT && fl_buf_append(b, chunk, (size_t)n) < 0) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	rc = 0;
out:
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	if (po[1] >= 0)
		close(po[1]);
	if (pe[1] >= 0)
		close(pe[1]);
	if (pid > 0) {
		while (waitpid(pid, &status, 0) < 0) {
			if (errno != EINTR)
				return -errno;
		}
		if (rc == 0)
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : -ECHILD;
	}
	return rc;
}

/* Removes a directory tree we created (a failed or redundant unpack). */
static void remove_tree(const char *dir)
{
	char *argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
	fl_buf out = FL_BUF_INIT, err = FL_BUF_INIT;

	if (run_tool(argv, &out, &err) != 0)
		fl_warn("blobs", "could not remove %s: %s", dir, err.p ? err.p : "rm failed");
	fl_buf_free(&out);
	fl_buf_free(&err);
}

/* The first line of a tool's error output, for a one-sentence message. */
static const char *first_line(fl_buf *b)
{
	char *nl;

	if (b->len == 0)
		return "no message";
	nl = memchr(b->p, '\n', b->len);
	if (nl)
		*nl = '\0';
	return b->p;
}

/* Checks every name of a tar listing: no absolute paths, no ".." components. Returns
 * 0, or -EPERM with the offending name in err. */
static int check_listing(char *list, const char *digest, char *err, size_t errlen)
{
	char *save = NULL;

	for (char *name = strtok_r(list, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
		const char *c = name;
		if (name[0] == '/') {
			snprintf(err, errlen,
				 "code archive %s contains an absolute path \"%s\": archive the "
				 "function directory with relative paths",
				 digest, name);
			return -EPERM;
		}
		while (*c) {
			size_t n = strcspn(c, "/");
			if (n == 2 && c[0] == '.' && c[1] == '.') {
				snprintf(
				    err, errlen,
				    "code archive %s contains a path with \"..\" (\"%s\") that "
				    "would escape its directory",
				    digest, name);
				return -EPERM;
			}
			c += n;
			c += *c == '/';
		}
	}
	return 0;
}

int fl_blob_unpack(const char *data_dir, const char *digest, char **dir_out, char *err,
		   size_t errlen)
{
	char blob[4096], dest[4096], tmp[4200];
	fl_buf out = FL_BUF_INIT, errb = FL_BUF_INIT;
	const char *hex;
	int rc, made_tmp = 0;

	*dir_out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if (digest_hex(digest, &hex) < 0) {
		snprintf(err, errlen, "\"%s\" is not a code digest (\"sha256:\" and 64 hex digits)",
			 digest ? digest : "");
		return -EINVAL;
	}
	snprintf(blob, sizeof(blob), "%s/blobs/%s", data_dir, hex);
	if ((size_t)snprintf(dest, sizeof(dest), "%s/code/%s", data_dir, hex) >= sizeof(dest)) {
		snprintf(err, errlen, "the data directory path is too long");
		return -ENAMETOOLONG;
	}
	if (access(dest, F_OK) == 0)
		goto done;
	if (access(blob, R_OK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "code %s has not been uploaded (upload it before deploying)",
			 digest);
		return rc;
	}

	/* -P lists names as stored, so a leading '/' is seen rather than silently stripped. */
	{
		char *argv[] = {"tar", "-tzPf", blob, NULL};
		rc = run_tool(argv, &out, &errb);
	}
	if (rc != 0) {
		snprintf(err, errlen, "code archive %s could not be read as a tar.gz: %s", digest,
			 rc > 0 ? first_line(&errb) : strerror(-rc));
		rc = rc > 0 ? -EINVAL : rc;
		goto fail;
	}
	if ((rc = check_listing(out.p ? out.p : "", digest, err, errlen)) < 0)
		goto fail;

	snprintf(tmp, sizeof(tmp), "%s/code/.tmp-%s-XXXXXX", data_dir, hex);
	if (mkdtemp(tmp) == NULL) {
		rc = -errno;
		snprintf(err, errlen, "cannot create a directory under %s/code: %s", data_dir,
			 strerror(errno));
		goto fail;
	}
	made_tmp = 1;
	/* mkdtemp makes 0700; the instance's uid must be able to enter its code. */
	if (chmod(tmp, 0755) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot set permissions on %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fl_buf_reset(&out);
	fl_buf_reset(&errb);
	/* Permissions are kept (executables stay executable); ownership is not, so files
	 * belong to flint rather than to whatever uid the archive names. */
	{
		char *argv[] = {"tar", "-xzf", blob, "-C", tmp, "--no-same-owner", NULL};
		rc = run_tool(argv, &out, &errb);
	}
	if (rc != 0) {
		snprintf(err, errlen, "unpacking code archive %s failed: %s", digest,
			 rc > 0 ? first_line(&errb) : strerror(-rc));
		rc = rc > 0 ? -EIO : rc;
		goto fail;
	}
	if (rename(tmp, dest) < 0) {
		/* Another unpack of the same digest finished first: theirs is as good. */
		if ((errno == EEXIST || errno == ENOTEMPTY) && access(dest, F_OK) == 0) {
			remove_tree(tmp);
			goto done;
		}
		rc = -errno;
		snprintf(err, errlen, "cannot move the unpacked code into %s: %s", dest,
			 strerror(errno));
		goto fail;
	}
	made_tmp = 0;
done:
	fl_buf_free(&out);
	fl_buf_free(&errb);
	*dir_out = fl_xstrdup(dest);
	return 0;
fail:
	if (made_tmp)
		remove_tree(tmp);
	fl_buf_free(&out);
	fl_buf_free(&errb);
	return rc;
}
