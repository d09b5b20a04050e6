#!/usr/bin/env bash
# Entry point of `make bench` (quick) and `make bench-full` (full):
#   bash bench/bench.sh quick|full [bench.py flags, e.g. --runs 5 --duration 10]
# Installs the tools it needs (Debian, as root), raises the open-file limit
# for the 10,000-connection sweep, builds the Go peers (their own module,
# bench/peers) and hands over to bench.py, which starts and stops every
# server itself and cleans up on exit, Ctrl-C or SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
shift || true

# command -> Debian package
tools=(wrk:wrk nginx:nginx-light h2o:h2o h2load:nghttp2-client strace:strace
  gnuplot:gnuplot-nox taskset:util-linux python3:python3)
missing=()
for t in "${tools[@]}"; do
  command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "bench: missing ${missing[*]}; install them (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian starts packaged daemons on install where it can; the suite runs
  # its own instances on their own ports and leaves any system service be.
fi

# 10,000 connections need 10,000+ descriptors on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "bench: building the Go peers (bench/peers)"
(cd bench/peers && go build -o ../bin/ ./...)

exec python3 bench/bench.py --mode "$mode" "$@"
