#!/usr/bin/env bash
# tcp_share.sh: how much of nginx's and zerosys's CPU is the kernel's TCP/IP
# work, keep-alive and churn (bench/findings.md, section 1c). Each server runs
# on CPU 1 alone, wrk (64 connections) on CPU 0, perf records CPU 1 with call
# stacks for 4 s of a 6 s run, and tcp_share.py classes the samples.
#
#   bash bench/tcp_share.sh        (as root: perf samples the kernel)
set -euo pipefail
cd "$(dirname "$0")/.."
for t in perf wrk nginx python3; do
    command -v "$t" >/dev/null || { echo "tcp_share: needs $t" >&2; exit 1; }
done
make -s build
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
mkdir -p "$tmp/nginx-tmp"
cat > "$tmp/nginx.conf" <<CONF
worker_processes 1;
worker_cpu_affinity 10;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 20000; use epoll; }
http {
  access_log off;
  keepalive_requests 1000000000;
  etag off;
  types { }
  default_type text/plain;
  client_body_temp_path $tmp/nginx-tmp;
  proxy_temp_path $tmp/nginx-tmp;
  fastcgi_temp_path $tmp/nginx-tmp;
  uwsgi_temp_path $tmp/nginx-tmp;
  scgi_temp_path $tmp/nginx-tmp;
  server {
    listen 127.0.0.1:18181 backlog=4096;
    location / { return 200 "Have a nice day!"; }
  }
}
CONF

# profile NAME PORT [HEADER]: wrk against PORT while perf records CPU 1.
profile() {
    local args=(-t1 -c64 -d6s)
    [ -n "${3:-}" ] && args+=(-H "$3")
    taskset -c 0 wrk "${args[@]}" "http://127.0.0.1:$2/" > "$tmp/$1.wrk" &
    local w=$!
    sleep 1
    perf record -q -g -C 1 -o "$tmp/$1.data" -- sleep 4 2>/dev/null
    wait "$w"
    echo "$1: $(grep Requests/sec "$tmp/$1.wrk")"
    python3 bench/tcp_share.py "$tmp/$1.data"
}

taskset -c 1 nginx -p "$tmp" -c "$tmp/nginx.conf" & pids+=($!)
sleep 1
profile nginx-keepalive 18181
profile nginx-churn 18181 "Connection: close"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true

taskset -c 1 ./bin/zerosys --sqpoll off --shards 1 --addr 127.0.0.1:18182 --metrics-addr "" --served-by=false > "$tmp/zerosys.log" 2>&1 & pids+=($!)
sleep 1
profile zerosys-keepalive 18182
profile zerosys-churn 18182 "Connection: close"
