#!/usr/bin/env python3
"""zerosys benchmark suite: runs every server of SERVERS through every
profile of PROFILES with the same CPU budget, writes raw results, plots and
BENCHMARKS.md.

Usage (from the repository root; `make bench` / `make bench-full` do this):
    python3 bench/bench.py --mode quick|full [--runs N] [--duration S]
    python3 bench/bench.py --render            # BENCHMARKS.md from saved results

Placement (documented in BENCHMARKS.md): with N CPUs, the server gets the
upper half (k = N // 2 CPUs; CPU 1 on a 2-CPU machine) and the load
generator the lower half (CPU 0). Every server is pinned with taskset to its
CPUs and sized to k (nginx workers, h2o threads, GOMAXPROCS, zerosys shards).
The one exception is zerosys SQPOLL spin, which needs a CPU for each shard
and one for its poller: shards on the load CPUs, pollers on the server CPUs.
It uses 2k CPUs and shares the load generator's; the tables say so.

Only standard-library Python; tools: wrk, h2load, strace, gnuplot, taskset.
"""

import argparse
import csv
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
RESULTS = os.path.join(BENCH, "results")
ZEROSYS = os.path.join(ROOT, "bin", "zerosys")
PEERBIN = os.path.join(BENCH, "bin")
WRK_LUA = os.path.join(BENCH, "wrk", "report.lua")
IDLE_CLIENT = os.path.join(BENCH, "idle_client.py")
DEFAULT_BODY = b"Have a nice day!"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------
# CPU layout


def cpu_layout():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("bench: needs at least 2 CPUs (one for the server, one for the load generator)")
    k = len(cpus) // 2
    return cpus[len(cpus) - k:], cpus[:len(cpus) - k]


SERVER_CPUS, LOAD_CPUS = cpu_layout()
ALL_CPUS = sorted(LOAD_CPUS + SERVER_CPUS)
K = len(SERVER_CPUS)
IDLE_CONNS = 15000


def cpulist(cpus):
    return ",".join(str(c) for c in cpus)


def nginx_mask(cpu):
    return "1" + "0" * cpu


# --------------------------------------------------------------------------
# Servers. One line per server; zerosys variants list the flags they need,
# and a variant whose flags `zerosys --help` does not show is skipped.
# cmd(port, body_size, tmp) -> argv (without taskset); "cpus" is the CPU set
# the whole process is pinned to; "budget" is how many CPUs it may use.

def zerosys_cmd(*flags):
    def cmd(port, body, tmp, metrics_port):
        argv = [ZEROSYS, "--addr", f"127.0.0.1:{port}", "--metrics-addr", f"127.0.0.1:{metrics_port}",
                "--max-conns", "16384", "--drain-timeout", "1s", "--log-format", "text"]
        if body:
            argv += ["--body-size", str(body)]
        if zerosys_has("--served-by"):
            argv.append("--served-by=false")  # the same bytes as the peers send
        return argv + list(flags)
    return cmd


_ZEROSYS_HELP = None


def zerosys_has(flag):
    """Whether this zerosys binary knows flag (older trees are benchmarked too)."""
    global _ZEROSYS_HELP
    if _ZEROSYS_HELP is None:
        _ZEROSYS_HELP = zerosys_flags()
    return flag in _ZEROSYS_HELP


def peer_cmd(name):
    def cmd(port, body, tmp, metrics_port):
        return [os.path.join(PEERBIN, name), "-addr", f"127.0.0.1:{port}", "-body-size", str(body)]
    return cmd


def nginx_h2_cmd(port, body, tmp, metrics_port):
    """nginx speaking HTTP/2 over cleartext with prior knowledge on its port."""
    return nginx_cmd(port, body, tmp, metrics_port, h2=True)


def nginx_cmd(port, body, tmp, metrics_port, h2=False):
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    affinity = " ".join(nginx_mask(c) for c in SERVER_CPUS)
    if body:
        loc = f"root {tmp}/www; try_files /body-{body} =404;"
    else:
        loc = f'return 200 "{DEFAULT_BODY.decode()}";'
    with open(conf, "w") as f:
        f.write(f"""worker_processes {K};
worker_cpu_affinity {affinity};
worker_rlimit_nofile 200000;
daemon off;
pid {tmp}/nginx-{port}.pid;
error_log {tmp}/nginx-{port}-error.log warn;
events {{ worker_connections 20000; use epoll; }}
http {{
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 75s;
  sendfile on;
  etag off;
  types {{ }}
  default_type text/plain;
  client_body_temp_path {tmp}/nginx-tmp;
  proxy_temp_path {tmp}/nginx-tmp;
  fastcgi_temp_path {tmp}/nginx-tmp;
  uwsgi_temp_path {tmp}/nginx-tmp;
  scgi_temp_path {tmp}/nginx-tmp;
  server {{
    listen 127.0.0.1:{port} backlog=4096{" http2" if h2 else ""};
    location / {{ {loc} }}
  }}
}}
""")
    return ["nginx", "-p", tmp, "-c", conf]


def h2o_cmd(port, body, tmp, metrics_port):
    conf = os.path.join(tmp, f"h2o-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"""listen:
  host: 127.0.0.1
  port: {port}
num-threads: {K}
max-connections: 20000
user: root
pid-file: {tmp}/h2o-{port}.pid
error-log: {tmp}/h2o-{port}-error.log
file.etag: OFF
file.mime.setdefaulttype: text/plain
hosts:
  default:
    paths:
      /:
        file.file: {tmp}/www/body-{body}
""")
    return ["h2o", "-c", conf]


SERVERS = [
    # name, label, cmd, pinned CPUs, CPU budget, needs (zerosys flags), note, stop signal, env
    dict(name="nginx", label="nginx", cmd=nginx_cmd, h2_cmd=nginx_h2_cmd, h2c=True, cpus=SERVER_CPUS, budget=K,
         note=f"{K} worker(s), return 200 / static file", sig=signal.SIGTERM, strace_quick=True),
    dict(name="h2o", label="h2o", cmd=h2o_cmd, h2c=True, cpus=SERVER_CPUS, budget=K,
         note=f"{K} thread(s), file.file", sig=signal.SIGTERM),
    dict(name="gnet", label="gnet v2", cmd=peer_cmd("gnet"), cpus=SERVER_CPUS, budget=K,
         note=f"GOMAXPROCS={K}", sig=signal.SIGTERM, env={"GOMAXPROCS": str(K)}),
    dict(name="fasthttp", label="fasthttp", cmd=peer_cmd("fasthttp"), cpus=SERVER_CPUS, budget=K,
         note=f"GOMAXPROCS={K}", sig=signal.SIGTERM, env={"GOMAXPROCS": str(K)}),
    dict(name="nethttp", label="Go net/http", cmd=peer_cmd("nethttp"), cpus=SERVER_CPUS, budget=K,
         note=f"GOMAXPROCS={K}", sig=signal.SIGTERM, env={"GOMAXPROCS": str(K)}),
    dict(name="zerosys-off", label="zerosys sqpoll off", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll"], h2c=True,
         note="no kernel poller; waits when idle", sig=signal.SIGINT, strace_quick=True),
    dict(name="zerosys-slot", label="zerosys sqpoll off, recv slot", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--recv", "slot", "--cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "pool: one recv"],
         note="a recv per read into a buffer per connection slot", sig=signal.SIGINT),
    dict(name="zerosys-pool", label="zerosys sqpoll off, recv pool", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--recv", "pool", "--cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "--recv"],
         note="a single-shot recv per read, its buffer from the shared ring", sig=signal.SIGINT),
    dict(name="zerosys-auto", label="zerosys sqpoll off, recv auto", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--recv", "auto", "--cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "auto: pool"],
         note="single-shot for a connection's first read, multishot after", sig=signal.SIGINT),
    dict(name="zerosys-multishot", label="zerosys sqpoll off, recv multishot", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--recv", "multishot", "--cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "--recv"],
         note="one multishot recv per connection into a shared buffer ring", sig=signal.SIGINT),
    dict(name="zerosys-mix", label="zerosys sqpoll off, status and delay mixes", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--cpus", cpulist(SERVER_CPUS),
                         "--status", "200,202:5", "--delay", "0:90,1ms:10"),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "--delay"], mix=True,
         note="5% 202, 10% held back 1 ms: the cost of behaviours", sig=signal.SIGINT),
    dict(name="zerosys-adaptive", label="zerosys SQPOLL adaptive", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "on", "--idle", "adaptive", "--cpus", cpulist(SERVER_CPUS),
                         "--poller-cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "--idle"],
         note="shard and its poller share the server CPU", sig=signal.SIGINT, strace_quick=True),
    dict(name="zerosys-adaptive-50us", label="zerosys SQPOLL adaptive, spin-window 50us", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "on", "--idle", "adaptive", "--spin-window", "50us",
                         "--cpus", cpulist(SERVER_CPUS), "--poller-cpus", cpulist(SERVER_CPUS)),
         cpus=SERVER_CPUS, budget=K, needs=["--sqpoll", "--idle", "--spin-window"], full_only=True,
         note="as above, busy-polling 50us instead of the default before blocking", sig=signal.SIGINT),
    dict(name="zerosys-spin", label="zerosys SQPOLL spin (2 CPUs)", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "on", "--idle", "spin", "--cpus", cpulist(LOAD_CPUS[:K]),
                         "--poller-cpus", cpulist(SERVER_CPUS)),
         cpus=sorted(set(LOAD_CPUS[:K]) | set(SERVER_CPUS)), budget=2 * K, needs=["--sqpoll", "--idle"],
         note=f"USES {2 * K} CPUs: shard on CPU {cpulist(LOAD_CPUS[:K])} (shared with the load generator), "
              f"poller on CPU {cpulist(SERVER_CPUS)}", sig=signal.SIGINT, strace_quick=True),
] + [
    # Shards sharing a few connections (the steering profile only): every
    # CPU, the load generator's too, so 1 shard and N shards get the same.
    dict(name=f"zerosys-{n}shard-{steer}", label=f"zerosys sqpoll off, {n} shard(s), --steer {steer}", zerosys=True,
         cmd=zerosys_cmd("--sqpoll", "off", "--shards", str(n), "--cpus", cpulist(ALL_CPUS), "--steer", steer),
         cpus=ALL_CPUS, budget=len(ALL_CPUS), needs=["--sqpoll", "--steer"], steering=True,
         note=f"{n} shard(s) over CPUs {cpulist(ALL_CPUS)}, shared with the load generator", sig=signal.SIGINT)
    for n, steer in ((1, "load"), (len(ALL_CPUS), "load"), (len(ALL_CPUS), "cpu"), (len(ALL_CPUS), "hash"))
]

# --------------------------------------------------------------------------
# Profiles. tool: wrk or h2load. Quick mode runs the ones marked quick.

PROFILES = [
    dict(name="keepalive-64", title="Keep-alive, 64 connections", tool="wrk", conns=64, quick=True, strace=True),
    dict(name="keepalive-256", title="Keep-alive, 256 connections", tool="wrk", conns=256, strace=False),
    dict(name="pipelined-16", title="Pipelined x16 (wrk), 64 connections", tool="wrk", conns=64, pipeline=16,
         quick=True, strace=True),
    dict(name="pipelined-16-h2load", title="Pipelined x16 (h2load --h1 -m 16), 64 connections", tool="h2load",
         conns=64, pipeline=16, strace=False),
    dict(name="churn", title="Churn: Connection: close, 64 connections", tool="wrk", conns=64, close=True,
         quick=True, strace=True),
    dict(name="h2c", title="HTTP/2 over cleartext, prior knowledge (h2load -c 16 -m 32)", tool="h2load", h2=True,
         conns=16, streams=32, quick=True, strace=False),
    # gRPC: zerosys alone (nginx and h2o proxy gRPC; they do not answer it).
    dict(name="grpc", title="gRPC unary calls over h2c (h2load -c 16 -m 32, an empty message each; zerosys alone)",
         tool="h2load", h2=True, grpc=True, conns=16, streams=32, quick=True, strace=False),
    dict(name=f"idle-{IDLE_CONNS}", title=f"Memory: {IDLE_CONNS:,} idle keep-alive connections", tool="idle",
         conns=IDLE_CONNS, quick=True, runs=1),
    dict(name="shards-4", title="Shards sharing 4 keep-alive connections, pipelined x16 (every CPU, load generator included)",
         tool="wrk", conns=4, pipeline=16, quick=True, steering=True, load_cpus=ALL_CPUS),
] + [
    dict(name=f"sweep-{c}", title=f"Connection sweep: keep-alive, {c} connections", tool="wrk", conns=c,
         group="sweep", strace=False)
    for c in (10, 100, 1000, 10000)
] + [
    dict(name=f"body-{label}", title=f"Body {label}, keep-alive, 64 connections", tool="wrk", conns=64, body=size,
         group="body", strace=False)
    for label, size in (("4KiB", 4096), ("64KiB", 65536), ("1MiB", 1 << 20))
]

# --------------------------------------------------------------------------
# /proc helpers


def proc_tree(pid):
    """pid and all its descendants (nginx master + workers)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def stat_ticks(path):
    try:
        with open(path) as f:
            s = f.read()
    except OSError:
        return 0
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def cpu_seconds(pids):
    return sum(stat_ticks(f"/proc/{p}/stat") for p in pids) / CLK_TCK


def task_seconds(pids):
    """Per-thread view: sum over /proc/PID/task/*/stat, and the SQPOLL pollers alone."""
    total, pollers = 0, 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            ticks = stat_ticks(f"/proc/{p}/task/{t}/stat")
            total += ticks
            try:
                with open(f"/proc/{p}/task/{t}/comm") as f:
                    if f.read().startswith("iou-sqp"):
                        pollers += ticks
            except OSError:
                pass
    return total / CLK_TCK, pollers / CLK_TCK


def memory_kb(pids):
    rss = hwm = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss, hwm


def machine_busy_seconds():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / CLK_TCK


def cpus_idle_seconds(cpus):
    """Idle time of the given CPUs, iowait included (a shard waiting in
    io_uring_enter counts as iowait). These two columns of /proc/stat are
    exact (the tickless idle's own clock); the busy ones are sampled at the
    tick and miss much of a CPU that goes idle between short bursts, so busy
    time is the wall clock less these."""
    want = {f"cpu{c}" for c in cpus}
    idle = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *v = line.split()
            if name in want:
                idle += int(v[3]) + int(v[4])
    return idle / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# --------------------------------------------------------------------------
# servers: start, check, stop


class Server:
    def __init__(self, sdef, port, body, tmp, h2=False):
        self.sdef, self.port, self.body, self.tmp, self.h2 = sdef, port, body, tmp, h2
        self.metrics_port = port + 1
        cmd = sdef.get("h2_cmd", sdef["cmd"]) if h2 else sdef["cmd"]
        argv = cmd(port, body, tmp, self.metrics_port)
        self.argv = ["taskset", "-c", cpulist(sdef["cpus"])] + argv
        self.cmdline = shlex.join(self.argv)
        env = dict(os.environ)
        env.update(sdef.get("env", {}))
        self.envdesc = " ".join(f"{k}={v}" for k, v in sdef.get("env", {}).items())
        self.log = open(os.path.join(tmp, f"{sdef['name']}-{port}.log"), "w+")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.pids = [self.proc.pid]

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.sdef['name']} exited: {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{self.sdef['name']} did not listen on {self.port}")
        # the answer must be the same bytes everyone serves
        want = DEFAULT_BODY if not self.body else body_bytes(self.body)
        if self.h2:
            out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", f"http://127.0.0.1:{self.port}/"],
                                 capture_output=True, timeout=5)
            head, _, got = out.stdout.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/2 200") or got != want:
                raise RuntimeError(f"{self.sdef['name']}: HTTP/2 answer {head[:40]!r}, body {len(got)} bytes (want {len(want)})")
            self.headers = dict(l.split(": ", 1) for l in head.decode().split("\r\n")[1:] if ": " in l)
            time.sleep(0.2)
            self.pids = proc_tree(self.proc.pid)
            return
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5) as r:
            got = r.read()
            # A server with a status mix may draw another 2xx (wrk counts
            # only non-2xx/3xx as errors).
            if not 200 <= r.status < 300 or r.status != 200 and not self.sdef.get("mix") or got != want:
                raise RuntimeError(f"{self.sdef['name']}: status {r.status}, body {len(got)} bytes (want {len(want)})")
            self.headers = dict(r.headers.items())
        time.sleep(0.2)
        self.pids = proc_tree(self.proc.pid)

    def tail(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-2000:]

    def zerosys_counters(self):
        if not self.sdef.get("zerosys"):
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        c = {"requests": 0.0, "enters": 0.0}
        for line in text.splitlines():
            if line.startswith("zerosys_requests_total"):
                c["requests"] += float(line.split()[-1])
            elif line.startswith("zerosys_io_uring_enter_total"):
                c["enters"] += float(line.split()[-1])
        return c

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, self.sdef["sig"])
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # children (nginx workers) that outlived their master
        for p in self.pids[1:]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stats = None
        m = re.findall(r'msg="shard stats".*', self.tail())
        if m:
            stats = m
        self.log.close()
        return stats


def body_bytes(n):
    b = bytearray((ord("a") + i % 26) for i in range(n))
    if n > 1:
        b[-1] = ord("\n")
    return bytes(b)


# --------------------------------------------------------------------------
# load generators


# GRPC_CALL is the request body of the grpc profile's calls (run_suite
# writes it).
GRPC_CALL = None


def load_argv(prof, port, duration, conns=None):
    conns = conns or prof["conns"]
    url = f"http://127.0.0.1:{port}/"
    cpus = prof.get("load_cpus", LOAD_CPUS)
    threads = max(1, min(len(cpus), conns))
    if prof.get("grpc"):
        argv = ["h2load", "-m", str(prof["streams"]), "-c", str(conns), "-t", str(threads), "-D", str(duration),
                "-d", GRPC_CALL, "-H", "content-type: application/grpc", "-H", "te: trailers",
                url + "zerosys.bench.Service/Call"]
    elif prof.get("h2"):
        argv = ["h2load", "-m", str(prof["streams"]), "-c", str(conns), "-t", str(threads), "-D", str(duration), url]
    elif prof["tool"] == "h2load":
        argv = ["h2load", "--h1", "-m", str(prof.get("pipeline", 1)), "-c", str(conns), "-t", str(threads),
                "-D", str(duration), url]
    else:
        argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "5s",
                "-s", WRK_LUA]
        if prof.get("close"):
            argv += ["-H", "Connection: close"]
        argv += [url]
        if prof.get("pipeline"):
            argv += ["--", "pipeline", str(prof["pipeline"])]
    return ["taskset", "-c", cpulist(cpus)] + argv


def parse_h2load(out):
    r = {}
    m = re.search(r"finished in ([\d.]+)(m?s)", out)
    if m:
        r["duration_us"] = float(m.group(1)) * (1e3 if m.group(2) == "ms" else 1e6)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        r["requests"] = int(m.group(4))
        r["err_status"] = int(m.group(5))
        r["err_read"] = int(m.group(6)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["err_status"] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["lat_mean_us"] = to_us(m.group(3))
    r.setdefault("err_connect", 0)
    r.setdefault("err_write", 0)
    r.setdefault("err_timeout", 0)
    return r


def to_us(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def run_load(argv, timeout):
    """Runs the load generator; returns (stdout, cpu seconds it used, wall seconds)."""
    t0 = time.time()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    # rusage of the finished child: os.wait4 is gone after communicate(), so use RUSAGE_CHILDREN deltas
    return out, time.time() - t0


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure_idle(server, prof):
    """The idle profile: the server's resident memory with prof["conns"]
    idle keep-alive connections, each answered once, against before."""
    n = prof["conns"]
    rss0, _ = memory_kb(server.pids)
    argv = ["taskset", "-c", cpulist(LOAD_CPUS), sys.executable, IDLE_CLIENT, str(server.port), str(n), "60"]
    t0 = time.time()
    cl = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = cl.stdout.readline()
        r = json.loads(line) if line.strip() else dict(answered=0, failed=n, first_error="client printed nothing")
        time.sleep(1)  # whatever the server does after its last answer
        rss1, hwm1 = memory_kb(server.pids)
        server.pids = proc_tree(server.proc.pid)
    finally:
        cl.stdin.close()
        try:
            cl.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cl.kill()
            cl.wait()
    return dict(requests=r["answered"], rps=0, errors=r["failed"], first_error=r["first_error"],
                err_detail={}, server_cpu_s=0, server_task_cpu_s=0, poller_cpu_s=0,
                rss_before_kb=rss0, rss_held_kb=rss1, hwm_held_kb=hwm1,
                kib_per_conn=(rss1 - rss0) / max(r["answered"], 1), open_s=r.get("open_s"), wall_s=time.time() - t0,
                command=argv[:3] + ["bench/idle_client.py", "PORT", str(n), "60"])


def measure(server, prof, duration):
    """One measured run."""
    if prof["tool"] == "idle":
        return measure_idle(server, prof)
    argv = load_argv(prof, server.port, duration)
    c0 = server.zerosys_counters()
    cpu0 = cpu_seconds(server.pids)
    task0, poll0 = task_seconds(server.pids)
    scpus = server.sdef["cpus"]
    busy0, lg0, t0, si0 = machine_busy_seconds(), children_cpu(), time.time(), cpus_idle_seconds(scpus)
    out, _ = run_load(argv, duration + 30)
    t1, lg1, busy1, si1 = time.time(), children_cpu(), machine_busy_seconds(), cpus_idle_seconds(scpus)
    sbusy = (t1 - t0) * len(scpus) - (si1 - si0)
    cpu1 = cpu_seconds(server.pids)
    task1, poll1 = task_seconds(server.pids)
    c1 = server.zerosys_counters()
    wall = t1 - t0
    if prof["tool"] == "h2load":
        r = parse_h2load(out)
    else:
        m = re.search(r"^BENCHJSON (.*)$", out, re.M)
        if not m:
            raise RuntimeError("wrk printed no result: " + out[-500:])
        r = json.loads(m.group(1))
    reqs = r.get("requests", 0)
    dur = r.get("duration_us", duration * 1e6) / 1e6
    scpu = cpu1 - cpu0
    lcpu = lg1 - lg0
    res = dict(
        requests=reqs, rps=reqs / dur if dur else 0,
        lat_p50_us=r.get("lat_p50_us"), lat_p99_us=r.get("lat_p99_us"), lat_mean_us=r.get("lat_mean_us"),
        errors=sum(r.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")),
        err_detail={k: r.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")},
        server_cpu_s=scpu, server_task_cpu_s=task1 - task0, poller_cpu_s=poll1 - poll0,
        server_cpu_util=scpu / wall / server.sdef["budget"],
        cpu_per_100k=scpu / reqs * 1e5 if reqs else None,
        server_cpus_busy_s=sbusy,
        cpus_per_100k=sbusy / reqs * 1e5 if reqs else None,
        load_cpu_s=lcpu, load_cpu_util=lcpu / wall / len(prof.get("load_cpus", LOAD_CPUS)),
        other_cpu_util=max(0.0, (busy1 - busy0) - scpu - lcpu) / wall / os.cpu_count(),
        wall_s=wall, command=argv,
    )
    if c0 and c1:
        dr = c1["requests"] - c0["requests"]
        res["zerosys_requests"] = dr
        res["zerosys_enters"] = c1["enters"] - c0["enters"]
        res["zerosys_enters_per_req"] = (c1["enters"] - c0["enters"]) / dr if dr else None
    return res


def strace_calls(pids, seconds, load_argv_=None):
    """Total syscalls of every thread of pids during `seconds` (optionally under load)."""
    argv = ["strace", "-f", "-c", "-q"]
    for p in pids:
        argv += ["-p", str(p)]
    st = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
    time.sleep(0.7)  # attach
    reqs = 0
    if load_argv_:
        out, _ = run_load(load_argv_, seconds + 30)
        m = re.search(r"^BENCHJSON (.*)$", out, re.M)
        reqs = json.loads(m.group(1))["requests"] if m else 0
    else:
        time.sleep(seconds)
    st.send_signal(signal.SIGINT)
    try:
        _, err = st.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        st.kill()
        _, err = st.communicate()
    calls = 0
    for line in err.splitlines():
        f = line.split()
        if f and f[-1] == "total":
            calls = int(f[3])
    return calls, reqs, argv


def syscalls_per_request(server, prof, seconds):
    seconds = max(1, int(round(seconds)))
    largv = load_argv(prof, server.port, seconds)
    idle, _, sargv = strace_calls(server.pids, seconds)
    busy, reqs, _ = strace_calls(server.pids, seconds, largv)
    return dict(strace_idle_calls=idle, strace_busy_calls=busy, strace_requests=reqs,
                strace_syscalls_per_req=(busy - idle) / reqs if reqs else None,
                strace_command=sargv[:4] + ["-p", "PID"], strace_load_command=largv)


# --------------------------------------------------------------------------
# the run


def zerosys_flags():
    try:
        return subprocess.run([ZEROSYS, "--help"], capture_output=True, text=True, timeout=10).stdout + \
            subprocess.run([ZEROSYS, "--help"], capture_output=True, text=True, timeout=10).stderr
    except OSError:
        return ""


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) // 1024 // 1024} GiB"
    def ver(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    try:
        commit = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except OSError:
        commit = "?"
    return dict(cpu_model=model, cpus=os.cpu_count(), memory=mem, kernel=os.uname().release,
                os=open("/etc/debian_version").read().strip() if os.path.exists("/etc/debian_version") else "?",
                server_cpus=SERVER_CPUS, load_cpus=LOAD_CPUS, commit=commit,
                go=ver(["go", "version"]), nginx=ver(["nginx", "-v"]), h2o=ver(["h2o", "--version"]),
                wrk=ver(["wrk", "-v"]), h2load=ver(["h2load", "--version"]))


def run_suite(mode, runs, duration, only_servers, only_profiles, strace_seconds):
    tmp = tempfile.mkdtemp(prefix="zerosys-bench.")
    os.chmod(tmp, 0o755)
    os.makedirs(os.path.join(tmp, "www"))
    os.makedirs(os.path.join(tmp, "nginx-tmp"))
    for size in (0, 4096, 65536, 1 << 20):
        with open(os.path.join(tmp, "www", f"body-{size}"), "wb") as f:
            f.write(DEFAULT_BODY if size == 0 else body_bytes(size))
    global GRPC_CALL
    GRPC_CALL = os.path.join(tmp, "grpc-call.bin")
    with open(GRPC_CALL, "wb") as f:
        f.write(b"\0\0\0\0\0")  # an empty message: no compression, length 0
    help_text = zerosys_flags()
    out_dir = os.path.join(RESULTS, mode)
    os.makedirs(out_dir, exist_ok=True)
    data = dict(mode=mode, runs=runs, duration=duration, started=datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"), machine=machine_info(), skipped=[], results=[],
                loadavg_start=loadavg())
    profiles = [p for p in PROFILES if (mode == "full" or p.get("quick"))
                and (not only_profiles or p["name"] in only_profiles)]
    servers = []
    for s in SERVERS:
        if only_servers and s["name"] not in only_servers:
            continue
        if s.get("full_only") and mode != "full" and not only_servers:
            continue
        missing = [f for f in s.get("needs", []) if f not in help_text]
        if missing:
            data["skipped"].append(dict(server=s["name"], reason="zerosys does not accept " + ", ".join(missing) + " yet"))
            print(f"bench: skip {s['name']}: zerosys lacks {missing}", flush=True)
            continue
        servers.append(s)
    port = 20000 + (os.getpid() % 100) * 100  # below the ephemeral range (32768+) that churn uses up
    live = []

    def cleanup(*_):
        for srv in live:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *_: (cleanup(), sys.exit(1)))
    t_start = time.time()
    try:
        for prof in profiles:
            for s in servers:
                if bool(prof.get("steering")) != bool(s.get("steering")):
                    continue  # the steering variants meet the steering profile only
                if prof.get("grpc") and not s.get("zerosys"):
                    continue  # a peer that does not answer gRPC itself
                if prof.get("h2") and not s.get("h2c"):
                    continue  # a server that speaks no HTTP/2 over cleartext
                port = free_port_pair(port + 2)
                body = prof.get("body", 0)
                print(f"bench: {prof['name']:<20} {s['name']:<18}", end="", flush=True)
                rec = dict(profile=prof["name"], server=s["name"], label=s["label"], budget=s["budget"],
                           note=s["note"], runs=[])
                srv = Server(s, port, body, tmp, h2=bool(prof.get("h2")))
                live.append(srv)
                try:
                    srv.wait_ready()
                    rec["server_command"] = (srv.envdesc + " " if srv.envdesc else "") + srv.cmdline
                    if prof["tool"] != "idle":
                        run_load(load_argv(prof, port, 1), 40)  # warm-up
                    rec["answer_headers"] = srv.headers
                    for _ in range(prof.get("runs", runs)):
                        rec["runs"].append(measure(srv, prof, duration))
                    rss, hwm = memory_kb(srv.pids)
                    rec["rss_kb"], rec["hwm_kb"] = rss, hwm
                    if prof.get("strace") and strace_seconds > 0 and (mode == "full" or s.get("strace_quick")):
                        rec.update(syscalls_per_request(srv, prof, strace_seconds))
                except Exception as e:  # one broken server must not sink the suite
                    rec["error"] = str(e)[:500]
                finally:
                    rec["shard_stats"] = srv.stop()
                    live.remove(srv)
                summarize(rec)
                data["results"].append(rec)
                if prof["tool"] == "idle":
                    print(f" {fmt_num(rec.get('requests'))} answered, {rec.get('errors')} failed, "
                          f"{fmt_f(rec.get('kib_per_conn'), 2)} KiB per connection  {rec.get('error', '')}",
                          flush=True)
                else:
                    print(f" {fmt_num(rec.get('rps'))} req/s  cpu/100k={fmt_f(rec.get('cpu_per_100k'), 3)}s"
                          f"  {rec.get('error', '')}", flush=True)
                time.sleep(0.3)
    finally:
        cleanup()
    data["elapsed_s"] = time.time() - t_start
    data["loadavg_end"] = loadavg()
    path = os.path.join(out_dir, "results.json")
    if (only_servers or only_profiles) and os.path.exists(path):
        data = merge_partial(path, data)
    else:
        data["gobench"] = go_bench(mode)
    with open(path, "w") as f:
        json.dump(scrub(data), f, indent=1)
    write_csv(data, os.path.join(out_dir, "results.csv"))
    return data


def merge_partial(path, new):
    """A run limited by --servers or --profiles replaces its own rows in the
    saved results of its mode and keeps the others, saying so, rather than
    writing over a whole suite's results."""
    with open(path) as f:
        old = json.load(f)
    done = {(r["profile"], r["server"]) for r in new["results"]}
    old["results"] = [r for r in old["results"] if (r["profile"], r["server"]) not in done] + new["results"]
    measured = {r["server"] for r in new["results"]}
    old["skipped"] = [s for s in old.get("skipped", []) if s["server"] not in measured] + new.get("skipped", [])
    # An earlier re-run whose rows this one replaced entirely says nothing now.
    old["reruns"] = [rr for rr in old.get("reruns", [])
                     if not {(p, s) for p in rr["profiles"] for s in rr["servers"]
                             if any(r["profile"] == p and r["server"] == s for r in old["results"])} <= done]
    old["reruns"].append(dict(
        started=new["started"], commit=new["machine"]["commit"],
        profiles=sorted({r["profile"] for r in new["results"]}),
        servers=sorted({r["server"] for r in new["results"]})))
    return old


def free_port_pair(port):
    """The first port >= port such that it and port+1 (zerosys metrics) can be bound."""
    while True:
        ok = True
        for p in (port, port + 1):
            with socket.socket() as sk:
                try:
                    sk.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
        port += 2


def scrub(obj):
    """Machine paths out of the saved results: the repository is '.', the temp dir $TMP."""
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        obj = re.sub(r"/\S*/zerosys-bench\.[^/\s]+", "$TMP", obj)
        return obj.replace(ROOT + "/", "./").replace(ROOT, ".")
    return obj


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rec):
    rs = rec["runs"]
    if not rs:
        return
    for k in ("rps", "lat_p50_us", "lat_p99_us", "lat_mean_us", "cpu_per_100k", "cpus_per_100k", "server_cpu_util",
              "load_cpu_util", "other_cpu_util", "zerosys_enters_per_req", "rss_before_kb", "rss_held_kb",
              "kib_per_conn", "requests"):
        rec[k] = med(r.get(k) for r in rs)
    rec["errors"] = sum(r["errors"] for r in rs)
    rec["rps_all"] = [round(r["rps"]) for r in rs]
    rec["poller_share"] = (sum(r["poller_cpu_s"] for r in rs) / sum(r["server_cpu_s"] for r in rs)
                           if sum(r["server_cpu_s"] for r in rs) else None)
    rec["task_vs_proc"] = (sum(r["server_task_cpu_s"] for r in rs) / sum(r["server_cpu_s"] for r in rs)
                           if sum(r["server_cpu_s"] for r in rs) else None)


def go_bench(mode):
    argv = ["go", "test", "-ldflags=-checklinkname=0", "-run", "^$", "-bench", ".", "-benchmem", "./shard/..."]
    if mode == "quick":
        argv.insert(-1, "-benchtime=200ms")
    print("bench: " + " ".join(argv), flush=True)
    try:
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
        return dict(command=" ".join(argv), output=scrub(p.stdout + p.stderr), rc=p.returncode)
    except subprocess.TimeoutExpired:
        return dict(command=" ".join(argv), output="timed out", rc=-1)


def write_csv(data, path):
    cols = ["profile", "server", "budget", "rps", "ratio_nginx", "lat_p50_us", "lat_p99_us", "lat_mean_us",
            "errors", "cpu_per_100k", "server_cpu_util", "load_cpu_util", "other_cpu_util",
            "strace_syscalls_per_req", "zerosys_enters_per_req", "rss_kb", "hwm_kb", "rps_all", "error"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for rec in data["results"]:
            ng = nginx_of(data, rec["profile"])
            rec = dict(rec, ratio_nginx=(rec.get("rps") / ng["rps"] if ng and ng.get("rps") and rec.get("rps")
                                         else None))
            w.writerow([rec.get(c) if not isinstance(rec.get(c), float) else round(rec.get(c), 4) for c in cols])


def nginx_of(data, profile):
    for r in data["results"]:
        if r["profile"] == profile and r["server"] == "nginx":
            return r
    return None


# --------------------------------------------------------------------------
# report

def fmt_num(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_x(x):
    """A ratio, or a dash where there is nothing to compare with."""
    return "–" if x is None else fmt_f(x) + "x"


def fmt_f(x, d=2):
    if x is None:
        return "–"
    if abs(x) < 0.5 * 10 ** -d:
        x = 0.0  # no "-0.000" from (busy - idle) noise
    return f"{x:.{d}f}"


def fmt_pct(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def fmt_lat(us):
    if us is None or us == 0:
        return "–"
    return f"{us / 1000:.2f}"


def bottleneck(rec):
    l, s = rec.get("load_cpu_util") or 0, rec.get("server_cpu_util") or 0
    if rec["server"] == "zerosys-spin":
        return "spins (2 CPUs)"
    if l >= 0.9 and l >= s:
        return "load gen"
    if s >= 0.9:
        return "server"
    return "neither (latency)"


def plot(data, out_dir):
    if not shutil.which("gnuplot"):
        return {}
    made = {}
    res = [r for r in data["results"] if r.get("rps")]
    profs = []
    for p in PROFILES:
        if p.get("group") or not any(r["profile"] == p["name"] for r in res):
            continue
        profs.append(p)
    for p in profs:
        rows = [r for r in res if r["profile"] == p["name"]]
        dat = os.path.join(out_dir, f"{p['name']}.dat")
        with open(dat, "w") as f:
            for r in rows:
                f.write(f'"{r["label"]}" {r["rps"]:.0f} {(r.get("cpu_per_100k") or 0):.4f}\n')
        png = f"{p['name']}.png"
        script = f"""set terminal pngcairo size 1000,520 font ",10"
set output "{os.path.join(out_dir, png)}"
set multiplot layout 1,2 title "{p['title']} ({data['machine']['cpus']} CPUs; medians of {data['runs']} x {data['duration']} s)"
set style data histograms
set style histogram clustered gap 0.3
set style fill solid 0.8 border -1
set xtics rotate by -35 left
set grid ytics
set yrange [0:*]
unset key
set title "requests/s"
plot "{dat}" using 2:xtic(1) lc rgb "#3b7dd8"
set title "server CPU seconds per 100k requests"
plot "{dat}" using 3:xtic(1) lc rgb "#d8793b"
unset multiplot
"""
        subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        os.remove(dat)
        made[p["name"]] = png
    for group, xlabel, xkey in (("sweep", "connections", "conns"), ("body", "body bytes", "body")):
        gp = [p for p in PROFILES if p.get("group") == group and any(r["profile"] == p["name"] for r in res)]
        if not gp:
            continue
        if group == "body":  # the 16 B point is keep-alive-64
            gp = [dict(name="keepalive-64", body=16)] + gp
        servers = [s for s in SERVERS if any(r["server"] == s["name"] for r in res)]
        dat = os.path.join(out_dir, f"{group}.dat")
        with open(dat, "w") as f:
            for s in servers:
                f.write(f'# {s["label"]}\n')
                for p in gp:
                    r = next((r for r in res if r["profile"] == p["name"] and r["server"] == s["name"]), None)
                    if r:
                        f.write(f'{p.get(xkey)} {r["rps"]:.0f}\n')
                f.write("\n\n")
        png = f"{group}.png"
        plots = ", ".join(f'"{dat}" index {i} using 1:2 with linespoints title "{s["label"]}"'
                          for i, s in enumerate(servers))
        script = f"""set terminal pngcairo size 900,520 font ",10"
set output "{os.path.join(out_dir, png)}"
set title "{'Connection sweep (keep-alive)' if group == 'sweep' else 'Body size (keep-alive, 64 connections)'}: requests/s"
set logscale x
set xlabel "{xlabel}"
set ylabel "requests/s"
set grid
set key outside right
plot {plots}
"""
        subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        os.remove(dat)
        made[group] = png
    return made


GOALS_TEXT = """Goals (zerosys on the same server CPU as nginx, i.e. `sqpoll off` and `SQPOLL adaptive`):
keep-alive CPU per request <= 0.75x nginx's; pipelined x16 throughput >= 2x nginx's;
churn throughput >= 1.0x nginx's and CPU per connection <= nginx's."""


def goals(data):
    rows = []
    def get(p, s):
        return next((r for r in data["results"] if r["profile"] == p and r["server"] == s and r.get("rps")), None)
    for z in ("zerosys-off", "zerosys-adaptive"):
        checks = (("keepalive-64", "CPU per request", "cpu_per_100k", "<=", 0.75),
                  ("pipelined-16", "throughput", "rps", ">=", 2.0),
                  ("churn", "throughput", "rps", ">=", 1.0),
                  ("churn", "CPU per connection", "cpu_per_100k", "<=", 1.0))
        for prof, what, key, op, target in checks:
            a, n = get(prof, z), get(prof, "nginx")
            if not a or not n or not a.get(key) or not n.get(key):
                continue
            ratio = a[key] / n[key]
            met = ratio <= target if op == "<=" else ratio >= target
            rows.append((z, prof, what, f"{op} {target}x", f"{ratio:.2f}x", "**met**" if met else "not met"))
    return rows


def render(datasets, out_path):
    L = []
    w = L.append
    w("# zerosys benchmarks")
    w("")
    w("Generated by `make bench` (quick) and `make bench-full` (everything) from `bench/bench.py`; raw results "
      "(JSON, CSV), plots and the Go micro-benchmark output are in `bench/results/<mode>/`. "
      "Every number is a median of the runs listed; ratios are to nginx in the same profile. "
      "Do not compare figures across machines: compare ratios.")
    w("")
    w("## How the suite measures")
    w("")
    w(f"""- **Placement**: with N CPUs the server side gets the upper half (k = N/2 CPUs) and the load generator
  the lower half; every server process is pinned there with `taskset` and sized to k (nginx workers with
  `worker_cpu_affinity`, h2o threads, `GOMAXPROCS=k`, zerosys shards). On 2 CPUs: server on CPU 1, load on CPU 0.
  **Exception**: zerosys SQPOLL spin needs a CPU for its spinning shard and one for its poller: shard on the
  load CPU(s), poller on the server CPU(s). It uses twice the CPUs and shares the load generator's CPU; its rows
  say so, and its CPU figures count busy-spinning.
- **Same bytes**: every server answers `GET /` with status 200, `Content-Type: text/plain` and the same body
  (`Have a nice day!`, 16 bytes; for body-size profiles the same N bytes, the pattern of `zerosys --body-size N`).
  Header sets differ a little (Server, Date, h2o's Last-Modified/Accept-Ranges). Each server's answer is checked
  before it is measured.
- **Load**: `wrk` with `bench/wrk/report.lua` (which also does the x16 pipelining and prints the result as JSON),
  and `h2load --h1 -m 16` for the second pipelined profile. Each server is started fresh per profile, warmed up for
  1 s, then measured in R runs of D seconds.
- **Server CPU** = utime+stime from `/proc/PID/stat` (all threads of the process; for nginx master + workers)
  before and after each run, per 100k requests (for churn: per 100k connections). That this includes the SQPOLL
  poller threads (`iou-sqp-PID`) is checked every run against the sum of `/proc/PID/task/*/stat`: see the
  *task/proc* and *poller share* columns of the raw results.
- **Its CPUs busy** = the wall time of the server's CPUs less their idle and iowait time from `/proc/stat`
  (exact under the tickless idle; a shard waiting in `io_uring_enter` shows as iowait), per 100k: whatever ran
  there, the server and the softirq and timer work (packets, TCP timers) that lands on its CPUs while it does not
  run, which process accounting leaves out. It includes the load generator's warm-up edges of the run (the
  server idles then), so it reads a little high for every server alike.
- **Load-generator CPU** = the load generator's rusage over the run, as a share of its CPU(s). When it is near 100%
  the profile measures the load generator, not the server: then compare server CPU per request, not req/s.
  **Other CPU** = whatever else the machine did during the run (from `/proc/stat`, minus server and load
  generator): the noise indicator.
- **Syscalls per request (strace)**: a separate short run: `strace -f -c` attached to every thread of the server
  for an idle window, then for an equal window under the same load; (busy calls - idle calls) / requests.
  strace slows every server a lot, so these runs are only for counting. strace cannot attach to io_uring's
  kernel poller threads (they make no syscalls anyway).
- **zerosys enters/req** = zerosys's own counters (`zerosys_io_uring_enter_total` / `zerosys_requests_total`
  from its /metrics) over the measured runs, without strace: io_uring_enter calls by the shard thread only.
- **Latency** p50/p99 are wrk's (for pipelined wrk runs wrk times batches, and p99 is often unreliable);
  h2load reports a mean only.
- **RSS** = VmRSS (and peak VmHWM) summed over the server's processes at the end of the profile.
""")
    for data in datasets:
        render_one(data, w)
    w("")
    w("## Findings and suggestions for zerosys")
    w("")
    fpath = os.path.join(BENCH, "findings.md")
    if os.path.exists(fpath):
        w(open(fpath).read().strip())
    with open(out_path, "w") as f:
        f.write("\n".join(L) + "\n")


def render_idle(recs, ng, w):
    w("Each connection sends one `GET /`, reads its answer and stays open; the server's RSS (all its "
      "processes) is read before the connections open and again 1 s after the last answer.")
    w("")
    w("| server | answered | failed | RSS before MiB | RSS with them MiB | KiB per connection | vs nginx |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    base = ng.get("kib_per_conn") if ng else None
    for r in recs:
        if r.get("error") and r.get("kib_per_conn") is None:
            w(f"| {r['label']} | failed: {r['error'][:120]} |" + " |" * 5)
            continue
        k = r.get("kib_per_conn")
        ratio = k / base if base and k is not None else None
        w(f"| {r['label']} | {fmt_num(r.get('requests'))} | {r['errors']} | {fmt_f(r['rss_before_kb'] / 1024, 1)} "
          f"| {fmt_f(r['rss_held_kb'] / 1024, 1)} | {fmt_f(k, 2)} | {fmt_f(ratio)}x |")
    w("")


def render_steering(recs, w):
    w("Few long-lived connections, as a load balancer keeps: with the kernel's hash they may all land on one "
      "shard; `--steer load` gives each new connection to the shard with the fewest, `--steer cpu` to the "
      "shard on the CPU that handled its SYN (on loopback, the client thread's CPU). Pipelined so that the "
      "server, not wrk, is the limit; still, server and wrk share every CPU, so the ratio is what a second "
      "shard adds on this machine, not a per-CPU figure. Where a client thread and the shard serving it "
      "share a CPU, the answer's delivery runs on that CPU and nothing crosses between CPUs: `cpu` and "
      "`load` (which breaks ties by the SYN's CPU) get that when wrk's threads connect from different "
      "CPUs, `hash` when its hash happens to; each run is a new wrk, so the runs column shows the spread "
      "of placements.")
    w("")
    w("| server | req/s (median) | vs 1 shard | runs, k req/s | p50 ms | errors | server CPU s / 100k req |")
    w("|---|---:|---:|---|---:|---:|---:|")
    one = next((r for r in recs if r["server"].startswith("zerosys-1shard") and r.get("rps")), None)
    for r in recs:
        if r.get("error") and not r.get("rps"):
            w(f"| {r['label']} | failed: {r['error'][:120]} |" + " |" * 5)
            continue
        ratio = r["rps"] / one["rps"] if one else None
        runs = ", ".join(f"{x / 1000:,.0f}" for x in r.get("rps_all", []))
        w(f"| {r['label']} | {fmt_num(r['rps'])} | {fmt_f(ratio)}x | {runs} | {fmt_lat(r.get('lat_p50_us'))} "
          f"| {r['errors']} | {fmt_f(r.get('cpu_per_100k'), 3)} |")
    w("")


def render_one(data, w):
    m = data["machine"]
    mode = data["mode"]
    out_dir = os.path.join(RESULTS, mode)
    w(f"## Results: `make {'bench' if mode == 'quick' else 'bench-full'}` ({mode}), {data['started']}")
    w("")
    w(f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory']}, Linux {m['kernel']}, Debian {m['os']}; "
      f"server CPUs {m['server_cpus']}, load-generator CPUs {m['load_cpus']}.")
    w(f"- Software: zerosys `{m['commit']}`, {m['go']}, {m['nginx']}, {m['h2o']}, {m['wrk']}, "
      f"{m['h2load']}.")
    w(f"- {data['runs']} runs x {data['duration']} s per server and profile; the suite took "
      f"{data.get('elapsed_s', 0) / 60:.1f} min. Load average {data['loadavg_start']:.2f} at the start, "
      f"{data.get('loadavg_end', 0):.2f} at the end.")
    oth = [r.get("other_cpu_util") for r in data["results"] if r.get("other_cpu_util") is not None]
    if oth:
        w(f"- Noise: other processes used a median {100 * statistics.median(oth):.0f}% "
          f"(max {100 * max(oth):.0f}%) of the machine's CPU during the measured runs.")
    for rr in data.get("reruns", []):
        w(f"- Re-run later ({rr['started']}, zerosys `{rr['commit']}`): profiles {', '.join(rr['profiles'])} "
          f"for {', '.join(rr['servers'])}; those rows are from that run.")
    for s in data["skipped"]:
        w(f"- Skipped **{s['server']}**: {s['reason']}.")
    w("")
    rows = goals(data)
    if rows:
        w("### Goals vs nginx")
        w("")
        w(GOALS_TEXT)
        w("")
        w("| zerosys | profile | measure | goal | measured | |")
        w("|---|---|---|---|---|---|")
        for r in rows:
            w("| " + " | ".join(r) + " |")
        w("")
    plots = plot(data, out_dir)
    for p in PROFILES:
        recs = [r for r in data["results"] if r["profile"] == p["name"]]
        if not recs:
            continue
        ng = nginx_of(data, p["name"])
        w(f"### {p['title']}")
        w("")
        if p["name"] in plots:
            w(f"![{p['name']}](bench/results/{mode}/{plots[p['name']]})")
            w("")
        if p["tool"] == "idle":
            render_idle(recs, ng, w)
            continue
        if p.get("steering"):
            render_steering(recs, w)
            continue
        per = "100k conns" if p.get("close") else "100k req"
        w(f"| server | CPUs | req/s | vs nginx | p50 ms | p99 ms | errors | server CPU s / {per} | vs nginx "
          f"| its CPUs busy s / {per} | vs nginx "
          f"| server CPU | load-gen CPU | bottleneck | syscalls/req (strace) | zerosys enters/req | RSS / peak MiB |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
        for r in recs:
            if r.get("error") and not r.get("rps"):
                w(f"| {r['label']} | {r['budget']} | failed: {r['error'][:120]} |" + " |" * 14)
                continue
            bratio = (r["cpus_per_100k"] / ng["cpus_per_100k"]
                      if ng and ng.get("cpus_per_100k") and r.get("cpus_per_100k") else None)
            ratio = r["rps"] / ng["rps"] if ng and ng.get("rps") else None
            cratio = (r["cpu_per_100k"] / ng["cpu_per_100k"]
                      if ng and ng.get("cpu_per_100k") and r.get("cpu_per_100k") else None)
            p50 = fmt_lat(r.get("lat_p50_us")) if p["tool"] == "wrk" else f"mean {fmt_lat(r.get('lat_mean_us'))}"
            w(f"| {r['label']} | {r['budget']}{'*' if r['server'] == 'zerosys-spin' else ''} | {fmt_num(r['rps'])} "
              f"| {fmt_x(ratio)} | {p50} | {fmt_lat(r.get('lat_p99_us'))} | {r['errors']} "
              f"| {fmt_f(r.get('cpu_per_100k'), 3)} | {fmt_x(cratio)} "
              f"| {fmt_f(r.get('cpus_per_100k'), 3)} | {fmt_f(bratio) + 'x' if bratio else '–'} | {fmt_pct(r.get('server_cpu_util'))} "
              f"| {fmt_pct(r.get('load_cpu_util'))} | {bottleneck(r)} "
              f"| {fmt_f(r.get('strace_syscalls_per_req'), 3)} | {fmt_f(r.get('zerosys_enters_per_req'), 4)} "
              f"| {fmt_f(r.get('rss_kb', 0) / 1024, 1)} / {fmt_f(r.get('hwm_kb', 0) / 1024, 1)} |")
        w("")
        if any(r["server"] == "zerosys-spin" for r in recs):
            w("\\* zerosys SQPOLL spin uses 2 CPUs and its shard shares the load generator's CPU; its server-CPU "
              "share is of 2 CPUs and includes busy-spinning.")
            w("")
    for g, title in (("sweep", "Connection sweep"), ("body", "Body sizes")):
        if g in plots:
            w(f"### {title}: plot")
            w("")
            w(f"![{g}](bench/results/{mode}/{plots[g]})")
            w("")
    # poller accounting check
    chk = [r for r in data["results"] if r["server"].startswith("zerosys-") and r["server"] != "zerosys-off"
           and r.get("poller_share") is not None]
    if chk:
        c = chk[0]
        w(f"Poller accounting check ({c['label']}, {c['profile']}): the sum over `/proc/PID/task/*/stat` was "
          f"{fmt_f(c.get('task_vs_proc'))}x the process's own `/proc/PID/stat` delta, and the `iou-sqp` poller "
          f"thread accounted for {fmt_pct(c.get('poller_share'))} of it: poller time is included in the "
          f"server CPU figures.")
        w("")
    w("<details><summary>Every command line</summary>")
    w("")
    w("```")
    seen = set()
    for r in data["results"]:
        for line in [r.get("server_command")] + [shlex.join(x["command"]) for x in r["runs"][:1]] + \
                [shlex.join(r.get("strace_command", [])) or None]:
            if line and line not in seen:
                seen.add(line)
                w(line)
    w("```")
    w("")
    td = tempfile.mkdtemp(prefix="zerosys-bench.")
    try:
        for name, fn in (("nginx", nginx_cmd), ("h2o", h2o_cmd)):
            argv = fn(8080, 0, td, 0)
            w(f"{name} configuration (PORT and body vary per run; body-size profiles serve `$TMP/www/body-N` "
              f"as a static file):")
            w("")
            w("```")
            w(open(argv[-1]).read().replace(td, "$TMP").strip())
            w("```")
            w("")
    finally:
        shutil.rmtree(td, ignore_errors=True)
    w("</details>")
    w("")
    gb = data.get("gobench")
    if gb:
        w("### Go micro-benchmarks")
        w("")
        w(f"`{gb['command']}` (exit {gb['rc']}; run on the same, loaded machine):")
        w("")
        w("```")
        w(gb["output"].strip())
        w("```")
        w("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["quick", "full"], default="quick")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration", type=int)
    ap.add_argument("--strace-seconds", type=int, help="strace windows (default 1 s quick, 2 s full; 0: none)")
    ap.add_argument("--servers", help="comma list of server names")
    ap.add_argument("--profiles", help="comma list of profile names")
    ap.add_argument("--render", action="store_true", help="only write BENCHMARKS.md from saved results")
    ap.add_argument("--no-render", action="store_true")
    a = ap.parse_args()
    if not a.render:
        runs = a.runs or 3
        duration = a.duration or (3 if a.mode == "quick" else 6)
        strace_s = a.strace_seconds if a.strace_seconds is not None else (1 if a.mode == "quick" else 2)
        run_suite(a.mode, runs, duration, a.servers and a.servers.split(","),
                  a.profiles and a.profiles.split(","), strace_s)
    if a.no_render:
        return
    datasets = []
    for mode in ("full", "quick"):
        p = os.path.join(RESULTS, mode, "results.json")
        if os.path.exists(p):
            with open(p) as f:
                datasets.append(json.load(f))
    render(datasets, os.path.join(ROOT, "BENCHMARKS.md"))
    print("bench: wrote BENCHMARKS.md", flush=True)


if __name__ == "__main__":
    main()
