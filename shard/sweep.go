package shard

import (
	"time"

	"zerosys/shard/httpwire"
)

// sweepEvery is the least time between two deadline sweeps: timeouts are
// coarse by this much. A sweep walks the table; it costs no syscall.
const sweepEvery = int64(100 * time.Millisecond)

// timer is what a connection's deadline guards. It is not stored: it
// follows from the state the deadline was set in, which is the state the
// connection is still in when it passes (every event re-arms it).
type timer uint8

const (
	timerHeader   timer = iota // a request head is owed (HeaderTimeout)
	timerIdle                  // a keep-alive connection waits for its next request (IdleTimeout)
	timerSend                  // a send waits for the client to read (SendTimeout)
	timerLinger                // reading to EOF after the last answer (LingerTimeout)
	timerBackstop              // an aborted connection's operations outlived its SHUT_RDWR, or a send the close is linked behind
)

func (c *conn) timer() timer {
	switch {
	case c.phase == phaseClosing || c.phase == phaseAborting:
		return timerBackstop
	case c.phase == phaseLingering:
		return timerLinger
	case c.sending:
		return timerSend
	case c.h2 != nil && c.h2.Busy():
		return timerSend
	case c.h2 != nil:
		return timerIdle
	case c.phase == phaseOpen && c.h1.waitingForHead():
		return timerHeader
	}
	return timerIdle
}

// sweep acts on the connections whose deadline passed and schedules the
// next sweep at the earliest deadline left. A deadline set after this
// sweep is at least minTimeout away, so scheduling no later than
// now+minTimeout misses none; an idle shard thus wakes every few seconds at
// most.
//
// At most budget connections expire per sweep: the sweep stops at the
// next one, and the next loop turn goes on from there.
func (e *engine) sweep(budget int) {
	next := e.now + e.minTimeout()
	n := len(e.conns)
	for k := range n {
		i := (e.sweepAt + k) % n
		c := &e.conns[i]
		if c.phase == phaseFree || c.deadline == 0 {
			continue
		}
		if e.now < c.deadline {
			next = min(next, c.deadline)
			continue
		}
		if budget == 0 {
			e.sweepAt = i
			e.nextSweep = e.now // the next turn goes on from here
			return
		}
		budget--
		c.deadline = 0
		e.expire(c)
		if c.deadline != 0 {
			next = min(next, c.deadline)
		}
	}
	e.nextSweep = max(next, e.now+sweepEvery)
	e.rearmAccept() // the EMFILE backoff may be over
}

// sweepBudget bounds the connections one sweep ends. Connections that
// met a timeout together (a burst of attackers, say) would otherwise all
// close in one loop turn, and closing a socket frees its queues in the
// kernel (megabytes for a client that stopped reading), holding back every
// other connection's answers by tens of milliseconds (TestSlowAttacks).
const sweepBudget = 16

// expire acts on a connection whose deadline passed.
func (e *engine) expire(c *conn) {
	switch c.timer() {
	case timerBackstop:
		// A send the close is linked behind, or an operation that outlived
		// an abort's shutdown: cancel it, and come back.
		if c.phase == phaseClosing && c.sending {
			// The last answer's send timed out with the close linked
			// behind it: reset, as abort does for a send timeout, so the
			// unread answer does not outlive the close in an orphan
			// socket. The close is in the ring already, so the reset is
			// no op of the connection's; queued before the cancel, it
			// runs before the cancelled send releases the close.
			c.setReason(reasonTimeoutSend)
			e.push(action{kind: actLingerReset, fd: c.fd, ud: packUD(opLinger, c.gen, c.slot)})
		}
		e.cancelOps(c)
		c.deadline = e.now + abortBackstop
		return
	case timerHeader:
		if c.phase == phaseOpen && !c.sending && c.q.len == 0 {
			// Say why, as HAProxy does, then close the usual way.
			c.q.push(errorVariant(408, c.h1.parser.Method() == httpwire.MethodHead), &e.sets)
			e.finish(c, true, reasonTimeoutHeader)
		} else {
			e.abort(c, reasonTimeoutHeader)
		}
	case timerIdle:
		e.abort(c, reasonTimeoutIdle)
	case timerSend:
		e.abort(c, reasonTimeoutSend)
	case timerLinger:
		e.abort(c, reasonTimeoutLinger)
	}
	e.step(c)
}

// stopAll cuts every connection: the shard is stopping. Each is aborted
// and its operations cancelled, so all of them complete promptly and every
// slot is released through its own close.
func (e *engine) stopAll() {
	e.stopping = true
	e.stopAccepting()
	for i := range e.conns {
		c := &e.conns[i]
		switch c.phase {
		case phaseFree:
			continue
		case phaseClosing:
			c.setReason(reasonShutdown)
		default:
			e.abort(c, reasonShutdown)
		}
		e.cancelOps(c)
		e.step(c)
	}
}
