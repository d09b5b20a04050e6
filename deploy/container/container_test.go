// Package container holds the container image recipe and the seccomp
// profile zerosys needs under Docker 25+ / containerd 2.0; this test checks
// both without a container engine.
package container

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// The seccomp profile schema Docker, containerd (Kubernetes Localhost
// profiles) and CRI-O read. Unknown fields are rejected when decoding, so a
// misspelt key fails here instead of being silently ignored by an engine.
type profile struct {
	DefaultAction    string        `json:"defaultAction"`
	DefaultErrnoRet  *uint         `json:"defaultErrnoRet,omitempty"`
	ListenerPath     string        `json:"listenerPath,omitempty"`
	ListenerMetadata string        `json:"listenerMetadata,omitempty"`
	Architectures    []string      `json:"architectures,omitempty"`
	ArchMap          []archMap     `json:"archMap,omitempty"`
	Syscalls         []syscallRule `json:"syscalls"`
	Flags            []string      `json:"flags,omitempty"`
}

type archMap struct {
	Arch      string   `json:"architecture"`
	SubArches []string `json:"subArchitectures"`
}

type syscallRule struct {
	Name     string   `json:"name,omitempty"`
	Names    []string `json:"names,omitempty"`
	Action   string   `json:"action"`
	ErrnoRet *uint    `json:"errnoRet,omitempty"`
	Args     []arg    `json:"args,omitempty"`
	Comment  string   `json:"comment,omitempty"`
	Includes *filter  `json:"includes,omitempty"`
	Excludes *filter  `json:"excludes,omitempty"`
}

type arg struct {
	Index    uint   `json:"index"`
	Value    uint64 `json:"value"`
	ValueTwo uint64 `json:"valueTwo,omitempty"`
	Op       string `json:"op"`
}

type filter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

var (
	actions = []string{"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
		"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
	ops = []string{"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
		"SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"}
	ioUring = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}
)

func loadProfile(t *testing.T) profile {
	t.Helper()
	data, err := os.ReadFile("seccomp-zerosys.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p profile
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("seccomp-zerosys.json does not decode strictly: %v", err)
	}
	if dec.More() {
		t.Fatal("seccomp-zerosys.json: data after the profile object")
	}
	return p
}

func TestSeccompSchema(t *testing.T) {
	p := loadProfile(t)
	if !slices.Contains(actions, p.DefaultAction) {
		t.Errorf("defaultAction %q is not a seccomp action", p.DefaultAction)
	}
	if len(p.Architectures) == 0 && len(p.ArchMap) == 0 {
		t.Error("no architectures: the filter would apply to the native one only")
	}
	var arches []string
	for _, a := range p.ArchMap {
		arches = append(arches, a.Arch)
		if !strings.HasPrefix(a.Arch, "SCMP_ARCH_") {
			t.Errorf("archMap: %q is not a SCMP_ARCH_ name", a.Arch)
		}
	}
	arches = append(arches, p.Architectures...)
	for _, want := range []string{"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} {
		if !slices.Contains(arches, want) {
			t.Errorf("architectures lack %s", want)
		}
	}
	for i, r := range p.Syscalls {
		names := r.names()
		if len(names) == 0 {
			t.Errorf("rule %d names no system call", i)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if n == "" || strings.TrimSpace(n) != n || strings.ToLower(n) != n {
				t.Errorf("rule %d: bad system call name %q", i, n)
			}
			if seen[n] {
				t.Errorf("rule %d names %s twice", i, n)
			}
			seen[n] = true
		}
		if !slices.Contains(actions, r.Action) {
			t.Errorf("rule %d: action %q is not a seccomp action", i, r.Action)
		}
		if r.ErrnoRet != nil && r.Action != "SCMP_ACT_ERRNO" {
			t.Errorf("rule %d: errnoRet with action %s", i, r.Action)
		}
		for _, a := range r.Args {
			if !slices.Contains(ops, a.Op) {
				t.Errorf("rule %d: op %q", i, a.Op)
			}
			if a.Index > 5 {
				t.Errorf("rule %d: argument index %d > 5", i, a.Index)
			}
		}
	}
}

// Docker's default answers what it does not allow with EPERM; so does this
// profile. A kill or trap default would turn a library's probe for a new
// system call into a crash.
func TestSeccompDefaultIsErrno(t *testing.T) {
	p := loadProfile(t)
	if p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Fatalf("defaultAction %q, want SCMP_ACT_ERRNO", p.DefaultAction)
	}
	if p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != 1 {
		t.Errorf("defaultErrnoRet %v, want 1 (EPERM) as in Docker's default", p.DefaultErrnoRet)
	}
}

func TestSeccompAllowsIOUring(t *testing.T) {
	p := loadProfile(t)
	for _, name := range ioUring {
		if !p.unconditionallyAllowed(name) {
			t.Errorf("%s is not allowed by an unconditional SCMP_ACT_ALLOW rule", name)
		}
	}
}

// The profile is Docker's default plus io_uring: what the default allows
// stays allowed, what it gates behind a capability stays gated.
func TestSeccompIsDockerDefaultPlusIOUring(t *testing.T) {
	p := loadProfile(t)
	n := 0
	for _, r := range p.Syscalls {
		if r.Action == "SCMP_ACT_ALLOW" && r.Args == nil && r.Includes == nil && r.Excludes == nil {
			n += len(r.names())
		}
	}
	if n < 330 {
		t.Errorf("only %d unconditionally allowed system calls; Docker's default allows ~340", n)
	}
	for _, name := range []string{"accept4", "bind", "listen", "epoll_pwait", "futex", "mmap", "openat",
		"read", "write", "close", "sched_getaffinity", "sched_setaffinity", "setsockopt", "getsockopt",
		"rt_sigaction", "tgkill", "exit_group", "prlimit64", "getrandom", "statx", "rseq", "close_range",
		"pidfd_open", "membarrier", "landlock_create_ruleset", "epoll_pwait2", "futex_waitv"} {
		if !p.unconditionallyAllowed(name) {
			t.Errorf("%s: allowed by Docker's default, not by this profile", name)
		}
	}
	for _, name := range []string{"mount", "umount2", "unshare", "setns", "bpf", "ptrace", "reboot",
		"init_module", "finit_module", "kexec_load", "perf_event_open", "clone3", "open_by_handle_at",
		"pivot_root", "swapon", "settimeofday", "keyctl", "add_key", "userfaultfd", "syslog", "chroot",
		"iopl", "acct", "quotactl", "lookup_dcookie"} {
		if p.unconditionallyAllowed(name) {
			t.Errorf("%s is allowed unconditionally; Docker's default does not allow it", name)
		}
	}
	// Namespaces stay closed to clone without CAP_SYS_ADMIN.
	for _, r := range p.Syscalls {
		if slices.Contains(r.names(), "clone") && r.Action == "SCMP_ACT_ALLOW" && r.Includes == nil {
			if len(r.Args) != 1 || r.Args[0].Op != "SCMP_CMP_MASKED_EQ" || r.Args[0].Value != 0x7E020000 {
				t.Errorf("clone is allowed without the CLONE_NEW* mask: %+v", r)
			}
		}
	}
}

// Every system call zerosys made under strace (start-up, serving, metrics,
// drain, `zerosys check`) must pass the profile in an unprivileged amd64
// container. The committed fixture is checked always; ZEROSYS_SYSCALLS
// names a fresh list from the binary just built (make test-deploy does).
func TestSeccompAllowsWhatZerosysCalls(t *testing.T) {
	p := loadProfile(t)
	files := []string{"testdata/zerosys-syscalls.txt"}
	if f := os.Getenv("ZEROSYS_SYSCALLS"); f != "" {
		files = append(files, f)
	}
	for _, file := range files {
		names := readList(t, file)
		if len(names) < 20 {
			t.Fatalf("%s: only %d system calls; is it an strace list?", file, len(names))
		}
		for _, name := range names {
			if name == "bpf" {
				// --steer load's program: like Docker's default, the
				// profile allows bpf only with CAP_BPF or CAP_SYS_ADMIN;
				// refused, zerosys logs one line and uses the kernel's
				// hash (cmd/zerosys TestSteerWithoutBPF).
				continue
			}
			if !p.allowedForUnprivilegedAMD64(name) {
				t.Errorf("%s: zerosys calls %s, which the profile refuses", file, name)
			}
		}
	}
}

func readList(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := strings.TrimSpace(s.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (r syscallRule) names() []string {
	if r.Name != "" {
		return append([]string{r.Name}, r.Names...)
	}
	return r.Names
}

func (p profile) unconditionallyAllowed(name string) bool {
	for _, r := range p.Syscalls {
		if r.Action == "SCMP_ACT_ALLOW" && r.Args == nil && r.Includes == nil && r.Excludes == nil &&
			slices.Contains(r.names(), name) {
			return true
		}
	}
	return false
}

// allowedForUnprivilegedAMD64 evaluates the rules the way Docker does for a
// container without added capabilities on amd64: rules gated on a
// capability do not apply, rules gated on another architecture do not
// apply, argument-conditioned allows count (clone with no namespace flag,
// socket of any family but AF_VSOCK). clone3 answered with ENOSYS counts:
// libc and Go fall back to clone, which the masked rule allows.
func (p profile) allowedForUnprivilegedAMD64(name string) bool {
	for _, r := range p.Syscalls {
		if !slices.Contains(r.names(), name) {
			continue
		}
		if r.Includes != nil && (len(r.Includes.Caps) > 0 ||
			(len(r.Includes.Arches) > 0 && !slices.Contains(r.Includes.Arches, "amd64"))) {
			continue
		}
		if r.Excludes != nil && slices.Contains(r.Excludes.Arches, "amd64") {
			continue
		}
		switch {
		case r.Action == "SCMP_ACT_ALLOW":
			return true
		case name == "clone3" && r.Action == "SCMP_ACT_ERRNO" && r.ErrnoRet != nil && *r.ErrnoRet == 38:
			return p.allowedForUnprivilegedAMD64("clone")
		}
	}
	return false
}

// The Dockerfile: a Go build stage that makes a static binary with the
// flag giouring needs, a distroless/scratch final stage, a non-root user.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	type stage struct {
		from  string
		lines []string
		user  string
	}
	var stages []*stage
	var logical []string
	cont := ""
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || l == "" && cont == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cont += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		logical = append(logical, cont+l)
		cont = ""
	}
	for _, l := range logical {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			if len(f) < 2 {
				t.Fatalf("bad FROM line %q", l)
			}
			stages = append(stages, &stage{from: f[1]})
			continue
		case "USER":
			if len(stages) > 0 && len(f) > 1 {
				stages[len(stages)-1].user = f[1]
			}
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %q", l)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build := stages[0]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.from)
	}
	var buildRun string
	for _, l := range build.lines {
		if strings.Contains(l, "go build") {
			buildRun = l
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-checklinkname=0", "./cmd/zerosys"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("go build line %q lacks %s", buildRun, want)
		}
	}
	final := stages[len(stages)-1]
	if !(final.from == "scratch" || strings.HasPrefix(final.from, "gcr.io/distroless/static")) {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", final.from)
	}
	u := strings.SplitN(final.user, ":", 2)[0]
	if u == "" || u == "0" || u == "root" {
		t.Errorf("final stage USER %q: must be a non-root user", final.user)
	}
	joined := strings.Join(final.lines, "\n")
	for _, want := range []string{"COPY --from=", "ENTRYPOINT", "ZEROSYS_METRICS_ADDR=0.0.0.0:9090", "EXPOSE 8080 9090"} {
		if !strings.Contains(joined, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
	// The documented run line uses this profile and a cpuset.
	for _, want := range []string{"--security-opt seccomp=deploy/container/seccomp-zerosys.json", "--cpuset-cpus"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("Dockerfile's usage comment lacks %q", want)
		}
	}
}
