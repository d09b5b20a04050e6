package h2

import (
	"bytes"

	w "zerosys/shard/h2wire"
)

// endHeaders decodes a complete header block and acts on it: a new
// request, trailers ending one, or a block decoded only to keep the
// HPACK table in step.
func (c *Conn) endHeaders() Event {
	id, fate, end := c.hStream, c.hFate, c.hEnd
	c.hStream = 0
	f, err := c.decodeFields(fate == fateTrailers)
	if err != nil {
		return c.connError(w.ErrCodeCompression) // §4.3
	}
	switch fate {
	case fateDrop:
		return EventNone
	case fateReset:
		c.streamError(id, c.hCode)
		return EventNone
	case fateTrailers:
		s := c.find(id)
		if f.malformed || !end {
			c.streamError(id, w.ErrCodeProtocol) // §8.1: trailers end the stream, and carry no pseudo-fields
			return EventNone
		}
		return c.complete(s)
	}
	if f.tooLarge {
		// More decoded than the SETTINGS_MAX_HEADER_LIST_SIZE we
		// announced: an HPACK bomb (small references to a large entry),
		// or just too much. Refused as excessive load.
		c.Counters.ListTooLarge++
		c.streamError(id, w.ErrCodeEnhanceYourCalm)
		return EventNone
	}
	if f.malformed || !f.hasMethod || !f.connect && (!f.hasScheme || len(c.Req.Path) == 0) ||
		f.connect && (f.hasScheme || f.hasPath || !f.hasAuthority) {
		c.streamError(id, w.ErrCodeProtocol) // §8.3.1: a malformed request
		return EventNone
	}
	s := c.alloc(id)
	s.wantLen = f.contentLength
	if end {
		if s.wantLen > 0 {
			c.streamError(id, w.ErrCodeProtocol) // a body announced and none sent
			return EventNone
		}
		s.state = stHalfClosedRemo
	}
	c.Req.Stream, c.Req.Complete, c.Req.Fields = id, end, c.fieldBuf
	c.Req.Head = string(c.Req.Method) == "HEAD"
	s.head = c.Req.Head
	return EventRequest
}

// fields is what a header block said, as far as a server needs it.
type fields struct {
	malformed                                   bool
	hasMethod, hasScheme, hasPath, hasAuthority bool
	connect                                     bool
	contentLength                               int64
	tooLarge                                    bool // the decoded list is over the limit
}

// decodeFields decodes the header block in hbuf, keeping the request's
// pseudo-fields in Req and checking every field (RFC 9113 §8.2, §8.3).
// It decodes the whole block even once the request is known malformed:
// the HPACK table must stay in step with the peer's.
func (c *Conn) decodeFields(trailers bool) (fields, error) {
	f := fields{contentLength: -1}
	c.reqBuf, c.fieldBuf = c.reqBuf[:0], c.fieldBuf[:0]
	c.Req = Request{}
	keep := false
	regular := false
	size := 0
	c.dec.Start(c.hbuf)
	for {
		name, value, ok, err := c.dec.Next()
		if err != nil {
			return f, err
		}
		if !ok {
			return f, nil
		}
		// RFC 9113 §6.5.2 counts 32 bytes per field on top of its name
		// and value. Past the limit the block is only decoded, not
		// checked: a bomb costs us no more than its own bytes.
		if size += len(name) + len(value) + 32; size > c.lim.MaxHeaderBlock {
			f.tooLarge = true
			continue
		}
		if !validValue(value) {
			f.malformed = true
		}
		if len(name) > 0 && name[0] == ':' {
			if regular || trailers {
				f.malformed = true // §8.3: pseudo-fields come first, and only in a request head
				continue
			}
			switch string(name) {
			case ":method":
				f.malformed = f.malformed || f.hasMethod
				f.hasMethod, f.connect = true, string(value) == "CONNECT"
				c.Req.Method = c.keep(value)
			case ":path":
				f.malformed = f.malformed || f.hasPath
				f.hasPath = true
				c.Req.Path = c.keep(value)
			case ":scheme":
				f.malformed = f.malformed || f.hasScheme
				f.hasScheme = true
			case ":authority":
				f.malformed = f.malformed || f.hasAuthority
				f.hasAuthority = true
				c.Req.Authority = c.keep(value)
			default:
				f.malformed = true // :status, or one RFC 9113 does not define
			}
			continue
		}
		if !regular {
			// The pseudo-fields came first (§8.3): the path is known.
			keep = c.lim.FieldsFor != "" && !trailers && bytes.Contains(c.Req.Path, []byte(c.lim.FieldsFor))
		}
		regular = true
		if !validName(name) {
			f.malformed = true
			continue
		}
		if keep {
			// Within the list's bound: the room is there (fieldBufSize).
			c.fieldBuf = append(append(append(append(c.fieldBuf, name...), ": "...), value...), "\r\n"...)
		}
		switch string(name) {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			f.malformed = true // §8.2.2: connection-specific
		case "te":
			f.malformed = f.malformed || string(value) != "trailers"
		case "content-type":
			c.Req.GRPC = isGRPC(value)
		case "content-length":
			n, ok := parseLength(value)
			if !ok || f.contentLength >= 0 && f.contentLength != n {
				f.malformed = true
			}
			f.contentLength = n
		}
	}
}

// keep copies a decoded value into reqBuf, where it stays until the next
// header block; what does not fit is cut (a request's own limits bound it).
func (c *Conn) keep(v []byte) []byte {
	start := len(c.reqBuf)
	n := min(len(v), cap(c.reqBuf)-start)
	c.reqBuf = append(c.reqBuf, v[:n]...)
	return c.reqBuf[start:]
}

// validName: a field name is lowercase token characters (§8.2.1).
func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if !nameChar[ch] {
			return false
		}
	}
	return true
}

// validValue: no NUL, CR or LF, and no whitespace at either end (§8.2.1).
func validValue(b []byte) bool {
	for _, ch := range b {
		if badValueChar[ch] {
			return false
		}
	}
	if n := len(b); n > 0 && (b[0] == ' ' || b[0] == '\t' || b[n-1] == ' ' || b[n-1] == '\t') {
		return false
	}
	return true
}

// parseLength parses a content-length value: digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// nameChar is RFC 9110 §5.6.2's tchar without the uppercase letters.
var nameChar = func() (t [256]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
	}
	for _, ch := range "!#$%&'*+-.^_`|~" {
		t[ch] = true
	}
	return t
}()

// badValueChar is what a field value may not hold.
var badValueChar = [256]bool{0: true, '\r': true, '\n': true}

// isGRPC reports gRPC's content-type: application/grpc, or with +proto,
// +json, ... or parameters; media types are matched without regard to
// case (RFC 9110 §8.3.1).
func isGRPC(ct []byte) bool {
	const t = "application/grpc"
	if len(ct) < len(t) {
		return false
	}
	for i := range len(t) {
		c := ct[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return len(ct) == len(t) || ct[len(t)] == '+' || ct[len(t)] == ';'
}
