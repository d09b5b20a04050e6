package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"zerosys/affinity"
	"zerosys/listener"
	"zerosys/listener/steer"
	"zerosys/shard"
)

// minKernel is the oldest kernel with everything the shards use: multishot
// accept (5.19) and SINGLE_ISSUER|DEFER_TASKRUN (6.1).
var minKernel = [2]int{6, 1}

// checkResult is one line of the preflight report.
type checkResult struct {
	name   string
	detail string
	err    error
}

// preflight runs every check zerosys needs for cfg. Start-up runs the same
// list and stops at the first failure, so both say the same thing.
func preflight(cfg *config) ([]checkResult, *affinity.Plan) {
	var out []checkResult
	add := func(name, detail string, err error) { out = append(out, checkResult{name, detail, err}) }

	release, err := kernelRelease()
	add("kernel", release, err)

	disabled, group := readSysctl("kernel/io_uring_disabled"), readSysctl("kernel/io_uring_group")
	switch disabled {
	case "", "0":
		add("io_uring sysctl", "kernel.io_uring_disabled="+orNone(disabled)+" (allowed for all)", nil)
	case "1":
		add("io_uring sysctl", "kernel.io_uring_disabled=1: only CAP_SYS_ADMIN or members of kernel.io_uring_group="+group+" may use io_uring", nil)
	default:
		add("io_uring sysctl", "kernel.io_uring_disabled="+disabled, errors.New("io_uring is disabled for every process: set sysctl kernel.io_uring_disabled=0 (or 1 with kernel.io_uring_group)"))
	}
	add("seccomp", seccompMode(), nil)

	var memlock unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &memlock); err == nil {
		add("memlock", "RLIMIT_MEMLOCK "+fmtLimit(memlock.Cur)+" (rings are charged to the memory cgroup since 5.12, so this limit matters for them only on older kernels; --send-zc's registered answers count against it on every kernel unless the process has CAP_IPC_LOCK)", nil)
	}

	allowed, err := affinity.Allowed()
	if err != nil {
		add("cpus", "", err)
		return out, nil
	}
	plan, err := cfg.plan(allowed)
	if err != nil {
		add("cpu plan", "allowed cpus "+allowed.String(), err)
		return out, nil
	}
	add("cpu plan", "allowed cpus "+allowed.String()+"; "+plan.String(), nil)

	a := plan.Shards[0]
	err = shard.Preflight(shard.PreflightConfig{SQPoll: plan.SQPoll, PollerCPU: a.PollerCPU, CPU: a.CPU})
	ring := "SINGLE_ISSUER|DEFER_TASKRUN ring"
	if plan.SQPoll {
		ring = fmt.Sprintf("SQPOLL|SQ_AFF ring with its poller on cpu %d", a.PollerCPU)
	}
	add("io_uring", ring+"; operations accept, recv, send, close, shutdown, async_cancel", err)

	if cfg.fixedFiles {
		detail := "connections are accepted into each ring's file table (IORING_FILE_INDEX_ALLOC)"
		if err := shard.FixedFilesSupported(); err != nil {
			detail = fmt.Sprintf("not available, connections get descriptors instead: %v", err)
		}
		add("fixed files", detail, nil)
	}
	if cfg.sendZC {
		detail := "answers of 16 KiB or more are sent zero-copy from buffers registered with each ring (IORING_RECVSEND_FIXED_BUF)"
		unregistered, err := shard.ZeroCopySupported()
		if unregistered != nil {
			detail = fmt.Sprintf("answers are sent zero-copy from plain memory, their pages pinned per send: %v", unregistered)
		}
		add("zero-copy sends", detail, err)
	}
	if cfg.spliceMin > 0 {
		detail := fmt.Sprintf("bodies of %d bytes or more are spliced from a memory file (IORING_OP_SPLICE)", cfg.spliceMin)
		if err := shard.SpliceSupported(); err != nil {
			detail = fmt.Sprintf("not available, answers are copied instead: %v", err)
		}
		add("splice", detail, nil)
	}

	lc := listener.Config{Addr: cfg.addr, AllowShared: cfg.allowShared}
	err = listener.Probe(lc)
	detail := cfg.addr + " is free"
	if cfg.allowShared && err == nil {
		detail = cfg.addr + " is free or shared on purpose (--allow-shared-port)"
	}
	add("address", detail, err)
	return out, &plan
}

// runCheck is `zerosys check`: print the report, exit non-zero on failure.
func runCheck(cfg *config, w io.Writer) int {
	results, _ := preflight(cfg)
	results = append(results, checkResult{name: "steering", detail: steerProbe(cfg.steer)})
	failed := 0
	for _, r := range results {
		status := "ok  "
		if r.err != nil {
			status = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "%s %-16s %s\n", status, r.name, r.detail)
		if r.err != nil {
			fmt.Fprintf(w, "     %-16s %v\n", "", r.err)
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "zerosys cannot run as configured: %d check(s) failed\n", failed)
		return 1
	}
	fmt.Fprintln(w, "zerosys can run as configured")
	return 0
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	rel := unix.ByteSliceToString(u.Release[:])
	var v [2]int
	parts := strings.SplitN(rel, ".", 3)
	for i := 0; i < 2 && i < len(parts); i++ {
		digits := strings.TrimRightFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' })
		v[i], _ = strconv.Atoi(digits)
	}
	if v[0] < minKernel[0] || v[0] == minKernel[0] && v[1] < minKernel[1] {
		return rel, fmt.Errorf("Linux %s is too old: zerosys needs %d.%d or later (multishot accept, SINGLE_ISSUER|DEFER_TASKRUN)", rel, minKernel[0], minKernel[1])
	}
	return rel + fmt.Sprintf(" (>= %d.%d needed)", minKernel[0], minKernel[1]), nil
}

func readSysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

func orNone(s string) string {
	if s == "" {
		return "(absent: kernel before 6.6)"
	}
	return s
}

// seccompMode reads this process's seccomp mode: a filter may block
// io_uring (then io_uring_setup fails with EPERM or ENOSYS, see the
// io_uring line).
func seccompMode() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			switch strings.TrimSpace(v) {
			case "0":
				return "no seccomp filter"
			case "2":
				return "a seccomp filter is active (containers: it must allow io_uring_setup, io_uring_enter, io_uring_register)"
			}
			return "seccomp mode " + strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func fmtLimit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v/1024, 10) + " KiB"
}

// steerProbe says whether policy p can be put in force here, by trying it
// on a listener group of its own on a loopback port.
func steerProbe(p steer.Policy) string {
	g, err := listener.Listen(listener.Config{Addr: "127.0.0.1:0"}, 2)
	if err != nil {
		return fmt.Sprintf("--steer %s: cannot try it (%v)", p, err)
	}
	defer g.Close()
	s, err := steer.Attach(p, g.FDs, []int{0, 1})
	if err != nil {
		return fmt.Sprintf("--steer %s is not possible here, zerosys would use the kernel's hash: %v", p, err)
	}
	s.Close()
	return fmt.Sprintf("--steer %s is possible", p)
}
