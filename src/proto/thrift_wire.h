/* thrift_wire.h -- reading Thrift framings without decoding bodies: which
 * transport and protocol a client speaks, where a message ends, the routing
 * facts in THeader (Apache) and TTHeader (Kitex) headers, the method name and
 * seqid; and writing a TApplicationException reply in the client's own
 * framing. Pure functions over byte buffers (fuzzed and unit-tested). */
#ifndef FL_THRIFT_WIRE_H
#define FL_THRIFT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum fl_tw_framing {
	FL_TW_UNKNOWN = 0,
	FL_TW_UNFRAMED_BINARY,	/* 80 01 ...: buffered transport, strict binary */
	FL_TW_UNFRAMED_COMPACT, /* 82 ...: buffered transport, compact */
	FL_TW_FRAMED_BINARY,	/* u32 length, then 80 01 */
	FL_TW_FRAMED_COMPACT,	/* u32 length, then 82 */
	FL_TW_THEADER,		/* u32 length, then 0F FF (Apache THeader) */
	FL_TW_TTHEADER,		/* u32 length, then 10 00 (Kitex TTHeader) */
};

enum fl_tw_proto { FL_TW_BINARY = 0, FL_TW_COMPACT = 2, FL_TW_PROTOBUF = 3 };

/* What flint reads from one framed message. Strings point into the frame. */
struct fl_tw_msg {
	enum fl_tw_framing framing;
	enum fl_tw_proto proto; /* of the payload */
	uint16_t hflags;	/* THeader/TTHeader FLAGS */
	uint32_t hseqid;	/* THeader/TTHeader SEQID */
	int payload_framed;	/* TTHeader: the payload has its own u32 length */
	const char *method;	/* message name as sent ("Service:method" when multiplexed) */
	size_t method_len;
	int32_t seqid;		/* message seqid */
	int type;		/* 1 call, 2 reply, 3 exception, 4 oneway */
	const char *to_service; /* TTHeader int key 6 */
	size_t to_service_len;
	const char *to_method; /* TTHeader int key 9 */
	size_t to_method_len;
	const char *isn; /* string key "isn" (IDL service name) */
	size_t isn_len;
	uint32_t timeout_ms; /* TTHeader int key 12 (RPCTimeout), 0 = none */
};

/* Looks at the first bytes of a connection. Returns the framing, FL_TW_UNKNOWN
 * if they are not Thrift, or -1 if more bytes are needed to tell (fewer than 6). */
int fl_tw_sniff(const uint8_t *p, size_t n);

/* For framed transports: the total size of the first message (4 + length), 0
 * if more bytes are needed, or -1 if the length is invalid (top bit set) or
 * over max. */
long fl_tw_frame_size(const uint8_t *p, size_t n, size_t max);

/* Parses one whole framed message (p, n from fl_tw_frame_size). Returns 0, or
 * -1 with a reason in *why (static string) for a truncated or malformed header,
 * a bad varint, or an unreadable message header. */
int fl_tw_parse(const uint8_t *p, size_t n, struct fl_tw_msg *m, const char **why);

/* The service part of a multiplexed name ("Service:method"), or len 0. */
size_t fl_tw_mux_service(const struct fl_tw_msg *m);

/* Appends to out a complete reply frame carrying a TApplicationException of
 * type (1 UNKNOWN_METHOD, 6 INTERNAL_ERROR, ...) with message text, in the
 * same framing, header (flags, seqid, protocol) and protocol as the request m.
 * Returns 0 or -ENOMEM. */
int fl_tw_exception(const struct fl_tw_msg *m, int type, const char *text, fl_buf *out);

#endif
