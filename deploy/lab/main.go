// Command zslab is zerosys's load-balanced lab on one machine.
//
// It builds hosts out of network namespaces joined by veth pairs to a
// bridge that lives in a namespace of its own (nothing is added to the
// machine's own namespace, and the test addresses, 10.201.0.0/24, exist only
// inside the namespaces): a client, a load balancer running HAProxy with
// deploy/haproxy/haproxy.cfg, and three zerosys hosts. Under a bounded load
// from the client it then
//
//  1. restarts every zerosys in turn (SIGTERM, drain, exit, start, ready in
//     HAProxy) — no request may fail;
//  2. SIGKILLs one and restores it — only requests in flight on it may
//     fail; HAProxy's times to mark it down and up again are reported;
//  3. makes one zerosys fail every request, then one slower than HAProxy's
//     server timeout, at run time (PUT /behaviour), and reports what HAProxy
//     did: the client requests that failed, when it marked the server down,
//     the retries (faults.go);
//  4. in a namespace of its own, upgrades a zerosys in place: a new one
//     joins the port with --allow-shared-port, the old one gets SIGTERM,
//     with net.ipv4.tcp_migrate_req 0 and 1.
//
// Every request the client makes is counted exactly, by the phase in which
// it started: answered 200, another status, or failed (connect error,
// reset, closed before the answer, timeout). There are no retries in the
// client, so nothing is hidden.
//
// It must run as root. It refuses to start while namespaces with its prefix
// hold processes, removes empty ones left by an interrupted run, and
// removes everything it made on exit, also on SIGINT/SIGTERM.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	flagBin        = flag.String("bin", "bin/zerosys", "zerosys binary")
	flagHAProxyCfg = flag.String("haproxy-cfg", "deploy/haproxy/haproxy.cfg", "HAProxy configuration to run on the LB host")
	flagProto      = flag.String("proto", "h1", "what HAProxy speaks to the zerosys hosts: h1 (HTTP/1.1) or h2 (HTTP/2 over cleartext: server ... proto h2)")
	flagSeconds    = flag.Int("seconds", 30, "target length of the load-balanced run, seconds")
	flagConns      = flag.Int("conns", 16, "client connections through the load balancer")
	flagRate       = flag.Int("rate", 3000, "requests per second through the load balancer, all connections together (0: as fast as answered)")
	flagUpRate     = flag.Int("upgrade-rate", 3000, "requests per second in the upgrade test (half of the connections open a new connection per request)")
	flagUpCycles   = flag.Int("upgrade-cycles", 3, "in-place upgrades per tcp_migrate_req setting")
	flagShort      = flag.Bool("short", false, "short run for CI: shorter steady phases, one upgrade per setting")
	flagUpgrade    = flag.Bool("upgrade", true, "run the in-place upgrade test")
	flagLB         = flag.Bool("lb", true, "run the load-balanced part (rolling restart and crash behind HAProxy)")
	flagPrefix     = flag.String("prefix", "zslab", "prefix of every namespace this lab makes")
	flagMaxReqs    = flag.Int64("max-requests", 20_000_000, "hard bound on requests per load")
	flagPidFile    = flag.String("pidfile", "", "also list every started PID here (for a wrapper's last-resort cleanup)")
	flagKeep       = flag.Bool("keep-logs", false, "keep the work directory (zerosys and HAProxy logs)")
	flagDrainDelay = flag.String("drain-delay", "3s", "zerosys --drain-delay behind HAProxy: longer than HAProxy needs to see /readyz fail (fall 2, fastinter 500ms)")
	flagDrainTmo   = flag.String("drain-timeout", "10s", "zerosys --drain-timeout; HAProxy keeps idle connections to a DOWN server open, so a restart lasts drain-delay + drain-timeout")
)

const (
	subnet      = "10.201.0"
	lbIP        = subnet + ".10"
	clientIP    = subnet + ".2"
	dialTimeout = 3 * time.Second
	reqTimeout  = 5 * time.Second
)

// quit is closed on SIGINT/SIGTERM/SIGHUP: every wait in the lab returns
// early and the run goes straight to cleanup.
var quit = make(chan struct{})

func interrupted() bool {
	select {
	case <-quit:
		return true
	default:
		return false
	}
}

func main() {
	flag.Parse()
	os.Exit(run())
}

// ---------------------------------------------------------------------------
// Namespaces.

func nsName(h string) string { return *flagPrefix + "-" + h }

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ourNamespaces lists existing namespaces with this lab's prefix.
func ourNamespaces() []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var ns []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasPrefix(f[0], *flagPrefix+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}

func nsPids(ns string) []string {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	return strings.Fields(string(out))
}

// inNS runs f on an OS thread switched into network namespace ns: sockets
// f creates belong to that namespace for their whole life.
func inNS(ns string, f func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := setns(target.Fd()); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := f()
	if err := setns(self.Fd()); err != nil {
		// The thread stays locked and ends with this goroutine's
		// thread: the runtime never reuses it in the wrong namespace.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// sysSetns is setns(2)'s number; the syscall package does not name it.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346, "arm": 375}[runtime.GOARCH]

func setns(fd uintptr) error {
	if sysSetns == 0 {
		return fmt.Errorf("setns: unknown system call number on %s", runtime.GOARCH)
	}
	if _, _, e := syscall.RawSyscall(sysSetns, fd, syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}

func dialIn(ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, dialTimeout)
		return err
	})
	return c, err
}

func sysctlIn(ns, key, value string) error {
	return inNS(ns, func() error {
		return os.WriteFile("/proc/sys/"+strings.ReplaceAll(key, ".", "/"), []byte(value), 0)
	})
}

// httpStatus makes one GET and returns the status code.
func httpStatus(ns, addr, path string) (int, error) {
	return httpDo(ns, addr, "GET "+path+" HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")
}

// httpDo sends one request (its whole head) and returns the status code.
func httpDo(ns, addr, request string) (int, error) {
	c, err := dialIn(ns, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	return strconv.Atoi(f[1])
}

// ---------------------------------------------------------------------------
// Processes. Every process the lab starts is recorded; cleanup kills those
// still running, by PID.

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

type lab struct {
	dir      string
	bin      string
	drain    bool
	faults   bool // the binary changes its behaviour at run time (PUT /behaviour)
	mu       sync.Mutex
	procs    []*proc
	pidFile  *os.File
	made     []string // namespaces, in creation order
	haSock   string
	stats    *haStats
	failures []string
}

func (l *lab) start(name, ns string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// `ip netns exec` execs the command: the PID is the server's. It dies
	// with the lab even if the lab is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	fmt.Fprintln(l.pidFile, cmd.Process.Pid)
	l.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(s os.Signal) { p.cmd.Process.Signal(s) }

func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-quit:
		return false
	case <-time.After(d):
		return false
	}
}

// reap waits for a process the lab is ending anyway (cleanup), ignoring quit.
func (p *proc) reap(d time.Duration) {
	select {
	case <-p.done:
	case <-time.After(d):
	}
}

func (l *lab) cleanup() {
	l.mu.Lock()
	procs := append([]*proc(nil), l.procs...)
	l.mu.Unlock()
	for _, p := range procs {
		if p.alive() {
			p.signal(syscall.SIGKILL)
			p.reap(5 * time.Second)
		}
	}
	for i := len(l.made) - 1; i >= 0; i-- {
		if err := ip("netns", "del", l.made[i]); err != nil {
			fmt.Fprintln(os.Stderr, "lab: cleanup:", err)
		}
	}
	if l.pidFile != nil {
		l.pidFile.Close()
	}
}

// ---------------------------------------------------------------------------
// Topology.

var zsHosts = []struct{ name, ip string }{{"zs1", subnet + ".11"}, {"zs2", subnet + ".12"}, {"zs3", subnet + ".13"}}

func (l *lab) addNS(h string) error {
	ns := nsName(h)
	if err := ip("netns", "add", ns); err != nil {
		return err
	}
	l.made = append(l.made, ns)
	return ip("-n", ns, "link", "set", "lo", "up")
}

func (l *lab) topology() error {
	sw := nsName("sw")
	if err := l.addNS("sw"); err != nil {
		return err
	}
	if err := ip("-n", sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := ip("-n", sw, "link", "set", "br0", "up"); err != nil {
		return err
	}
	hosts := []struct{ name, ip string }{{"client", clientIP}, {"lb", lbIP}}
	hosts = append(hosts, zsHosts...)
	for _, h := range hosts {
		if err := l.addNS(h.name); err != nil {
			return err
		}
		ns := nsName(h.name)
		port := "p-" + h.name
		for _, args := range [][]string{
			{"-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", sw, "link", "set", port, "master", "br0"},
			{"-n", sw, "link", "set", port, "up"},
			{"-n", ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
		} {
			if err := ip(args...); err != nil {
				return err
			}
		}
	}
	// The upgrade host: loopback only.
	if *flagUpgrade {
		if err := l.addNS("up"); err != nil {
			return err
		}
	}
	// The client may open many connections.
	return sysctlIn(nsName("client"), "net.ipv4.ip_local_port_range", "10000 65000")
}

// ---------------------------------------------------------------------------
// zerosys instances.

type zs struct {
	name, ns, ip   string
	addr, metrics  string
	extra          []string
	p              *proc
	starts, exits0 int
}

func (l *lab) startZS(z *zs) error {
	args := []string{l.bin, "--sqpoll", "off", "--shards", "1", "--addr", z.addr, "--metrics-addr", z.metrics,
		"--log-format", "text"}
	if l.drain {
		args = append(args, "--drain-delay", *flagDrainDelay, "--drain-timeout", *flagDrainTmo)
	}
	if l.faults {
		args = append(args, "--admin-token", labToken)
	}
	args = append(args, z.extra...)
	p, err := l.start(z.name, z.ns, args...)
	if err != nil {
		return err
	}
	z.p = p
	z.starts++
	return nil
}

func (l *lab) waitReady(z *zs, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !interrupted() {
		if !z.p.alive() {
			return fmt.Errorf("%s exited during start-up (%v); see its log", z.name, z.p.err)
		}
		if code, err := httpStatus(z.ns, z.metrics, "/readyz"); err == nil && code == 200 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v", z.name, d)
}

// ---------------------------------------------------------------------------
// HAProxy and its stats socket.

func (l *lab) haproxyConfig() (string, error) {
	src, err := os.ReadFile(*flagHAProxyCfg)
	if err != nil {
		return "", err
	}
	l.haSock = filepath.Join(l.dir, "haproxy.sock")
	var out []string
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "user "), strings.HasPrefix(t, "group "):
			// The lab's HAProxy stays root: a process that changes its
			// credentials loses its parent-death signal, and this one
			// must die with the lab.
			line = "    # " + t + " (lab: stays root)"
		case strings.HasPrefix(t, "maxconn "):
			// HAProxy sizes its descriptor limit from this; the lab's
			// few hundred connections need far less than a real LB.
			line = "    maxconn 4000"
		case strings.HasPrefix(t, "default-server ") && *flagProto == "h2":
			line += " proto h2" // HTTP/2 over cleartext, prior knowledge, to every zerosys host
		case strings.HasPrefix(t, "http-check send ") && *flagProto == "h2":
			// The checks stay HTTP/1.1, on the metrics port: without an
			// explicit connect rule they would take the server's h2.
			line = "    http-check connect port 9090 proto h1\n" + line
		case strings.HasPrefix(t, "stats socket "):
			line = "    stats socket " + l.haSock + " mode 600 level admin"
		case strings.HasPrefix(t, "log /dev/log"):
			// No syslog in the lab: state changes go to the log file.
			if strings.Contains(t, "notice") {
				line = "    log stderr format iso local1 notice"
			} else {
				line = "    # " + t + " (lab: no syslog)"
			}
		}
		out = append(out, line)
	}
	if l.faults {
		out = append(out, faultSections(src)...)
	}
	cfg := filepath.Join(l.dir, "haproxy.cfg")
	return cfg, os.WriteFile(cfg, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

type transition struct {
	at     time.Time
	server string
	status string
}

type haStats struct {
	mu      sync.Mutex
	status  map[string]string
	changes []transition
	stop    chan struct{}
	done    chan struct{}
}

func (l *lab) watchHAProxy() {
	s := &haStats{status: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	l.stats = s
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := showStat(l.haSock); err == nil {
				now := time.Now()
				s.mu.Lock()
				for srv, status := range st {
					if s.status[srv] != status {
						s.changes = append(s.changes, transition{now, srv, status})
						s.status[srv] = status
					}
				}
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// statRows runs HAProxy's "show stat" and returns its rows and the index
// of each column.
func statRows(sock string) ([][]string, map[string]int, error) {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "show stat\n"); err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(c)
	if err != nil {
		return nil, nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(data), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, nil, fmt.Errorf("show stat: %v", err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	return rows[1:], col, nil
}

// showStat returns the servers' check status (UP, DOWN, "UP 1/2" while
// going down, "DOWN 1/2" while coming up, ...): be_zerosys's by name,
// be_faults's by faultKey.
func showStat(sock string) (map[string]string, error) {
	rows, col, err := statRows(sock)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, row := range rows {
		if len(row) <= col["status"] || !strings.HasPrefix(row[col["svname"]], "zs") {
			continue
		}
		switch row[col["pxname"]] {
		case "be_zerosys":
			out[row[col["svname"]]] = row[col["status"]]
		case "be_faults":
			out[faultKey(row[col["svname"]])] = row[col["status"]]
		}
	}
	return out, nil
}

// backendCounters returns be_zerosys's error, retry and 5xx counters.
func backendCounters(sock string) (string, error) {
	rows, col, err := statRows(sock)
	if err != nil {
		return "", err
	}
	for _, row := range rows {
		if row[col["pxname"]] != "be_zerosys" || row[col["svname"]] != "BACKEND" {
			continue
		}
		var parts []string
		for _, k := range []string{"stot", "econ", "eresp", "wretr", "wredis", "hrsp_2xx", "hrsp_5xx", "cli_abrt", "srv_abrt"} {
			if i, ok := col[k]; ok && i < len(row) {
				parts = append(parts, k+"="+row[i])
			}
		}
		return strings.Join(parts, " "), nil
	}
	return "", fmt.Errorf("no be_zerosys row")
}

// waitStatus waits until HAProxy reports server in the given state (UP or
// DOWN exactly) and returns when it first did.
func (s *haStats) waitStatus(server, status string, since time.Time, d time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(d)
	for {
		s.mu.Lock()
		for _, c := range s.changes {
			if c.server == server && c.status == status && !c.at.Before(since) {
				s.mu.Unlock()
				return c.at, true
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) || interrupted() {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *haStats) current(server string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[server]
}

// ---------------------------------------------------------------------------
// The client: every request counted, by the phase in which it started.

type kind int

const (
	kOK kind = iota
	kStatus
	kConnect
	kReset
	kEOF
	kTimeout
	kOther
	nKinds
)

var kindNames = [nKinds]string{"ok", "status", "connect", "reset", "eof", "timeout", "other"}

type phase struct {
	name   string
	kinds  [nKinds]atomic.Int64
	conns  atomic.Int64
	slow   atomic.Int64 // answered, but after a second or more (a dropped SYN retransmitted)
	slow01 atomic.Int64 // answered after 100 ms or more (a retried timeout)
	maxLat atomic.Int64
	mu     sync.Mutex
	codes  map[int]int64
	errs   map[string]int64
	when   []string // the first failures: when (since the load started) and what
}

// loadStart is when the current load began; failures are timed from it.
var loadStart atomic.Int64

func newPhase(name string) *phase {
	return &phase{name: name, codes: map[int]int64{}, errs: map[string]int64{}}
}

func (p *phase) requests() int64 {
	var n int64
	for i := range p.kinds {
		n += p.kinds[i].Load()
	}
	return n
}

func (p *phase) failed() int64 { return p.requests() - p.kinds[kOK].Load() }

func (p *phase) record(k kind, code int, err error, lat time.Duration) {
	p.kinds[k].Add(1)
	if k == kOK && lat >= time.Second {
		p.slow.Add(1)
	}
	if k == kOK && lat >= 100*time.Millisecond {
		p.slow01.Add(1)
	}
	for {
		m := p.maxLat.Load()
		if int64(lat) <= m || p.maxLat.CompareAndSwap(m, int64(lat)) {
			break
		}
	}
	if k == kStatus || err != nil {
		p.mu.Lock()
		if k == kStatus {
			p.codes[code]++
		}
		if err != nil && len(p.errs) < 20 {
			p.errs[shortErr(err)]++
		}
		if k != kOK && len(p.when) < 5 {
			p.when = append(p.when, fmt.Sprintf("%s@%.2fs", kindNames[k],
				time.Since(time.Unix(0, loadStart.Load())).Seconds()))
		}
		p.mu.Unlock()
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	return s
}

func (p *phase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d ok=%d failed=%d", p.requests(), p.kinds[kOK].Load(), p.failed())
	for k := kStatus; k < nKinds; k++ {
		if n := p.kinds[k].Load(); n > 0 {
			fmt.Fprintf(&b, " %s=%d", kindNames[k], n)
		}
	}
	p.mu.Lock()
	codes := make([]int, 0, len(p.codes))
	for c := range p.codes {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, " http_%d=%d", c, p.codes[c])
	}
	var errs []string
	for e, n := range p.errs {
		errs = append(errs, fmt.Sprintf("%q×%d", e, n))
	}
	p.mu.Unlock()
	sort.Strings(errs)
	fmt.Fprintf(&b, " new_conns=%d slow_100ms=%d slow_1s=%d max_latency=%s", p.conns.Load(), p.slow01.Load(), p.slow.Load(), time.Duration(p.maxLat.Load()).Round(time.Millisecond))
	if len(errs) > 0 {
		fmt.Fprintf(&b, " errors=[%s]", strings.Join(errs, " "))
	}
	p.mu.Lock()
	if len(p.when) > 0 {
		fmt.Fprintf(&b, " first_failures=[%s]", strings.Join(p.when, " "))
	}
	p.mu.Unlock()
	return b.String()
}

type load struct {
	ns, addr string
	conns    int
	closeN   int // how many of the connections send Connection: close
	rate     int
	cur      atomic.Pointer[phase]
	phases   []*phase
	total    atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newLoad(ns, addr string, conns, closeN, rate int, first string) *load {
	ld := &load{ns: ns, addr: addr, conns: conns, closeN: closeN, rate: rate, stop: make(chan struct{})}
	ld.setPhase(first)
	return ld
}

func (ld *load) setPhase(name string) *phase {
	p := newPhase(name)
	ld.phases = append(ld.phases, p)
	ld.cur.Store(p)
	return p
}

func (ld *load) start(ctx context.Context) {
	loadStart.Store(time.Now().UnixNano())
	for i := 0; i < ld.conns; i++ {
		ld.wg.Add(1)
		go ld.worker(ctx, i, i < ld.closeN)
	}
}

func (ld *load) finish() {
	close(ld.stop)
	ld.wg.Wait()
}

func classify(err error) kind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return kReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return kEOF
	case errors.As(err, &ne) && ne.Timeout():
		return kTimeout
	}
	return kOther
}

func (ld *load) worker(ctx context.Context, id int, closeMode bool) {
	defer ld.wg.Done()
	var interval time.Duration
	if ld.rate > 0 {
		interval = time.Duration(int64(time.Second) * int64(ld.conns) / int64(ld.rate))
	}
	next := time.Now().Add(time.Duration(id) * interval / time.Duration(ld.conns))
	var conn net.Conn
	var br *bufio.Reader
	req := "GET /lab HTTP/1.1\r\nHost: lab\r\n\r\n"
	if closeMode {
		req = "GET /lab HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n"
	}
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-ld.stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		if ld.total.Add(1) > *flagMaxReqs {
			return
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			if time.Until(next) < -time.Second { // fell behind: do not burst
				next = time.Now()
			}
		}
		ph := ld.cur.Load()
		t0 := time.Now()
		if conn == nil {
			c, err := dialIn(ld.ns, ld.addr)
			if err != nil {
				ph.record(kConnect, 0, err, time.Since(t0))
				time.Sleep(10 * time.Millisecond)
				continue
			}
			ph.conns.Add(1)
			conn, br = c, bufio.NewReaderSize(c, 4096)
		}
		code, keep, err := roundTrip(conn, br, req)
		lat := time.Since(t0)
		switch {
		case err != nil:
			ph.record(classify(err), 0, err, lat)
		case code != 200:
			ph.record(kStatus, code, nil, lat)
		default:
			ph.record(kOK, code, nil, lat)
		}
		if err != nil || !keep || closeMode {
			conn.Close()
			conn = nil
		}
	}
}

// roundTrip writes one request and reads one complete response.
func roundTrip(c net.Conn, br *bufio.Reader, req string) (code int, keep bool, err error) {
	c.SetDeadline(time.Now().Add(reqTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		return 0, false, err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return 0, false, err
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	code, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = f[0] == "HTTP/1.1"
	length := -1
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			return code, false, io.ErrUnexpectedEOF
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			length, _ = strconv.Atoi(value)
		case "connection":
			if strings.EqualFold(value, "close") {
				keep = false
			}
		case "transfer-encoding":
			return code, false, fmt.Errorf("unexpected Transfer-Encoding %q", value)
		}
	}
	if length < 0 {
		return code, false, fmt.Errorf("response without Content-Length")
	}
	if _, err := io.CopyN(io.Discard, br, int64(length)); err != nil {
		return code, false, io.ErrUnexpectedEOF
	}
	return code, keep, nil
}

// ---------------------------------------------------------------------------
// The run.

func (l *lab) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.failures = append(l.failures, msg)
	fmt.Println("lab: FAIL:", msg)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func run() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab: must run as root (network namespaces)")
		return 2
	}
	for _, tool := range []string{"ip", "haproxy"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "lab: %s is missing\n", tool)
			return 2
		}
	}
	bin, err := filepath.Abs(*flagBin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab: zerosys binary:", err)
		return 2
	}
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	drain := strings.Contains(string(help), "--drain-delay")
	shared := strings.Contains(string(help), "--allow-shared-port")

	// Namespaces of an earlier run: refuse if anything runs in them,
	// remove them if they are empty.
	for _, ns := range ourNamespaces() {
		if pids := nsPids(ns); len(pids) > 0 {
			fmt.Fprintf(os.Stderr, "lab: namespace %s exists and runs processes %v: another lab is running, or stop those first\n", ns, pids)
			return 2
		}
	}
	for _, ns := range ourNamespaces() {
		fmt.Fprintf(os.Stderr, "lab: removing stale namespace %s from an interrupted run\n", ns)
		if err := ip("netns", "del", ns); err != nil {
			fmt.Fprintln(os.Stderr, "lab:", err)
			return 2
		}
	}

	dir, err := os.MkdirTemp("", "zslab-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		return 2
	}
	l := &lab{dir: dir, bin: bin, drain: drain, faults: strings.Contains(string(help), "--admin-token")}
	pidPath := filepath.Join(dir, "pids")
	if *flagPidFile != "" {
		pidPath = *flagPidFile
	}
	l.pidFile, _ = os.Create(pidPath)
	os.Chmod(dir, 0o755) // HAProxy drops to its own user

	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		if s, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "lab: interrupted by", s, "- cleaning up")
			close(quit)
			cancel()
		}
	}()
	code := l.main(ctx, drain, shared)
	if l.stats != nil {
		close(l.stats.stop)
		<-l.stats.done
	}
	l.cleanup()
	signal.Stop(sigs)
	if code != 0 || *flagKeep {
		fmt.Println("lab: logs kept in", dir)
	} else {
		os.RemoveAll(dir)
	}
	if ctx.Err() != nil && code == 0 {
		code = 130
	}
	return code
}

func (l *lab) main(ctx context.Context, drain, shared bool) int {
	fmt.Printf("lab: zerosys %s; graceful drain in this binary: %v; --allow-shared-port: %v\n", l.bin, drain, shared)
	if err := l.topology(); err != nil {
		fmt.Println("lab: topology:", err)
		return 1
	}
	var r lbResult
	if *flagLB {
		var ok bool
		if r, ok = l.lbRun(ctx, drain); !ok {
			return 1
		}
	}

	// 4. In-place upgrade.
	up0, up1 := "n/a", "n/a"
	if *flagUpgrade && ctx.Err() == nil {
		if !shared {
			fmt.Println("lab: upgrade: skipped, the binary has no --allow-shared-port")
		} else {
			up0 = l.upgrade(ctx, 0)
			if ctx.Err() == nil {
				up1 = l.upgrade(ctx, 1)
			}
		}
	}

	if ctx.Err() != nil {
		l.fail("interrupted")
	}
	faults := "faults=n/a"
	if f := r.faults; f.ran {
		faults = fmt.Sprintf("failing_failed=%d failing_down=%s failing_downs=%d slow_failed=%d slow_retries=%d",
			f.failFailed, secs(f.failDown), f.failDowns, f.slowFailed, f.slowRetries)
	}
	fmt.Printf("lab: requests=%d failed=%d rolling_failed=%d crash_failed=%d crash_down=%s crash_up=%s %s upgrade_failed_migrate0=%s upgrade_failed_migrate1=%s drain=%v seconds=%.1f rps=%.0f\n",
		r.total, r.failed, r.rolling, r.crash, secs(r.crashDown), secs(r.crashUp), faults, up0, up1, drain,
		r.elapsed.Seconds(), float64(r.total)/max(r.elapsed.Seconds(), 1e-9))
	code := 0
	if r.rolling > 0 {
		fmt.Println("lab: FAIL: requests failed during the rolling restart")
		code = 1
	}
	if r.steady > 0 {
		// Reported, not failed on: the lab's verdict is about restarts.
		fmt.Println("lab: note: requests failed while nothing was restarted (see phase steady)")
	}
	if len(l.failures) > 0 {
		code = 1
	}
	if *flagLB && r.total == 0 {
		fmt.Println("lab: FAIL: no request was made")
		code = 1
	}
	return code
}

// lbResult is what the load-balanced part measured.
type lbResult struct {
	total, failed, rolling, crash, steady int64
	crashDown, crashUp, elapsed           time.Duration
	faults                                faultResult
}

// lbRun starts three zerosys and HAProxy, loads them through HAProxy and
// restarts (rolling) and kills (crash) zerosys under that load.
func (l *lab) lbRun(ctx context.Context, drain bool) (r lbResult, ok bool) {
	r.crashDown, r.crashUp = -1, -1
	var servers []*zs
	for _, h := range zsHosts {
		z := &zs{name: h.name, ns: nsName(h.name), ip: h.ip, addr: h.ip + ":8080", metrics: "0.0.0.0:9090"}
		if err := l.startZS(z); err != nil {
			fmt.Println("lab:", err)
			return r, false
		}
		servers = append(servers, z)
	}
	for _, z := range servers {
		z.metrics = z.ip + ":9090" // where to reach it
		if err := l.waitReady(z, 10*time.Second); err != nil {
			fmt.Println("lab:", err)
			return r, false
		}
	}
	cfg, err := l.haproxyConfig()
	if err != nil {
		fmt.Println("lab:", err)
		return r, false
	}
	if _, err := l.start("haproxy", nsName("lb"), "haproxy", "-db", "-f", cfg); err != nil {
		fmt.Println("lab: haproxy:", err)
		return r, false
	}
	// Wait for HAProxy's socket, then for all three servers UP.
	l.watchHAProxy()
	for _, z := range servers {
		if _, ok := l.stats.waitStatus(z.name, "UP", time.Time{}, 10*time.Second); !ok {
			fmt.Printf("lab: HAProxy did not report %s UP (status %q)\n", z.name, l.stats.current(z.name))
			return r, false
		}
	}
	fmt.Printf("lab: hosts up: client %s -> HAProxy %s:80 -> zerosys %s, %s, %s (each --sqpoll off --shards 1)\n",
		clientIP, lbIP, servers[0].ip, servers[1].ip, servers[2].ip)

	pre, mid, tail := 3*time.Second, 2*time.Second, 2*time.Second
	if *flagShort {
		pre, mid, tail = time.Second, time.Second, time.Second
	}
	start := time.Now()
	hardStop := start.Add(time.Duration(*flagSeconds)*time.Second + 120*time.Second)
	ld := newLoad(nsName("client"), lbIP+":80", *flagConns, 0, *flagRate, "steady")
	ld.start(ctx)
	fmt.Printf("lab: load: %d keep-alive connections, %s through HAProxy\n", *flagConns, rateText(*flagRate))
	defer func() {
		select {
		case <-ld.stop:
		default:
			ld.finish()
		}
	}()

	ok = sleepCtx(ctx, pre)

	// 1. Rolling restart.
	rolling := ld.setPhase("rolling")
	for _, z := range servers {
		if !ok || interrupted() || time.Now().After(hardStop) {
			break
		}
		t0 := time.Now()
		oldP := z.p
		z.p.signal(syscall.SIGTERM)
		down, downOK := l.stats.waitStatus(z.name, "DOWN", t0, 15*time.Second)
		exited := z.p.wait(30 * time.Second)
		tExit := time.Since(t0)
		if interrupted() {
			break
		}
		if !exited {
			l.fail("%s did not exit within 30s of SIGTERM", z.name)
			z.p.signal(syscall.SIGKILL)
			z.p.wait(5 * time.Second)
		} else if z.p.err != nil && drain {
			l.fail("%s exited with %v after SIGTERM (want 0)", z.name, z.p.err)
		}
		t1 := time.Now()
		if err := l.startZS(z); err != nil {
			l.fail("restart %s: %v", z.name, err)
			break
		}
		if err := l.waitReady(z, 10*time.Second); err != nil {
			l.fail("%v", err)
			break
		}
		tReady := time.Since(t1)
		up, upOK := l.stats.waitStatus(z.name, "UP", t1, 15*time.Second)
		if !upOK {
			l.fail("HAProxy did not mark %s UP again within 15s", z.name)
			break
		}
		fmt.Printf("lab: rolling %s: SIGTERM -> HAProxy DOWN %s, exit %s (code %v); start -> /readyz %s, HAProxy UP %s\n",
			z.name, durOr(down, t0, downOK), secs(tExit), exitCode(oldP), secs(tReady), secs(up.Sub(t1)))
	}

	// 2. Crash.
	if ok {
		ld.setPhase("steady")
		ok = sleepCtx(ctx, mid)
	}
	crash := ld.setPhase("crash")
	var crashDown, crashUp time.Duration = -1, -1
	// The phase starts before the kill, so every request in flight when
	// it lands started in this phase.
	if ok = ok && sleepCtx(ctx, 250*time.Millisecond); ok {
		z := servers[1]
		t0 := time.Now()
		z.p.signal(syscall.SIGKILL)
		z.p.wait(5 * time.Second)
		down, downOK := l.stats.waitStatus(z.name, "DOWN", t0, 10*time.Second)
		if downOK {
			crashDown = down.Sub(t0)
		} else {
			l.fail("HAProxy did not mark %s DOWN within 10s of SIGKILL", z.name)
		}
		t1 := time.Now()
		if err := l.startZS(z); err != nil {
			l.fail("restart %s: %v", z.name, err)
		} else if err := l.waitReady(z, 10*time.Second); err != nil {
			l.fail("%v", err)
		} else if up, upOK := l.stats.waitStatus(z.name, "UP", t1, 15*time.Second); upOK {
			crashUp = up.Sub(t1)
		} else {
			l.fail("HAProxy did not mark %s UP again within 15s", z.name)
		}
		fmt.Printf("lab: crash %s: SIGKILL -> HAProxy DOWN %s; restart -> HAProxy UP %s\n", z.name, secs(crashDown), secs(crashUp))
	}
	if ok {
		ld.setPhase("steady")
		rest := time.Until(start.Add(time.Duration(*flagSeconds) * time.Second))
		if rest < tail {
			rest = tail
		}
		sleepCtx(ctx, rest)
	}
	ld.finish()
	elapsed := time.Since(start)

	// Per-phase figures (steady phases summed).
	steady := newPhase("steady")
	var all [nKinds]int64
	for _, p := range ld.phases {
		for k := range all {
			all[k] += p.kinds[k].Load()
		}
		if p.name == "steady" {
			mergePhase(steady, p)
		}
	}
	for _, n := range all {
		r.total += n
	}
	r.failed = r.total - all[kOK]
	r.rolling, r.crash, r.steady = rolling.failed(), crash.failed(), steady.failed()
	r.crashDown, r.crashUp, r.elapsed = crashDown, crashUp, elapsed
	fmt.Printf("lab: phase steady:  %s\n", steady)
	fmt.Printf("lab: phase rolling: %s\n", rolling)
	fmt.Printf("lab: phase crash:   %s\n", crash)
	fmt.Printf("lab: HAProxy transitions:%s\n", l.transitions(start))
	if be, err := backendCounters(l.haSock); err == nil {
		fmt.Printf("lab: HAProxy be_zerosys: %s\n", be)
	}

	// 3. Faults injected at run time: one backend fails, one is slow. They
	// run on a load of their own through be_faults (fault settings of its
	// own), once the verdicts above are in, so that retries there cannot
	// hide a lost request above.
	if ok && l.faults {
		d := 4 * time.Second
		if *flagShort {
			d = 2 * time.Second
		}
		lf := newLoad(nsName("client"), lbIP+":81", *flagConns, 0, *flagRate, "steady")
		lf.start(ctx)
		if sleepCtx(ctx, time.Second) {
			r.faults, _ = l.injectFaults(ctx, lf, servers[0], servers[2], d)
		}
		lf.finish()
		fmt.Printf("lab: HAProxy transitions in be_faults:%s\n", l.transitionsOf(start, "f/"))
	}
	return r, true
}

func rateText(r int) string {
	if r <= 0 {
		return "as fast as answered"
	}
	return fmt.Sprintf("%d req/s", r)
}

func durOr(t, t0 time.Time, ok bool) string {
	if !ok {
		return "never"
	}
	return secs(t.Sub(t0))
}

func exitCode(p *proc) any {
	if p.cmd.ProcessState == nil {
		return "?"
	}
	return p.cmd.ProcessState.ExitCode()
}

func mergePhase(dst, src *phase) {
	for k := range dst.kinds {
		dst.kinds[k].Add(src.kinds[k].Load())
	}
	dst.conns.Add(src.conns.Load())
	dst.slow.Add(src.slow.Load())
	dst.slow01.Add(src.slow01.Load())
	if m := src.maxLat.Load(); m > dst.maxLat.Load() {
		dst.maxLat.Store(m)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	for c, n := range src.codes {
		dst.codes[c] += n
	}
	for e, n := range src.errs {
		dst.errs[e] += n
	}
	dst.when = append(dst.when, src.when...)
}

func (l *lab) transitions(since time.Time) string {
	l.stats.mu.Lock()
	defer l.stats.mu.Unlock()
	var b strings.Builder
	for _, c := range l.stats.changes {
		if c.at.Before(since) || strings.HasPrefix(c.server, "f/") {
			continue
		}
		fmt.Fprintf(&b, " %s@%.2fs=%q", c.server, c.at.Sub(since).Seconds(), c.status)
	}
	return b.String()
}

// transitionsOf is transitions of the servers whose key starts with prefix.
func (l *lab) transitionsOf(since time.Time, prefix string) string {
	l.stats.mu.Lock()
	defer l.stats.mu.Unlock()
	var b strings.Builder
	for _, c := range l.stats.changes {
		if !c.at.Before(since) && strings.HasPrefix(c.server, prefix) {
			fmt.Fprintf(&b, " %s@%.2fs=%q", strings.TrimPrefix(c.server, prefix), c.at.Sub(since).Seconds(), c.status)
		}
	}
	return b.String()
}

// upgrade runs in-place upgrades on one host: old and new zerosys share
// 127.0.0.1:8080 through SO_REUSEPORT; the old one gets SIGTERM once the
// new one is ready. Half the client's connections open a new connection
// per request (what a closing listener can lose), half keep theirs.
func (l *lab) upgrade(ctx context.Context, migrate int) string {
	ns := nsName("up")
	if err := sysctlIn(ns, "net.ipv4.tcp_migrate_req", strconv.Itoa(migrate)); err != nil {
		l.fail("upgrade: cannot set net.ipv4.tcp_migrate_req in %s: %v", ns, err)
		return "error"
	}
	sysctlIn(ns, "net.ipv4.ip_local_port_range", "10000 65000")
	cycles := *flagUpCycles
	if *flagShort {
		cycles = 1
	}
	gen := 0
	newZS := func() *zs {
		gen++
		return &zs{name: fmt.Sprintf("up%d-m%d", gen, migrate), ns: ns, addr: "127.0.0.1:8080",
			metrics: fmt.Sprintf("127.0.0.1:%d", 9090+gen), extra: []string{"--allow-shared-port", "--drain-delay", "0s"}}
	}
	old := newZS()
	old.extra = old.extra[1:] // the first one joins no group
	if err := l.startZS(old); err != nil {
		l.fail("upgrade: %v", err)
		return "error"
	}
	if err := l.waitReady(old, 10*time.Second); err != nil {
		l.fail("upgrade: %v", err)
		return "error"
	}
	conns := *flagConns
	if conns < 4 {
		conns = 4
	}
	ld := newLoad(ns, "127.0.0.1:8080", conns, conns/2, *flagUpRate, "before")
	ld.start(ctx)
	sleepCtx(ctx, time.Second)
	var during []*phase
	for i := 0; i < cycles && !interrupted(); i++ {
		ld.setPhase("running")
		nz := newZS()
		if err := l.startZS(nz); err != nil {
			l.fail("upgrade: %v", err)
			break
		}
		if err := l.waitReady(nz, 10*time.Second); err != nil {
			l.fail("upgrade: %v", err)
			break
		}
		sleepCtx(ctx, 300*time.Millisecond) // both serve
		ph := ld.setPhase("upgrade")
		during = append(during, ph)
		t0 := time.Now()
		old.p.signal(syscall.SIGTERM)
		if !old.p.wait(30*time.Second) && !interrupted() {
			l.fail("upgrade: %s did not exit within 30s of SIGTERM", old.name)
			old.p.signal(syscall.SIGKILL)
			old.p.wait(5 * time.Second)
		}
		texit := time.Since(t0)
		sleepCtx(ctx, 500*time.Millisecond)
		ld.setPhase("after")
		fmt.Printf("lab: upgrade migrate_req=%d #%d: old exited %s after SIGTERM (code %v)\n", migrate, i+1, secs(texit), exitCode(old.p))
		if old.p.err != nil {
			l.fail("upgrade: %s exited with %v after SIGTERM (want 0)", old.name, old.p.err)
		}
		old = nz
		sleepCtx(ctx, 500*time.Millisecond)
	}
	ld.finish()
	old.p.signal(syscall.SIGTERM)
	if !old.p.wait(30 * time.Second) {
		old.p.signal(syscall.SIGKILL)
		old.p.wait(5 * time.Second)
	}
	all := newPhase("all")
	upg := newPhase("upgrade")
	for _, p := range ld.phases {
		mergePhase(all, p)
	}
	for _, p := range during {
		mergePhase(upg, p)
	}
	fmt.Printf("lab: upgrade migrate_req=%d: %d upgrades; all: %s\n", migrate, cycles, all)
	fmt.Printf("lab: upgrade migrate_req=%d: from SIGTERM to exit + 0.5s: %s\n", migrate, upg)
	return strconv.FormatInt(all.failed(), 10)
}
