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

// h2Limits are the limits of every HTTP/2 connection.
var h2Limits = h2.Limits{MaxStreams: h2MaxStreams}

// h2MaxStreams is SETTINGS_MAX_CONCURRENT_STREAMS.
const h2MaxStreams = 128

// maybeH2 switches a connection that has sent nothing else yet to HTTP/2
// when b, its first bytes, start with the preface, or whatever they are
// with H2COnly (the h2.Conn checks the preface). A preface split before
// its first line ends is answered 505 by HTTP/1.1, as before.
func (e *engine) maybeH2(c *conn, b []byte) {
	if c.h2 != nil || c.h1.answers != 0 || c.h1.midRequest {
		return
	}
	if e.cfg.H2C != H2COnly && (len(b) < len(h2PrefaceLine) || string(b[:len(h2PrefaceLine)]) != h2PrefaceLine) {
		return
	}
	c.h2 = e.takeH2()
	c.h2.Reset()
	e.local[cH2Conns]++
}

// newH2Conn is a fresh HTTP/2 connection state counting into the shard's
// counters.
func (e *engine) newH2Conn() *h2Conn {
	x := &h2Conn{Conn: h2.New(h2Limits), delayed: make([]h2Delayed, 0, h2MaxStreams)}
	x.UseCounters(&e.h2ctr)
	return x
}

// takeH2 returns an HTTP/2 connection state from the free list, or a new
// one: once per connection the shard has at most at once.
func (e *engine) takeH2() *h2Conn {
	if n := len(e.h2free); n > 0 {
		x := e.h2free[n-1]
		e.h2free = e.h2free[:n-1]
		x.delayed, x.answers = x.delayed[:0], 0
		return x
	}
	return e.newH2Conn()
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
		if x.Req.Complete {
			e.answerH2(c, x.Req.Stream)
		}
	case h2.EventComplete:
		e.answerH2(c, x.Done)
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

// h2Conn is an HTTP/2 connection's protocol state and the streams whose
// answers wait for their delay.
type h2Conn struct {
	*h2.Conn
	delayed []h2Delayed // at most one per open stream: never grows
	answers uint32      // streams answered (the keep-alive limit, the close mix)
}

// h2Delayed is a stream whose answer waits until at: its kind and the
// response set it was framed with (held).
type h2Delayed struct {
	at  int64
	id  uint32
	set uint16
	v   variant
}

// answerH2 answers stream id with the current behaviour's answer: a kind
// drawn from the mixes, at once or after a delay drawn from the delay
// mix. A delayed stream waits on its own; the others go on. When the
// keep-alive limit or the close mix ends the connection after this
// answer, GOAWAY goes with it (the client opens a new connection).
func (e *engine) answerH2(c *conn, id uint32) {
	x := c.h2
	v := kindVariant(e.env.kind(), vOK)
	set := e.sets.cur
	e.sets.hold(set) // until the stream hands its tag back
	x.answers++
	if e.env.closeAll || e.env.endByPolicy(x.answers) {
		x.GoAway() // close mode, the keep-alive limit, the close mix
	}
	if at := e.env.due(); at > 0 {
		x.delayed = append(x.delayed, h2Delayed{at: at, id: id, set: set, v: v})
		e.armH2Timer(c)
		return
	}
	e.respondH2(c, id, set, v)
}

// respondH2 hands stream id its answer of variant v from set (held).
func (e *engine) respondH2(c *conn, id uint32, set uint16, v variant) {
	p := &e.sets.at(set)[v]
	if !c.h2.Respond(id, p.h2, p.bodyOf(), uint32(set)) {
		e.sets.release(set) // the client reset the stream meanwhile
		return
	}
	e.local[cH2Streams]++
	e.byStatus[p.status]++
}

// h2Due answers the delayed streams whose time has come, and sets the
// connection's timer for the next.
func (e *engine) h2Due(c *conn) {
	x := c.h2
	for i := 0; i < len(x.delayed); {
		d := x.delayed[i]
		if d.at > e.now {
			i++
			continue
		}
		x.delayed[i] = x.delayed[len(x.delayed)-1]
		x.delayed = x.delayed[:len(x.delayed)-1]
		e.respondH2(c, d.id, d.set, d.v)
	}
	e.h2Tags(c)
	e.armH2Timer(c)
	if x.Closing() && c.phase == phaseOpen {
		e.finish(c, true, reasonNormal)
	}
}

// armH2Timer sets the connection's timer for its earliest delayed stream.
func (e *engine) armH2Timer(c *conn) {
	if len(c.h2.delayed) == 0 {
		e.timers.cancel(c.slot)
		return
	}
	next := c.h2.delayed[0].at
	for _, d := range c.h2.delayed[1:] {
		next = min(next, d.at)
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
		e.sets.release(uint16(tag))
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
		e.sets.release(d.set)
	}
	x.delayed = x.delayed[:0]
	x.Abandon()
	e.h2Tags(c)
	e.h2free = append(e.h2free, x)
	c.h2 = nil
}
