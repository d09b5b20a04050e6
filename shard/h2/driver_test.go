package h2

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// The tests drive Conn over real sockets with a plain blocking loop, so
// real clients (x/net's, h2spec) meet the state machine the shard runs.

// answer is a prepared answer: its HPACK block and body.
type answer struct {
	head, body []byte
	ix         *Indexed // the head's indexed forms, or nil
	trailers   []byte
}

// newAnswer prepares status with body: :status indexed when the static
// table has it, the rest literals without indexing.
func newAnswer(status int, body string) answer {
	var h []byte
	if status == 200 {
		h = append(h, 0x88)
	} else {
		h = append(h, 0x08, 3)
		h = strconv.AppendInt(h, int64(status), 10)
	}
	h = append(h, 0x0f, 0x10, 10) // content-type (31), literal without indexing
	h = append(h, "text/plain"...)
	cl := strconv.Itoa(len(body))
	h = append(h, 0x0f, 0x0d, byte(len(cl))) // content-length (28)
	h = append(h, cl...)
	return answer{head: h, body: []byte(body)}
}

// serve runs one connection until it ends.
func serve(nc net.Conn, lim Limits, a answer) *Conn {
	defer nc.Close()
	c := New(lim)
	buf := make([]byte, 32<<10)
	var in []byte
	flush := func() bool {
		if out := c.Output(); len(out) > 0 {
			n, err := nc.Write(out)
			c.Sent(n)
			if err != nil {
				return false
			}
		}
		return true
	}
	// linger half-closes, then reads until the peer closes: closing with
	// unread input would reset the connection, and the peer might never
	// read our GOAWAY.
	linger := func() {
		flush()
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
			_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				if _, err := nc.Read(buf); err != nil {
					return
				}
			}
		}
	}
	for {
		if !flush() {
			return c
		}
		if c.Closing() {
			linger()
			return c
		}
		if len(in) == 0 {
			_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := nc.Read(buf)
			if err != nil {
				return c
			}
			in = buf[:n]
		}
		k, ev := c.Feed(in, time.Now().UnixNano())
		in = in[k:]
		if ev == EventClose {
			linger()
			return c
		}
		answerEvent(c, ev, a)
	}
}

// listen serves connections on a loopback port until the test ends.
func listen(t testing.TB, lim Limits, a answer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(nc, lim, a)
		}
	}()
	return ln.Addr().String()
}

// answerEvent answers the request Feed stopped for, if it is complete,
// and takes the tags of ended streams, as the shard does.
func answerEvent(c *Conn, ev Event, a answer) {
	switch ev {
	case EventRequest:
		if c.Req.Complete {
			c.Answer(c.Req.Stream, &Answer{Head: a.head, Indexed: a.ix, Body: a.body, Trailers: a.trailers})
		}
	case EventComplete:
		c.Answer(c.Done, &Answer{Head: a.head, Indexed: a.ix, Body: a.body, Trailers: a.trailers})
	}
	drainTags(c)
}

// drainTags takes the tags of ended streams, as a caller must after every
// call.
func drainTags(c *Conn) {
	for {
		if _, ok := c.DoneTag(); !ok {
			return
		}
	}
}
