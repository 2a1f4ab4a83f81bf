#!/usr/bin/python3
"""make_corpus.py -- writes the seed corpora in tests/fuzz/corpus/<target>/ (real inputs:
Thrift frames as the unit tests build them, the examples' flint.yaml, cron expressions, a
TZif zone, HTTP/1 heads). Run it from anywhere; it replaces only the files it writes."""
import json
import re
import struct
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "corpus"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def bin_msg(typ, name, seqid):
    n = name.encode()
    return (struct.pack(">I", 0x80010000 | typ) + struct.pack(">I", len(n)) + n +
            struct.pack(">i", seqid) + b"\x0b" + struct.pack(">hI", 1, 2) + b"hi\x00")


def compact_msg(typ, name, seqid):
    n = name.encode()
    return (b"\x82" + bytes([1 | (typ << 5)]) + varint(seqid) + varint(len(n)) + n + b"\x18" +
            varint(2) + b"hi\x00")


def framed(p):
    return struct.pack(">I", len(p)) + p


def pad4(h):
    return h + b"\x00" * (-len(h) % 4)


def hframe(magic, flags, hseqid, hdr, payload):
    return (struct.pack(">IHHIH", 10 + len(hdr) + len(payload), magic, flags, hseqid, len(hdr) // 4)
            + hdr + payload)


def s16(s):
    return struct.pack(">H", len(s)) + s.encode()


def sv(s):
    return varint(len(s)) + s.encode()


def thrift_frames():
    b = bin_msg(1, "echo", 7)
    c = compact_msg(1, "Echo:echo", 3)
    th = pad4(varint(0) + varint(2) + varint(1) + varint(2) + varint(1) + varint(2) +
              sv("trace") + sv("abc") + sv("isn") + sv("EchoService"))
    tt = (b"\x00\x01\x01\x01" + struct.pack(">H", 2) + s16("isn") + s16("IdlService") +
          s16("tenant") + s16("t1") + b"\x10" + struct.pack(">H", 3) + struct.pack(">H", 6) +
          s16("EchoService") + struct.pack(">H", 9) + s16("echo") + struct.pack(">H", 12) +
          s16("250") + b"\x11" + s16("secret-token"))
    return {
        "unframed_binary": b,
        "unframed_compact": c,
        "framed_binary": framed(b),
        "framed_compact": framed(c),
        "framed_pipelined": framed(b) + framed(bin_msg(4, "note", 8)),
        "theader_binary": hframe(0x0FFF, 1, 0x01020304, th, b),
        "theader_compact": hframe(0x0FFF, 0, 5, pad4(b"\x02\x00" + varint(1) + varint(1) +
                                                      sv("isn") + sv("S")), c),
        "ttheader_binary": hframe(0x1000, 2, 9001, pad4(tt), b),
        "ttheader_framed_payload": hframe(0x1000, 0, 1, pad4(tt), framed(b)),
    }


HEADS = {
    "get": "GET /function/hello/x?y=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    "host_routed": "GET /a/b HTTP/1.1\r\nHost: Hello.localhost:8080\r\nUser-Agent: t\r\n\r\n",
    "post_cl": "POST /function/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "post_chunked": "POST /function/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\nTrailer: 1\r\n\r\n",
    "pipelined": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "http10": "GET /function/f HTTP/1.0\r\n\r\n",
    "absolute": "GET http://hello.localhost/p?q HTTP/1.1\r\nHost: hello.localhost\r\n\r\n",
    "upgrade_h2c": "GET /function/f HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                   "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    "expect": "PUT /function/f/up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
              "Content-Length: 3\r\n\r\nabc",
    "cl_and_te": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two_cl": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
    "obs_fold": "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",
    "space_name": "GET / HTTP/1.1\r\nHo st: x\r\n\r\n",
    "async": "POST /async-function/f HTTP/1.1\r\nHost: x\r\nX-Callback-Url: http://c/\r\n"
             "Content-Length: 0\r\n\r\n",
    "system": "GET /system/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n",
}

CRON = ["* * * * *", "*/5 * * * *", "0 0 * * MON-FRI", "30 4 1,15 * 5", "0 0 12 * JAN,JUL ?",
        "*/10 * * * * *", "0 0 30 2 *", "@hourly", "@daily", "@weekly", "@monthly", "@yearly",
        "@every 10s", "@every 1h30m", "0 0-23/2 L * *", "59 23 31 12 SUN"]

ROUTES = ["/function/hello/x?y=1\nlocalhost", "/\nhello.localhost:8080", "/metrics", "/healthz",
          "/async-function/f/path?q", "/requests/0123abcd", "/system/functions",
          "http://h/function/a/b?c", "/function/\nx", "/function/UPPER", "/?q\nA.LOCALHOST",
          "/x\n[::1]:80"]


def main():
    frames = thrift_frames()
    for k, v in frames.items():
        put("fuzz_thrift_wire", k, v)
        put("fuzz_sniff", "thrift_" + k, v)
    put("fuzz_sniff", "h2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    for k, v in HEADS.items():
        put("fuzz_sniff", "http_" + k, v)
        # fuzz_http1_head: the first byte says where the input splits into two reads.
        put("fuzz_http1_head", k, bytes([len(v) // 2 % 256]) + v.encode())
    for i, r in enumerate(ROUTES):
        put("fuzz_router", "route%02d" % i, r)
    for i, c in enumerate(CRON):
        put("fuzz_cron", "cron%02d" % i, c)
    for z in ("UTC", "Europe/Berlin", "Asia/Shanghai"):
        p = Path("/usr/share/zoneinfo") / z
        if p.exists():
            put("fuzz_cron", "tz_" + z.replace("/", "_"), p.read_bytes())
    for y in sorted(ROOT.glob("examples/*/flint.yaml")) + sorted(ROOT.glob("templates/*/flint.yaml")):
        text = re.sub(r"\{\{[A-Z_]+\}\}", "sample", y.read_text())  # template placeholders
        name = y.parent.parent.name + "_" + y.parent.name
        put("fuzz_yaml", name, text)
        doc = yaml.safe_load(text)
        put("fuzz_spec", name, json.dumps(doc))
    put("fuzz_spec", "full", json.dumps({
        "name": "full", "command": ["/usr/bin/python3", "app.py"], "protocol": "http",
        "env": {"A": "1"}, "scale": {"min": 1, "max": 5, "target": 10, "concurrency": 20,
                                     "reserved": 1, "idle_timeout": "2m"},
        "limits": {"timeout": "30s", "max_body": "1MiB", "memory": "256MiB", "cpu": 0.5,
                   "pids": 64},
        "health": {"type": "http", "path": "/healthz", "startup_timeout": "10s"},
        "queue": {"max": 10, "timeout": "5s"},
        "triggers": [{"cron": "*/5 * * * *", "tz": "UTC", "payload": {"k": 1},
                      "missed": "run-once"}]}))
    put("fuzz_yaml", "anchors", "a: &x 1\nb: *x\n")
    put("fuzz_yaml", "types", "i: 12\nf: 1.5\nt: true\nn: null\ns: '12'\nl: [1, two, {k: v}]\n")


if __name__ == "__main__":
    main()
