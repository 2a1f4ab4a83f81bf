/* log.h -- leveled logging to stderr, safe from any thread. */
#ifndef FL_LOG_H
#define FL_LOG_H

enum fl_log_level { FL_LOG_DEBUG, FL_LOG_INFO, FL_LOG_WARN, FL_LOG_ERROR };

/* Messages below this level are dropped; set once at start-up (FLINT_LOG=debug). */
void fl_log_set_level(enum fl_log_level level);

/* Writes one line "TIME LEVEL [component] message" to stderr. The line is
 * formatted into a stack buffer and written with one write(2), so lines from
 * different threads never interleave. Long messages are truncated at 4 KiB. */
void fl_log(enum fl_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define fl_debug(c, ...) fl_log(FL_LOG_DEBUG, c, __VA_ARGS__)
#define fl_info(c, ...)	 fl_log(FL_LOG_INFO, c, __VA_ARGS__)
#define fl_warn(c, ...)	 fl_log(FL_LOG_WARN, c, __VA_ARGS__)
#define fl_error(c, ...) fl_log(FL_LOG_ERROR, c, __VA_ARGS__)

#endif
