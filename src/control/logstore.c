/* logstore.c -- per-function instance logs: memory ring, append-only file, followers. */
#include "control/logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/util.h"

#define LINE_MAX_TEXT (16 * 1024) /* longer lines are cut here and continued */
#define NBUCKETS      1024	  /* functions per host are in the thousands at most */

struct ring_line {
	char *p;
	size_t len;
};

/* Bytes of one (instance, stream) waiting for their newline. Exists only while it
 * holds bytes, so exited instances leave nothing behind. */
struct partial {
	struct partial *next;
	uint64_t inst;
	char stream[16];
	fl_buf buf;
};

struct fl_log_follower {
	fl_log_follower *prev, *next;
	struct fn_log *fn; /* NULL once the function was removed */
	fl_log_line_cb cb;
	void *ctx;
	int dead; /* unfollowed while lines were being delivered; freed after */
};

struct fn_log {
	struct fn_log *next; /* hash chain */
	char *name;
	int fd; /* -1 until the first line, or when the file cannot be written */
	int open_failed;
	struct ring_line *ring;
	size_t head, count; /* ring[head] is the oldest of count lines */
	struct partial *partials;
	fl_log_follower *followers;
};

struct fl_logstore {
	char *dir;
	size_t ring_lines;
	struct fn_log *buckets[NBUCKETS];
	fl_log_follower *detached; /* followers of removed functions, until unfollowed */
	int delivering;		   /* > 0 while follower callbacks run */
};

static size_t hash(const char *s)
{
	size_t h = 5381;

	while (*s)
		h = h * 33 + (unsigned char)*s++;
	return h % NBUCKETS;
}

static struct fn_log *find(fl_logstore *ls, const char *name)
{
	struct fn_log *f;

	for (f = ls->buckets[hash(name)]; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static struct fn_log *get(fl_logstore *ls, const char *name)
{
	struct fn_log *f = find(ls, name);
	size_t h;

	if (f)
		return f;
	f = fl_xcalloc(1, sizeof(*f));
	f->name = fl_xstrdup(name);
	f->fd = -1;
	if (ls->ring_lines > 0)
		f->ring = fl_xcalloc(ls->ring_lines, sizeof(*f->ring));
	h = hash(name);
	f->next = ls->buckets[h];
	ls->buckets[h] = f;
	return f;
}

/* The file of a function, or -ENAMETOOLONG / -EINVAL for a name unfit for a path. */
static int file_path(fl_logstore *ls, const char *name, char *out, size_t outlen)
{
	/* Names are checked by the spec, but a path must never be built from anything else. */
	if (!fl_valid_name(name))
		return -EINVAL;
	if ((size_t)snprintf(out, outlen, "%s/%s.log", ls->dir, name) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

fl_logstore *fl_logstore_new(const char *dir, size_t ring_lines)
{
	fl_logstore *ls;
	int rc = fl_mkdirs(dir, 0700);

	if (rc < 0) {
		errno = -rc;
		return NULL;
	}
	ls = fl_xcalloc(1, sizeof(*ls));
	ls->dir = fl_xstrdup(dir);
	ls->ring_lines = ring_lines;
	return ls;
}

static void free_follower_list(fl_log_follower *f)
{
	while (f) {
		fl_log_follower *next = f->next;
		free(f);
		f = next;
	}
}

static void free_fn(struct fn_log *f)
{
	if (f->fd >= 0)
		close(f->fd);
	for (size_t i = 0; f->ring && i < f->count; i++)
		free(f->ring[i].p);
	free(f->ring);
	while (f->partials) {
		struct partial *p = f->partials;
		f->partials = p->next;
		fl_buf_free(&p->buf);
		free(p);
	}
	free_follower_list(f->followers);
	free(f->name);
	free(f);
}

void fl_logstore_free(fl_logstore *ls)
{
	if (ls == NULL)
		return;
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (ls->buckets[i]) {
			struct fn_log *f = ls->buckets[i];
			ls->buckets[i] = f->next;
			free_fn(f);
		}
	}
	free_follower_list(ls->detached);
	free(ls->dir);
	free(ls);
}

static void unlink_follower(fl_log_follower **head, fl_log_follower *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		*head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

static void push_follower(fl_log_follower **head, fl_log_follower *f)
{
	f->prev = NULL;
	f->next = *head;
	if (*head)
		(*head)->prev = f;
	*head = f;
}

/* Formats, stores, writes and delivers one line of a function. */
static void emit(fl_logstore *ls, struct fn_log *f, uint64_t inst, const char *stream,
		 const char *a, size_t alen, const char *b, size_t blen)
{
	fl_buf line = FL_BUF_INIT;
	uint64_t now = fl_wall_ms();
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	char ts[32];
	size_t textlen;
	int rc;

	gmtime_r(&secs, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (fl_buf_printf(&line, "%s.%03uZ i-%llu %s ", ts, (unsigned)(now % 1000),
			  (unsigned long long)inst, stream) < 0 ||
	    fl_buf_append(&line, a, alen) < 0 || fl_buf_append(&line, b, blen) < 0 ||
	    fl_buf_append(&line, "\n", 1) < 0)
		goto out;
	textlen = line.len - 1;

	if (f->fd < 0 && !f->open_failed) {
		char path[4096];
		rc = file_path(ls, f->name, path, sizeof(path));
		if (rc == 0) {
			f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
			rc = f->fd < 0 ? -errno : 0;
		}
		if (rc < 0) {
			/* Said once per function; the ring and followers keep working. */
			f->open_failed = 1;
			fl_warn("logs", "cannot write the log file of %s under %s: %s", f->name,
				ls->dir, strerror(-rc));
		}
	}
	/* One write per line: O_APPEND makes it land whole even if another process appends. */
	if (f->fd >= 0 && (rc = fl_write_all(f->fd, line.p, line.len)) < 0)
		fl_warn("logs", "writing the log file of %s failed: %s", f->name, strerror(-rc));

	if (f->ring) {
		size_t slot = (f->head + f->count) % ls->ring_lines;
		if (f->count == ls->ring_lines) {
			free(f->ring[f->head].p);
			f->head = (f->head + 1) % ls->ring_lines;
			f->count--;
		}
		f->ring[slot].p = fl_xstrndup(line.p, textlen);
		f->ring[slot].len = textlen;
		f->count++;
	}

	ls->delivering++;
	for (fl_log_follower *fo = f->followers; fo; fo = fo->next)
		if (!fo->dead)
			fo->cb(fo->ctx, line.p, textlen);
	if (--ls->delivering == 0) {
		fl_log_follower *fo = f->followers;
		while (fo) {
			fl_log_follower *next = fo->next;
			if (fo->dead) {
				unlink_follower(&f->followers, fo);
				free(fo);
			}
			fo = next;
		}
	}
out:
	fl_buf_free(&line);
}

static struct partial **find_partial(struct fn_log *f, uint64_t inst, const char *stream)
{
	struct partial **pp;

	for (pp = &f->partials; *pp; pp = &(*pp)->next)
		if ((*pp)->inst == inst && strcmp((*pp)->stream, stream) == 0)
			return pp;
	return pp;
}

static void drop_partial(struct partial **pp)
{
	struct partial *p = *pp;

	*pp = p->next;
	fl_buf_free(&p->buf);
	free(p);
}

void fl_logstore_feed(fl_logstore *ls, const char *fn, uint64_t inst_id, const char *stream,
		      const char *data, size_t len)
{
	struct fn_log *f = get(ls, fn);
	struct partial **pp = find_partial(f, inst_id, stream);
	size_t held = *pp ? (*pp)->buf.len : 0;

	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl ? (size_t)(nl - data) : len;
		const char *hp = held ? (*pp)->buf.p : "";

		if (held + seg > LINE_MAX_TEXT) {
			/* Too long: cut at the limit, the rest continues on the next line. */
			size_t take = LINE_MAX_TEXT - held;
			emit(ls, f, inst_id, stream, hp, held, data, take);
			data += take, len -= take;
		} else if (nl) {
			emit(ls, f, inst_id, stream, hp, held, data, seg);
			data += seg + 1, len -= seg + 1;
		} else {
			if (*pp == NULL) {
				*pp = fl_xcalloc(1, sizeof(**pp));
				(*pp)->inst = inst_id;
				snprintf((*pp)->stream, sizeof((*pp)->stream), "%s", stream);
			}
			if (fl_buf_append(&(*pp)->buf, data, seg) < 0) {
				fl_warn("logs", "out of memory holding a partial line of %s", fn);
				drop_partial(pp);
			}
			return;
		}
		if (held) {
			/* The slot now holds the next entry of the list: look ours up afresh. */
			drop_partial(pp);
			pp = find_partial(f, inst_id, stream);
			held = 0;
		}
	}
}

void fl_logstore_flush(fl_logstore *ls, const char *fn, uint64_t inst_id, const char *stream)
{
	struct fn_log *f = find(ls, fn);
	struct partial **pp;

	if (f == NULL)
		return;
	pp = find_partial(f, inst_id, stream);
	if (*pp == NULL)
		return;
	if ((*pp)->buf.len > 0)
		emit(ls, f, inst_id, stream, (*pp)->buf.p, (*pp)->buf.len, "", 0);
	drop_partial(pp);
}

void fl_logstore_note(fl_logstore *ls, const char *fn, const char *fmt, ...)
{
	fl_buf text = FL_BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = fl_buf_vprintf(&text, fmt, ap);
	va_end(ap);
	if (rc == 0) {
		/* A note is one line even if the text has newlines; keep the file line-oriented. */
		for (size_t i = 0; i < text.len; i++)
			if (text.p[i] == '\n')
				text.p[i] = ' ';
		emit(ls, get(ls, fn), 0, "flint", text.p,
		     text.len > LINE_MAX_TEXT ? LINE_MAX_TEXT : text.len, "", 0);
	}
	fl_buf_free(&text);
}

/* Reads the last n lines of the function's file and hands them to cb, oldest first.
 * Returns 0, or -1 when there is no readable file (nothing was delivered). */
static int tail_file(fl_logstore *ls, const char *fn, size_t n, fl_log_line_cb cb, void *ctx)
{
	char path[4096], block[65536];
	struct stat st;
	off_t start, pos;
	size_t newlines = 0, len;
	char *text = NULL, *p, *end;
	int fd, rc = -1;

	if (file_path(ls, fn, path, sizeof(path)) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto out;
	rc = 0;
	if (n == 0 || st.st_size == 0)
		goto out;
	/* Walk back from the end until n+1 newlines are seen: the last byte is the final
	 * line's newline, so the (n+1)th from the end precedes the first wanted line. */
	start = 0;
	pos = st.st_size;
	while (pos > 0 && start == 0) {
		size_t want = pos < (off_t)sizeof(block) ? (size_t)pos : sizeof(block);
		ssize_t r = pread(fd, block, want, pos - (off_t)want);
		if (r != (ssize_t)want)
			goto out;
		pos -= (off_t)want;
		for (size_t i = want; i-- > 0;) {
			if (block[i] == '\n' && ++newlines == n + 1) {
				start = pos + (off_t)i + 1;
				break;
			}
		}
	}
	len = (size_t)(st.st_size - start);
	text = malloc(len + 1);
	if (text == NULL || pread(fd, text, len, start) != (ssize_t)len)
		goto out;
	text[len] = '\0';
	for (p = text; p < text + len; p = end + 1) {
		end = memchr(p, '\n', (size_t)(text + len - p));
		if (end == NULL)
			end = text + len; /* a last line cut short by a crash */
		cb(ctx, p, (size_t)(end - p));
	}
out:
	free(text);
	close(fd);
	return rc;
}

void fl_logstore_tail(fl_logstore *ls, const char *fn, size_t n, fl_log_line_cb cb, void *ctx)
{
	struct fn_log *f = find(ls, fn);
	size_t skip;

	/* The file holds every line the ring does and more (lines from before a restart), so
	 * it answers whenever the ring cannot. The ring spares the disk in the common case. */
	if ((f == NULL || f->count < n) && tail_file(ls, fn, n, cb, ctx) == 0)
		return;
	if (f == NULL)
		return;
	skip = f->count > n ? f->count - n : 0;
	for (size_t i = skip; i < f->count; i++) {
		struct ring_line *l = &f->ring[(f->head + i) % ls->ring_lines];
		cb(ctx, l->p, l->len);
	}
}

fl_log_follower *fl_logstore_follow(fl_logstore *ls, const char *fn, fl_log_line_cb cb, void *ctx)
{
	struct fn_log *f = get(ls, fn);
	fl_log_follower *fo = fl_xcalloc(1, sizeof(*fo));

	fo->fn = f;
	fo->cb = cb;
	fo->ctx = ctx;
	push_follower(&f->followers, fo);
	return fo;
}

void fl_logstore_unfollow(fl_logstore *ls, fl_log_follower *fo)
{
	if (fo == NULL)
		return;
	if (fo->fn == NULL) {
		unlink_follower(&ls->detached, fo);
		free(fo);
	} else if (ls->delivering > 0) {
		/* A callback may unfollow itself or another follower: the list being walked
		 * must stay intact, so the follower is only marked and freed afterwards. */
		fo->dead = 1;
	} else {
		unlink_follower(&fo->fn->followers, fo);
		free(fo);
	}
}

void fl_logstore_remove(fl_logstore *ls, const char *fn)
{
	struct fn_log **pp, *f;
	char path[4096];

	for (pp = &ls->buckets[hash(fn)]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, fn) == 0)
			break;
	if ((f = *pp) != NULL) {
		*pp = f->next;
		/* Their owners still hold the handles and will unfollow; until then they
		 * wait on the detached list and receive nothing. */
		while (f->followers) {
			fl_log_follower *fo = f->followers;
			unlink_follower(&f->followers, fo);
			if (fo->dead) {
				free(fo);
				continue;
			}
			fo->fn = NULL;
			push_follower(&ls->detached, fo);
		}
		free_fn(f);
	}
	if (file_path(ls, fn, path, sizeof(path)) == 0 && unlink(path) < 0 && errno != ENOENT)
		fl_warn("logs", "cannot remove %s: %s", path, strerror(errno));
}
