package shard

import (
	"zerosys/shard/h2"
	w "zerosys/shard/h2wire"
)

// HTTP/2 over cleartext (h2c) with prior knowledge: a connection whose
// first bytes are the client preface is handed to an h2.Conn, the
// protocol's state machine, and the lifecycle goes on as for HTTP/1.1:
// the input it has not consumed stays in the connection's buffers, its
// output is sent from the h2.Conn's own buffer with one send at a time,
// and when it says the connection is over the connection lingers and
// closes. Answers are the prepared ones (h2answers.go); each answered
// stream holds its response set until its bytes are in the output.

// h2PrefaceLine is the part of the client preface (RFC 9113 §3.4) that
// decides: an HTTP/1.1 parser would answer it 505.
const h2PrefaceLine = "PRI * HTTP/2.0\r\n"

// h2Limits are the limits of the shard's HTTP/2 connections: with
// knobs, the fields of a request that may ask for an echo are kept.
func (e *engine) h2Limits() h2.Limits {
	cfg := &e.cfg
	lim := h2.Limits{MaxStreams: uint32(cfg.H2MaxStreams), StreamWindow: uint32(cfg.H2StreamWindow), ConnWindow: uint32(cfg.H2ConnWindow)}
	if e.env.knobs != nil {
		lim.FieldsFor = "echo="
	}
	return lim
}

// h2Preface is h2PrefaceLine's bytes.
var h2Preface = []byte(h2PrefaceLine)

// maybeH2 switches a connection that has sent nothing yet to HTTP/2
// (H2COnly: the h2.Conn checks the preface).
func (e *engine) maybeH2(c *conn) {
	c.h2 = e.takeH2(c)
	c.h2.Reset()
	e.local[cH2Conns]++
}

// sniffH2 tells HTTP/2 from HTTP/1.1 by a connection's first bytes
// (H2CAuto): the preface's first line is HTTP/2, anything else HTTP/1.1.
// The bytes of the line that came so far are read and counted (c.sniff),
// and given to whichever protocol it turns out to be from the constant:
// a preface split in any pieces is HTTP/2, and nothing is buffered. It
// reports false when the connection is still undecided (its input is all
// read) or has ended.
func (e *engine) sniffH2(c *conn) bool {
	for {
		b := e.firstInput(c)
		if b == nil {
			return false
		}
		want := h2PrefaceLine[c.sniff:]
		m := 0
		for m < len(b) && m < len(want) && b[m] == want[m] {
			m++
		}
		switch {
		case m == len(want):
			e.maybeH2(c)
			c.h2.Feed(h2Preface[:c.sniff], e.now) // the preface state takes it whole
			c.sniff = 0
			return true
		case m < len(b):
			n := c.sniff
			c.sniff = 0
			if n == 0 {
				return true
			}
			// HTTP/1.1 that began like the preface: its parser reads
			// the part read so far first.
			if _, end := c.h1.feed(h2Preface[:n], true, &c.q, &e.env); end != keepOpen {
				e.finish(c, end == endLinger, reasonNormal)
				return false
			}
			return true
		}
		c.sniff += uint8(m) // all of b goes on the line: read it
		if c.in.off < c.in.end {
			c.in.off = c.in.end
		} else {
			c.in.popHead(e.pool)
		}
	}
}

// newH2Conn is a fresh HTTP/2 connection state counting into the shard's
// counters.
func (e *engine) newH2Conn() *h2Conn {
	x := &h2Conn{Conn: h2.New(e.h2Limits()), delayed: make([]h2Delayed, 0, e.cfg.H2MaxStreams)}
	x.UseCounters(&e.h2ctr)
	if e.custom != nil {
		x.gran = newGranules(len(e.customBuf(0)))
	}
	return x
}

// takeH2 returns an HTTP/2 connection state for c from the free list, or
// a new one: once per connection the shard has at most at once. Its
// custom answers live in c's custom buffer.
func (e *engine) takeH2(c *conn) *h2Conn {
	var x *h2Conn
	if n := len(e.h2free); n > 0 {
		x = e.h2free[n-1]
		e.h2free = e.h2free[:n-1]
		x.delayed, x.answers = x.delayed[:0], 0
	} else {
		x = e.newH2Conn()
	}
	x.arena = e.customBuf(c.slot)
	x.gran.reset()
	return x
}

// firstInput is the start of the connection's unframed input.
func (e *engine) firstInput(c *conn) []byte {
	if c.in.off < c.in.end {
		return e.slotBuf(c.slot)[c.in.off:c.in.end]
	}
	if c.in.head >= 0 {
		return e.pool.buf(uint16(c.in.head))[c.in.headOff:]
	}
	return nil
}

// frameH2 feeds the unframed input to the HTTP/2 connection until it runs
// out, the output is too full to take more (the rest waits for the send),
// or the connection is over.
func (e *engine) frameH2(c *conn) {
	x := c.h2
	for c.phase == phaseOpen {
		b := e.firstInput(c)
		if b == nil {
			return
		}
		slot := c.in.off < c.in.end
		n, ev := x.Feed(b, e.now)
		switch {
		case slot:
			c.in.off += uint32(n)
		case n == len(b):
			c.in.popHead(e.pool)
		default:
			c.in.headOff += uint32(n)
		}
		e.onH2Event(c, ev)
		if n < len(b) && ev == h2.EventNone {
			if !slot {
				e.stash(c)
			}
			return // the output is full: the rest after the send
		}
	}
}

// onH2Event acts on what Feed stopped for.
func (e *engine) onH2Event(c *conn, ev h2.Event) {
	x := c.h2
	switch ev {
	case h2.EventRequest:
		*e.env.requests++
		if x.Req.GRPC {
			mark := grpcCall
			if p := string(x.Req.Path); p == grpcHealthCheck || p == grpcHealthWatch {
				mark = grpcHealth
			}
			if x.Req.Complete {
				e.answerH2(c, x.Req.Stream, nil, mark)
			} else {
				x.Mark(x.Req.Stream, mark) // answered at its message's end
			}
			break
		}
		var src *h2Source
		if e.env.knobs != nil {
			if q := h2Query(x.Req.Path); q != nil {
				e.h2src = h2Source{query: q, req: &x.Req, head: x.Req.Head}
				src = &e.h2src
			}
		}
		switch {
		case x.Req.Complete:
			e.answerH2(c, x.Req.Stream, src, grpcNone)
		case src != nil:
			e.h2Knobs(c, x.Req.Stream, src, true) // its answer waits for the body's end
		}
	case h2.EventComplete:
		if x.DoneMark != grpcNone {
			e.answerH2(c, x.Done, nil, x.DoneMark)
		} else {
			e.completeH2(c, x.Done)
		}
	}
	e.h2Tags(c)
	if e.draining && !x.Draining() {
		// A connection that began speaking HTTP/2 after the drain: its
		// first streams are answered, then it goes too.
		x.GoAway()
		e.h2Tags(c)
	}
	if x.Closing() && c.phase == phaseOpen {
		e.finish(c, true, reasonNormal) // GOAWAY is in the output: send it, then linger
	}
}

// h2Conn is an HTTP/2 connection's protocol state, the streams whose
// answers wait, and the custom buffer their custom answers live in.
type h2Conn struct {
	*h2.Conn
	delayed []h2Delayed // at most one per open stream: never grows (dropGone)
	answers uint32      // streams answered (the keep-alive limit, the close mix)
	arena   []byte      // the slot's custom buffer; nil without knobs
	gran    granules    // arena's granules
}

// h2Delayed is a stream whose answer waits until when.at, or for the end
// of its request's body (when.waitBody: when.at is then the delay that
// follows).
type h2Delayed struct {
	when h2When
	id   uint32
	a    h2Answer
}

// answerH2 answers stream id by its knobs (src, nil without any), or
// with the current behaviour's answer: a kind drawn from the mixes, at
// once or after a delay drawn from the delay mix. A delayed stream waits
// on its own; the others go on.
func (e *engine) answerH2(c *conn, id uint32, src *h2Source, grpc uint8) {
	if src != nil && e.h2Knobs(c, id, src, false) {
		return
	}
	a := h2Answer{set: e.sets.cur, v: kindVariant(e.env.kind(), vOK), grpc: grpc}
	at, bkt := e.env.drawDue()
	e.h2Place(c, id, a, h2When{at: at, bkt: bkt}, nil)
}

// h2Policy counts an answer on c: when the keep-alive limit, the close
// mix or close mode ends the connection after it, GOAWAY goes with it
// (the client opens a new connection).
func (e *engine) h2Policy(c *conn) {
	x := c.h2
	x.answers++
	if e.env.closeAll || e.env.endByPolicy(x.answers) {
		x.GoAway()
	}
}

// respondH2 hands stream id its answer a (its set held); head is its
// header block when it lies in the shard's scratch.
func (e *engine) respondH2(c *conn, id uint32, a *h2Answer, head []byte) {
	ans := h2.Answer{Tag: a.tag()}
	status := 0
	switch {
	case a.grpc != grpcNone:
		p := &e.sets.at(a.set)[a.v]
		g := &p.grpc
		ans.Head, ans.Indexed, status = g.head, &g.ix, p.status
		switch {
		case a.grpc == grpcHealth:
			ans.Body, ans.Trailers, status = grpcServing, grpcOK, 200
			if e.notReady || e.draining {
				ans.Body = grpcNotServing
			}
			if !e.statusSeen[status] {
				e.noteStatus(status) // a behaviour without a 200 kind
			}
		case g.fail != nil:
			ans.Head, ans.Indexed = g.fail, nil // trailers-only
		default:
			ans.Body, ans.Tail, ans.Trailers = g.message, p.bodyOf(), grpcOK
		}
	case a.v != vCustom:
		p := &e.sets.at(a.set)[a.v]
		ans.Head, ans.Indexed, ans.Body, status = p.h2, &p.h2ix, p.bodyOf(), p.status
	default:
		status = int(a.status)
		run := c.h2.run(a.gran)
		if head == nil {
			head = run[:a.head]
		}
		ans.Head = head
		switch a.src {
		case h2BodySet:
			ans.Body = e.sets.at(a.set)[a.bv].bodyOf()
		case h2BodyPattern:
			ans.Body = e.env.pattern[:a.n]
			if a.n > 1 {
				ans.Body, ans.Tail = ans.Body[:a.n-1], h2Newline // a pattern body ends in a newline
			}
		case h2BodyRun:
			ans.Body = run[a.head : int64(a.head)+a.n]
		}
		if !e.statusSeen[status] {
			e.noteStatus(status) // a status only a knob asked for
		}
	}
	if !c.h2.Answer(id, &ans) {
		e.h2Let(c, a.tag()) // the client reset the stream meanwhile
		return
	}
	e.local[cH2Streams]++
	if a.grpc != grpcNone {
		e.local[cGRPCCalls]++
	}
	e.byStatus[status]++
}

// h2Due answers the delayed streams whose time has come, and sets the
// connection's timer for the next.
func (e *engine) h2Due(c *conn) {
	x := c.h2
	for i := 0; i < len(x.delayed); {
		d := x.delayed[i]
		if d.when.waitBody || d.when.at > e.now {
			i++
			continue
		}
		x.delayed[i] = x.delayed[len(x.delayed)-1]
		x.delayed = x.delayed[:len(x.delayed)-1]
		e.noteLate(d.when.at, 1)
		e.respondH2(c, d.id, &d.a, nil)
	}
	e.h2Tags(c)
	e.armH2Timer(c)
	if x.Closing() && c.phase == phaseOpen {
		e.finish(c, true, reasonNormal)
	}
}

// armH2Timer sets the connection's timer for its earliest delayed stream.
func (e *engine) armH2Timer(c *conn) {
	next := int64(0)
	for _, d := range c.h2.delayed {
		if !d.when.waitBody && (next == 0 || d.when.at < next) {
			next = d.when.at
		}
	}
	if next == 0 {
		e.timers.cancel(c.slot)
		return
	}
	e.timers.set(c.slot, next)
}

// h2Tags releases the response sets of streams whose answers are out.
func (e *engine) h2Tags(c *conn) {
	for {
		tag, ok := c.h2.DoneTag()
		if !ok {
			return
		}
		e.h2Let(c, tag)
	}
}

// sendH2 sends what the HTTP/2 connection has written, one send at a
// time: the bytes stay put in its buffer until the send completes.
func (e *engine) sendH2(c *conn) {
	out := c.h2.Output()
	if len(out) == 0 || c.sending {
		return
	}
	e.push(action{kind: actSend, fd: c.fd, buf: out[:min(len(out), maxSendChunk)], ud: c.ud(opSend)})
	c.sending = true
	c.opQueued()
	e.setIdleDeadline(c) // the send timeout, from the answers' last progress
}

// onSendH2 handles an HTTP/2 connection's send result.
func (e *engine) onSendH2(c *conn, res int32) {
	c.sending = false
	if res < 0 {
		e.abort(c, reasonError)
		return
	}
	e.local[cBytesOut] += uint64(res)
	if c.phase == phaseAborting {
		return
	}
	c.h2.Sent(int(res))
	e.h2Tags(c)
	if c.h2.Closing() && c.phase == phaseOpen {
		e.finish(c, true, reasonNormal)
	}
}

// h2Drain starts an HTTP/2 connection's graceful end: GOAWAY, the open
// streams answered, then the close.
func (e *engine) h2Drain(c *conn) {
	e.onH2Event(c, c.h2.GoAway())
}

// h2Output reports HTTP/2 bytes not yet sent.
func (c *conn) h2Output() bool { return c.h2 != nil && len(c.h2.Output()) > 0 }

// syncH2Counters copies the HTTP/2 counts into the shard's counters, for
// publishing.
func (e *engine) syncH2Counters() {
	x := &e.h2ctr
	copy(e.local[cH2Frames:cH2Frames+h2.FrameKinds], x.FramesIn[:])
	copy(e.local[cH2StreamErrors:cH2StreamErrors+w.NumErrCodes], x.StreamErrors[:])
	copy(e.local[cH2ConnErrors:cH2ConnErrors+w.NumErrCodes], x.ConnErrors[:])
	e.local[cH2Refused] = x.Refused
	e.local[cH2PeerResets] = x.PeerResets
	e.local[cH2AbuseFlood] = x.Floods
	e.local[cH2AbuseHeaderBlock] = x.BlockTooLong
	e.local[cH2AbuseHeaderList] = x.ListTooLarge
}

// releaseH2 returns a closed connection's HTTP/2 state to the shard's
// free list, its streams' response sets released and its counts added.
func (e *engine) releaseH2(c *conn) {
	x := c.h2
	if c.reason == reasonTimeoutSend && x.AnswersPending() {
		e.local[cH2AbuseStalled]++ // answers held by a window the client never opened
	}
	for _, d := range x.delayed {
		e.h2Let(c, d.a.tag())
	}
	x.delayed = x.delayed[:0]
	x.Abandon()
	e.h2Tags(c)
	x.arena = nil
	e.h2free = append(e.h2free, x)
	c.h2 = nil
}
