/* util.h -- time, durations and sizes, random ids, small string helpers. */
#ifndef FL_UTIL_H
#define FL_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Result codes beyond negative errno values (nginx's NGX_AGAIN idea). */
#define FL_OK	 0
#define FL_AGAIN (-11000) /* not yet: a normal outcome, try again later */

/* Monotonic clock in milliseconds / nanoseconds. */
uint64_t fl_now_ms(void);
uint64_t fl_now_ns(void);
/* Wall clock, milliseconds since the epoch. */
uint64_t fl_wall_ms(void);

/* Parses a duration: a bare number is seconds ("60"), or a number with a unit
 * "ms", "s", "m", "h" ("500ms", "1.5s", "2m"). Stores milliseconds in *ms.
 * Returns 0, or -EINVAL for anything else (empty, negative, unknown unit). */
int fl_parse_duration(const char *s, uint64_t *ms);
/* Parses a size: bytes, or a number with "k", "m", "g" (powers of 1024, an
 * optional trailing "b"/"ib", any case). Returns 0 or -EINVAL. */
int fl_parse_size(const char *s, uint64_t *bytes);
/* Formats ms as the shortest exact duration string ("60s", "1500ms", "2m"). */
void fl_format_duration(uint64_t ms, char *out, size_t outlen);

/* Fills out with 2*nbytes lowercase hex characters of randomness and a NUL
 * (out must hold 2*nbytes+1). Uses a per-thread generator seeded from getrandom,
 * cheap enough for every request. */
void fl_random_hex(char *out, size_t nbytes);
/* A fast per-thread pseudo-random number (not for secrets). */
uint64_t fl_random_u64(void);
/* Cryptographic randomness (getrandom); returns 0 or -errno. */
int fl_random_bytes(void *out, size_t n);

/* The request id of a request: the client's (given, len; may be NULL) when it
 * is 1 to outlen-1 characters of [A-Za-z0-9._:-], else 16 random hex digits.
 * Writes a NUL-terminated id into out (outlen >= 17). */
void fl_request_id(const char *given, size_t len, char *out, size_t outlen);

/* Lower-cases ASCII letters of s[0..n) in place (Host names, HTTP/2 fields). */
void fl_ascii_lower(char *s, size_t n);

/* Checks a function name: 1-63 chars of [a-z0-9-], starting with a letter or
 * digit and not ending with '-' (a DNS label, so Host routing works). */
int fl_valid_name(const char *s);

/* malloc/calloc/strdup that abort with a message on exhaustion: for the control
 * plane, where running out of memory leaves nothing sensible to do. The data path
 * uses plain malloc and answers 503 instead. */
void *fl_xmalloc(size_t n);
void *fl_xcalloc(size_t n, size_t size);
char *fl_xstrdup(const char *s);
char *fl_xstrndup(const char *s, size_t n);

/* Case-insensitive compare of a counted string with a C string. */
int fl_strncaseeq(const char *a, size_t alen, const char *b);

/* Constant-time comparison of two strings of possibly different lengths: the
 * time depends only on the length of `secret`. Returns 1 when equal. */
int fl_consttime_eq(const char *given, const char *secret);

/* Writes the whole buffer to fd, retrying on EINTR and short writes. 0 or -errno. */
int fl_write_all(int fd, const void *p, size_t n);
/* Reads a whole small file into a new NUL-terminated string; NULL with errno set. */
char *fl_read_file(const char *path, size_t *len);
/* mkdir -p with the given mode for missing components; 0 or -errno. */
int fl_mkdirs(const char *path, int mode);
/* Whether path names a directory (following symbolic links). */
int fl_is_dir(const char *path);

/* Where flint's templates are: $FLINT_TEMPLATES, else templates/ next to the binary's
 * directory (bin/../templates, as in a checkout or an install prefix), else
 * FL_SYSTEM_TEMPLATES. Writes it to out and returns 0, or returns -1 with the reason in
 * why (the places looked at). */
#define FL_SYSTEM_TEMPLATES "/usr/share/flint/templates"
int fl_templates_dir(char *out, size_t n, char *why, size_t whylen);

#endif
