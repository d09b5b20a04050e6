package shard

import "zerosys/shard/httpwire"

// input is a connection's received bytes not yet framed: a range of the
// slot's own buffer (the slot mode's recv buffer, or a pool connection's
// stash), then, with a pool, a chain of pool buffers linked through
// bufPool.next, of which the first headOff bytes of the head are framed.
type input struct {
	off, end   uint32
	head, tail int32
	headOff    uint32
}

func (in *input) reset() { *in = input{head: -1, tail: -1} }

// has reports received bytes not yet framed.
func (in *input) has() bool { return in.off < in.end || in.head >= 0 }

// set records n fresh bytes at the start of the slot buffer.
func (in *input) set(n uint32) { in.off, in.end = 0, n }

// hold appends pool buffer bid.
func (in *input) hold(bid uint16, p *bufPool) {
	if in.tail < 0 {
		in.head = int32(bid)
	} else {
		p.next[in.tail] = int32(bid)
	}
	in.tail = int32(bid)
}

// popHead returns the head buffer to the pool.
func (in *input) popHead(p *bufPool) {
	bid := uint16(in.head)
	in.head = p.next[bid]
	if in.head < 0 {
		in.tail = -1
	}
	in.headOff = 0
	p.put(bid)
}

// clear forgets the unframed bytes, returning held buffers to the pool.
func (in *input) clear(p *bufPool) {
	in.off = in.end
	for in.head >= 0 {
		in.popHead(p)
	}
}

// slotBuf is slot's own receive buffer.
func (e *engine) slotBuf(slot uint32) []byte {
	n := uint32(e.cfg.RecvBuffer)
	return e.bufs[slot*n : (slot+1)*n : (slot+1)*n]
}

// frame feeds the connection's unframed input to its protocol until the
// input runs out, the answer queue is full, or the protocol ends the
// connection.
func (e *engine) frame(c *conn) {
	if c.h2 == nil && c.h1.answers == 0 && !c.h1.midRequest {
		switch e.cfg.H2C {
		case H2CAuto:
			if !e.sniffH2(c) {
				return
			}
		case H2COnly:
			e.maybeH2(c)
		}
	}
	if c.h2 != nil {
		e.frameH2(c)
		return
	}
	if c.in.off < c.in.end {
		n, end := c.h1.feed(e.slotBuf(c.slot)[c.in.off:c.in.end], c.in.head >= 0, &c.q, &e.env)
		c.in.off += uint32(n)
		if end == endUpgradeH2 {
			e.onUpgrade(c)
			return
		}
		if end != keepOpen {
			e.finish(c, end == endLinger, reasonNormal)
			return
		}
		if c.in.off < c.in.end {
			return // the queue is full: keep the rest
		}
	}
	if e.pool == nil {
		return
	}
	for c.in.head >= 0 && !c.q.full(e.env.maxPending) {
		bid := uint16(c.in.head)
		b := e.pool.buf(bid)
		n, end := c.h1.feed(b[c.in.headOff:], e.pool.next[bid] >= 0, &c.q, &e.env)
		if end == endUpgradeH2 {
			c.in.headOff += uint32(n)
			if int(c.in.headOff) == len(b) {
				c.in.popHead(e.pool)
			}
			e.onUpgrade(c)
			return
		}
		if end != keepOpen {
			e.finish(c, end == endLinger, reasonNormal)
			return
		}
		c.in.headOff += uint32(n)
		if int(c.in.headOff) < len(b) {
			e.stash(c) // the queue is full: keep the rest
			return
		}
		c.in.popHead(e.pool)
	}
}

// onUpgrade acts on a first request that asked for h2c: HTTP/2 from now
// on, the rest of the input (the client preface) fed to it; or, when its
// settings are not valid, the usual HTTP/1.1 answer.
func (e *engine) onUpgrade(c *conn) {
	req := c.h1.parser.Request()
	var src *h2Source
	if x := &c.h1.cust; x.capLen > 0 {
		head := x.buf[customHeadroom : customHeadroom+x.capLen]
		e.h2src = h2Source{query: head[req.QueryStart:req.QueryEnd], h1: echoOf(head), head: req.Method == httpwire.MethodHead}
		src = &e.h2src
		x.capLen = 0
	}
	if !e.upgradeH2(c, req.Method == httpwire.MethodHead, src) {
		// Answered as HTTP/1.1, by its rules (knobs and delays aside).
		closeAfter := e.env.closeAll || !req.KeepAlive || e.env.endByPolicy(c.h1.answers)
		c.q.push(kindVariant(e.env.kind(), answerVariant(req, closeAfter)), &e.sets)
		if closeAfter {
			e.finish(c, true, reasonNormal)
			return
		}
		e.frame(c)
		return
	}
	e.frameH2(c)
}

// stash moves the unframed rest of a pool connection's only held buffer
// into its slot's own buffer and gives the pool buffer back. A client that
// fills its answer queue and stops reading would otherwise hold a pool
// buffer until its send times out, and enough of them would starve every
// other connection of the shard of buffers. A longer chain (multishot
// completions that arrived before its pause) stays as it is.
func (e *engine) stash(c *conn) {
	bid := c.in.head
	if bid < 0 || e.pool.next[bid] >= 0 || c.in.off < c.in.end {
		return
	}
	n := copy(e.slotBuf(c.slot), e.pool.buf(uint16(bid))[c.in.headOff:])
	c.in.off, c.in.end = 0, uint32(n)
	c.in.popHead(e.pool)
}

// wakeWaiters arms the recvs that found the pool dry, as far as buffers
// have come back.
func (e *engine) wakeWaiters() {
	for len(e.waiters) > 0 && !e.pool.dry() {
		slot := e.waiters[len(e.waiters)-1]
		e.waiters = e.waiters[:len(e.waiters)-1]
		c := &e.conns[slot]
		c.waitBuf = false
		e.step(c)
	}
}

// unwait takes slot out of the waiters (its connection is gone). Rare: only
// while the pool is dry.
func (e *engine) unwait(slot uint32) {
	for i, s := range e.waiters {
		if s == slot {
			e.waiters[i] = e.waiters[len(e.waiters)-1]
			e.waiters = e.waiters[:len(e.waiters)-1]
			break
		}
	}
	e.conns[slot].waitBuf = false
}
