/* util.c -- time, durations and sizes, random ids, small string helpers. */
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t fl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t fl_now_ms(void)
{
	return fl_now_ns() / 1000000ull;
}

uint64_t fl_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

/* Splits "1.5s" into 1.5 and "s"; rejects empty, negative and non-finite numbers. */
static int split_number(const char *s, double *v, const char **unit)
{
	char *end;

	if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*v = strtod(s, &end);
	if (end == s || errno != 0 || !isfinite(*v) || *v < 0)
		return -EINVAL;
	*unit = end;
	return 0;
}

int fl_parse_duration(const char *s, uint64_t *ms)
{
	const char *unit;
	double v, mult;

	if (split_number(s, &v, &unit) < 0)
		return -EINVAL;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mult = 1000;
	else if (strcmp(unit, "ms") == 0)
		mult = 1;
	else if (strcmp(unit, "m") == 0)
		mult = 60000;
	else if (strcmp(unit, "h") == 0)
		mult = 3600000;
	else
		return -EINVAL;
	v *= mult;
	if (v > 1e15)
		return -EINVAL;
	*ms = (uint64_t)llround(v);
	return 0;
}

int fl_parse_size(const char *s, uint64_t *bytes)
{
	const char *unit;
	double v, mult = 1;

	if (split_number(s, &v, &unit) < 0)
		return -EINVAL;
	switch (tolower((unsigned char)*unit)) {
	case '\0':
		break;
	case 'b':
		if (unit[1] != '\0')
			return -EINVAL;
		break;
	case 'k':
		mult = 1024.0;
		break;
	case 'm':
		mult = 1024.0 * 1024;
		break;
	case 'g':
		mult = 1024.0 * 1024 * 1024;
		break;
	default:
		return -EINVAL;
	}
	if (mult > 1 && unit[1] != '\0' && strcasecmp(unit + 1, "b") != 0 &&
	    strcasecmp(unit + 1, "ib") != 0)
		return -EINVAL;
	v *= mult;
	if (v > 1e18)
		return -EINVAL;
	*bytes = (uint64_t)llround(v);
	return 0;
}

void fl_format_duration(uint64_t ms, char *out, size_t outlen)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(out, outlen, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(out, outlen, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, outlen, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(out, outlen, "%llums", (unsigned long long)ms);
}

int fl_random_bytes(void *out, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = getrandom((char *)out + got, n - got, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

/* xorshift128+, seeded per thread: request ids need to be unique, not secret. */
static __thread uint64_t rng_s[2];

static uint64_t rng_next(void)
{
	uint64_t s1 = rng_s[0];
	const uint64_t s0 = rng_s[1];

	if (s0 == 0 && s1 == 0) {
		if (fl_random_bytes(rng_s, sizeof(rng_s)) < 0 || (rng_s[0] | rng_s[1]) == 0) {
			rng_s[0] = fl_now_ns() | 1;
			rng_s[1] = (uint64_t)(uintptr_t)&rng_s ^ 0x9e3779b97f4a7c15ull;
		}
		s1 = rng_s[0];
	}
	rng_s[0] = s0;
	s1 ^= s1 << 23;
	rng_s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return rng_s[1] + s0;
}

uint64_t fl_random_u64(void)
{
	return rng_next();
}

void fl_random_hex(char *out, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	uint64_t r = 0;
	size_t i;

	for (i = 0; i < nbytes; i++) {
		if (i % 8 == 0)
			r = rng_next();
		out[2 * i] = hex[(r >> 4) & 15];
		out[2 * i + 1] = hex[r & 15];
		r >>= 8;
	}
	out[2 * nbytes] = '\0';
}

void fl_request_id(const char *given, size_t len, char *out, size_t outlen)
{
	size_t i;

	if (given && len > 0 && len < outlen) {
		for (i = 0; i < len; i++) {
			char ch = given[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' ||
			      ch == ':'))
				break;
		}
		if (i == len) {
			memcpy(out, given, len);
			out[len] = '\0';
			return;
		}
	}
	fl_random_hex(out, 8);
}

void fl_ascii_lower(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] - 'A' + 'a');
}

int fl_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	size_t i;

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

static void oom(size_t n)
{
	fprintf(stderr, "flint: out of memory allocating %zu bytes\n", n);
	abort();
}

void *fl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		oom(n);
	return p;
}

void *fl_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		oom(n * size);
	return p;
}

char *fl_xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		oom(strlen(s));
	return p;
}

char *fl_xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		oom(n);
	return p;
}

int fl_strncaseeq(const char *a, size_t alen, const char *b)
{
	return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

int fl_consttime_eq(const char *given, const char *secret)
{
	size_t gl = strlen(given), sl = strlen(secret), i;
	unsigned char d = (unsigned char)(gl != sl);

	for (i = 0; i < sl; i++)
		d |= (unsigned char)(secret[i] ^ (i < gl ? given[i] : 0));
	return d == 0;
}

int fl_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

char *fl_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *p, *q;

	if (fd < 0)
		return NULL;
	p = malloc(cap);
	if (p == NULL)
		goto fail;
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			q = realloc(p, cap * 2);
			if (q == NULL)
				goto fail;
			p = q;
			cap *= 2;
		}
		r = read(fd, p + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	close(fd);
	if (len)
		*len = n;
	return p;
fail : {
	int e = errno;
	free(p);
	close(fd);
	errno = e;
}
	return NULL;
}

int fl_mkdirs(const char *path, int mode)
{
	char tmp[4096];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] == '/' || tmp[i] == '\0') {
			char c = tmp[i];
			tmp[i] = '\0';
			if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST)
				return -errno;
			tmp[i] = c;
		}
	}
	return 0;
}

int fl_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fl_templates_dir(char *out, size_t n, char *why, size_t whylen)
{
	const char *env = getenv("FLINT_TEMPLATES");
	char exe[PATH_MAX], near[PATH_MAX + 32];
	ssize_t len;

	if (env && *env) {
		if (!fl_is_dir(env)) {
			snprintf(why, whylen, "FLINT_TEMPLATES is \"%s\", which is not a directory",
				 env);
			return -1;
		}
		snprintf(out, n, "%s", env);
		return 0;
	}
	near[0] = '\0';
	len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		char *slash;
		exe[len] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(near, sizeof(near), "%s/../templates", exe);
		if (fl_is_dir(near)) {
			if (realpath(near, out) == NULL || strlen(out) >= n)
				snprintf(out, n, "%s", near);
			return 0;
		}
	}
	if (fl_is_dir(FL_SYSTEM_TEMPLATES)) {
		snprintf(out, n, "%s", FL_SYSTEM_TEMPLATES);
		return 0;
	}
	snprintf(why, whylen,
		 "no templates found in %s%s%s; set FLINT_TEMPLATES to the directory holding "
		 "flint's templates",
		 near[0] ? near : "", near[0] ? " or " : "", FL_SYSTEM_TEMPLATES);
	return -1;
}
