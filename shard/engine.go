package shard

import (
	"cmp"
	"time"

	"zerosys/shard/h2"
	"zerosys/shard/httpwire"

	"golang.org/x/sys/unix"
)

// debugChecks turns on the assertions of the lifecycle (no phase goes
// backwards, no count goes below zero). Tests set it; in production it is
// false and each check costs one predictable branch.
var debugChecks bool

// engine is the part of a shard that decides: the connection table and each
// connection's lifecycle, the accept state, the prepared answers and the
// counters. It performs no I/O. Completions go in (complete, sweep, drain,
// stopAll) and what the kernel should do next comes out as actions on
// acts, which the shard's loop turns into SQEs. Tests and the fuzz target
// drive an engine with synthetic completions and no kernel at all.
type engine struct {
	cfg Config

	conns []conn
	free  []uint32 // stack of free slot indexes
	bufs  []byte   // RecvBuffer bytes per slot: RecvSlot's recv buffer, a pool connection's stash

	// With a pool (every mode but RecvSlot): the provided buffers, and the slots waiting
	// for a buffer to arm their recv (each at most once: conn.waitBuf).
	pool    *bufPool
	waiters []uint32

	sets   respSets
	date   dateClock
	timers timerHeap // connections whose next answer waits for a delay
	acts   actionQueue
	env    protoEnv

	now       int64 // monotonic ns since the shard's epoch, read once per batch
	nextSweep int64
	sweepAt   int // the slot the next sweep starts at (see sweep's budget)
	inflight  int // operations in the ring, of every kind (multishot accept counts once)

	accept   acceptState
	draining bool // answer every further request with Connection: close
	notReady bool // health answers say the server is going (NotReady)
	stopping bool // the shard is stopping: every connection is cut

	local  [numCounters]uint64
	delays histogram // the delays applied
	late   histogram // how late delayed answers left (LateBounds)
	active int64
	rng    uint64 // random state of the draws (protoEnv.rng)

	// Answers sent by status code; statuses lists the codes a response
	// set can answer with, the ones published.
	byStatus   [maxStatus]uint64
	statusSeen [maxStatus]bool
	statuses   []uint16

	// Eviction (evict.go): its scratch lists of slots, and the evicted
	// connections whose slots are not free yet.
	evictHeads, evictIdle []uint32
	evicting              int

	// Splicing (splice.go): the pipes, nil when answers are not spliced,
	// and the memory files of the behaviours sets still serve.
	pipes *splicePipes
	files []bodyFile

	// HTTP/2 connection states no connection uses now, for the next one,
	// and the counts every HTTP/2 connection of the shard adds to.
	h2free []*h2Conn
	h2ctr  h2.Counters

	// fixedFiles: connections live in the ring's file table, and their
	// fd is an index into it (fixedfiles.go).
	fixedFiles bool

	// With RequestKnobs or h2c upgrades: each slot's custom buffer (see custom.go), and
	// the scratch one request's knobs are read into.
	custom []byte
	knobs  knobs

	// With RequestKnobs and HTTP/2: the scratch a stream's custom header
	// block is built in, and the request its knobs are read from.
	h2scratch []byte
	h2src     h2Source
}

// init builds the engine in place for cfg (defaults set) with the
// start-up behaviour t; pool is nil in RecvSlot mode. In place, because
// the engine points into itself (protoEnv's counters): it must not be
// copied after.
func (e *engine) init(cfg Config, t *table, pool *bufPool) {
	*e = engine{
		cfg:   cfg,
		conns: make([]conn, cfg.MaxConns),
		free:  make([]uint32, 0, cfg.MaxConns),
		pool:  pool,
		sets:  newRespSets(t.rs),
		acts:  newActionQueue(maxOpsPerConn*cfg.MaxConns + 16),
		accept: acceptState{
			fd:      int32(cfg.ListenFD),
			reserve: cfg.MaxConns / 32,
		},
	}
	// Shards draw from sequences of their own, each repeatable by Seed.
	e.rng = cfg.Seed ^ uint64(cfg.ID+1)*0x9e3779b97f4a7c15
	e.env = protoEnv{
		closeAll:   cfg.Mode == ModeClose,
		maxPending: uint32(cfg.MaxPipeline),
		sets:       &e.sets,
		delayed:    &e.local[cDelayed],
		delayHist:  &e.delays,
		rng:        &e.rng,
		requests:   &e.local[cRequests],
		rejected:   &e.local[cRejected],
		h2c:        cfg.H2C == H2CAuto,
		h2settings: make([]byte, 0, maxH2Settings),
	}
	e.setDraws(t)
	e.noteStatuses(t.rs)
	if cfg.RequestKnobs || cfg.H2C == H2CAuto {
		// The custom buffers: knobs' answers, and the heads kept across
		// reads (a first request that may ask for h2c). Pages are
		// touched only as connections use them.
		lim := cfg.Limits
		lim.MaxRequestLine = cmp.Or(lim.MaxRequestLine, httpwire.DefaultMaxRequestLine)
		lim.MaxHeaderBytes = cmp.Or(lim.MaxHeaderBytes, httpwire.DefaultMaxHeaderBytes)
		e.custom = make([]byte, cfg.MaxConns*(customHeadroom+lim.MaxRequestLine+lim.MaxHeaderBytes))
	}
	if cfg.RequestKnobs {
		e.env.knobs = &e.knobs
		e.env.knobLim = knobLimits{maxDelay: int64(cfg.MaxDelay), maxSize: int64(cfg.MaxBodySize)}
		e.env.pattern = patternBody(cfg.MaxBodySize)
		if cfg.H2C != H2COff {
			e.h2scratch = make([]byte, 0, h2ScratchSize)
		}
	}
	// A receive buffer per slot: the slot mode's, and with a pool the
	// stash of a connection whose answer queue filled (see frame). Pages
	// are touched only as slots use them.
	e.bufs = make([]byte, cfg.MaxConns*cfg.RecvBuffer)
	if pool != nil {
		e.waiters = make([]uint32, 0, cfg.MaxConns)
	}
	for i := cfg.MaxConns - 1; i >= 0; i-- {
		e.conns[i] = conn{fd: -1, slot: uint32(i)}
		e.free = append(e.free, uint32(i))
	}
	e.timers = newTimerHeap(e.conns)
	e.evictHeads = make([]uint32, 0, cfg.MaxConns)
	e.evictIdle = make([]uint32, 0, cfg.MaxConns)
}

// setNow moves the engine's clock; the loop calls it once per batch.
func (e *engine) setNow(now int64) {
	e.now = now
	e.env.now = now
}

// push queues an action that completes with a CQE of its own.
func (e *engine) push(a action) {
	e.acts.push(a)
	e.inflight++
}

// complete handles one completion of an operation the engine queued.
func (e *engine) complete(cq completion) {
	switch cq.op {
	case opAccept:
		e.onAccept(cq)
		return
	case opCancel, opLinger:
		e.inflight-- // its result (0, ENOENT, EALREADY; EBADF after the close) changes nothing
		return
	case opPipeDrain:
		e.inflight--
		e.pipes.put(int16(cq.slot)) // empty now (EAGAIN: it was already)
		return
	case opSendZC:
		if cq.notif() {
			// The kernel no longer reads the buffer, whether or not the
			// connection still exists: the set's reference goes.
			e.inflight--
			e.sets.release(cq.set)
			return
		}
		if !cq.more() {
			e.inflight-- // no notification will come
			e.sets.release(cq.set)
		}
	default:
		if !cq.more() {
			e.inflight--
		}
	}
	if cq.slot == noSlot {
		return // the close of a connection that got no slot
	}
	c := &e.conns[cq.slot]
	if c.gen != cq.gen || c.phase == phaseFree {
		e.local[cStale]++
		if bid, ok := cq.bid(); ok {
			e.pool.take(bid, cq.res)
			e.pool.put(bid)
		}
		return
	}
	if !cq.more() || cq.op == opSendZC {
		c.opDone()
	}
	switch cq.op {
	case opRecv:
		e.onRecv(c, cq)
	case opSend, opSendZC:
		e.onSend(c, cq.res)
	case opSplice:
		e.onSplice(c, cq.set, cq.res)
	case opShutdown:
		// Its effect shows in the recv and the send it ends.
	case opClose:
		if errno(cq.res) == unix.ECANCELED {
			// The close never ran (a cancelled link): run it again, or
			// the descriptor leaks.
			e.push(action{kind: actClose, fd: c.fd, ud: c.ud(opClose)})
			c.opQueued()
			return
		}
		e.release(c)
		return
	}
	e.step(c)
}

// drain makes every further answer close its connection.
func (e *engine) drain() {
	if e.draining {
		return
	}
	e.draining = true
	e.env.closeAll = true
	for i := range e.conns {
		c := &e.conns[i]
		switch {
		case c.phase == phaseOpen && c.h2 != nil:
			e.h2Drain(c)
			e.step(c)
		case c.phase == phaseOpen && c.q.len > 0:
			e.closeAfterQueued(c)
		}
	}
}

// closeAfterQueued makes the last answer queued on c (one waiting for its
// delay, or for a slow reader) say Connection: close, and the connection
// end after it, so a drain does not leave a keep-alive connection the
// client may reuse just as it is cut. It leaves c alone when the client
// has sent more than was framed (that is answered, with close, as usual),
// or the last answer is being sent already.
func (e *engine) closeAfterQueued(c *conn) {
	if c.in.has() || c.h1.midRequest {
		return
	}
	last := &c.q.runs[(int(c.q.head)+int(c.q.len)-1)%maxRuns]
	if c.q.len == 1 && c.out.end != 0 {
		return
	}
	if last.v == vCustom {
		if !c.h1.cust.sayClose() {
			return
		}
		if debugChecks && traceLast != nil {
			traceLast(&c.q, vCustom, c.h1.cust.bytes())
		}
		e.finish(c, true, reasonNormal)
		e.step(c)
		return
	}
	v, ok := closeTwin(last.v)
	if !ok || last.count > 1 && c.q.len >= maxRuns {
		return
	}
	if last.count > 1 {
		// The answers before the last keep the connection open.
		last.count--
		c.q.runs[(int(c.q.head)+int(c.q.len))%maxRuns] = run{v: v, set: last.set, count: 1, at: last.at}
		c.q.len++
		e.sets.hold(last.set)
	} else {
		last.v = v
	}
	if debugChecks && traceLast != nil {
		traceLast(&c.q, v, e.sets.at(last.set)[v].one)
	}
	e.finish(c, true, reasonNormal)
	e.step(c)
}

// sweepDue reports whether a deadline may have passed.
func (e *engine) sweepDue() bool { return e.now >= e.nextSweep }

// minTimeout is the shortest of the connection timeouts.
func (e *engine) minTimeout() int64 {
	c := &e.cfg
	return int64(min(c.HeaderTimeout, c.IdleTimeout, c.SendTimeout, c.LingerTimeout))
}

// abortBackstop is how long an aborted connection's operations may take to
// end after its SHUT_RDWR before the sweep cancels them.
const abortBackstop = int64(time.Second)

// errno decodes a negative CQE result.
func errno(res int32) unix.Errno { return unix.Errno(-res) }

// cumulative turns shares into cumulative parts per million; nil for none.
func cumulative(shares []Share) []uint32 {
	if len(shares) == 0 {
		return nil
	}
	cum := make([]uint32, len(shares))
	var sum uint32
	for i, sh := range shares {
		sum += sh.PPM
		cum[i] = sum
	}
	return cum
}

// delayTable lists the delays in ns: the remainder's first, then the
// mix's (Share.Value in microseconds); nil when no answer is delayed.
func delayTable(def time.Duration, mix []Share) []int64 {
	if def <= 0 && len(mix) == 0 {
		return nil
	}
	t := []int64{int64(def)}
	for _, sh := range mix {
		t = append(t, int64(sh.Value)*int64(time.Microsecond))
	}
	return t
}
