package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shardCollector exports the shards' counters. It reads them only when
// Prometheus scrapes, so the request path pays nothing for metrics.
type shardCollector struct {
	srv   *server
	ready *atomic.Bool

	requests, rejected, responses       *prometheus.Desc
	accepted, closed, active            *prometheus.Desc
	acceptErrors, acceptDropped, paused *prometheus.Desc
	bytesIn, bytesOut                   *prometheus.Desc
	enters, loops, cqOverflow, stale    *prometheus.Desc
	shardInfo, buildInfo, readyGauge    *prometheus.Desc
}

func newShardCollector(srv *server, ready *atomic.Bool) *shardCollector {
	sc := []string{"shard", "cpu"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("zerosys_"+name, help, append(append([]string{}, sc...), labels...), nil)
	}
	return &shardCollector{
		srv: srv, ready: ready,
		requests:      d("requests_total", "Complete requests framed."),
		rejected:      d("requests_rejected_total", "Requests refused as malformed or over a limit (answered 4xx/5xx, then closed)."),
		responses:     d("responses_total", "Answers sent, by status code.", "code"),
		accepted:      d("connections_accepted_total", "Connections accepted."),
		closed:        d("connections_closed_total", "Connections closed, by reason.", "reason"),
		active:        d("connections_active", "Connections open now."),
		acceptErrors:  d("accept_errors_total", "Accept completions with an error (EMFILE backs off 100 ms)."),
		acceptDropped: d("accept_dropped_total", "Connections accepted with no free slot and closed at once."),
		paused:        d("accept_paused_total", "Times accepting paused because the connection table was full."),
		bytesIn:       d("received_bytes_total", "Bytes received."),
		bytesOut:      d("sent_bytes_total", "Bytes sent."),
		enters:        d("io_uring_enter_total", "io_uring_enter calls the shard made, by reason; divide by requests for syscalls per request.", "reason"),
		loops:         d("loop_iterations_total", "Shard loop iterations that found completions (busy) or none (idle); busy/(busy+idle) near 1 means saturated.", "state"),
		cqOverflow:    d("cq_overflow_total", "Completions the kernel could not post (should stay 0)."),
		stale:         d("stale_completions_total", "Completions for an earlier tenant of a reused slot, dropped."),
		shardInfo:     prometheus.NewDesc("zerosys_shard_info", "One per shard: its CPU, its poller's CPU (-1: none) and its ring mode.", []string{"shard", "cpu", "poller_cpu", "sqpoll", "idle"}, nil),
		buildInfo:     prometheus.NewDesc("zerosys_build_info", "Build information.", []string{"version", "goversion"}, nil),
		readyGauge:    prometheus.NewDesc("zerosys_ready", "1 while ready for traffic, 0 while draining.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.rejected, c.responses, c.accepted, c.closed, c.active,
		c.acceptErrors, c.acceptDropped, c.paused, c.bytesIn, c.bytesOut, c.enters, c.loops, c.cqOverflow, c.stale,
		c.shardInfo, c.buildInfo, c.readyGauge} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i, sh := range c.srv.shards {
		st := sh.Stats()
		a := c.srv.plan.Shards[i]
		id, cpu := strconv.Itoa(st.Shard), strconv.Itoa(st.CPU)
		counter(c.requests, st.Requests, id, cpu)
		counter(c.rejected, st.Rejected, id, cpu)
		for code, n := range st.Responses {
			counter(c.responses, n, id, cpu, strconv.Itoa(code))
		}
		counter(c.accepted, st.Accepted, id, cpu)
		byReason := map[string]uint64{
			"timeout_header": st.TimeoutHeader, "timeout_idle": st.TimeoutIdle,
			"timeout_send": st.TimeoutSend, "timeout_linger": st.TimeoutLinger, "error": st.Resets,
		}
		var abnormal uint64
		for _, n := range byReason {
			abnormal += n
		}
		byReason["normal"] = st.Closed - min(abnormal, st.Closed)
		for reason, n := range byReason {
			counter(c.closed, n, id, cpu, reason)
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active), id, cpu)
		counter(c.acceptErrors, st.AcceptErrors, id, cpu)
		counter(c.acceptDropped, st.AcceptDropped, id, cpu)
		counter(c.paused, st.AcceptPaused, id, cpu)
		counter(c.bytesIn, st.BytesIn, id, cpu)
		counter(c.bytesOut, st.BytesOut, id, cpu)
		counter(c.enters, st.EnterWakeup, id, cpu, "wakeup")
		counter(c.enters, st.EnterWait, id, cpu, "wait")
		counter(c.enters, st.EnterOverflow, id, cpu, "overflow")
		counter(c.enters, st.EnterSQFull, id, cpu, "sq_full")
		counter(c.loops, st.LoopsBusy, id, cpu, "busy")
		counter(c.loops, st.LoopsIdle, id, cpu, "idle")
		counter(c.cqOverflow, st.CQOverflow, id, cpu)
		counter(c.stale, st.Stale, id, cpu)
		ch <- prometheus.MustNewConstMetric(c.shardInfo, prometheus.GaugeValue, 1,
			id, cpu, strconv.Itoa(a.PollerCPU), onOff(c.srv.plan.SQPoll), c.srv.idle)
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, buildVersion(), runtime.Version())
	r := 0.0
	if c.ready.Load() {
		r = 1
	}
	ch <- prometheus.MustNewConstMetric(c.readyGauge, prometheus.GaugeValue, r)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// opsServer serves /metrics, /healthz and /readyz on the metrics address.
type opsServer struct {
	http *http.Server
	addr net.Addr
}

func startOps(addr string, srv *server, ready *atomic.Bool) (*opsServer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newShardCollector(srv, ready),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	return &opsServer{http: hs, addr: ln.Addr()}, nil
}

func (o *opsServer) close() {
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := o.http.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		_ = o.http.Close()
	}
}

var _ prometheus.Collector = (*shardCollector)(nil)
