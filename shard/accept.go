package shard

import (
	"time"

	"golang.org/x/sys/unix"
)

// acceptState is the shard's one multishot accept on its listener.
type acceptState struct {
	fd         int32
	armed      bool  // the multishot accept is in the ring
	cancelling bool  // a cancel of it is in flight (paused or stopping)
	off        bool  // stopped for good (StopAccepting, or the shard stops)
	retryAt    int64 // monotonic ns; not re-armed before (EMFILE backoff)
	reserve    int   // free slots kept back for accepts completed before a pause lands
}

// acceptBackoff is how long accept rests after running out of descriptors
// or memory: retrying at once would spin.
const acceptBackoff = int64(100 * time.Millisecond)

func (e *engine) armAccept() {
	e.push(action{kind: actAccept, fd: e.accept.fd, ud: packUD(opAccept, 0, 0)})
	e.accept.armed = true
}

// rearmAccept arms accept again when it ended (error, backoff, a full
// table) and there is room.
func (e *engine) rearmAccept() {
	a := &e.accept
	if a.armed || a.off || e.now < a.retryAt || len(e.free) <= a.reserve {
		return
	}
	e.armAccept()
}

// cancelAccept cancels the armed accept (pausing or stopping).
func (e *engine) cancelAccept() {
	a := &e.accept
	if a.armed && !a.cancelling {
		a.cancelling = true
		e.push(action{kind: actCancel, target: packUD(opAccept, 0, 0), ud: packUD(opCancel, 0, 0)})
	}
}

// stopAccepting ends accepting for good.
func (e *engine) stopAccepting() {
	e.accept.off = true
	e.cancelAccept()
}

// acceptGone reports that accepting stopped for good and the ring holds no
// accept on the listener any more.
func (e *engine) acceptGone() bool { return e.accept.off && !e.accept.armed }

func (e *engine) onAccept(cq completion) {
	a := &e.accept
	if !cq.more() {
		a.armed, a.cancelling = false, false
		e.inflight--
	}
	if cq.res < 0 {
		switch errno(cq.res) {
		case unix.ECANCELED:
			// We paused accepting; rearmAccept resumes when slots free.
		case unix.ECONNABORTED, unix.EPROTO, unix.EPERM, unix.EINTR, unix.EAGAIN:
			// One connection's trouble (the peer gave up, a firewall
			// refused it): carry on.
			e.local[cAcceptErrors]++
		default:
			// Out of descriptors, table slots or memory (EMFILE,
			// ENFILE, ENOBUFS, ENOMEM), or an error that would recur
			// at once: rest, so a failing accept never spins.
			// Connections wait in the kernel's backlog meanwhile; the
			// sweep at the retry time re-arms accept.
			e.local[cAcceptErrors]++
			a.retryAt = e.now + acceptBackoff
			e.nextSweep = min(e.nextSweep, a.retryAt)
		}
		return
	}
	fd := cq.res
	if len(e.free) == 0 || e.stopping {
		e.local[cAcceptDropped]++
		e.push(action{kind: actClose, fd: fd, ud: packUD(opClose, 0, noSlot)})
		return
	}
	c := e.open(fd)
	e.step(c)
	if len(e.free) <= a.reserve && !e.accept.off {
		// The table is (nearly) full: stop accepting so new connections
		// wait in the kernel's backlog instead of being dropped (the
		// reserve absorbs accepts completed before the cancel lands), and
		// make room by ending connections that hold slots without work
		// (evict.go), a batch at a time: accepting resumes as their slots
		// free. Only a table full of work keeps it paused (counted).
		if len(e.free)+e.evicting <= a.reserve {
			e.evictRoom(max(1, a.reserve), c.slot)
		}
		if e.evicting == 0 && a.armed && !a.cancelling {
			e.local[cAcceptPaused]++
		}
		e.cancelAccept()
	}
}
