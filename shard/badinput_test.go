package shard

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"zerosys/shard/httpwire"
)

// TestServeBadInputTable sends each kind of malformed or over-limit input
// on a connection of its own and checks the documented answer, then that
// the connection is closed cleanly (EOF, not a reset); between cases a
// keep-alive client on another connection must keep getting answers.
func TestServeBadInputTable(t *testing.T) { forRecvModes(t, testServeBadInputTable) }

func testServeBadInputTable(t *testing.T, m ringMode) {
	ts := startServer(t, m, func(c *Config) {
		c.Limits = httpwire.Limits{MaxRequestLine: 256, MaxHeaderBytes: 512, MaxBody: 1000}
	})
	tlsHello := "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\x00", 40)
	cases := []struct {
		name, in string
		status   int
	}{
		{"CL and TE together", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"differing Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400},
		{"signed Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello", 400},
		{"hex Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nhello", 400},
		{"empty Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n", 400},
		{"overflowing Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"overflowing chunk size", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
		{"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n  b\r\n\r\n", 400},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n", 400},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400},
		{"invalid method", "G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"missing target", "GET HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505},
		{"TLS ClientHello", tlsHello, 400},
		{"request line over the limit", "GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\n\r\n", 414},
		{"headers over the limit", "GET / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", 600) + "\r\n\r\n", 431},
		{"body over the limit", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n" + strings.Repeat("x", 1001), 413},
		{"chunked body over the limit", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + strings.Repeat("x", 1001) + "\r\n0\r\n\r\n", 413},
		{"bare CR", "GET / HTTP/1.1\rHost: t\r\n\r\n", 400},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\x05hello", 501},
		{"CONNECT with an invalid authority", "CONNECT /x HTTP/1.1\r\nHost: t\r\n\r\n", 501},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"no Host with absolute-form", "GET http://t/ HTTP/1.1\r\n\r\n", 400},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: t\r\nHost: t\r\n\r\n", 400},
		{"two differing Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@t\r\n\r\n", 400},
		{"Host with a path", "GET / HTTP/1.1\r\nHost: t/p\r\n\r\n", 400},
		{"Host list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400},
		{"Host with a brace", "GET / HTTP/1.1\r\nHost: {t}\r\n\r\n", 400},
		{"Host with obs-text", "GET / HTTP/1.1\r\nHost: t\xff\r\n\r\n", 400},
		{"asterisk-form with GET", "GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"origin-form without slash", "GET ! HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"authority-form with GET", "GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n", 400},
		{"bare LF in the trailer section", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n", 400},
		{"chunk size then whitespace", "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400},
		{"HEAD without Host", "HEAD / HTTP/1.1\r\n\r\n", 400},
		{"HEAD with a bad header", "HEAD / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400},
		{"HEAD over the header limit", "HEAD / HTTP/1.1\r\nHost: t\r\nX: " + strings.Repeat("a", 600) + "\r\n\r\n", 431},
		{"HEAD with an unknown coding", "HEAD / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	}
	good, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	_ = good.SetDeadline(time.Now().Add(30 * time.Second))
	gr := bufio.NewReader(good)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := ts.dial(t)
			if _, err := io.WriteString(bad, c.in); err != nil {
				t.Fatal(err)
			}
			// The client stops sending but keeps its side open: the
			// server must half-close after its answer, and reading to
			// EOF must not end in a reset.
			got, err := io.ReadAll(bad)
			if err != nil {
				t.Fatalf("reading the answer: %v after %q", err, got)
			}
			want := fmt.Sprintf("HTTP/1.1 %d ", c.status)
			if !bytes.HasPrefix(got, []byte(want)) || !bytes.Contains(got, []byte("\r\nConnection: close\r\n")) {
				t.Fatalf("answer %q, want %q... with Connection: close", got, want)
			}
			if n := bytes.Count(got, []byte("HTTP/1.1 ")); n != 1 {
				t.Errorf("%d answers, want one: %q", n, got)
			}
			// RFC 9110 §9.3.2: no content in any answer to HEAD.
			head, body, _ := bytes.Cut(got, []byte("\r\n\r\n"))
			if isHead := strings.HasPrefix(c.in, "HEAD "); isHead && len(body) != 0 {
				t.Errorf("answer to HEAD carries a body: %q", got)
			} else if !isHead && len(body) == 0 {
				t.Errorf("answer carries no body: %q", got)
			}
			if !bytes.Contains(head, []byte("\r\nContent-Length: ")) {
				t.Errorf("answer without Content-Length: %q", got)
			}
			fmt.Fprint(good, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
			readResponses(t, gr, 1, nil)
		})
	}
	waitFor(t, "rejected counter", func() bool {
		return ts.total(func(s Stats) uint64 { return s.Counters[cRejected] }) == uint64(len(cases))
	})
}

// TestServeExpectContinue: the interim answer comes before the body is
// sent, then the final answer.
func TestServeExpectContinue(t *testing.T) { forRecvModes(t, testServeExpectContinue) }

func testServeExpectContinue(t *testing.T, m ringMode) {
	ts := startServer(t, m, nil)
	c := ts.dial(t)
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue before the body", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue not followed by an empty line: %q", blank)
	}
	fmt.Fprint(c, "hello")
	readResponses(t, br, 1, nil)
}

// TestServeSlowReader: a client that pipelines many requests and never
// reads makes zerosys stop reading from it (bounded memory); once the
// client reads, every answer arrives.
func TestServeSlowReader(t *testing.T) { forRecvModes(t, testServeSlowReader) }

func testServeSlowReader(t *testing.T, m ringMode) {
	ts := startServer(t, m, func(c *Config) { c.MaxPipeline = 64 })
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Far more answers (~24 MB) than loopback socket buffers hold.
	const n = 200000
	req := bytes.Repeat([]byte("GET / HTTP/1.1\r\nHost: t\r\n\r\n"), n)
	writeDone := make(chan error, 1)
	go func() { _, err := c.Write(req); writeDone <- err }()
	time.Sleep(300 * time.Millisecond)
	// Nothing read yet: the server must have stopped framing well short
	// of n; its queue is bounded by MaxPipeline per connection.
	framed := ts.total(func(s Stats) uint64 { return s.Counters[cRequests] })
	if framed >= n/2 {
		t.Errorf("%d of %d requests framed while the client read nothing: reading did not pause", framed, n)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	readResponses(t, bufio.NewReader(c), n, nil)
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("framed %d of %d requests before the client started reading", framed, n)
}
