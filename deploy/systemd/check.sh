#!/usr/bin/env bash
# check.sh BIN SYSCALLS: validate zerosys.service and zerosys.default.
#  1. `systemd-analyze verify` accepts the unit (ExecStart pointed at a
#     temporary copy of BIN, since /usr/local/bin/zerosys need not exist here);
#  2. the hardening the deployment relies on is there (DynamicUser,
#     SystemCallFilter=@system-service without ~@resources, KillSignal,
#     limits, EnvironmentFile, CAP_NET_BIND_SERVICE only as a comment);
#  3. TimeoutStopSec is longer than drain delay + drain timeout, for the
#     unit's defaults and for the values in zerosys.default;
#  4. every system call in SYSCALLS (what zerosys makes, from strace) is in
#     the expanded @system-service set of this systemd, but bpf, which only
#     --steer load needs (the unit says how to allow it);
#  5. every ZEROSYS_* variable in the unit and the defaults file is the env
#     twin of a flag BIN --help lists.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: check.sh BIN SYSCALLS}
syscalls=${2:?usage: check.sh BIN SYSCALLS}
unit=$here/zerosys.service
defaults=$here/zerosys.default
fail=0
bad() { echo "systemd: FAIL: $*" >&2; fail=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# 1. systemd-analyze verify.
cp "$bin" "$tmp/zerosys"
sed "s|^ExecStart=/usr/local/bin/zerosys|ExecStart=$tmp/zerosys|" "$unit" >"$tmp/zerosys.service"
grep -q "^ExecStart=$tmp/zerosys" "$tmp/zerosys.service" || bad "ExecStart is not /usr/local/bin/zerosys"
if ! out=$(systemd-analyze verify --man=no "$tmp/zerosys.service" 2>&1); then
	bad "systemd-analyze verify failed: $out"
elif [ -n "$out" ]; then
	bad "systemd-analyze verify complained: $out"
fi

# 2. Required settings (active lines only, comments stripped).
active=$(grep -vE '^\s*(#|;|$)' "$unit")
need() { grep -qxE "$1" <<<"$active" || bad "missing: $1"; }
need 'SystemCallFilter=@system-service'
need 'DynamicUser=yes'
need 'KillSignal=SIGTERM'
need 'LimitNOFILE=[0-9]+|LimitNOFILE=infinity'
need 'LimitMEMLOCK=[0-9]+[KMG]?|LimitMEMLOCK=infinity'
need 'EnvironmentFile=-/etc/default/zerosys'
need 'NoNewPrivileges=yes'
need 'CapabilityBoundingSet='
need 'TimeoutStopSec=[0-9]+s?'
grep -qE '^SystemCallFilter=.*~.*@resources' <<<"$active" && bad "~@resources blocks sched_setaffinity"
grep -qE '^AmbientCapabilities=.+' <<<"$active" && bad "AmbientCapabilities must stay a commented option"
grep -qE '^#\s*AmbientCapabilities=CAP_NET_BIND_SERVICE' "$unit" || bad "the commented CAP_NET_BIND_SERVICE option is missing"
grep -qE '^#\s*CPUAffinity=' "$unit" || bad "CPUAffinity= guidance is missing"

# 3. TimeoutStopSec > drain delay + drain timeout.
secs() { # 5s, 1m30s, 500ms, 10 -> seconds (rounded up)
	local v=$1 total=0 n u
	[[ $v =~ ^[0-9]+$ ]] && { echo "$v"; return; }
	while [[ $v =~ ^([0-9]+)(ms|s|m|h)(.*)$ ]]; do
		n=${BASH_REMATCH[1]} u=${BASH_REMATCH[2]} v=${BASH_REMATCH[3]}
		case $u in ms) total=$((total + (n + 999) / 1000)) ;; s) total=$((total + n)) ;;
		m) total=$((total + n * 60)) ;; h) total=$((total + n * 3600)) ;; esac
	done
	[ -z "$v" ] || { echo "bad duration: $1" >&2; echo 999999; return; }
	echo "$total"
}
envval() { # last assignment of $1 in the unit's Environment= lines, then the defaults file
	local v
	v=$(sed -nE "s/^Environment=\"?$1=([^\" ]*).*/\1/p" "$unit" | tail -1)
	local f
	f=$(sed -nE "s/^$1=([^ #]*).*/\1/p" "$defaults" | tail -1)
	[ -n "$f" ] && v=$f
	echo "${v:-$2}"
}
stop=$(secs "$(sed -nE 's/^TimeoutStopSec=(.*)/\1/p' "$unit" | tail -1)")
delay=$(secs "$(envval ZEROSYS_DRAIN_DELAY 0s)")
timeout=$(secs "$(envval ZEROSYS_DRAIN_TIMEOUT 10s)")
if [ "$stop" -le $((delay + timeout)) ]; then
	bad "TimeoutStopSec=${stop}s is not longer than drain delay ${delay}s + drain timeout ${timeout}s"
fi

# 4. zerosys's system calls against the expanded @system-service.
systemd-analyze syscall-filter --no-pager 2>/dev/null | awk '
	/^@/ { g = $1; next }
	/^ +#/ { next }
	/^ +[@a-z_0-9]/ { members[g] = members[g] " " $1 }
	function expand(name,   n, i, parts) {
		if (seen[name]++) return
		if (name !~ /^@/) { print name; return }
		n = split(members[name], parts, " ")
		for (i = 1; i <= n; i++) expand(parts[i])
	}
	END { expand("@system-service") }' | sort -u >"$tmp/allowed"
[ "$(wc -l <"$tmp/allowed")" -gt 100 ] || bad "could not expand @system-service"
grep -qx io_uring_setup "$tmp/allowed" || bad "@system-service lacks io_uring_setup on this systemd"
grep -qx sched_setaffinity "$tmp/allowed" || bad "@system-service lacks sched_setaffinity on this systemd"
# bpf(2) only puts --steer load in force; refused (EPERM) zerosys logs one
# line and uses the kernel's hash. The unit says how to allow it.
grep -qE '^#\s*SystemCallFilter=bpf' "$unit" || bad "the commented SystemCallFilter=bpf option for --steer is missing"
missing=$(grep -vxF -f "$tmp/allowed" "$syscalls" | grep -vx bpf || true)
[ -z "$missing" ] || bad "zerosys makes system calls outside @system-service: $(echo $missing)"

# 5. Every ZEROSYS_* variable is a flag's twin.
"$bin" --help 2>&1 | sed -nE 's/^ *env (ZEROSYS_[A-Z0-9_]+).*/\1/p' | sort -u >"$tmp/twins"
[ -s "$tmp/twins" ] || bad "$bin --help lists no env twins"
for v in $(grep -ohE 'ZEROSYS_[A-Z0-9_]+' "$unit" "$defaults" | sort -u); do
	grep -qx "$v" "$tmp/twins" || bad "$v is no flag's env twin"
done

[ "$fail" = 0 ] || exit 1
echo "systemd: ok (verify clean; @system-service covers $(wc -l <"$syscalls") zerosys syscalls; TimeoutStopSec ${stop}s > drain ${delay}s+${timeout}s)"
