//go:build !race

package shard

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"zerosys/shard/h2wire"
)

// TestZeroAllocsPerRequest counts heap allocations in the whole process
// while a client sends pipelined requests on one keep-alive connection,
// with and without bodies, over both receive paths. The client writes and reads preallocated buffers, so any
// allocation counted is the server's.
func TestZeroAllocsPerRequest(t *testing.T) {
	for _, m := range recvModes {
		ts := startServer(t, m, nil)
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const perBatch = 16
		var batch bytes.Buffer
		for i := range perBatch {
			switch i % 4 {
			case 0:
				batch.WriteString("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
			case 1:
				batch.WriteString("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
			case 2:
				batch.WriteString("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n")
			case 3:
				batch.WriteString("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
			}
		}
		req := batch.Bytes()
		answer := len(ts.shards[0].e.sets.at(0)[vOK].one)
		head := len(ts.shards[0].e.sets.at(0)[vHead].one)
		want := perBatch/4*3*answer + perBatch/4*head
		buf := make([]byte, want)
		round := func() {
			if _, err := c.Write(req); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		for range 100 { // warm up: first-use allocations are not per request
			round()
		}
		const rounds = 2000
		allocs := processAllocs(rounds, round)
		requests := rounds * perBatch
		perReq := float64(allocs) / float64(requests)
		t.Logf("%s: %d requests, %d allocations in the process: %.5f per request", m.name, requests, allocs, perReq)
		if perReq > 0.001 {
			t.Errorf("%.4f allocations per request (%d over %d requests), want 0", perReq, allocs, requests)
		}
		if bytes.Count(buf, []byte("HTTP/1.1 200 OK")) != perBatch {
			t.Errorf("last batch: %q", buf)
		}
	}
}

// TestZeroAllocsWithMixes: framing a request and drawing its answer from
// status, size and close mixes allocates nothing.
func TestZeroAllocsWithMixes(t *testing.T) {
	var e engine
	cfg := Config{
		MaxConns: 1, KeepAliveRequests: 1 << 30, ClosePerMillion: 100_000,
		Response: Response{
			StatusMix: []Share{{Value: 503, PPM: 200_000}, {Value: 429, PPM: 100_000}},
			SizeMix:   []Share{{Value: 100, PPM: 500_000}},
		},
	}
	cfg = initEngine(t, &e, cfg)
	var h http1
	h.reset(cfg.Limits, 0, nil)
	var q answerQueue
	req := []byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	allocs := testing.AllocsPerRun(10_000, func() {
		if n, end := h.feed(req, false, &q, &e.env); n != len(req) {
			t.Fatalf("fed %d of %d bytes", n, len(req))
		} else if end != keepOpen {
			h.reset(cfg.Limits, 0, nil) // the close mix ended it: a new connection
		}
		q.drop(&e.sets)
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per request with mixes, want 0", allocs)
	}
}

// TestZeroAllocsWithKnobs: requests whose knobs build custom answers (a
// drawn status and size, a header, an echo, a refused knob) allocate
// nothing, also with heads split across reads.
func TestZeroAllocsWithKnobs(t *testing.T) {
	var e engine
	cfg := Config{MaxConns: 1, RequestKnobs: true, MaxBodySize: 100_000}
	cfg = initEngine(t, &e, cfg)
	c := &e.conns[0]
	c.h1.reset(cfg.Limits, 0, e.customBuf(0))
	for _, req := range []string{
		"GET /?status=503:50,201&size=100:50,50000&header=X-K:v&delay=0:90,1ms:10 HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /x?echo=1&cb=7 HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
		"GET /?status=nope HTTP/1.1\r\nHost: t\r\n\r\n",
	} {
		b := []byte(req)
		allocs := testing.AllocsPerRun(2000, func() {
			for _, part := range [][]byte{b[:11], b[11:]} { // the query split across reads
				if _, end := c.h1.feed(part, false, &c.q, &e.env); end != keepOpen {
					c.h1.reset(cfg.Limits, 0, e.customBuf(0)) // the 400 ended it: a new connection
				}
			}
			if c.q.pending != 1 || c.q.first().v != vCustom {
				t.Fatalf("%q: queued %d answers, first %d; want one custom", req, c.q.pending, c.q.first().v)
			}
			c.q.drop(&e.sets)
		})
		if allocs != 0 {
			t.Errorf("%q: %.2f allocations per request, want 0", req, allocs)
		}
	}
}

// TestZeroAllocsPerStream is TestZeroAllocsPerRequest for HTTP/2: one
// connection, batches of 16 streams (GET, each a HEADERS frame with
// END_STREAM; or gRPC calls, HEADERS then a DATA frame with an empty
// message; the connection window topped up), the process's heap
// allocations counted over 2,000 batches.
func TestZeroAllocsPerStream(t *testing.T) {
	get := []byte{0x82, 0x86, 0x84, 0x41, 1, 't'} // GET, http, /, :authority t
	call := []byte{0x83, 0x86, 0x04, 2, '/', 'x', 0x41, 1, 't', 0x0f, 0x10, 16}
	call = append(append(call, "application/grpc"...), 0x00, 2, 't', 'e', 8)
	call = append(call, "trailers"...)
	for _, kind := range []string{"GET", "gRPC"} {
		for _, m := range recvModes {
			ts := startServer(t, m, nil)
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			// The preface with empty SETTINGS, then the server's preface and
			// the acknowledgement of ours come back.
			start := append([]byte(h2wire.ClientPreface), 0, 0, 0, byte(h2wire.FrameSettings), 0, 0, 0, 0, 0)
			if _, err := c.Write(start); err != nil {
				t.Fatal(err)
			}
			const perBatch = 16
			p := &ts.shards[0].e.sets.at(0)[vOK]
			var batch []byte
			var ids []int // where each stream's id is in batch
			perStream := p.body
			for range perBatch {
				ids = append(ids, len(batch))
				if kind == "GET" {
					batch = h2wire.AppendHeader(batch, uint32(len(get)), h2wire.FrameHeaders, h2wire.FlagEndHeaders|h2wire.FlagEndStream, 1)
					batch = append(batch, get...)
					continue
				}
				batch = h2wire.AppendHeader(batch, uint32(len(call)), h2wire.FrameHeaders, h2wire.FlagEndHeaders, 1)
				batch = append(batch, call...)
				ids = append(ids, len(batch))
				batch = h2wire.AppendHeader(batch, 5, h2wire.FrameData, h2wire.FlagEndStream, 1)
				batch = append(batch, 0, 0, 0, 0, 0)
				perStream = len(p.grpc.message) + p.body
			}
			batch = h2wire.AppendWindowUpdate(batch, 0, uint32(perBatch*perStream)) // what this batch's DATA takes
			preface := make([]byte, h2wire.HeaderLen*3+3*6+4)                       // SETTINGS (3), WINDOW_UPDATE, SETTINGS ACK
			if _, err := io.ReadFull(c, preface); err != nil {
				t.Fatal(err)
			}
			// The answers' header blocks differ in length (the first primes
			// the dynamic table, the rest refer to it): frames are read one
			// by one, into buffers made once.
			var fh [h2wire.HeaderLen]byte
			buf := make([]byte, h2wire.DefaultMaxFrameSize)
			last := make([]byte, 0, h2wire.DefaultMaxFrameSize) // the last DATA payload
			id := uint32(1)
			round := func() {
				for i, at := range ids {
					h2wire.PutStreamID(batch[at:], id)
					if kind == "GET" || i%2 == 1 {
						id += 2
					}
				}
				if _, err := c.Write(batch); err != nil {
					t.Fatal(err)
				}
				for ended := 0; ended < perBatch; {
					if _, err := io.ReadFull(c, fh[:]); err != nil {
						t.Fatal(err)
					}
					n := int(fh[0])<<16 | int(fh[1])<<8 | int(fh[2])
					if _, err := io.ReadFull(c, buf[:n]); err != nil {
						t.Fatal(err)
					}
					switch h2wire.FrameType(fh[3]) {
					case h2wire.FrameData:
						last = append(last[:0], buf[:n]...)
					case h2wire.FrameHeaders:
					default:
						continue
					}
					if fh[4]&h2wire.FlagEndStream != 0 {
						ended++
					}
				}
			}
			for range 100 {
				round()
			}
			const rounds = 2000
			allocs := processAllocs(rounds, round)
			streams := rounds * perBatch
			perStreamAllocs := float64(allocs) / float64(streams)
			t.Logf("%s, %s: %d streams, %d allocations in the process: %.5f per stream", kind, m.name, streams, allocs, perStreamAllocs)
			if perStreamAllocs > 0.001 {
				t.Errorf("%s: %.4f allocations per stream (%d over %d streams), want 0", kind, perStreamAllocs, allocs, streams)
			}
			if !bytes.HasSuffix(last, []byte("Have a nice day!")) {
				t.Errorf("%s: last answer's body: %q", kind, last)
			}
			if kind == "gRPC" && ts.total(func(s Stats) uint64 { return s.Counters[cGRPCCalls] }) == 0 {
				t.Error("no call was taken for gRPC")
			}
		}
	}
}

// processAllocs counts the heap allocations of the whole process (the
// shards' threads included) over rounds calls of round.
func processAllocs(rounds int, round func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range rounds {
		round()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
