#!/usr/bin/env bash
# lab.sh [zslab flags]: build the lab program (deploy/lab, a module of its
# own, standard library only) and run it as root from the repository root.
# The program makes and removes its own namespaces and processes, also on
# SIGINT/SIGTERM. This wrapper forwards those signals, and should the
# program die without cleaning up (SIGKILL), it kills the processes the
# program recorded that still run inside the lab's namespaces (prefix
# zslab-) and removes those namespaces.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
tmp=$(mktemp -d)
pid=
got=

last_resort() {
	[ -f "$tmp/pids" ] && while read -r p; do
		[ -n "$p" ] && kill -0 "$p" 2>/dev/null || continue
		case $(ip netns identify "$p" 2>/dev/null) in zslab-*) kill -KILL "$p" 2>/dev/null || true ;; esac
	done <"$tmp/pids"
	sleep 0.5
	for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^zslab-/ {print $1}'); do
		[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && { ip netns del "$ns" 2>/dev/null || true; }
	done
}

on_exit() {
	rc=$?
	trap - EXIT INT TERM HUP
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; rc=137; fi
	fi
	# Only after a run of ours that ended by a signal.
	if [ -n "$pid" ] && [ "$rc" -gt 128 ]; then last_resort; fi
	rm -rf "$tmp"
	exit "$rc"
}
trap on_exit EXIT
trap 'got=130' INT
trap 'got=143' TERM
trap 'got=129' HUP

(cd deploy/lab && go build -o "$tmp/zslab" .) || exit 1
[ -z "$got" ] || exit "$got"
"$tmp/zslab" -pidfile "$tmp/pids" "$@" &
pid=$!
forwarded=
rc=0
while :; do
	wait "$pid"
	rc=$?
	if [ -n "$got" ] && [ -z "$forwarded" ]; then
		forwarded=1
		kill -TERM "$pid" 2>/dev/null # the lab cleans up and exits
	fi
	kill -0 "$pid" 2>/dev/null || break
done
[ -n "$got" ] && [ "$rc" -le 128 ] && [ "$rc" -ne 0 ] && rc=$got
exit "$rc"
