#!/usr/bin/env bash
# check.sh: nginx -t accepts nginx.conf (under a temporary prefix, pid and
# error log), and upstream keep-alive and retries are configured.
set -euo pipefail
conf=$(cd "$(dirname "$0")" && pwd)/nginx.conf
fail=0
bad() { echo "nginx: FAIL: $*" >&2; fail=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/logs"
if ! out=$(nginx -t -q -p "$tmp" -c "$conf" -g "pid $tmp/nginx.pid; error_log $tmp/error.log;" 2>&1); then
	bad "nginx -t: $out"
fi

active=$(grep -vE '^\s*(#|$)' "$conf" | sed -E 's/^\s+//; s/\s+/ /g')
need() { grep -qxE "$1" <<<"$active" || bad "missing: $1"; }
need 'upstream zerosys \{'
need 'keepalive [0-9]+;'
need 'proxy_http_version 1.1;'
need 'proxy_set_header Connection "";'
need 'proxy_pass http://zerosys;'
need 'proxy_next_upstream error timeout( [a-z_0-9]+)* http_503( [a-z_0-9]+)*;'
need 'proxy_next_upstream_tries [2-9];'
n=$(grep -cE '^server [0-9.]+:8080' <<<"$active" || true)
[ "$n" -eq 3 ] || bad "want 3 zerosys servers, found $n"

[ "$fail" = 0 ] || exit 1
echo "nginx: ok (nginx -t clean; upstream keepalive with HTTP/1.1 and empty Connection; next_upstream on error/timeout/503; 3 servers)"
