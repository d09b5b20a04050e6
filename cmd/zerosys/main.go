// Command zerosys is an HTTP/1.1 server that answers every request with a
// prepared response and, after start-up, spends no system call per request:
// each shard owns an io_uring whose kernel poller (SQPOLL) picks up its
// submissions while the shard busy-polls for completions.
//
// Run `zerosys --help` for the flags; every flag has a ZEROSYS_* twin in
// the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"go.uber.org/automaxprocs/maxprocs"

	"zerosys/affinity"
	"zerosys/listener"
	"zerosys/shard"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
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
	log := newLogger(cfg.logFormat, stderr)
	srv, err := start(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		fmt.Fprintf(stderr, "zerosys: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		// From here a second signal gets the default action: exit at once.
		stop()
		log.Info("stopping", "reason", "signal")
	case <-srv.anyDone():
		log.Error("a shard stopped unexpectedly; stopping")
	}
	srv.stop()
	srv.logStats(log)
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

// server is the running set of shards and their listeners.
type server struct {
	plan   affinity.Plan
	group  *listener.Group
	shards []*shard.Shard
}

// start checks the plan, opens the listeners and starts every shard; on any
// failure it undoes what it did and returns one actionable error.
func start(cfg *config, log *slog.Logger) (*server, error) {
	allowed, err := affinity.Allowed()
	if err != nil {
		return nil, err
	}
	pc, err := cfg.planConfig(allowed)
	if err != nil {
		return nil, err
	}
	plan, err := affinity.MakePlan(pc)
	if err != nil {
		return nil, err
	}
	setMaxProcs(len(plan.Shards), log)
	resp, err := cfg.response()
	if err != nil {
		return nil, err
	}
	lc := listener.Config{Addr: cfg.addr, Backlog: cfg.backlog, AllowShared: cfg.allowShared}
	group, err := listener.Listen(lc, len(plan.Shards))
	if err != nil {
		return nil, err
	}
	srv := &server{plan: plan, group: group}
	mode := shard.ModeKeepAlive
	if cfg.mode == "close" {
		mode = shard.ModeClose
	}
	for i, a := range plan.Shards {
		s, err := shard.Start(shard.Config{
			ID:            i,
			ListenFD:      group.FDs[i],
			CPU:           a.CPU,
			SQPoll:        plan.SQPoll,
			PollerCPU:     a.PollerCPU,
			SQIdle:        cfg.sqIdle,
			Mode:          mode,
			Response:      resp,
			Limits:        cfg.limits(),
			MaxConns:      cfg.maxConns,
			RecvBuffer:    cfg.recvBuf,
			MaxPipeline:   cfg.maxPipeline,
			HeaderTimeout: cfg.headerTimeout,
			IdleTimeout:   cfg.idleTimeout,
			SendTimeout:   cfg.sendTimeout,
			LingerTimeout: cfg.lingerTimeout,
		})
		if err != nil {
			srv.stop()
			return nil, err
		}
		srv.shards = append(srv.shards, s)
	}
	log.Info("zerosys serving",
		"addr", group.Addr.String(),
		"version", buildVersion(),
		"mode", cfg.mode,
		"sqpoll", cfg.sqpoll,
		"shards", len(plan.Shards),
		"plan", plan.String(),
		"gomaxprocs", runtime.GOMAXPROCS(0),
		"max_conns_per_shard", cfg.maxConns,
	)
	return srv, nil
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
	for _, sh := range s.shards {
		sh.Stop()
	}
	_ = s.group.Close()
}

// logStats writes one line per shard with its final counters, so a run can
// be checked against what the load generator saw.
func (s *server) logStats(log *slog.Logger) {
	for _, sh := range s.shards {
		st := sh.Stats()
		log.Info("shard stats",
			"shard", st.Shard, "cpu", st.CPU,
			"accepted", st.Accepted, "closed", st.Closed,
			"requests", st.Requests, "rejected", st.Rejected,
			"responses_200", st.Responses[200],
			"bytes_in", st.BytesIn, "bytes_out", st.BytesOut,
			"resets", st.Resets,
			"timeouts", st.TimeoutHeader+st.TimeoutIdle+st.TimeoutSend+st.TimeoutLinger,
			"enters", st.Enters, "enter_wakeup", st.EnterWakeup, "enter_wait", st.EnterWait,
			"enter_overflow", st.EnterOverflow, "enter_sqfull", st.EnterSQFull,
			"loops_busy", st.LoopsBusy, "loops_idle", st.LoopsIdle,
			"accept_errors", st.AcceptErrors, "accept_dropped", st.AcceptDropped,
			"stale", st.Stale, "cq_overflow", st.CQOverflow,
		)
	}
}
