package shard

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"zerosys/shard/httpwire"
)

// This file plays the kernel for an engine, so the connection lifecycle
// runs in a plain test: the engine's actions become pending operations,
// and the test completes them (whole, short, failed, cancelled) in any
// order a real kernel could. Each connection has a model peer: the bytes
// it sent that the server has not read, whether it closed, what it got.

// fakeOp is an operation the engine queued and the fake has not completed.
type fakeOp struct {
	a      action
	sock   *fakeSock // nil for accept, cancel, orphan close
	after  *fakeOp   // a close hard-linked behind this send
	behind bool      // this close waits for the send it is linked behind
	notif  bool      // a zero-copy send's notification still to come
	set    uint16
	step   uint16 // a splice chain: the step that runs next
}

// fakeSock is one accepted connection as the peer sees it.
type fakeSock struct {
	fd         int32
	slot, gen  uint32
	rx         []byte // sent by the peer, not read by the server
	peerEOF    bool   // the peer shut its write side
	saidClose  bool   // the peer sent a request that ends the connection
	misbehave  bool   // ... and sent more after it
	tx         []byte // what the server sent
	shutWR     bool
	shutRD     bool
	wasReset   bool // the peer reset the connection: every later recv and send fails
	closeQ     bool // the close is queued
	closed     bool
	aborted    bool // the server's connection was seen aborting
	answers    []variant
	queued     [][]byte // the bytes of every answer queued, from the set it was framed with
	last       phase
	parser     httpwire.Parser // the peer's own view of what it sent
	parseOff   bool            // the peer sent something malformed, or said it ends: it counts no further
	requests   int             // complete requests the peer sent, as it counts them
	h2         bool            // the peer speaks HTTP/2: its test checks the frames
	peer       *h2Peer         // its HTTP/2 side, once it speaks HTTP/2 (h2Send)
	nextStream uint32
}

// send makes the peer send text. The peer parses its own bytes to know
// when it has said the connection ends (a request without keep-alive):
// anything it sends after that, the server may reset.
func (s *fakeSock) send(text string) {
	if s.saidClose {
		s.misbehave = true
	}
	if len(s.rx) == 0 && s.requests == 0 && strings.HasPrefix(text, h2PrefaceLine) || strings.Contains(text, "HTTP2-Settings") {
		s.h2, s.parseOff = true, true // HTTP/2, or it may become so: the test checks the frames
	}
	s.rx = append(s.rx, text...)
	b := []byte(text)
	for len(b) > 0 && !s.parseOff {
		n, r := s.parser.Feed(b)
		b = b[n:]
		switch r {
		case httpwire.Request:
			s.requests++
			if !s.parser.Request().KeepAlive {
				s.saidClose = true
				s.misbehave = s.misbehave || len(b) > 0
				s.parseOff = true
			}
		case httpwire.Error:
			s.parseOff = true
		}
	}
}

// fakeKernel drives one engine.
type fakeKernel struct {
	t       testing.TB
	e       *engine
	ops     []*fakeOp
	socks   []*fakeSock
	bySlot  map[uint32]*fakeSock // the current tenant of each slot
	accept  *fakeOp
	nextFD  int32
	poolHd  uint16 // the kernel's head in the provided-buffer ring
	now     int64
	accepts int
	closes  int
	sends   int  // send operations queued
	whole   bool // recvs take all they can (while quiescing)

	altNext bool // changeBehaviour switches back to the start-up behaviour
	changes int

	// Splicing: the bytes in each pipe, and the body files made (real
	// memfds, closed by the close the engine queues, or at the end).
	piped  map[int16]int
	memfds map[int32]bool
}

// fakePipes is how many pipes a fake shard splices with: fewer than its
// connections, so answers also fall back to copies.
const fakePipes = 2

// spliceBodies writes tb's large bodies into a body file, as SetBehaviour
// does, when the engine splices.
func (k *fakeKernel) spliceBodies(tb *table) {
	if k.e.cfg.SpliceMin == 0 {
		return
	}
	if err := tb.spliceBodies(k.e.cfg.SpliceMin); err != nil {
		k.t.Fatal(err)
	}
	if tb.bodyFD >= 0 {
		k.memfds[tb.bodyFD] = true
	}
}

// closeFile closes a body file for real.
func (k *fakeKernel) closeFile(fd int32) {
	if k.memfds[fd] {
		delete(k.memfds, fd)
		unix.Close(int(fd))
	}
}

func newFakeKernel(t testing.TB, cfg Config) *fakeKernel {
	cfg.setDefaults()
	tb, err := newTable(cfg.behaviour())
	if err != nil {
		t.Fatal(err)
	}
	var pool *bufPool
	if cfg.Recv.pooled() {
		if pool, err = newBufPool(cfg.poolSize(), cfg.RecvBuffer); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.close)
	}
	k := &fakeKernel{t: t, e: new(engine), bySlot: map[uint32]*fakeSock{}, nextFD: 100,
		piped: map[int16]int{}, memfds: map[int32]bool{}}
	k.e.init(cfg, tb, pool)
	if cfg.SpliceMin > 0 {
		// Pipes the fake kernel models (no descriptors), a few KiB each,
		// so a body takes several chains.
		k.e.pipes = &splicePipes{chunk: 4096, devNull: -1}
		for i := range fakePipes {
			k.e.pipes.r, k.e.pipes.w = append(k.e.pipes.r, -1), append(k.e.pipes.w, -1)
			k.e.pipes.free = append(k.e.pipes.free, uint16(i))
		}
		k.spliceBodies(tb)
		if tb.bodyFD >= 0 {
			k.e.files = append(k.e.files, bodyFile{fd: tb.bodyFD})
		}
		t.Cleanup(func() {
			for fd := range k.memfds {
				k.closeFile(fd)
			}
		})
	}
	traceAnswers = func(q *answerQueue, v variant, one []byte) {
		for i := range k.e.conns {
			if &k.e.conns[i].q == q {
				if s := k.bySlot[uint32(i)]; s != nil {
					s.answers = append(s.answers, v)
					s.queued = append(s.queued, one)
				}
				return
			}
		}
		t.Fatalf("answer queued on no connection")
	}
	traceLast = func(q *answerQueue, v variant, one []byte) {
		for i := range k.e.conns {
			if s := k.bySlot[uint32(i)]; &k.e.conns[i].q == q && s != nil {
				s.answers[len(s.answers)-1], s.queued[len(s.queued)-1] = v, one
				return
			}
		}
		t.Fatalf("answer rewritten on no connection")
	}
	traceEnter = func(c *conn, p phase) {
		if s := k.bySlot[c.slot]; s != nil && s.gen == c.gen && p == phaseAborting {
			s.aborted = true
		}
	}
	t.Cleanup(func() { traceAnswers, traceLast, traceEnter = nil, nil, nil })
	k.e.armAccept()
	k.collect()
	return k
}

func (k *fakeKernel) fail(format string, args ...any) {
	k.t.Helper()
	k.t.Fatalf(format, args...)
}

// collect takes the engine's queued actions and checks each.
func (k *fakeKernel) collect() {
	q := &k.e.acts
	var prev *fakeOp
	for i := range q.n {
		a := *q.peek(i)
		o := &fakeOp{a: a}
		cq := decode(a.ud, 0, 0)
		if a.kind == actSplice && !a.drain {
			o.step = stepFill
			if len(a.buf) > 0 {
				o.step = stepHead
			}
		}
		switch {
		case a.kind == actAccept:
			if k.accept != nil {
				k.fail("a second accept armed")
			}
			k.accept = o
		case a.kind == actCancel:
		case a.kind == actSplice && a.drain: // a pipe's, no connection's
		case a.kind == actLingerReset && cq.op == opLinger: // after the close was queued: no connection's op
		case cq.slot != noSlot:
			s := k.bySlot[cq.slot]
			if s == nil || s.gen != cq.gen {
				k.fail("%v for slot %d gen %d, which has no such connection", a.kind, cq.slot, cq.gen)
			}
			if s.closeQ {
				k.fail("slot %d: operation %d queued after its close", cq.slot, a.kind)
			}
			o.sock = s
			if a.kind == actClose {
				s.closeQ = true
				if !s.aborted && len(s.rx) > 0 && !s.misbehave {
					k.fail("slot %d closed with %d unread bytes, not aborting: the kernel would reset it", cq.slot, len(s.rx))
				}
			}
		}
		if prev != nil && prev.a.link {
			if a.kind != actClose {
				k.fail("a link ends at %d, not at a close", a.kind)
			}
			prev.after, o.behind = o, true
		}
		if a.kind == actSendZC {
			o.set = decode(a.ud, 0, 0).set
		}
		if (a.kind == actSend || a.kind == actSendZC) && len(a.buf) > maxSendChunk {
			k.fail("a send of %d bytes, over maxSendChunk", len(a.buf))
		}
		if a.kind == actSend || a.kind == actSendZC {
			k.sends++
		}
		k.ops = append(k.ops, o)
		prev = o
	}
	q.pop(q.n)
	k.observe()
}

// observe checks every connection's phase after an event.
func (k *fakeKernel) observe() {
	e := k.e
	if e.inflight < 0 {
		k.fail("engine in-flight count %d", e.inflight)
	}
	for slot, s := range k.bySlot {
		c := &e.conns[slot]
		if c.gen != s.gen || c.phase == phaseFree {
			continue
		}
		if c.phase < s.last {
			k.fail("slot %d went back from %v to %v", slot, s.last, c.phase)
		}
		s.last = c.phase
		if c.phase == phaseAborting {
			s.aborted = true
		}
		if c.ops < 0 || c.ops > maxOpsPerConn {
			k.fail("slot %d has %d operations in flight", slot, c.ops)
		}
	}
}

// traceHook, when set, sees each completion before the engine does: set
// it in a test to follow a failing script.
var traceHook func(k *fakeKernel, what string)

// deliver hands the engine one completion and collects what it queued.
func (k *fakeKernel) deliver(ud uint64, res int32, flags uint32) {
	if traceHook != nil {
		traceHook(k, fmt.Sprintf("deliver %+v", decode(ud, res, flags)))
	}
	k.e.complete(decode(ud, res, flags))
	if len(k.e.waiters) > 0 {
		k.e.wakeWaiters()
	}
	k.e.rearmAccept()
	k.collect()
}

func (k *fakeKernel) remove(o *fakeOp) {
	for i, p := range k.ops {
		if p == o {
			k.ops = append(k.ops[:i], k.ops[i+1:]...)
			return
		}
	}
	k.fail("operation not pending")
}

// connect makes a new connection arrive on the armed accept.
func (k *fakeKernel) connect() bool {
	if k.accept == nil {
		return false
	}
	fd := k.nextFD
	k.nextFD++
	free := len(k.e.free)
	if free > 0 {
		slot := k.e.free[free-1]
		s := &fakeSock{fd: fd, slot: slot, gen: k.e.conns[slot].gen}
		s.parser.Reset(k.e.cfg.Limits)
		k.socks = append(k.socks, s)
		k.bySlot[slot] = s
	}
	k.accepts++
	k.deliver(k.accept.a.ud, fd, cqeFMore)
	return true
}

// complete finishes pending operation o. how picks among the outcomes
// that o can have.
func (k *fakeKernel) complete(o *fakeOp, how byte) {
	if o.behind {
		return // runs once the send before it completes
	}
	s := o.sock
	a := o.a
	switch a.kind {
	case actAccept:
		return // only connect or a cancel completes it
	case actRecv, actRecvPool, actRecvMulti:
		k.completeRecv(o, how)
	case actSend, actSendZC:
		if o.notif {
			k.remove(o)
			k.deliver(a.ud, 0, cqeFNotif)
			return
		}
		n := int32(len(a.buf))
		var res int32
		switch {
		case s.wasReset:
			res = -int32(unix.ECONNRESET)
		case s.shutWR || s.closed:
			res = -int32(unix.EPIPE)
		case how%5 == 0 && n > 1:
			res = 1 + int32(how)%(n-1) // short
		case how%17 == 1:
			res = -int32(unix.ECONNRESET)
		default:
			res = n
		}
		if res > 0 {
			s.tx = append(s.tx, a.buf[:res]...)
		}
		k.finishSend(o, res)
	case actSplice:
		k.completeSplice(o, how)
	case actShutdown:
		k.remove(o)
		if a.n == unix.SHUT_WR {
			s.shutWR = true
		} else {
			s.shutWR, s.shutRD = true, true
		}
		k.deliver(a.ud, 0, 0)
	case actLingerReset:
		k.remove(o)
		k.deliver(a.ud, 0, 0)
	case actCloseFile:
		k.remove(o)
		k.closeFile(a.fd)
		k.deliver(a.ud, 0, 0)
	case actClose:
		k.remove(o)
		if s == nil {
			k.closeFile(a.fd) // a body file no set serves any more
		}
		if s != nil {
			s.closed = true
			k.closes++
			if len(k.opsOf(s)) > 0 {
				k.fail("slot %d closed with operations pending", s.slot)
			}
			k.checkAnswers(s)
		}
		k.deliver(a.ud, 0, 0)
	case actCancel:
		k.remove(o)
		res := -int32(unix.ENOENT)
		if t := k.find(a.target); t != nil {
			res = 0
			k.cancelled(t)
		}
		k.deliver(a.ud, res, 0)
	}
}

// completeSplice runs the next step of a splice chain, or a pipe's drain.
// A step that fails cancels the rest of its chain, as IOSQE_IO_LINK does.
func (k *fakeKernel) completeSplice(o *fakeOp, how byte) {
	s, a := o.sock, o.a
	if a.drain {
		k.remove(o)
		res := int32(k.piped[a.pipe])
		if res == 0 {
			res = -int32(unix.EAGAIN)
		}
		k.piped[a.pipe] = 0
		k.deliver(a.ud, res, 0)
		return
	}
	var res int32
	switch o.step {
	case stepHead:
		res = int32(len(a.buf))
		switch {
		case s.wasReset || how%17 == 1:
			res = -int32(unix.ECONNRESET)
		case s.shutWR || s.closed:
			res = -int32(unix.EPIPE)
		default:
			s.tx = append(s.tx, a.buf...)
		}
	case stepFill:
		if n := k.piped[a.pipe]; n != 0 {
			k.fail("slot %d: pipe %d filled with %d bytes of an earlier chain still in it", s.slot, a.pipe, n)
		}
		res = int32(a.n)
		k.piped[a.pipe] = int(a.n)
	case stepBody:
		n := int32(a.n)
		res = n
		switch {
		case s.wasReset || how%17 == 1:
			res = -int32(unix.ECONNRESET)
		case s.shutWR || s.closed:
			res = -int32(unix.EPIPE)
		case how%5 == 0 && n > 1:
			res = 1 + int32(how)%(n-1) // short: the socket broke mid-way
		}
		if res > 0 {
			body := make([]byte, res)
			if _, err := unix.Pread(int(a.file), body, a.fileOff); err != nil {
				k.fail("reading the body file: %v", err)
			}
			s.tx = append(s.tx, body...)
			k.piped[a.pipe] -= int(res)
		}
	}
	k.finishStep(o, res)
}

// finishStep posts the running step's result; the chain goes on, or ends
// (its last step, or a failure that cancels the steps after it).
func (k *fakeKernel) finishStep(o *fakeOp, res int32) {
	step, ud := o.step, o.a.ud
	short := step == stepBody && res >= 0 && res < int32(o.a.n)
	if res < 0 || step == stepBody || short {
		k.remove(o)
		if res < int32(len(o.a.buf)) && step == stepHead || res < int32(o.a.n) && step != stepHead {
			o.sock.aborted = true // the answer is cut
		}
	}
	o.step++
	k.deliver(ud|uint64(step)<<slotBits, res, 0)
	if res < 0 {
		for s := step + 1; s <= stepBody; s++ {
			k.deliver(ud|uint64(s)<<slotBits, -int32(unix.ECANCELED), 0)
		}
	}
}

// finishSend completes a send with res; a linked close becomes runnable.
func (k *fakeKernel) finishSend(o *fakeOp, res int32) {
	flags := uint32(0)
	if o.a.kind == actSendZC {
		// The kernel posts a zero-copy send's notification whatever the
		// result (io_uring's send-zc failure path keeps F_MORE).
		flags = cqeFMore
		o.notif = true // stays pending as its notification
	} else {
		k.remove(o)
	}
	if o.after != nil {
		o.after.behind = false
		o.after = nil
		if res < int32(len(o.a.buf)) {
			o.sock.aborted = true // the linked close runs anyway: the answer is cut
		}
	}
	k.deliver(o.a.ud, res, flags)
}

func (k *fakeKernel) completeRecv(o *fakeOp, how byte) {
	s, a := o.sock, o.a
	multi := a.kind == actRecvMulti
	pooled := multi || a.kind == actRecvPool
	switch {
	case s.wasReset:
		k.remove(o)
		k.deliver(a.ud, -int32(unix.ECONNRESET), 0)
	case len(s.rx) > 0 && !s.shutRD:
		n := 1 + int(how)%len(s.rx)
		if k.whole {
			n = len(s.rx)
		}
		var flags uint32
		if pooled {
			bid, ok := k.takeBuf()
			if !ok {
				k.remove(o)
				k.deliver(a.ud, -int32(unix.ENOBUFS), 0)
				return
			}
			n = min(n, k.e.pool.size)
			copy(k.e.pool.bufs[int(bid)*k.e.pool.size:], s.rx[:n])
			flags = cqeFBuffer | uint32(bid)<<cqeBufferShift | cqeFMore
			if !multi || how%7 == 3 {
				flags &^= cqeFMore // the kernel may end a multishot recv at any time
				k.remove(o)
			}
		} else {
			n = min(n, len(a.buf))
			copy(a.buf, s.rx[:n])
			k.remove(o)
		}
		s.rx = s.rx[n:]
		k.deliver(a.ud, int32(n), flags)
	case s.peerEOF || s.shutRD:
		k.remove(o)
		k.deliver(a.ud, 0, 0)
	}
}

// takeBuf consumes the next buffer of the provided-buffer ring.
func (k *fakeKernel) takeBuf() (uint16, bool) {
	p := k.e.pool
	tail := *(*uint16)(unsafe.Add(p.base, 14))
	if k.poolHd == tail {
		return 0, false
	}
	bid := *(*uint16)(unsafe.Add(p.base, uintptr(k.poolHd&p.mask)*16+12))
	k.poolHd++
	return bid, true
}

// cancelled completes t with ECANCELED.
func (k *fakeKernel) cancelled(t *fakeOp) {
	if t.a.kind == actAccept {
		k.accept = nil
	}
	if t.a.kind == actSend || t.a.kind == actSendZC {
		t.sock.aborted = true // the answer is cut: a send timeout
		k.finishSendErr(t)
		return
	}
	if t.a.kind == actSplice {
		k.finishStep(t, -int32(unix.ECANCELED))
		return
	}
	k.remove(t)
	k.deliver(t.a.ud, -int32(unix.ECANCELED), 0)
}

func (k *fakeKernel) finishSendErr(t *fakeOp) {
	k.finishSend(t, -int32(unix.ECANCELED))
}

// find returns the pending operation with user_data ud (a notification
// is not one: it cannot be cancelled).
func (k *fakeKernel) find(ud uint64) *fakeOp {
	for _, o := range k.ops {
		if o.a.kind == actSplice && !o.a.drain {
			if o.a.ud|uint64(o.step)<<slotBits == ud {
				return o // the step that runs: a cancel of a later one finds nothing
			}
			continue
		}
		if o.a.ud == ud && !o.notif && o.a.kind != actCancel && o.a.kind != actClose {
			return o
		}
	}
	return nil
}

func (k *fakeKernel) opsOf(s *fakeSock) []*fakeOp {
	var out []*fakeOp
	for _, o := range k.ops {
		if o.sock == s && !o.notif {
			out = append(out, o)
		}
	}
	return out
}

// reset makes the peer reset the connection: what is pending fails.
func (k *fakeKernel) reset(s *fakeSock) {
	s.peerEOF = true
	s.rx = nil
	s.shutRD = true
	s.wasReset = true
	for _, o := range k.opsOf(s) {
		switch o.a.kind {
		case actRecv, actRecvPool, actRecvMulti:
			k.remove(o)
			k.deliver(o.a.ud, -int32(unix.ECONNRESET), 0)
		case actSend, actSendZC:
			k.finishSend(o, -int32(unix.ECONNRESET))
		case actSplice:
			if o.step == stepFill {
				k.completeSplice(o, 0) // the pipe side does not see the reset
			}
			if k.pending(o) {
				k.completeSplice(o, 0) // fails on the reset
			}
		}
	}
}

// isClose reports a kind's variant that closes the connection.
func isClose(v variant) bool {
	if v >= kindBase {
		v = (v - kindBase) % variantsPerKind
	}
	return v == vOKClose || v == vHeadClose
}

// maskDates overwrites every Date value (whole, or cut short at the end)
// with dashes: answers from different response sets differ only there.
func maskDates(b []byte) []byte {
	b = bytes.Clone(b)
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("Date: "))
		if j < 0 {
			return b
		}
		i += j + len("Date: ")
		for k := 0; k < dateLen && i < len(b); k++ {
			b[i] = '-'
			i++
		}
	}
}

// checkAnswers: a connection that was not aborted got every answer it was
// queued, whole and in order, each as the behaviour it was framed under
// answers it; an aborted one got a prefix of them.
func (k *fakeKernel) checkAnswers(s *fakeSock) {
	if s.h2 {
		return
	}
	got, want := maskDates(s.tx), maskDates(bytes.Join(s.queued, nil))
	if s.aborted {
		if !bytes.HasPrefix(want, got) {
			k.fail("slot %d (aborted): sent %q, not a prefix of the queued answers %q", s.slot, got, want)
		}
		return
	}
	if !bytes.Equal(got, want) {
		k.fail("slot %d: sent %q, want the queued answers %q", s.slot, got, want)
	}
	// Every request the peer sent was answered, unless the server chose to
	// end the connection (its last answer says close: drain, close mode, a
	// timeout, bad input) or the peer kept sending after saying it ends.
	final := 0
	var last variant
	for _, v := range s.answers {
		if v != vContinue {
			final++
			last = v
		}
	}
	closing := last >= v400 && last < kindBase || isClose(last)
	if last == vCustom {
		for i := len(s.answers) - 1; i >= 0; i-- {
			if s.answers[i] == vCustom {
				closing = bytes.Contains(s.queued[i], []byte("\r\nConnection: close\r\n"))
				break
			}
		}
	}
	if !s.misbehave && !closing && final != s.requests {
		k.fail("slot %d: the peer sent %d requests, %d were answered", s.slot, s.requests, final)
	}
}

// advance moves the clock and runs the sweep if it is due.
func (k *fakeKernel) advance(d int64) {
	k.now += d
	k.e.setNow(k.now)
	k.e.fireTimers()
	if k.e.sweepDue() {
		k.e.sweep(sweepBudget)
	}
	k.collect()
}

// quiesce lets every peer close and every operation finish, then checks
// that nothing is left: every slot released once, every reference back.
func (k *fakeKernel) quiesce() {
	for _, s := range k.socks {
		s.peerEOF = true
	}
	k.whole = true
	for round := 0; ; round++ {
		if round > 10000 {
			k.fail("not quiescent after %d rounds (active %d, free %d): %s", round, k.e.active, len(k.e.free), k.dump())
		}
		progressed := false
		for _, o := range append([]*fakeOp(nil), k.ops...) {
			if o == k.accept || o.behind || !k.pending(o) {
				continue
			}
			before := len(k.ops)
			k.complete(o, 2) // whole, no error
			if len(k.ops) != before || !k.pending(o) {
				progressed = true
			}
		}
		if !progressed {
			if k.e.active == 0 {
				break
			}
			k.advance(int64(k.e.cfg.IdleTimeout) + int64(k.e.cfg.LingerTimeout))
		}
	}
	e := k.e
	if got, want := e.inflight, 1; k.accept == nil && got != 0 || k.accept != nil && got != want {
		k.fail("%d operations in flight after quiescing (accept armed: %v)", got, k.accept != nil)
	}
	if n := e.sets.held(); n != 0 {
		k.fail("%d response-set references held after quiescing", n)
	}
	for _, x := range e.h2free {
		if n := x.gran.lent(); n != 0 || len(x.delayed) != 0 {
			k.fail("an HTTP/2 connection's state keeps %d granules and %d waiting answers after quiescing", n, len(x.delayed))
		}
	}
	if e.pool != nil && e.pool.out != 0 {
		k.fail("%d pool buffers not returned", e.pool.out)
	}
	if p := e.pipes; p != nil {
		if len(p.free) != fakePipes {
			k.fail("%d of %d splice pipes free after quiescing", len(p.free), fakePipes)
		}
		for i, n := range k.piped {
			if n != 0 {
				k.fail("pipe %d holds %d bytes after quiescing", i, n)
			}
		}
	}
	if len(e.free) != len(e.conns) || e.active != 0 {
		k.fail("%d of %d slots free, %d active", len(e.free), len(e.conns), e.active)
	}
	var closed uint64
	for c := cClosedNormal; c <= cClosedEvicted; c++ {
		closed += e.local[c]
	}
	if int(closed) != len(k.socks) || k.closes != len(k.socks) {
		k.fail("%d connections, %d closes counted, %d closes done", len(k.socks), closed, k.closes)
	}
	for _, s := range k.socks {
		if !s.closed {
			k.fail("slot %d never closed", s.slot)
		}
	}
}

func (k *fakeKernel) pending(o *fakeOp) bool {
	for _, p := range k.ops {
		if p == o {
			return true
		}
	}
	return false
}

func (k *fakeKernel) dump() string {
	var b bytes.Buffer
	for _, o := range k.ops {
		fmt.Fprintf(&b, "op %d fd %d behind %v notif %v; ", o.a.kind, o.a.fd, o.behind, o.notif)
	}
	for slot := range k.e.conns {
		c := &k.e.conns[slot]
		if c.phase != phaseFree {
			fmt.Fprintf(&b, "slot %d %v ops %d recv %v send %v; ", slot, c.phase, c.ops, c.recvArmed, c.sending)
		}
	}
	return b.String()
}

// completeAll completes every pending operation of kind kind, whole and
// without error (how 2), until none is left or a recv has nothing to read.
func (k *fakeKernel) completeAll(kind actKind) {
	for range 100 {
		done := false
		for _, o := range append([]*fakeOp(nil), k.ops...) {
			if o.a.kind == kind && k.pending(o) && !o.behind && (kind != actRecv || len(o.sock.rx) > 0) {
				k.complete(o, 2)
				done = true
			}
		}
		if !done {
			return
		}
	}
}
