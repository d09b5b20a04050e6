package h2

import (
	"time"

	w "zerosys/shard/h2wire"
)

// startFrame checks a frame header against the connection's state before
// any of its payload is read (RFC 9113 §4-§6), and sets up its reception.
func (c *Conn) startFrame(now int64) Event {
	h := &c.cur.h
	c.Counters.FramesIn[min(int(h.Type), FrameKinds-1)]++
	if h.Length > w.DefaultMaxFrameSize { // the SETTINGS_MAX_FRAME_SIZE we keep (§4.2)
		return c.connError(w.ErrCodeFrameSize)
	}
	if c.state == csSettings && (h.Type != w.FrameSettings || h.Flags&w.FlagAck != 0) {
		return c.connError(w.ErrCodeProtocol) // §3.4: the preface's first frame is SETTINGS
	}
	if c.hStream != 0 && (h.Type != w.FrameContinuation || h.StreamID != c.hStream) {
		return c.connError(w.ErrCodeProtocol) // §6.10: a header block is contiguous
	}
	id := h.StreamID
	switch h.Type {
	case w.FrameData:
		if id == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		if int64(h.Length) > c.recvWin {
			return c.connError(w.ErrCodeFlowControl)
		}
		c.recvWin -= int64(h.Length)
		if s := c.find(id); s != nil {
			switch {
			case s.state != stOpen:
				c.streamError(id, w.ErrCodeStreamClosed) // half-closed (remote): §5.1
			case int64(h.Length) > s.recvWin:
				c.streamError(id, w.ErrCodeFlowControl)
			default:
				s.recvWin -= int64(h.Length)
			}
		} else if ev, ok := c.noStream(id); !ok {
			return ev
		}
		if h.Length == 0 && h.Flags&w.FlagEndStream == 0 {
			if ev := c.flood(now); ev != EventNone {
				return ev // empty DATA frames, over and over (CVE-2019-9518)
			}
		}
	case w.FrameHeaders:
		if id == 0 || id%2 == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		c.hbuf = c.hbuf[:0]
		c.hStream, c.hEnd, c.hPrio = id, h.Flags&w.FlagEndStream != 0, h.Flags&w.FlagPriority != 0
		c.hPadded = h.Flags&w.FlagPadded != 0
		c.hFate = fateNew
		if s := c.find(id); s != nil {
			c.hFate = fateTrailers
			if s.state != stOpen {
				c.hFate, c.hCode = fateReset, w.ErrCodeStreamClosed
			}
		} else if id <= c.lastStream {
			if !c.wasReset(id) {
				return c.connError(w.ErrCodeStreamClosed) // §5.1: closed after END_STREAM both ways
			}
			c.hFate, c.hCode = fateDrop, 0 // a stream we reset: decoded for the table, then dropped
		} else {
			c.lastStream = id
			if c.open >= int(c.lim.MaxStreams) || c.draining {
				c.hFate, c.hCode = fateReset, w.ErrCodeRefusedStream // §5.1.2
				c.Counters.Refused++
			}
		}
	case w.FrameContinuation:
		if c.hStream == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
	case w.FramePriority:
		if id == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
	case w.FrameRSTStream:
		if id == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		if h.Length != 4 {
			return c.connError(w.ErrCodeFrameSize)
		}
		if id > c.lastStream && c.find(id) == nil {
			return c.connError(w.ErrCodeProtocol) // idle: §5.1
		}
	case w.FrameSettings:
		if id != 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		if h.Flags&w.FlagAck != 0 && h.Length != 0 || h.Length%6 != 0 {
			return c.connError(w.ErrCodeFrameSize)
		}
	case w.FramePushPromise:
		return c.connError(w.ErrCodeProtocol) // §8.4: clients do not push
	case w.FramePing:
		if id != 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		if h.Length != 8 {
			return c.connError(w.ErrCodeFrameSize)
		}
	case w.FrameGoAway:
		if id != 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		if h.Length < 8 {
			return c.connError(w.ErrCodeFrameSize)
		}
	case w.FrameWindowUpdate:
		if h.Length != 4 {
			return c.connError(w.ErrCodeFrameSize)
		}
		if id != 0 && id > c.lastStream && c.find(id) == nil {
			return c.connError(w.ErrCodeProtocol) // idle
		}
	}
	if h.Length == 0 {
		return c.endFrame(now)
	}
	return EventNone
}

// noStream deals with DATA for a stream not open: one we reset is read
// away; one that never opened (idle) or ended both ways is a connection
// error.
func (c *Conn) noStream(id uint32) (Event, bool) {
	switch {
	case id > c.lastStream:
		return c.connError(w.ErrCodeProtocol), false
	case c.wasReset(id):
		return EventNone, true
	}
	return c.connError(w.ErrCodeStreamClosed), false
}

// The fates of a header block being received.
const (
	fateNew      = iota // opens a stream
	fateTrailers        // ends an open stream
	fateReset           // decoded, then the stream is reset with hCode
	fateDrop            // decoded, then dropped
)

// payload takes the current frame's payload from in.
func (c *Conn) payload(in []byte, now int64) (int, Event) {
	f := &c.cur
	k := int(min(uint32(len(in)), f.h.Length-f.got))
	switch f.h.Type {
	case w.FrameData:
		body := in[:k]
		if f.h.Flags&w.FlagPadded != 0 && !f.padRead {
			f.padLen, f.padRead = uint32(in[0]), true
			if f.padLen >= f.h.Length {
				return k, c.connError(w.ErrCodeProtocol) // §6.1: padding as long as the frame
			}
			body = body[1:]
		}
		// Only the data counts towards content-length, not the padding.
		dataEnd := int64(f.h.Length) - int64(f.padLen)
		pos := int64(f.got) + int64(k-len(body))
		if end := min(pos+int64(len(body)), dataEnd); end > pos {
			if s := c.find(f.h.StreamID); s != nil && s.state == stOpen {
				s.gotLen += end - pos
			}
		}
	case w.FrameHeaders, w.FrameContinuation:
		if len(c.hbuf)+k > c.lim.MaxHeaderBlock+int(w.DefaultMaxFrameSize) || len(c.hbuf)+k > cap(c.hbuf) {
			c.Counters.BlockTooLong++
			return k, c.connError(w.ErrCodeEnhanceYourCalm) // an endless header block (CONTINUATION flood)
		}
		if f.got == 0 && f.h.Type == w.FrameHeaders {
			c.hFrameStart = len(c.hbuf)
		}
		c.hbuf = append(c.hbuf, in[:k]...)
	default:
		if len(c.fbuf)+k <= cap(c.fbuf) {
			c.fbuf = append(c.fbuf, in[:k]...)
		}
	}
	f.got += uint32(k)
	if f.got < f.h.Length {
		return k, EventNone
	}
	return k, c.endFrame(now)
}

// endFrame acts on a frame whose payload has all arrived.
func (c *Conn) endFrame(now int64) Event {
	c.inFrame = false
	h := c.cur.h
	p := c.fbuf
	c.fbuf = c.fbuf[:0]
	switch h.Type {
	case w.FrameData:
		return c.endData(h)
	case w.FrameHeaders:
		if ev, ok := c.stripHeadersPrefix(h); !ok {
			return ev
		}
		if h.Flags&w.FlagEndHeaders != 0 {
			return c.endHeaders()
		}
	case w.FrameContinuation:
		if h.Flags&w.FlagEndHeaders != 0 {
			return c.endHeaders()
		}
	case w.FrameSettings:
		return c.settings(h, p, now)
	case w.FramePing:
		if h.Flags&w.FlagAck == 0 {
			if ev := c.flood(now); ev != EventNone {
				return ev
			}
			c.out = w.AppendHeader(c.out, 8, w.FramePing, w.FlagAck, 0)
			c.out = append(c.out, p...)
		}
	case w.FrameGoAway:
		c.peerGone = true
		c.draining = true
		return c.maybeDone()
	case w.FrameWindowUpdate:
		return c.windowUpdate(h, p)
	case w.FrameRSTStream:
		c.Counters.PeerResets++
		if s := c.find(h.StreamID); s != nil {
			c.release(s)
		}
		if ev := c.flood(now); ev != EventNone {
			return ev // rapid reset (CVE-2023-44487)
		}
		return c.maybeDone()
	case w.FramePriority:
		switch {
		case h.Length != 5:
			c.streamError(h.StreamID, w.ErrCodeFrameSize)
		case w.Uint32(p)&w.MaxWindow == h.StreamID:
			c.streamError(h.StreamID, w.ErrCodeProtocol) // §5.3.1: a stream cannot depend on itself
		}
	}
	return EventNone
}

// endData: flow control given back, and the request complete at
// END_STREAM.
func (c *Conn) endData(h w.FrameHeader) Event {
	c.recvUnacked += h.Length
	if c.recvUnacked >= c.lim.ConnWindow/2 {
		c.out = w.AppendWindowUpdate(c.out, 0, c.recvUnacked)
		c.recvWin += int64(c.recvUnacked)
		c.recvUnacked = 0
	}
	s := c.find(h.StreamID)
	if s == nil || s.state != stOpen {
		return EventNone
	}
	if s.wantLen >= 0 && s.gotLen > s.wantLen {
		c.streamError(s.id, w.ErrCodeProtocol) // §8.1.1: more body than content-length
		return EventNone
	}
	if h.Flags&w.FlagEndStream == 0 {
		s.unacked += h.Length
		if s.unacked >= c.lim.StreamWindow/2 {
			c.out = w.AppendWindowUpdate(c.out, s.id, s.unacked)
			s.recvWin += int64(s.unacked)
			s.unacked = 0
		}
		return EventNone
	}
	return c.complete(s)
}

// complete ends a request's body; the stream is the caller's to answer.
func (c *Conn) complete(s *stream) Event {
	if s.wantLen >= 0 && s.gotLen != s.wantLen {
		c.streamError(s.id, w.ErrCodeProtocol) // §8.1.1: less body than content-length
		return EventNone
	}
	s.state = stHalfClosedRemo
	c.Done, c.DoneMark = s.id, s.mark
	return EventComplete
}

// stripHeadersPrefix removes a HEADERS frame's pad length, priority and
// padding from the header block, leaving the fragment.
func (c *Conn) stripHeadersPrefix(h w.FrameHeader) (Event, bool) {
	frag := c.hbuf[c.hFrameStart:]
	pad := 0
	if c.hPadded {
		if len(frag) < 1 {
			return c.connError(w.ErrCodeFrameSize), false
		}
		pad = int(frag[0])
		frag = frag[1:]
	}
	if c.hPrio {
		if len(frag) < 5 {
			return c.connError(w.ErrCodeFrameSize), false
		}
		if w.Uint32(frag)&w.MaxWindow == h.StreamID {
			// §5.3.1: a stream depending on itself. The block is still
			// decoded, so the table stays in step.
			c.hFate, c.hCode = fateReset, w.ErrCodeProtocol
		}
		frag = frag[5:]
	}
	if pad > len(frag) {
		return c.connError(w.ErrCodeProtocol), false // §6.2: padding longer than the rest
	}
	n := copy(c.hbuf[c.hFrameStart:], frag[:len(frag)-pad])
	c.hbuf = c.hbuf[:c.hFrameStart+n]
	return EventNone, true
}

// settings applies a SETTINGS frame (§6.5) and acknowledges it.
func (c *Conn) settings(h w.FrameHeader, p []byte, now int64) Event {
	if h.Flags&w.FlagAck != 0 {
		return EventNone
	}
	if c.state == csSettings {
		c.state = csOpen
	} else if ev := c.flood(now); ev != EventNone {
		return ev
	}
	if ev := c.applySettings(p); ev != EventNone {
		return ev
	}
	c.out = w.AppendHeader(c.out, 0, w.FrameSettings, w.FlagAck, 0)
	c.pump()
	return EventNone
}

// validSettings reports whether p is a SETTINGS payload every value of
// which is allowed (§6.5.2), without acting on it.
func validSettings(p []byte) bool {
	if len(p)%6 != 0 {
		return false
	}
	for ; len(p) >= 6; p = p[6:] {
		v := w.Uint32(p[2:])
		switch uint16(p[0])<<8 | uint16(p[1]) {
		case w.SettingEnablePush:
			if v > 1 {
				return false
			}
		case w.SettingInitialWindowSize:
			if v > w.MaxWindow {
				return false
			}
		case w.SettingMaxFrameSize:
			if v < w.DefaultMaxFrameSize || v > w.MaxFrameSizeLimit {
				return false
			}
		}
	}
	return true
}

// applySettings applies a SETTINGS payload; an invalid value is a
// connection error.
func (c *Conn) applySettings(p []byte) Event {
	for ; len(p) >= 6; p = p[6:] {
		v := w.Uint32(p[2:])
		switch uint16(p[0])<<8 | uint16(p[1]) {
		case w.SettingEnablePush:
			if v > 1 {
				return c.connError(w.ErrCodeProtocol)
			}
		case w.SettingInitialWindowSize:
			if v > w.MaxWindow {
				return c.connError(w.ErrCodeFlowControl)
			}
			// §6.9.2: every stream's window moves by the difference.
			delta := int64(v) - c.peerWindow
			c.peerWindow = int64(v)
			for i := range c.streams {
				if s := &c.streams[i]; s.state != stIdle {
					s.sendWin += delta
					if s.sendWin > w.MaxWindow {
						return c.connError(w.ErrCodeFlowControl)
					}
				}
			}
		case w.SettingMaxFrameSize:
			if v < w.DefaultMaxFrameSize || v > w.MaxFrameSizeLimit {
				return c.connError(w.ErrCodeProtocol)
			}
			c.peerMaxFrame = v
		case w.SettingHeaderTableSize:
			// It bounds our answers' dynamic table from the
			// acknowledgement on, which is queued before any HEADERS
			// written after this.
			c.enc.setLimit(v)
		}
		// Unknown settings are ignored.
	}
	return EventNone
}

// windowUpdate applies a WINDOW_UPDATE (§6.9).
func (c *Conn) windowUpdate(h w.FrameHeader, p []byte) Event {
	inc := int64(w.Uint32(p) & w.MaxWindow)
	if h.StreamID == 0 {
		if inc == 0 {
			return c.connError(w.ErrCodeProtocol)
		}
		c.sendWin += inc
		if c.sendWin > w.MaxWindow {
			return c.connError(w.ErrCodeFlowControl)
		}
		c.pump()
		return c.maybeDone()
	}
	s := c.find(h.StreamID)
	if s == nil {
		return EventNone // closed: a late update
	}
	if inc == 0 {
		c.streamError(s.id, w.ErrCodeProtocol)
		return c.maybeDone()
	}
	s.sendWin += inc
	if s.sendWin > w.MaxWindow {
		c.streamError(s.id, w.ErrCodeFlowControl)
		return c.maybeDone()
	}
	c.pump()
	return c.maybeDone()
}

// flood counts one frame that costs us work for none of the peer's
// (SETTINGS, PING, RST_STREAM, empty DATA); past FloodPerSecond in a
// second, the connection ends with ENHANCE_YOUR_CALM.
func (c *Conn) flood(now int64) Event {
	if now-c.floodAt > int64(time.Second) {
		c.floodAt, c.floods = now, 0
	}
	c.floods++
	if c.floods > c.lim.FloodPerSecond {
		c.Counters.Floods++
		return c.connError(w.ErrCodeEnhanceYourCalm)
	}
	return EventNone
}

// connError sends GOAWAY with code (§5.4.1): the connection is over.
func (c *Conn) connError(code w.ErrCode) Event {
	if c.goAway && c.state == csGoingAway {
		return EventClose
	}
	c.Counters.ConnErrors[code]++
	c.out = w.AppendGoAway(c.out, c.lastStream, code)
	c.goAway, c.closing, c.state = true, true, csGoingAway
	c.inFrame, c.hStream = false, 0
	return EventClose
}

// streamError resets stream id with code (§5.4.2).
func (c *Conn) streamError(id uint32, code w.ErrCode) {
	c.Counters.StreamErrors[code]++
	c.out = w.AppendRSTStream(c.out, id, code)
	if s := c.find(id); s != nil {
		c.release(s)
	}
	c.noteReset(id)
	c.maybeDone() // the last stream of a draining connection: Closing says so
}

// maybeDone ends the connection when the peer (or our drain) ended it and
// no stream is left.
func (c *Conn) maybeDone() Event {
	if c.draining && c.open == 0 && !c.closing {
		if !c.goAway {
			c.out = w.AppendGoAway(c.out, c.lastStream, w.ErrCodeNo)
			c.goAway = true
		}
		c.closing = true
		c.state = csGoingAway
		return EventClose
	}
	return EventNone
}
