package shard

import (
	"time"
)

// cqeBatch is the most completions handled before SQEs are published.
const cqeBatch = 256

// loop is the hot loop: reap completions in batches, hand each to the
// engine, turn the actions it queued into SQEs and publish them. With
// SQPOLL, publishing is a memory store and the loop never enters the
// kernel while the poller is awake; without, the loop enters once per idle
// turn to submit and wait.
func (s *Shard) loop() {
	r, e := s.r, &s.e
	for {
		if ctl := s.ctl.Load(); ctl != s.seen {
			if ctl&ctlStop != 0 {
				return
			}
			e.setNow(int64(time.Since(s.epoch))) // a drain sets deadlines: not from before an idle wait
			s.control(ctl)
		}
		if s.pending != nil {
			s.tryBehaviour() // no response set was free for it yet
		}
		n := r.ready()
		if n == 0 {
			s.idle()
			continue
		}
		e.setNow(int64(time.Since(s.epoch)))
		s.lastBusy = e.now
		if e.date.due(e.now) {
			s.refreshDate() // before answering: the shard may have slept
		}
		s.reap(min(n, cqeBatch))
		if len(e.waiters) > 0 {
			e.wakeWaiters()
		}
		if t := e.timers.next(); t != 0 && t <= e.now {
			e.fireTimers()
		}
		e.rearmAccept()
		s.flush()
		s.submit()
		e.local[cLoopsBusy]++
		s.dirty = true
		if e.sweepDue() {
			e.sweep(sweepBudget)
		}
		if e.now-s.lastPublish >= publishEvery {
			s.publish()
		}
	}
}

// reap hands n completions to the engine and marks them reaped. The loop
// and teardown share it, and with it the one decoder of completions.
func (s *Shard) reap(n uint32) {
	r := s.r
	for i := range n {
		q := r.cqeAt(i)
		cq := decode(q.UserData, q.Res, q.Flags)
		if cq.op == opWake {
			s.onWake()
			continue
		}
		s.e.complete(cq)
	}
	r.advance(n)
	if s.e.accept.off {
		s.checkAcceptStopped()
	}
}

// idle runs when no completion is ready. A spinning shard checks its timers
// and peeks again; a waiting shard blocks in io_uring_enter until a
// completion arrives or the next sweep is due. An adaptive SQPOLL shard
// spins for SpinWindow after its last completion, then waits.
func (s *Shard) idle() {
	e, cfg := &s.e, &s.e.cfg
	e.local[cLoopsIdle]++
	e.setNow(int64(time.Since(s.epoch)))
	if s.dirty && e.now-s.lastPublish >= publishEvery {
		s.publish()
	}
	if e.sweepDue() {
		e.sweep(sweepBudget)
	}
	if e.date.due(e.now) {
		s.refreshDate()
	}
	if t := e.timers.next(); t != 0 && t <= e.now {
		e.fireTimers()
	}
	s.flush()
	s.submit()
	if cfg.SQPoll && !s.sharedPoller && (cfg.Spin || e.now-s.lastBusy < int64(cfg.SpinWindow)) {
		return
	}
	timeout := e.nextSweep - e.now
	if s.dirty {
		// Come back in time to publish what the last batches counted.
		timeout = min(timeout, s.lastPublish+publishEvery-e.now)
	}
	if t := e.timers.next(); t != 0 {
		timeout = min(timeout, t-e.now) // wake for the next delayed answer
	}
	if e.acts.n > 0 {
		timeout = 0 // the SQ was full: come back to queue the rest
	}
	// The wait's own count is published with the next activity.
	s.enterResult(s.r.wait(max(timeout, int64(10*time.Microsecond))))
}

// refreshDate rewrites the Date of the prepared responses in a set no send
// reads; when every set is read, it tries again next turn.
func (s *Shard) refreshDate() {
	if !s.e.date.tick(s.e.now, &s.e.sets) {
		s.e.local[cDateDelayed]++
	}
	s.syncZC()
	if len(s.e.files) > 1 {
		s.e.closeStaleFiles() // a refresh may have dropped an old behaviour's last set
	}
}

// flush turns queued actions into SQEs while the SQ has room, keeping a
// linked pair in one submission (a link chain ends at the last SQE of a
// submission). What does not fit waits for the next turn, after the loop
// has reaped: a full SQ never makes the loop spin inside the engine.
func (s *Shard) flush() {
	q, r := &s.e.acts, s.r
	done := 0
	for done < q.n {
		a := q.peek(done)
		need := a.sqes()
		if a.link {
			need = 2
		}
		if r.room() < need {
			q.pop(done)
			done = 0
			if err := r.makeRoom(); err != nil {
				s.enterResult(err)
				return
			}
			if r.room() < need {
				return
			}
			continue
		}
		s.prep(a)
		if a.link {
			done++
			s.prep(q.peek(done))
		}
		done++
	}
	q.pop(done)
}

// prep fills one SQE for a.
func (s *Shard) prep(a *action) {
	r := s.r
	var link uint8
	if a.link {
		link = sqeIOHardlink
	}
	switch a.kind {
	case actAccept:
		r.prepMultishotAccept(int(a.fd), a.ud)
		if s.e.fixedFiles {
			e := r.lastSQE()
			e.SpliceFdIn = -1 // file_index IORING_FILE_INDEX_ALLOC: a free slot of the table
			e.OpcodeFlags = 0 // a table slot has no close-on-exec (the kernel refuses SOCK_CLOEXEC)
		}
	case actRecv:
		r.prepRecv(a.fd, a.buf, a.ud)
	case actRecvPool:
		r.prepRecvPool(a.fd, s.e.pool.group, a.ud)
	case actRecvMulti:
		r.prepRecvMultishot(a.fd, s.e.pool.group, a.ud)
	case actSend:
		r.prepSend(a.fd, a.buf, link, a.ud)
	case actSendZC:
		r.prepSendZC(a.fd, a.buf, link, a.ud)
		if i, ok := s.zc.lookup(a.n-1, a.buf); ok {
			e := r.lastSQE()
			e.IoPrio |= recvsendFixedBuf
			e.BufIG = i
			s.e.local[cSendZCFixed]++
		}
	case actShutdown:
		r.prepShutdown(a.fd, int(a.n), 0, a.ud)
	case actSplice:
		s.prepSpliceChain(a)
	case actLingerReset:
		r.prepLingerReset(a.fd, a.ud)
	case actClose, actCloseFile:
		r.prepClose(a.fd, a.ud)
	case actCancel:
		r.prepCancel(a.target, a.ud)
	case actRead:
		r.prepRead(int(a.fd), a.buf, a.ud)
	}
	if s.e.fixedFiles && a.onConn() {
		r.fixFile(a.kind == actClose)
	}
}

// submit hands the SQEs to the kernel (with SQPOLL: wakes a sleeping poller).
func (s *Shard) submit() { s.enterResult(s.r.submit()) }

// enterResult deals with a failed io_uring_enter: busy means reap first,
// which the loop does next anyway; anything else was counted by the ring,
// is logged once, and is followed by a short rest so a kernel that keeps
// failing is not asked again in a spin.
func (s *Shard) enterResult(err error) {
	if err == nil || err == errBusy {
		return
	}
	if !s.enterLogged {
		s.enterLogged = true
		s.e.cfg.Logger.Error("io_uring_enter failed; counted in zerosys_io_uring_enter_errors_total, further failures are not logged",
			"shard", s.e.cfg.ID, "err", err)
	}
	s.dirty = true
	time.Sleep(time.Millisecond)
}
