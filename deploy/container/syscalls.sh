#!/usr/bin/env bash
# syscalls.sh BIN OUT: list the system calls zerosys makes, one name a line,
# sorted, into OUT. It runs BIN under `strace -f -c` through a whole life:
# start-up (preflight, rings, listeners, pinning), a few requests on the
# main port and the metrics port, a graceful drain on SIGTERM; then
# `BIN check`. The list is the test fixture the seccomp profile is checked
# against (testdata/zerosys-syscalls.txt); `make test-deploy` also checks a
# fresh list from the binary just built.
#
# Only loopback is used; zerosys runs with --sqpoll off (no spinning).
set -euo pipefail

bin=${1:?usage: syscalls.sh BIN OUT}
out=${2:?usage: syscalls.sh BIN OUT}
command -v strace >/dev/null || { echo "syscalls.sh: strace is missing" >&2; exit 1; }
command -v curl >/dev/null || { echo "syscalls.sh: curl is missing" >&2; exit 1; }

tmp=$(mktemp -d)
strace_pid=
cleanup() {
	if [ -n "$strace_pid" ] && kill -0 "$strace_pid" 2>/dev/null; then
		# strace's only child is the zerosys it started.
		child=$(pgrep -P "$strace_pid" || true)
		[ -n "$child" ] && kill -KILL "$child" 2>/dev/null || true
		kill -KILL "$strace_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Free ports from the kernel: bind port 0 and read what it chose.
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)); }
port=$(freeport)
mport=$(freeport)
while [ "$mport" = "$port" ]; do mport=$(freeport); done

strace -f -qq -c -o "$tmp/serve.txt" "$bin" --sqpoll off --shards 1 \
	--addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" --drain-timeout 2s \
	2>"$tmp/stderr" &
strace_pid=$!

ready=
for _ in $(seq 1 100); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$mport/readyz" 2>/dev/null; then ready=1; break; fi
	kill -0 "$strace_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$ready" ]; then
	echo "syscalls.sh: zerosys did not become ready:" >&2
	cat "$tmp/stderr" >&2
	exit 1
fi
for _ in 1 2 3; do
	curl -fsS -o /dev/null "http://127.0.0.1:$port/"
	curl -fsS -o /dev/null -X POST --data 'hello' "http://127.0.0.1:$port/post"
done
curl -fsS -o /dev/null "http://127.0.0.1:$mport/metrics"
curl -fsS -o /dev/null "http://127.0.0.1:$mport/healthz"
# A keep-alive connection that stays open across the drain.
curl -fsS -o /dev/null -o /dev/null "http://127.0.0.1:$port/a" "http://127.0.0.1:$port/b"

child=$(pgrep -P "$strace_pid")
kill -TERM "$child"
for _ in $(seq 1 100); do kill -0 "$strace_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$strace_pid" 2>/dev/null; then
	echo "syscalls.sh: zerosys did not exit within 10 s of SIGTERM" >&2
	exit 1
fi
wait "$strace_pid" || { echo "syscalls.sh: zerosys exited non-zero:" >&2; cat "$tmp/stderr" >&2; exit 1; }
strace_pid=

strace -f -qq -c -o "$tmp/check.txt" "$bin" check --sqpoll off --shards 1 --addr "127.0.0.1:$port" >/dev/null

# strace -c: rows between the dashed lines, the last column is the name.
awk 'FNR==1 {n=0} /^-+/ {n++; next} n==1 && NF>=5 {print $NF}' "$tmp/serve.txt" "$tmp/check.txt" | sort -u >"$tmp/list"
[ -s "$tmp/list" ] || { echo "syscalls.sh: strace listed no system call" >&2; exit 1; }
mv "$tmp/list" "$out"
