package shard

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkServe measures the whole serving path of one shard, ring
// included: a client writes batches of pipelined requests and reads the
// answers. It reports io_uring_enter calls per request (enters/op) from
// the shard's own counters; with SQPOLL that is the syscall cost of a
// request.
func BenchmarkServe(b *testing.B) {
	for _, m := range []ringMode{modes[0], modes[2], modes[4], modes[6], modes[8]} {
		for _, depth := range []int{1, 16} {
			name := m.name + "/pipeline=" + map[int]string{1: "1", 16: "16"}[depth]
			b.Run(name, func(b *testing.B) { benchServe(b, m, depth) })
		}
	}
}

func benchServe(b *testing.B, m ringMode, depth int) {
	ts := startServer(b, m, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), depth)
	buf := make([]byte, depth*len(ts.shards[0].e.sets.at(0)[vOK].one))
	round := func() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	for range 100 {
		round()
	}
	time.Sleep(2 * time.Millisecond) // counters published
	before := ts.shards[0].Stats()
	b.ReportAllocs()
	b.ResetTimer()
	rounds := (b.N + depth - 1) / depth
	for range rounds {
		round()
	}
	b.StopTimer()
	time.Sleep(2 * time.Millisecond)
	after := ts.shards[0].Stats()
	n := float64(rounds * depth)
	b.ReportMetric(float64(after.Enters()-before.Enters())/n, "enters/op")
	b.ReportMetric(float64(rounds*depth)/float64(b.N), "req/op")
}
