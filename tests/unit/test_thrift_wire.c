/* test_thrift_wire.c -- unit tests for Thrift framing, THeader/TTHeader header
 * parsing and TApplicationException replies (src/proto/thrift_wire.c). Every
 * byte string is built by hand here, independently of the code under test.
 * With FL_TW_DUMP set to a directory, the exception replies of every framing
 * are also written there, so the integration tests can have Python's thrift
 * library read them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "proto/thrift_wire.c"

/* ---- byte string builders ---- */

typedef struct bb {
	uint8_t b[8192];
	size_t n;
} bb;

static void p8(bb *o, unsigned v)
{
	assert_true(o->n < sizeof(o->b));
	o->b[o->n++] = (uint8_t)v;
}

static void p16(bb *o, unsigned v)
{
	p8(o, (v >> 8) & 0xff);
	p8(o, v & 0xff);
}

static void p32(bb *o, uint32_t v)
{
	p16(o, v >> 16);
	p16(o, v & 0xffff);
}

static void pbytes(bb *o, const void *p, size_t n)
{
	assert_true(o->n + n <= sizeof(o->b));
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

static void pvar(bb *o, uint64_t v)
{
	do {
		p8(o, (unsigned)(v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

/* u16-length string (TTHeader). */
static void pstr16(bb *o, const char *s)
{
	p16(o, (unsigned)strlen(s));
	pbytes(o, s, strlen(s));
}

/* varint-length string (THeader). */
static void pstrv(bb *o, const char *s)
{
	pvar(o, strlen(s));
	pbytes(o, s, strlen(s));
}

/* A strict binary message: header, then a struct with field 1 string "hi". */
static void bin_msg(bb *o, int type, const char *name, int32_t seqid)
{
	p32(o, 0x80010000u | (uint32_t)type);
	p32(o, (uint32_t)strlen(name));
	pbytes(o, name, strlen(name));
	p32(o, (uint32_t)seqid);
	p8(o, 0x0b);
	p16(o, 1);
	p32(o, 2);
	pbytes(o, "hi", 2);
	p8(o, 0);
}

/* A compact message: header, then a struct with field 1 binary "hi". */
static void compact_msg(bb *o, int type, const char *name, int32_t seqid)
{
	p8(o, 0x82);
	p8(o, 1 | (unsigned)(type << 5));
	pvar(o, (uint32_t)seqid);
	pstrv(o, name);
	p8(o, 0x18);
	pstrv(o, "hi");
	p8(o, 0);
}

/* u32 length + payload. */
static void framed(bb *o, const bb *payload)
{
	p32(o, (uint32_t)payload->n);
	pbytes(o, payload->b, payload->n);
}

/* A THeader (magic 0fff) or TTHeader (magic 1000) frame: the header bytes
 * given (padding included) and the payload. */
static void hframe(bb *o, unsigned magic, unsigned flags, uint32_t hseqid, const bb *hdr,
		   const bb *payload)
{
	assert_int_equal(hdr->n % 4, 0);
	p32(o, (uint32_t)(10 + hdr->n + payload->n));
	p16(o, magic);
	p16(o, flags);
	p32(o, hseqid);
	p16(o, (unsigned)(hdr->n / 4));
	pbytes(o, hdr->b, hdr->n);
	pbytes(o, payload->b, payload->n);
}

static void pad4(bb *o)
{
	while (o->n % 4)
		p8(o, 0);
}

static void expect_str(const char *what, const char *p, size_t n, const char *want)
{
	if (n != strlen(want) || (n && memcmp(p, want, n) != 0))
		fail_msg("%s is \"%.*s\" (%zu bytes), want \"%s\"", what, (int)n, p ? p : "", n,
			 want);
}

static struct fl_tw_msg m;
static const char *why;

static int parse(const bb *f)
{
	why = NULL;
	return fl_tw_parse(f->b, f->n, &m, &why);
}

static void expect_parse_fails(const bb *f, const char *reason_part)
{
	if (parse(f) != -1)
		fail_msg("the frame parsed, want a failure with \"%s\"", reason_part);
	assert_non_null(why);
	if (strstr(why, reason_part) == NULL)
		fail_msg("reason \"%s\", want one containing \"%s\"", why, reason_part);
}

/* ---- sniffing and frame sizes ---- */

static void test_sniff(void **state)
{
	bb pl = {.n = 0}, f = {.n = 0}, h = {.n = 0}, c = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 1);
	assert_int_equal(fl_tw_sniff(pl.b, pl.n), FL_TW_UNFRAMED_BINARY);
	assert_int_equal(fl_tw_sniff(pl.b, 2), FL_TW_UNFRAMED_BINARY);
	framed(&f, &pl);
	assert_int_equal(fl_tw_sniff(f.b, f.n), FL_TW_FRAMED_BINARY);
	assert_int_equal(fl_tw_sniff(f.b, 6), FL_TW_FRAMED_BINARY);
	assert_int_equal(fl_tw_sniff(f.b, 5), -1); /* a length, then not enough to tell */

	compact_msg(&c, 1, "echo", 1);
	assert_int_equal(fl_tw_sniff(c.b, c.n), FL_TW_UNFRAMED_COMPACT);
	f.n = 0;
	framed(&f, &c);
	assert_int_equal(fl_tw_sniff(f.b, f.n), FL_TW_FRAMED_COMPACT);

	p8(&h, 0);
	p8(&h, 0);
	pad4(&h);
	f.n = 0;
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	assert_int_equal(fl_tw_sniff(f.b, f.n), FL_TW_THEADER);
	f.n = 0;
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	assert_int_equal(fl_tw_sniff(f.b, f.n), FL_TW_TTHEADER);

	/* HTTP/1 methods and the HTTP/2 preface stay HTTP, even from one byte. */
	assert_int_equal(fl_tw_sniff((const uint8_t *)"GET / HTTP/1.1\r\n", 16), FL_TW_UNKNOWN);
	assert_int_equal(fl_tw_sniff((const uint8_t *)"POST /x", 7), FL_TW_UNKNOWN);
	assert_int_equal(fl_tw_sniff((const uint8_t *)"PRI * HTTP/2.0\r\n", 16), FL_TW_UNKNOWN);
	assert_int_equal(fl_tw_sniff((const uint8_t *)"G", 1), FL_TW_UNKNOWN);
	/* A length with its top bit set, or an unknown magic, is not Thrift. */
	assert_int_equal(fl_tw_sniff((const uint8_t *)"\x90\0\0\x10\x80\x01", 6), FL_TW_UNKNOWN);
	assert_int_equal(fl_tw_sniff((const uint8_t *)"\0\0\0\x10\x12\x34", 6), FL_TW_UNKNOWN);
	assert_int_equal(fl_tw_sniff((const uint8_t *)"\0\0", 2), -1);
}

static void test_frame_size(void **state)
{
	bb pl = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 7);
	framed(&f, &pl);
	assert_int_equal(fl_tw_frame_size(f.b, 0, 1 << 20), 0);
	assert_int_equal(fl_tw_frame_size(f.b, 3, 1 << 20), 0);
	assert_int_equal(fl_tw_frame_size(f.b, 4, 1 << 20), 0);
	assert_int_equal(fl_tw_frame_size(f.b, f.n - 1, 1 << 20), 0);
	assert_int_equal(fl_tw_frame_size(f.b, f.n, 1 << 20), (long)f.n);
	/* Bytes after the frame (a pipelined call) do not change its size. */
	pbytes(&f, f.b, f.n);
	assert_int_equal(fl_tw_frame_size(f.b, f.n, 1 << 20), (long)f.n / 2);
	/* The maximum is inclusive. */
	assert_int_equal(fl_tw_frame_size(f.b, f.n, pl.n), (long)f.n / 2);
	assert_int_equal(fl_tw_frame_size(f.b, f.n, pl.n - 1), -1);
	/* Invalid lengths are refused from the four length bytes alone. */
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\x80\0\0\x10", 4, 1 << 20), -1);
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\x7f\xff\xff\xff", 4, 16u << 20), -1);
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\xff\xff\xff\xff", 4, 0xffffffffu), -1);
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\0\0\0\0", 4, 1 << 20), -1);
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\0\x01\0\0", 4, 1 << 20), 0);
	assert_int_equal(fl_tw_frame_size((const uint8_t *)"\0\x01\0\x01", 4, 1 << 16), -1);
}

/* ---- THeader (Apache) ---- */

/* THeader header bytes: protocol id, transforms, one string KV block, then
 * pad zero bytes (which may break 4-byte alignment: the caller pads). */
static void theader_hdr(bb *h, uint64_t proto, int ntransforms, const char *const *kv, int nkv)
{
	int i;

	pvar(h, proto);
	pvar(h, (uint64_t)ntransforms);
	for (i = 0; i < ntransforms; i++)
		pvar(h, (uint64_t)(i + 1));
	if (nkv) {
		pvar(h, 1);
		pvar(h, (uint64_t)nkv);
		for (i = 0; i < nkv; i++) {
			pstrv(h, kv[2 * i]);
			pstrv(h, kv[2 * i + 1]);
		}
	}
}

static void test_theader(void **state)
{
	static const char *const kv[] = {"trace", "abc", "isn", "EchoService"};
	bb pl = {.n = 0}, h = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 42);
	theader_hdr(&h, 0, 2, kv, 2);
	pad4(&h);
	hframe(&f, 0x0fff, 0x0001, 0x01020304, &h, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.framing, FL_TW_THEADER);
	assert_int_equal(m.proto, FL_TW_BINARY);
	assert_int_equal(m.hflags, 1);
	assert_int_equal(m.hseqid, 0x01020304);
	assert_int_equal(m.payload_framed, 0);
	expect_str("isn", m.isn, m.isn_len, "EchoService");
	expect_str("method", m.method, m.method_len, "echo");
	assert_int_equal(m.seqid, 42);
	assert_int_equal(m.type, 1);
	assert_int_equal(m.to_service_len, 0);
	assert_int_equal(m.timeout_ms, 0);

	/* A compact payload; the protocol id written as a two-byte varint. */
	pl.n = h.n = f.n = 0;
	compact_msg(&pl, 4, "note", 9);
	p8(&h, 0x82);
	p8(&h, 0x00); /* 2, not minimally encoded: still LEB128 */
	p8(&h, 0);
	pvar(&h, 1);
	pvar(&h, 1);
	pstrv(&h, "isn");
	pstrv(&h, "EchoService");
	pad4(&h);
	hframe(&f, 0x0fff, 0, 5, &h, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.proto, FL_TW_COMPACT);
	expect_str("isn", m.isn, m.isn_len, "EchoService");
	expect_str("method", m.method, m.method_len, "note");
	assert_int_equal(m.seqid, 9);
	assert_int_equal(m.type, 4);

	/* A value longer than 127 bytes has a two-byte varint length. */
	{
		char longval[300];
		const char *kv2[] = {"x-long", longval, "isn", "S"};
		memset(longval, 'v', sizeof(longval) - 1);
		longval[sizeof(longval) - 1] = '\0';
		pl.n = h.n = f.n = 0;
		bin_msg(&pl, 1, "echo", 1);
		theader_hdr(&h, 0, 0, kv2, 2);
		pad4(&h);
		hframe(&f, 0x0fff, 0, 1, &h, &pl);
		assert_int_equal(parse(&f), 0);
		expect_str("isn", m.isn, m.isn_len, "S");
	}
}

static void test_theader_padding(void **state)
{
	bb pl = {.n = 0};
	int pad, extra;

	(void)state;
	bin_msg(&pl, 1, "echo", 3);
	/* Writers pad with 0 to 4 zero bytes: 4 when they always add one "stop"
	 * word, whichever alignment the header had. Every amount must parse. */
	for (extra = 0; extra < 4; extra++) {
		for (pad = 0; pad <= 4; pad++) {
			bb h = {.n = 0}, f = {.n = 0};
			int i;
			/* Transforms change the header's length, so its alignment. */
			pvar(&h, 0);
			pvar(&h, (uint64_t)extra);
			for (i = 0; i < extra; i++)
				pvar(&h, 1);
			pvar(&h, 1);
			pvar(&h, 1);
			pstrv(&h, "isn");
			pstrv(&h, "EchoService");
			for (i = 0; i < pad; i++)
				p8(&h, 0);
			if (h.n % 4)
				continue; /* not a legal header size; covered by other paddings */
			hframe(&f, 0x0fff, 0, 1, &h, &pl);
			if (parse(&f) != 0)
				fail_msg("%d transforms, %d padding bytes: %s", extra, pad, why);
			expect_str("isn", m.isn, m.isn_len, "EchoService");
			expect_str("method", m.method, m.method_len, "echo");
			assert_int_equal(m.seqid, 3);
		}
	}
	/* No info block at all, only padding. */
	{
		bb h = {.n = 0}, f = {.n = 0};
		p8(&h, 0);
		p8(&h, 0);
		pad4(&h);
		hframe(&f, 0x0fff, 0, 1, &h, &pl);
		assert_int_equal(parse(&f), 0);
		assert_null(m.isn);
	}
}

static void test_theader_malformed(void **state)
{
	bb pl = {.n = 0}, h = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 1);

	/* A varint that never ends inside the header. */
	pbytes(&h, "\x80\x80\x80\x80", 4);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	expect_parse_fails(&f, "varint");

	/* A varint longer than 64 bits. */
	h.n = f.n = 0;
	pbytes(&h, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	expect_parse_fails(&f, "varint");

	/* A KV block whose value length runs past the header. */
	h.n = f.n = 0;
	pvar(&h, 0);
	pvar(&h, 0);
	pvar(&h, 1);
	pvar(&h, 1);
	pstrv(&h, "isn");
	pvar(&h, 100);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	expect_parse_fails(&f, "THeader");

	/* An unknown info id. */
	h.n = f.n = 0;
	pvar(&h, 0);
	pvar(&h, 0);
	pvar(&h, 7);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	expect_parse_fails(&f, "unknown THeader info id");

	/* An unknown protocol id. */
	h.n = f.n = 0;
	pvar(&h, 5);
	pvar(&h, 0);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	expect_parse_fails(&f, "protocol id");

	/* A header size that runs past the end of the frame. */
	h.n = f.n = 0;
	pvar(&h, 0);
	pvar(&h, 0);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &pl);
	f.b[12] = 0x40; /* 0x4001 words */
	expect_parse_fails(&f, "header size past the end");
	f.b[12] = 0;
	f.b[13] = (uint8_t)((f.n - 14) / 4 + 1);
	expect_parse_fails(&f, "header size past the end");

	/* Fewer than the 14 fixed bytes. */
	expect_parse_fails(&(bb){.b = {0, 0, 0, 9, 0x0f, 0xff, 0, 0, 0, 1}, .n = 10}, "truncated");

	/* A payload that is not a message. */
	h.n = f.n = 0;
	pvar(&h, 0);
	pvar(&h, 0);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &(bb){.b = {1, 2, 3, 4, 5, 6, 7, 8}, .n = 8});
	expect_parse_fails(&f, "message header");

	/* An empty payload. */
	h.n = f.n = 0;
	pvar(&h, 0);
	pvar(&h, 0);
	pad4(&h);
	hframe(&f, 0x0fff, 0, 1, &h, &(bb){.n = 0});
	expect_parse_fails(&f, "message header");
}

/* ---- TTHeader (Kitex) ---- */

/* Kitex int key/values: 3 FromService, 6 ToService, 9 ToMethod, 12 RPCTimeout. */
static void tt_intkv(bb *h, const char *from, const char *to, const char *method,
		     const char *timeout)
{
	int n = !!from + !!to + !!method + !!timeout;

	p8(h, 0x10);
	p16(h, (unsigned)n);
	if (from) {
		p16(h, 3);
		pstr16(h, from);
	}
	if (to) {
		p16(h, 6);
		pstr16(h, to);
	}
	if (method) {
		p16(h, 9);
		pstr16(h, method);
	}
	if (timeout) {
		p16(h, 12);
		pstr16(h, timeout);
	}
}

static void test_ttheader(void **state)
{
	bb pl = {.n = 0}, h = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 77);
	p8(&h, 0);    /* binary */
	p8(&h, 1);    /* one transform */
	p8(&h, 0x01); /* its id */
	p8(&h, 0x01); /* string KV */
	p16(&h, 2);
	pstr16(&h, "isn");
	pstr16(&h, "IdlService");
	pstr16(&h, "tenant");
	pstr16(&h, "t1");
	tt_intkv(&h, "caller", "EchoService", "echo", "250");
	p8(&h, 0x11); /* ACL token */
	pstr16(&h, "secret-token");
	pad4(&h);
	hframe(&f, 0x1000, 0x0002, 9001, &h, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.framing, FL_TW_TTHEADER);
	assert_int_equal(m.proto, FL_TW_BINARY);
	assert_int_equal(m.hflags, 2);
	assert_int_equal(m.hseqid, 9001);
	assert_int_equal(m.payload_framed, 0);
	expect_str("isn", m.isn, m.isn_len, "IdlService");
	expect_str("to_service", m.to_service, m.to_service_len, "EchoService");
	expect_str("to_method", m.to_method, m.to_method_len, "echo");
	assert_int_equal(m.timeout_ms, 250);
	expect_str("method", m.method, m.method_len, "echo");
	assert_int_equal(m.seqid, 77);
	assert_int_equal(m.type, 1);

	/* TTHeader-framed payload: a u32 length before the message. */
	f.n = 0;
	{
		bb fp = {.n = 0};
		framed(&fp, &pl);
		hframe(&f, 0x1000, 0, 9002, &h, &fp);
	}
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.payload_framed, 1);
	expect_str("method", m.method, m.method_len, "echo");
	assert_int_equal(m.seqid, 77);
	assert_int_equal(m.hseqid, 9002);

	/* A compact payload, both forms. */
	pl.n = h.n = f.n = 0;
	compact_msg(&pl, 1, "slow", 5);
	p8(&h, 2);
	p8(&h, 0);
	tt_intkv(&h, NULL, "EchoService", NULL, NULL);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.proto, FL_TW_COMPACT);
	assert_int_equal(m.payload_framed, 0);
	expect_str("method", m.method, m.method_len, "slow");
	f.n = 0;
	{
		bb fp = {.n = 0};
		framed(&fp, &pl);
		hframe(&f, 0x1000, 0, 1, &h, &fp);
	}
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.payload_framed, 1);
	expect_str("method", m.method, m.method_len, "slow");
	assert_int_equal(m.seqid, 5);

	/* Kitex protobuf: routing comes from the header only. */
	pl.n = h.n = f.n = 0;
	pbytes(&pl, "\x0a\x02hi", 4);
	p8(&h, 3);
	p8(&h, 0);
	tt_intkv(&h, NULL, "EchoService", "echo", NULL);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(m.proto, FL_TW_PROTOBUF);
	expect_str("to_method", m.to_method, m.to_method_len, "echo");
	assert_null(m.method);
}

static void test_ttheader_timeout_and_padding(void **state)
{
	static const struct {
		const char *text;
		uint32_t ms;
	} cases[] = {{"250", 250}, {"0", 0}, {"1500", 1500}, {"abc", 0}, {"12x", 12}, {"", 0}};
	bb pl = {.n = 0};
	size_t i;
	int pad;

	(void)state;
	bin_msg(&pl, 1, "echo", 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bb h = {.n = 0}, f = {.n = 0};
		p8(&h, 0);
		p8(&h, 0);
		tt_intkv(&h, NULL, "EchoService", NULL, cases[i].text);
		pad4(&h);
		hframe(&f, 0x1000, 0, 1, &h, &pl);
		assert_int_equal(parse(&f), 0);
		if (m.timeout_ms != cases[i].ms)
			fail_msg("RPCTimeout \"%s\" read as %u, want %u", cases[i].text,
				 m.timeout_ms, cases[i].ms);
	}
	/* Padding: zero bytes fill the header to a multiple of 4 (and a whole
	 * extra word of zeros is also padding). */
	for (pad = 0; pad < 8; pad++) {
		bb h = {.n = 0}, f = {.n = 0};
		int k;
		p8(&h, 0);
		p8(&h, 0);
		p8(&h, 0x10);
		p16(&h, 1);
		p16(&h, 6);
		pstr16(&h, "S");
		for (k = 0; k < pad; k++)
			p8(&h, 0);
		if (h.n % 4)
			continue;
		hframe(&f, 0x1000, 0, 1, &h, &pl);
		if (parse(&f) != 0)
			fail_msg("%d padding bytes: %s", pad, why);
		expect_str("to_service", m.to_service, m.to_service_len, "S");
	}
}

static void test_ttheader_malformed(void **state)
{
	bb pl = {.n = 0}, h = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "echo", 1);

	/* An int KV block announcing two pairs and holding one. */
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x10);
	p16(&h, 2);
	p16(&h, 6);
	pstr16(&h, "EchoServic");
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader info block");

	/* A string KV block whose key runs past the header. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x01);
	p16(&h, 1);
	p16(&h, 200);
	pbytes(&h, "isn", 3);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader info block");

	/* A value length past the header. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x10);
	p16(&h, 1);
	p16(&h, 6);
	p16(&h, 0xffff);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader info block");

	/* An ACL token past the header. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x11);
	p16(&h, 50);
	pbytes(&h, "tok", 3);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader info block");

	/* A block count with no room for its u16. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x10);
	p8(&h, 0);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader info block");

	/* Transform ids missing. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 9);
	p8(&h, 1);
	p8(&h, 1);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader transforms");

	/* An empty header. */
	h.n = f.n = 0;
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "truncated TTHeader");

	/* An unknown info block id. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	p8(&h, 0x05);
	p8(&h, 0);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "unknown TTHeader info block");

	/* An unknown protocol id. */
	h.n = f.n = 0;
	p8(&h, 9);
	p8(&h, 0);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	expect_parse_fails(&f, "protocol id");

	/* The header size past the end of the frame. */
	h.n = f.n = 0;
	p8(&h, 0);
	p8(&h, 0);
	pad4(&h);
	hframe(&f, 0x1000, 0, 1, &h, &pl);
	f.b[12] = 0xff;
	f.b[13] = 0xff;
	expect_parse_fails(&f, "header size past the end");
}

/* ---- messages ---- */

static void test_messages(void **state)
{
	static const int32_t seqids[] = {0, 1, 127, 128, 300000, INT32_MAX, -1, INT32_MIN};
	int type;
	size_t i;

	(void)state;
	for (type = 1; type <= 4; type++) {
		for (i = 0; i < sizeof(seqids) / sizeof(seqids[0]); i++) {
			bb pl = {.n = 0}, f = {.n = 0};
			bin_msg(&pl, type, "someMethod", seqids[i]);
			framed(&f, &pl);
			assert_int_equal(parse(&f), 0);
			assert_int_equal(m.framing, FL_TW_FRAMED_BINARY);
			assert_int_equal(m.proto, FL_TW_BINARY);
			assert_int_equal(m.type, type);
			assert_int_equal(m.seqid, seqids[i]);
			expect_str("method", m.method, m.method_len, "someMethod");

			pl.n = f.n = 0;
			compact_msg(&pl, type, "someMethod", seqids[i]);
			framed(&f, &pl);
			assert_int_equal(parse(&f), 0);
			assert_int_equal(m.framing, FL_TW_FRAMED_COMPACT);
			assert_int_equal(m.proto, FL_TW_COMPACT);
			assert_int_equal(m.type, type);
			if (m.seqid != seqids[i])
				fail_msg("compact seqid %d read as %d", seqids[i], m.seqid);
			expect_str("method", m.method, m.method_len, "someMethod");
		}
	}
	/* An empty name is a name. */
	{
		bb pl = {.n = 0}, f = {.n = 0};
		bin_msg(&pl, 1, "", 5);
		framed(&f, &pl);
		assert_int_equal(parse(&f), 0);
		assert_int_equal(m.method_len, 0);
		assert_int_equal(m.seqid, 5);
	}
	/* Unframed messages: the parser is for whole frames only. */
	{
		bb pl = {.n = 0};
		bin_msg(&pl, 1, "echo", 1);
		expect_parse_fails(&pl, "not a framed");
		assert_int_equal(parse_message(pl.b, pl.n, FL_TW_BINARY, &m), 0);
		expect_str("method", m.method, m.method_len, "echo");
	}
}

static void test_messages_malformed(void **state)
{
	bb pl = {.n = 0}, f = {.n = 0};

	(void)state;
	/* A name length past the frame. */
	p32(&pl, 0x80010001u);
	p32(&pl, 1000);
	pbytes(&pl, "echo", 4);
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
	/* A name length with the top bit set. */
	pl.n = f.n = 0;
	p32(&pl, 0x80010001u);
	p32(&pl, 0xfffffffcu);
	pbytes(&pl, "echo\0\0\0\1", 8);
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
	/* No room for the seqid. */
	pl.n = f.n = 0;
	p32(&pl, 0x80010001u);
	p32(&pl, 4);
	pbytes(&pl, "echo", 4);
	p16(&pl, 0);
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
	/* A compact message of another version. */
	pl.n = f.n = 0;
	p8(&pl, 0x82);
	p8(&pl, 0x22);
	pvar(&pl, 1);
	pstrv(&pl, "echo");
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
	/* A compact seqid varint that never ends. */
	pl.n = f.n = 0;
	p8(&pl, 0x82);
	p8(&pl, 0x21);
	pbytes(&pl, "\xff\xff\xff\xff", 4);
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
	/* A compact name past the frame. */
	pl.n = f.n = 0;
	p8(&pl, 0x82);
	p8(&pl, 0x21);
	pvar(&pl, 1);
	pvar(&pl, 50);
	pbytes(&pl, "echo", 4);
	framed(&f, &pl);
	expect_parse_fails(&f, "message header");
}

static void test_multiplexed(void **state)
{
	bb pl = {.n = 0}, f = {.n = 0};

	(void)state;
	bin_msg(&pl, 1, "EchoService:echo", 3);
	framed(&f, &pl);
	assert_int_equal(parse(&f), 0);
	expect_str("method", m.method, m.method_len, "EchoService:echo");
	assert_int_equal(fl_tw_mux_service(&m), strlen("EchoService"));

	pl.n = f.n = 0;
	compact_msg(&pl, 1, "Nope:echo", 3);
	framed(&f, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(fl_tw_mux_service(&m), 4);

	pl.n = f.n = 0;
	bin_msg(&pl, 1, "echo", 3);
	framed(&f, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(fl_tw_mux_service(&m), 0);

	pl.n = f.n = 0;
	bin_msg(&pl, 1, ":echo", 3);
	framed(&f, &pl);
	assert_int_equal(parse(&f), 0);
	assert_int_equal(fl_tw_mux_service(&m), 0);

	memset(&m, 0, sizeof(m));
	assert_int_equal(fl_tw_mux_service(&m), 0);
}

/* ---- exception replies ---- */

/* Reads the TApplicationException struct that follows a message header at p
 * (end at e), in either protocol, independently of the writer. */
static void read_exception(const uint8_t *p, const uint8_t *e, enum fl_tw_proto proto, char *text,
			   size_t tcap, int *type)
{
	*type = -1;
	text[0] = '\0';
	for (;;) {
		int ft, id;
		assert_true(p < e);
		if (*p == 0)
			return;
		if (proto == FL_TW_BINARY) {
			assert_true(e - p >= 3);
			ft = p[0];
			id = (p[1] << 8) | p[2];
			p += 3;
			if (ft == 11 && id == 1) {
				uint32_t l = be32(p);
				p += 4;
				assert_true(l < tcap && (size_t)(e - p) >= l);
				memcpy(text, p, l);
				text[l] = '\0';
				p += l;
			} else if (ft == 8 && id == 2) {
				*type = (int)be32(p);
				p += 4;
			} else {
				fail_msg("unexpected field type %d id %d", ft, id);
			}
		} else {
			struct cur c;
			ft = p[0] & 0x0f;
			p++;
			c.p = p;
			c.end = e;
			c.bad = 0;
			if (ft == 8) { /* binary */
				uint64_t l = varint(&c);
				assert_false(c.bad);
				assert_true(l < tcap && (uint64_t)(e - c.p) >= l);
				memcpy(text, c.p, (size_t)l);
				text[l] = '\0';
				p = c.p + l;
			} else if (ft == 5) { /* i32, zigzag */
				uint64_t z = varint(&c);
				assert_false(c.bad);
				*type = (int)((z >> 1) ^ (~(z & 1) + 1));
				p = c.p;
			} else {
				fail_msg("unexpected compact field type %d", ft);
			}
		}
	}
}

/* Where the struct after m's message header starts. */
static const uint8_t *after_header(const struct fl_tw_msg *x)
{
	return (const uint8_t *)x->method + x->method_len + (x->proto == FL_TW_BINARY ? 4 : 0);
}

/* Builds a request in one framing, answers it with an exception and reads
 * the answer back; dumps it as NAME.bin when FL_TW_DUMP is set. */
static void exception_roundtrip(const char *name, enum fl_tw_framing framing,
				enum fl_tw_proto proto, int payload_framed)
{
	bb pl = {.n = 0}, f = {.n = 0}, h = {.n = 0};
	struct fl_tw_msg req, rep;
	fl_buf out = FL_BUF_INIT;
	const char *text = "unknown service Nope: no function declares it";
	char got[200];
	int type;
	const char *dump = getenv("FL_TW_DUMP");

	if (proto == FL_TW_BINARY)
		bin_msg(&pl, 1, "Nope:echo", -7);
	else
		compact_msg(&pl, 1, "Nope:echo", -7);
	switch (framing) {
	case FL_TW_UNFRAMED_BINARY:
	case FL_TW_UNFRAMED_COMPACT:
		f = pl;
		break;
	case FL_TW_FRAMED_BINARY:
	case FL_TW_FRAMED_COMPACT:
		framed(&f, &pl);
		break;
	case FL_TW_THEADER:
		pvar(&h, proto);
		pvar(&h, 0);
		pvar(&h, 1);
		pvar(&h, 1);
		pstrv(&h, "isn");
		pstrv(&h, "Nope");
		pad4(&h);
		hframe(&f, 0x0fff, 0x0003, 0xdeadbeef, &h, &pl);
		break;
	case FL_TW_TTHEADER:
		p8(&h, proto);
		p8(&h, 0);
		tt_intkv(&h, NULL, "Nope", "echo", "100");
		pad4(&h);
		if (payload_framed) {
			bb fp = {.n = 0};
			framed(&fp, &pl);
			hframe(&f, 0x1000, 0x0003, 0xdeadbeef, &h, &fp);
		} else {
			hframe(&f, 0x1000, 0x0003, 0xdeadbeef, &h, &pl);
		}
		break;
	default:
		fail();
	}
	assert_int_equal(fl_tw_sniff(f.b, f.n), framing);
	memset(&req, 0, sizeof(req));
	if (framing == FL_TW_UNFRAMED_BINARY || framing == FL_TW_UNFRAMED_COMPACT) {
		req.framing = framing;
		req.proto = proto;
		assert_int_equal(parse_message(f.b, f.n, proto, &req), 0);
	} else {
		assert_int_equal(fl_tw_parse(f.b, f.n, &req, &why), 0);
	}
	assert_int_equal(req.payload_framed, payload_framed);

	assert_int_equal(fl_tw_exception(&req, 1, text, &out), 0);
	assert_non_null(out.p);
	assert_int_equal(fl_tw_sniff((const uint8_t *)out.p, out.len), framing);
	memset(&rep, 0xa5, sizeof(rep));
	if (framing == FL_TW_UNFRAMED_BINARY || framing == FL_TW_UNFRAMED_COMPACT) {
		memset(&rep, 0, sizeof(rep));
		rep.proto = proto;
		assert_int_equal(parse_message((const uint8_t *)out.p, out.len, proto, &rep), 0);
	} else {
		/* One whole frame, nothing after it. */
		assert_int_equal(fl_tw_frame_size((const uint8_t *)out.p, out.len, 1 << 20),
				 (long)out.len);
		if (fl_tw_parse((const uint8_t *)out.p, out.len, &rep, &why) != 0)
			fail_msg("%s: the reply does not parse: %s", name, why);
		assert_int_equal(rep.framing, framing);
		assert_int_equal(rep.hflags, req.hflags);
		assert_int_equal(rep.hseqid, req.hseqid);
		assert_int_equal(rep.payload_framed, payload_framed);
		if (payload_framed) {
			/* The inner length covers exactly the message. */
			const uint8_t *lenp =
			    (const uint8_t *)out.p + 14 + 4 * be16((const uint8_t *)out.p + 12);
			assert_int_equal(be32(lenp), (const uint8_t *)out.p + out.len - (lenp + 4));
		}
	}
	assert_int_equal(rep.proto, proto);
	assert_int_equal(rep.type, 3);
	assert_int_equal(rep.seqid, -7);
	expect_str("method", rep.method, rep.method_len, "Nope:echo");
	read_exception(after_header(&rep), (const uint8_t *)out.p + out.len, proto, got,
		       sizeof(got), &type);
	assert_string_equal(got, text);
	assert_int_equal(type, 1);
	/* The struct's stop byte is the last byte of the reply. */
	assert_int_equal((uint8_t)out.p[out.len - 1], 0);

	if (dump) {
		char path[512];
		FILE *fp;
		snprintf(path, sizeof(path), "%s/%s.bin", dump, name);
		fp = fopen(path, "wb");
		assert_non_null(fp);
		assert_int_equal(fwrite(out.p, 1, out.len, fp), out.len);
		assert_int_equal(fclose(fp), 0);
	}
	fl_buf_free(&out);
}

static void test_exceptions(void **state)
{
	(void)state;
	exception_roundtrip("unframed_binary", FL_TW_UNFRAMED_BINARY, FL_TW_BINARY, 0);
	exception_roundtrip("unframed_compact", FL_TW_UNFRAMED_COMPACT, FL_TW_COMPACT, 0);
	exception_roundtrip("framed_binary", FL_TW_FRAMED_BINARY, FL_TW_BINARY, 0);
	exception_roundtrip("framed_compact", FL_TW_FRAMED_COMPACT, FL_TW_COMPACT, 0);
	exception_roundtrip("theader_binary", FL_TW_THEADER, FL_TW_BINARY, 0);
	exception_roundtrip("theader_compact", FL_TW_THEADER, FL_TW_COMPACT, 0);
	exception_roundtrip("ttheader_binary", FL_TW_TTHEADER, FL_TW_BINARY, 0);
	exception_roundtrip("ttheader_binary_framed", FL_TW_TTHEADER, FL_TW_BINARY, 1);
	exception_roundtrip("ttheader_compact", FL_TW_TTHEADER, FL_TW_COMPACT, 0);
	exception_roundtrip("ttheader_compact_framed", FL_TW_TTHEADER, FL_TW_COMPACT, 1);
}

static void test_exception_internal_error(void **state)
{
	bb pl = {.n = 0}, f = {.n = 0};
	struct fl_tw_msg req, rep;
	fl_buf out = FL_BUF_INIT;
	char got[64];
	int type;

	(void)state;
	bin_msg(&pl, 1, "crash", 12);
	framed(&f, &pl);
	assert_int_equal(fl_tw_parse(f.b, f.n, &req, &why), 0);
	assert_int_equal(fl_tw_exception(&req, 6, "instance died", &out), 0);
	assert_int_equal(fl_tw_parse((const uint8_t *)out.p, out.len, &rep, &why), 0);
	read_exception(after_header(&rep), (const uint8_t *)out.p + out.len, FL_TW_BINARY, got,
		       sizeof(got), &type);
	assert_int_equal(type, 6);
	assert_string_equal(got, "instance died");
	fl_buf_free(&out);

	/* Not a framing one can answer in. */
	memset(&req, 0, sizeof(req));
	assert_int_equal(fl_tw_exception(&req, 6, "x", &out), -EINVAL);
	fl_buf_free(&out);
}

/* Every prefix of valid frames, and every single-byte corruption of them,
 * parses or fails without reading past the frame (run under ASan with
 * `make SANITIZE=1`; the buffer is malloc'd to exactly n bytes). */
static void test_no_overreads(void **state)
{
	static const char *const kv[] = {"isn", "EchoService"};
	bb frames[4];
	int i;

	(void)state;
	memset(frames, 0, sizeof(frames));
	{
		bb pl = {.n = 0}, h = {.n = 0};
		bin_msg(&pl, 1, "echo", 1);
		theader_hdr(&h, 0, 1, kv, 1);
		pad4(&h);
		hframe(&frames[0], 0x0fff, 0, 1, &h, &pl);
		h.n = 0;
		p8(&h, 0);
		p8(&h, 0);
		p8(&h, 1);
		p16(&h, 1);
		pstr16(&h, "isn");
		pstr16(&h, "E");
		tt_intkv(&h, "a", "EchoService", "echo", "99");
		p8(&h, 0x11);
		pstr16(&h, "tok");
		pad4(&h);
		hframe(&frames[1], 0x1000, 0, 1, &h, &pl);
		framed(&frames[2], &pl);
		pl.n = 0;
		compact_msg(&pl, 1, "echo", 300);
		framed(&frames[3], &pl);
	}
	for (i = 0; i < 4; i++) {
		size_t n, pos;
		for (n = 0; n <= frames[i].n; n++) {
			uint8_t *cp = malloc(n ? n : 1);
			assert_non_null(cp);
			memcpy(cp, frames[i].b, n);
			(void)fl_tw_sniff(cp, n);
			(void)fl_tw_frame_size(cp, n, 1 << 20);
			(void)fl_tw_parse(cp, n, &m, &why);
			free(cp);
		}
		for (pos = 4; pos < frames[i].n; pos++) {
			static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
			size_t v;
			for (v = 0; v < sizeof(vals); v++) {
				uint8_t *cp = malloc(frames[i].n);
				assert_non_null(cp);
				memcpy(cp, frames[i].b, frames[i].n);
				cp[pos] = vals[v];
				if (fl_tw_parse(cp, frames[i].n, &m, &why) == 0 && m.method) {
					assert_true((const uint8_t *)m.method >= cp);
					assert_true((const uint8_t *)m.method + m.method_len <=
						    cp + frames[i].n);
				}
				free(cp);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sniff),
	    cmocka_unit_test(test_frame_size),
	    cmocka_unit_test(test_theader),
	    cmocka_unit_test(test_theader_padding),
	    cmocka_unit_test(test_theader_malformed),
	    cmocka_unit_test(test_ttheader),
	    cmocka_unit_test(test_ttheader_timeout_and_padding),
	    cmocka_unit_test(test_ttheader_malformed),
	    cmocka_unit_test(test_messages),
	    cmocka_unit_test(test_messages_malformed),
	    cmocka_unit_test(test_multiplexed),
	    cmocka_unit_test(test_exceptions),
	    cmocka_unit_test(test_exception_internal_error),
	    cmocka_unit_test(test_no_overreads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
