// Command zerosys is an HTTP/1.1 server that answers every request with a
// prepared response and, after start-up, spends no system call per request:
// each shard owns an io_uring whose kernel poller (SQPOLL) picks up its
// submissions while the shard busy-polls for completions.
//
// Run `zerosys --help` for the flags; every flag has a ZEROSYS_* twin in
// the environment.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/automaxprocs/maxprocs"

	"zerosys/affinity"
	"zerosys/listener"
	"zerosys/listener/steer"
	"zerosys/shard"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	check := len(args) > 0 && args[0] == "check"
	if check {
		args = args[1:]
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "zerosys: %v\n", err)
		fmt.Fprintln(stderr, "zerosys: run zerosys --help for the flags")
		return 2
	}
	if cfg.version {
		fmt.Fprintln(stdout, "zerosys", buildVersion())
		return 0
	}
	if check {
		return runCheck(cfg, stdout)
	}
	log := newLogger(cfg.logFormat, stderr)
	// Signals are caught from here on, so one arriving during start-up
	// still drains rather than killing a half-started server.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	srv, err := start(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "zerosys: %v\n", err)
		return 1
	}
	select {
	case sig := <-sigs:
		log.Info("draining", "signal", sig.String(), "drain_delay", cfg.drainDelay, "drain_timeout", cfg.drainTimeout)
		// A second signal exits at once, without draining.
		go func() {
			sig := <-sigs
			log.Warn("second signal: exiting now", "signal", sig.String())
			os.Exit(1)
		}()
		srv.drain(cfg, log)
	case <-srv.anyDone():
		log.Error("a shard stopped unexpectedly; stopping")
		srv.stop()
		srv.logStats(log)
		return 1
	}
	srv.stop()
	srv.logStats(log)
	log.Info("stopped")
	return 0
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return "dev-" + s.Value[:min(12, len(s.Value))]
			}
		}
	}
	return version
}

// server is the running set of shards, their listeners and the metrics
// endpoint.
type server struct {
	plan   affinity.Plan
	idle   string // SQPOLL idle policy, for metrics
	group  *listener.Group
	shards []*shard.Shard
	ops    *opsServer
	ready  atomic.Bool
	admin  *admin // what the shards play, and changes to it (/behaviour, zerosys_behaviour_info)

	steering *steer.Steering // how new connections are spread over the shards
}

// start runs the preflight checks, opens the listeners and starts every
// shard; on any failure it undoes what it did and returns one actionable
// error, the same `zerosys check` prints.
func start(cfg *config, log *slog.Logger) (*server, error) {
	results, planp := preflight(cfg)
	for _, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, r.err)
		}
	}
	plan := *planp
	setMaxProcs(len(plan.Shards), log)
	maxConns := cfg.maxConns
	if maxConns == 0 {
		maxConns = slotsFromFDLimit(len(plan.Shards), cfg.spliceMin > 0)
	}
	backlog := cfg.backlog
	if backlog == 0 {
		backlog = somaxconn()
	}
	lc := listener.Config{Addr: cfg.addr, Backlog: backlog, AllowShared: cfg.allowShared}
	group, err := listener.Listen(lc, len(plan.Shards))
	if err != nil {
		return nil, err
	}
	srv := &server{plan: plan, group: group, idle: cfg.idle}
	if !plan.SQPoll {
		srv.idle = "wait"
	}
	srv.steering = steerGroup(cfg, plan, group, log)
	mode := shard.ModeKeepAlive
	if cfg.mode == "close" {
		mode = shard.ModeClose
	}
	seed := cfg.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	srv.admin = newAdmin(srv, cfg, seed, log)
	for i, a := range plan.Shards {
		b, err := cfg.shardBehaviour(i)
		if err != nil {
			srv.stop()
			return nil, err
		}
		s, err := shard.Start(shard.Config{
			ID:             i,
			ListenFD:       group.FDs[i],
			CPU:            a.CPU,
			SQPoll:         plan.SQPoll,
			PollerCPU:      a.PollerCPU,
			SQIdle:         cfg.sqIdle,
			Spin:           plan.Spin,
			SpinWindow:     cfg.spinWindow,
			Mode:           mode,
			Response:       b.Response,
			Limits:         cfg.limits(),
			MaxConns:       maxConns,
			RecvBuffer:     cfg.recvBuf,
			Recv:           cfg.recvMode,
			SendZC:         cfg.sendZC,
			SpliceMin:      cfg.spliceMin,
			FixedFiles:     cfg.fixedFiles,
			H2C:            cfg.h2cMode,
			H2MaxStreams:   cfg.h2Streams,
			H2StreamWindow: cfg.h2Window,
			H2ConnWindow:   cfg.h2ConnWin,
			MaxPipeline:    cfg.maxPipeline,
			HeaderTimeout:  cfg.headerTimeout,
			IdleTimeout:    cfg.idleTimeout,
			SendTimeout:    cfg.sendTimeout,
			LingerTimeout:  cfg.lingerTimeout,

			KeepAliveRequests: b.KeepAliveRequests,
			Delay:             b.Delay,
			DelayMix:          b.DelayMix,
			ClosePerMillion:   b.ClosePerMillion,
			RequestKnobs:      cfg.requestKnobs,
			MaxDelay:          cfg.maxDelay,
			MaxBodySize:       cfg.maxBodySize,
			Seed:              seed,
			Load:              srv.steering.Shard(i),
			Logger:            log,
		})
		if err != nil {
			srv.stop()
			return nil, err
		}
		srv.shards = append(srv.shards, s)
	}
	srv.ready.Store(true)
	sqpoll := "off"
	if plan.SQPoll {
		sqpoll = "on"
	}
	metrics := "off"
	if cfg.metricsAddr != "" {
		if srv.ops, err = startOps(cfg.metricsAddr, srv, &srv.ready); err != nil {
			srv.stop()
			return nil, err
		}
		metrics = srv.ops.addr.String()
	}
	log.Info("zerosys serving",
		"addr", group.Addr.String(),
		"metrics", metrics,
		"version", buildVersion(),
		"mode", cfg.mode,
		"recv", cfg.recv,
		"sqpoll", sqpoll,
		"idle", srv.idle,
		"shards", len(plan.Shards),
		"plan", plan.String(),
		"gomaxprocs", runtime.GOMAXPROCS(0),
		"max_conns_per_shard", maxConns,
		"backlog", backlog,
		"kernel_features", "multishot accept, SEND+CLOSE hardlink, EXT_ARG waits",
		"keepalive_requests", cfg.keepaliveRequests,
		"close_percent", cfg.closePercent,
		"seed", seed,
		"steer", srv.steering.Policy,
	)
	return srv, nil
}

// drain stops the server without losing a request: readiness fails at
// once; after --drain-delay the listeners take no new connection and the
// ones already queued are accepted and served; every further answer says
// "Connection: close"; connections still open at --drain-timeout are cut.
func (s *server) drain(cfg *config, log *slog.Logger) {
	s.ready.Store(false)
	for _, sh := range s.shards {
		sh.NotReady() // the gRPC health service agrees with /readyz
	}
	time.Sleep(cfg.drainDelay)
	deadline := time.Now().Add(cfg.drainTimeout)
	for i, sh := range s.shards {
		if err := s.group.Quiesce(i); err != nil {
			log.Warn("cannot quiesce a listener; connections queued at close may be reset", "shard", i, "err", err)
		}
		sh.Drain()
	}
	// Take what the kernel already queued before closing the listeners:
	// closing them would reset those connections. Handshakes under way
	// when the filter went on still complete and join the queue, so the
	// queue must stay empty for a while, not just once.
	// All listeners settle together, then all stop accepting at once.
	const settle = 100 * time.Millisecond
	emptySince := time.Time{}
	for time.Now().Before(deadline) {
		pending := 0
		for i := range s.shards {
			if n, err := s.group.Pending(i); err == nil {
				pending += n
			}
		}
		if pending > 0 {
			emptySince = time.Time{}
		} else if emptySince.IsZero() {
			emptySince = time.Now()
		} else if time.Since(emptySince) >= settle {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, sh := range s.shards {
		sh.StopAccepting()
	}
	for _, sh := range s.shards {
		select {
		case <-sh.AcceptStopped():
		case <-time.After(time.Until(deadline)):
		}
	}
	_ = s.group.Close()
	for time.Now().Before(deadline) && s.active() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.active(); n > 0 {
		log.Info("drain timeout: closing connections still open", "connections", n)
	}
}

// active counts open connections over all shards.
func (s *server) active() uint64 {
	var n uint64
	for _, sh := range s.shards {
		n += sh.Stats().Active
	}
	return n
}

// setMaxProcs honours a cgroup CPU quota (automaxprocs), then makes sure the
// runtime has a P beyond the shards: each shard holds one P for good, and
// with none left over the runtime starves (a forced GC took 108 ms).
func setMaxProcs(shards int, log *slog.Logger) {
	_, _ = maxprocs.Set(maxprocs.Logger(func(string, ...any) {}))
	if n := runtime.GOMAXPROCS(0); n < shards+1 {
		runtime.GOMAXPROCS(shards + 1)
		log.Info("raised GOMAXPROCS", "from", n, "to", shards+1)
	}
}

// anyDone is closed when any shard stops.
func (s *server) anyDone() <-chan struct{} {
	ch := make(chan struct{})
	for _, sh := range s.shards {
		go func() {
			<-sh.Done()
			select {
			case <-ch:
			default:
				close(ch)
			}
		}()
	}
	return ch
}

func (s *server) stop() {
	s.ready.Store(false)
	for _, sh := range s.shards {
		sh.Stop()
	}
	_ = s.group.Close()
	s.steering.Close()
	s.ops.close()
}

// logStats writes one line per shard with its final counters, every one
// of shard.Counters(), so a run can be checked against what the load
// generator saw.
func (s *server) logStats(log *slog.Logger) {
	infos := shard.Counters()
	for _, sh := range s.shards {
		st := sh.Stats()
		attrs := make([]any, 0, 2*len(infos)+12)
		attrs = append(attrs, "shard", st.Shard, "cpu", st.CPU, "closed", st.Closed(), "enters", st.Enters(),
			"responses_200", st.Responses[200], "active", st.Active)
		for i, info := range infos {
			attrs = append(attrs, info.Log, st.Counters[i])
		}
		log.Info("shard stats", attrs...)
	}
}
