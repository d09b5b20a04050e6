package shard

import (
	"bytes"
	"net/http"
	"strconv"

	"zerosys/shard/httpwire"
)

// A custom answer is one built for a single request whose knobs ask for
// what no prepared answer is: another status, size or header, or an echo.
// Its head is written into the connection's own slice of a buffer the
// shard allocates at start (no allocation per request); its body is the
// echoed head, a prepared body of the current response set, or a prefix
// of the shard's pattern body. A connection holds at most one: framing
// waits while one is queued (answerQueue.full).

// vCustom is the variant of a custom answer: its bytes are the
// connection's custom segments, not a response set's.
const vCustom = variant(numVariants)

// customHeadroom is the part of a connection's custom buffer for the
// answer's head; the rest holds the request head (for its query and echo).
const customHeadroom = 4096

// maxExtraHeaders bounds the configured header lines, so a custom head
// always fits customHeadroom.
const maxExtraHeaders = 2048

// custom is a connection's custom answer and request-head capture.
type custom struct {
	buf    []byte // customHeadroom bytes, then room for a whole request head
	capLen int    // bytes of the current request's head kept in buf[customHeadroom:]
	a      int    // segment A: buf[:a], the head and any body written after it
	ext    []byte // segment B: a body that lies elsewhere
	tail   bool   // segment C: "\n" (buf[a]), the pattern body's last byte
	status int
	end    int  // where the head's last CRLF starts: a drain inserts Connection: close there
	closes bool // the head says Connection: close
}

// sayClose makes the answer say Connection: close (a drain), moving what
// follows in the buffer; false when the buffer has no room for the line.
func (x *custom) sayClose() bool {
	const line = "Connection: close\r\n"
	n := x.a
	if x.tail {
		n++
	}
	if x.closes {
		return true
	}
	if i := bytes.Index(x.buf[:x.end], []byte("\r\nConnection: keep-alive\r\n")); i >= 0 {
		// HTTP/1.0 keep-alive: "keep-alive" becomes "close".
		v := i + len("\r\nConnection: ")
		copy(x.buf[v:], "close")
		copy(x.buf[v+len("close"):], x.buf[v+len("keep-alive"):n])
		x.a -= len("keep-alive") - len("close")
		x.end -= len("keep-alive") - len("close")
		x.closes = true
		return true
	}
	if n+len(line) > len(x.buf) {
		return false
	}
	copy(x.buf[x.end+len(line):], x.buf[x.end:n])
	copy(x.buf[x.end:], line)
	x.a += len(line)
	x.end += len(line)
	x.closes = true
	return true
}

// total is the bytes of the answer.
func (x *custom) total() uint32 {
	n := x.a + len(x.ext)
	if x.tail {
		n++
	}
	return uint32(n)
}

// segment is what is left to send at off: the rest of the segment off
// falls in, so a send never spans two.
func (x *custom) segment(off uint32) []byte {
	o := int(off)
	if o < x.a {
		return x.buf[o:x.a]
	}
	o -= x.a
	if o < len(x.ext) {
		return x.ext[o:]
	}
	return x.buf[x.a : x.a+1]
}

// bytes is the answer, its segments joined (tests only: it allocates).
func (x *custom) bytes() []byte {
	b := append([]byte(nil), x.buf[:x.a]...)
	b = append(b, x.ext...)
	if x.tail {
		b = append(b, '\n')
	}
	return b
}

// capture keeps the head bytes of fed, part of a request not complete yet,
// when its target may have a query, or when it is a connection's first
// (it may ask for h2c): the head is needed when the request ends, and the
// buffer it arrived in may be gone by then.
func (h *http1) capture(fed []byte, knobs, first bool) {
	x := &h.cust
	if !(knobs && h.parser.MayHaveQuery()) && !first {
		return
	}
	n := len(fed)
	if !h.parser.InHead() {
		n = min(n, int(h.parser.Request().HeadLen)-x.capLen) // the body follows
	}
	if n > 0 {
		x.capLen += copy(x.buf[customHeadroom+x.capLen:], fed[:n])
	}
}

// head returns the head of the request that ended in fed: in fed, or in
// the capture when it began in an earlier read.
func (h *http1) head(fed []byte, req httpwire.RequestInfo) []byte {
	x := &h.cust
	if x.capLen == 0 {
		return fed[:req.HeadLen]
	}
	if rest := int(req.HeadLen) - x.capLen; rest > 0 {
		x.capLen += copy(x.buf[customHeadroom+x.capLen:], fed[:rest])
	}
	return x.buf[customHeadroom : customHeadroom+int(req.HeadLen)]
}

// answerKnobs applies the knobs of a request's query. It returns the
// variant to queue (vCustom when it built one), when it may leave and
// whether the connection ends after it; ok is false when the query holds
// no knob (the usual answer applies).
func (h *http1) answerKnobs(head []byte, req httpwire.RequestInfo, closeAfter bool, env *protoEnv) (v variant, at int64, end bool, ok bool) {
	k := env.knobs
	if !parseKnobs(head[req.QueryStart:req.QueryEnd], env.knobLim, k) {
		*env.rejected++
		h.buildError(k.err, req, env)
		return vCustom, 0, true, true
	}
	if !k.any {
		return 0, 0, closeAfter, false
	}
	closeAfter = closeAfter || k.close
	if d, drawn := k.delay.draw(env.rng); !drawn {
		at = env.due() // the server's delay
	} else if d > 0 {
		*env.delayed++
		env.delayHist.add(delayBucket(d), d, 1)
		at = env.now + d
	}
	kind := env.kind()
	if !k.status.given() && !k.size.given() && k.hlen == 0 && k.clen == 0 && !k.echo {
		return kindVariant(kind, answerVariant(req, closeAfter)), at, closeAfter, true
	}
	p := &env.sets.current()[kindVariant(kind, vOK)] // the server's answer of this kind
	status, body := p.status, p.bodyOf()
	if s, drawn := k.status.draw(env.rng); drawn {
		status = int(s)
	}
	pattern := false
	if n, drawn := k.size.draw(env.rng); drawn {
		body, pattern = env.pattern[:n], true
	}
	if k.echo {
		if bodiless(status) || emptyBody(status) {
			*env.rejected++
			h.buildError(errKnobEchoBody, req, env)
			return vCustom, 0, true, true
		}
		body, pattern = echoOf(head), false
	}
	h.buildAnswer(status, body, pattern, k.echo, req, closeAfter, k.headers[:k.hlen], k.ctype[:k.clen], env)
	return vCustom, at, closeAfter, true
}

// echoOf is the request head without the empty lines before it.
func echoOf(head []byte) []byte {
	for len(head) > 0 && (head[0] == '\r' || head[0] == '\n') {
		head = head[1:]
	}
	return head
}

// buildAnswer writes a custom answer's head, and its body where it fits.
// ctype, when not empty, is the Content-Type a header knob asked for.
func (h *http1) buildAnswer(status int, body []byte, pattern, echo bool, req httpwire.RequestInfo, closeAfter bool, extra, ctype []byte, env *protoEnv) {
	x := &h.cust
	if bodiless(status) || emptyBody(status) {
		body = nil
	}

	b := x.buf[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else {
		b = strconv.AppendInt(append(b, "Status "...), int64(status), 10) // as reasonPhrase, without its allocation
	}
	b = append(b, "\r\nServer: "...)
	b = append(b, env.table.server...)
	b = append(b, "\r\nDate: "...)
	b = append(b, env.sets.current().date()...)
	b = append(b, "\r\n"...)
	if len(body) > 0 {
		b = append(b, "Content-Type: "...)
		switch {
		case len(ctype) > 0:
			b = append(b, ctype...)
		case echo:
			b = append(b, "text/plain"...)
		default:
			b = append(b, env.table.ctype...)
		}
		b = append(b, "\r\n"...)
	}
	if !bodiless(status) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, env.table.headers...)
	b = append(b, extra...)
	switch {
	case closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case req.Minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	x.end, x.closes = len(b), closeAfter
	b = append(b, "\r\n"...)
	x.a, x.ext, x.tail, x.status = len(b), nil, false, status
	switch {
	case req.Method == httpwire.MethodHead || len(body) == 0:
	case len(b)+len(body) <= len(x.buf):
		// Small enough to go in the same send as the head. An echo is
		// moved down from the capture (copy is a memmove).
		x.a += copy(x.buf[x.a:], body)
		if pattern && len(body) > 1 {
			x.buf[x.a-1] = '\n'
		}
	case pattern && len(body) > 1:
		x.ext, x.tail = body[:len(body)-1], true
		x.buf[x.a] = '\n'
	default:
		x.ext = body // a prepared body: it lives as long as the set the run holds
		if debugChecks && echo {
			panic("shard: an echo did not fit the custom buffer")
		}
	}
	if debugChecks && len(b) > customHeadroom {
		panic("shard: a custom head outgrew its room")
	}
}

// buildError writes a 400 naming the knob that was refused and why (no
// body for HEAD, RFC 9110 §9.3.2).
func (h *http1) buildError(why string, req httpwire.RequestInfo, env *protoEnv) {
	x := &h.cust
	b := x.buf[:0]
	b = append(b, "HTTP/1.1 400 Bad Request\r\nServer: "...)
	b = append(b, env.table.server...)
	b = append(b, "\r\nDate: "...)
	b = append(b, env.sets.current().date()...)
	b = append(b, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len("Bad Request: \n")+len(why)), 10)
	b = append(b, "\r\n"...)
	b = append(b, env.table.headers...)
	b = append(b, "Connection: close\r\n"...)
	x.end, x.closes = len(b), true
	b = append(b, "\r\n"...)
	if req.Method != httpwire.MethodHead {
		b = append(b, "Bad Request: "...)
		b = append(b, why...)
		b = append(b, '\n')
	}
	x.a, x.ext, x.tail, x.status = len(b), nil, false, 400
}

// countAnswers counts k answers of variant v sent on c, by status.
func (e *engine) countAnswers(c *conn, v variant, k uint32) {
	status := 0
	if v == vCustom {
		status = c.h1.cust.status
		if !e.statusSeen[status] {
			e.noteStatus(status) // a status only a knob asked for
		}
	} else {
		status = e.sets.at(c.out.set)[v].status
	}
	e.byStatus[status] += uint64(k)
}

// customBuf is slot's custom buffer; nil without knobs and h2c upgrades.
func (e *engine) customBuf(slot uint32) []byte {
	if e.custom == nil {
		return nil
	}
	n := len(e.custom) / len(e.conns)
	return e.custom[int(slot)*n : int(slot+1)*n : int(slot+1)*n]
}

// patternBody is n bytes of letters a to z over and over: PatternBody's
// bytes without its final newline, so that any prefix of it, with a
// newline for its last byte, is PatternBody of that size.
func patternBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
