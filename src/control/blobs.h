/* blobs.h -- content-addressed code storage: DATA/blobs/<hex> holds uploaded
 * tar.gz files, DATA/code/<hex>/ their unpacked trees (once per digest).
 * Digests are written "sha256:<64 lowercase hex>". */
#ifndef FL_BLOBS_H
#define FL_BLOBS_H

#include <stddef.h>

#define FL_DIGEST_LEN 71 /* "sha256:" + 64 hex, without the NUL */

/* Creates DATA/blobs and DATA/code. Returns 0 or -errno. */
int fl_blobs_init(const char *data_dir);

/* Stores data (a tar.gz) under its digest unless it is already there, writing
 * through a temporary file and rename so a crash never leaves a partial blob.
 * Writes the digest into digest_out (FL_DIGEST_LEN+1 bytes) and *created = 1 if
 * it was new. Returns 0 or -errno. */
int fl_blob_put(const char *data_dir, const void *data, size_t len, char *digest_out, int *created);

/* Returns 1 if the digest is stored, 0 if not, -EINVAL for a malformed digest. */
int fl_blob_exists(const char *data_dir, const char *digest);

/* Unpacks the blob into DATA/code/<hex>/ unless already done (a complete unpack is
 * marked by renaming a temporary directory into place), and returns that path
 * in *dir_out (caller frees). Rejects archives with absolute paths or "..".
 * Runs tar synchronously: for the control thread only. Returns 0, or -errno with
 * a sentence in err. */
int fl_blob_unpack(const char *data_dir, const char *digest, char **dir_out, char *err,
		   size_t errlen);

#endif
