package shard

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// requestMenu is what a model peer may send, whole or cut anywhere.
var requestMenu = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"BAD\r\n\r\n",
	"GET / HTTP/2.0\r\n\r\n",
	// Knobs (with RequestKnobs; else plain paths).
	"GET /?status=503:50,201&size=30&cb=1 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /x?echo=1&header=X-K:v HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n",
	"HEAD /?status=204&header=X-K:v HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /?delay=60ms:50&close=1 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /?status=abc HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /?size=25000:50,9 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	"GET /?status=299 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	// h2c by Upgrade (a first request's; a later one is HTTP/1.1's).
	"GET /?status=201 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
}

// lifecycleConfig derives an engine configuration from a fuzz input's
// first byte: receive path, close mode, zero-copy large answers, the
// keep-alive limit, the close mix, status and size mixes, delays,
// per-request knobs.
func lifecycleConfig(b byte) Config {
	cfg := Config{
		MaxConns:      4,
		MaxPipeline:   4,
		RecvBuffer:    64,
		bufCount:      4,
		HeaderTimeout: 3 * time.Second,
		IdleTimeout:   5 * time.Second,
		SendTimeout:   4 * time.Second,
		LingerTimeout: 2 * time.Second,
	}
	// The low bit: a buffer per slot, or a pool; which pool mode, the
	// parity of two bits used below too (no bit is free), so each pool
	// mode meets each of those settings.
	cfg.Recv = RecvSlot
	if b&1 != 0 {
		switch {
		case (b>>4^b>>6)&1 != 0:
			cfg.Recv = RecvMultishot
		case (b>>3^b>>4)&1 != 0:
			cfg.Recv = RecvAuto
		default:
			cfg.Recv = RecvPool
		}
	}
	if b&2 != 0 {
		cfg.Mode = ModeClose
	}
	if b&4 != 0 {
		// Large answers, zero-copy or spliced (by the parity of two bits
		// used below too, so each meets each of those settings).
		cfg.Response.Body = bytes.Repeat([]byte("z"), zcMin+1)
		if (b>>3^b>>5)&1 != 0 {
			cfg.SpliceMin = 1024
		} else {
			cfg.SendZC = true
		}
	}
	if b&8 != 0 {
		cfg.KeepAliveRequests = 2
	}
	if b&16 != 0 {
		cfg.ClosePerMillion, cfg.Seed = 300_000, uint64(b)
	}
	if b&32 != 0 {
		cfg.Response.StatusMix = []Share{{Value: 503, PPM: 300_000}}
		cfg.Response.SizeMix = []Share{{Value: 0, PPM: 200_000}, {Value: 40, PPM: 300_000}}
	}
	if b&128 != 0 {
		cfg.RequestKnobs, cfg.MaxBodySize, cfg.MaxDelay = true, 32768, time.Second
	}
	if b&64 != 0 {
		// Delays: some answers wait 60 ms, some 600 ms (time moves in
		// 50 ms steps here), the rest go at once.
		cfg.DelayMix = []Share{{Value: 60_000, PPM: 400_000}, {Value: 600_000, PPM: 200_000}}
		cfg.Seed = uint64(b)
	}
	return cfg
}

// runLifecycle drives an engine with the events script encodes, then lets
// everything finish and checks the invariants (see fakekernel_test.go):
//   - every slot is released exactly once, by its own close, and every
//     connection's close is counted once;
//   - no operation is queued after a connection's close;
//   - in-flight counts (the engine's, each connection's, the response
//     sets' references, the buffer pool) never go below zero, and all
//     return to rest at the end;
//   - phases only move forward;
//   - every queued answer is sent whole and in order, unless the
//     connection was aborted (then what was sent is a prefix);
//   - nothing is closed with unread input unless aborting (or the peer
//     kept sending after saying it would not).
func runLifecycle(t testing.TB, script []byte) {
	if len(script) == 0 {
		return
	}
	k := newFakeKernel(t, lifecycleConfig(script[0]))
	script = script[1:]
	next := func() byte {
		if len(script) == 0 {
			return 0
		}
		b := script[0]
		script = script[1:]
		return b
	}
	for len(script) > 0 {
		ev, arg := next(), next()
		switch ev % 10 {
		case 0:
			k.connect()
		case 1, 2: // a peer sends a request, or part of one
			if s := k.sock(arg); s != nil && !s.peerEOF {
				i := int(next()) % (len(requestMenu) + len(h2Menu))
				if i >= len(requestMenu) && (s.h2 || len(s.rx) == 0 && s.requests == 0 && len(s.tx) == 0) {
					s.send(s.h2Send(i - len(requestMenu))) // HTTP/2 frames, whole
					break
				}
				text := requestMenu[i%len(requestMenu)]
				if arg&0x80 != 0 {
					text = text[:int(arg)%len(text)]
				}
				s.send(text)
			}
		case 3, 4, 5: // the kernel completes some operation
			if len(k.ops) > 0 {
				k.complete(k.ops[int(arg)%len(k.ops)], next())
			}
		case 6: // a peer half-closes
			if s := k.sock(arg); s != nil {
				s.peerEOF = true
				for _, o := range k.opsOf(s) {
					if o.a.kind == actRecv || o.a.kind == actRecvPool || o.a.kind == actRecvMulti {
						k.complete(o, 0)
					}
				}
			}
		case 7: // a peer resets
			if s := k.sock(arg); s != nil && arg%3 == 0 {
				k.reset(s)
			}
		case 8: // time passes
			k.advance(int64(arg) * int64(50*time.Millisecond))
		case 9:
			switch arg % 8 {
			case 0:
				k.e.drain()
				k.collect()
			case 1: // the Date moves on: a new response set
				k.e.date.tick(k.now, &k.e.sets)
			case 2: // the behaviour changes (PUT /behaviour), back and forth
				k.changeBehaviour()
			default:
				if o := k.notif(arg); o != nil {
					k.complete(o, 0)
				}
			}
		}
	}
	k.quiesce()
}

// changeBehaviour makes the engine frame requests by the other of two
// behaviours: the start-up one and one with other statuses, bodies, delays
// and closes, each time freshly prepared (as SetBehaviour does). It does
// nothing while no response set is free, and after a few changes.
func (k *fakeKernel) changeBehaviour() {
	if k.changes == 4 {
		return // preparing large bodies is slow: keep the fuzzer fast
	}
	k.changes++
	b := k.e.cfg.behaviour()
	if !k.altNext {
		b.Response.Status, b.Response.Body = 503, []byte("changed")
		if k.e.cfg.SendZC || k.e.cfg.SpliceMin > 0 {
			b.Response.Body = bytes.Repeat([]byte("y"), zcMin+7)
		}
		b.Response.StatusMix = []Share{{Value: 429, PPM: 500_000}}
		b.Response.SizeMix = nil
		b.DelayMix = []Share{{Value: 120_000, PPM: 500_000}}
		b.ClosePerMillion = 200_000
	}
	tb := mustTable(k.t, b)
	k.spliceBodies(tb)
	if k.e.useTable(tb) {
		k.altNext = !k.altNext
	} else {
		k.closeFile(tb.bodyFD)
	}
	k.collect() // the close of a body file no set serves
}

func mustTable(t testing.TB, b Behaviour) *table {
	tb, err := newTable(b)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// sock picks an open connection.
func (k *fakeKernel) sock(b byte) *fakeSock {
	var open []*fakeSock
	for _, s := range k.socks {
		if !s.closed {
			open = append(open, s)
		}
	}
	if len(open) == 0 {
		return nil
	}
	return open[int(b)%len(open)]
}

// notif picks a pending zero-copy notification.
func (k *fakeKernel) notif(b byte) *fakeOp {
	var ns []*fakeOp
	for _, o := range k.ops {
		if o.notif {
			ns = append(ns, o)
		}
	}
	if len(ns) == 0 {
		return nil
	}
	return ns[int(b)%len(ns)]
}

// FuzzLifecycle runs random completion sequences through the connection
// lifecycle: results, EOF, resets, short sends, cancels, multishot and
// zero-copy flags, timeouts, drain and Date refreshes.
func FuzzLifecycle(f *testing.F) {
	for _, seed := range slices.Concat(lifecycleSeeds, h2Seeds) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script []byte) { runLifecycle(t, script) })
}

// lifecycleSeeds are scripts that reach each part of the lifecycle.
var lifecycleSeeds = [][]byte{
	// keep-alive: connect, GET, recv, send, close by the peer
	{0, 0, 0, 1, 0, 0, 3, 0, 0, 3, 0, 0, 6, 0},
	// pipelined burst on a full queue, multishot
	{1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 3, 1, 0, 0, 3, 0, 1, 3, 0, 2, 3, 0, 0, 3, 0, 0, 3, 0, 5},
	// close mode with zero-copy answers
	{6, 0, 0, 1, 0, 0, 3, 0, 0, 3, 0, 0, 9, 2, 3, 0, 0, 9, 2},
	// slow head: partial request, then time passes (408)
	{0, 0, 0, 1, 0x85, 0, 3, 0, 0, 8, 70, 3, 0, 0, 3, 0, 0},
	// bad input, then more input while lingering
	{1, 0, 0, 1, 0, 8, 3, 0, 0, 1, 0, 0, 3, 0, 0, 3, 0, 0, 3, 0, 0},
	// reset mid-answer
	{4, 0, 0, 1, 0, 0, 1, 0, 0, 3, 0, 0, 7, 0, 3, 0, 0},
	// spliced answers: chains step by step, a short body splice, a reset
	// with bytes in the pipe, more answers than pipes, a behaviour change
	{4 | 8, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 3, 0, 0, 3, 0, 2, 3, 1, 2, 3, 0, 2, 3, 2, 5, 3, 0, 2, 3, 0, 2, 3, 1, 2},
	{4 | 8 | 1, 0, 0, 1, 0, 0, 1, 0, 0, 3, 0, 0, 3, 0, 2, 3, 0, 2, 7, 0, 9, 2, 0, 0, 1, 0, 0, 3, 0, 2, 3, 0, 2, 3, 0, 2, 8, 100},
	// drain, a Date refresh, timeouts
	{0, 0, 0, 0, 1, 1, 0, 0, 9, 0, 9, 1, 3, 0, 0, 3, 1, 0, 8, 200, 8, 200},
	// more connections than slots
	{0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 8, 100, 8, 100},
	// the keep-alive limit, the close mix, status and size mixes, pipelined
	{8 | 16 | 32, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 3, 0, 0, 3, 0, 0, 3, 0, 2, 3, 0, 0, 3, 0, 0, 6, 0},
	{1 | 16 | 32, 0, 0, 1, 0, 0, 1, 0, 3, 3, 0, 0, 3, 1, 0, 3, 0, 0, 9, 1, 3, 0, 0, 3, 0, 0},
	// delays: pipelined answers held back, time passing, a peer leaving
	{64, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 3, 0, 0, 8, 2, 3, 0, 0, 8, 20, 3, 0, 0, 6, 0, 8, 20},
	{64 | 1 | 4, 0, 0, 1, 0, 0, 1, 0, 0, 3, 0, 0, 9, 1, 8, 3, 3, 0, 0, 7, 0, 8, 30},
	// knobs: custom answers (status, size, echo, a bad knob), split heads,
	// a behaviour change and a drain while they wait
	{128, 0, 0, 1, 0, 10, 3, 0, 2, 3, 0, 2, 1, 0x85, 11, 3, 0, 2, 1, 0, 11, 3, 0, 2, 3, 0, 2, 1, 0, 12, 1, 0, 13, 3, 0, 2, 3, 0, 2, 8, 3, 3, 0, 2, 6, 0},
	{128 | 1 | 64, 0, 0, 1, 0, 15, 1, 0, 14, 3, 0, 2, 3, 0, 2, 9, 2, 3, 0, 2, 1, 0, 16, 3, 0, 2, 8, 5, 3, 1, 2, 9, 0, 3, 0, 2},
}

// h2Seeds are scripts of HTTP/2 peers with knobs: streams at once and
// delayed, an echo, a body that comes later, a reset, a drain while
// streams wait; the keep-alive limit; close mode.
var h2Seeds = func() [][]byte {
	whole := bytes.Repeat([]byte{3, 0, 2, 3, 1, 2, 3, 2, 2}, 6) // completions of any op, whole
	// send is the events by which the first peer sends h2Menu[i].
	send := func(i ...int) []byte {
		var b []byte
		for _, m := range i {
			b = append(b, 1, 0, byte(len(requestMenu)+m))
		}
		return b
	}
	return [][]byte{
		slices.Concat([]byte{128, 0, 0}, send(0, 1, 2), whole, send(3, 6), whole, []byte{8, 2}, whole, send(4), whole, []byte{9, 0}, whole, []byte{8, 20}, whole),
		slices.Concat([]byte{128 | 1 | 64, 0, 0}, send(2, 5), whole, send(7), whole, []byte{7, 0, 8, 3}),
		slices.Concat([]byte{32 | 8, 0, 0}, send(0, 0, 0), whole, []byte{6, 0}),
		slices.Concat([]byte{128 | 2, 0, 0}, send(1, 4, 7), whole, []byte{8, 5}, whole),
		// Upgrade: h2c, then the preface and streams.
		slices.Concat([]byte{128 | 1, 0, 0, 1, 0, byte(len(requestMenu) - 1)}, whole, send(0, 1), whole, []byte{8, 3}, whole),
		slices.Concat([]byte{0, 0, 0, 1, 0, byte(len(requestMenu) - 1)}, whole, send(7, 2), whole),
	}
}()

// TestLifecycleSeeds runs the seeds as a plain test.
func TestLifecycleSeeds(t *testing.T) {
	for _, s := range slices.Concat(lifecycleSeeds, h2Seeds) {
		runLifecycle(t, s)
	}
}

// TestLifecyclePeerEOFAfterPipeline: a client pipelines more requests than
// the answer queue holds and then shuts its side; the requests already
// received must all be answered before the close (the EOF must not throw
// away input not yet framed).
func TestLifecyclePeerEOFAfterPipeline(t *testing.T) {
	for _, recv := range []RecvMode{RecvSlot, RecvPool, RecvMultishot, RecvAuto} {
		cfg := lifecycleConfig(0)
		cfg.Recv = recv
		cfg.RecvBuffer, cfg.bufCount, cfg.MaxPipeline = 4096, 16, 1024
		k := newFakeKernel(t, cfg)
		k.connect()
		s := k.socks[0]
		for i := range 17 { // alternating: 17 runs, over maxRuns
			s.send(requestMenu[i%2])
		}
		s.peerEOF = true
		k.quiesce() // checks every request was answered
		if s.requests != 17 || len(s.answers) != 17 {
			t.Errorf("recv %v: %d requests sent, %d answers queued, want 17", recv, s.requests, len(s.answers))
		}
	}
}

// TestLifecycleKeepAliveRequests: with KeepAliveRequests 3, the third
// answer says close and the requests behind it are read away, not
// answered.
func TestLifecycleKeepAliveRequests(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.KeepAliveRequests, cfg.RecvBuffer = 3, 4096
	k := newFakeKernel(t, cfg)
	k.connect()
	s := k.socks[0]
	for range 5 {
		s.send(requestMenu[0])
	}
	s.peerEOF = true
	k.quiesce()
	if want := []variant{vOK, vOK, vOKClose}; fmt.Sprint(s.answers) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", s.answers, want)
	}
}

// TestLifecycleLargeAnswersInChunks: pipelined answers longer than one
// send may carry leave in sends of at most maxSendChunk, whole and in
// order (quiesce compares every byte), the close linked to the last.
func TestLifecycleLargeAnswersInChunks(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.RecvBuffer = 4096
	cfg.Response.Body = bytes.Repeat([]byte("L"), 2*maxSendChunk+100)
	k := newFakeKernel(t, cfg)
	k.whole = true
	k.connect()
	s := k.socks[0]
	for range 3 {
		s.send(requestMenu[0])
	}
	s.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	k.quiesce()
	if len(s.answers) != 4 || !s.closed {
		t.Fatalf("%d answers, closed %v; want 4 and closed", len(s.answers), s.closed)
	}
	// At least three sends per answer of 2 chunks and a bit.
	if k.sends < 4*3 {
		t.Errorf("%d sends for 4 answers of %d bytes", k.sends, len(cfg.Response.Body))
	}
}

// TestLifecyclePoolStash: a pool connection whose answer queue fills
// while its client reads nothing gives its pool buffer back (the rest
// waits in the slot's own buffer), and every request is still answered.
func TestLifecyclePoolStash(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.Recv = RecvPool
	cfg.RecvBuffer, cfg.bufCount, cfg.MaxPipeline = 4096, 16, 4
	k := newFakeKernel(t, cfg)
	k.whole = true
	k.connect()
	s := k.socks[0]
	for range 10 {
		s.send(requestMenu[0])
	}
	k.completeAll(actRecvPool)
	c := &k.e.conns[s.slot]
	if !c.q.full(k.e.env.maxPending) || c.in.off >= c.in.end {
		t.Fatalf("queue full %v, stash %d..%d: want a full queue and the rest stashed", c.q.full(k.e.env.maxPending), c.in.off, c.in.end)
	}
	if k.e.pool.out != 0 || c.in.head >= 0 {
		t.Fatalf("%d pool buffers out, head %d: want the buffer back", k.e.pool.out, c.in.head)
	}
	s.peerEOF = true
	k.quiesce()
	if len(s.answers) != 10 {
		t.Errorf("%d answers to 10 requests", len(s.answers))
	}
}

// TestSweepBudget: connections that time out together end a few per loop
// turn (sweepBudget), and every one of them ends.
func TestSweepBudget(t *testing.T) {
	const conns = 3*sweepBudget + 5
	cfg := lifecycleConfig(0)
	cfg.MaxConns = 2 * conns // far from full: nothing is evicted
	k := newFakeKernel(t, cfg)
	for range conns {
		k.connect() // silent: each owes its first head
	}
	k.advance(int64(cfg.HeaderTimeout) + int64(time.Millisecond))
	expired := func() int {
		n := 0
		for _, s := range k.socks {
			// A 408 on its way, or gone.
			if c := &k.e.conns[s.slot]; c.gen != s.gen || c.phase != phaseOpen || c.sending || c.q.len > 0 {
				n++
			}
		}
		return n
	}
	if n := expired(); n != sweepBudget {
		t.Fatalf("the first sweep ended %d connections, want %d", n, sweepBudget)
	}
	if !k.e.sweepDue() {
		t.Fatal("connections still past their deadline, and no sweep due at once")
	}
	for turn := 0; expired() < conns; turn++ {
		if turn > conns {
			t.Fatalf("%d of %d connections ended after %d turns", expired(), conns, turn)
		}
		k.advance(0)
	}
	if n := k.e.local[cEvictedHead] + k.e.local[cEvictedIdle]; n != 0 {
		t.Errorf("%d connections evicted", n)
	}
	k.quiesce()
}

// TestDraw: the close mix's draws are uniform enough and repeatable.
func TestDraw(t *testing.T) {
	a, b := uint64(7), uint64(7)
	var buckets [10]int
	for range 100_000 {
		x := draw(&a, 10)
		if y := draw(&b, 10); x != y {
			t.Fatal("the same seed gave different draws")
		}
		buckets[x]++
	}
	for i, n := range buckets {
		if n < 9_500 || n > 10_500 { // 5 sigmas of a binomial(100000, 0.1)
			t.Errorf("bucket %d got %d of 100000 draws", i, n)
		}
	}
}

// TestLifecycleDelayOrder: a delayed answer holds back the ones behind it
// on its connection and leaves at its time, not before.
func TestLifecycleDelayOrder(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.Delay, cfg.RecvBuffer = 20*time.Millisecond, 4096
	k := newFakeKernel(t, cfg)
	k.connect()
	s := k.socks[0]
	s.send(requestMenu[0] + requestMenu[1])
	for _, o := range append([]*fakeOp(nil), k.ops...) {
		if o.a.kind == actRecv {
			k.complete(o, 255) // all of it
		}
	}
	for _, o := range k.ops {
		if o.a.kind == actSend {
			t.Fatal("an answer left before its delay")
		}
	}
	k.advance(int64(19 * time.Millisecond))
	for _, o := range k.ops {
		if o.a.kind == actSend {
			t.Fatal("an answer left 1 ms before its delay")
		}
	}
	k.advance(int64(time.Millisecond))
	sends := 0
	for _, o := range k.ops {
		if o.a.kind == actSend {
			sends++
		}
	}
	if sends != 1 {
		t.Fatalf("%d sends at the delay, want 1 (both answers, in one batch or in order)", sends)
	}
	s.peerEOF = true
	k.quiesce()
	if len(s.answers) != 2 || s.answers[0] != vOK || s.answers[1] != vHead {
		t.Errorf("answers %v, want GET's then HEAD's", s.answers)
	}
	if n := k.e.local[cDelayed]; n != 2 {
		t.Errorf("%d answers counted delayed, want 2", n)
	}
	// The GET's answer left on time; the HEAD's request came in a later
	// read, and its answer waited for quiesce's jump of the clock.
	total := uint64(0)
	for _, n := range k.e.late.n {
		total += n
	}
	if total != 2 || k.e.late.n[0] < 1 {
		t.Errorf("lateness %v, want 2 answers counted, the first on time", k.e.late.n)
	}
}

// TestLifecycleLateness: an answer that leaves after its due time (the
// loop came back 3 ms late) is counted in the lateness histogram by how
// late it left.
func TestLifecycleLateness(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.Delay, cfg.RecvBuffer = 20*time.Millisecond, 4096
	k := newFakeKernel(t, cfg)
	k.connect()
	s := k.socks[0]
	s.send(requestMenu[0])
	for _, o := range append([]*fakeOp(nil), k.ops...) {
		if o.a.kind == actRecv {
			k.complete(o, byte(len(requestMenu[0])-1)) // all of it
		}
	}
	k.advance(int64(23 * time.Millisecond))
	s.peerEOF = true
	k.quiesce()
	want := bucketOf(LateBounds[:], int64(3*time.Millisecond))
	if len(s.answers) != 1 || k.e.late.n[want] != 1 || k.e.late.sum != int64(3*time.Millisecond) {
		t.Errorf("%d answers; lateness %v (sum %v), want one in bucket %d (3 ms)", len(s.answers), k.e.late.n, time.Duration(k.e.late.sum), want)
	}
}

// TestLifecycleDrainWithDelayedAnswers: a drain while answers wait for
// their delay makes the last one say Connection: close and the
// connection end after it; the ones before it keep theirs.
func TestLifecycleDrainWithDelayedAnswers(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.Delay, cfg.RecvBuffer = 20*time.Millisecond, 4096
	k := newFakeKernel(t, cfg)
	k.connect()
	s := k.socks[0]
	s.send(requestMenu[0] + requestMenu[0] + requestMenu[1])
	k.whole = true
	for _, o := range append([]*fakeOp(nil), k.ops...) {
		if o.a.kind == actRecv {
			k.complete(o, 0)
		}
	}
	k.whole = false
	if len(s.answers) != 3 {
		t.Fatalf("%d answers queued before the drain, want 3", len(s.answers))
	}
	k.e.drain()
	k.collect()
	k.advance(int64(20 * time.Millisecond))
	k.quiesce()
	want := []variant{vOK, vOK, vHeadClose}
	if fmt.Sprint(s.answers) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", s.answers, want)
	}
	if !bytes.Contains(s.tx, []byte("Connection: close")) {
		t.Errorf("nothing sent said Connection: close: %q", s.tx)
	}
}

// TestLifecycleKnobs: a request's knobs shape its own answer, built in
// the connection's buffer; the next request gets the usual one.
func TestLifecycleKnobs(t *testing.T) {
	for _, c := range []struct {
		req  string
		want []string // in the answer, in order
	}{
		{"GET /?status=503&size=30 HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 503 Service Unavailable\r\n", "Content-Length: 30\r\n", "\r\nabcdefghijklmnopqrstuvwxyzabc\nHTTP/1.1 200 OK"}},
		{"GET /?size=25000 HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 25000\r\n", "\r\nabcdef", "ghijklm\nHTTP/1.1 200 OK"}},
		{"GET /e?echo=1&header=X-K:v HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 56\r\n", "X-K: v\r\n\r\nGET /e?echo=1&header=X-K:v HTTP/1.1\r\nHost: a\r\nX-Y: z\r\n\r\nHTTP/1.1 200 OK"}},
		{"GET /?size=5&header=content-type:application/json HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 200 OK\r\n", "Content-Type: application/json\r\nContent-Length: 5\r\n\r\nabcd\nHTTP/1.1 200 OK"}},
		{"HEAD /?status=204 HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 204 No Content\r\n", "GMT\r\n\r\nHTTP/1.1 200 OK"}},
		{"GET /?status=299&close=1 HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 299 Status 299\r\n", "Connection: close\r\n", "Have a nice day!"}},
		{"GET /?status=abc HTTP/1.1\r\nHost: a\r\n\r\n", []string{"HTTP/1.1 400 Bad Request\r\n", "Connection: close\r\n", "Bad Request: status: want a final status"}},
	} {
		cfg := lifecycleConfig(128)
		cfg.RecvBuffer = 4096
		k := newFakeKernel(t, cfg)
		k.connect()
		s := k.socks[0]
		// Split in two reads: the head is kept across them.
		s.send(c.req[:9])
		k.whole = true
		k.completeAll(actRecv)
		s.send(c.req[9:] + requestMenu[0])
		k.completeAll(actRecv)
		k.completeAll(actSend)
		got := string(s.tx)
		for _, w := range c.want {
			i := strings.Index(got, w)
			if i < 0 {
				t.Errorf("%q: answer %q lacks %q", c.req, s.tx, w)
				break
			}
			got = got[i+len(w):]
		}
		s.peerEOF = true
		k.quiesce()
	}
}

// TestLifecycleDrainWithCustomAnswer: a drain while a custom answer (a
// knob's) waits for its delay makes it say Connection: close, for HTTP/1.1
// and for an HTTP/1.0 keep-alive client.
func TestLifecycleDrainWithCustomAnswer(t *testing.T) {
	for _, req := range []string{
		"GET /?status=201&delay=20ms&size=3 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /?status=201&delay=20ms&size=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	} {
		cfg := lifecycleConfig(128)
		cfg.RecvBuffer = 4096
		k := newFakeKernel(t, cfg)
		k.connect()
		s := k.socks[0]
		s.send(req)
		k.whole = true
		k.completeAll(actRecv)
		k.e.drain()
		k.collect()
		k.advance(int64(20 * time.Millisecond))
		k.completeAll(actSend)
		s.peerEOF = true
		k.quiesce()
		got := string(s.tx)
		if !strings.HasPrefix(got, "HTTP/1.1 201 Created\r\n") || !strings.Contains(got, "\r\nConnection: close\r\n\r\nab\n") || strings.Contains(got, "keep-alive") {
			t.Errorf("%q: after a drain, sent %q", req, got)
		}
	}
}

// TestLifecycleEvictsToMakeRoom: with the table full, the connection that
// has waited longest for its first request head is closed to make room;
// then idle keep-alive connections, the longest idle first.
func TestLifecycleEvictsToMakeRoom(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.RecvBuffer = 4096
	k := newFakeKernel(t, cfg) // 4 slots
	k.whole = true
	// Slots 0 and 1 idle keep-alive (0 the longer), slot 2 silent since
	// it connected.
	k.connect()
	k.socks[0].send(requestMenu[0])
	k.completeAll(actRecv)
	k.advance(int64(10 * time.Millisecond))
	k.connect()
	k.socks[1].send(requestMenu[0])
	k.completeAll(actRecv)
	k.completeAll(actSend)
	k.advance(int64(10 * time.Millisecond))
	k.connect()
	k.advance(int64(10 * time.Millisecond))
	if n := k.e.local[cEvictedHead] + k.e.local[cEvictedIdle]; n != 0 {
		t.Fatalf("%d evicted with a slot free", n)
	}
	k.connect() // the last slot: room is made for the next
	s2 := k.socks[2]
	if k.e.local[cEvictedHead] != 1 || k.e.conns[s2.slot].phase < phaseAborting {
		t.Fatalf("the silent connection was not evicted: evicted %d head, %d idle", k.e.local[cEvictedHead], k.e.local[cEvictedIdle])
	}
	for range 10 { // its shutdown, its recv's end, its close
		for _, o := range k.opsOf(s2) {
			k.complete(o, 2)
		}
	}
	if !s2.closed {
		t.Fatal("the evicted connection was not closed")
	}
	k.socks[3].send(requestMenu[0])
	k.completeAll(actRecv)
	k.completeAll(actSend)
	k.connect() // the table full again: the idle keep-alive one goes
	if k.e.local[cEvictedIdle] != 1 {
		t.Fatalf("no idle connection evicted: %d head, %d idle", k.e.local[cEvictedHead], k.e.local[cEvictedIdle])
	}
	for _, s := range k.socks {
		s.peerEOF = true
	}
	k.quiesce()
	if n := k.e.local[cClosedEvicted]; n != 2 {
		t.Errorf("%d connections closed as evicted, want 2", n)
	}
}

// TestLifecycleSplice: spliced answers go out whole over several chains,
// answers past the pipes are copied, and a chain cut with bytes in its
// pipe drains it before the pipe carries another answer (the fake kernel
// fails a fill into a pipe that is not empty).
func TestLifecycleSplice(t *testing.T) {
	cfg := lifecycleConfig(4 | 8)
	if cfg.SpliceMin == 0 {
		t.Fatal("lifecycleConfig(4|8) does not splice")
	}
	cfg.RecvBuffer = 4096
	k := newFakeKernel(t, cfg)
	k.whole = true
	for range 3 {
		k.connect()
	}
	for _, s := range k.socks {
		s.send(requestMenu[0])
		s.send(requestMenu[0])
	}
	k.completeAll(actRecv)
	// The first connection's peer resets while its body is in the pipe.
	for _, o := range k.opsOf(k.socks[0]) {
		if o.a.kind == actSplice {
			k.complete(o, 2) // the head
			k.complete(o, 2) // the fill
			k.reset(k.socks[0])
		}
	}
	k.quiesce()
	e := k.e
	if e.local[cSpliced] < 2 || e.local[cSpliceFallback] == 0 || e.local[cPipeDrains] != 1 {
		t.Fatalf("spliced %d, copied %d, drains %d; want >= 2, > 0, 1", e.local[cSpliced], e.local[cSpliceFallback], e.local[cPipeDrains])
	}
	for _, s := range k.socks[1:] {
		if len(s.answers) != 2 {
			t.Errorf("slot %d: %d answers, want 2", s.slot, len(s.answers))
		}
	}
	// Both pipes, the drained one too, carry answers again.
	before := e.local[cSpliced]
	k.connect()
	k.connect()
	for _, s := range k.socks[3:] {
		s.send(requestMenu[0])
	}
	k.completeAll(actRecv)
	k.quiesce()
	if n := e.local[cSpliced] - before; n != 2 {
		t.Fatalf("%d answers spliced after the drain, want 2", n)
	}
}

// h2Menu is what a model HTTP/2 peer may send after its preface: streams
// with knobs (plain paths without RequestKnobs), a body that follows its
// head, a cancel, control frames. Each takes the peer's next stream id.
var h2Menu = []func(p *h2Peer, id uint32){
	func(p *h2Peer, id uint32) { p.request(id, "GET", "/?status=503:50,201&size=30", true) },
	func(p *h2Peer, id uint32) { p.request(id, "GET", "/?delay=60ms&echo=1", true, "x-y", "z") },
	func(p *h2Peer, id uint32) {
		p.request(id, "POST", "/?status=202&size=25000", false, "content-length", "3")
		_ = p.fr.WriteData(id, true, []byte("abc"))
	},
	func(p *h2Peer, id uint32) { p.request(id, "POST", "/?echo=1&delay=60ms", false) }, // its body never ends
	func(p *h2Peer, id uint32) { p.request(id, "HEAD", "/?close=1", true) },
	func(p *h2Peer, id uint32) {
		p.request(id, "GET", "/?status=abc", true)
		_ = p.fr.WritePing(false, [8]byte{1})
	},
	func(p *h2Peer, id uint32) {
		p.request(id, "GET", "/?delay=600ms", true)
		_ = p.fr.WriteRSTStream(id, http2.ErrCodeCancel) // the client gives up
	},
	func(p *h2Peer, id uint32) { p.request(id, "GET", "/", true) },
}

// h2Send is the bytes of h2Menu[i] on s's next stream, after the preface
// if s has sent nothing yet.
func (s *fakeSock) h2Send(i int) string {
	if s.peer == nil {
		s.peer, s.nextStream = newH2Peer(), 1
	}
	h2Menu[i](s.peer, s.nextStream)
	s.nextStream += 2
	return s.peer.take()
}

// TestLifecycleRecvAuto: RecvAuto reads a connection's first bytes with a
// single-shot recv and arms a multishot recv only for a connection that
// stays open after them; one that says Connection: close in its first
// request never has a multishot recv, so it closes behind its answer
// without a half-close and a read to EOF.
func TestLifecycleRecvAuto(t *testing.T) {
	cfg := lifecycleConfig(0)
	cfg.Recv = RecvAuto
	cfg.RecvBuffer, cfg.bufCount = 4096, 16
	k := newFakeKernel(t, cfg)
	k.whole = true
	kinds := func(s *fakeSock) (single, multi int) {
		for _, o := range k.opsOf(s) {
			switch o.a.kind {
			case actRecvPool:
				single++
			case actRecvMulti:
				multi++
			}
		}
		return single, multi
	}

	k.connect()
	closing := k.socks[0]
	if single, multi := kinds(closing); single != 1 || multi != 0 {
		t.Fatalf("a new connection: %d single-shot and %d multishot recvs, want 1 and 0", single, multi)
	}
	closing.send(requestMenu[2]) // Connection: close
	k.completeAll(actRecvPool)
	k.completeAll(actSend)
	k.completeAll(actClose)
	if !closing.closed || closing.shutWR || len(closing.answers) != 1 {
		t.Fatalf("after Connection: close: closed %v, half-closed %v, %d answers; want closed without a half-close, 1 answer",
			closing.closed, closing.shutWR, len(closing.answers))
	}

	k.connect()
	staying := k.socks[1]
	staying.send(requestMenu[0])
	k.completeAll(actRecvPool)
	k.completeAll(actSend)
	if single, multi := kinds(staying); single != 0 || multi != 1 {
		t.Fatalf("after a keep-alive request: %d single-shot and %d multishot recvs, want 0 and 1", single, multi)
	}
	for range 3 {
		staying.send(requestMenu[0])
		k.completeAll(actRecvMulti)
		k.completeAll(actSend)
	}
	if single, multi := kinds(staying); single != 0 || multi != 1 || len(staying.answers) != 4 {
		t.Fatalf("after 4 requests: %d single-shot and %d multishot recvs, %d answers; want 0, 1 and 4", single, multi, len(staying.answers))
	}
	k.quiesce()
}
