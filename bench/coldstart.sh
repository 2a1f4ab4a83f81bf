#!/bin/sh
# coldstart.sh -- cold starts, spawn rate, density and a cold burst of examples/hello-c.
#
# Builds examples/hello-c and bench/coldfloor.c, measures the bare floor (fork+exec of
# the same binary, connect-poll, one request), starts a private `flint serve` and runs
# bench/coldstart.py against it: first requests to CS_COLD fresh functions (sandboxed,
# then `sandbox: false`), instances started per second, CS_DENSITY idle instances and
# flint's memory per instance, and CS_BURST concurrent requests on a cold function.
# The sandboxed cold starts are also measured on a second daemon run with --warm-pool 0,
# and, with FLINT_BIN_B set, on a third daemon running that binary instead (to compare two
# builds). The cold starts of every kind, and a floor sample, are taken in turn for each
# function index, so that the load of this shared machine, which drifts over a run, weighs
# on all of them alike. Prints a table and leaves it, flint's log and the samples in /tmp/flint-cold.XXXXXX.
#
# Environment: CS_COLD (default 100), CS_SPAWN (100, 0 skips), CS_DENSITY (1000, 0 skips),
# CS_BURST (200, 0 skips), CS_PY (20 Python template functions, 0 skips), CS_MANY (2000
# idle functions deployed for one more cold-start figure, 0 skips), FLINT_THREADS (2),
# FLINT_BIN (the daemon to measure; bin/flint), FLINT_BIN_B (another build to compare).
# Needs root: sandboxes are built with flint's privileges.
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
PY=/usr/bin/python3

die() {
	echo "coldstart: $*" >&2
	exit 1
}

for v in "${CS_COLD:=100}" "${CS_SPAWN:=100}" "${CS_DENSITY:=1000}" "${CS_BURST:=200}" "${CS_PY:=20}" \
	"${FLINT_THREADS:=2}"; do
	case $v in
	'' | *[!0-9]*) die "CS_COLD, CS_SPAWN, CS_DENSITY, CS_BURST and FLINT_THREADS must be whole numbers (got '$v')." ;;
	esac
done
export CS_COLD CS_SPAWN CS_DENSITY CS_BURST CS_PY
[ "$(id -u)" = 0 ] || die "run as root: sandboxed instances need it."
FLINT_BIN=${FLINT_BIN:-bin/flint}
[ -x "$FLINT_BIN" ] || die "$FLINT_BIN is missing; run make first."
command -v cc >/dev/null 2>&1 || die "cc is not installed; run make deps first."

T=$(mktemp -d /tmp/flint-cold.XXXXXX) || die "cannot create a temporary directory."
chmod 755 "$T"
cp "$FLINT_BIN" "$T/flint" || die "cannot copy $FLINT_BIN to $T."
if [ -n "${FLINT_BIN_B:-}" ]; then
	cp "$FLINT_BIN_B" "$T/flint-b" || die "cannot copy $FLINT_BIN_B to $T."
fi
mkdir -p "$T/hello" || die "cannot create $T/hello."
cc -O2 -o "$T/hello/hello" examples/hello-c/hello.c || die "building examples/hello-c failed."
chmod -R a+rX "$T/hello"
cc -O2 -o "$T/coldfloor" bench/coldfloor.c || die "building bench/coldfloor.c failed."
# A function of the Python template, for the zygote's figure.
FLINT_TEMPLATES=$ROOT/templates bin/flint new pyc -l python --dir "$T" >/dev/null ||
	die "flint new -l python failed."
chmod -R a+rX "$T/pyc"
# 2,000 processes and 4,000 pipes for 1,000 instances.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
ulimit -u unlimited 2>/dev/null

FLINT_PID="" FLINT_PID2="" FLINT_PID3=""
cleanup() {
	trap - EXIT INT TERM
	for p in $FLINT_PID $FLINT_PID2 $FLINT_PID3; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	return 0
}
trap cleanup EXIT
trap 'echo "coldstart: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

set -- $($PY -c '
import socket
ss = [socket.socket() for _ in range(7)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
[ $# -eq 7 ] || die "could not find free loopback ports."
GW=$1 ADMIN=$2 FLOORPORT=$3 GW2=$4 ADMIN2=$5 GW3=$6 ADMIN3=$7
echo "coldstart: results and logs in $T (load average $(cut -d' ' -f1-3 /proc/loadavg))"

# The floor harness works (coldstart.py runs it once per function index).
"$T/coldfloor" 3 "$FLOORPORT" "$T/hello" ./hello >/dev/null 2>"$T/floor.log" ||
	die "the floor harness failed; see $T/floor.log."

FLINT_TEMPLATES=$ROOT/templates "$T/flint" serve --data "$T/data" --listen "127.0.0.1:$GW" --admin "127.0.0.1:$ADMIN" \
	--threads "$FLINT_THREADS" --log-level warn >"$T/flint.log" 2>&1 &
FLINT_PID=$!
# The same without sandboxes built ahead of need, for the side-by-side cold starts. Its
# instance ports are its own, so neither daemon can mistake the other's for one of its own.
FLINT_TEMPLATES=$ROOT/templates "$T/flint" serve --data "$T/data2" --listen "127.0.0.1:$GW2" --admin "127.0.0.1:$ADMIN2" \
	--threads "$FLINT_THREADS" --log-level warn --warm-pool 0 --ports 30000-30999 \
	>"$T/flint2.log" 2>&1 &
FLINT_PID2=$!
if [ -n "${FLINT_BIN_B:-}" ]; then
	FLINT_TEMPLATES=$ROOT/templates "$T/flint-b" serve --data "$T/data3" --listen "127.0.0.1:$GW3" --admin "127.0.0.1:$ADMIN3" \
		--threads "$FLINT_THREADS" --log-level warn --ports 31000-31999 \
		>"$T/flint3.log" 2>&1 &
	FLINT_PID3=$!
else
	GW3=$GW # the loop below then waits for nothing more
fi
n=0
until curl -sf "http://127.0.0.1:$GW/healthz" >/dev/null 2>&1 &&
	curl -sf "http://127.0.0.1:$GW2/healthz" >/dev/null 2>&1 &&
	curl -sf "http://127.0.0.1:$GW3/healthz" >/dev/null 2>&1; do
	n=$((n + 1))
	[ $n -lt 150 ] || die "flint serve did not start within 15 s; see $T/flint.log and $T/flint2.log."
	sleep 0.1
done

if [ -n "$FLINT_PID3" ]; then
	export CS_GW3=127.0.0.1:$GW3 CS_ADMIN3=127.0.0.1:$ADMIN3 CS_TOKEN3="$(cat "$T/data3/token")" \
		CS_FLINT_PID3=$FLINT_PID3 CS_B_NAME="$FLINT_BIN_B"
fi
CS_GW2=127.0.0.1:$GW2 CS_ADMIN2=127.0.0.1:$ADMIN2 CS_TOKEN2=$(cat "$T/data2/token") \
	CS_FLINT_PID2=$FLINT_PID2 CS_FLOOR_CMD="$T/coldfloor 1 $FLOORPORT $T/hello ./hello" \
	CS_GW=127.0.0.1:$GW CS_ADMIN=127.0.0.1:$ADMIN CS_TOKEN=$(cat "$T/data/token") \
	CS_FLINT_PID=$FLINT_PID CS_DIR=$T/hello CS_OUT=$T/results.md \
	CS_PY_DIR=$T/pyc \
	$PY "$ROOT/bench/coldstart.py" || die "the measurements failed; see $T/flint.log."
