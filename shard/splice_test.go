package shard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// spliceBody is larger than one pipe, so an answer takes two chains.
var spliceBody = PatternBody(spliceChunk + 300<<10)

// readPattern reads one answer and checks its body is PatternBody of its
// Content-Length (or want, when given).
func readPattern(t *testing.T, br *bufio.Reader, want []byte) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want == nil {
		want = PatternBody(int(resp.ContentLength))
	}
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("status %d, %d body bytes (want %d), equal %v, err %v", resp.StatusCode, len(got), len(want), bytes.Equal(got, want), err)
	}
	return resp
}

func spliced(ts *testServer) uint64 {
	return ts.total(func(s Stats) uint64 { return s.Counters[cSpliced] })
}

// TestServeSplice: answers spliced from the body file arrive byte-exact,
// whole bodies and pipe-sized parts of them, keep-alive, pipelined, HEAD
// and close, in every ring mode; small answers of the same mix are sent
// as before.
func TestServeSplice(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		ts := startServer(t, m, func(c *Config) {
			c.Response.Body = spliceBody
			c.Response.SizeMix = []Share{{Value: 100 << 10, PPM: 300_000}, {Value: 10, PPM: 300_000}}
			c.SpliceMin = 64 << 10
		})
		c := ts.dial(t)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		const n = 12
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", n)+
			"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
		br := bufio.NewReader(c)
		large := 0
		for range n {
			resp := readPattern(t, br, nil)
			if resp.ContentLength == int64(len(spliceBody)) {
				large++
			}
		}
		head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
		if err != nil || head.StatusCode != 200 {
			t.Fatalf("HEAD: %v %v", head, err)
		}
		readPattern(t, br, nil)
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after the last answer: %d bytes, %v; want a clean EOF", len(rest), err)
		}
		waitFor(t, "the spliced answers counted", func() bool { return spliced(ts) >= uint64(large) && large > 0 })
	})
}

// TestSpliceBrokenChains: clients that reset in the middle of spliced
// answers leave body bytes in pipes; the pipes are drained before they
// carry another answer, so every later answer is byte-exact and spliced
// again.
func TestSpliceBrokenChains(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = spliceBody
		c.SpliceMin = 64 << 10
	})
	for round := range 3 {
		var wg sync.WaitGroup
		for range 2 * splicePipeCount {
			wg.Go(func() {
				c, err := net.Dial("tcp", ts.addr)
				if err != nil {
					t.Error(err)
					return
				}
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
				buf := make([]byte, 64<<10)
				_, _ = io.ReadFull(c, buf) // part of the first answer, then a reset
				_ = c.(*net.TCPConn).SetLinger(0)
				c.Close()
			})
		}
		wg.Wait()
		waitFor(t, "the broken connections closed", func() bool {
			return ts.total(func(s Stats) uint64 { return uint64(s.Active) }) == 0
		})
		// Every pipe is free again: as many clients at once as there are
		// pipes are all spliced, and all get the whole body.
		before := spliced(ts)
		var ok sync.WaitGroup
		for range splicePipeCount {
			ok.Go(func() {
				c := ts.dial(t)
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
				got, err := io.ReadAll(c)
				if err != nil || !bytes.HasSuffix(got, spliceBody) || len(got) > len(spliceBody)+512 {
					t.Errorf("round %d: %d bytes, err %v, the body intact: %v", round, len(got), err, bytes.HasSuffix(got, spliceBody))
				}
			})
		}
		ok.Wait()
		if t.Failed() {
			return
		}
		waitFor(t, "every answer spliced", func() bool { return spliced(ts)-before == splicePipeCount })
	}
	if d := ts.total(func(s Stats) uint64 { return s.Counters[cPipeDrains] }); d == 0 {
		t.Logf("no chain broke with bytes in its pipe (the kernel took every body whole)")
	}
}

// TestSpliceSendTimeout: a client that stops reading holds a pipe and an
// io-wq worker only until the send timeout, which cuts it like any other.
func TestSpliceSendTimeout(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = spliceBody
		c.SpliceMin = 64 << 10
		c.SendTimeout = 300 * time.Millisecond
	})
	var stuck []net.Conn
	for range 4 {
		c := ts.dial(t)
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 8))
		stuck = append(stuck, c)
	}
	waitFor(t, "the stuck clients cut by the send timeout", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cClosedTimeoutSend] }) == 4
	})
	// A reader is served as before.
	c := ts.dial(t)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readPattern(t, bufio.NewReader(c), spliceBody)
	for _, s := range stuck {
		s.Close()
	}
}

// TestSpliceFallsBackWhenPipesAreBusy: with every pipe held by a client
// that does not read (its pipelined answers fill the socket's send
// buffer, so a chain waits), further large answers are copied as before.
func TestSpliceFallsBackWhenPipesAreBusy(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = spliceBody
		c.SpliceMin = 64 << 10
	})
	for range splicePipeCount {
		c := ts.dial(t)
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 16))
	}
	// Every pipe is held once the spliced count stops growing.
	last, still := uint64(0), 0
	waitFor(t, "every pipe held by a stuck chain", func() bool {
		n := spliced(ts)
		if n == last && n >= splicePipeCount {
			still++
		} else {
			last, still = n, 0
		}
		return still >= 40 // 200 ms without a chain ending
	})
	c := ts.dial(t)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	readPattern(t, bufio.NewReader(c), spliceBody)
	waitFor(t, "the copied answer counted", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cSpliceFallback] }) == 1
	})
}

// TestSpliceBehaviourChange: a new behaviour's bodies are spliced from a
// file of its own, and the old behaviour's file is closed once no set of
// it is left.
func TestSpliceBehaviourChange(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = spliceBody
		c.SpliceMin = 64 << 10
	})
	s := ts.shards[0]
	fds := countFDs(t)
	for i := range 5 {
		body := PatternBody(200<<10 + i)
		p, err := Prepare(Behaviour{Response: Response{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetBehaviour(p, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c := ts.dial(t)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		readPattern(t, bufio.NewReader(c), body)
		c.Close()
	}
	waitFor(t, "one body file open, as before the changes", func() bool { return countFDs(t) == fds })
	waitFor(t, "five answers spliced", func() bool { return spliced(ts) == 5 })
}

// TestSpliceBurst: a chain's SQEs go in one submission, so a
// burst of spliced answers in a small ring still arrives whole.
func TestSpliceBurst(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = spliceBody
		c.SpliceMin = 64 << 10
	})
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Go(func() {
			c := ts.dial(t)
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprint(c, "GET /"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
			got, err := io.ReadAll(c)
			if err != nil || !bytes.HasSuffix(got, spliceBody) {
				t.Errorf("client %d: %d bytes, err %v", i, len(got), err)
			}
		})
	}
	wg.Wait()
}
