/* thrift_wire.c -- Thrift framings, THeader/TTHeader headers and message
 * names, read without decoding bodies; TApplicationException replies. */
#include "proto/thrift_wire.h"

#include <errno.h>
#include <string.h>

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

int fl_tw_sniff(const uint8_t *p, size_t n)
{
	if (n >= 1 && p[0] >= 'A' && p[0] <= 'Z')
		return FL_TW_UNKNOWN; /* an HTTP method (or the HTTP/2 preface) */
	if (n >= 2 && p[0] == 0x80 && p[1] == 0x01)
		return FL_TW_UNFRAMED_BINARY;
	if (n >= 1 && p[0] == 0x82)
		return FL_TW_UNFRAMED_COMPACT;
	if (n < 6)
		return -1;
	if (p[0] & 0x80)
		return FL_TW_UNKNOWN;
	if (p[4] == 0x80 && p[5] == 0x01)
		return FL_TW_FRAMED_BINARY;
	if (p[4] == 0x82)
		return FL_TW_FRAMED_COMPACT;
	if (p[4] == 0x0f && p[5] == 0xff)
		return FL_TW_THEADER;
	if (p[4] == 0x10 && p[5] == 0x00)
		return FL_TW_TTHEADER;
	return FL_TW_UNKNOWN;
}

long fl_tw_frame_size(const uint8_t *p, size_t n, size_t max)
{
	uint32_t len;

	if (n < 4)
		return 0;
	len = be32(p);
	if (len & 0x80000000u || len == 0 || len > max)
		return -1;
	if (n < 4 + (size_t)len)
		return 0;
	return (long)(4 + len);
}

/* A cursor over [p, end). */
struct cur {
	const uint8_t *p, *end;
	int bad;
};

static uint64_t varint(struct cur *c)
{
	uint64_t v = 0;
	int shift = 0;

	while (c->p < c->end && shift < 64) {
		uint8_t b = *c->p++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
		shift += 7;
	}
	c->bad = 1;
	return 0;
}

static int take(struct cur *c, size_t n, const uint8_t **out)
{
	if ((size_t)(c->end - c->p) < n) {
		c->bad = 1;
		return -1;
	}
	*out = c->p;
	c->p += n;
	return 0;
}

static int u8(struct cur *c)
{
	const uint8_t *b;

	return take(c, 1, &b) < 0 ? -1 : b[0];
}

static int u16(struct cur *c)
{
	const uint8_t *b;

	return take(c, 2, &b) < 0 ? -1 : be16(b);
}

/* The message header at the start of a payload: name, type and seqid. */
static int parse_message(const uint8_t *p, size_t n, enum fl_tw_proto proto, struct fl_tw_msg *m)
{
	struct cur c = {p, p + n, 0};
	const uint8_t *name;

	if (proto == FL_TW_BINARY) {
		uint32_t v, len;
		const uint8_t *b;
		if (take(&c, 4, &b) < 0)
			return -1;
		v = be32(b);
		if ((v & 0xffff0000u) != 0x80010000u)
			return -1; /* only strict binary: old non-strict writers are long gone */
		m->type = (int)(v & 0xff);
		if (take(&c, 4, &b) < 0)
			return -1;
		len = be32(b);
		if (len > 4096 || take(&c, len, &name) < 0)
			return -1;
		m->method = (const char *)name;
		m->method_len = len;
		if (take(&c, 4, &b) < 0)
			return -1;
		m->seqid = (int32_t)be32(b);
		return 0;
	}
	if (proto == FL_TW_COMPACT) {
		uint64_t len;
		int vt;
		if (u8(&c) != 0x82 || (vt = u8(&c)) < 0 || (vt & 0x1f) != 1)
			return -1;
		m->type = (vt >> 5) & 7;
		m->seqid = (int32_t)(uint32_t)varint(&c);
		len = varint(&c);
		if (c.bad || len > 4096 || take(&c, (size_t)len, &name) < 0)
			return -1;
		m->method = (const char *)name;
		m->method_len = (size_t)len;
		return 0;
	}
	return 0; /* Kitex protobuf payloads: no name read (routing uses the header) */
}

/* TTHeader (Kitex): fixed-width fields. */
static int parse_ttheader(struct cur *c, struct fl_tw_msg *m, const char **why)
{
	int proto, nt, i;

	if ((proto = u8(c)) < 0 || (nt = u8(c)) < 0) {
		*why = "truncated TTHeader";
		return -1;
	}
	m->proto = (enum fl_tw_proto)proto;
	for (i = 0; i < nt; i++)
		if (u8(c) < 0) {
			*why = "truncated TTHeader transforms";
			return -1;
		}
	while (c->p < c->end) {
		int id = u8(c), cnt, k;
		if (id == 0x00)
			break; /* padding to the end */
		if (id == 0x01 || id == 0x10) {
			if ((cnt = u16(c)) < 0)
				goto trunc;
			for (k = 0; k < cnt; k++) {
				const uint8_t *key = NULL, *val;
				int kl = 0, ik = -1, vl;
				if (id == 0x01) {
					if ((kl = u16(c)) < 0 || take(c, (size_t)kl, &key) < 0)
						goto trunc;
				} else if ((ik = u16(c)) < 0) {
					goto trunc;
				}
				if ((vl = u16(c)) < 0 || take(c, (size_t)vl, &val) < 0)
					goto trunc;
				if (id == 0x01 && kl == 3 && memcmp(key, "isn", 3) == 0) {
					m->isn = (const char *)val;
					m->isn_len = (size_t)vl;
				} else if (ik == 6) {
					m->to_service = (const char *)val;
					m->to_service_len = (size_t)vl;
				} else if (ik == 9) {
					m->to_method = (const char *)val;
					m->to_method_len = (size_t)vl;
				} else if (ik == 12) {
					uint32_t t = 0;
					int d;
					for (d = 0;
					     d < vl && d < 9 && val[d] >= '0' && val[d] <= '9'; d++)
						t = t * 10 + (uint32_t)(val[d] - '0');
					m->timeout_ms = t;
				}
			}
		} else if (id == 0x11) {
			const uint8_t *tok;
			int l;
			if ((l = u16(c)) < 0 || take(c, (size_t)l, &tok) < 0)
				goto trunc;
		} else {
			*why = "unknown TTHeader info block";
			return -1;
		}
	}
	return 0;
trunc:
	*why = "truncated TTHeader info block";
	return -1;
}

/* THeader (Apache): varints. */
static int parse_theader(struct cur *c, struct fl_tw_msg *m, const char **why)
{
	uint64_t proto, nt, i;

	proto = varint(c);
	nt = varint(c);
	if (c->bad || nt > 16) {
		*why = "bad varint in THeader";
		return -1;
	}
	m->proto = (enum fl_tw_proto)proto;
	for (i = 0; i < nt; i++)
		varint(c);
	while (c->p < c->end && !c->bad) {
		uint64_t id = varint(c), cnt, k;
		if (id == 0)
			break;
		if (id != 1 && id != 2) {
			*why = "unknown THeader info id";
			return -1;
		}
		cnt = varint(c);
		for (k = 0; k < cnt && !c->bad; k++) {
			const uint8_t *key, *val;
			uint64_t kl = varint(c), vl;
			if (c->bad || kl > 65535 || take(c, (size_t)kl, &key) < 0)
				break;
			vl = varint(c);
			if (c->bad || vl > 65535 || take(c, (size_t)vl, &val) < 0)
				break;
			if (kl == 3 && memcmp(key, "isn", 3) == 0) {
				m->isn = (const char *)val;
				m->isn_len = (size_t)vl;
			}
		}
	}
	if (c->bad) {
		*why = "bad varint or truncated THeader info block";
		return -1;
	}
	return 0;
}

int fl_tw_parse(const uint8_t *p, size_t n, struct fl_tw_msg *m, const char **why)
{
	const uint8_t *pl;
	size_t pn;

	memset(m, 0, sizeof(*m));
	*why = "malformed frame";
	m->framing = (enum fl_tw_framing)fl_tw_sniff(p, n);
	switch ((int)m->framing) {
	case FL_TW_FRAMED_BINARY:
	case FL_TW_FRAMED_COMPACT:
		m->proto = m->framing == FL_TW_FRAMED_BINARY ? FL_TW_BINARY : FL_TW_COMPACT;
		if (parse_message(p + 4, n - 4, m->proto, m) < 0) {
			*why = "unreadable message header";
			return -1;
		}
		return 0;
	case FL_TW_THEADER:
	case FL_TW_TTHEADER: {
		struct cur c;
		size_t hsize;
		if (n < 14) {
			*why = "truncated header";
			return -1;
		}
		m->hflags = be16(p + 6);
		m->hseqid = be32(p + 8);
		hsize = (size_t)be16(p + 12) * 4;
		if (14 + hsize > n) {
			*why = "header size past the end of the frame";
			return -1;
		}
		c.p = p + 14;
		c.end = p + 14 + hsize;
		c.bad = 0;
		if ((m->framing == FL_TW_TTHEADER ? parse_ttheader(&c, m, why)
						  : parse_theader(&c, m, why)) < 0)
			return -1;
		if (m->proto != FL_TW_BINARY && m->proto != FL_TW_COMPACT &&
		    m->proto != FL_TW_PROTOBUF) {
			*why = "unknown protocol id in header";
			return -1;
		}
		pl = p + 14 + hsize;
		pn = n - 14 - hsize;
		if (pn >= 6 && m->proto != FL_TW_PROTOBUF &&
		    ((m->proto == FL_TW_BINARY && !(pl[0] == 0x80 && pl[1] == 0x01) &&
		      pl[4] == 0x80 && pl[5] == 0x01) ||
		     (m->proto == FL_TW_COMPACT && pl[0] != 0x82 && pl[4] == 0x82))) {
			m->payload_framed = 1;
			pl += 4;
			pn -= 4;
		}
		if (parse_message(pl, pn, m->proto, m) < 0) {
			*why = "unreadable message header";
			return -1;
		}
		return 0;
	}
	default:
		*why = "not a framed Thrift message";
		return -1;
	}
}

size_t fl_tw_mux_service(const struct fl_tw_msg *m)
{
	const char *colon = m->method ? memchr(m->method, ':', m->method_len) : NULL;

	return colon ? (size_t)(colon - m->method) : 0;
}

static int put32(fl_buf *o, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	return fl_buf_append(o, b, 4);
}

static int put_varint(fl_buf *o, uint64_t v)
{
	uint8_t b[10];
	int n = 0;

	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	return fl_buf_append(o, b, (size_t)n);
}

/* The exception message itself, in the request's protocol. */
static void exception_message(const struct fl_tw_msg *m, int type, const char *text, fl_buf *o)
{
	size_t tl = strlen(text);

	if (m->proto == FL_TW_COMPACT) {
		uint8_t h[2] = {0x82, (uint8_t)(1 | (3 << 5))};
		fl_buf_append(o, h, 2);
		put_varint(o, (uint32_t)m->seqid);
		put_varint(o, m->method_len);
		fl_buf_append(o, m->method, m->method_len);
		fl_buf_append(o, "\x18", 1); /* field 1, binary */
		put_varint(o, tl);
		fl_buf_append(o, text, tl);
		fl_buf_append(o, "\x15", 1); /* field 2, i32 (zigzag) */
		put_varint(o, (uint64_t)((uint32_t)type << 1));
		fl_buf_append(o, "\x00", 1);
		return;
	}
	put32(o, 0x80010003u);
	put32(o, (uint32_t)m->method_len);
	fl_buf_append(o, m->method, m->method_len);
	put32(o, (uint32_t)m->seqid);
	fl_buf_append(o, "\x0b\x00\x01", 3);
	put32(o, (uint32_t)tl);
	fl_buf_append(o, text, tl);
	fl_buf_append(o, "\x08\x00\x02", 3);
	put32(o, (uint32_t)type);
	fl_buf_append(o, "\x00", 1);
}

int fl_tw_exception(const struct fl_tw_msg *m, int type, const char *text, fl_buf *out)
{
	fl_buf msg = FL_BUF_INIT, hdr = FL_BUF_INIT;
	/* Room for everything up front (varints and fixed fields take well under
	 * 64 bytes), so no append below can fail and leave half a reply in out. */
	size_t need = m->method_len + strlen(text) + 64;
	int rc = 0;

	if (m->framing < FL_TW_UNFRAMED_BINARY || m->framing > FL_TW_TTHEADER)
		return -EINVAL;
	if (fl_buf_reserve(&msg, need) < 0 || fl_buf_reserve(&hdr, 16) < 0 ||
	    fl_buf_reserve(out, need + 32) < 0) {
		rc = -ENOMEM;
		goto done;
	}
	exception_message(m, type, text, &msg);
	switch (m->framing) {
	case FL_TW_UNFRAMED_BINARY:
	case FL_TW_UNFRAMED_COMPACT:
		fl_buf_append(out, msg.p, msg.len);
		break;
	case FL_TW_FRAMED_BINARY:
	case FL_TW_FRAMED_COMPACT:
		put32(out, (uint32_t)msg.len);
		fl_buf_append(out, msg.p, msg.len);
		break;
	case FL_TW_THEADER:
	case FL_TW_TTHEADER: {
		uint8_t fixed[10];
		size_t plen = msg.len + (m->payload_framed ? 4 : 0);
		if (m->framing == FL_TW_TTHEADER) {
			uint8_t b[2] = {(uint8_t)m->proto, 0};
			fl_buf_append(&hdr, b, 2);
		} else {
			put_varint(&hdr, (uint64_t)m->proto);
			put_varint(&hdr, 0);
		}
		while (hdr.len % 4)
			fl_buf_append(&hdr, "\0", 1);
		put32(out, (uint32_t)(10 + hdr.len + plen));
		fixed[0] = m->framing == FL_TW_TTHEADER ? 0x10 : 0x0f;
		fixed[1] = m->framing == FL_TW_TTHEADER ? 0x00 : 0xff;
		fixed[2] = (uint8_t)(m->hflags >> 8);
		fixed[3] = (uint8_t)m->hflags;
		fixed[4] = (uint8_t)(m->hseqid >> 24);
		fixed[5] = (uint8_t)(m->hseqid >> 16);
		fixed[6] = (uint8_t)(m->hseqid >> 8);
		fixed[7] = (uint8_t)m->hseqid;
		fixed[8] = (uint8_t)((hdr.len / 4) >> 8);
		fixed[9] = (uint8_t)(hdr.len / 4);
		fl_buf_append(out, fixed, 10);
		fl_buf_append(out, hdr.p, hdr.len);
		if (m->payload_framed)
			put32(out, (uint32_t)msg.len);
		fl_buf_append(out, msg.p, msg.len);
		break;
	}
	default:
		rc = -EINVAL;
	}
done:
	fl_buf_free(&msg);
	fl_buf_free(&hdr);
	return rc;
}
