/* cron.h -- cron schedules (5 or 6 fields, @shortcuts, @every) and time zones
 * read from the TZ database (TZif files), for the cron trigger.
 *
 * Time zones are parsed here rather than through setenv("TZ")/tzset/mktime:
 * the TZ variable and tzset's state are process-wide and not thread-safe,
 * while flint's other threads format local times for logs at any moment. */
#ifndef FL_CRON_H
#define FL_CRON_H

#include <stddef.h>
#include <stdint.h>

/* A parsed schedule: a set bit means the value matches. */
struct fl_cron {
	uint64_t sec, min;    /* 0-59 */
	uint32_t hour, dom;   /* 0-23, 1-31 */
	uint16_t mon;	      /* 1-12 */
	uint8_t dow;	      /* 0-6, Sunday = 0 */
	int dom_any, dow_any; /* the field was '*' (standard cron: if both are restricted,
				 either matching is enough) */
	uint64_t every_ms;    /* @every DURATION: fixed interval, the fields are unused */
};

/* Parses "SEC MIN HOUR DOM MON DOW", "MIN HOUR DOM MON DOW" (seconds = 0),
 * @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or
 * "@every 10s" (at least 1 s). Fields take *, ?, lists, ranges, steps and
 * month/day names (JAN, MON). Returns 0, or -EINVAL with a sentence in err. */
int fl_cron_parse(const char *expr, struct fl_cron *out, char *err, size_t errlen);

typedef struct fl_tz fl_tz;

/* Loads a zone: an IANA name ("Asia/Shanghai") from /usr/share/zoneinfo (or
 * $TZDIR), "UTC", or NULL/"" for the host's zone (/etc/localtime, else UTC).
 * Returns 0 and *out (free with fl_tz_free), or -errno with a sentence in err. */
int fl_tz_load(const char *name, fl_tz **out, char *err, size_t errlen);
/* Parses a TZif image (RFC 8536) held in memory; for tests and fl_tz_load. */
int fl_tz_parse(const unsigned char *p, size_t n, fl_tz **out);
void fl_tz_free(fl_tz *z);
/* The zone's offset from UTC (seconds east) at UTC time t (seconds). */
int32_t fl_tz_offset(const fl_tz *z, int64_t t);

/* The first fire time strictly after after_ms (UTC milliseconds), in UTC
 * milliseconds; local fields are matched in zone z (NULL = UTC). For @every
 * it is after_ms + the interval. Returns -1 if nothing matches within five
 * years (e.g. "0 0 30 2 *"). Local times skipped by a DST change never fire;
 * repeated ones fire once (at their first occurrence). */
int64_t fl_cron_next(const struct fl_cron *c, const fl_tz *z, int64_t after_ms);

#endif
