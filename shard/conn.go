package shard

import "golang.org/x/sys/unix"

// phase is where a connection is in its life. Phases only move forward
// (see the diagram in doc.go); enter asserts it in tests.
type phase uint8

const (
	phaseFree      phase = iota // the slot has no connection
	phaseOpen                   // reading requests and answering them
	phaseFinishing              // no further request is read; the queued answers go out, then it ends
	phaseLingering              // answers out, write side shut (SHUT_WR): reading to EOF before the close
	phaseAborting               // given up: SHUT_RDWR ends what is in flight, nothing more is sent
	phaseClosing                // the close is queued; nothing else may be
)

var phaseNames = [...]string{"free", "open", "finishing", "lingering", "aborting", "closing"}

func (p phase) String() string { return phaseNames[p] }

// conn is one slot of a shard's preallocated connection table. A slot is
// owned by one TCP connection from accept to the completion of its close;
// then its generation changes and it returns to the free list.
type conn struct {
	fd     int32
	gen    uint32
	slot   uint32
	phase  phase
	reason closeReason

	// Facts that hold independently of the phase.
	recvArmed  bool  // a recv (single-shot, or multishot still armed) is in the ring
	recvPaused bool  // a cancel of the multishot recv is in flight to pause reading, not to end it
	readOnce   bool  // bytes have arrived: RecvAuto arms multishot recvs from now on
	waitBuf    bool  // waiting in engine.waiters for a pool buffer to arm the recv
	sending    bool  // a send is in the ring
	linger     bool  // end by half-close and reading to EOF: input may still arrive
	peerEOF    bool  // the peer shut its write side
	ops        int32 // operations in the ring for this connection; a zero-copy send's notification is not one (it releases a response set, not the slot)

	in  input
	q   answerQueue
	out sendState

	deadline int64 // monotonic ns; 0 = none. What it guards follows from the state: see timer.
	timerIdx int32 // 1 + its place in engine.timers while an answer waits for its delay; 0: none

	h1     http1
	h2     *h2Conn // an HTTP/2 connection's state (http2.go); nil for HTTP/1.1
	sniff  uint8   // bytes of the preface's first line read, while undecided (sniffH2)
	h2seen uint64  // h2.Progress when the send timeout last started
}

// sendState is the answer batch being sent: answers of the first run,
// from one response set, possibly over several sends if the kernel takes
// part of it at a time.
type sendState struct {
	off, end uint32 // progress within the batch's bytes; end == 0: no batch
	k        uint32 // answers the batch carries
	set      uint16 // the response set it reads (a reference is held while end != 0)
	zc       bool   // the send in flight is zero-copy

	// A spliced answer (splice.go): its pipe, held until the answer is
	// out; the CQEs its chain in flight still owes; the body bytes in the
	// pipe; where the chain ends; what went wrong in it.
	splice    bool
	pipe      int16
	chain     uint8
	cancelled bool
	piped     uint32
	chainEnd  uint32
	headLen   uint32 // the chain's head bytes
	failed    int32
}

// traceEnter, when set (tests only), sees every phase change.
var traceEnter func(c *conn, p phase)

// enter moves c to phase p.
func (c *conn) enter(p phase) {
	if debugChecks {
		if p <= c.phase {
			panic("shard: connection phase " + c.phase.String() + " -> " + p.String() + " goes backwards")
		}
		if traceEnter != nil {
			traceEnter(c, p)
		}
	}
	c.phase = p
}

// opQueued and opDone count the connection's operations in the ring.
func (c *conn) opQueued() { c.ops++ }

func (c *conn) opDone() {
	c.ops--
	if debugChecks && c.ops < 0 {
		panic("shard: connection operations below zero")
	}
}

// setReason records why the connection ends: the first cause other than
// a normal end stands (a header timeout stays one even if the linger
// after its 408 is cut short), and any cause replaces a normal end.
func (c *conn) setReason(r closeReason) {
	if c.reason == reasonNone || c.reason == reasonNormal {
		c.reason = r
	}
}

func (c *conn) ud(o op) uint64 { return packUD(o, c.gen, c.slot) }

// step queues whatever the connection needs next: frame held input, send
// answers, read more, shut down or close. It runs after every event that
// concerns the connection and is the one place that turns state into
// operations.
func (e *engine) step(c *conn) {
	if c.phase == phaseClosing {
		return
	}
	if c.phase == phaseOpen {
		if c.in.has() && (c.h2 == nil && !c.q.full(e.env.maxPending) || c.h2 != nil && c.h2.CanFeed()) {
			e.frame(c)
		}
		if c.peerEOF && !c.in.has() && c.phase == phaseOpen {
			// The requests received before the EOF are all framed.
			e.finish(c, false, reasonNormal)
		}
	}
	if c.h2 != nil {
		if c.phase <= phaseFinishing {
			if len(c.h2.delayed) > 0 {
				e.h2Due(c)
			}
			e.sendH2(c)
		}
	} else if c.phase <= phaseFinishing && !c.sending && c.q.len > 0 {
		if at := c.q.first().at; at > e.now && c.out.end == 0 {
			e.timers.set(c.slot, at) // the answer waits for its delay; fireTimers steps again
		} else {
			e.send(c)
			if c.phase == phaseClosing {
				return // the close is linked behind the last send
			}
		}
	}
	switch c.phase {
	case phaseOpen:
		e.keepReading(c)
		e.setIdleDeadline(c)
	case phaseFinishing:
		switch {
		case c.sending || c.q.len > 0 || c.h2Output():
			// The answers are still going out.
		case c.recvArmed || c.linger && !c.peerEOF:
			// Closing now would reset a connection whose input may still
			// arrive (and a close does not end a connection while a recv
			// is armed): half-close, then read to EOF.
			e.startLinger(c)
		case c.ops == 0:
			e.queueClose(c)
		}
	case phaseLingering:
		switch {
		case !c.peerEOF && !c.recvArmed:
			e.recv(c)
		case c.peerEOF && c.ops == 0:
			e.queueClose(c)
		}
	case phaseAborting:
		if c.ops == 0 {
			e.queueClose(c)
		}
	}
}

// finish ends the connection gracefully: no further request is read, the
// queued answers go out, then it closes (lingering if linger).
func (e *engine) finish(c *conn, linger bool, r closeReason) {
	c.setReason(r)
	c.linger = c.linger || linger
	c.in.clear(e.pool)
	if c.phase == phaseOpen {
		c.enter(phaseFinishing)
	}
}

// abort gives up on a connection: nothing more is sent, and SHUT_RDWR ends
// the operations still in flight; step closes it when they are done.
func (e *engine) abort(c *conn, r closeReason) {
	if c.phase >= phaseAborting {
		return
	}
	c.setReason(r)
	c.enter(phaseAborting)
	c.in.clear(e.pool)
	c.q.drop(&e.sets)
	e.timers.cancel(c.slot)
	c.deadline = e.now + abortBackstop
	e.nextSweep = min(e.nextSweep, c.deadline)
	if r == reasonTimeoutSend {
		// A client that stopped reading: what it left unread would stay
		// in the kernel after the close, an orphan socket holding up to
		// its send buffer (megabytes) until the peer reads or gives up.
		// Reset it instead, as nginx's reset_timedout_connection does.
		// Its completion is handled as the shutdown's (it only counts).
		e.push(action{kind: actLingerReset, fd: c.fd, ud: c.ud(opShutdown)})
		c.opQueued()
	}
	if c.ops > 0 {
		// Ends the recv or send in flight, also after a linger's SHUT_WR.
		// Should one outlive it, the sweep cancels it (abortBackstop).
		e.push(action{kind: actShutdown, fd: c.fd, n: unix.SHUT_RDWR, ud: c.ud(opShutdown)})
		c.opQueued()
	}
}

// startLinger half-closes the connection and reads until the peer closes.
func (e *engine) startLinger(c *conn) {
	c.enter(phaseLingering)
	e.push(action{kind: actShutdown, fd: c.fd, n: unix.SHUT_WR, ud: c.ud(opShutdown)})
	c.opQueued()
	c.deadline = e.now + int64(e.cfg.LingerTimeout)
	if !c.recvArmed {
		e.recv(c)
	}
}

// queueClose queues the close: the last operation of the connection.
func (e *engine) queueClose(c *conn) {
	c.enter(phaseClosing)
	e.push(action{kind: actClose, fd: c.fd, ud: c.ud(opClose)})
	c.opQueued()
	if !c.sending {
		c.deadline = 0
	}
}

// keepReading arms a recv while the connection may take more input, and
// pauses a multishot recv while the answer queue is full.
func (e *engine) keepReading(c *conn) {
	full := c.q.full(e.env.maxPending)
	if c.h2 != nil {
		// HTTP/2 stops consuming input while its output is full: read no
		// more than it has left, or a client that does not read could
		// fill the pool with bytes nobody checks.
		full = !c.h2.CanFeed() || c.in.has()
	}
	switch {
	case !c.recvArmed && !c.in.has() && !full && !c.waitBuf && !c.peerEOF:
		e.recv(c)
	case full && c.recvArmed && e.multishot(c) && !c.recvPaused:
		// A multishot recv would keep taking buffers for a client we have
		// stopped reading: pause it.
		e.push(action{kind: actCancel, target: c.ud(opRecv), ud: packUD(opCancel, 0, 0)})
		c.recvPaused = true
	}
}

// setIdleDeadline arms the timer of an open connection that waits for the
// client: the header timeout while a request head is owed (also by a new
// connection: one that connects and waits must not hold a slot), else the
// idle timeout. A send in flight keeps its own.
func (e *engine) setIdleDeadline(c *conn) {
	switch {
	case c.h2 != nil && (c.sending || c.h2.Busy()):
		// Streams wait for the client (its window, its reading, its
		// body): the send timeout runs from the last time an answer moved,
		// so PINGs or other chatter do not keep a stalled stream alive.
		if p := c.h2.Progress(); p != c.h2seen || c.deadline == 0 {
			c.h2seen = p
			c.deadline = e.now + int64(e.cfg.SendTimeout)
		}
	case c.h2 != nil:
		c.deadline = e.now + int64(e.cfg.IdleTimeout)
	case c.sending:
	case c.q.len > 0:
		c.deadline = 0 // an answer waits for its delay: the timer wakes it, no timeout runs
	case c.h1.waitingForHead():
		c.deadline = c.h1.reqStart + int64(e.cfg.HeaderTimeout)
	default:
		c.deadline = e.now + int64(e.cfg.IdleTimeout)
	}
}

// multishot reports whether c's recv is (or, armed next, will be) a
// multishot one. Under RecvAuto a connection's first recv is single-shot
// and readOnce is set only when it completes, so an armed recv is
// multishot exactly when readOnce was set before it was armed.
func (e *engine) multishot(c *conn) bool {
	return e.cfg.Recv == RecvMultishot || e.cfg.Recv == RecvAuto && c.readOnce
}

// recv arms a recv, or waits for a pool buffer.
func (e *engine) recv(c *conn) {
	if e.pool != nil {
		if e.pool.dry() {
			if !c.waitBuf {
				c.waitBuf = true
				e.waiters = append(e.waiters, c.slot)
			}
			return
		}
		k := actRecvPool
		if e.multishot(c) {
			k = actRecvMulti
		}
		e.push(action{kind: k, fd: c.fd, ud: c.ud(opRecv)})
	} else {
		e.push(action{kind: actRecv, fd: c.fd, buf: e.slotBuf(c.slot), ud: c.ud(opRecv)})
	}
	c.recvArmed = true
	c.opQueued()
}

// send queues the first run's next batch. When it is the connection's last
// answer and nothing else is in flight, the close is linked behind it with
// IOSQE_IO_HARDLINK: it runs even if the send fails, so no fd leaks.
func (e *engine) send(c *conn) {
	h := c.q.first()
	if c.out.end == 0 {
		c.out.set = h.set
		e.sets.hold(h.set) // the batch's own: the run may be dropped while the send is in flight
	}
	var b []byte
	if h.v == vCustom {
		x := &c.h1.cust
		if c.out.end == 0 {
			c.out.k, c.out.end = 1, x.total()
			e.noteLate(h.at, 1)
		}
		b = x.segment(c.out.off) // one segment per send
	} else {
		p := &e.sets.at(c.out.set)[h.v]
		if c.out.end == 0 {
			c.out.k = min(h.count, uint32(p.k))
			c.out.end = c.out.k * uint32(len(p.one))
			if p.spliced {
				// One answer per chain, if a pipe is free; else sent as
				// any other.
				c.out.pipe, c.out.splice = e.pipes.take()
				if c.out.splice {
					c.out.k, c.out.end = 1, uint32(len(p.one))
					e.local[cSpliced]++
				} else if e.pipes != nil {
					e.local[cSpliceFallback]++
				}
			}
			e.noteLate(h.at, c.out.k)
		}
		if c.out.splice {
			e.sendSpliced(c, p)
			c.sending = true
			if c.out.off == 0 {
				c.deadline = e.now + int64(e.cfg.SendTimeout)
			}
			return // the close is queued after the last chain, never linked behind it
		}
		b = p.many[c.out.off:c.out.end]
	}
	if len(b) > maxSendChunk {
		b = b[:maxSendChunk]
	}
	last := c.q.len == 1 && h.count == c.out.k && c.out.off+uint32(len(b)) == c.out.end
	link := last && c.phase == phaseFinishing && !c.recvArmed && c.ops == 0 && (!c.linger || c.peerEOF)
	c.out.zc = e.cfg.SendZC && len(b) >= zcMin && h.v != vCustom
	if c.out.zc {
		e.sets.hold(c.out.set) // the zero-copy op's own reference, returned by its notification
		e.push(action{kind: actSendZC, fd: c.fd, buf: b, link: link, n: zcIndex(c.out.set, h.v) + 1, ud: packZC(c.gen, c.slot, c.out.set)})
	} else {
		e.push(action{kind: actSend, fd: c.fd, buf: b, link: link, ud: c.ud(opSend)})
	}
	c.sending = true
	c.opQueued()
	if c.out.off == 0 {
		// The timeout bounds the batch, however many sends its chunks
		// (maxSendChunk) take.
		c.deadline = e.now + int64(e.cfg.SendTimeout)
	}
	if link {
		e.queueClose(c)
	}
}

// maxSendChunk bounds one send. The kernel copies a send into the socket
// as far as its buffer (up to 4 MiB) allows inside the loop turn that
// submits it, so a burst of new connections asking for megabytes would
// hold every other connection's answers back by tens of milliseconds
// (TestSlowAttacks); the rest goes in the next sends, turn by turn. nginx
// bounds sendfile the same way (sendfile_max_chunk). 512 KiB also costs
// less CPU per 1 MiB answer than one send does (9.2-9.9 against 13.2-13.4
// CPU-s per 100k answers, bench body-1MiB), and less than 256 KiB
// (14.2-14.5), probably because a send the socket buffer takes whole
// needs no retry.
const maxSendChunk = 512 << 10

// zcMin is the smallest send that goes zero-copy with SendZC: below it,
// the second completion costs more than the copy it saves.
const zcMin = 16 << 10

// onSend handles a send's result.
func (e *engine) onSend(c *conn, res int32) {
	if c.h2 != nil {
		e.onSendH2(c, res)
		return
	}
	c.sending = false
	if res < 0 {
		e.endBatch(c)
		r := reasonError
		if errno(res) == unix.ECANCELED {
			r = reasonTimeoutSend // only the sweep cancels a send
		}
		c.setReason(r) // also when closing: the answer behind the close is cut
		e.abort(c, r)
		return
	}
	e.local[cBytesOut] += uint64(res)
	if c.phase == phaseAborting {
		e.endBatch(c) // the queue is gone
		return
	}
	c.out.off += uint32(res)
	if c.out.off < c.out.end {
		if c.phase == phaseClosing {
			// The close linked behind it runs anyway (IOSQE_IO_HARDLINK),
			// so the rest of the answer is lost. MSG_WAITALL makes this
			// rare (a signal, a socket error): count it as an error.
			c.setReason(reasonError)
		}
		return // short send: step sends the rest
	}
	e.countAnswers(c, c.q.first().v, c.out.k)
	c.q.pop(c.out.k, &e.sets)
	e.endBatch(c)
}

// endBatch forgets the batch in progress and returns its set reference.
func (e *engine) endBatch(c *conn) {
	if c.out.end != 0 {
		e.sets.release(c.out.set)
	}
	if c.out.splice && c.out.pipe >= 0 {
		e.pipes.put(c.out.pipe)
	}
	c.out = sendState{}
}

// onRecv handles a recv's result.
func (e *engine) onRecv(c *conn, cq completion) {
	paused := false
	if !cq.more() {
		c.recvArmed = false
		paused, c.recvPaused = c.recvPaused, false
	}
	if bid, ok := cq.bid(); ok {
		c.readOnce = true
		e.pool.take(bid, cq.res)
		e.local[cBytesIn] += uint64(cq.res)
		if c.phase != phaseOpen {
			e.pool.put(bid) // finishing or lingering: read away
			return
		}
		c.in.hold(bid, e.pool)
		e.frame(c)
		return
	}
	res := cq.res
	switch {
	case res > 0:
		e.local[cBytesIn] += uint64(res)
		if c.phase == phaseOpen {
			c.in.set(uint32(res))
			e.frame(c)
		}
	case res == 0:
		// The peer is done sending; step ends the connection once what it
		// sent before is framed (held input may still hold requests).
		c.peerEOF = true
	case errno(res) == unix.ECANCELED:
		if !paused {
			e.abort(c, reasonError) // cancelled by the sweep's backstop or teardown
		}
	case errno(res) == unix.ENOBUFS:
		// The pool ran dry: step re-arms once a buffer returns.
		e.local[cRecvNoBufs]++
	default: // ECONNRESET, ETIMEDOUT, ...
		e.abort(c, reasonError)
	}
}

// release returns a closed connection's slot to the free list and counts
// its close. Its generation changes so late completions for it are
// recognised as stale.
func (e *engine) release(c *conn) {
	if debugChecks && (c.ops != 0 || c.sending || c.recvArmed) {
		panic("shard: connection released with operations in flight")
	}
	e.endBatch(c)
	c.q.drop(&e.sets) // an answer cut short behind its close leaves its run
	if c.h2 != nil {
		e.releaseH2(c)
	}
	c.in.clear(e.pool)
	e.timers.cancel(c.slot)
	if c.waitBuf {
		e.unwait(c.slot)
	}
	e.local[c.reason.counter()]++
	if c.reason == reasonEvicted {
		e.evicting--
	}
	c.phase, c.fd, c.deadline = phaseFree, -1, 0
	c.gen = (c.gen + 1) & genMask
	e.free = append(e.free, c.slot)
	e.active--
	e.cfg.Load.Closed(uint64(e.active))
}

// open takes a free slot for the accepted descriptor fd.
func (e *engine) open(fd int32) *conn {
	slot := e.free[len(e.free)-1]
	e.free = e.free[:len(e.free)-1]
	c := &e.conns[slot]
	*c = conn{fd: fd, gen: c.gen, slot: slot, phase: phaseOpen}
	c.in.reset()
	c.h1.reset(e.cfg.Limits, e.now, e.customBuf(slot))
	e.local[cAccepted]++
	e.active++
	e.cfg.Load.Accepted(e.local[cAccepted], uint64(e.active))
	return c
}

// cancelOps cancels, by user_data, the recv and the send a connection has
// in flight. It touches no descriptor: a linked close may already have run.
func (e *engine) cancelOps(c *conn) {
	if c.recvArmed {
		e.push(action{kind: actCancel, target: c.ud(opRecv), ud: packUD(opCancel, 0, 0)})
	}
	if c.sending && c.out.splice {
		// Whichever step runs: cancelling it fails the rest of the chain.
		for s := range uint16(spliceChainMax) {
			e.push(action{kind: actCancel, target: spliceUD(c, s), ud: packUD(opCancel, 0, 0)})
		}
	} else if c.sending {
		target := c.ud(opSend)
		if c.out.zc {
			target = packZC(c.gen, c.slot, c.out.set)
		}
		e.push(action{kind: actCancel, target: target, ud: packUD(opCancel, 0, 0)})
	}
}
