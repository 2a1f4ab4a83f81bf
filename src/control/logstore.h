/* logstore.h -- per-function logs of instance output: an in-memory ring of the
 * last lines for `flint logs` and `describe`, an append-only file per function
 * (DATA/logs/NAME.log), and followers for `flint logs -f`. Control thread only.
 *
 * A stored line reads "2026-11-21T23:59:00.123Z i-12 stdout the text", with the
 * time in UTC, the instance id and the stream. */
#ifndef FL_LOGSTORE_H
#define FL_LOGSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct fl_logstore fl_logstore;
typedef struct fl_log_follower fl_log_follower;
/* Receives one formatted line (no trailing newline); valid during the call only. */
typedef void (*fl_log_line_cb)(void *ctx, const char *line, size_t len);

/* Creates a store writing files under dir (created if missing), keeping the last
 * ring_lines lines of each function in memory. NULL on failure (errno set). */
fl_logstore *fl_logstore_new(const char *dir, size_t ring_lines);
/* Closes files, drops followers (without calling them) and frees everything. */
void fl_logstore_free(fl_logstore *ls);

/* Feeds raw bytes read from an instance's stream ("stdout"/"stderr"). Bytes are
 * split into lines; a partial line is kept per (inst_id, stream) until its
 * newline arrives or fl_logstore_flush() is called. Lines over 16 KiB are cut
 * there and continued on the next line. */
void fl_logstore_feed(fl_logstore *ls, const char *fn, uint64_t inst_id, const char *stream,
		      const char *data, size_t len);
/* Emits any partial line held for (inst_id, stream), e.g. when the pipe closes. */
void fl_logstore_flush(fl_logstore *ls, const char *fn, uint64_t inst_id, const char *stream);
/* Records a line written by flint itself about the function (instance 0, stream
 * "flint"), e.g. "instance i-3 exited with status 1". */
void fl_logstore_note(fl_logstore *ls, const char *fn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Calls cb for the last n lines of fn, oldest first; after a restart the lines
 * come from the file. */
void fl_logstore_tail(fl_logstore *ls, const char *fn, size_t n, fl_log_line_cb cb, void *ctx);

/* Calls cb for every line of fn appended from now on, until unfollowed. */
fl_log_follower *fl_logstore_follow(fl_logstore *ls, const char *fn, fl_log_line_cb cb, void *ctx);
void fl_logstore_unfollow(fl_logstore *ls, fl_log_follower *f);

/* Forgets a deleted function: its ring, its followers (unregistered, not called)
 * and its file. */
void fl_logstore_remove(fl_logstore *ls, const char *fn);

#endif
