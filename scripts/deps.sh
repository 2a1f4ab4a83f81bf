#!/bin/sh
# deps.sh -- install every Debian package flint's build, tests and benchmarks need.
# Servers (redis, nginx, haproxy, nats) must not start as system services while
# they install: tests start their own copies on their own ports, so a
# policy-rc.d that refuses every service start is in place during the install.
set -eu

PKGS="build-essential pkg-config clang clang-format libclang-rt-14-dev
libuv1-dev node-llhttp libnghttp2-dev libsqlite3-dev libjansson-dev libyaml-dev
libcurl4-openssl-dev libseccomp-dev libhiredis-dev libnats-dev libcmocka-dev libarchive-dev
python3 python3-pytest python3-requests python3-grpcio python3-grpc-tools
python3-thrift python3-flask gunicorn redis-server nats-server curl wrk
nghttp2-client nginx haproxy iproute2 procps psmisc sqlite3 thrift-compiler
nodejs busybox-static"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing$missing"
rc=/usr/sbin/policy-rc.d
had_rc=0
[ -e "$rc" ] && had_rc=1
if [ $had_rc -eq 0 ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rc" >/dev/null
	$SUDO chmod 755 "$rc"
fi
trap '[ $had_rc -eq 0 ] && $SUDO rm -f "$rc"' EXIT
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
