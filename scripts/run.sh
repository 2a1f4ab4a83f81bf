#!/bin/sh
# run.sh -- `make run`: flint serve on 127.0.0.1:8080 (gateway) and :8081 (admin API)
# with the examples deployed, data kept in .flint-data/. Ctrl-C stops it cleanly.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
FLINT="$ROOT/bin/flint"
DATA="$ROOT/.flint-data"
GW=127.0.0.1:8080
ADMIN=127.0.0.1:8081

if [ ! -x "$FLINT" ]; then
	echo "run: $FLINT is missing; build it first with make" >&2
	exit 1
fi

# curl exits 7 when nothing accepts the connection; anything else means the port is taken.
for addr in $ADMIN $GW; do
	rc=0
	curl -s -o /dev/null --max-time 2 "http://$addr/healthz" || rc=$?
	if [ "$rc" -ne 7 ]; then
		echo "run: something already listens on $addr (a flint serve still running?); stop it first" >&2
		exit 1
	fi
done

mkdir -p "$DATA"
"$FLINT" serve --data "$DATA" --listen $GW --admin $ADMIN --domain localhost &
pid=$!
# A background job of a script ignores SIGINT, so Ctrl-C reaches only this shell:
# turn it into the SIGTERM that makes the daemon drain and stop its instances.
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP

tries=0
until curl -sf -o /dev/null --max-time 1 "http://$ADMIN/healthz"; do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" || true
		echo "run: flint serve exited while starting (see its messages above)" >&2
		exit 1
	fi
	tries=$((tries + 1))
	if [ $tries -gt 150 ]; then
		echo "run: flint serve did not answer on $ADMIN within 15 seconds" >&2
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" || true
		exit 1
	fi
	sleep 0.1
done

export FLINT_DATA="$DATA" FLINT_ADMIN="$ADMIN"
for ex in hello-c flask-app static; do
	if ! "$FLINT" deploy "examples/$ex"; then
		echo "run: deploying examples/$ex failed; stopping" >&2
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" || true
		exit 1
	fi
done

cat <<MSG

flint is running: gateway http://$GW, admin API http://$ADMIN (token in .flint-data/token).
Try:
  curl http://$GW/function/hello-c/
  curl 'http://$GW/function/flask-app/users/1?q=2'
  curl http://$GW/function/static/
  curl -H 'Host: hello-c.localhost' http://$GW/
  FLINT_DATA=.flint-data bin/flint logs flask-app -f

MSG
"$FLINT" ls || true
echo
echo "Ctrl-C stops flint."

status=0
wait "$pid" || status=$?
# wait returns early when a trapped signal arrives; wait for the daemon itself to end.
while kill -0 "$pid" 2>/dev/null; do
	status=0
	wait "$pid" || status=$?
done
exit $status
