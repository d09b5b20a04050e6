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

	"zerosys/shard"
)

// shardCollector exports the shards' counters. It reads them only when
// Prometheus scrapes, so the request path pays nothing for metrics. The
// families come from shard.Counters(), the one table of counters.
type shardCollector struct {
	srv   *server
	ready *atomic.Bool

	counters                         []*prometheus.Desc // by shard.Counters() index
	responses, active                *prometheus.Desc
	shardInfo, buildInfo, readyGauge *prometheus.Desc
	behaviourInfo                    *prometheus.Desc
	delays, lateness                 *prometheus.Desc
}

func newShardCollector(srv *server, ready *atomic.Bool) *shardCollector {
	sc := []string{"shard", "cpu"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("zerosys_"+name, help, append(append([]string{}, sc...), labels...), nil)
	}
	c := &shardCollector{
		srv: srv, ready: ready,
		responses:  d("responses_total", "Answers sent, by status code.", "code"),
		delays:     d("answer_delay_seconds", "Delays applied to answers (--delay, PUT /behaviour); answers sent at once are not counted."),
		lateness:   d("answer_lateness_seconds", "How late delayed answers left after their due time: the shard's loop turn and the connection's answers before them; a shard near saturation shows here first."),
		active:     d("connections_active", "Connections open now."),
		shardInfo:  prometheus.NewDesc("zerosys_shard_info", "One per shard: its CPU, its poller's CPU (-1: none) and its ring mode.", []string{"shard", "cpu", "poller_cpu", "sqpoll", "idle"}, nil),
		buildInfo:  prometheus.NewDesc("zerosys_build_info", "Build information.", []string{"version", "goversion"}, nil),
		readyGauge: prometheus.NewDesc("zerosys_ready", "1 while ready for traffic, 0 while draining.", nil, nil),
		behaviourInfo: prometheus.NewDesc("zerosys_behaviour_info", "The behaviour the shards play, as GET /behaviour shows it (mixes in their flags' syntax).",
			[]string{"status", "body_size", "delay", "close_percent", "keepalive_requests"}, nil),
	}
	families := map[string]*prometheus.Desc{}
	for _, info := range shard.Counters() {
		desc, ok := families[info.Family]
		if !ok {
			if info.Label != "" {
				desc = d(info.Family, info.Help, info.Label)
			} else {
				desc = d(info.Family, info.Help)
			}
			families[info.Family] = desc
		}
		c.counters = append(c.counters, desc)
	}
	return c
}

// descs lists every family once.
func (c *shardCollector) descs() []*prometheus.Desc {
	out := []*prometheus.Desc{c.responses, c.delays, c.lateness, c.active, c.shardInfo, c.buildInfo, c.readyGauge, c.behaviourInfo}
	seen := map[*prometheus.Desc]bool{}
	for _, d := range c.counters {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	infos := shard.Counters()
	for i, sh := range c.srv.shards {
		st := sh.Stats()
		a := c.srv.plan.Shards[i]
		id, cpu := strconv.Itoa(st.Shard), strconv.Itoa(st.CPU)
		for k, v := range st.Counters {
			labels := []string{id, cpu}
			if infos[k].Label != "" {
				labels = append(labels, infos[k].Value)
			}
			ch <- prometheus.MustNewConstMetric(c.counters[k], prometheus.CounterValue, float64(v), labels...)
		}
		for code, n := range st.Responses {
			ch <- prometheus.MustNewConstMetric(c.responses, prometheus.CounterValue, float64(n), id, cpu, strconv.Itoa(code))
		}
		ch <- histogram(c.delays, shard.DelayBounds[:], st.DelayBuckets[:], st.DelaySum, id, cpu)
		ch <- histogram(c.lateness, shard.LateBounds[:], st.LateBuckets[:], st.LateSum, id, cpu)
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(st.Active), id, cpu)
		ch <- prometheus.MustNewConstMetric(c.shardInfo, prometheus.GaugeValue, 1,
			id, cpu, strconv.Itoa(a.PollerCPU), onOff(c.srv.plan.SQPoll), c.srv.idle)
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, buildVersion(), runtime.Version())
	b := c.srv.admin.current()
	ch <- prometheus.MustNewConstMetric(c.behaviourInfo, prometheus.GaugeValue, 1,
		b.Status, b.BodySize, b.Delay, strconv.FormatFloat(b.ClosePercent, 'f', -1, 64), strconv.Itoa(b.KeepAliveRequests))
	r := 0.0
	if c.ready.Load() {
		r = 1
	}
	ch <- prometheus.MustNewConstMetric(c.readyGauge, prometheus.GaugeValue, r)
}

// histogram exposes a shard's histogram (counts by bucket of bounds, the
// last past them all), made cumulative.
func histogram(desc *prometheus.Desc, bounds []time.Duration, counts []uint64, sum time.Duration, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var n uint64
	for i, b := range bounds {
		n += counts[i]
		buckets[b.Seconds()] = n
	}
	n += counts[len(bounds)]
	return prometheus.MustNewConstHistogram(desc, n, sum.Seconds(), buckets, labels...)
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
	mux.HandleFunc("GET /behaviour", srv.admin.serveGet)
	mux.HandleFunc("PUT /behaviour", srv.admin.servePut)
	mux.HandleFunc("DELETE /behaviour", srv.admin.serveDelete)
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
