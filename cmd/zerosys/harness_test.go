package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"zerosys/affinity"
)

// binary is zerosys built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zerosys-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "zerosys")
	build := exec.Command("go", "build", "-ldflags=-checklinkname=0", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building zerosys:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running zerosys.
type proc struct {
	cmd     *exec.Cmd
	addr    string // serving address
	metrics string // metrics address
	mu      sync.Mutex
	stderr  bytes.Buffer
	exited  chan struct{}
	waitErr error
}

var servingLine = regexp.MustCompile(`msg="zerosys serving" addr=(\S+) metrics=(\S+)`)

// startZerosys runs zerosys on loopback ports the kernel picks, waits until
// it serves, and makes sure it is gone when the test ends.
func startZerosys(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCommand(t, exec.Command(binary, append([]string{"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, args...)...))
}

func startCommand(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill() // by PID: only the process this test started
			<-p.exited
		}
	})
	serving := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := servingLine.FindStringSubmatch(line); m != nil {
				serving <- [2]string{m[1], m[2]}
			}
		}
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-serving:
		p.addr, p.metrics = a[0], a[1]
	case <-p.exited:
		t.Fatalf("zerosys exited at start-up: %v\n%s", p.waitErr, p.log())
	case <-time.After(10 * time.Second):
		t.Fatalf("zerosys did not start within 10s:\n%s", p.log())
	}
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// stop sends SIGINT and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGINT)
	p.wait(t, 15*time.Second)
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("zerosys did not exit within %v:\n%s", d, p.log())
	}
	if p.waitErr != nil {
		t.Fatalf("zerosys exited with %v:\n%s", p.waitErr, p.log())
	}
}

// scrape returns the metrics zerosys serves, as sums by name and labels.
func (p *proc) scrape(t *testing.T) metrics {
	t.Helper()
	return parseMetrics(t, p.scrapeText(t))
}

// scrapeText returns /metrics as exposed.
func (p *proc) scrapeText(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// metrics maps "name{labels}" (labels as exposed) to a value.
type metrics map[string]float64

func parseMetrics(t *testing.T, text string) metrics {
	m := metrics{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds every series of name whose labels contain all of want (each
// like `code="200"`).
func (m metrics) sum(name string, want ...string) float64 {
	var total float64
	for k, v := range m {
		series, labels, _ := strings.Cut(k, "{")
		if series != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

// metricReaches scrapes p until the sum of name (over the series with
// the labels want) is v, for up to 2 s: shards publish their counters
// every millisecond or so, not at once. It returns the last sum.
func (p *proc) metricReaches(t *testing.T, v float64, name string, want ...string) float64 {
	t.Helper()
	n := p.scrape(t).sum(name, want...)
	for deadline := time.Now().Add(2 * time.Second); n != v && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n = p.scrape(t).sum(name, want...)
	}
	return n
}

// toolPackages names the Debian package of each tool the tests drive.
var toolPackages = map[string]string{
	"strace": "strace", "curl": "curl", "wrk": "wrk", "h2load": "nghttp2-client", "setpriv": "util-linux", "taskset": "util-linux",
	"ab": "apache2-utils", "hey": "hey", "ip": "iproute2", "nstat": "iproute2", "python3": "python3",
	"slowhttptest": "slowhttptest", "haproxy": "haproxy",
}

// needTool skips without the tool, except in CI, where its absence means
// .ci/run failed to install it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run must install it", name)
		}
		skip(t, name+" is not installed", toolPackages[name])
	}
	return path
}

// skip skips t and, under make test, records why and the package that
// would let it run, so the suite ends with one line that names them.
func skip(t *testing.T, why, pkg string) {
	t.Helper()
	if f := os.Getenv("ZEROSYS_SKIPPED"); f != "" {
		if out, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(out, "%s\t%s\t%s\n", t.Name(), why, pkg)
			out.Close()
		}
	}
	t.Skip(why)
}

// needCPUs skips unless the process may use at least n CPUs; it returns
// them.
func needCPUs(t *testing.T, n int) affinity.CPUSet {
	t.Helper()
	cpus, err := affinity.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < n {
		skip(t, fmt.Sprintf("needs %d CPUs, this process may use %s", n, cpus), "")
	}
	return cpus
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "needs root (network namespaces)", "")
	}
}
