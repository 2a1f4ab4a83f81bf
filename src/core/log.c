/* log.c -- leveled logging to stderr, one write(2) per line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum fl_log_level min_level = FL_LOG_INFO;

void fl_log_set_level(enum fl_log_level level)
{
	min_level = level;
}

void fl_log(enum fl_log_level level, const char *component, const char *fmt, ...)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	char line[4096];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n, m;

	if (level < min_level)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     (long)tv.tv_usec / 1000, names[level], component);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A short write to stderr is not worth a retry loop: logging must never block
	 * the caller for long, and the line is already complete. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}
