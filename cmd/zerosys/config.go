package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"zerosys/affinity"
	"zerosys/listener/steer"
	"zerosys/shard"
	"zerosys/shard/httpwire"
)

// config is everything the command line and the environment decide.
type config struct {
	addr        string
	backlog     int
	allowShared bool
	steer       steer.Policy
	steerSpec   string

	shards     int
	cpus       string
	pollerCPUs string
	sqpoll     string
	sqIdle     time.Duration
	idle       string
	spinWindow time.Duration

	mode       string
	maxConns   int
	recvBuf    int
	recv       string
	recvMode   shard.RecvMode
	h2cMode    shard.H2CMode
	sendZC     bool
	spliceMin  int
	fixedFiles bool
	h2c        string
	h2Streams  int
	h2Window   int
	h2ConnWin  int

	statusSpec  string // --status: a status or a mix
	status      int    // the status the remainder of the mix gets
	statusMix   []shard.Share
	body        string
	bodyFile    string
	sizeSpec    string // --body-size: a size or a mix
	bodySize    int    // the size the remainder gets
	sizeBare    bool   // ... given bare (else the remainder keeps --body or the default)
	sizeMix     []shard.Share
	contentType string
	headers     headerList
	name        string
	servedBy    bool

	keepaliveRequests int
	closePercent      float64
	seed              uint64
	delaySpec         string        // --delay: a delay or a mix
	delay             time.Duration // the delay the remainder gets
	delayMix          []shard.Share // Value in microseconds
	maxDelay          time.Duration
	requestKnobs      bool
	maxBodySize       int

	maxHeaderBytes int
	maxBodyBytes   int64
	maxPipeline    int

	headerTimeout time.Duration
	idleTimeout   time.Duration
	sendTimeout   time.Duration
	lingerTimeout time.Duration

	metricsAddr  string
	adminToken   string
	drainDelay   time.Duration
	drainTimeout time.Duration

	logFormat string
	version   bool
}

// headerList is a repeatable --header flag.
type headerList []string

func (h *headerList) String() string { return strings.Join(*h, "\n") }

// Set adds one header line; from the environment twin, several lines
// separated by newlines.
func (h *headerList) Set(v string) error {
	for _, line := range strings.Split(v, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			*h = append(*h, line)
		}
	}
	return nil
}

const usageHead = `zerosys: an HTTP/1.1 server that answers every request with a prepared
response and spends no system call per request (io_uring, SQPOLL).

Usage:
  zerosys [flags]         serve
  zerosys check [flags]   report what this machine allows; exit 1 if zerosys cannot run as configured

Examples:
  zerosys                                   # :8080, a CPU plan that fits the machine
  zerosys --sqpoll off --shards 2           # no poller threads: for CPUs shared with other work
  zerosys --idle spin --cpus 0 --poller-cpus 1  # the original experiment: spin forever
  zerosys --cpus 0,2 --poller-cpus 1,3      # two shards, each poller on its own CPU
  zerosys check --addr :80                  # can this machine run zerosys on :80?
  zerosys --mode close                      # one answer per connection, then close
  zerosys --body-size 65536 --status 200    # a 64 KiB body for large-response tests
  zerosys --status 503:2 --close 5          # 2% of answers 503, 5% close their connection

Every flag has an environment twin: --max-conns is ZEROSYS_MAX_CONNS.
A flag given on the command line wins over its twin.

Flags:
`

// flagGroups orders --help output.
var flagGroups = []struct {
	title string
	names []string
}{
	{"Listening", []string{"addr", "backlog", "allow-shared-port", "steer"}},
	{"CPUs and rings", []string{"shards", "cpus", "poller-cpus", "sqpoll", "idle", "spin-window", "sq-idle"}},
	{"Connections", []string{"mode", "max-conns", "recv", "recv-buffer", "fixed-files", "h2c", "h2-max-streams", "h2-stream-window", "h2-conn-window", "max-pipeline", "header-timeout", "idle-timeout", "send-timeout", "linger-timeout"}},
	{"Requests", []string{"max-header-bytes", "max-body-bytes"}},
	{"Response", []string{"status", "body", "body-file", "body-size", "content-type", "header", "send-zc", "splice-min"}},
	{"Behaviour", []string{"delay", "max-delay", "keepalive-requests", "close", "seed", "name", "served-by", "request-knobs", "max-body-size"}},
	{"Operations", []string{"metrics-addr", "admin-token", "drain-delay", "drain-timeout", "log-format", "version"}},
}

func newFlagSet(c *config, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("zerosys", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", ":8080", "listen address host:port (\":8080\" is every IPv4 and IPv6 address)")
	fs.IntVar(&c.backlog, "backlog", 0, "listen backlog per shard (0: net.core.somaxconn, which caps it anyway)")
	fs.BoolVar(&c.allowShared, "allow-shared-port", false, "join a port another zerosys already serves with SO_REUSEPORT (zero-downtime upgrades); without it that is refused")
	fs.StringVar(&c.steerSpec, "steer", "load", "how new connections are spread over the shards: load (the shard with the fewest, by an eBPF program; needs CAP_BPF or root, else hash), round-robin (eBPF), cpu (the shard of the CPU the NIC delivers the SYN on, classic BPF) or hash (the kernel's hash of the 4-tuple)")
	fs.IntVar(&c.shards, "shards", 0, "number of shards (0: fit the CPUs, see README)")
	fs.StringVar(&c.cpus, "cpus", "", "CPUs for shard threads, like 0-3,8 (default: from the CPUs this process may use)")
	fs.StringVar(&c.pollerCPUs, "poller-cpus", "", "CPUs for SQPOLL kernel pollers, one per shard")
	fs.StringVar(&c.sqpoll, "sqpoll", "auto", "on: a kernel poller per shard submits its I/O, so serving costs no syscall; off: no poller, the shard submits and waits itself (for CPUs shared with other work); auto: on when every shard's poller gets a CPU of its own, else off")
	fs.StringVar(&c.idle, "idle", "adaptive", "with --sqpoll on: spin (busy-poll forever; the shard and its poller each need their own CPU) or adaptive (busy-poll under load, block in the kernel after --spin-window without completions)")
	fs.DurationVar(&c.spinWindow, "spin-window", 10*time.Millisecond, "with --idle adaptive: how long to busy-poll without completions before blocking")
	fs.DurationVar(&c.sqIdle, "sq-idle", 10*time.Millisecond, "how long an SQPOLL poller spins without work before it sleeps (rounded up to ms)")
	fs.StringVar(&c.mode, "mode", "keepalive", "keepalive: keep connections for further and pipelined requests; close: one answer per connection")
	fs.IntVar(&c.maxConns, "max-conns", 0, "connection slots per shard (0: the descriptor limit, raised to its hard limit, shared out over the shards); when nearly full, the connections longest waiting for a first request, then the longest idle, make room")
	fs.BoolVar(&c.fixedFiles, "fixed-files", false, "accept connections into each ring's own file table (no descriptor per connection, no descriptor lookup per operation; Linux 5.19+) instead of the process's descriptor table")
	fs.StringVar(&c.h2c, "h2c", "on", "HTTP/2 over cleartext: on (a client that opens with the HTTP/2 preface speaks HTTP/2, the rest HTTP/1.1), off (HTTP/1.1 only: the preface is answered 505), only (HTTP/2 only, for proxies set to speak HTTP/2 to their backends)")
	fs.IntVar(&c.recvBuf, "recv-buffer", 4096, "bytes of one receive buffer")
	fs.StringVar(&c.recv, "recv", "auto", "auto: the first read of a connection as pool, every later one from a multishot recv (the default); pool: one recv per read into a buffer the kernel takes from the shard's buffer ring as bytes arrive (an idle connection holds none); slot: one recv per read into a buffer of the connection's own (single is its earlier name); multishot: one multishot recv per connection from the buffer ring")
	fs.IntVar(&c.maxPipeline, "max-pipeline", 1024, "answers queued per connection before zerosys stops reading from it")
	fs.DurationVar(&c.headerTimeout, "header-timeout", 30*time.Second, "a request head must arrive within this (408, then close)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 75*time.Second, "close a keep-alive connection idle this long")
	fs.DurationVar(&c.sendTimeout, "send-timeout", 60*time.Second, "close a connection whose client stops reading for this long")
	fs.DurationVar(&c.lingerTimeout, "linger-timeout", 5*time.Second, "after the last answer, read what the client still sends for at most this long before closing")
	fs.IntVar(&c.h2Streams, "h2-max-streams", 128, "HTTP/2: streams a connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; more are refused), 1 to 4096")
	fs.IntVar(&c.h2Window, "h2-stream-window", 1<<20, "HTTP/2: bytes of request body a stream may send before we give the window back, 65535 to 2147483647")
	fs.IntVar(&c.h2ConnWin, "h2-conn-window", 4<<20, "HTTP/2: the same for all of a connection's streams together, 65535 to 2147483647")
	fs.IntVar(&c.maxHeaderBytes, "max-header-bytes", 8192, "largest request line (414) and header section (431)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", 1<<20, "largest request body (413)")
	fs.StringVar(&c.statusSpec, "status", "200", "response status, or a mix in fortio's syntax: 503:1 (1% 503, the rest 200), 200,503:5,429:2 (a bare value takes the remainder); drawn per request")
	fs.StringVar(&c.body, "body", "", "response body text (default \"Have a nice day!\")")
	fs.StringVar(&c.bodyFile, "body-file", "", "read the response body from this file")
	fs.StringVar(&c.sizeSpec, "body-size", "", "a response body of this many bytes (for large-response tests), or a mix like 128:80,65536:20; drawn per request")
	fs.StringVar(&c.contentType, "content-type", "text/plain", "response Content-Type")
	fs.BoolVar(&c.sendZC, "send-zc", false, "send answers of 16 KiB or more with IORING_OP_SEND_ZC (zero-copy; pays off on real NICs, not on loopback, where the kernel copies anyway)")
	fs.IntVar(&c.spliceMin, "splice-min", 0, "splice prepared bodies of at least this many bytes from a memory file into the socket, as nginx's sendfile does, instead of copying them into the kernel on every send (0: never)")
	fs.Var(&c.headers, "header", "extra response header \"Name: value\" (repeatable; env twin: one per line)")
	fs.StringVar(&c.delaySpec, "delay", "0", "hold each answer back this long, or a mix like 1ms:90,50ms:9,1s:1 (the rest: no delay); drawn per request, no syscall")
	fs.DurationVar(&c.maxDelay, "max-delay", 10*time.Second, "the longest --delay allowed")
	fs.BoolVar(&c.requestKnobs, "request-knobs", true, "let a request's query shape its own answer: status, size, delay, close=1, header=Name:Value, echo=1 (e.g. /?status=503:20&delay=10ms); false ignores them")
	fs.IntVar(&c.maxBodySize, "max-body-size", 1<<20, "the largest body a size knob may ask for (a prepared pattern buffer of this size per shard)")
	fs.IntVar(&c.keepaliveRequests, "keepalive-requests", 0, "close a connection after this many answers, as nginx's keepalive_requests (0: no limit)")
	fs.Float64Var(&c.closePercent, "close", 0, "close the connection after this percentage of answers, drawn per answer (connection churn for load-balancer tests), e.g. 5 or 0.1")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the per-shard random draws (--close), so a run can be repeated (0: a new seed each start, logged)")
	fs.StringVar(&c.name, "name", "", "instance name in X-Served-By (default: the host name)")
	fs.BoolVar(&c.servedBy, "served-by", true, "add X-Served-By: NAME/SHARD to every answer, so a tester sees how a load balancer spreads load over instances and cores")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:9090", "serve /metrics (Prometheus), /healthz and /readyz here; empty disables")
	fs.StringVar(&c.adminToken, "admin-token", "", "token PUT and DELETE /behaviour must bring as \"Authorization: Bearer TOKEN\"; required when --metrics-addr is not a loopback address (prefer the environment twin)")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "on SIGTERM/SIGINT, keep serving this long with /readyz failing, so load balancers notice")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "then close connections still open after this long")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(out, usageHead)
		for _, g := range flagGroups {
			fmt.Fprintf(out, "\n  %s:\n", g.title)
			for _, name := range g.names {
				f := fs.Lookup(name)
				typ, usage := flag.UnquoteUsage(f)
				fmt.Fprintf(out, "    --%s %s\n        %s", f.Name, typ, usage)
				if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
					fmt.Fprintf(out, " (default %s)", f.DefValue)
				}
				fmt.Fprintf(out, "\n        env %s\n", envName(f.Name))
			}
		}
	}
	return fs
}

func envName(flagName string) string {
	return "ZEROSYS_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads the environment twins first, then the command line.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, out)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.sqpoll != "on" && c.sqpoll != "off" && c.sqpoll != "auto" {
		bad("--sqpoll %q: want auto, on or off", c.sqpoll)
	}
	if m, err := shard.ParseRecvMode(c.recv); err != nil {
		bad("--%v", err)
	} else {
		c.recvMode = m
	}
	if m, err := shard.ParseH2CMode(c.h2c); err != nil {
		bad("--%v", err)
	} else {
		c.h2cMode = m
	}
	if c.idle != "spin" && c.idle != "adaptive" {
		bad("--idle %q: want spin or adaptive", c.idle)
	}
	if c.drainDelay < 0 || c.drainTimeout < 0 {
		bad("--drain-delay and --drain-timeout: want durations of 0 or more")
	}
	if c.mode != "keepalive" && c.mode != "close" {
		bad("--mode %q: want keepalive or close", c.mode)
	}
	if c.shards < 0 {
		bad("--shards %d: want 0 (fit the CPUs) or more", c.shards)
	}
	if c.maxConns < 0 || c.maxConns >= 1<<20 {
		bad("--max-conns %d: want 0 (from the descriptor limit) or 1 to 1048575", c.maxConns)
	}
	if c.recvBuf < 512 || c.recvBuf > 1<<20 {
		bad("--recv-buffer %d: want 512 to 1048576", c.recvBuf)
	}
	if c.maxPipeline < 1 {
		bad("--max-pipeline %d: want at least 1", c.maxPipeline)
	}
	if c.backlog < 0 {
		bad("--backlog %d: want 0 (net.core.somaxconn) or more", c.backlog)
	}
	if c.h2Streams < 1 || c.h2Streams > shard.MaxH2Streams {
		bad("--h2-max-streams %d: want 1 to %d", c.h2Streams, shard.MaxH2Streams)
	}
	if c.h2Window < 65535 || c.h2Window > 1<<31-1 {
		bad("--h2-stream-window %d: want 65535 to 2147483647", c.h2Window)
	}
	if c.h2ConnWin < 65535 || c.h2ConnWin > 1<<31-1 {
		bad("--h2-conn-window %d: want 65535 to 2147483647", c.h2ConnWin)
	}
	if c.maxHeaderBytes < 256 || c.maxHeaderBytes > 1<<20 {
		bad("--max-header-bytes %d: want 256 to 1048576", c.maxHeaderBytes)
	}
	if c.maxBodyBytes < 0 {
		bad("--max-body-bytes %d: want 0 or more", c.maxBodyBytes)
	}
	var err error
	if c.status, _, c.statusMix, err = parseMix("status", c.statusSpec, 200, statusValue); err != nil {
		errs = append(errs, err)
	}
	if c.sizeSpec != "" {
		if c.bodySize, c.sizeBare, c.sizeMix, err = parseMix("body-size", c.sizeSpec, 0, sizeValue); err != nil {
			errs = append(errs, err)
		}
	}
	set := 0
	for _, b := range []bool{c.body != "", c.bodyFile != "", c.sizeBare} {
		if b {
			set++
		}
	}
	if set > 1 {
		bad("--body, --body-file and --body-size: give at most one")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"header-timeout", c.headerTimeout}, {"idle-timeout", c.idleTimeout}, {"send-timeout", c.sendTimeout}, {"linger-timeout", c.lingerTimeout}, {"sq-idle", c.sqIdle}, {"spin-window", c.spinWindow}} {
		if d.v <= 0 {
			bad("--%s %s: want a positive duration like 500ms or 30s", d.name, d.v)
		}
	}
	if c.maxDelay <= 0 || c.maxDelay > time.Hour {
		bad("--max-delay %s: want a positive duration up to 1h", c.maxDelay)
	} else {
		us, _, mix, err := parseMix("delay", c.delaySpec, 0, delayValue(c.maxDelay))
		if err != nil {
			errs = append(errs, err)
		}
		c.delay, c.delayMix = time.Duration(us)*time.Microsecond, mix
	}
	if c.maxBodySize < 1 || c.maxBodySize > 64<<20 {
		bad("--max-body-size %d: want 1 to 67108864 bytes", c.maxBodySize)
	}
	if c.keepaliveRequests < 0 {
		bad("--keepalive-requests %d: want 0 (no limit) or more", c.keepaliveRequests)
	}
	if !(c.closePercent >= 0 && c.closePercent <= 100) {
		bad("--close %v: want a percentage from 0 to 100", c.closePercent)
	}
	if p, err := steer.Parse(c.steerSpec); err != nil {
		bad("--steer %q: want load, round-robin, cpu or hash", c.steerSpec)
	} else {
		c.steer = p
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		bad("--log-format %q: want text or json", c.logFormat)
	}
	return errors.Join(errs...)
}

// plan lays out the shards. With --sqpoll auto it takes SQPOLL when every
// shard's poller gets a CPU of its own, and no poller otherwise: measured
// here, a shard and its poller sharing one CPU served ~90-100k req/s at
// 1.0-1.2 CPU-s per 100k requests where the same CPU without a poller
// served ~120-130k at 0.66-0.78.
func (c *config) plan(allowed affinity.CPUSet) (affinity.Plan, error) {
	pc, err := c.planConfig(allowed)
	if err != nil {
		return affinity.Plan{}, err
	}
	if c.sqpoll == "auto" && pc.PollerCPUs == nil {
		pc.SQPoll, pc.Spin = true, c.idle == "spin"
		if p, err := affinity.MakePlan(pc); err == nil && !sharesPollerCPU(p) {
			return p, nil
		}
		pc.SQPoll, pc.Spin = false, false
	}
	return affinity.MakePlan(pc)
}

func sharesPollerCPU(p affinity.Plan) bool {
	for _, a := range p.Shards {
		if a.CPU == a.PollerCPU {
			return true
		}
	}
	return false
}

// planConfig turns the CPU flags into an affinity request.
func (c *config) planConfig(allowed affinity.CPUSet) (affinity.PlanConfig, error) {
	sqpoll := c.sqpoll == "on" || c.sqpoll == "auto" && c.pollerCPUs != ""
	pc := affinity.PlanConfig{Allowed: allowed, Shards: c.shards, SQPoll: sqpoll, Spin: sqpoll && c.idle == "spin"}
	var err error
	if c.cpus != "" {
		if pc.CPUs, err = affinity.ParseList(c.cpus); err != nil {
			return pc, fmt.Errorf("--cpus: %w", err)
		}
	}
	if c.pollerCPUs != "" {
		if pc.PollerCPUs, err = affinity.ParseList(c.pollerCPUs); err != nil {
			return pc, fmt.Errorf("--poller-cpus: %w", err)
		}
	}
	return pc, nil
}

// servedBy is the X-Served-By header of shard i, or "" when it is off.
func (c *config) servedByHeader(i int) (string, error) {
	if !c.servedBy {
		return "", nil
	}
	name := c.name
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--name: no host name to default to (%w); give --name", err)
		}
		name = h
	}
	return fmt.Sprintf("X-Served-By: %s/%d", name, i), nil
}

// response builds the prepared response the flags describe.
func (c *config) response() (shard.Response, error) {
	r := shard.Response{Status: c.status, ContentType: c.contentType, Headers: c.headers, StatusMix: c.statusMix, SizeMix: c.sizeMix}
	switch {
	case c.body != "":
		r.Body = []byte(c.body)
	case c.bodyFile != "":
		b, err := os.ReadFile(c.bodyFile)
		if err != nil {
			return r, fmt.Errorf("--body-file: %w", err)
		}
		r.Body = b
	case c.sizeBare:
		r.Body = shard.PatternBody(c.bodySize) // 0 too: an empty body
	}
	return r, nil
}

func (c *config) limits() httpwire.Limits {
	return httpwire.Limits{
		MaxRequestLine: c.maxHeaderBytes,
		MaxHeaderBytes: c.maxHeaderBytes,
		MaxBody:        c.maxBodyBytes,
	}
}
