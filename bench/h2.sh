#!/bin/sh
# h2.sh -- HTTP/2 and gRPC through flint vs nginx vs direct, driven by h2load.
#
# Everything runs on loopback from one temporary directory: a private `flint serve`,
# examples/grpc-greeter (the unchanged grpcio server) and examples/hello-c, each scaled
# to exactly one warm instance, and one nginx with two h2c servers: `grpc_pass` to the
# greeter and `proxy_pass` (HTTP/1.1) to hello-c, both with an upstream keep-alive pool.
# Two scenarios, each with the same h2load settings against every target:
#
#   grpc    unary SayHello: direct to the greeter, through flint's gateway, through nginx
#   h2get   GET over h2c to hello-c: through flint (h2 -> HTTP/1.1) and nginx (same);
#           hello-c speaks HTTP/1.1 only, so "direct" is wrk over HTTP/1.1 with as many
#           connections as h2load has streams in flight: the floor, not a like-for-like.
#
# Each (scenario, target) pair runs H2_RUNS times, targets interleaved, and the table
# shows medians. h2load counts HTTP statuses only, and a failed gRPC call is an HTTP
# 200 with grpc-status in the trailers, so the greeter is first called with grpcio's
# own client directly, through flint and through nginx, nghttp checks that the message
# h2load sends gets grpc-status 0 from all three, and after every gRPC run through
# flint the rise of flint's flint_grpc_requests_total{grpc_status="0"} must equal the
# calls h2load counted.
#
# Run from anywhere: sh bench/h2.sh. Environment: FLINT_THREADS (default 2),
# H2_RUNS (3), H2_CONNS (h2load -c, 8), H2_STREAMS (h2load -m, 10),
# H2_GRPC_REQUESTS (per gRPC run, 20000), H2_GET_REQUESTS (per h2 GET run, 100000),
# H2_WRK_DURATION (seconds per wrk run, 5).
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BENCH_NAME="h2 bench"
. bench/lib.sh
PY=/usr/bin/python3
THREADS=${FLINT_THREADS:-2}
RUNS=${H2_RUNS:-3}
CONNS=${H2_CONNS:-8}
STREAMS=${H2_STREAMS:-10}
NGRPC=${H2_GRPC_REQUESTS:-20000}
NGET=${H2_GET_REQUESTS:-100000}
WDUR=${H2_WRK_DURATION:-5}

for tool in h2load nghttp wrk nginx curl timeout; do
	command -v $tool >/dev/null 2>&1 || die "$tool is not installed; run make deps first."
done
[ -x examples/hello-c/hello ] || [ -f examples/hello-c/hello.c ] ||
	die "examples/hello-c is missing."
$PY -c 'import grpc, grpc_tools' 2>/dev/null ||
	die "$PY lacks grpcio or grpc_tools; run make deps first."
for v in "$THREADS" "$RUNS" "$CONNS" "$STREAMS" "$NGRPC" "$NGET" "$WDUR"; do
	case $v in
	'' | *[!0-9]*) die "FLINT_THREADS and the H2_* settings must be whole numbers (got '$v')." ;;
	esac
	[ "$v" -ge 1 ] || die "FLINT_THREADS and the H2_* settings must be at least 1."
done
INFLIGHT=$((CONNS * STREAMS))

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T=$(mktemp -d /tmp/flint-h2bench.XXXXXX) || die "cannot create a temporary directory."
# nginx started as root runs its workers as an unprivileged user, which must reach $T.
chmod 755 "$T"
copy_flint "$T"

FLINT_PID="" NGINX_PID=""
# Stops every process this script started. Runs on any exit.
cleanup() {
	trap - EXIT INT TERM
	stop_pid "$NGINX_PID"
	stop_pid "$FLINT_PID"
}
trap cleanup EXIT
trap 'echo "h2 bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# Four free loopback ports: flint's gateway and admin API, nginx's gRPC and h2 servers.
set -- $(free_ports 4)
[ $# -eq 4 ] || die "could not find free loopback ports."
GW=$1 ADMIN=$2 NGG=$3 NGH=$4

echo "h2 bench: results and logs in $T"

# --- flint, the greeter and hello-c -----------------------------------------------------
start_flint "$T" "$GW" "$ADMIN" "$THREADS"
# One instance each, always warm: every target reaches exactly the same process.
for fn in grpc-greeter hello-c; do
	"$FLINT" deploy "examples/$fn" >>"$T/deploy.log" 2>&1 ||
		die "deploying examples/$fn failed; see $T/deploy.log."
	"$FLINT" scale "$fn" --min 1 --max 1 >>"$T/deploy.log" 2>&1 ||
		die "scaling $fn failed; see $T/deploy.log."
done
# The greeter's first instance waits for its build (protoc) and grpcio's start-up.
for fn in grpc-greeter hello-c; do
	until_ok 90 instance_port $fn || die "$fn had no ready instance within 90 s; see $T/flint.log."
done
GPORT=$(instance_port grpc-greeter)
HPORT=$(instance_port hello-c)
curl -sf "http://127.0.0.1:$HPORT/" >/dev/null || die "hello-c does not answer on port $HPORT."

# --- nginx --------------------------------------------------------------------------------
{
	nginx_conf_head "$T"
	cat <<EOF
	upstream greeter {
		server 127.0.0.1:$GPORT;
		keepalive 64;
		keepalive_requests 1000000;
	}
	upstream hello {
		server 127.0.0.1:$HPORT;
		keepalive 64;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:$NGG http2;
		location / {
			grpc_pass grpc://greeter;
		}
	}
	server {
		listen 127.0.0.1:$NGH http2;
		location / {
			proxy_pass http://hello;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_request_buffering off;
		}
	}
}
EOF
} >"$T/nginx.conf"
nginx -c "$T/nginx.conf" -p "$T" -e "$T/nginx-error.log" -g 'daemon off;' \
	>"$T/nginx.out" 2>&1 &
NGINX_PID=$!
until_ok 10 curl -sf --http2-prior-knowledge "http://127.0.0.1:$NGH/" ||
	die "nginx did not start within 10 s; see $T/nginx-error.log and $T/nginx.out."
curl -sf --http2-prior-knowledge "http://127.0.0.1:$GW/function/hello-c/" >/dev/null ||
	die "hello-c does not answer through flint over h2c; see $T/flint.log."

# --- the gRPC calls are real successes --------------------------------------------------
# grpcio's own client, with stubs generated here, against all three targets.
mkdir -p "$T/client"
cp examples/grpc-greeter/greeter_client.py examples/grpc-greeter/helloworld.proto "$T/client/"
(cd "$T/client" && $PY -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
	helloworld.proto) >"$T/protoc.log" 2>&1 || die "protoc failed; see $T/protoc.log."
for p in "$GPORT" "$GW" "$NGG"; do
	out=$(timeout 60 $PY "$T/client/greeter_client.py" "127.0.0.1:$p" bench 2>&1)
	[ "$out" = "Hello, bench!" ] || die "SayHello via port $p answered '$out'."
done
grpc_ok() {
	curl -sf "http://127.0.0.1:$GW/metrics" | awk '
		/^flint_grpc_requests_total\{function="grpc-greeter",grpc_status="0"\}/ { n = $2 }
		END { print n + 0 }'
}
grpc_failed() {
	curl -sf "http://127.0.0.1:$GW/metrics" | awk '
		/^flint_grpc_requests_total\{function="grpc-greeter",/ && !/grpc_status="0"/ { n += $2 }
		END { print n + 0 }'
}
[ "$(grpc_ok)" -ge 1 ] || die "flint's /metrics did not count the SayHello call as grpc-status 0."

# One gRPC message: a 0 (uncompressed) flag, a big-endian u32 length, and the protobuf of
# HelloRequest{name: "bench"}: field 1, wire type 2 (0x0a), length 5, the bytes.
printf '\000\000\000\000\007\012\005bench' >"$T/sayhello.bin"
[ "$(wc -c <"$T/sayhello.bin")" -eq 12 ] || die "cannot write the gRPC request message."

url_of() {
	case $1-$2 in
	grpc-direct) echo "http://127.0.0.1:$GPORT/helloworld.Greeter/SayHello" ;;
	grpc-flint) echo "http://127.0.0.1:$GW/helloworld.Greeter/SayHello" ;;
	grpc-nginx) echo "http://127.0.0.1:$NGG/helloworld.Greeter/SayHello" ;;
	h2get-direct) echo "http://127.0.0.1:$HPORT/" ;;
	h2get-flint) echo "http://127.0.0.1:$GW/function/hello-c/" ;;
	h2get-nginx) echo "http://127.0.0.1:$NGH/" ;;
	esac
}
# Runs one load: run_load SCENARIO TARGET REQUESTS OUT. Writes h2load's (or wrk's)
# output to OUT and h2load's per-request log to OUT.log.
run_load() {
	url=$(url_of "$1" "$2")
	if [ "$1-$2" = h2get-direct ]; then
		timeout -k 2 $((WDUR + 15)) wrk -t1 -c"$INFLIGHT" -d"${WDUR}s" --latency "$url" \
			>"$4" 2>&1
		return
	fi
	if [ "$1" = grpc ]; then
		set -- "$@" -d "$T/sayhello.bin" -H 'content-type: application/grpc' -H 'te: trailers'
	fi
	s=$1 n=$3 out=$4
	shift 4
	timeout -k 2 300 h2load -n "$n" -c "$CONNS" -m "$STREAMS" -t 1 --log-file "$out.log" \
		"$@" "$url" >"$out" 2>&1
}
# Prints "RPS P50_US P99_US MEAN_US MAX_US ERRORS DONE" from one run's output.
parse() {
	$PY - "$1" <<'EOF'
import re, statistics, sys
path = sys.argv[1]
text = open(path).read()
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}
def us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        sys.exit("h2.sh: not a duration in %s: %s" % (path, v))
    return float(m.group(1)) * UNITS[m.group(2)]
if "Requests/sec:" in text:  # wrk --latency
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = re.search(r"Latency\s+(\S+)\s+\S+\s+(\S+)", text)
    p50 = us(re.search(r"\s50%\s+(\S+)", text).group(1))
    p99 = us(re.search(r"\s99%\s+(\S+)", text).group(1))
    done = int(re.search(r"(\d+) requests in", text).group(1))
    err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    err += int(m.group(1)) if m else 0
    print("%.2f %.1f %.1f %.1f %.1f %d %d" % (rps, p50, p99, us(lat.group(1)),
                                              us(lat.group(2)), err, done))
    sys.exit(0)
m = re.search(r"finished in \S+, ([\d.]+) req/s", text)
r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
              r"(\d+) errored, (\d+) timeout", text)
c = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
t = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text)
if not (m and r and c and t):
    sys.exit("h2.sh: %s is not h2load output" % path)
done, ok = int(r.group(1)), int(r.group(2))
err = (done - ok) + int(r.group(4)) + int(r.group(5)) + sum(int(x) for x in c.groups()[1:])
# h2load prints min/max/mean/sd only: percentiles come from its per-request log.
lat = sorted(float(l.split("\t")[2]) for l in open(path + ".log") if l.strip())
if not lat:
    sys.exit("h2.sh: %s.log is empty" % path)
def pct(p):
    return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))]
print("%.2f %.1f %.1f %.1f %.1f %d %d" % (float(m.group(1)), pct(50), pct(99),
                                          us(t.group(3)), us(t.group(2)), err, ok))
EOF
}

# The exact message h2load sends answers grpc-status 0 on every target (nghttp prints
# the trailers; it is in the same Debian package as h2load).
for t in direct flint nginx; do
	timeout 30 nghttp -v -d "$T/sayhello.bin" -H 'content-type: application/grpc' \
		-H 'te: trailers' "$(url_of grpc $t)" >"$T/nghttp-$t.txt" 2>&1
	grep -q 'grpc-status: 0' "$T/nghttp-$t.txt" ||
		die "SayHello via $t did not answer grpc-status 0 to the benchmark's message; see $T/nghttp-$t.txt."
done

# --- load ----------------------------------------------------------------------------------
# A short warm-up per target: connections, pools, the greeter's threads.
for s in grpc h2get; do
	for t in direct flint nginx; do
		[ "$s-$t" = h2get-direct ] && continue
		run_load $s $t 2000 "$T/warmup-$s-$t.txt" ||
			die "the warm-up of $s via $t failed; see $T/warmup-$s-$t.txt."
	done
done

echo "h2 bench: $((RUNS * 6)) runs (h2load -c $CONNS -m $STREAMS -t 1; flint --threads $THREADS;" \
	"greeter on port $GPORT, hello-c on port $HPORT)"
: >"$T/results.txt"
: >"$T/grpc-check.txt"
round=1
while [ "$round" -le "$RUNS" ]; do
	for s in grpc h2get; do
		for t in direct flint nginx; do
			[ $s = grpc ] && n=$NGRPC || n=$NGET
			out=$T/$s-$t-$round.txt
			[ -t 1 ] && printf '\rh2 bench: round %d, %s via %s          ' "$round" $s $t
			[ "$s-$t" = grpc-flint ] && ok0=$(grpc_ok) bad0=$(grpc_failed)
			run_load $s $t "$n" "$out" || die "the load of $s via $t failed; see $out."
			res=$(parse "$out") || die "cannot read $out."
			echo "$round $s $t $res" >>"$T/results.txt"
			if [ "$s-$t" = grpc-flint ]; then
				got=$(($(grpc_ok) - ok0))
				bad=$(($(grpc_failed) - bad0))
				want=$(echo "$res" | cut -d' ' -f7)
				echo "round $round: h2load succeeded $want, flint counted grpc-status 0:" \
					"$got, other grpc-status: $bad" >>"$T/grpc-check.txt"
				[ "$got" -eq "$want" ] && [ "$bad" -eq 0 ] ||
					die "round $round: h2load saw $want answers but flint counted $got with grpc-status 0 and $bad others."
			fi
		done
	done
	round=$((round + 1))
done
[ -t 1 ] && printf '\r%60s\r' ''

rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
facts="flint $rev, $(nproc) CPUs ($cpu), Linux $(uname -r), load average at start: $LOAD0"
echo
echo "Medians of $RUNS runs; $NGRPC gRPC calls or $NGET GETs per h2load run," \
	"$CONNS connections x $STREAMS streams; wrk: 1 thread, $INFLIGHT connections, ${WDUR} s."
echo "$facts"
echo
$PY - "$T/results.txt" "$INFLIGHT" >"$T/table.md" <<'EOF' || die "cannot build the table."
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    w = line.split()
    rows.setdefault((w[1], w[2]), []).append([float(x) for x in w[3:]])
def med(k, i):
    return statistics.median(r[i] for r in rows[k])
def fmt(us):
    if us < 1000:
        return "%.0f µs" % us
    return "%.2f ms" % (us / 1e3) if us < 1e6 else "%.2f s" % (us / 1e6)
names = {"grpc": "gRPC unary SayHello", "h2get": "GET over h2c, hello-c"}
print("| scenario | target | req/s | p50 | p99 | mean | max | errors | flint / nginx "
      "| flint / direct |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in ("grpc", "h2get"):
    for t in ("direct", "flint", "nginx"):
        if (s, t) not in rows:
            continue
        label = t
        if s == "h2get" and t == "direct":
            label = "direct (HTTP/1.1, wrk -c%s)" % sys.argv[2]
        vs_n = vs_d = ""
        if t == "flint":
            vs_n = "%.2f" % (med((s, t), 0) / med((s, "nginx"), 0))
            vs_d = "%.2f" % (med((s, t), 0) / med((s, "direct"), 0))
        print("| %s | %s | %.0f | %s | %s | %s | %s | %d | %s | %s |" % (
            names[s], label, med((s, t), 0), fmt(med((s, t), 1)), fmt(med((s, t), 2)),
            fmt(med((s, t), 3)), fmt(med((s, t), 4)), sum(r[5] for r in rows[(s, t)]),
            vs_n, vs_d))
print()
print("req/s, by run:")
for (s, t), rs in rows.items():
    print("- %s via %s: %s" % (s, t, " / ".join("%.0f" % r[0] for r in rs)))
EOF
cat "$T/table.md"
echo
echo "gRPC calls through flint, as counted by h2load and by flint's /metrics:"
cat "$T/grpc-check.txt"
{
	echo "sh bench/h2.sh   (FLINT_THREADS=$THREADS H2_RUNS=$RUNS H2_CONNS=$CONNS" \
		"H2_STREAMS=$STREAMS H2_GRPC_REQUESTS=$NGRPC H2_GET_REQUESTS=$NGET H2_WRK_DURATION=$WDUR)"
	echo "($(date -u '+%Y-%m-%d %H:%M UTC'); $facts;"
	echo "$(nginx -v 2>&1 | sed 's/.*: //'), $(h2load --version | head -1), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2))"
	echo
	cat "$T/table.md"
	echo
	cat "$T/grpc-check.txt"
} >"$T/results.md"
echo
echo "h2 bench: markdown table in $T/results.md"
exit 0
