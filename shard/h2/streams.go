package h2

import (
	w "zerosys/shard/h2wire"
)

// The open streams are found through index, an open-addressing table
// (linear probing) from a stream id to its slot, twice the slots' size:
// every frame names a stream, and a scan of the slots for each cost 12%
// of the CPU under h2load.

// bucket is the index bucket an id starts probing at. Client streams are
// odd, so id>>1 numbers them 0, 1, 2, ...
func (c *Conn) bucket(id uint32) int { return int(id>>1) & (len(c.index) - 1) }

// find returns the open stream id, or nil.
func (c *Conn) find(id uint32) *stream {
	for b := c.bucket(id); ; b = (b + 1) & (len(c.index) - 1) {
		i := c.index[b]
		if i < 0 {
			return nil
		}
		if s := &c.streams[i]; s.id == id {
			return s
		}
	}
}

// alloc opens stream id in a free slot (the caller checked the limit).
func (c *Conn) alloc(id uint32) *stream {
	n := len(c.freeSlots) - 1
	i := c.freeSlots[n]
	c.freeSlots = c.freeSlots[:n]
	s := &c.streams[i]
	*s = stream{id: id, state: stOpen, sendWin: c.peerWindow, recvWin: int64(c.lim.StreamWindow), wantLen: -1, next: -1, slot: i}
	b := c.bucket(id)
	for c.index[b] >= 0 {
		b = (b + 1) & (len(c.index) - 1)
	}
	c.index[b] = int16(i)
	c.open++
	c.Counters.Streams++
	return s
}

// unindex removes slot s from the index, shifting later entries of its
// probe run back so every lookup still finds them (no tombstones).
func (c *Conn) unindex(s *stream) {
	mask := len(c.index) - 1
	b := c.bucket(s.id)
	for int32(c.index[b]) != s.slot {
		b = (b + 1) & mask
	}
	for {
		c.index[b] = -1
		for j := (b + 1) & mask; ; j = (j + 1) & mask {
			k := c.index[j]
			if k < 0 {
				return
			}
			// k may move to b if its home bucket is not in (b, j].
			home := c.bucket(c.streams[k].id)
			if (j-home)&mask >= (j-b)&mask {
				c.index[b] = k
				b = j
				break
			}
		}
	}
}

// release closes a stream: its slot is free, its answer dropped.
func (c *Conn) release(s *stream) {
	if s.inList {
		c.unlist(s)
	}
	c.unindex(s)
	c.freeSlots = append(c.freeSlots, s.slot)
	if s.answered {
		c.doneTags = append(c.doneTags, s.tag) // room for every stream: never grows
	}
	s.state, s.body, s.tail, s.hdr, s.ix, s.trailers = stIdle, nil, nil, nil, nil, nil
	c.open--
}

// noteReset remembers a stream we reset, so its late frames are read
// away rather than taken for a protocol error.
func (c *Conn) noteReset(id uint32) {
	c.resets[c.resetAt] = id
	c.resetAt = (c.resetAt + 1) % len(c.resets)
}

func (c *Conn) wasReset(id uint32) bool {
	for _, r := range c.resets {
		if r == id {
			return true
		}
	}
	return false
}

// Respond answers the complete request on stream id with a plain HPACK
// header block (static-table names, literals without indexing) and a
// body (ignored for a HEAD): Answer with only those.
func (c *Conn) Respond(id uint32, head, body []byte, tag uint32) bool {
	return c.Answer(id, &Answer{Head: head, Body: body, Tag: tag})
}

// Answer is what a stream is answered with.
type Answer struct {
	Head    []byte   // the plain header block
	Indexed *Indexed // its indexed forms, or nil (see Indexed)
	// Body then Tail, sent as if they were one; ignored for a HEAD.
	Body, Tail []byte
	// Trailers is a plain header block sent after the body, ending the
	// stream (RFC 9113 §8.1: gRPC's status); nil: the body ends it.
	Trailers []byte
	Tag      uint32 // the caller's, given back by DoneTag
}

// Answer answers the complete request on stream id with a. The header
// block is written into the output at once when HeadFits says so (a
// block built for one stream may then be reused at once); otherwise it
// must stay unchanged until the stream is done, like the body and the
// trailers: then the tag comes out of DoneTag, whether the answer went
// out whole or the stream was reset first. It reports false when the
// stream is gone (reset by the peer); the tag is then not kept.
func (c *Conn) Answer(id uint32, a *Answer) bool {
	s := c.find(id)
	if s == nil || s.state != stHalfClosedRemo || s.answered {
		return false
	}
	s.answered, s.hdr, s.ix, s.tag, s.trailers = true, a.Head, a.Indexed, a.Tag, a.Trailers
	if !s.head {
		s.body, s.tail = a.Body, a.Tail
		if len(s.body) == 0 {
			s.body, s.tail = a.Tail, nil
		}
	}
	if c.fits(headBound(a.Head, a.Indexed)) {
		c.writeHead(s) // before the DATA of streams already listed
		if s.state == stIdle {
			return true // no body: the stream is done
		}
	}
	c.list(s)
	c.pump()
	return true
}

// HeadFits reports whether Respond would write a plain header block of n
// bytes into the output at once. Right after Feed returned a request, it
// does for a block of up to Limits.HeadRoom bytes.
func (c *Conn) HeadFits(n int) bool { return c.fits(headBound(nil, nil) + n) }

// fits reports whether a header block of n bytes, size updates included,
// goes into the output now.
func (c *Conn) fits(n int) bool {
	frames := (n + int(c.peerMaxFrame) - 1) / int(c.peerMaxFrame)
	return c.room() >= n+w.HeaderLen*max(frames, 1)+ctlReserve
}

// DoneTag returns the tag of a stream whose answer no longer needs its
// bytes; ok is false when there is none left.
func (c *Conn) DoneTag() (tag uint32, ok bool) {
	n := len(c.doneTags)
	if n == 0 {
		return 0, false
	}
	tag = c.doneTags[n-1]
	c.doneTags = c.doneTags[:n-1]
	return tag, true
}

// Abandon drops every stream (the connection is gone): their tags come
// out of DoneTag.
func (c *Conn) Abandon() {
	for i := range c.streams {
		if s := &c.streams[i]; s.state != stIdle {
			c.release(s)
		}
	}
}

// Mark gives open stream id a mark of the caller's, reported with its
// EventComplete (DoneMark): what the request's head said that the
// answer, drawn once the body is in, depends on.
func (c *Conn) Mark(id uint32, m uint8) {
	if s := c.find(id); s != nil {
		s.mark = m
	}
}

// Open reports whether stream id is open: the peer has not reset it and
// its answer is not all in the output.
func (c *Conn) Open(id uint32) bool { return c.find(id) != nil }

// ResetStream refuses or abandons stream id (the caller's choice, e.g. a
// request it will not answer).
func (c *Conn) ResetStream(id uint32, code w.ErrCode) {
	if c.find(id) != nil {
		c.streamError(id, code)
	}
}

// GoAway starts a graceful end (a drain): GOAWAY with the last stream
// taken, no new stream, the open ones answered, then EventClose.
func (c *Conn) GoAway() Event {
	if c.goAway {
		return c.closeEvent()
	}
	c.draining = true
	c.out = w.AppendGoAway(c.out, c.lastStream, w.ErrCodeNo)
	c.goAway = true
	return c.maybeDone()
}

func (c *Conn) list(s *stream) {
	i := s.slot
	s.next, s.inList = -1, true
	if c.pendTail < 0 {
		c.pending = i
	} else {
		c.streams[c.pendTail].next = i
	}
	c.pendTail = i
}

func (c *Conn) unlist(s *stream) {
	i := s.slot
	prev := int32(-1)
	for j := c.pending; j >= 0; j = c.streams[j].next {
		if j == i {
			if prev < 0 {
				c.pending = s.next
			} else {
				c.streams[prev].next = s.next
			}
			if c.pendTail == i {
				c.pendTail = prev
			}
			break
		}
		prev = j
	}
	s.next, s.inList = -1, false
}

// pump writes answers into the output while it has room and the windows
// allow: each stream's HEADERS, then its DATA a frame at a time, taking
// the streams in turn so one large answer does not hold back the others.
func (c *Conn) pump() {
	for progress := true; progress && c.pending >= 0; {
		progress = false
		for i := c.pending; i >= 0; {
			s := &c.streams[i]
			next := s.next
			wrote, full := c.writeSome(s)
			if full {
				return
			}
			progress = progress || wrote
			i = next
		}
	}
}

// writeSome writes stream s's HEADERS, one DATA frame of its body, or
// its trailers. It reports whether it wrote, and whether the output is
// full.
func (c *Conn) writeSome(s *stream) (wrote, full bool) {
	if s.hdr != nil {
		if !c.fits(headBound(s.hdr, s.ix)) {
			return false, true
		}
		c.writeHead(s)
		return true, false
	}
	if c.state == csPreface {
		// An upgraded connection (ResetUpgrade) sends DATA only once
		// the client's preface is in: a client may read the 101 and what
		// follows into one buffer (curl 7.88's holds 32 KiB).
		return false, false
	}
	rest := int64(len(s.body) + len(s.tail))
	if rest == 0 { // only the trailers are left
		if !c.fits(headBound(s.trailers, nil)) {
			return false, true
		}
		c.writeBlock(s, s.trailers, nil, true)
		s.trailers = nil
		c.progress++
		c.finish(s)
		return true, false
	}
	k := min(rest, int64(c.peerMaxFrame), c.sendWin, s.sendWin, int64(c.room()-w.HeaderLen-c.reserve()))
	if k <= 0 {
		return false, c.room() < w.HeaderLen+c.reserve()+1
	}
	var flags uint8
	if k == rest && s.trailers == nil {
		flags = w.FlagEndStream
	}
	c.out = w.AppendHeader(c.out, uint32(k), w.FrameData, flags, s.id)
	// One frame may take the end of the body and the start of the tail.
	n := min(k, int64(len(s.body)))
	c.out = append(c.out, s.body[:n]...)
	s.body = s.body[n:]
	if len(s.body) == 0 {
		s.body, s.tail = s.tail, nil
		c.out = append(c.out, s.body[:k-n]...)
		s.body = s.body[k-n:]
	}
	c.sendWin -= k
	s.sendWin -= k
	c.progress++
	if flags != 0 {
		c.finish(s)
	}
	return true, false // trailers: written on the next turn
}

// writeHead writes stream s's HEADERS in the form the encoder picks; the
// caller checked it fits. A stream with neither body nor trailers is
// done.
func (c *Conn) writeHead(s *stream) {
	last := len(s.body) == 0 && s.trailers == nil
	c.writeBlock(s, s.hdr, s.ix, last)
	s.hdr, s.ix = nil, nil
	s.state = stAnswering
	c.progress++
	if last {
		c.finish(s)
	}
}

// writeBlock writes a header block of stream s, plain or one of ix's as
// the encoder picks, as HEADERS (and CONTINUATIONs past the peer's frame
// size), ending the stream when end says so.
func (c *Conn) writeBlock(s *stream, plain []byte, ix *Indexed, end bool) {
	var updates [maxUpdates]byte
	pre, hdr := c.enc.pick(plain, ix, updates[:0])
	n := len(pre) + len(hdr)
	flags := uint8(w.FlagEndHeaders)
	if end {
		flags |= w.FlagEndStream
	}
	first := min(n, int(c.peerMaxFrame)) // at least 16384: the updates fit
	if first < n {
		flags &^= w.FlagEndHeaders
	}
	c.out = w.AppendHeader(c.out, uint32(first), w.FrameHeaders, flags, s.id)
	c.out = append(append(c.out, pre...), hdr[:first-len(pre)]...)
	for off := first - len(pre); off < len(hdr); {
		k := min(len(hdr)-off, int(c.peerMaxFrame))
		var f uint8
		if off+k == len(hdr) {
			f = w.FlagEndHeaders
		}
		c.out = w.AppendHeader(c.out, uint32(k), w.FrameContinuation, f, s.id)
		c.out = append(c.out, hdr[off:off+k]...)
		off += k
	}
}

// finish ends a stream whose answer is all in the output.
func (c *Conn) finish(s *stream) {
	c.release(s)
	c.maybeDone()
}

// CanFeed reports whether the output has room for what Feed may write:
// when it has not, the caller sends first.
func (c *Conn) CanFeed() bool { return c.room() >= c.reserve() }

// Progress counts the answer frames written: it stands still while every
// answer waits for the client.
func (c *Conn) Progress() uint64 { return c.progress }

// Draining reports that GOAWAY was sent or received: no new stream.
func (c *Conn) Draining() bool { return c.draining }

// AnswersPending reports answers not all in the output yet: waiting for
// the client's window or for room.
func (c *Conn) AnswersPending() bool { return c.pending >= 0 }
