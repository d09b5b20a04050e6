package shard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// h2cClient is x/net's HTTP/2 client over cleartext, prior knowledge.
func h2cClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// TestServeH2 serves x/net's HTTP/2 client in every ring mode: many
// streams at once on few connections, request bodies, HEAD, a body
// larger than the windows, beside HTTP/1.1 clients on the same port.
func TestServeH2(t *testing.T) {
	forModes(t, func(t *testing.T, m ringMode) {
		body := PatternBody(300 << 10)
		ts := startServer(t, m, func(c *Config) {
			c.Response.Body = body
			c.Response.Headers = []string{"X-Served-By: test/0"}
		})
		cl := h2cClient()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				method, reqBody := "GET", io.Reader(nil)
				switch i % 4 {
				case 1:
					method, reqBody = "POST", strings.NewReader(strings.Repeat("x", 70000))
				case 2:
					method = "HEAD"
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/%d", ts.addr, i), reqBody)
				resp, err := cl.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := body
				if method == "HEAD" {
					want = nil
				}
				if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 2 || !bytes.Equal(got, want) ||
					resp.Header.Get("X-Served-By") != "test/0" || resp.Header.Get("Date") == "" || resp.ContentLength != int64(len(body)) {
					t.Errorf("%s %d: status %d %s, %d bytes (want %d), header %v, err %v", method, i, resp.StatusCode, resp.Proto, len(got), len(want), resp.Header, err)
				}
			})
		}
		// HTTP/1.1 on the same port at the same time.
		c := ts.dial(t)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !bytes.Equal(got, body) {
				err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(got))
			}
		}
		wg.Wait()
		if err != nil {
			t.Fatalf("HTTP/1.1 beside HTTP/2: %v", err)
		}
		waitFor(t, "the streams counted", func() bool {
			return ts.total(func(s Stats) uint64 { return s.Counters[cH2Streams] }) == 40
		})
	})
}

// TestServeH2COff: with HTTP/2 off, the preface is answered 505 as an
// HTTP/1.1 request line it is not.
func TestServeH2COff(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) { c.H2C = H2COff })
	c := ts.dial(t)
	fmt.Fprint(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	got, err := io.ReadAll(c)
	if err != nil || !bytes.HasPrefix(got, []byte("HTTP/1.1 505 ")) {
		t.Fatalf("%q, %v", got, err)
	}
}

// TestServeH2Drain: a drain sends GOAWAY, answers the open streams and
// closes; the client sees every answer.
func TestServeH2Drain(t *testing.T) {
	ts := startServer(t, modes[0], nil)
	cl := h2cClient()
	resp, err := cl.Get("http://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ts.shards[0].Drain()
	waitFor(t, "the HTTP/2 connection closed by the drain", func() bool {
		return ts.total(func(s Stats) uint64 { return uint64(s.Active) }) == 0
	})
	// A new connection is served (the listener is still open) and told to go.
	resp, err = cl.Get("http://" + ts.addr + "/again")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// h2specBinary finds h2spec: H2SPEC, $PATH, or the Go bin directory.
func h2specBinary(t *testing.T) string {
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	out, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(string(bytes.TrimSpace(out)), "bin", "h2spec")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("h2spec not found (make test installs it; or go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible): %v", err)
	}
	return p
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// runH2Spec runs every h2spec case against ts and returns its summary
// and its report of failures.
func runH2Spec(t *testing.T, ts *testServer) (passed, failed string, report []byte) {
	host, port, _ := net.SplitHostPort(ts.addr)
	out, _ := exec.Command(h2specBinary(t), "-h", host, "-p", port, "-o", "2").CombinedOutput()
	m := h2specSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary from h2spec:\n%s", out)
	}
	if i := bytes.Index(out, []byte("Failures:")); i >= 0 {
		report = out[i:]
	}
	return string(m[2]), string(m[4]), report
}

// TestServeH2Spec: h2spec's 145 cases all pass against a shard that
// speaks only HTTP/2, in every ring mode. Beside HTTP/1.1 (the default)
// one case cannot: it sends an invalid preface and wants the connection
// closed, and HTTP/1.1 answers that line 400.
func TestServeH2Spec(t *testing.T) {
	for _, m := range []ringMode{modes[0], modes[2], modes[4], modes[6], modes[8]} {
		t.Run(m.name, func(t *testing.T) {
			ts := startServer(t, m, func(c *Config) { c.H2C = H2COnly })
			if passed, failed, report := runH2Spec(t, ts); passed != "145" || failed != "0" {
				t.Fatalf("h2spec: %s passed, %s failed\n%s", passed, failed, report)
			}
		})
	}
	t.Run("beside HTTP/1.1", func(t *testing.T) {
		ts := startServer(t, modes[0], nil)
		passed, failed, report := runH2Spec(t, ts)
		if passed != "144" || failed != "1" || !bytes.Contains(report, []byte("Sends invalid connection preface")) {
			t.Fatalf("h2spec: %s passed, %s failed\n%s", passed, failed, report)
		}
	})
}

// TestServeH2Upgrade: `Upgrade: h2c` on the first request switches to
// HTTP/2 after a 101, the request is answered on stream 1 under the
// settings HTTP2-Settings carried (here a 100-byte window), and requests
// that cannot be upgraded get HTTP/1.1.
func TestServeH2Upgrade(t *testing.T) {
	body := PatternBody(300)
	ts := startServer(t, modes[0], func(c *Config) { c.Response.Body = body })
	settings := base64.RawURLEncoding.EncodeToString([]byte{0, 4, 0, 0, 0, 100}) // INITIAL_WINDOW_SIZE 100
	t.Run("upgraded", func(t *testing.T) {
		c := ts.dial(t)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n", settings)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "h2c" {
			t.Fatalf("%v %v", resp, err)
		}
		io.WriteString(c, http2.ClientPreface)
		fr := http2.NewFramer(c, br)
		_ = fr.WriteSettings()
		var data []byte
		sawHeaders := false
		for len(data) < len(body) {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("after %d body bytes: %v", len(data), err)
			}
			switch f := f.(type) {
			case *http2.HeadersFrame:
				sawHeaders = f.StreamID == 1
			case *http2.DataFrame:
				if f.StreamID != 1 {
					t.Fatalf("DATA on stream %d", f.StreamID)
				}
				if len(data) < 100 && len(data)+len(f.Data()) > 100 {
					t.Fatalf("%d bytes of DATA past the 100-byte window HTTP2-Settings set", len(data)+len(f.Data())-100)
				}
				data = append(data, f.Data()...)
				if len(data) == 100 {
					_ = fr.WriteWindowUpdate(1, 1000) // the window HTTP2-Settings set is used up
				}
				if len(data) > 100 && len(data) < len(body) && f.StreamEnded() {
					t.Fatal("the stream ended early")
				}
			case *http2.GoAwayFrame, *http2.RSTStreamFrame:
				t.Fatalf("%v", f)
			}
			if len(data) > 100 && !sawHeaders {
				t.Fatal("no HEADERS on stream 1")
			}
		}
		if !bytes.Equal(data, body) {
			t.Fatalf("body %q", data)
		}
	})
	t.Run("head in pieces", func(t *testing.T) {
		c := ts.dial(t)
		head := fmt.Sprintf("GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: %s\r\n\r\n", settings)
		for _, piece := range []string{head[:5], head[5:40], head[40:]} {
			io.WriteString(c, piece)
			time.Sleep(2 * time.Millisecond) // each piece its own read
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("%v %v", resp, err)
		}
	})
	for name, req := range map[string]string{
		"bad settings": "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nHTTP2-Settings: !!\r\n\r\n",
		"with a body":  "POST / HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nHTTP2-Settings: " + settings + "\r\nContent-Length: 2\r\n\r\nhi",
		"other token":  "GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nHTTP2-Settings: " + settings + "\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := ts.dial(t)
			io.WriteString(c, req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 1 {
				t.Fatalf("%v %v", resp, err)
			}
		})
	}
}

// TestServeH2Delays: with a delay mix, a delayed stream waits on its own
// while the others on the same connection are answered at once.
func TestServeH2Delays(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.DelayMix = []Share{{Value: 300_000, PPM: 300_000}} // 30% wait 300 ms
		c.Seed = 7
	})
	cl := h2cClient()
	var mu sync.Mutex
	var fast, slow []time.Duration
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			start := time.Now()
			resp, err := cl.Get(fmt.Sprintf("http://%s/%d", ts.addr, i))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d := time.Since(start)
			mu.Lock()
			if d >= 300*time.Millisecond {
				slow = append(slow, d)
			} else {
				fast = append(fast, d)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(slow) == 0 || len(fast) == 0 {
		t.Fatalf("%d fast and %d delayed answers; want both", len(fast), len(slow))
	}
	// An undelayed stream held back by a delayed one takes 300 ms and is
	// counted slow, which the server's count of delays then contradicts.
	if m := slices.Sorted(slices.Values(fast))[len(fast)/2]; m > 100*time.Millisecond {
		t.Fatalf("the undelayed streams took a median %v", m)
	}
	waitFor(t, "the delays counted", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cDelayed] }) == uint64(len(slow))
	})
	if n := ts.total(func(s Stats) uint64 { return s.Counters[cH2Conns] }); n != 1 {
		t.Fatalf("%d HTTP/2 connections, want 1 for every stream", n)
	}
}

// TestServeH2KeepAliveLimit: the keep-alive limit ends an HTTP/2
// connection by GOAWAY after its n-th stream; the client goes on over a
// new connection and loses nothing.
func TestServeH2KeepAliveLimit(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) { c.KeepAliveRequests = 5 })
	cl := h2cClient()
	for i := range 20 {
		resp, err := cl.Get(fmt.Sprintf("http://%s/%d", ts.addr, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	waitFor(t, "four connections of five streams", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cH2Conns] }) == 4
	})
}

// TestServeH2PrefaceInPieces: a client preface that arrives a few bytes
// at a time is HTTP/2 all the same, and a request line that begins like
// it and then differs is HTTP/1.1's, whole.
func TestServeH2PrefaceInPieces(t *testing.T) {
	ts := startServer(t, modes[0], nil)
	c := ts.dial(t)
	var start bytes.Buffer
	start.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&start, nil)
	_ = fr.WriteSettings()
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82, 0x86, 0x84, 0x41, 1, 't'}, EndStream: true, EndHeaders: true})
	b := start.Bytes()
	for i := 0; i < len(b); i += 3 {
		if _, err := c.Write(b[i:min(i+3, len(b))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // each piece its own segment and recv
	}
	rd := http2.NewFramer(nil, c)
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("no answer on stream 1: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 && d.StreamEnded() {
			break
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			t.Fatalf("GOAWAY: %v", f)
		}
	}

	c = ts.dial(t)
	for _, piece := range []string{"PRI * HT", "TP/1.1\r\nHost: t\r\n\r\n"} {
		io.WriteString(c, piece)
		time.Sleep(2 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.ProtoMajor != 1 {
		t.Fatalf("a request line like the preface's: %v %v", resp, err)
	}

	// A first request's body that reads like the preface is a body.
	c = ts.dial(t)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 24\r\n\r\n")
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("100 Continue: %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, http2.ClientPreface)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Fatalf("a body like the preface: %v %v", resp, err)
	}
}
