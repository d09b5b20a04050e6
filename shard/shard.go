package shard

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"

	"zerosys/affinity"
)

// Shard serves one listening socket from one ring on one locked, pinned
// thread. See the package documentation for its rules.
type Shard struct {
	e engine // the decisions: connections, accept, answers, counters
	r *ring

	epoch    time.Time
	lastBusy int64 // monotonic ns of the last batch of completions (adaptive idle)
	// sharedPoller: the SQPOLL poller runs on the shard's own CPU, so the
	// shard never spins: every moment it spins is taken from the poller
	// that must submit its work (measured: a 10 ms window gave 8k req/s).
	sharedPoller bool

	dirty       bool  // counters changed since the last publish
	lastPublish int64 // monotonic ns
	enterLogged bool  // a failing io_uring_enter was logged (once)

	// Touched by other goroutines.
	pub  published
	tid  atomic.Int64
	ctl  atomic.Uint32 // ctlDrain | ctlStopAccept | ctlBehaviour | ctlStop
	seen uint32        // the control bits the loop has acted on (shard goroutine only)

	// A behaviour change: SetBehaviour posts the table, the loop takes it
	// (into pending, shard goroutine only, until a response set is free)
	// and reports the generation it answers by.
	posted        atomic.Pointer[postedTable]
	pending       *postedTable
	zc            *zcBuffers // the answers registered for zero-copy sends (SendZC); nil: none
	applied       atomic.Uint64
	postedMu      sync.Mutex // orders SetBehaviour callers; never on the request path
	postGen       uint64
	acceptStopped chan struct{}
	done          chan struct{}

	// wakeFD is an eventfd a read is always armed on, so a control change
	// wakes a shard blocked in io_uring_enter; wakeBuf receives the reads.
	wakeFD     int
	wakeBuf    [8]byte
	wakeArmed  bool
	wakeMu     sync.Mutex // orders wake-ups against closing wakeFD; never on the request path
	wakeClosed bool
}

// publishEvery is how often, at most, the private counters are copied to
// the published ones: the published counters lag the shard by up to this.
// Copying per batch instead cost 1.75% of the CPU at ~90k batches/s.
const publishEvery = int64(time.Millisecond)

// Start creates the shard's thread and ring and starts serving. It returns
// once the ring is ready, or with the reason it could not be made.
func Start(cfg Config) (*Shard, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	t, err := newTable(cfg.behaviour())
	if err != nil {
		return nil, err
	}
	var pipes *splicePipes
	if cfg.SpliceMin > 0 {
		if pipes, err = newSplicePipes(splicePipeCount); err != nil {
			return nil, fmt.Errorf("shard %d: %w", cfg.ID, err)
		}
		if err = t.spliceBodies(cfg.SpliceMin); err != nil {
			pipes.close()
			return nil, fmt.Errorf("shard %d: %w", cfg.ID, err)
		}
	}
	var pool *bufPool
	if cfg.Recv.pooled() {
		if pool, err = newBufPool(cfg.poolSize(), cfg.RecvBuffer); err != nil {
			pipes.close()
			t.closeFile()
			return nil, fmt.Errorf("shard %d: %w", cfg.ID, err)
		}
	}
	s := &Shard{
		done:          make(chan struct{}),
		acceptStopped: make(chan struct{}),
		sharedPoller:  cfg.SQPoll && cfg.CPU >= 0 && cfg.PollerCPU == cfg.CPU,
	}
	s.e.init(cfg, t, pool)
	s.e.pipes = pipes
	if t.bodyFD >= 0 {
		s.e.files = append(s.e.files, bodyFile{fd: t.bodyFD})
	}
	if s.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		pool.close()
		s.e.closeSplice()
		return nil, fmt.Errorf("shard %d: %w", cfg.ID, os.NewSyscallError("eventfd", err))
	}
	ready := make(chan error, 1)
	go s.run(ready)
	if err := <-ready; err != nil {
		<-s.done
		s.releaseWake()
		return nil, err
	}
	return s, nil
}

// run is the shard goroutine: lock the thread first, then pin it (pinning
// an unlocked goroutine pins whichever thread it happens to run on), then
// make the ring on that thread, then loop. It never unlocks: a goroutine
// that exits locked takes its thread with it, so a thread pinned to one CPU
// never returns to the runtime's pool to run other goroutines there.
func (s *Shard) run(ready chan<- error) {
	defer close(s.done)
	cfg := &s.e.cfg
	fail := func(err error) {
		s.e.pool.close()
		s.e.closeSplice()
		ready <- fmt.Errorf("shard %d: %w", cfg.ID, err)
	}
	runtime.LockOSThread()
	s.tid.Store(int64(unix.Gettid()))
	if cfg.CPU >= 0 {
		if err := affinity.PinThread(cfg.CPU); err != nil {
			fail(err)
			return
		}
	}
	ringEntries := uint32(min(max(cfg.MaxConns, 1024), 32768))
	r, err := newRing(ringOptions{
		entries:   ringEntries,
		cqEntries: ringEntries * 4,
		sqPoll:    cfg.SQPoll,
		pollerCPU: cfg.PollerCPU,
		sqIdleMs:  uint32((cfg.SQIdle + time.Millisecond - 1) / time.Millisecond),
	})
	if err != nil {
		fail(err)
		return
	}
	ops := requiredOps
	if cfg.SendZC {
		ops = append(ops[:len(ops):len(ops)], probeOp{giouring.OpSendZC, "IORING_OP_SEND_ZC", "6.0"})
	}
	if err := r.probeOps(ops); err != nil {
		r.close()
		fail(err)
		return
	}
	if cfg.SendZC {
		if z, err := r.newZCBuffers(); err != nil {
			cfg.Logger.Warn("zero-copy sends pin their pages on every send: the ring refused a buffer table", "shard", cfg.ID, "err", err)
		} else {
			s.zc = z
		}
	}
	if cfg.FixedFiles {
		if err := r.registerFileTable(fileTableSize(cfg)); err != nil {
			cfg.Logger.Warn("connections get descriptors: the ring refused a file table", "shard", cfg.ID, "slots", fileTableSize(cfg), "err", err)
		} else {
			s.e.fixedFiles = true
		}
	}
	if s.e.pipes != nil {
		if err := r.probeOps(spliceOps); err != nil {
			cfg.Logger.Warn("answers are not spliced: copied into the kernel on every send instead", "shard", cfg.ID, "err", err)
			s.e.pipes.close()
			s.e.pipes = nil
		} else {
			r.boundWorkers(cfg.CPU, splicePipeCount)
		}
	}
	if s.e.pool != nil {
		if err := s.e.pool.register(r); err != nil {
			r.close()
			fail(err)
			return
		}
	}
	s.r = r
	s.syncZC()
	s.epoch = time.Now()
	s.e.armAccept()
	s.armWake()
	s.flush()
	s.submit()
	ready <- nil
	s.loop()
	s.teardown()
}

// Stop stops serving and returns once the shard's connections are closed
// and its ring is gone. Connections still open are cut.
func (s *Shard) Stop() {
	s.setCtl(ctlStop)
	<-s.done
	s.releaseWake()
}

// Drain makes the shard answer every further request with
// "Connection: close", so keep-alive clients leave after their next answer.
// Connections that stay silent are left to the caller's deadline (Stop).
func (s *Shard) Drain() { s.setCtl(ctlDrain) }

// NotReady makes the shard's health answers say it is going (the gRPC
// health service's NOT_SERVING), as /readyz does, while it goes on
// serving: the drain's delay, for load balancers to notice. Drain implies
// it.
func (s *Shard) NotReady() { s.setCtl(ctlNotReady) }

// StopAccepting cancels the shard's accept. Connections the kernel has
// queued but the shard has not taken stay queued; the caller takes care
// that none are (see listener.Group.Quiesce). Once AcceptStopped is closed
// the ring holds no reference to the listening socket, so closing it
// really closes it.
func (s *Shard) StopAccepting() { s.setCtl(ctlStopAccept) }

// AcceptStopped is closed when the shard's accept is gone after
// StopAccepting (or the shard stopped).
func (s *Shard) AcceptStopped() <-chan struct{} { return s.acceptStopped }

// Done is closed when the shard has stopped.
func (s *Shard) Done() <-chan struct{} { return s.done }

// postedTable is a behaviour handed to the shard, with its generation.
type postedTable struct {
	t   *table
	gen uint64
}

// Prepared is a behaviour whose answers are built, ready for one shard's
// SetBehaviour (each shard takes a Prepared of its own).
type Prepared struct{ t *table }

// Prepare builds b's answers, or says why b cannot be served.
func Prepare(b Behaviour) (*Prepared, error) {
	t, err := newTable(b)
	if err != nil {
		return nil, err
	}
	return &Prepared{t}, nil
}

// SetBehaviour makes the shard frame every further request by p; answers
// already framed are sent as they were framed, so none is lost or mixes
// two behaviours. It returns once the shard answers by p (at its next
// loop turn, or when a response set is free), or with an error if it has
// not within wait (it still will). A Prepared is used once.
func (s *Shard) SetBehaviour(p *Prepared, wait time.Duration) error {
	s.postedMu.Lock()
	t := p.t
	if t == nil {
		s.postedMu.Unlock()
		return fmt.Errorf("shard %d: a Prepared behaviour is used once", s.e.cfg.ID)
	}
	p.t = nil // its answers become one shard's response set
	if err := t.spliceBodies(s.e.cfg.SpliceMin); err != nil {
		s.postedMu.Unlock()
		return fmt.Errorf("shard %d: %w", s.e.cfg.ID, err)
	}
	s.postGen++
	gen := s.postGen
	if old := s.posted.Swap(&postedTable{t: t, gen: gen}); old != nil {
		old.t.closeFile() // replaced before the loop took it
	}
	s.postedMu.Unlock()
	s.setCtl(ctlBehaviour)
	deadline := time.Now().Add(wait)
	for s.applied.Load() < gen {
		select {
		case <-s.done:
			return fmt.Errorf("shard %d: stopped before taking up the behaviour", s.e.cfg.ID)
		case <-time.After(200 * time.Microsecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shard %d: behaviour not taken up within %v (every response set is still read by a send; it will be)", s.e.cfg.ID, wait)
		}
	}
	return nil
}

// takeBehaviour takes a posted behaviour (the loop, on ctlBehaviour) and
// tries to use it.
func (s *Shard) takeBehaviour() {
	s.ctl.And(^uint32(ctlBehaviour))
	if p := s.posted.Swap(nil); p != nil {
		if old := s.pending; old != nil && old.t.bodyFD >= 0 {
			s.e.push(action{kind: actCloseFile, fd: old.t.bodyFD, ud: packUD(opClose, 0, noSlot)})
		}
		s.pending = p
	}
	s.tryBehaviour()
}

// tryBehaviour uses the pending behaviour if a response set is free for it.
func (s *Shard) tryBehaviour() {
	if p := s.pending; p != nil && s.e.useTable(p.t) {
		s.syncZC()
		s.pending = nil
		s.applied.Store(p.gen)
		s.dirty = true
	}
}

// syncZC brings the registered answers in line with the response sets
// after they changed (a new set, a new behaviour, a dropped set).
func (s *Shard) syncZC() {
	if s.zc != nil {
		s.e.local[cZCRegisterFailed] += uint64(s.zc.sync(s.r, &s.e.sets))
	}
}

// Stats returns a snapshot of the shard's counters; safe from any goroutine.
func (s *Shard) Stats() Stats {
	st := Stats{Shard: s.e.cfg.ID, CPU: s.e.cfg.CPU, TID: int(s.tid.Load())}
	s.pub.snapshot(&st)
	return st
}

// publish copies the private counters to the ones other threads read.
func (s *Shard) publish() {
	e := &s.e
	s.dirty = false
	s.lastPublish = e.now
	e.syncH2Counters()
	n := &s.r.enters
	e.local[cEnterWakeup], e.local[cEnterWait] = n.wakeup, n.wait
	e.local[cEnterOverflow], e.local[cEnterSQFull] = n.overflow, n.sqFull
	e.local[cEnterErrors] = n.errors
	e.local[cCQOverflow] = uint64(s.r.overflowed())
	e.local[cActionsGrown] = e.acts.grown
	for i := range e.local {
		s.pub.counters[i].Store(e.local[i])
	}
	for i := range numDelayBuckets {
		s.pub.delays[i].Store(e.delays.n[i])
	}
	s.pub.delays[numDelayBuckets].Store(uint64(e.delays.sum))
	for i := range numLateBuckets {
		s.pub.late[i].Store(e.late.n[i])
	}
	s.pub.late[numLateBuckets].Store(uint64(e.late.sum))
	for _, code := range e.statuses {
		s.pub.responses[code].Store(e.byStatus[code])
	}
	s.pub.active.Store(e.active)
}
