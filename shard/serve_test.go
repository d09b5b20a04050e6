package shard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"zerosys/affinity"
	"zerosys/listener"
)

// ringMode is one way of running shards, for the test matrix.
type ringMode struct {
	name   string
	sqpoll bool
	shards int
	recv   RecvMode
	fixed  bool // connections in the ring's file table (FixedFiles)
}

// modes lists {sqpoll on, off} x {1, 2 shards}. A spinning SQPOLL shard
// needs a CPU for itself and one for its poller; combinations the machine
// cannot place are skipped with the reason.
var modes = []ringMode{
	{"sqpoll=off/shards=1", false, 1, RecvAuto, false},
	{"sqpoll=off/shards=2", false, 2, RecvAuto, false},
	{"sqpoll=on/shards=1", true, 1, RecvAuto, false},
	{"sqpoll=on/shards=2", true, 2, RecvAuto, false},
	{"sqpoll=off/shards=1/recv=multishot", false, 1, RecvMultishot, false},
	{"sqpoll=on/shards=1/recv=multishot", true, 1, RecvMultishot, false},
	{"sqpoll=off/shards=1/recv=slot", false, 1, RecvSlot, false},
	{"sqpoll=on/shards=1/recv=slot", true, 1, RecvSlot, false},
	{"sqpoll=off/shards=1/fixed-files", false, 1, RecvAuto, true},
	{"sqpoll=on/shards=1/fixed-files", true, 1, RecvAuto, true},
	{"sqpoll=off/shards=1/recv=pool", false, 1, RecvPool, false},
	{"sqpoll=on/shards=1/recv=pool", true, 1, RecvPool, false},
}

// recvModes is one shard without SQPOLL, receiving each way, and with
// fixed files.
var recvModes = []ringMode{modes[0], modes[4], modes[6], modes[8], modes[10]}

// forRecvModes runs f as a subtest for each way of receiving.
func forRecvModes(t *testing.T, f func(t *testing.T, m ringMode)) {
	for _, m := range recvModes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// testServer is shards serving one loopback port.
type testServer struct {
	addr   string
	shards []*Shard
	group  *listener.Group
}

func (ts *testServer) stats() []Stats {
	out := make([]Stats, len(ts.shards))
	for i, s := range ts.shards {
		out[i] = s.Stats()
	}
	return out
}

// total sums a counter over the shards.
func (ts *testServer) total(f func(Stats) uint64) uint64 {
	var n uint64
	for _, st := range ts.stats() {
		n += f(st)
	}
	return n
}

// dial connects to the server with a 5 s deadline; the connection closes
// when the test ends.
func (ts *testServer) dial(t testing.TB) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// waitFor polls until cond holds: counters are published a few batches
// late, and a shard's last completions may land after the client is done.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startServer starts m.shards shards on 127.0.0.1:0 and stops them when the
// test ends. It skips when the machine cannot place the mode.
func startServer(t testing.TB, m ringMode, mutate func(*Config)) *testServer {
	t.Helper()
	return startServerAfter(t, m, mutate, nil)
}

// startServerAfter is startServer calling before with the address once
// the listeners listen and before any shard starts: connections it makes
// wait in the backlog, for the first accept to take all at once.
func startServerAfter(t testing.TB, m ringMode, mutate func(*Config), before func(addr string)) *testServer {
	t.Helper()
	allowed, err := affinity.Allowed()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := affinity.MakePlan(affinity.PlanConfig{Allowed: allowed, Shards: m.shards, SQPoll: m.sqpoll, Spin: m.sqpoll})
	if err != nil {
		t.Skipf("this machine (cpus %s) cannot place %s: %v", allowed, m.name, err)
	}
	if runtime.GOMAXPROCS(0) < m.shards+1 {
		prev := runtime.GOMAXPROCS(m.shards + 1)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	g, err := listener.Listen(listener.Config{Addr: "127.0.0.1:0"}, m.shards)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: g.Addr.String(), group: g}
	t.Cleanup(func() {
		for _, s := range ts.shards {
			s.Stop()
		}
		_ = g.Close()
	})
	if before != nil {
		before(ts.addr)
	}
	for i, a := range plan.Shards {
		cfg := Config{ID: i, ListenFD: g.FDs[i], CPU: a.CPU, SQPoll: m.sqpoll, PollerCPU: a.PollerCPU, MaxConns: 256, Recv: m.recv, FixedFiles: m.fixed}
		if mutate != nil {
			mutate(&cfg)
		}
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ts.shards = append(ts.shards, s)
	}
	return ts
}

// forModes runs f as a subtest in every mode.
func forModes(t *testing.T, f func(t *testing.T, m ringMode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

func TestServeNetHTTPClient(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, nil)
		tr := &http.Transport{MaxIdleConnsPerHost: 8}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		const workers, each = 8, 100
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					resp, err := client.Get("http://" + ts.addr + "/x")
					if err != nil {
						errs <- err
						return
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || string(body) != "Have a nice day!" {
						errs <- fmt.Errorf("status %d body %q err %v", resp.StatusCode, body, err)
						return
					}
					if resp.Close {
						errs <- fmt.Errorf("a keep-alive request was answered with Connection: close")
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		waitFor(t, "request counters", func() bool { return ts.total(func(s Stats) uint64 { return s.Counters[cRequests] }) == workers*each })
		// Go's transport may dial more connections than workers when
		// they race for idle ones; what zerosys controls is that it
		// never ends a keep-alive connection itself.
		if n := ts.total(func(s Stats) uint64 {
			return s.Counters[cClosedTimeoutIdle] + s.Counters[cClosedTimeoutHeader] + s.Counters[cClosedError]
		}); n != 0 {
			t.Errorf("%d connections ended by timeouts or errors", n)
		}
	})
}

// readResponses reads n responses, checking each against want(i).
func readResponses(t *testing.T, br *bufio.Reader, n int, head func(i int) bool) {
	t.Helper()
	for i := range n {
		method := "GET"
		if head != nil && head(i) {
			method = "HEAD"
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantBody := "Have a nice day!"
		if method == "HEAD" {
			wantBody = ""
		}
		if err != nil || resp.StatusCode != 200 || string(body) != wantBody || resp.ContentLength != 16 {
			t.Fatalf("response %d to %s: status %d length %d body %q err %v", i, method, resp.StatusCode, resp.ContentLength, body, err)
		}
	}
}

func TestServePipelined(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, nil)
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 100 requests in one write; every seventh is HEAD, so answers
		// of two kinds interleave and their order is checked.
		isHead := func(i int) bool { return i%7 == 3 }
		var req bytes.Buffer
		for i := range 100 {
			method := "GET"
			if isHead(i) {
				method = "HEAD"
			}
			fmt.Fprintf(&req, "%s /%d HTTP/1.1\r\nHost: t\r\n\r\n", method, i)
		}
		if _, err := c.Write(req.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		readResponses(t, br, 100, isHead)
		// The connection is still usable.
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || !resp.Close {
			t.Fatalf("last response: %v, close=%v", err, resp != nil && resp.Close)
		}
		_, _ = io.ReadAll(resp.Body)
		if n, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after Connection: close, read %q, %v; want EOF", n, err)
		}
	})
}

// TestServeManyPipelined sends more pipelined requests than one send
// carries and than the answer queue holds, so batching and the pause in
// reading are both exercised.
func TestServeManyPipelined(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, func(c *Config) { c.MaxPipeline = 50 })
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		const n = 5000
		req := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), n)
		go func() { _, _ = c.Write(req) }()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		readResponses(t, bufio.NewReader(c), n, nil)
	})
}

func TestServeCloseMode(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, func(c *Config) { c.Mode = ModeClose })
		const conns = 200
		for i := range conns {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: t\r\n\r\n", i)
			got, err := io.ReadAll(c) // to EOF: a reset would be an error here
			c.Close()
			if err != nil {
				t.Fatalf("connection %d: %v after %q", i, err, got)
			}
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK\r\n")) || !bytes.Contains(got, []byte("Connection: close\r\n")) || !bytes.HasSuffix(got, []byte("Have a nice day!")) {
				t.Fatalf("connection %d got %q", i, got)
			}
		}
		waitFor(t, "closes", func() bool { return ts.total(func(s Stats) uint64 { return s.Closed() }) == conns })
		if r := ts.total(func(s Stats) uint64 { return s.Counters[cClosedError] }); r != 0 {
			t.Errorf("%d resets", r)
		}
	})
}

// TestServeCloseModePipelined: in close mode a second pipelined request is
// unread when the answer goes out; zerosys must half-close and drain, not
// reset the connection and destroy the answer.
func TestServeCloseModePipelined(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, func(c *Config) { c.Mode = ModeClose })
		c := ts.dial(t)
		fmt.Fprintf(c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "Have a nice day!" || !resp.Close {
			t.Fatalf("body %q close %v err %v", body, resp.Close, err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("want EOF after the one answer, got %v", err)
		}
	})
}

// TestServeHalfClose: a client that sends its requests and shuts down its
// side still gets every answer.
func TestServeHalfClose(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, nil)
		c := ts.dial(t)
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 3))
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		readResponses(t, br, 3, nil)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("want EOF after the answers, got %v", err)
		}
	})
}

// TestServeBadInputIsolated: a malformed request gets 400 and a close,
// while a keep-alive client on another connection keeps being answered.
func TestServeBadInputIsolated(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, nil)
		good := ts.dial(t)
		gr := bufio.NewReader(good)
		for i := range 3 {
			bad, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = bad.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprint(bad, "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\nGET / HTTP/1.1\r\n\r\n")
			got, err := io.ReadAll(bad)
			bad.Close()
			if err != nil || !bytes.HasPrefix(got, []byte("HTTP/1.1 400 Bad Request\r\n")) || !bytes.Contains(got, []byte("Connection: close")) {
				t.Fatalf("bad request %d: %q, %v", i, got, err)
			}
			fmt.Fprint(good, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
			readResponses(t, gr, 1, nil)
		}
		waitFor(t, "rejected counter", func() bool { return ts.total(func(s Stats) uint64 { return s.Counters[cRejected] }) == 3 })
	})
}

// TestServeMaxConns: with the table full, the longest idle connection
// makes room, and a new connection waits in the backlog until its slot
// frees: served, never dropped; the others are unaffected.
func TestServeMaxConns(t *testing.T) { forRecvModes(t, testServeMaxConns) }

func testServeMaxConns(t *testing.T, m ringMode) {
	ts := startServer(t, m, func(c *Config) { c.MaxConns = 4 })
	var held []net.Conn
	for range 4 {
		c := ts.dial(t)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		readResponses(t, bufio.NewReader(c), 1, nil)
		held = append(held, c)
		time.Sleep(5 * time.Millisecond) // distinct idle times
	}
	// The table is full of idle keep-alive connections: the longest idle
	// makes room, and the new connection is served, not dropped.
	extra, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprint(extra, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	readResponses(t, bufio.NewReader(extra), 1, nil)
	_ = held[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := held[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the longest idle connection: %v, want EOF (evicted)", err)
	}
	// The others still work.
	fmt.Fprint(held[3], "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readResponses(t, bufio.NewReader(held[3]), 1, nil)
	if d := ts.total(func(s Stats) uint64 { return s.Counters[cAcceptDropped] }); d != 0 {
		t.Errorf("%d connections dropped", d)
	}
	if n := ts.total(func(s Stats) uint64 { return s.Counters[cEvictedIdle] }); n == 0 {
		t.Error("no idle connection evicted")
	}
}

// TestServeTimeouts: a client that trickles a request head gets 408; an
// idle keep-alive connection is closed.
func TestServeTimeouts(t *testing.T) { forRecvModes(t, testServeTimeouts) }

func testServeTimeouts(t *testing.T, m ringMode) {
	ts := startServer(t, m, func(c *Config) {
		c.HeaderTimeout = 300 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
	})
	slow := ts.dial(t)
	start := time.Now()
	for _, part := range []string{"GET / HT", "TP/1.1\r\n", "Host: t\r\n"} {
		fmt.Fprint(slow, part)
		time.Sleep(100 * time.Millisecond)
	}
	got, err := io.ReadAll(slow)
	if err != nil || !bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) {
		t.Fatalf("slow head: %q, %v", got, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("header timeout of 300ms fired after %v", d)
	}
	slow.Close() // ends the server's lingering close: the slot is counted when released
	idle := ts.dial(t)
	fmt.Fprint(idle, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	br := bufio.NewReader(idle)
	readResponses(t, br, 1, nil)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: want EOF, got %v", err)
	}
	waitFor(t, "timeout counters", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cClosedTimeoutHeader] }) == 1 && ts.total(func(s Stats) uint64 { return s.Counters[cClosedTimeoutIdle] }) == 1
	})
}

// TestServeShardsShareLoad: every shard of a SO_REUSEPORT group gets
// connections.
func TestServeShardsShareLoad(t *testing.T) {
	ts := startServer(t, modes[1], nil)
	for i := range 64 {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /%d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", i)
		if _, err := io.ReadAll(c); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	waitFor(t, "accept counters", func() bool { return ts.total(func(s Stats) uint64 { return s.Counters[cAccepted] }) == 64 })
	for _, st := range ts.stats() {
		if st.Accepted() == 0 {
			t.Errorf("shard %d accepted no connection: %+v", st.Shard, ts.stats())
		}
	}
}

// TestStopReleasesEverything: after Stop, no ring, mapping, socket or
// goroutine of the shard is left.
func TestStopReleasesEverything(t *testing.T) {
	fdsBefore := countFDs(t)
	goroutinesBefore := runtime.NumGoroutine()
	stopModes := []ringMode{modes[0], modes[2], modes[4]}
	for _, m := range stopModes {
		g, err := listener.Listen(listener.Config{Addr: "127.0.0.1:0"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Start(Config{ListenFD: g.FDs[0], CPU: -1, SQPoll: m.sqpoll, MaxConns: 16, Recv: m.recv})
		if err != nil {
			t.Fatal(err)
		}
		// Leave connections open, mid-request and idle, for Stop to cut.
		for i := range 3 {
			c, err := net.Dial("tcp", g.Addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if i > 0 {
				fmt.Fprint(c, "GET / HTTP/1.1\r\n")
			}
		}
		waitFor(t, "accepts", func() bool { return s.Stats().Accepted() == 3 })
		s.Stop()
		_ = g.Close()
	}
	clientSockets := 3 * len(stopModes) // the test's own, closed when it ends
	waitFor(t, "fds to close", func() bool { return countFDs(t) <= fdsBefore+clientSockets })
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= goroutinesBefore })
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestServeDate: answers carry the current Date, and it advances.
func TestServeDate(t *testing.T) {
	ts := startServer(t, modes[0], nil)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func() time.Time {
		t.Helper()
		resp, err := client.Get("http://" + ts.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
		}
		if skew := time.Since(d); skew < -time.Second || skew > 2*time.Second {
			t.Fatalf("Date %v is %v off the clock", d, skew)
		}
		return d
	}
	first := get()
	time.Sleep(1100 * time.Millisecond)
	if second := get(); !second.After(first) {
		t.Errorf("Date did not advance: %v then %v", first, second)
	}
}

// TestServeDateWithStuckSend: a client that never reads a large answer
// holds the response set its send reads; the others' Date must still move
// on every second.
func TestServeDateWithStuckSend(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = bytes.Repeat([]byte("x"), 8<<20) // more than socket buffers hold
	})
	stuck := ts.dial(t)
	fmt.Fprint(stuck, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	client := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		time.Sleep(time.Second)
		req, _ := http.NewRequest("HEAD", "http://"+ts.addr+"/", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			t.Fatalf("Date %q: %v", resp.Header.Get("Date"), err)
		}
		// Date has a resolution of one second and is rewritten once a
		// second: within two seconds of the clock, never stuck behind.
		if skew := time.Since(d); skew > 2*time.Second {
			t.Fatalf("Date %v is %v behind the clock while a send is stuck", d, skew)
		}
	}
	if n := ts.total(func(s Stats) uint64 { return s.Counters[cDateDelayed] }); n != 0 {
		t.Errorf("%d Date refreshes delayed", n)
	}
}

// TestServeHigherMinorVersion: HTTP/1.2 to 1.9 are served as HTTP/1.1
// (RFC 9110 §2.5), keep-alive included.
func TestServeHigherMinorVersion(t *testing.T) {
	ts := startServer(t, modes[0], nil)
	c := ts.dial(t)
	fmt.Fprint(c, "GET / HTTP/1.2\r\nHost: t\r\n\r\nGET / HTTP/1.9\r\nHost: t\r\n\r\n")
	readResponses(t, bufio.NewReader(c), 2, nil)
}

// TestServeBufferPoolDry: with fewer receive buffers than connections
// whose requests wait at once, recvs find the pool dry (ENOBUFS), are
// re-armed as buffers return, and every request is answered. The
// connections and their requests wait in the backlog before the shard
// starts, so its first accept takes them all in one turn and their first
// recvs, submitted together, outnumber the buffers whatever the speed of
// the machine.
func TestServeBufferPoolDry(t *testing.T) {
	for _, m := range []ringMode{modes[0], modes[4]} {
		t.Run(m.name, func(t *testing.T) {
			const conns, each = 24, 200
			var clients []net.Conn
			ts := startServerAfter(t, m, func(c *Config) { c.bufCount = 4; c.MaxPipeline = 8 }, func(addr string) {
				for range conns {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { c.Close() })
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					if _, err := c.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), each)); err != nil {
						t.Fatal(err)
					}
					clients = append(clients, c)
				}
			})
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					br := bufio.NewReader(c)
					for i := range each {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							errs <- fmt.Errorf("answer %d: %w", i, err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitFor(t, "request counters", func() bool { return ts.total(func(s Stats) uint64 { return s.Counters[cRequests] }) == conns*each })
			nobufs := ts.total(func(s Stats) uint64 { return s.Counters[cRecvNoBufs] })
			t.Logf("%d requests over %d connections with 4 receive buffers; %d recvs ran dry and were re-armed", conns*each, conns, nobufs)
			if nobufs == 0 {
				t.Error("the pool never ran dry: the path under test did not run")
			}
		})
	}
}

// TestServeSendZC: large answers sent zero-copy arrive whole in every
// mode of use, and every notification releases its set of responses
// (otherwise the Date refresh would stall).
func TestServeSendZC(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	for _, mode := range []Mode{ModeKeepAlive, ModeClose} {
		t.Run(fmt.Sprint("mode=", mode), func(t *testing.T) {
			ts := startServer(t, modes[0], func(c *Config) {
				c.SendZC = true
				c.Mode = mode
				c.Response.Body = body
			})
			for i := range 20 {
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				n := 1
				if mode == ModeKeepAlive {
					n = 8
				}
				fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", n))
				br := bufio.NewReader(c)
				for j := range n {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("conn %d answer %d: %v", i, j, err)
					}
					got, err := io.ReadAll(resp.Body)
					if err != nil || !bytes.Equal(got, body) {
						t.Fatalf("conn %d answer %d: %d bytes, %v", i, j, len(got), err)
					}
				}
				c.Close()
			}
			waitFor(t, "closes", func() bool { return ts.total(func(s Stats) uint64 { return s.Closed() }) == 20 })
			sh := ts.shards[0]
			sh.Stop()
			if n := sh.e.sets.held(); n != 0 {
				t.Errorf("%d response-set references still held after stop", n)
			}
		})
	}
}

// TestServeTimeoutsFreeSlots: a client that stays connected and silent
// after its answer (lingering close), or that never reads a last answer
// linked to the close, must not hold the slot past the timeouts.
func TestServeTimeoutsFreeSlots(t *testing.T) {
	for _, m := range []ringMode{modes[0], modes[4], modes[6], {"sqpoll=off/shards=1/send=zerocopy", false, 1, RecvPool, false}} {
		t.Run(m.name, func(t *testing.T) { testServeTimeoutsFreeSlots(t, m, strings.Contains(m.name, "zerocopy")) })
	}
}

func testServeTimeoutsFreeSlots(t *testing.T, m ringMode, zerocopy bool) {
	{
		ts := startServer(t, m, func(c *Config) {
			c.LingerTimeout = 300 * time.Millisecond
			c.SendTimeout = 300 * time.Millisecond
			c.Response.Body = bytes.Repeat([]byte("x"), 8<<20) // more than socket buffers hold
			c.SendZC = zerocopy
		})
		// Lingering: a bad request gets 400, a half-close, then the
		// server reads until the client closes, which it never does.
		silent := ts.dial(t)
		fmt.Fprint(silent, "BAD REQUEST\r\n\r\n")
		// Linked send+close: "Connection: close", and the client never
		// reads the 8 MiB answer.
		stuck := ts.dial(t)
		fmt.Fprint(stuck, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		// Keep-alive: the client asks and never reads.
		unread := ts.dial(t)
		fmt.Fprint(unread, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		waitFor(t, "all three slots to be released", func() bool {
			return ts.total(func(s Stats) uint64 { return s.Closed() }) == 3
		})
		if n := ts.total(func(s Stats) uint64 { return s.Counters[cClosedTimeoutLinger] }); n != 1 {
			t.Errorf("%d linger timeouts, want 1", n)
		}
		if n := ts.total(func(s Stats) uint64 { return s.Counters[cClosedTimeoutSend] }); n != 2 {
			t.Errorf("%d send timeouts, want 2", n)
		}
	}
}

// TestServeLargeAnswersInChunks: answers longer than one send may carry
// (maxSendChunk) leave in several sends, pipelined ones batched together,
// and arrive whole and in order; the last one, with "Connection: close",
// still ends in a clean EOF after its last byte, plain and zero-copy.
func TestServeLargeAnswersInChunks(t *testing.T) {
	body := make([]byte, 3*maxSendChunk+12345)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	for _, zc := range []bool{false, true} {
		t.Run(fmt.Sprintf("zerocopy=%v", zc), func(t *testing.T) {
			ts := startServer(t, modes[0], func(c *Config) { c.Response.Body = body; c.SendZC = zc })
			c := ts.dial(t)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 3)+"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
			br := bufio.NewReader(c)
			for i := range 4 {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, body) {
					t.Fatalf("answer %d: status %d, %d body bytes (want %d), equal %v, err %v", i, resp.StatusCode, len(got), len(body), bytes.Equal(got, body), err)
				}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after the last answer: %d bytes, %v; want a clean EOF", len(rest), err)
			}
		})
	}
}

// TestServeCloseModeLatePipelined: in close mode a keep-alive client may
// send its next request after the answer left; it must still read the
// whole answer and an EOF, not a reset.
func TestServeCloseModeLatePipelined(t *testing.T) {
	forRecvModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, func(c *Config) { c.Mode = ModeClose })
		for i := range 20 {
			c := ts.dial(t)
			fmt.Fprint(c, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
			time.Sleep(2 * time.Millisecond) // the answer is on its way
			fmt.Fprint(c, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
			time.Sleep(20 * time.Millisecond) // and the second request has arrived
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("connection %d: %v after %q", i, err, got)
			}
			if !bytes.HasSuffix(got, []byte("Have a nice day!")) || bytes.Count(got, []byte("HTTP/1.1 200")) != 1 {
				t.Fatalf("connection %d got %q", i, got)
			}
		}
	})
}

// TestServeFixedFilesTakeNoDescriptors: with FixedFiles, open connections
// live in the ring's file table, not the process's descriptor table, and
// are served the same.
func TestServeFixedFilesTakeNoDescriptors(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		t.Run(fmt.Sprintf("fixed=%v", fixed), func(t *testing.T) {
			ts := startServer(t, modes[0], func(c *Config) { c.FixedFiles = fixed })
			before := countFDs(t)
			var conns []net.Conn
			for range 40 {
				c := ts.dial(t)
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
				readResponses(t, bufio.NewReader(c), 1, nil)
				conns = append(conns, c)
			}
			// The client side takes 40 descriptors either way.
			grown := countFDs(t) - before - 40
			if fixed && grown != 0 || !fixed && grown != 40 {
				t.Fatalf("the server side took %d descriptors for 40 connections", grown)
			}
			for _, c := range conns {
				c.Close()
			}
			waitFor(t, "the connections closed", func() bool {
				return ts.total(func(s Stats) uint64 { return uint64(s.Active) }) == 0
			})
		})
	}
}
