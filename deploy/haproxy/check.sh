#!/usr/bin/env bash
# check.sh: haproxy -c accepts haproxy.cfg, and the settings the deployment
# relies on are in it (readiness checks on the metrics port with an HTTP/1.1
# GET /readyz + Host, fast inter/fall/rise, retries, redispatch, reuse).
set -euo pipefail
cfg=$(cd "$(dirname "$0")" && pwd)/haproxy.cfg
fail=0
bad() { echo "haproxy: FAIL: $*" >&2; fail=1; }

out=$(haproxy -c -f "$cfg" 2>&1) || bad "haproxy -c: $out"
grep -q 'Configuration file is valid' <<<"$out" || bad "haproxy -c did not say valid: $out"
grep -qiE 'warning|alert' <<<"$out" && bad "haproxy -c warned: $out"

active=$(grep -vE '^\s*(#|$)' "$cfg" | sed -E 's/^\s+//; s/\s+/ /g')
need() { grep -qxE "$1" <<<"$active" || bad "missing: $1"; }
need 'option httpchk'
need 'http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host lb'
need 'http-check expect status 200'
need 'retries 3'
need 'option redispatch( 1)?'
need 'http-reuse (safe|aggressive|always)'
need 'default-server .*check port 9090.*'
need 'default-server .*inter 1s.*'
need 'default-server .*fall 2.*'
need 'default-server .*rise 2.*'
n=$(grep -cE '^server zs[0-9]+ [0-9.]+:8080' <<<"$active" || true)
[ "$n" -eq 3 ] || bad "want 3 zerosys servers, found $n"
# A bare httpchk line with a method/URI would send OPTIONS / HTTP/1.0.
grep -qE '^option httpchk .+' <<<"$active" && bad "option httpchk takes no arguments here: use http-check send"

[ "$fail" = 0 ] || exit 1
echo "haproxy: ok (haproxy -c valid; /readyz checks on :9090, inter 1s fall 2 rise 2, retries 3, redispatch, reuse; 3 servers)"
