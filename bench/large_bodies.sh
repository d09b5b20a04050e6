#!/usr/bin/env bash
# Large answers: zerosys copying, zerosys splicing (--splice-min) and nginx
# with sendfile, side by side in one run. For each body size and server it
# prints req/s, the server's CPU-s per 100k answers and the whole machine's
# (both CPUs' busy time from /proc/stat: the client and the softirqs too,
# which is where loopback charges a sendfile's transmission).
#
#   bash bench/large_bodies.sh [sizes...]      (default 65536 262144 1048576)
#
# Server on CPU 1, wrk on CPU 0, 16 connections, a 1 s warm-up and a 4 s run
# each; every server is stopped by its PID. Needs wrk and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(65536 262144 1048576)
CONNS=${CONNS:-16}
SECS=${SECS:-4}
tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx's workers run as another user
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -ldflags=-checklinkname=0 -o "$tmp/zerosys" ./cmd/zerosys

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# measure LABEL PID URL: one line of figures.
measure() {
	local label=$1 pid=$2 url=$3 got
	got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$url")
	if [ "$got" != "200 $size" ]; then
		echo "$label: $url answers $got, want 200 $size" >&2
		return 1
	fi
	taskset -c 0 wrk -t1 -c"$CONNS" -d1s "$url" >/dev/null 2>&1
	local b0 s0 out b1 s1 n
	b0=$(busy); s0=$(ticks "$pid")
	out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" "$url" 2>&1)
	b1=$(busy); s1=$(ticks "$pid")
	n=$(awk '/requests in/{print $1}' <<<"$out")
	python3 -c "n=$n; print(f'| {\"$label\":<28} | {n/$SECS:>9.0f} | {($s1-$s0)/100/n*1e5:>7.2f} | {($b1-$b0)/100/n*1e5:>7.2f} |')"
}

# wait_port PORT: until something listens there (at most 5 s).
wait_port() {
	for _ in $(seq 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on port $1" >&2
	return 1
}

mkdir -p "$tmp/www" "$tmp/nginx-tmp"
echo "| body, server | req/s | server CPU-s/100k | machine CPU-s/100k |"
echo "|---|---:|---:|---:|"
for size in "${SIZES[@]}"; do
	python3 -c "import sys; n=$size; b=bytes(97+i%26 for i in range(n)); sys.stdout.buffer.write(b[:-1]+b'\n')" >"$tmp/www/body"
	cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 10;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; use epoll; }
http {
  access_log off; keepalive_requests 1000000000; sendfile on; etag off;
  types { } default_type text/plain;
  client_body_temp_path $tmp/nginx-tmp; proxy_temp_path $tmp/nginx-tmp; fastcgi_temp_path $tmp/nginx-tmp;
  uwsgi_temp_path $tmp/nginx-tmp; scgi_temp_path $tmp/nginx-tmp;
  server { listen 127.0.0.1:18390; location / { root $tmp/www; try_files /body =404; } }
}
EOF
	nginx -p "$tmp" -c "$tmp/nginx.conf" &
	master=$!
	pids+=("$master")
	wait_port 18390
	worker=$(pgrep -P "$master" | head -1)
	measure "$size nginx sendfile" "$worker" http://127.0.0.1:18390/
	kill "$master"; wait "$master" 2>/dev/null || true

	for splice in 0 65536; do
		taskset -c 1 "$tmp/zerosys" --addr 127.0.0.1:18391 --metrics-addr "" --sqpoll off --shards 1 \
			--body-size "$size" --splice-min "$splice" >"$tmp/zerosys.log" 2>&1 &
		z=$!
		pids+=("$z")
		wait_port 18391
		label="$size zerosys copy"
		[ "$splice" = 0 ] || label="$size zerosys splice"
		measure "$label" "$z" http://127.0.0.1:18391/
		kill "$z"; wait "$z" 2>/dev/null || true
	done
done
