package shard

import (
	"strconv"

	"zerosys/shard/h2"
	w "zerosys/shard/h2wire"
)

// Knobs over HTTP/2: the query of a stream's :path overrides the
// behaviour for its answer as a request's query does over HTTP/1.1
// (knobs.go): the same names, bounds and 400s, per stream. close=1 sends
// GOAWAY after the stream (the client opens a new connection), and an
// echo's body is the request as text: its method, path and version, its
// authority as host, and its fields.
//
// An answer the knobs change is built for its stream. Its header block is
// written in the shard's scratch when it leaves at once (Respond copies it
// into the output then); when it waits (a delay, the rest of the request's
// body) it moves into the connection's custom buffer, lent in granules,
// where an echo's or a 400's body also lives until it is sent. A stream
// that finds no room there is refused (RST_STREAM REFUSED_STREAM, which a
// client may retry): the bytes a connection holds stay bounded.

// h2Body says where a custom answer's body is.
type h2Body uint8

const (
	h2BodyNone    h2Body = iota
	h2BodySet            // the prepared body of variant bv in the answer's set
	h2BodyPattern        // the first n bytes of the pattern body
	h2BodyRun            // n bytes after the header block, in the run
)

// h2Answer is what a stream is answered with.
type h2Answer struct {
	set    uint16  // the response set it holds
	v      variant // a prepared answer, or vCustom: the fields below
	status uint16
	gran   uint16 // its run of the custom buffer, +1; 0: none
	head   uint16 // bytes of header block at the run's start; 0: in the scratch
	date   uint16 // where the Date value is in that header block
	src    h2Body
	bv     variant
	n      int64
	grpc   uint8 // grpcCall or grpcHealth: the kind's gRPC answer
}

// tag is what the stream hands back when its bytes are no longer needed:
// the set, and the run.
func (a *h2Answer) tag() uint32 { return uint32(a.set) | uint32(a.gran)<<16 }

// h2Source is the request a stream's knobs are read from.
type h2Source struct {
	query []byte      // the query of its target, without '?'
	req   *h2.Request // its fields, for an echo; nil for an upgraded request
	h1    []byte      // an upgraded request's HTTP/1.1 head, its echo
	head  bool        // a HEAD request
}

// h2Query is the query of a :path, without '?'; nil when it has none.
func h2Query(path []byte) []byte {
	for i, c := range path {
		if c == '?' {
			return path[i+1:]
		}
	}
	return nil
}

// h2Newline is a pattern body's last byte, its tail.
var h2Newline = []byte{'\n'}

// h2Knobs answers stream id by the knobs of src's query, at once, after a
// delay or once its body is in (waitBody). It reports false when the
// query holds no knob: the usual answer applies.
func (e *engine) h2Knobs(c *conn, id uint32, src *h2Source, waitBody bool) bool {
	env := &e.env
	k := env.knobs
	a := h2Answer{set: e.sets.cur, v: vCustom}
	if !parseKnobs(src.query, env.knobLim, k) {
		*env.rejected++
		e.h2Refuse(c, id, k.err, a, waitBody, src.head)
		return true
	}
	if !k.any {
		return false
	}
	var at int64
	var bkt uint8
	if d, drawn := k.delay.draw(env.rng); !drawn {
		at, bkt = env.drawDue() // the server's delay
	} else if d > 0 {
		at, bkt = env.now+d, delayBucket(d)
	}
	kind := env.kind()
	if !k.status.given() && !k.size.given() && k.hlen == 0 && k.clen == 0 && !k.echo {
		a.v = kindVariant(kind, vOK)
		e.h2Place(c, id, a, h2When{at, bkt, k.close, waitBody}, nil)
		return true
	}
	a.bv = kindVariant(kind, vOK)
	p := &e.sets.current()[a.bv]
	status := p.status
	a.src, a.n = h2BodySet, int64(p.body)
	if s, drawn := k.status.draw(env.rng); drawn {
		status = int(s)
	}
	if n, drawn := k.size.draw(env.rng); drawn {
		a.src, a.n = h2BodyPattern, n
	}
	ctype := k.ctype[:k.clen]
	if k.echo {
		if bodiless(status) || emptyBody(status) {
			*env.rejected++
			e.h2Refuse(c, id, errKnobEchoBody, a, waitBody, src.head)
			return true
		}
		a.src, a.n = h2BodyRun, int64(h2EchoLen(src))
		if a.n > int64(len(c.h2.arena)-customHeadroom) {
			*env.rejected++
			e.h2Refuse(c, id, errKnobEchoLarge, a, waitBody, src.head)
			return true
		}
		if len(ctype) == 0 {
			ctype = textPlain
		}
	}
	if bodiless(status) || emptyBody(status) {
		a.src, a.n = h2BodyNone, 0
	}
	a.status = uint16(status)
	head, date := e.appendH2Head(e.h2scratch[:0], status, a.n, ctype, k.headers[:k.hlen])
	if head, ok := e.h2Custom(c, id, &a, head, date, at > 0 || waitBody, src, "", src.head); ok {
		e.h2Place(c, id, a, h2When{at, bkt, k.close, waitBody}, head)
	}
	return true
}

// errKnobEchoLarge refuses an echo of more than a connection's custom
// buffer holds (HTTP/2 allows larger heads than HTTP/1.1's limit).
const errKnobEchoLarge = "echo: the request is larger than an echo may be (--max-header-bytes)"

// h2When is when an answer leaves: at (0: at once; the delay's histogram
// bucket bkt), or once its request's body has ended (waitBody: at is then
// a time as if it ended now); close sends GOAWAY after it (close=1).
type h2When struct {
	at       int64
	bkt      uint8
	close    bool
	waitBody bool
}

// h2Commit counts an answer that is sure to go: its delay, the keep-alive
// limit and the close mix, and close=1's GOAWAY.
func (e *engine) h2Commit(c *conn, when h2When) {
	e.env.countDelay(when.at, when.bkt)
	e.h2Policy(c)
	if when.close {
		c.h2.GoAway()
	}
}

// textPlain is the Content-Type of an echo and a 400.
var textPlain = []byte("text/plain")

// h2Refuse answers stream id 400, its body saying which knob and why.
func (e *engine) h2Refuse(c *conn, id uint32, why string, a h2Answer, waitBody, isHead bool) {
	a.v, a.status, a.src = vCustom, 400, h2BodyRun
	a.n = int64(len("Bad Request: \n") + len(why))
	head, date := e.appendH2Head(e.h2scratch[:0], 400, a.n, textPlain, nil)
	if head, ok := e.h2Custom(c, id, &a, head, date, waitBody, nil, why, isHead); ok {
		e.h2Place(c, id, a, h2When{waitBody: waitBody}, head)
	}
}

// h2Custom lends custom answer a the run it needs, writes its body there
// (the echo of src, or a 400 saying why; none for a HEAD) and, when it
// waits or the output has no room for it now, its header block. It
// returns the header block when it stays in the scratch; ok is false
// when the connection's custom buffer has no room: the stream is refused
// (REFUSED_STREAM, which a client may retry).
func (e *engine) h2Custom(c *conn, id uint32, a *h2Answer, head []byte, date int, waits bool, src *h2Source, why string, isHead bool) (_ []byte, ok bool) {
	x := c.h2
	if isHead && a.src == h2BodyRun {
		a.src = h2BodyNone // its length is said, its bytes never sent
	}
	// Room is kept for the GOAWAY h2Commit may queue first: a block left
	// in the scratch must go into the output at Respond.
	keepHead := waits || !x.HeadFits(len(head)+w.HeaderLen+8)
	size := 0
	if keepHead {
		size = len(head)
	}
	if a.src == h2BodyRun {
		size += int(a.n)
	}
	if size == 0 {
		return head, true
	}
	start, ok := x.gran.alloc(size)
	if !ok {
		e.dropGone(c) // answers of streams reset since may hold runs
		if start, ok = x.gran.alloc(size); !ok {
			x.ResetStream(id, w.ErrCodeRefusedStream)
			return nil, false
		}
	}
	a.gran = uint16(start + 1)
	run := x.run(a.gran)
	off := 0
	if keepHead {
		// An upgraded request's head may lie further on in the buffer
		// (h1's capture, the echo's source): the header block is shorter
		// than customHeadroom, so it never reaches it.
		off = copy(run, head)
		a.head, a.date, head = uint16(off), uint16(date), nil
	}
	if a.src == h2BodyRun {
		body := run[off : off : off+int(a.n)]
		if why != "" {
			body = append(append(append(body, "Bad Request: "...), why...), '\n')
		} else {
			body = appendH2Echo(body, src)
		}
		if debugChecks && len(body) != int(a.n) {
			panic("shard: an HTTP/2 custom body is not the size it said")
		}
	}
	return head, true
}

// h2Place answers stream id with a now (head is its header block when it
// lies in the scratch), or keeps it until when.at or the end of the
// request's body; it is counted (h2Commit) once it is sure to go, so a
// stream the client resets while its body is to come counts for nothing.
// The answer holds its set until the stream hands its tag back.
func (e *engine) h2Place(c *conn, id uint32, a h2Answer, when h2When, head []byte) {
	e.sets.hold(a.set)
	if !when.waitBody {
		e.h2Commit(c, when)
		if when.at == 0 {
			e.respondH2(c, id, &a, head)
			return
		}
	}
	x := c.h2
	if when.waitBody && when.at > 0 {
		when.at -= e.now // from the body's end
	}
	if len(x.delayed) == cap(x.delayed) {
		e.dropGone(c)
	}
	x.delayed = append(x.delayed, h2Delayed{when: when, id: id, a: a})
	if !when.waitBody {
		e.armH2Timer(c)
	}
}

// dropGone forgets the waiting answers of streams the client reset:
// every other waits for a stream still open, and those are at most the
// streams a connection may have, so the list never outgrows them.
func (e *engine) dropGone(c *conn) {
	x := c.h2
	for i := 0; i < len(x.delayed); {
		d := &x.delayed[i]
		if x.Open(d.id) {
			i++
			continue
		}
		e.h2Let(c, d.a.tag())
		*d = x.delayed[len(x.delayed)-1]
		x.delayed = x.delayed[:len(x.delayed)-1]
	}
}

// completeH2 answers stream id, whose request body just ended: with the
// answer its knobs made when its head came, or the usual one.
func (e *engine) completeH2(c *conn, id uint32) {
	x := c.h2
	for i := range x.delayed {
		d := &x.delayed[i]
		if d.id != id || !d.when.waitBody {
			continue
		}
		e.h2Fresh(c, &d.a)
		d.when.waitBody = false
		if d.when.at > 0 {
			d.when.at += e.now
		}
		e.h2Commit(c, d.when)
		if d.when.at == 0 {
			a := d.a
			x.delayed[i] = x.delayed[len(x.delayed)-1]
			x.delayed = x.delayed[:len(x.delayed)-1]
			e.respondH2(c, id, &a, nil)
			return
		}
		e.armH2Timer(c)
		return
	}
	e.answerH2(c, id, nil, grpcNone)
}

// h2Fresh brings an answer made when its request's head came up to date
// now that its body has ended: a prepared one is drawn again from the
// current behaviour, a custom one gets the current Date.
func (e *engine) h2Fresh(c *conn, a *h2Answer) {
	if a.v != vCustom {
		e.sets.release(a.set)
		a.set, a.v = e.sets.cur, kindVariant(e.env.kind(), vOK)
		e.sets.hold(a.set)
		return
	}
	if a.head > 0 {
		copy(c.h2.run(a.gran)[a.date:], e.sets.current().date())
	}
}

// h2Let takes back what an answer held: its set and its run.
func (e *engine) h2Let(c *conn, tag uint32) {
	e.sets.release(uint16(tag))
	if g := tag >> 16; g != 0 {
		c.h2.gran.free(int(g) - 1)
	}
}

// run is the custom buffer from the run that starts at granule g-1.
func (x *h2Conn) run(g uint16) []byte {
	if g == 0 {
		return nil
	}
	return x.arena[int(g-1)*granuleSize:]
}

// appendH2Head appends the header block of a custom answer: status, the
// server's fields, a Content-Type when there is a body, Content-Length,
// the configured fields and extra, a header knob's "Name: value\r\n"
// lines. No allocation when b has room.
func (e *engine) appendH2Head(b []byte, status int, bodyLen int64, ctype, extra []byte) (_ []byte, date int) {
	t := e.env.table
	if i := h2StaticStatus(status); i > 0 {
		b = append(b, 0x80|byte(i))
	} else {
		b = appendHpackInt(b, 0x00, 4, hpackStatus)
		b = strconv.AppendInt(append(b, 3), int64(status), 10) // 200 to 999: three digits
	}
	b = appendHpackInt(b, 0x00, 4, hpackServer)
	b = append(appendHpackInt(b, 0x00, 7, uint64(len(t.server))), t.server...)
	d := e.sets.current().date()
	b = append(appendHpackInt(b, 0x00, 4, hpackDate), byte(len(d)))
	date = len(b)
	b = append(b, d...)
	if bodyLen > 0 {
		if len(ctype) == 0 {
			b = appendHpackInt(b, 0x00, 4, hpackContentType)
			b = append(appendHpackInt(b, 0x00, 7, uint64(len(t.ctype))), t.ctype...)
		} else {
			b = append(appendHpackInt(appendHpackInt(b, 0x00, 4, hpackContentType), 0x00, 7, uint64(len(ctype))), ctype...)
		}
	}
	if !bodiless(status) {
		var digits [20]byte
		n := strconv.AppendInt(digits[:0], bodyLen, 10)
		b = append(appendHpackInt(appendHpackInt(b, 0x00, 4, hpackContentLength), 0x00, 7, uint64(len(n))), n...)
	}
	b = append(b, t.h2headers...)
	for len(extra) > 0 {
		var line []byte
		line, extra = cutByte(extra, '\n')
		name, value := cutByte(line[:len(line)-1], ':') // without its CR
		value = trimSpace(value)
		if h2ConnectionField(name) {
			continue // HTTP/2 forbids it (RFC 9113 §8.2.2)
		}
		b = appendHpackInt(append(b, 0x00), 0x00, 7, uint64(len(name)))
		for _, ch := range name {
			if ch >= 'A' && ch <= 'Z' {
				ch += 'a' - 'A' // RFC 9113 §8.2.1
			}
			b = append(b, ch)
		}
		b = append(appendHpackInt(b, 0x00, 7, uint64(len(value))), value...)
	}
	return b, date
}

// h2ConnectionField reports the field names HTTP/2 forbids that a header
// knob may give (serverHeader refuses the others), without regard to case.
func h2ConnectionField(n []byte) bool {
	switch len(n) {
	case 2:
		return lowerEq(n, "te")
	case 7:
		return lowerEq(n, "upgrade")
	case 10:
		return lowerEq(n, "keep-alive")
	case 16:
		return lowerEq(n, "proxy-connection")
	}
	return false
}

// h2EchoLen is the bytes of src's echo.
func h2EchoLen(src *h2Source) int {
	r := src.req
	if r == nil {
		return len(src.h1)
	}
	n := len(r.Method) + 1 + len(r.Path) + len(" HTTP/2.0\r\n") + len(r.Fields) + 2
	if len(r.Authority) > 0 {
		n += len("host: \r\n") + len(r.Authority)
	}
	return n
}

// appendH2Echo appends src's echo: an upgraded request's own head, or an
// HTTP/2 request written as one.
func appendH2Echo(b []byte, src *h2Source) []byte {
	r := src.req
	if r == nil {
		return append(b, src.h1...)
	}
	b = append(append(append(b, r.Method...), ' '), r.Path...)
	b = append(b, " HTTP/2.0\r\n"...)
	if len(r.Authority) > 0 {
		b = append(append(append(b, "host: "...), r.Authority...), "\r\n"...)
	}
	b = append(b, r.Fields...)
	return append(b, "\r\n"...)
}
