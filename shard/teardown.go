package shard

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// teardownBound is how long teardown waits for the kernel to complete
// every operation of the shard.
const teardownBound = 2 * time.Second

// kept holds the memory of shards whose teardown hit its bound: the kernel
// may still read or write it, so it must never be reused. It only grows,
// and only in that case, which is logged.
var kept struct {
	sync.Mutex
	mem []any
}

// teardown cuts every connection and waits, bounded, until the kernel has
// completed every operation of the shard, through the same decoder and
// engine as the loop; then it closes the ring. Only then may the buffers
// the kernel was reading and writing go.
func (s *Shard) teardown() {
	r, e := s.r, &s.e
	e.setNow(int64(time.Since(s.epoch)))
	e.stopAll()
	if s.wakeArmed {
		e.push(action{kind: actCancel, target: packUD(opWake, 0, 0), ud: packUD(opCancel, 0, 0)})
	}
	deadline := time.Now().Add(teardownBound)
	for e.inflight > 0 && time.Now().Before(deadline) {
		s.flush()
		e.setNow(int64(time.Since(s.epoch)))
		if e.sweepDue() {
			e.sweep(len(e.conns)) // backstops, all at once: cancel what outlived its SHUT_RDWR or its cancel
		}
		if n := r.ready(); n > 0 {
			s.reap(n)
			if len(e.waiters) > 0 {
				e.wakeWaiters()
			}
			continue
		}
		s.enterResult(r.wait(int64(10 * time.Millisecond)))
	}
	if e.inflight > 0 {
		// Cut what is left ourselves, and keep every buffer the kernel may
		// still hold: freeing it could let the kernel write into memory
		// that Go has given to something else.
		open := 0
		for i := range e.conns {
			if c := &e.conns[i]; c.phase != phaseFree {
				if c.phase != phaseClosing && !e.fixedFiles { // a table slot closes with the ring
					_ = unix.Close(int(c.fd))
				}
				open++
			}
		}
		e.cfg.Logger.Error("shard teardown: operations still in the kernel after the bound; keeping the shard's buffers",
			"shard", e.cfg.ID, "operations", e.inflight, "connections", open, "bound", teardownBound)
		kept.Lock()
		kept.mem = append(kept.mem, e.bufs, e.pool, e.sets.sets, e.custom, e.env.pattern, &s.wakeBuf)
		kept.Unlock()
		e.pool = nil // not unmapped: see above
	}
	s.publish()
	s.seen |= ctlStopAccept
	e.accept.off, e.accept.armed = true, false
	s.checkAcceptStopped()
	r.close()
	e.pool.close() // after the ring: its memory is the kernel's until then
	e.closeSplice()
	if p := s.pending; p != nil {
		p.t.closeFile()
	}
	if p := s.posted.Swap(nil); p != nil {
		p.t.closeFile()
	}
}
