package shard

import "zerosys/shard/httpwire"

// maxRuns bounds the distinct answer runs queued on one connection. A run is
// consecutive answers of one variant, so 16 pipelined GETs are one run.
const maxRuns = 16

// run is a queued batch of identical answers.
type run struct {
	v     variant
	count uint32
}

// deadline kinds: what a connection is waiting for when its timer fires.
const (
	dlNone uint8 = iota
	dlHeader
	dlIdle
	dlSend
	dlLinger
	dlAbort // backstop: an aborted connection still has operations in flight
)

// conn is one slot of a shard's preallocated connection table. A slot is
// owned by one TCP connection from accept to the completion of its close;
// then its generation changes and it returns to the free list.
type conn struct {
	fd       int32
	gen      uint32
	inflight uint32 // SQEs in the ring for this slot, not yet completed (zero-copy notifications included)

	recvArmed   bool
	sending     bool
	closing     bool // no further requests are read; finish the queue, then close
	linger      bool // close by shutdown(SHUT_WR) and reading to EOF: unread input may be on its way
	lingering   bool // shutdown(SHUT_WR) done; reading to EOF
	aborting    bool // give up: shutdown(SHUT_RDWR) whatever is in flight, then close
	shutAll     bool // shutdown(SHUT_RDWR) queued to end what is in flight
	closeQueued bool // the close is in flight; nothing else may be queued
	peerEOF     bool // the peer closed its side
	recvCancel  bool // a cancel of the multishot recv is in flight (paused, not closing)
	waitBuf     bool // waiting for the buffer pool to arm a recv
	midRequest  bool // the parser holds part of a request
	answered    bool // at least one request was framed
	dlKind      uint8

	// parseOff..parseEnd are received bytes not yet framed, left in the
	// slot's buffer when the answer queue was full.
	parseOff, parseEnd uint32

	// With a buffer ring: received buffers not yet framed, in order, linked
	// through bufRing.next; heldOff bytes of the first are framed.
	heldHead, heldTail int32
	heldOff            uint32

	runs    [maxRuns]run
	qhead   uint8
	qlen    uint8
	pending uint32 // answers queued, not yet sent

	sendOff, sendEnd uint32 // progress of the send in flight within its buffer
	sendK            uint32 // answers the send in flight carries
	sendSet          uint8  // which set of prepared responses it reads
	sendZC           bool   // it is a zero-copy send

	reqStart int64 // monotonic ns when the current request's first byte arrived
	deadline int64 // monotonic ns; 0 = none

	parser httpwire.Parser
}

// enqueue appends one answer of variant v.
func (c *conn) enqueue(v variant) {
	c.pending++
	if c.qlen > 0 {
		last := &c.runs[(int(c.qhead)+int(c.qlen)-1)%maxRuns]
		if last.v == v {
			last.count++
			return
		}
	}
	c.runs[(int(c.qhead)+int(c.qlen))%maxRuns] = run{v: v, count: 1}
	c.qlen++
}

// hasInput reports received bytes not yet framed.
func (c *conn) hasInput() bool { return c.parseOff < c.parseEnd || c.heldHead >= 0 }

// hold appends buffer bid to the connection's received input.
func (c *conn) hold(bid uint16, b *bufRing) {
	if c.heldTail < 0 {
		c.heldHead = int32(bid)
	} else {
		b.next[c.heldTail] = int32(bid)
	}
	c.heldTail = int32(bid)
}

// head is the run the next send starts with.
func (c *conn) head() *run { return &c.runs[c.qhead] }

// popSent removes k answers from the head run.
func (c *conn) popSent(k uint32) {
	r := c.head()
	r.count -= k
	c.pending -= k
	if r.count == 0 {
		c.qhead = (c.qhead + 1) % maxRuns
		c.qlen--
	}
}

// dropQueue forgets every queued answer (the peer is gone).
func (c *conn) dropQueue() {
	c.qlen, c.qhead, c.pending = 0, 0, 0
}

// full reports whether no further request may be framed until answers drain:
// this is what bounds a client that pipelines faster than it reads.
func (c *conn) full(maxPending uint32) bool {
	return c.qlen >= maxRuns || c.pending >= maxPending
}
