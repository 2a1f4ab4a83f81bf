#!/bin/sh
# thrift.sh -- Thrift through flint vs direct: examples/thrift-echo (min 1) called by
# bench/thrift_load.c with framed binary straight at the instance's port, framed binary
# through the function's dedicated port, and Kitex TTHeader through the gateway port;
# 2 runs of DUR seconds each, CONNS connections, one call at a time per connection.
# Prints a table with the ratio flint/direct (goal >= 0.8). Run from the repository
# root: sh bench/thrift.sh   (CONNS=8 DUR=5 RUNS=2 by default; FLINT_THREADS: gateway
# threads, flint's default if unset)
set -eu
ROOT=$(pwd)
CONNS=${CONNS:-8}
DUR=${DUR:-5}
RUNS=${RUNS:-2}
BENCH_NAME=thrift.sh
. bench/lib.sh

command -v thrift >/dev/null || die "the thrift compiler is missing (apt-get install thrift-compiler)."
make -s bin/flint || die "cannot build bin/flint."
TMP=$(mktemp -d)
FLINT_PID=""
trap 'stop_pid "$FLINT_PID" || true; rm -rf "$TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
copy_flint "$TMP"
LOAD=$TMP/thrift_load
cc -O2 -std=gnu17 -Wall -Wextra -D_GNU_SOURCE -o "$LOAD" bench/thrift_load.c ||
	die "cannot compile bench/thrift_load.c."

set -- $(free_ports 3)
[ $# -eq 3 ] || die "could not find free loopback ports."
GW=127.0.0.1:$1 ADMIN=127.0.0.1:$2 TPORT=$3
start_flint "$TMP" "${GW#*:}" "${ADMIN#*:}" "${FLINT_THREADS:-}"

# The example with min 1 and a free dedicated port (9190 may be taken).
mkdir -p "$TMP/fn"
cp examples/thrift-echo/echo.thrift examples/thrift-echo/echo_server.py "$TMP/fn/"
sed -e "s/^\( *port:\) 9190/\1 $TPORT/" -e 's/^\( *min:\) 0/\1 1/' \
	examples/thrift-echo/flint.yaml >"$TMP/fn/flint.yaml"
"$FLINT" deploy "$TMP/fn" >/dev/null || die "cannot deploy examples/thrift-echo."

# Wait for the instance and find its port.
IPORT=
for _ in $(seq 300); do
	IPORT=$(curl -sf -H "Authorization: Bearer $FLINT_TOKEN" \
		"http://$ADMIN/v1/functions/thrift-echo/instances" |
		/usr/bin/python3 -c 'import json,sys
for i in json.load(sys.stdin)["instances"]:
    if i.get("state") == "ready":
        print(i["port"]); break' 2>/dev/null || true)
	[ -n "$IPORT" ] && break
	sleep 0.1
done
[ -n "$IPORT" ] || die "no instance of thrift-echo became ready; see $TMP/flint.log."

# Warm-up (connections, pools, the server's threads).
for t in "$IPORT framed" "$TPORT framed" "${GW#*:} ttheader"; do
	set -- $t
	"$LOAD" 127.0.0.1 "$1" "$2" "$CONNS" 1 >/dev/null || die "warm-up against port $1 ($2) failed."
done

# Runs alternate between the targets so drift hits all of them alike.
: >"$TMP/results"
for run in $(seq "$RUNS"); do
	for t in "direct $IPORT framed" "flint-dedicated $TPORT framed" "flint-gateway ${GW#*:} ttheader"; do
		set -- $t
		out=$("$LOAD" 127.0.0.1 "$2" "$3" "$CONNS" "$DUR") ||
			die "$1 ($3) run $run failed: $out"
		echo "$1 $3 $run $out" >>"$TMP/results"
	done
done

echo "Thrift echo, $CONNS connections, 1 call in flight each, $RUNS x ${DUR}s per target" \
	"(Python THeader server, examples/thrift-echo):"
/usr/bin/python3 - "$TMP/results" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    target, mode, run, rest = line.split(None, 3)
    kv = dict(re.findall(r"(\w+)=([\d.]+)", rest))
    rows.setdefault((target, mode), []).append(kv)
def mean(rs, k):
    return sum(float(r[k]) for r in rs) / len(rs)
direct = mean(rows[("direct", "framed")], "calls_per_s")
print("%-16s %-9s %22s %10s %9s %9s %7s" % ("target", "framing", "calls/s (runs)", "mean",
                                               "p50 us", "p99 us", "ratio"))
for (target, mode), rs in rows.items():
    c = mean(rs, "calls_per_s")
    print("%-16s %-9s %22s %10.0f %9.0f %9.0f %7.2f" % (
        target, mode, " / ".join("%.0f" % float(r["calls_per_s"]) for r in rs), c,
        mean(rs, "p50_us"), mean(rs, "p99_us"), c / direct))
print("ratio = calls/s through flint / calls/s direct (framed binary); goal >= 0.80")
PY
