/* image.h -- OCI image layouts: a tag resolved to a manifest, its layers unpacked once per
 * manifest digest into DATA/images/<hex>/rootfs, and the config's Entrypoint, Cmd, Env and
 * WorkingDir.
 *
 * A layout is a directory with an oci-layout file, an index.json and blobs/sha256/<hex>
 * (what `skopeo copy ... oci:DIR:TAG` and `buildah push ... oci:DIR:TAG` write). Layers
 * are tar archives, plain, gzip- or zstd-compressed; whiteouts (".wh.NAME" deletes NAME,
 * ".wh..wh..opq" empties its directory) apply to the layers below. Every blob read is
 * checked against its digest. Entries with absolute paths or ".." are refused, nothing is
 * extracted through a symbolic link, and device nodes are skipped. */
#ifndef FL_IMAGE_H
#define FL_IMAGE_H

#include <stddef.h>

typedef struct fl_image {
	char *digest;	   /* the manifest's digest, "sha256:<64 hex>" */
	char *rootfs;	   /* DATA/images/<hex>/rootfs: the unpacked tree, never written to */
	char **entrypoint; /* NULL-terminated, never NULL (empty when the config has none) */
	char **cmd;	   /* likewise */
	char **env;	   /* "K=V" strings, likewise */
	char *workdir;	   /* the config's WorkingDir, or NULL when it has none */
} fl_image;

/* Splits ref, "PATH[:TAG]", into the layout directory and the tag: a ':' after the last
 * '/' starts the tag. Both are malloc'd (the caller frees them); *tag is NULL without one. */
void fl_image_split(const char *ref, char **path, char **tag);

/* Resolves ref ("PATH[:TAG]"): with a tag, the manifest of index.json whose annotation
 * org.opencontainers.image.ref.name is TAG; without, the one named "latest", else the only
 * one. A nested image index picks the manifest for this machine (linux and its
 * architecture). Unpacks the layers into DATA/images/<hex>/rootfs unless an earlier call
 * did (through a temporary directory renamed into place, so a tree that exists is
 * complete). Synchronous: for the control thread (the extraction itself runs on a short
 * thread of its own, which needs its own working directory). On success returns 0 and
 * *out (free with fl_image_free); else -errno with one sentence in err. */
int fl_image_open(const char *data_dir, const char *ref, fl_image **out, char *err, size_t errlen);

/* The command an image runs when the spec gives none: Entrypoint followed by Cmd, as a new
 * NULL-terminated vector of malloc'd strings (free each and the vector); NULL when both
 * are empty. */
char **fl_image_command(const fl_image *img);

/* Frees the image description (never the unpacked tree). NULL is fine. */
void fl_image_free(fl_image *img);

#endif
