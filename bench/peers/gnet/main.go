// Command gnet is a minimal HTTP/1.1 bench peer on gnet v2 (event loops on
// epoll, one per GOMAXPROCS). Like zerosys it answers every request with a
// prepared response: it frames requests by their empty line (GET/HEAD
// without bodies, as the load generators send), answers pipelined requests
// in one write, and closes after answering "Connection: close".
package main

import (
	"bytes"
	"log"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"zerosys/bench/peers/internal/body"
)

type server struct {
	gnet.BuiltinEventEngine
	keep, close atomic.Pointer[[]byte] // prepared responses (Date refreshed each second)
	body        []byte
}

func (s *server) build(now time.Time) {
	date := now.UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
	head := "HTTP/1.1 200 OK\r\nServer: gnet\r\nDate: " + date +
		"\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(s.body)) + "\r\n"
	k := append([]byte(head+"\r\n"), s.body...)
	c := append([]byte(head+"Connection: close\r\n\r\n"), s.body...)
	s.keep.Store(&k)
	s.close.Store(&c)
}

func (s *server) OnTick() (time.Duration, gnet.Action) {
	s.build(time.Now())
	return time.Second, gnet.None
}

var (
	crlf2     = []byte("\r\n\r\n")
	connClose = []byte("\r\nconnection: close")
)

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	keep, cls := *s.keep.Load(), *s.close.Load()
	var out []byte
	used := 0
	for {
		i := bytes.Index(buf[used:], crlf2)
		if i < 0 {
			break
		}
		head := buf[used : used+i+2]
		used += i + 4
		if hasClose(head) {
			out = append(out, cls...)
			_, _ = c.Discard(used)
			_, _ = c.Write(out)
			return gnet.Close
		}
		out = append(out, keep...)
	}
	_, _ = c.Discard(used)
	if len(out) > 0 {
		_, _ = c.Write(out)
	}
	return gnet.None
}

// hasClose reports a "Connection: close" header, case-insensitively.
func hasClose(head []byte) bool {
	for i := 0; i+len(connClose) <= len(head); i++ {
		if head[i] == '\r' && bytes.EqualFold(head[i:i+len(connClose)], connClose) {
			return true
		}
	}
	return false
}

func main() {
	f := body.Parse()
	s := &server{body: body.Bytes(f.Size)}
	s.build(time.Now())
	log.Fatal(gnet.Run(s, "tcp://"+f.Addr, gnet.WithMulticore(true), gnet.WithTicker(true),
		gnet.WithReusePort(false), gnet.WithTCPNoDelay(gnet.TCPNoDelay)))
}
