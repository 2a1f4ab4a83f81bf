#!/bin/sh
# run.sh -- make bench: drive examples/hello-c with wrk directly, through flint, nginx and haproxy.
#
# Everything runs on loopback from one temporary directory: a private `flint serve`,
# nginx and haproxy with generated configs, all proxying to the same warm hello-c
# instance. Each (scenario, target) pair runs BENCH_RUNS times, targets interleaved
# so that noise spreads evenly, and the table shows medians. Then flint is profiled
# with perf (when installed) and 10,000 idle keep-alive connections are held against
# its gateway to measure memory per connection and traffic while they are held.
#
# Environment: FLINT_THREADS (gateway threads, default 2), BENCH_DURATION (seconds
# per wrk run, default 5), BENCH_RUNS (default 3), BENCH_IDLE_CONNS (default 10000,
# 0 skips), BENCH_PERF (1 profiles flint when perf exists, 0 skips), FLINT_BIN (the flint
# binary to measure, default bin/flint: a saved build for before/after comparisons).
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BENCH_NAME=bench
. bench/lib.sh
PY=/usr/bin/python3
REPORT=$ROOT/bench/report.py
THREADS=${FLINT_THREADS:-2}
DUR=${BENCH_DURATION:-5}
RUNS=${BENCH_RUNS:-3}
IDLE=${BENCH_IDLE_CONNS:-10000}
PERF=${BENCH_PERF:-1}
SCENARIOS="get post1k post64k lat1"
TARGETS="direct flint nginx haproxy"

for tool in wrk nginx haproxy cc curl timeout; do
	command -v $tool >/dev/null 2>&1 || die "$tool is not installed; run make deps first."
done
[ -x "$PY" ] || die "$PY is missing; run make deps first."
for v in "$THREADS" "$DUR" "$RUNS" "$IDLE"; do
	case $v in
	'' | *[!0-9]*) die "FLINT_THREADS, BENCH_DURATION, BENCH_RUNS and BENCH_IDLE_CONNS must be whole numbers (got '$v')." ;;
	esac
done
[ "$DUR" -ge 1 ] && [ "$RUNS" -ge 1 ] && [ "$THREADS" -ge 1 ] ||
	die "FLINT_THREADS, BENCH_DURATION and BENCH_RUNS must be at least 1."

# Other work on the machine distorts every figure: the table records how busy it was.
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T=$(mktemp -d /tmp/flint-bench.XXXXXX) || die "cannot create a temporary directory."
# nginx started as root runs its workers as an unprivileged user, which must reach the
# temp paths below.
chmod 755 "$T"
copy_flint "$T"
# Many connections are held at once; children inherit this (flint raises its own too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null

FLINT_PID="" NGINX_PID="" HAPROXY_PID="" HOLDER_PID="" WRK_PID="" PERF_PID=""

# Stops every process this script started, by pid, politely first. Runs on any exit.
cleanup() {
	trap - EXIT INT TERM
	stop_pid "$PERF_PID"
	stop_pid "$WRK_PID"
	stop_pid "$HOLDER_PID"
	stop_pid "$NGINX_PID"
	stop_pid "$HAPROXY_PID"
	stop_pid "$FLINT_PID"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# Four free loopback ports: flint's gateway and admin API, nginx, haproxy.
set -- $(free_ports 4)
[ $# -eq 4 ] || die "could not find free loopback ports."
GW=$1 ADMIN=$2 NGX=$3 HAP=$4

echo "bench: results and logs in $T"

# --- flint and the hello-c instance ---------------------------------------------------
start_flint "$T" "$GW" "$ADMIN" "$THREADS"
"$FLINT" deploy examples/hello-c >"$T/deploy.log" 2>&1 ||
	die "deploying examples/hello-c failed; see $T/deploy.log."
# One instance, always warm: every target reaches exactly the same process.
"$FLINT" scale hello-c --min 1 --max 1 >>"$T/deploy.log" 2>&1 ||
	die "scaling hello-c failed; see $T/deploy.log."
until_ok 60 instance_port hello-c || die "hello-c had no ready instance within 60 s; see $T/flint.log."
PORT=$(instance_port hello-c)
curl -sf "http://127.0.0.1:$PORT/" >/dev/null || die "hello-c does not answer on port $PORT."

# --- nginx ------------------------------------------------------------------------------
{
	nginx_conf_head "$T"
	cat <<EOF
	upstream hello {
		server 127.0.0.1:$PORT;
		keepalive 64;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:$NGX;
		location / {
			proxy_pass http://hello;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			# Stream request bodies as flint does, instead of spooling 64 KiB ones to disk.
			proxy_request_buffering off;
		}
	}
}
EOF
} >"$T/nginx.conf"
nginx -c "$T/nginx.conf" -p "$T" -e "$T/nginx-error.log" -g 'daemon off;' \
	>"$T/nginx.out" 2>&1 &
NGINX_PID=$!
until_ok 10 curl -sf "http://127.0.0.1:$NGX/" ||
	die "nginx did not start within 10 s; see $T/nginx-error.log and $T/nginx.out."

# --- haproxy ----------------------------------------------------------------------------
cat >"$T/haproxy.cfg" <<EOF
global
	nbthread 2
	maxconn 4096
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 60s
	timeout http-request 10s
frontend bench
	bind 127.0.0.1:$HAP
	default_backend hello
backend hello
	server hello 127.0.0.1:$PORT
EOF
haproxy -f "$T/haproxy.cfg" -db >"$T/haproxy.out" 2>&1 &
HAPROXY_PID=$!
until_ok 10 curl -sf "http://127.0.0.1:$HAP/" ||
	die "haproxy did not start within 10 s; see $T/haproxy.out."

# --- wrk --------------------------------------------------------------------------------
for size in 1024 65536; do
	cat >"$T/post$size.lua" <<EOF
wrk.method = "POST"
wrk.body = string.rep("x", $size)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
done

url_of() {
	case $1 in
	direct) echo "http://127.0.0.1:$PORT/" ;;
	flint) echo "http://127.0.0.1:$GW/function/hello-c/" ;;
	nginx) echo "http://127.0.0.1:$NGX/" ;;
	haproxy) echo "http://127.0.0.1:$HAP/" ;;
	esac
}
wrk_args() {
	case $1 in
	get) echo "-t2 -c64" ;;
	post1k) echo "-t2 -c64 -s $T/post1024.lua" ;;
	post64k) echo "-t2 -c64 -s $T/post65536.lua" ;;
	lat1) echo "-t1 -c1" ;;
	esac
}
# Runs wrk for one scenario against one target, bounded in time:
# run_wrk SCENARIO TARGET OUT [SECONDS]
run_wrk() {
	d=${4:-$DUR}
	timeout -k 2 $((d + 15)) wrk $(wrk_args "$1") -d"${d}s" --latency "$(url_of "$2")" \
		>"$3" 2>&1
}

total=$((RUNS * 4 * 4))
echo "bench: $total wrk runs of ${DUR} s (flint --threads $THREADS, hello-c on port $PORT)"
: >"$T/results.txt"
n=0
round=1
while [ $round -le "$RUNS" ]; do
	for s in $SCENARIOS; do
		for t in $TARGETS; do
			n=$((n + 1))
			out=$T/wrk-$s-$t-$round.txt
			[ -t 1 ] && printf '\rbench: run %d/%d (%s via %s)          ' $n $total $s $t
			run_wrk "$s" "$t" "$out" || die "wrk failed for $s via $t; see $out."
			res=$($PY "$REPORT" parse "$out") || die "cannot read wrk's output in $out."
			echo "$round $s $t $res" >>"$T/results.txt"
		done
	done
	round=$((round + 1))
done
[ -t 1 ] && printf '\r%60s\r' ''

rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
facts="flint $rev, $(nproc) CPUs ($cpu), Linux $(uname -r), load average at start: $LOAD0"
echo
echo "Medians of $RUNS runs of ${DUR} s each (wrk 4.1, 2 threads; 1 thread for 1 conn):"
echo "$facts"
echo
$PY "$REPORT" table "$T/results.txt" "$T/table.md" || die "cannot build the table."
{
	echo "FLINT_THREADS=$THREADS BENCH_DURATION=$DUR BENCH_RUNS=$RUNS make bench"
	echo "($(date -u '+%Y-%m-%d %H:%M UTC'); $facts;"
	echo "$(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2))"
	echo
	cat "$T/table.md"
} >"$T/results.md"

# --- profile flint during the 64-connection GET -----------------------------------------
if [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
	timeout -k 2 $((DUR + 15)) wrk $(wrk_args get) -d"$((DUR > 5 ? DUR : 5))s" --latency \
		"$(url_of flint)" >"$T/wrk-perf.txt" 2>&1 &
	WRK_PID=$!
	sleep 1
	timeout -k 2 10 perf record -q -F 999 -g -p "$FLINT_PID" -o "$T/perf.data" \
		-- sleep 3 >"$T/perf-record.log" 2>&1
	wait "$WRK_PID"
	WRK_PID=""
	if perf report -i "$T/perf.data" --stdio >"$T/perf-report.txt" 2>/dev/null &&
		perf report -i "$T/perf.data" --stdio --no-children -g none --percent-limit 0.1 \
			--sort dso,sym >"$T/perf-flat.txt" 2>/dev/null; then
		echo
		echo "Profile of flint serve during the 64-connection GET (self time, top entries):"
		grep -v '^#' "$T/perf-flat.txt" | grep -v '^$' | head -25
		echo
		echo "Split by object, and the top entries outside the kernel:"
		perf report -i "$T/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null |
			grep '%' | head -6
		echo
		grep -v '^#' "$T/perf-flat.txt" | grep -v 'kernel.kallsyms' | grep -v '^$' | head -15
		echo "(call graphs: $T/perf-report.txt)"
	else
		echo "bench: perf could not profile flint; see $T/perf-record.log." >&2
	fi
	# System calls per request, flint next to nginx and haproxy: on loopback the kernel's
	# share dominates, so the number of system calls per request is what a proxy controls.
	sys="read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait"
	sys="$sys epoll_ctl accept4 close setsockopt getsockopt futex"
	events=raw_syscalls:sys_enter
	for c in $sys; do events="$events,syscalls:sys_enter_$c"; done
	sdur=$((DUR < 3 ? DUR : 3))
	: >"$T/syscalls.txt"
	for s in get post1k; do
		for t in flint nginx haproxy; do
			case $t in
			flint) pids=$FLINT_PID ;;
			nginx) pids=$(pgrep -P "$NGINX_PID" | paste -sd, -) ;;
			haproxy) pids=$HAPROXY_PID ;;
			esac
			timeout -k 2 $((sdur + 10)) perf stat -x, -e "$events" -p "$pids" \
				-o "$T/perf-stat-$s-$t.txt" -- sleep $((sdur + 1)) >/dev/null 2>&1 &
			PERF_PID=$!
			sleep 0.5
			run_wrk "$s" "$t" "$T/wrk-stat-$s-$t.txt" "$sdur"
			wait "$PERF_PID"
			PERF_PID=""
			reqs=$(awk '/requests in/ { print $1 }' "$T/wrk-stat-$s-$t.txt")
			[ -n "$reqs" ] && awk -F, -v s="$s" -v t="$t" -v n="$reqs" '$3 ~ /sys_enter/ {
				name = $3; sub(/.*sys_enter_?/, "", name); if (name == "") name = "all";
				print s, t, name, $1 + 0, n }' "$T/perf-stat-$s-$t.txt" >>"$T/syscalls.txt"
		done
	done
	if [ -s "$T/syscalls.txt" ]; then
		echo
		echo "System calls per request (perf stat, ${sdur} s of wrk; all server threads):"
		echo
		$PY "$REPORT" syscalls "$T/syscalls.txt" "$T/syscalls.md"
		cat "$T/syscalls.md" >>"$T/results.md"
	fi
elif [ "$PERF" = 1 ]; then
	echo "bench: perf is not installed (Debian package linux-perf); no profile."
fi

# --- idle keep-alive connections ----------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$FLINT_PID/status"; }
fds() { ls "/proc/$FLINT_PID/fd" | wc -l; }
if [ "$IDLE" -gt 0 ]; then
	cc -O2 -o "$T/idleconns" "$ROOT/bench/idleconns.c" || die "cannot compile bench/idleconns.c."
	# A run just before, so that with and without are measured under the same conditions.
	run_wrk get flint "$T/wrk-noidle.txt" || die "wrk failed; see $T/wrk-noidle.txt."
	base=$($PY "$REPORT" parse "$T/wrk-noidle.txt" | cut -d' ' -f1) ||
		die "cannot read $T/wrk-noidle.txt."
	rss0=$(rss_kib)
	fds0=$(fds)
	"$T/idleconns" 127.0.0.1 "$GW" "$IDLE" /function/hello-c/ 60 >"$T/idle.out" 2>&1 &
	HOLDER_PID=$!
	until_ok 90 grep -q '^answered=' "$T/idle.out" ||
		die "the idle connections were not set up within 90 s; see $T/idle.out."
	kill -0 "$HOLDER_PID" 2>/dev/null || die "idleconns failed; see $T/idle.out."
	sleep 1
	rss1=$(rss_kib)
	fds1=$(fds)
	summary=$(grep '^answered=' "$T/idle.out")
	answered=$(echo "$summary" | sed 's/^answered=\([0-9]*\).*/\1/')
	run_wrk get flint "$T/wrk-idle.txt" || die "wrk failed with idle connections held; see $T/wrk-idle.txt."
	res=$($PY "$REPORT" parse "$T/wrk-idle.txt") || die "cannot read $T/wrk-idle.txt."
	rss2=$(rss_kib)
	stop_pid "$HOLDER_PID"
	HOLDER_PID=""
	closed=$(sed -n 's/^closed_by_peer=//p' "$T/idle.out")
	$PY - "$IDLE" "$answered" "$rss0" "$rss1" "$rss2" "$fds0" "$fds1" "$res" "$base" \
		"$summary" "${closed:-?}" >"$T/idle.md" <<'EOF'
import sys
want, got, r0, r1, r2, f0, f1 = (int(x) for x in sys.argv[1:8])
wrk = sys.argv[8].split()
base, summary, closed = float(sys.argv[9]), sys.argv[10], sys.argv[11]
per = (r1 - r0) * 1024 / got if got else float("nan")
print("| idle keep-alive connections to flint | |")
print("|---|---:|")
print("| held (answered, then idle) | %d of %d |" % (got, want))
print("| flint RSS before / with them held / after wrk | %.1f / %.1f / %.1f MiB |"
      % (r0 / 1024, r1 / 1024, r2 / 1024))
print("| flint memory per idle connection | %.0f bytes |" % per)
print("| flint open descriptors before / held | %d / %d |" % (f0, f1))
print("| GET, 64 conns: req/s just before / with them held | %.0f / %.0f (%.2f) |"
      % (base, float(wrk[0]), float(wrk[0]) / base if base else 0))
print("| p99 with them held | %.0f µs |" % float(wrk[2]))
print("| closed by flint while held | %s |" % closed)
print()
print("- idleconns: " + summary)
EOF
	echo
	echo "Idle keep-alive connections (bench/idleconns.c):"
	echo
	cat "$T/idle.md"
	cat "$T/idle.md" >>"$T/results.md"
	[ "$answered" = "$IDLE" ] ||
		echo "bench: only $answered of $IDLE idle connections were answered (see $T/idle.out and $T/flint.log)."
	grep -i 'too many open files\|EMFILE' "$T/flint.log" >/dev/null 2>&1 &&
		echo "bench: flint ran out of file descriptors; see $T/flint.log."
fi

echo
echo "bench: markdown table in $T/results.md"
exit 0
