# lib.sh -- what the benchmark scripts share: messages, stopping what they started,
# waiting for readiness, free loopback ports and a private `flint serve`.
#
# Sourced, not run, by bench/run.sh, h2.sh, thrift.sh and async.sh from the repository
# root, after they set BENCH_NAME (the prefix of their messages). FLINT_BIN names the
# flint binary to measure (default bin/flint), so a saved build can be compared with
# the current one.

# Prints a message on stderr and exits 1: die MESSAGE...
die() {
	echo "$BENCH_NAME: $*" >&2
	exit 1
}

# Stops a process this script started, by pid, politely first: stop_pid PID (may be "").
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# Waits until CMD succeeds, polling every 100 ms for at most SECONDS: until_ok SECONDS CMD...
until_ok() {
	n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# Prints N free loopback ports on one line (bound at once, so all differ): free_ports N
free_ports() {
	/usr/bin/python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# Copies the flint binary (FLINT_BIN, default bin/flint) to DIR/flint and sets FLINT to
# it: a rebuild during the run cannot change what is measured, and perf can still read
# its symbols afterwards. copy_flint DIR
copy_flint() {
	_bin=${FLINT_BIN:-bin/flint}
	[ -x "$_bin" ] || die "$_bin is missing; run make first."
	cp "$_bin" "$1/flint" || die "cannot copy $_bin to $1."
	FLINT=$1/flint
}

# Starts $FLINT serve with its data in DIR/data, the gateway on 127.0.0.1:GW and the
# admin API on 127.0.0.1:ADMIN (THREADS gateway threads; "" for flint's default), its
# log in DIR/flint.log; sets FLINT_PID and FLINT_TOKEN and returns once both ports
# answer /healthz. start_flint DIR GW ADMIN THREADS
start_flint() {
	if [ -n "$4" ]; then
		set -- "$1" "$2" "$3" --threads "$4"
	else
		set -- "$1" "$2" "$3"
	fi
	_dir=$1 _gw=$2 _admin=$3
	shift 3
	"$FLINT" serve --data "$_dir/data" --listen "127.0.0.1:$_gw" \
		--admin "127.0.0.1:$_admin" "$@" --log-level warn >"$_dir/flint.log" 2>&1 &
	FLINT_PID=$!
	until_ok 15 curl -sf "http://127.0.0.1:$_gw/healthz" &&
		until_ok 15 curl -sf "http://127.0.0.1:$_admin/healthz" ||
		die "flint serve did not start within 15 s; see $_dir/flint.log."
	FLINT_TOKEN=$(cat "$_dir/data/token") || die "flint serve wrote no token in $_dir/data."
	export FLINT_TOKEN FLINT_ADMIN=127.0.0.1:$_admin FLINT_DATA=$_dir/data
}

# Prints the port of a ready instance of function NAME (via `flint describe`), or fails:
# instance_port NAME
instance_port() {
	"$FLINT" describe "$1" -o json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
ready = [i for i in d.get("instances_detail", []) if i.get("state") == "ready"]
print(ready[0]["port"]) if ready else sys.exit(1)'
}

# Prints the start of an nginx.conf for a private nginx with its files under DIR (pid,
# error log, temporary paths), open inside its http block: the caller writes the rest,
# upstreams and servers, and the closing brace. nginx_conf_head DIR
nginx_conf_head() {
	mkdir -p "$1/nginx"
	cat <<EOF
worker_processes 2;
pid $1/nginx.pid;
error_log $1/nginx-error.log warn;
events { worker_connections 20000; }
http {
	access_log off;
	client_body_temp_path $1/nginx/body;
	proxy_temp_path $1/nginx/proxy;
	fastcgi_temp_path $1/nginx/fastcgi;
	uwsgi_temp_path $1/nginx/uwsgi;
	scgi_temp_path $1/nginx/scgi;
	# Also the HTTP/2 limit of requests per client connection since nginx 1.19.7: its
	# default of 1,000 would close connections during a run, which flint never does.
	keepalive_requests 1000000;
EOF
}
