/* cron.c -- cron expressions and TZif time zones: when does a schedule fire next. */
#include "events/cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/util.h"

/* ---- expressions ---- */

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct field {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] is lo + i */
};

static const struct field cron_fields[] = {
    {"seconds", 0, 59, NULL},	   {"minutes", 0, 59, NULL},	  {"hours", 0, 23, NULL},
    {"day of month", 1, 31, NULL}, {"month", 1, 12, month_names}, {"day of week", 0, 7, day_names}};

/* A number or (for months and days) a three-letter name; advances *s. */
static int value(const struct field *f, const char **s, int *out)
{
	const char *p = *s;
	int i;

	if (isdigit((unsigned char)*p)) {
		long v = strtol(p, (char **)s, 10);
		if (v < f->lo || v > f->hi)
			return -1;
		*out = (int)v;
		return 0;
	}
	for (i = 0; f->names && i < (f->hi == 7 ? 7 : 12); i++) {
		if (strncasecmp(p, f->names[i], 3) == 0) {
			*s = p + 3;
			*out = f->lo + i;
			return 0;
		}
	}
	return -1;
}

/* One field: comma-separated items of *, ?, N, N-M, with an optional /STEP. */
static int parse_field(const struct field *f, const char *text, uint64_t *bits, int *any, char *err,
		       size_t errlen)
{
	const char *s = text;

	*bits = 0;
	*any = strcmp(text, "*") == 0 || strcmp(text, "?") == 0;
	for (;;) {
		int a, b, step = 1;
		if (*s == '*' || *s == '?') {
			a = f->lo;
			b = f->hi;
			s++;
		} else {
			if (value(f, &s, &a) < 0)
				goto bad;
			b = a;
			if (*s == '-') {
				s++;
				if (value(f, &s, &b) < 0 || b < a)
					goto bad;
			}
		}
		if (*s == '/') {
			char *end;
			long st = strtol(s + 1, &end, 10);
			if (end == s + 1 || st < 1 || st > f->hi - f->lo + 1)
				goto bad;
			step = (int)st;
			s = end;
			if (a == b)
				b = f->hi; /* "5/15": from 5 to the end */
		}
		for (int v = a; v <= b; v += step)
			*bits |= 1ULL << v;
		if (*s == '\0')
			break;
		if (*s != ',')
			goto bad;
		s++;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "cron field %s \"%s\" must be *, a value from %d to %d, a range A-B, a list A,B "
		 "or a step */N",
		 f->name, text, f->lo, f->hi);
	return -EINVAL;
}

int fl_cron_parse(const char *expr, struct fl_cron *out, char *err, size_t errlen)
{
	static const struct {
		const char *name, *expr;
	} shortcuts[] = {{"@yearly", "0 0 0 1 1 *"},  {"@annually", "0 0 0 1 1 *"},
			 {"@monthly", "0 0 0 1 * *"}, {"@weekly", "0 0 0 * * 0"},
			 {"@daily", "0 0 0 * * *"},   {"@midnight", "0 0 0 * * *"},
			 {"@hourly", "0 0 * * * *"},  {NULL, NULL}};
	char copy[256], *tok[7], *save = NULL, *t;
	uint64_t bits[6];
	int any[6], n = 0, i;

	memset(out, 0, sizeof(*out));
	while (*expr == ' ' || *expr == '\t')
		expr++;
	if (strncmp(expr, "@every", 6) == 0 && (expr[6] == ' ' || expr[6] == '\t')) {
		uint64_t ms;
		const char *d = expr + 7;
		while (*d == ' ' || *d == '\t')
			d++;
		if (fl_parse_duration(d, &ms) < 0 || ms < 1000) {
			snprintf(
			    err, errlen,
			    "\"@every\" needs a duration of at least 1s, such as \"@every 10s\"");
			return -EINVAL;
		}
		out->every_ms = ms;
		return 0;
	}
	for (i = 0; shortcuts[i].name; i++)
		if (strcmp(expr, shortcuts[i].name) == 0)
			expr = shortcuts[i].expr;
	if (expr[0] == '@') {
		snprintf(err, errlen,
			 "unknown cron shortcut \"%.32s\" (use @yearly, @monthly, @weekly, @daily, "
			 "@hourly or @every DURATION)",
			 expr);
		return -EINVAL;
	}
	if (strlen(expr) >= sizeof(copy)) {
		snprintf(err, errlen, "the cron expression is too long");
		return -EINVAL;
	}
	strcpy(copy, expr);
	for (t = strtok_r(copy, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == 6) {
			n++;
			break;
		}
		tok[n++] = t;
	}
	if (n != 5 && n != 6) {
		snprintf(err, errlen,
			 "a cron expression has 5 fields (minute hour day month weekday) or 6 "
			 "(seconds first), got %d",
			 n > 6 ? 7 : n);
		return -EINVAL;
	}
	for (i = 0; i < 6; i++) {
		int fi = n == 6 ? i : i + 1;
		if (n == 5 && i == 5)
			break;
		if (parse_field(&cron_fields[fi], tok[i], &bits[fi], &any[fi], err, errlen) < 0)
			return -EINVAL;
	}
	if (n == 5) {
		bits[0] = 1; /* second 0 */
		any[0] = 0;
	}
	out->sec = bits[0];
	out->min = bits[1];
	out->hour = (uint32_t)bits[2];
	out->dom = (uint32_t)bits[3];
	out->mon = (uint16_t)bits[4];
	out->dow = (uint8_t)((bits[5] | (bits[5] >> 7)) & 0x7f); /* 7 is Sunday too */
	out->dom_any = any[3];
	out->dow_any = any[5];
	return 0;
}

/* ---- time zones ---- */

struct rule {
	int kind; /* 'M' month.week.day, 'J' Julian 1-365 without Feb 29, 'N' 0-365 */
	int m, w, d, n;
	int32_t time; /* seconds after local midnight */
};

struct fl_tz {
	int64_t *trans; /* transition times (UTC) */
	uint8_t *idx;	/* type after each transition */
	int32_t *off;	/* type offsets */
	size_t ntrans, ntypes;
	/* The footer (POSIX TZ string) for times after the last transition. */
	int has_footer, has_dst;
	int32_t std_off, dst_off;
	struct rule start, end;
};

void fl_tz_free(fl_tz *z)
{
	if (z == NULL)
		return;
	free(z->trans);
	free(z->idx);
	free(z->off);
	free(z);
}

static int64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	if (n == 4)
		return (int32_t)(uint32_t)v;
	return (int64_t)v;
}

/* A POSIX offset "[+-]hh[:mm[:ss]]"; returns seconds. */
static int posix_time(const char **s, int32_t *out)
{
	const char *p = *s;
	int sign = 1;
	long h, m = 0, sec = 0;
	char *end;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!isdigit((unsigned char)*p))
		return -1;
	h = strtol(p, &end, 10);
	p = end;
	if (*p == ':') {
		m = strtol(p + 1, &end, 10);
		p = end;
		if (*p == ':') {
			sec = strtol(p + 1, &end, 10);
			p = end;
		}
	}
	/* RFC 8536 allows hours up to 167; anything larger would also overflow. */
	if (h > 167 || m > 59 || sec > 59)
		return -1;
	*s = p;
	*out = (int32_t)(sign * (h * 3600 + m * 60 + sec));
	return 0;
}

static int posix_name(const char **s)
{
	const char *p = *s;

	if (*p == '<') {
		p = strchr(p, '>');
		if (p == NULL)
			return -1;
		*s = p + 1;
		return 0;
	}
	while (isalpha((unsigned char)*p))
		p++;
	if (p - *s < 3)
		return -1;
	*s = p;
	return 0;
}

static int posix_rule(const char **s, struct rule *r)
{
	const char *p = *s;
	char *end;

	r->time = 7200;
	if (*p == 'M') {
		r->kind = 'M';
		r->m = (int)strtol(p + 1, &end, 10);
		if (*end != '.')
			return -1;
		r->w = (int)strtol(end + 1, &end, 10);
		if (*end != '.')
			return -1;
		r->d = (int)strtol(end + 1, &end, 10);
		if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
			return -1;
	} else if (*p == 'J') {
		r->kind = 'J';
		r->n = (int)strtol(p + 1, &end, 10);
		if (r->n < 1 || r->n > 365)
			return -1;
	} else if (isdigit((unsigned char)*p)) {
		r->kind = 'N';
		r->n = (int)strtol(p, &end, 10);
		if (r->n < 0 || r->n > 365)
			return -1;
	} else {
		return -1;
	}
	p = end;
	if (*p == '/') {
		p++;
		if (posix_time(&p, &r->time) < 0)
			return -1;
	}
	*s = p;
	return 0;
}

/* "CST-8", "EST5EDT,M3.2.0,M11.1.0", "<+0330>-3:30", ... Offsets are west-positive. */
static int parse_footer(fl_tz *z, const char *s)
{
	int32_t o;

	if (posix_name(&s) < 0 || posix_time(&s, &o) < 0)
		return -1;
	z->std_off = -o;
	z->has_footer = 1;
	if (*s == '\0')
		return 0;
	if (posix_name(&s) < 0)
		return -1;
	z->dst_off = z->std_off + 3600;
	if (*s && *s != ',') {
		if (posix_time(&s, &o) < 0)
			return -1;
		z->dst_off = -o;
	}
	if (*s != ',' || posix_rule((s++, &s), &z->start) < 0 || *s != ',' ||
	    posix_rule((s++, &s), &z->end) < 0)
		return -1;
	z->has_dst = 1;
	return 0;
}

int fl_tz_parse(const unsigned char *p, size_t n, fl_tz **out)
{
	const unsigned char *q = p;
	/* 64-bit so that need below cannot wrap: counts come from the file. */
	uint64_t cnt[6];
	int v2, tsize = 4;
	size_t need, i;
	fl_tz *z;

	if (n < 44 || memcmp(p, "TZif", 4) != 0)
		return -EINVAL;
	v2 = p[4] >= '2';
	for (i = 0; i < 6; i++)
		cnt[i] = (uint32_t)be(p + 20 + 4 * i, 4);
	/* isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt */
	need = 44 + cnt[3] * 5 + cnt[4] * 6 + cnt[5] + cnt[2] * 8 + cnt[1] + cnt[0];
	if (need > n)
		return -EINVAL;
	if (v2) {
		/* Skip the 32-bit data; the 64-bit block follows with its own header. */
		q = p + need;
		if (q + 44 > p + n || memcmp(q, "TZif", 4) != 0)
			return -EINVAL;
		for (i = 0; i < 6; i++)
			cnt[i] = (uint32_t)be(q + 20 + 4 * i, 4);
		tsize = 8;
		need = 44 + cnt[3] * 9 + cnt[4] * 6 + cnt[5] + cnt[2] * 12 + cnt[1] + cnt[0];
		if (need > (size_t)(p + n - q))
			return -EINVAL;
	}
	if (cnt[4] == 0)
		return -EINVAL;
	z = fl_xcalloc(1, sizeof(*z));
	z->ntrans = cnt[3];
	z->ntypes = cnt[4];
	z->trans = fl_xcalloc(z->ntrans + 1, sizeof(*z->trans));
	z->idx = fl_xcalloc(z->ntrans + 1, 1);
	z->off = fl_xcalloc(z->ntypes, sizeof(*z->off));
	q += 44;
	for (i = 0; i < z->ntrans; i++, q += tsize)
		z->trans[i] = be(q, tsize);
	for (i = 0; i < z->ntrans; i++, q++)
		z->idx[i] = *q < z->ntypes ? *q : 0;
	for (i = 0; i < z->ntypes; i++, q += 6)
		z->off[i] = (int32_t)be(q, 4);
	q += cnt[5] + cnt[2] * (tsize + 4) + cnt[1] + cnt[0];
	if (v2 && q < p + n && *q == '\n') {
		const unsigned char *e = memchr(q + 1, '\n', (size_t)(p + n - q - 1));
		if (e && e > q + 1) {
			char *f = fl_xstrndup((const char *)q + 1, (size_t)(e - q - 1));
			if (parse_footer(z, f) < 0)
				z->has_footer = z->has_dst = 0;
			free(f);
		}
	}
	*out = z;
	return 0;
}

int fl_tz_load(const char *name, fl_tz **out, char *err, size_t errlen)
{
	char path[1024];
	const char *dir = getenv("TZDIR");
	unsigned char *data;
	size_t n;
	int r;

	if (name == NULL || *name == '\0') {
		snprintf(path, sizeof(path), "/etc/localtime");
	} else if (strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0) {
		fl_tz *z = fl_xcalloc(1, sizeof(*z));
		z->off = fl_xcalloc(1, sizeof(*z->off));
		z->ntypes = 1;
		*out = z;
		return 0;
	} else {
		if (name[0] == '/' || strstr(name, "..")) {
			snprintf(err, errlen,
				 "time zone \"%s\" must be a name such as Asia/Shanghai", name);
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo",
			 name);
	}
	data = (unsigned char *)fl_read_file(path, &n);
	if (data == NULL) {
		if (name == NULL || *name == '\0')
			return fl_tz_load("UTC", out, err, errlen);
		snprintf(err, errlen, "unknown time zone \"%s\" (no %s)", name, path);
		return -ENOENT;
	}
	r = fl_tz_parse(data, n, out);
	free(data);
	if (r < 0)
		snprintf(err, errlen, "%s is not a time zone file (TZif)", path);
	return r;
}

static int leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; m 1-12). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Local seconds (since the epoch, as if UTC) at which a rule switches in year y. */
static int64_t rule_local(const struct rule *r, int64_t y)
{
	int64_t day;

	if (r->kind == 'M') {
		static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		int64_t first = days_from_civil(y, r->m, 1);
		int dow1 = (int)((first % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
		int dim = mdays[(r->m - 1) % 12] + (r->m == 2 && leap(y));
		int d = 1 + (r->d - dow1 + 7) % 7 + (r->w - 1) * 7;
		while (d > dim)
			d -= 7;
		day = first + d - 1;
	} else if (r->kind == 'J') {
		day = days_from_civil(y, 1, 1) + r->n - 1 + (leap(y) && r->n >= 60);
	} else {
		day = days_from_civil(y, 1, 1) + r->n;
	}
	return day * 86400 + r->time;
}

static int32_t footer_offset(const fl_tz *z, int64_t t)
{
	int64_t y, s, e;
	struct tm tm;
	time_t tt = (time_t)(t + z->std_off);

	if (!z->has_dst)
		return z->std_off;
	gmtime_r(&tt, &tm);
	y = tm.tm_year + 1900;
	s = rule_local(&z->start, y) - z->std_off;
	e = rule_local(&z->end, y) - z->dst_off;
	if (s < e)
		return t >= s && t < e ? z->dst_off : z->std_off;
	return t >= e && t < s ? z->std_off : z->dst_off; /* southern hemisphere */
}

int32_t fl_tz_offset(const fl_tz *z, int64_t t)
{
	size_t lo = 0, hi;

	if (z == NULL)
		return 0;
	if (z->ntrans == 0 || t < z->trans[0]) {
		if (z->ntrans == 0 && z->has_footer)
			return footer_offset(z, t);
		return z->off[0];
	}
	if (t >= z->trans[z->ntrans - 1] && z->has_footer)
		return footer_offset(z, t);
	hi = z->ntrans;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[z->idx[lo]];
}

/* ---- the next fire time ---- */

/* Local broken-down time (as UTC) back to a UTC instant; for a time repeated by
 * a DST change this is its first occurrence. */
static int64_t to_utc(const fl_tz *z, int64_t local)
{
	int64_t t1 = local - fl_tz_offset(z, local);
	int64_t t2 = local - fl_tz_offset(z, t1);
	int64_t early = local - fl_tz_offset(z, t2 - 7200);

	/* Prefer the earlier instant when both map back to this local time. */
	if (early < t2 && early + fl_tz_offset(z, early) == local)
		return early;
	return t2;
}

int64_t fl_cron_next(const struct fl_cron *c, const fl_tz *z, int64_t after_ms)
{
	int64_t t, limit;
	int iter;

	if (c->every_ms)
		return after_ms + (int64_t)c->every_ms;
	t = (after_ms >= 0 ? after_ms / 1000 : (after_ms - 999) / 1000) + 1;
	limit = t + 5LL * 366 * 86400;
	for (iter = 0; iter < 1000000 && t < limit; iter++) {
		int64_t local = t + fl_tz_offset(z, t), next_local, nt;
		time_t tt = (time_t)local;
		struct tm tm;
		int dom_ok, dow_ok;

		gmtime_r(&tt, &tm);
		dom_ok = (c->dom >> tm.tm_mday) & 1;
		dow_ok = (c->dow >> tm.tm_wday) & 1;
		if (!((c->mon >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mday = 1;
			tm.tm_mon++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!(c->dom_any || c->dow_any ? dom_ok && dow_ok : dom_ok || dow_ok)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!((c->hour >> tm.tm_hour) & 1)) {
			tm.tm_hour++;
			tm.tm_min = tm.tm_sec = 0;
		} else if (!((c->min >> tm.tm_min) & 1)) {
			tm.tm_min++;
			tm.tm_sec = 0;
		} else if (!((c->sec >> tm.tm_sec) & 1)) {
			tm.tm_sec++;
		} else if (t + fl_tz_offset(z, t) == local && to_utc(z, local) == t) {
			return t * 1000;
		} else {
			/* The second occurrence of a repeated local time: not again. */
			t++;
			continue;
		}
		next_local = (int64_t)timegm(&tm);
		nt = to_utc(z, next_local);
		/* A local time skipped by DST maps back before it: step on regardless. */
		t = nt > t ? nt : t + 1;
	}
	return -1;
}
