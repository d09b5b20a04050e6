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
	"zerosys/shard/httpwire"
)

// Mode is how connections are treated after an answer.
type Mode uint8

const (
	// ModeKeepAlive keeps each connection for further (pipelined) requests
	// until the client closes it or asks "Connection: close".
	ModeKeepAlive Mode = iota
	// ModeClose answers one request per connection, then closes it.
	ModeClose
)

// Config is one shard's configuration. Fields left zero take the documented
// defaults; ListenFD is required.
type Config struct {
	ID       int // shard index, for stats and logs
	ListenFD int // listening socket (SO_REUSEPORT, one per shard)
	CPU      int // CPU to pin the shard thread to; -1 leaves it unpinned

	SQPoll    bool          // use a kernel SQPOLL poller; without it the ring is SINGLE_ISSUER|DEFER_TASKRUN and the loop waits for completions
	PollerCPU int           // with SQPoll: the poller's CPU (SQ_AFF)
	SQIdle    time.Duration // with SQPoll: how long the poller spins without work before it sleeps; default 100ms
	// Spin, with SQPoll, busy-polls the completion queue forever. Without
	// it (adaptive), the shard busy-polls while completions keep coming
	// and, after SpinWindow without any, blocks in io_uring_enter until one
	// arrives: one syscall per idle period, none per request under load.
	Spin       bool
	SpinWindow time.Duration // adaptive: how long to spin without completions before blocking; default 10ms

	Mode     Mode
	Response Response
	Limits   httpwire.Limits

	MaxConns   int // connection slots; default 4096
	RecvBuffer int // bytes of a receive buffer; default 4096
	// RecvMultishot receives with one multishot recv per connection into a
	// shared pool of provided buffers (a buffer ring) instead of a recv per
	// read into a buffer per slot.
	RecvMultishot bool
	MaxPipeline   int           // answers queued per connection before reading pauses; default 1024
	HeaderTimeout time.Duration // a request's head must arrive within this; default 30s
	IdleTimeout   time.Duration // keep-alive connection without a request; default 75s
	SendTimeout   time.Duration // one send may wait this long for the client to read; default 60s
	LingerTimeout time.Duration // reading to EOF after the last answer; default 5s

	// SendZC sends answers of at least zcMin bytes with IORING_OP_SEND_ZC.
	SendZC bool

	bufCount int // with RecvMultishot: buffers in the pool (a power of two); 0 sizes it from MaxConns. For tests.
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.MaxConns, 4096)
	def(&c.RecvBuffer, 4096)
	def(&c.MaxPipeline, 1024)
	defd(&c.SQIdle, 100*time.Millisecond)
	defd(&c.SpinWindow, 10*time.Millisecond)
	defd(&c.HeaderTimeout, 30*time.Second)
	defd(&c.IdleTimeout, 75*time.Second)
	defd(&c.SendTimeout, 60*time.Second)
	defd(&c.LingerTimeout, 5*time.Second)
}

// sweepEvery is the least time between two deadline sweeps: timeouts are
// coarse by this much. A sweep walks the table; it costs no syscall.
const sweepEvery = int64(100 * time.Millisecond)

// publishEvery is how often, at most, the private counters are copied to
// the published ones: the published counters lag the shard by up to this.
// Copying per batch instead cost 1.75% of the CPU at ~90k batches/s.
const publishEvery = int64(time.Millisecond)

// cqeBatch is the most completions handled before SQEs are published.
const cqeBatch = 256

// zcMin is the smallest send that goes zero-copy with SendZC: below it,
// the second completion costs more than the copy it saves.
const zcMin = 16 << 10

// orphanSlot marks a close of a connection that got no slot.
const orphanSlot = ^uint32(0)

// Shard serves one listening socket from one ring on one locked, pinned
// thread. See the package documentation for its rules.
type Shard struct {
	cfg Config
	r   *ring

	conns []conn
	free  []uint32 // stack of free slot indexes
	bufs  []byte   // RecvBuffer bytes per slot (single-shot recv)

	// With RecvMultishot: the buffer pool, and connections waiting for a
	// buffer to arm their recv (user_data of a recv: slot and generation).
	br         *bufRing
	bufWaiters []uint64

	// Two sets of prepared responses: sends go out from sets[cur], and the
	// Date header is rewritten, once a second, only in the set no send in
	// flight is reading, which then becomes current. A send never sees a
	// half-written date.
	sets     [2]*responses
	cur      uint8
	sending  [2]int // sends in flight from each set
	nextDate int64  // monotonic ns of the next Date refresh
	dateBuf  [dateLen]byte

	acceptArmed      bool
	acceptCancelling bool
	acceptRetryAt    int64  // monotonic ns; accept is re-armed no earlier (EMFILE backoff)
	reserve          int    // free slots kept back for accepts already in flight
	maxPending       uint32 // Config.MaxPipeline: answers queued per connection before reading pauses

	epoch     time.Time
	now       int64 // monotonic ns since epoch, read once per batch
	nextSweep int64
	inflight  int // ops in the ring (multishot accept counts once)

	local       [numCounters]uint64
	byResp      statusCounters
	active      int64
	dirty       bool
	lastPublish int64 // monotonic ns

	lastBusy int64 // monotonic ns of the last batch of completions (adaptive idle)
	// sharedPoller: the SQPOLL poller runs on the shard's own CPU, so the
	// shard never spins: every moment it spins is taken from the poller
	// that must submit its work (measured: a 10 ms window gave 8k req/s).
	sharedPoller bool
	seen         uint32 // the control bits the loop has acted on

	pub           published
	statusOf      *[numVariants]int
	tid           atomic.Int64
	ctl           atomic.Uint32 // ctlDrain | ctlStopAccept | ctlStop, set by other goroutines
	acceptStopped chan struct{}
	done          chan struct{}

	// wakeFD is an eventfd a read is always armed on, so a control change
	// wakes a shard blocked in io_uring_enter; wakeBuf receives the reads.
	wakeFD     int
	wakeBuf    [8]byte
	wakeMu     sync.Mutex // orders wake-ups against closing wakeFD; never on the request path
	wakeClosed bool
}

// Control bits other goroutines set and the loop reads once per iteration.
const (
	ctlDrain      = 1 << iota // answer every further request with Connection: close
	ctlStopAccept             // cancel accept; the listener may be closed once AcceptStopped is closed
	ctlStop                   // leave the loop, cutting what is left
)

// Start creates the shard's thread and ring and starts serving. It returns
// once the ring is ready, or with the reason it could not be made.
func Start(cfg Config) (*Shard, error) {
	cfg.setDefaults()
	resp, err := buildResponses(cfg.Response)
	if err != nil {
		return nil, err
	}
	resp2, _ := buildResponses(cfg.Response)
	s := &Shard{
		cfg:        cfg,
		conns:      make([]conn, cfg.MaxConns),
		free:       make([]uint32, 0, cfg.MaxConns),
		sets:       [2]*responses{resp, resp2},
		reserve:    cfg.MaxConns / 32,
		maxPending: uint32(cfg.MaxPipeline),
		statusOf:   resp.statusOf(),
		done:       make(chan struct{}),

		acceptStopped: make(chan struct{}),
		sharedPoller:  cfg.SQPoll && cfg.CPU >= 0 && cfg.PollerCPU == cfg.CPU,
	}
	if s.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("shard %d: %w", cfg.ID, os.NewSyscallError("eventfd", err))
	}
	if !cfg.RecvMultishot {
		s.bufs = make([]byte, cfg.MaxConns*cfg.RecvBuffer)
	} else {
		s.bufWaiters = make([]uint64, 0, cfg.MaxConns)
	}
	for i := cfg.MaxConns - 1; i >= 0; i-- {
		s.conns[i].fd = -1
		s.free = append(s.free, uint32(i))
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
	runtime.LockOSThread()
	s.tid.Store(int64(unix.Gettid()))
	if s.cfg.CPU >= 0 {
		if err := affinity.PinThread(s.cfg.CPU); err != nil {
			ready <- fmt.Errorf("shard %d: %w", s.cfg.ID, err)
			return
		}
	}
	ringEntries := uint32(min(max(s.cfg.MaxConns, 1024), 32768))
	r, err := newRing(ringOptions{
		entries:   ringEntries,
		cqEntries: ringEntries * 4,
		sqPoll:    s.cfg.SQPoll,
		pollerCPU: s.cfg.PollerCPU,
		sqIdleMs:  uint32((s.cfg.SQIdle + time.Millisecond - 1) / time.Millisecond),
	})
	if err != nil {
		ready <- fmt.Errorf("shard %d: %w", s.cfg.ID, err)
		return
	}
	defer r.close()
	ops := requiredOps
	if s.cfg.SendZC {
		ops = append(ops[:len(ops):len(ops)], probeOp{giouring.OpSendZC, "IORING_OP_SEND_ZC", "6.0"})
	}
	if err := r.probeOps(ops); err != nil {
		ready <- fmt.Errorf("shard %d: %w", s.cfg.ID, err)
		return
	}
	if s.cfg.RecvMultishot {
		// A pool sized to the table, at most 8192 buffers: memory follows
		// traffic, not connection count.
		n := 64
		for n < min(s.cfg.MaxConns, 8192) {
			n *= 2
		}
		if s.cfg.bufCount > 0 {
			n = s.cfg.bufCount
		}
		if s.br, err = newBufRing(r, n, s.cfg.RecvBuffer); err != nil {
			ready <- fmt.Errorf("shard %d: %w", s.cfg.ID, err)
			return
		}
	}
	s.r = r
	s.epoch = time.Now()
	s.armAccept()
	s.armWake()
	r.submit()
	ready <- nil
	s.loop()
	s.teardown()
	r.close()    // idempotent; the defer above covers the early returns
	s.br.close() // after the ring: its memory is the kernel's until then
}

// Stop stops serving and returns once the shard's connections are closed
// and its ring is gone. Connections still open are cut.
func (s *Shard) Stop() {
	s.setCtl(ctlStop)
	<-s.done
	s.releaseWake()
}

func (s *Shard) releaseWake() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if !s.wakeClosed {
		s.wakeClosed = true
		_ = unix.Close(s.wakeFD)
	}
}

// Drain makes the shard answer every further request with
// "Connection: close", so keep-alive clients leave after their next answer.
// Connections that stay silent are left to the caller's deadline (Stop).
func (s *Shard) Drain() { s.setCtl(ctlDrain) }

// StopAccepting cancels the shard's accept. Connections the kernel has
// queued but the shard has not taken stay queued; the caller takes care
// that none are (see listener.Group.Quiesce). Once AcceptStopped is closed
// the ring holds no reference to the listening socket, so closing it
// really closes it.
func (s *Shard) StopAccepting() { s.setCtl(ctlStopAccept) }

// AcceptStopped is closed when the shard's accept is gone after
// StopAccepting (or the shard stopped).
func (s *Shard) AcceptStopped() <-chan struct{} { return s.acceptStopped }

func (s *Shard) setCtl(bit uint32) {
	for {
		old := s.ctl.Load()
		if old&bit != 0 {
			return
		}
		if s.ctl.CompareAndSwap(old, old|bit) {
			break
		}
	}
	// Wake the loop if it is blocked in io_uring_enter. EAGAIN (the counter
	// is full) means a wake-up is pending anyway. After Stop the eventfd
	// is closed and its number may belong to another file.
	s.wakeMu.Lock()
	if !s.wakeClosed {
		one := [8]byte{1}
		_, _ = unix.Write(s.wakeFD, one[:])
	}
	s.wakeMu.Unlock()
}

// armWake keeps a read armed on the control eventfd.
func (s *Shard) armWake() {
	s.r.prepRead(s.wakeFD, s.wakeBuf[:], packUD(opWake, 0, 0))
	s.inflight++
}

// Done is closed when the shard has stopped.
func (s *Shard) Done() <-chan struct{} { return s.done }

// Stats returns a snapshot of the shard's counters; safe from any goroutine.
func (s *Shard) Stats() Stats {
	st := Stats{Shard: s.cfg.ID, CPU: s.cfg.CPU, TID: int(s.tid.Load())}
	s.pub.snapshot(&st, s.statusOf)
	return st
}

// loop is the hot loop: reap completions in batches, dispatch each on its
// user_data, publish the SQEs they queued. With SQPOLL, publishing is a
// memory store and the loop never enters the kernel while the poller is
// awake; without, the loop enters once per batch to submit and wait.
func (s *Shard) loop() {
	r := s.r
	for {
		if ctl := s.ctl.Load(); ctl != s.seen {
			if ctl&ctlStop != 0 {
				return
			}
			s.control(ctl)
		}
		n := r.ready()
		if n == 0 {
			s.idle()
			continue
		}
		s.now = int64(time.Since(s.epoch))
		s.lastBusy = s.now
		if s.now >= s.nextDate {
			s.refreshDate() // before answering: the shard may have slept
		}
		n = min(n, cqeBatch)
		for i := range n {
			e := r.cqeAt(i)
			s.dispatch(e.UserData, e.Res, e.Flags)
		}
		r.advance(n)
		if len(s.bufWaiters) > 0 {
			s.wakeBufWaiters()
		}
		s.rearmAccept()
		r.submit()
		s.local[cLoopsBusy]++
		s.dirty = true
		if s.now >= s.nextSweep {
			s.sweep()
		}
		if s.now-s.lastPublish >= publishEvery {
			s.publish()
		}
	}
}

// control acts on newly set control bits.
func (s *Shard) control(ctl uint32) {
	s.seen = ctl
	if ctl&ctlStopAccept != 0 && s.acceptArmed && !s.acceptCancelling {
		s.acceptCancelling = true
		s.r.prepCancel(packUD(opAccept, 0, 0), packUD(opCancel, 0, 0))
		s.inflight++
		s.r.submit()
	}
	s.checkAcceptStopped()
}

// checkAcceptStopped reports, once, that accept is gone for good.
func (s *Shard) checkAcceptStopped() {
	if s.seen&ctlStopAccept != 0 && !s.acceptArmed {
		select {
		case <-s.acceptStopped:
		default:
			// Connections taken by the last accepts must be counted
			// before anyone waits for the active count to reach zero.
			s.publish()
			close(s.acceptStopped)
		}
	}
}

// idle runs when no completion is ready. A spinning shard checks its timers
// and peeks again; a waiting shard blocks in io_uring_enter until a
// completion arrives or the next sweep is due. An adaptive SQPOLL shard
// spins for SpinWindow after its last completion, then waits.
func (s *Shard) idle() {
	s.local[cLoopsIdle]++
	s.now = int64(time.Since(s.epoch))
	if s.dirty && s.now-s.lastPublish >= publishEvery {
		s.publish()
	}
	if s.now >= s.nextSweep {
		s.sweep()
		s.rearmAccept()
		s.r.submit()
	}
	if s.now >= s.nextDate {
		s.refreshDate()
	}
	if s.cfg.SQPoll && !s.sharedPoller && (s.cfg.Spin || s.now-s.lastBusy < int64(s.cfg.SpinWindow)) {
		return
	}
	timeout := s.nextSweep - s.now
	if s.dirty {
		// Come back in time to publish what the last batches counted.
		timeout = min(timeout, s.lastPublish+publishEvery-s.now)
	}
	// The wait's own count is published with the next activity.
	s.r.wait(max(timeout, int64(10*time.Microsecond)))
}

// dispatch routes one completion.
func (s *Shard) dispatch(ud uint64, res int32, flags uint32) {
	o, gen, slot := unpackUD(ud)
	switch o {
	case opAccept:
		s.onAccept(res, flags)
		return
	case opCancel:
		s.inflight--
		return
	case opWake:
		s.inflight--
		if s.ctl.Load()&ctlStop == 0 {
			s.armWake()
		}
		return
	}
	more := flags&cqeFMore != 0 // a multishot recv stays armed; a zero-copy send will notify
	if !more {
		s.inflight--
	}
	if slot == orphanSlot {
		return
	}
	zcSet := uint8(0)
	if o == opSendZC {
		zcSet, slot = uint8(slot>>31), slot&^zcSetBit
		if flags&cqeFNotif != 0 {
			// The kernel is done with the buffer, whether or not the
			// connection still exists.
			s.sending[zcSet]--
		}
	}
	c := &s.conns[slot]
	if c.gen != gen&genMask || c.fd < 0 {
		s.local[cStale]++
		if flags&cqeFBuffer != 0 {
			s.br.take(uint16(flags>>cqeBufferShift), res)
			s.br.put(uint16(flags >> cqeBufferShift))
		}
		return
	}
	// The connection waits for an operation's last completion, except a
	// zero-copy send's notification: it comes only once the peer has
	// acknowledged the data, which a client that never reads never does.
	// The notification releases the response set (above), not the slot.
	if o == opSendZC {
		if flags&cqeFNotif == 0 {
			c.inflight--
		}
	} else if !more {
		c.inflight--
	}
	switch o {
	case opRecv:
		s.onRecv(c, slot, res, flags)
	case opSend:
		s.onSend(c, res, true)
	case opSendZC:
		if flags&cqeFNotif == 0 {
			s.onSend(c, res, !more) // without a notification to come, release the set now
		}
	case opShutdown:
		// Nothing to do: its effect shows in the recv and send it ends.
	case opClose:
		s.release(c, slot)
		return
	}
	s.step(c, slot)
}

func (s *Shard) armAccept() {
	s.r.prepMultishotAccept(s.cfg.ListenFD, packUD(opAccept, 0, 0))
	s.inflight++
	s.acceptArmed = true
}

// rearmAccept arms accept again when it ended (error, backoff, or a full
// table) and there is room.
func (s *Shard) rearmAccept() {
	if s.acceptArmed || s.seen&ctlStopAccept != 0 || s.now < s.acceptRetryAt || len(s.free) <= s.reserve {
		return
	}
	s.armAccept()
}

func (s *Shard) onAccept(res int32, flags uint32) {
	if flags&cqeFMore == 0 {
		s.acceptArmed = false
		s.acceptCancelling = false
		s.inflight--
		s.checkAcceptStopped()
	}
	if res < 0 {
		switch unix.Errno(-res) {
		case unix.ECANCELED:
			// We paused accepting; rearmAccept resumes when slots free.
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// Out of descriptors or memory: retrying at once would spin.
			// Connections wait in the kernel's backlog meanwhile; the
			// sweep at the retry time re-arms accept.
			s.local[cAcceptErrors]++
			s.acceptRetryAt = s.now + int64(100*time.Millisecond)
			s.nextSweep = min(s.nextSweep, s.acceptRetryAt)
		default:
			// ECONNABORTED and the like: the peer gave up; carry on.
			s.local[cAcceptErrors]++
		}
		return
	}
	fd := res
	if len(s.free) == 0 {
		s.local[cAcceptDropped]++
		s.r.prepClose(fd, packUD(opClose, 0, orphanSlot))
		s.inflight++
		return
	}
	slot := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	c := &s.conns[slot]
	gen := c.gen
	*c = conn{fd: fd, gen: gen, reqStart: s.now, heldHead: -1, heldTail: -1}
	c.parser.Reset(s.cfg.Limits)
	s.local[cAccepted]++
	s.active++
	if len(s.free) <= s.reserve && s.acceptArmed && !s.acceptCancelling {
		// The table is (nearly) full: stop accepting so new connections
		// wait in the kernel's backlog instead of being dropped. The
		// reserve absorbs accepts completed before the cancel lands.
		s.local[cAcceptPaused]++
		s.acceptCancelling = true
		s.r.prepCancel(packUD(opAccept, 0, 0), packUD(opCancel, 0, 0))
		s.inflight++
	}
	s.step(c, slot)
}

func (s *Shard) buf(slot uint32) []byte {
	n := uint32(s.cfg.RecvBuffer)
	return s.bufs[slot*n : (slot+1)*n : (slot+1)*n]
}

func (s *Shard) onRecv(c *conn, slot uint32, res int32, flags uint32) {
	paused := false
	if flags&cqeFMore == 0 {
		c.recvArmed = false
		paused, c.recvCancel = c.recvCancel, false
	}
	if flags&cqeFBuffer != 0 {
		bid := uint16(flags >> cqeBufferShift)
		s.br.take(bid, res)
		s.local[cBytesIn] += uint64(res)
		if c.closing || c.aborting {
			s.br.put(bid) // lingering: discard
			return
		}
		c.hold(bid, s.br)
		s.parse(c, slot)
		return
	}
	switch {
	case res > 0:
		s.local[cBytesIn] += uint64(res)
		if c.closing || c.aborting {
			return // lingering: discard
		}
		c.parseOff, c.parseEnd = 0, uint32(res)
		s.parse(c, slot)
	case res == 0:
		c.peerEOF = true
		c.closing = true
	case unix.Errno(-res) == unix.ECANCELED:
		if !paused {
			c.closing = true
		}
	case unix.Errno(-res) == unix.ENOBUFS:
		// The buffer pool ran dry: step re-arms once a buffer returns.
		s.local[cRecvNoBufs]++
	default: // ECONNRESET, ETIMEDOUT, ...
		s.local[cResets]++
		s.abort(c)
	}
}

// parse frames received bytes into queued answers until they run out, the
// answer queue is full, or the connection is to close.
func (s *Shard) parse(c *conn, slot uint32) {
	if s.br == nil {
		c.parseOff += uint32(s.frame(c, s.buf(slot)[c.parseOff:c.parseEnd], false))
		return
	}
	for c.heldHead >= 0 && !c.closing && !c.full(s.maxPending) {
		bid := uint16(c.heldHead)
		b := s.br.buf(bid)
		more := s.br.next[bid] >= 0
		c.heldOff += uint32(s.frame(c, b[c.heldOff:], more))
		if int(c.heldOff) < len(b) {
			break // the queue is full: keep the rest
		}
		c.heldHead = s.br.next[bid]
		if c.heldHead < 0 {
			c.heldTail = -1
		}
		c.heldOff = 0
		s.br.put(bid)
	}
	if c.closing {
		s.dropHeld(c)
	}
}

// frame feeds b to the connection's parser and queues the answers; it
// returns how many bytes it used (all of them when the connection is to
// close). more says further input is already buffered after b.
func (s *Shard) frame(c *conn, b []byte, more bool) int {
	total := len(b)
	for len(b) > 0 && !c.full(s.maxPending) {
		n, r := c.parser.Feed(b)
		b = b[n:]
		switch r {
		case httpwire.NeedMore:
			if !c.midRequest {
				c.midRequest = true
				if c.answered {
					c.reqStart = s.now
				}
			}
		case httpwire.Continue:
			c.enqueue(vContinue)
		case httpwire.Request:
			s.local[cRequests]++
			c.midRequest = false
			c.answered = true
			req := c.parser.Request()
			closeAfter := s.cfg.Mode == ModeClose || !req.KeepAlive || s.seen&ctlDrain != 0
			c.enqueue(answerVariant(req, closeAfter))
			if closeAfter {
				// Linger when input may still come: bytes already here,
				// or a client that expected to keep the connection
				// (close mode, drain) and may be sending its next
				// request right now.
				s.finish(c, len(b) > 0 || more || req.KeepAlive)
				return total
			}
		case httpwire.Error:
			s.local[cRejected]++
			c.enqueue(errorVariant(c.parser.Status()))
			// The rest of the request may still be arriving: read it
			// away so our answer is not destroyed by a reset.
			s.finish(c, true)
			return total
		}
	}
	return total - len(b)
}

// finish marks the connection to close after its queued answers; linger
// means input may still arrive, so close by half-close and drain.
func (s *Shard) finish(c *conn, linger bool) {
	c.closing = true
	c.linger = c.linger || linger
	c.parseOff = c.parseEnd
}

// dropHeld returns every buffer the connection holds to the pool.
func (s *Shard) dropHeld(c *conn) {
	for c.heldHead >= 0 {
		bid := uint16(c.heldHead)
		c.heldHead = s.br.next[bid]
		s.br.put(bid)
	}
	c.heldTail, c.heldOff = -1, 0
}

// wakeBufWaiters arms the recvs that found the buffer pool dry, as far as
// buffers have come back.
func (s *Shard) wakeBufWaiters() {
	for len(s.bufWaiters) > 0 && s.br.out < s.br.n {
		ud := s.bufWaiters[len(s.bufWaiters)-1]
		s.bufWaiters = s.bufWaiters[:len(s.bufWaiters)-1]
		_, gen, slot := unpackUD(ud)
		c := &s.conns[slot]
		if c.gen == gen && c.fd >= 0 {
			c.waitBuf = false
			s.step(c, slot)
		}
	}
}

// abort gives up on a connection: nothing more is sent.
func (s *Shard) abort(c *conn) {
	c.aborting = true
	c.closing = true
	if !c.sending {
		c.dropQueue()
	}
}

// onSend handles a send's result; releaseSet is false for a zero-copy send
// whose notification will release its set of responses.
func (s *Shard) onSend(c *conn, res int32, releaseSet bool) {
	c.sending = false
	if releaseSet {
		s.sending[c.sendSet]--
	}
	if res < 0 {
		if unix.Errno(-res) != unix.ECANCELED {
			s.local[cResets]++
		}
		s.abort(c)
		c.dropQueue()
		return
	}
	s.local[cBytesOut] += uint64(res)
	c.sendOff += uint32(res)
	if c.sendOff < c.sendEnd {
		return // short send: step sends the rest
	}
	v := c.head().v
	s.byResp[v] += uint64(c.sendK)
	c.popSent(c.sendK)
	c.sendOff, c.sendEnd, c.sendK = 0, 0, 0
}

// step queues whatever the connection needs next: frame held-back input,
// send answers, read more, or close. It is called after every completion
// that concerns the connection.
func (s *Shard) step(c *conn, slot uint32) {
	if c.closeQueued {
		return
	}
	ud := func(o op) uint64 { return packUD(o, c.gen, slot) }
	full := c.full(s.maxPending)
	if !c.closing && c.hasInput() && !full {
		s.parse(c, slot)
		full = c.full(s.maxPending)
	}
	if !c.aborting && !c.sending && c.qlen > 0 {
		s.send(c, slot)
		if c.closeQueued {
			return
		}
	}
	if c.aborting {
		switch {
		case c.inflight == 0:
			s.queueClose(c, slot)
		case !c.shutAll:
			// Ends the recv or send still in flight, also after a
			// linger's SHUT_WR. Should one outlive it, the sweep
			// cancels it by its user_data (dlAbort).
			s.r.prepShutdown(c.fd, unix.SHUT_RDWR, 0, ud(opShutdown))
			c.shutAll = true
			c.inflight++
			s.inflight++
			c.dlKind, c.deadline = dlAbort, s.now+int64(time.Second)
			s.nextSweep = min(s.nextSweep, c.deadline) // set outside a sweep
		}
		return
	}
	if !c.closing {
		switch {
		case !c.recvArmed && !c.hasInput() && !full:
			s.recv(c, slot)
		case full && c.recvArmed && s.br != nil && !c.recvCancel:
			// A multishot recv would keep taking buffers for a client
			// we have stopped reading: pause it.
			s.r.prepCancel(ud(opRecv), packUD(opCancel, 0, 0))
			s.inflight++
			c.recvCancel = true
		}
		s.setDeadline(c)
		return
	}
	if c.sending || c.qlen > 0 {
		s.setDeadline(c)
		return
	}
	// Closing, and every answer is out.
	switch {
	case c.linger && !c.peerEOF:
		if !c.lingering {
			// Half-close so the client sees our answer end, then read
			// until it closes: closing with unread input would make the
			// kernel reset the connection and destroy the answer.
			s.r.prepShutdown(c.fd, unix.SHUT_WR, 0, ud(opShutdown))
			c.lingering = true
			c.inflight++
			s.inflight++
			c.dlKind, c.deadline = dlLinger, s.now+int64(s.cfg.LingerTimeout)
		}
		if !c.recvArmed {
			s.recv(c, slot)
		}
	case c.inflight == 0:
		s.queueClose(c, slot)
	case c.recvArmed:
		// A multishot recv is still armed: closing would not end the
		// connection, and it is reading anyway, so close the safe way,
		// half-close and read to EOF.
		c.linger = true
		s.step(c, slot)
	}
}

func (s *Shard) recv(c *conn, slot uint32) {
	if s.br != nil {
		if s.br.out >= s.br.n {
			if !c.waitBuf {
				c.waitBuf = true
				s.bufWaiters = append(s.bufWaiters, packUD(opRecv, c.gen, slot))
			}
			return
		}
		s.r.prepRecvMultishot(c.fd, s.br.group, packUD(opRecv, c.gen, slot))
	} else {
		s.r.prepRecv(c.fd, s.buf(slot), packUD(opRecv, c.gen, slot))
	}
	c.recvArmed = true
	c.inflight++
	s.inflight++
}

// send queues the head run's next batch. When it is the last answer of a
// connection that closes without lingering, the close is linked to it with
// IOSQE_IO_HARDLINK: it runs even if the send fails, so no fd leaks.
func (s *Shard) send(c *conn, slot uint32) {
	h := c.head()
	if c.sendEnd == 0 {
		c.sendSet = s.cur
	}
	p := &s.sets[c.sendSet][h.v]
	s.sending[c.sendSet]++
	if c.sendEnd == 0 {
		c.sendK = min(h.count, uint32(p.k))
		c.sendEnd = c.sendK * uint32(len(p.one))
	}
	last := c.qlen == 1 && h.count == c.sendK
	link := last && c.closing && !c.recvArmed && c.inflight == 0 && (!c.linger || c.peerEOF)
	var flags uint8
	if link {
		flags = sqeIOHardlink
		s.r.reserve(2)
	}
	if b := p.many[c.sendOff:c.sendEnd]; s.cfg.SendZC && len(b) >= zcMin {
		s.r.prepSendZC(c.fd, b, flags, packUD(opSendZC, c.gen, slot|uint32(c.sendSet)<<31))
		c.sendZC = true
	} else {
		s.r.prepSend(c.fd, b, flags, packUD(opSend, c.gen, slot))
		c.sendZC = false
	}
	c.sending = true
	c.inflight++
	s.inflight++
	c.dlKind, c.deadline = dlSend, s.now+int64(s.cfg.SendTimeout)
	if link {
		s.queueClose(c, slot)
	}
}

// queueClose queues the close. Linked behind a send, the send keeps its
// deadline: a client that never reads must not hold the slot.
func (s *Shard) queueClose(c *conn, slot uint32) {
	s.r.prepClose(c.fd, packUD(opClose, c.gen, slot))
	c.closeQueued = true
	c.inflight++
	s.inflight++
	if !c.sending {
		c.dlKind, c.deadline = dlNone, 0
	}
}

// cancelOps cancels, by user_data, the recv and the send a connection has
// in flight. It touches no fd: a linked close may already have run.
func (s *Shard) cancelOps(c *conn, slot uint32) {
	if c.recvArmed {
		s.r.prepCancel(packUD(opRecv, c.gen, slot), packUD(opCancel, 0, 0))
		s.inflight++
	}
	if c.sending {
		target := packUD(opSend, c.gen, slot)
		if c.sendZC {
			target = packUD(opSendZC, c.gen, slot|uint32(c.sendSet)<<31)
		}
		s.r.prepCancel(target, packUD(opCancel, 0, 0))
		s.inflight++
	}
}

// setDeadline arms the timer for what the connection now waits for.
func (s *Shard) setDeadline(c *conn) {
	switch {
	case c.lingering:
	case c.sending:
	case c.midRequest || !c.answered && c.qlen == 0:
		// A new connection must send its first request within the header
		// timeout too, or a client that connects and waits holds a slot.
		c.dlKind, c.deadline = dlHeader, c.reqStart+int64(s.cfg.HeaderTimeout)
	case c.qlen == 0:
		c.dlKind, c.deadline = dlIdle, s.now+int64(s.cfg.IdleTimeout)
	}
}

// release returns a closed connection's slot to the free list. Its
// generation changes so late completions for it are recognised as stale.
func (s *Shard) release(c *conn, slot uint32) {
	if c.sending {
		// Its completion, if it ever comes, is stale from here on; a
		// zero-copy send's notification still releases its set.
		if !c.sendZC {
			s.sending[c.sendSet]--
		}
		c.sending = false
	}
	if s.br != nil {
		s.dropHeld(c)
	}
	c.fd = -1
	c.gen = (c.gen + 1) & genMask
	c.deadline = 0
	s.free = append(s.free, slot)
	s.local[cClosed]++
	s.active--
}

// sweep closes connections whose deadline passed and schedules the next
// sweep at the earliest deadline left. A deadline set after this sweep is
// at least minTimeout away, so scheduling no later than now+minTimeout
// misses none; an idle shard thus wakes every few seconds at most.
func (s *Shard) sweep() {
	next := s.now + s.minTimeout()
	for i := range s.conns {
		c := &s.conns[i]
		if c.fd < 0 || c.deadline == 0 {
			continue
		}
		if s.now < c.deadline {
			next = min(next, c.deadline)
			continue
		}
		c.deadline = 0
		if c.closeQueued || c.dlKind == dlAbort {
			// A send the close is linked behind, or an operation that
			// outlived an abort's shutdown: cancel it, and come back.
			if c.dlKind == dlSend {
				s.local[cTimeoutSend]++
			}
			s.cancelOps(c, uint32(i))
			c.dlKind, c.deadline = dlAbort, s.now+int64(time.Second)
			next = min(next, c.deadline)
			continue
		}
		switch c.dlKind {
		case dlHeader:
			s.local[cTimeoutHeader]++
			if !c.closing && !c.sending && c.qlen == 0 {
				// Say why, as HAProxy does, then close the usual way.
				c.enqueue(v408)
				s.finish(c, true)
			} else {
				s.abort(c)
			}
		case dlIdle:
			s.local[cTimeoutIdle]++
			s.abort(c)
		case dlSend:
			s.local[cTimeoutSend]++
			s.abort(c)
		case dlLinger:
			s.local[cTimeoutLinger]++
			s.abort(c)
		}
		s.step(c, uint32(i))
		if c.deadline != 0 {
			next = min(next, c.deadline)
		}
	}
	s.nextSweep = max(next, s.now+sweepEvery)
}

// refreshDate writes the current time into the idle set of responses and
// makes it current. The wall clock is read through the vDSO: no syscall.
// While a send still reads the idle set, the refresh waits a loop turn.
func (s *Shard) refreshDate() {
	other := 1 - s.cur
	if s.sending[other] > 0 {
		return
	}
	s.sets[other].setDate(appendDate(s.dateBuf[:0], time.Now()))
	s.cur = other
	s.nextDate = s.now + int64(time.Second)
}

// minTimeout is the shortest of the connection timeouts.
func (s *Shard) minTimeout() int64 {
	c := &s.cfg
	return int64(min(c.HeaderTimeout, c.IdleTimeout, c.SendTimeout, c.LingerTimeout))
}

// publish copies the private counters to the ones other threads read.
func (s *Shard) publish() {
	s.dirty = false
	s.lastPublish = s.now
	e := &s.r.enters
	s.local[cEnterWakeup], s.local[cEnterWait] = e.wakeup, e.wait
	s.local[cEnterOverflow], s.local[cEnterSQFull] = e.overflow, e.sqFull
	s.local[cCQOverflow] = uint64(s.r.overflowed())
	for i := range s.local {
		s.pub.counters[i].Store(s.local[i])
	}
	for i := range s.byResp {
		s.pub.responses[i].Store(s.byResp[i])
	}
	s.pub.active.Store(s.active)
}

// teardown cancels everything in flight, waits (bounded) for the kernel to
// let go of the shard's buffers, and closes what is left.
func (s *Shard) teardown() {
	r := s.r
	r.prepCancelAll(packUD(opCancel, 0, 0))
	s.inflight++
	deadline := time.Now().Add(time.Second)
	for s.inflight > 0 && time.Now().Before(deadline) {
		n := r.ready()
		if n == 0 {
			r.wait(int64(10 * time.Millisecond))
			continue
		}
		for i := range n {
			e := r.cqeAt(i)
			o, gen, slot := unpackUD(e.UserData)
			if o == opAccept {
				if e.Flags&cqeFMore == 0 {
					s.inflight--
				}
				if e.Res >= 0 {
					_ = unix.Close(int(e.Res))
				}
				continue
			}
			if e.Flags&cqeFMore == 0 {
				s.inflight--
			}
			if slot == orphanSlot || o == opCancel || o == opWake {
				continue
			}
			if o == opSendZC {
				if e.Flags&cqeFNotif != 0 {
					s.sending[slot>>31]--
				}
				slot &^= zcSetBit
			}
			c := &s.conns[slot]
			if c.gen == gen && c.fd >= 0 {
				c.inflight--
				if o == opClose && unix.Errno(-e.Res) != unix.ECANCELED {
					s.release(c, slot)
				}
			}
		}
		r.advance(n)
	}
	for i := range s.conns {
		if c := &s.conns[i]; c.fd >= 0 {
			_ = unix.Close(int(c.fd))
			s.release(c, uint32(i))
		}
	}
	s.publish()
	s.acceptArmed = false
	s.seen |= ctlStopAccept
	s.checkAcceptStopped()
}
