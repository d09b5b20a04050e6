package httpwire

// header parses header (or trailer) field lines from buf[i:]. It returns
// at the end of the section so that the body phase starts cleanly.
func (p *Parser) header(buf []byte, i int) (int, Result) {
	end := len(buf)
	if rem := p.lim.MaxHeaderBytes - p.hdrLen; end-i > rem {
		end = i + rem
	}
	start := i
	st := p.state
	for i < end {
		switch st {
		case stHLine:
			c := buf[i]
			if class[c]&cTok == 0 {
				switch c {
				case '\r':
					if i+1 < end && buf[i+1] == '\n' {
						// The head's end, whole: no turn through stHEndCR.
						i += 2
						p.hdrLen += i - start
						return i, p.endHead()
					}
					st = stHEndCR
					i++
				case '\n':
					if p.flags&fTrailer != 0 {
						return i + 1, p.fail(400, reasonTrailerLF)
					}
					i++
					p.hdrLen += i - start
					return i, p.endHead()
				case ' ', '\t':
					return i + 1, p.fail(400, reasonObsFold)
				case ':':
					return i + 1, p.fail(400, reasonEmptyName)
				default:
					return i + 1, p.fail(400, reasonNameChar)
				}
				continue
			}
			if p.nfields >= p.lim.MaxHeaders {
				return i + 1, p.fail(431, reasonTooManyFields)
			}
			p.nfields++
			if c|0x20 == 'h' && end-i >= 8 && load64(buf[i:])&mask6|lower4 == wordHostSP && p.flags&fTrailer == 0 {
				// "Host: ", in any case, is in nearly every request:
				// straight to its value, the name's scan and classify
				// skipped. The field's bookkeeping is classify's.
				p.kind = kHost
				p.startField()
				i += 6
				st = stHOWS
				continue
			}
			p.nameLen = 0
			p.kind = kNone
			// Only names starting like the four we interpret are
			// recorded; the rest skip the copy.
			if p.flags&fTrailer != 0 {
				p.nameLen = len(p.name) + 1
			} else if l := c | 0x20; l != 'c' && l != 't' && l != 'e' && l != 'h' {
				p.nameLen = len(p.name) + 1
			}
			st = stHName
			// The states of a field line follow each other in order, so
			// a complete line is parsed without going round the loop.
			fallthrough
		case stHName:
			j := i + tokenRun(buf[i:end])
			// A name that starts and ends in buf (the usual case) is
			// classified where it lies; only one split across reads is
			// copied, lower-cased, into p.name.
			name := buf[i:j]
			whole := p.nameLen == 0 && j < end
			if nl := p.nameLen; !whole && nl < len(p.name) {
				for _, c := range buf[i:j] {
					if nl == len(p.name) {
						nl++ // too long to be one of ours
						break
					}
					// c|0x20 lower-cases letters and maps no other tchar
					// onto a letter or '-', so it is exact for our names.
					p.name[nl] = c | 0x20
					nl++
				}
				p.nameLen = nl
			}
			i = j
			if i == end {
				break
			}
			switch buf[i] {
			case ':':
			case ' ', '\t':
				return i + 1, p.fail(400, reasonSpaceColon)
			case '\r', '\n':
				return i + 1, p.fail(400, reasonNoColon)
			default:
				return i + 1, p.fail(400, reasonNameChar)
			}
			switch {
			case whole:
				p.classify(name)
			case p.nameLen < len(p.name):
				p.classify(p.name[:p.nameLen])
			}
			st = stHOWS
			i++
			fallthrough
		case stHOWS:
			for i < end && (buf[i] == ' ' || buf[i] == '\t') {
				i++
			}
			if i == end {
				break
			}
			st = stHVal
			fallthrough
		case stHVal:
			switch {
			case p.kind == kNone:
				i += valueRun(buf[i:end])
			case p.kind == kHost:
				var ok bool
				if i, ok = p.hostValue(buf, i, end); !ok {
					return i, Error
				}
			default:
				for i < end && class[buf[i]]&cValue != 0 {
					if !p.valueByte(buf[i]) {
						return i + 1, Error
					}
					i++
				}
			}
			if i == end {
				break
			}
			switch buf[i] {
			case '\r':
				i++
				if i == end || buf[i] != '\n' {
					st = stHCR
					continue
				}
			case '\n':
				if p.flags&fTrailer != 0 {
					return i + 1, p.fail(400, reasonTrailerLF)
				}
			default:
				return i + 1, p.fail(400, reasonValueChar)
			}
			i++ // the LF
			if !p.endField() {
				return i, Error
			}
			st = stHLine
		case stHCR:
			if buf[i] != '\n' {
				return i + 1, p.fail(400, reasonBareCR)
			}
			i++
			if !p.endField() {
				return i, Error
			}
			st = stHLine
		case stHEndCR:
			if buf[i] != '\n' {
				return i + 1, p.fail(400, reasonBareCR)
			}
			i++
			p.hdrLen += i - start
			return i, p.endHead()
		}
	}
	p.state = st
	p.hdrLen += i - start
	if end < len(buf) {
		return end + 1, p.fail(431, reasonHeadTooLarge)
	}
	return i, NeedMore
}

// The "Host: " fast path: six bytes of a little-endian load, the four
// letters lower-cased (ORing 0x20 into ':' or ' ' would also admit
// control bytes, so those two are compared as they are).
const (
	mask6      = 0xffffffffffff
	lower4     = 0x20202020
	wordHostSP = 'h' | 'o'<<8 | 's'<<16 | 't'<<24 | ':'<<32 | ' '<<40
)

// classify sets p.kind from field name n, compared without regard to case.
func (p *Parser) classify(n []byte) {
	switch len(n) {
	case 4:
		// One load instead of four: the usual request's only field of
		// ours is Host.
		if uint32(n[0])|uint32(n[1])<<8|uint32(n[2])<<16|uint32(n[3])<<24|0x20202020 ==
			'h'|'o'<<8|'s'<<16|'t'<<24 {
			p.kind = kHost
		}
	case 6:
		if lowerIs(n, "expect") {
			p.kind = kExpect
		}
	case 10:
		if lowerIs(n, "connection") {
			p.kind = kConnection
		}
	case 14:
		if lowerIs(n, "content-length") {
			p.kind = kContentLength
		}
	case 17:
		if lowerIs(n, "transfer-encoding") {
			p.kind = kTransferEncoding
			p.flags |= fTESeen
		}
	}
	p.startField()
}

// startField resets the per-field state once the field's kind is known.
func (p *Parser) startField() {
	p.hostSt = hsStart
	p.clDigits, p.clVal = 0, 0
	p.flags &^= fCLSpace
	p.elemLen, p.elemTrim, p.fieldElms, p.elemParams = 0, 0, 0, false
}

// valueByte interprets one byte of a Content-Length, Transfer-Encoding,
// Connection or Expect value (leading OWS already skipped). On error it
// records it and returns false.
func (p *Parser) valueByte(c byte) bool {
	if p.kind == kContentLength {
		switch {
		case c >= '0' && c <= '9':
			if p.flags&fCLSpace != 0 {
				p.fail(400, reasonCLInvalid)
				return false
			}
			if p.clDigits == 19 {
				p.fail(400, reasonCLOverflow)
				return false
			}
			d := int64(c - '0')
			if p.clVal > (1<<63-1-d)/10 {
				p.fail(400, reasonCLOverflow)
				return false
			}
			p.clVal = p.clVal*10 + d
			p.clDigits++
		case c == ' ' || c == '\t':
			if p.clDigits > 0 {
				p.flags |= fCLSpace
			}
		case c == ',':
			// RFC 9110 §8.6 lets a recipient accept a list of identical
			// values; an empty element is never valid here.
			if !p.clCommit() {
				return false
			}
		default:
			p.fail(400, reasonCLInvalid)
			return false
		}
		return true
	}
	switch {
	case c == ',':
		p.elemEnd()
	case p.elemParams:
		// A transfer-parameter: its coding is refused whatever it says.
	case c == ' ' || c == '\t':
		if p.elemLen > 0 {
			if p.elemLen < len(p.elem) {
				p.elem[p.elemLen] = ' '
			}
			p.elemLen++
		}
	case c == ';' && p.kind == kTransferEncoding:
		p.elemParams = true
	default:
		if p.kind == kTransferEncoding && (class[c]&cTok == 0 || p.elemTrim < p.elemLen) {
			// Not a token, or a token with whitespace inside.
			p.flags |= fTEInvalid
		}
		if p.elemLen < len(p.elem) {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			p.elem[p.elemLen] = c
		}
		p.elemLen++
		p.elemTrim = p.elemLen
	}
	return true
}

// clCommit ends one Content-Length element.
func (p *Parser) clCommit() bool {
	if p.clDigits == 0 {
		p.fail(400, reasonCLInvalid)
		return false
	}
	if p.flags&fCLSet != 0 && p.cl != p.clVal {
		p.fail(400, reasonCLConflict)
		return false
	}
	p.flags = p.flags&^fCLSpace | fCLSet
	p.cl = p.clVal
	p.clDigits, p.clVal = 0, 0
	return true
}

// elemEnd ends one comma-list element; empty elements are ignored as
// RFC 9110 §5.6.1 requires.
func (p *Parser) elemEnd() {
	n, params := p.elemTrim, p.elemParams
	p.elemLen, p.elemTrim, p.elemParams = 0, 0, false
	if n == 0 {
		if params {
			p.flags |= fTEInvalid // parameters of no coding
		}
		return
	}
	p.fieldElms++
	if n > len(p.elem) {
		n = 0 // longer than any value we recognise
	}
	e := p.elem[:n]
	switch p.kind {
	case kTransferEncoding:
		if params && string(e) == "chunked" {
			// RFC 9112 §7: chunked defines no parameters; their presence
			// SHOULD be treated as an error.
			p.flags |= fTEInvalid
		}
		if string(e) == "chunked" {
			if p.flags&fTEChunked != 0 {
				p.flags |= fTEChunkedTwice
			}
			p.flags |= fTEChunked | fTELastChunked
		} else {
			p.flags = p.flags&^fTELastChunked | fTEOther
		}
	case kConnection:
		if string(e) == "close" {
			p.flags |= fConnClose
		} else if string(e) == "keep-alive" {
			p.flags |= fConnKeep
		}
	case kExpect:
		if string(e) == "100-continue" {
			p.flags |= fExpect100
		}
	}
}

// What a Host value's check has seen (RFC 9110 §7.2: uri-host [":" port]).
// The same check runs on the authority of an absolute-form target.
const (
	hsStart   uint8 = iota // nothing: an empty host is invalid (RFC 9110 §4.2.1)
	hsReg                  // in a reg-name or IPv4 address
	hsPct1                 // after '%' in a reg-name
	hsPct2                 // after '%' and one hex digit
	hsLitOpen              // just after '[': an IP-literal is never empty
	hsLiteral              // in an IPv6 address
	hsFuture               // in an IPvFuture ("v" HEXDIG "." ...)
	hsAfter                // after the ']' of an IP-literal
	hsPort                 // after ':'
	hsOWS                  // trailing whitespace (a Host field only)
)

// hostDone reports whether a host check may end in state st.
func hostDone(st uint8) bool {
	return st == hsReg || st == hsAfter || st == hsPort || st == hsOWS
}

// hostValue checks Host value bytes from buf[i:end] until one that is not
// a field-value byte (the line end, or an error for the caller). The usual
// name or address and port take a tight loop; the rest goes to hostByte.
// On an invalid value it records the error and returns false with i past
// the offending byte.
func (p *Parser) hostValue(buf []byte, i, end int) (int, bool) {
	st := p.hostSt
	if st <= hsReg {
		// The usual value, a name or address and a port, in tight loops
		// with the state in a register: name bytes eight at a time with
		// their classes ANDed, then one at a time.
		j := i
		for j+8 <= end {
			w := buf[j : j+8 : j+8]
			if class[w[0]]&class[w[1]]&class[w[2]]&class[w[3]]&class[w[4]]&class[w[5]]&class[w[6]]&class[w[7]]&cHost == 0 {
				break
			}
			j += 8
		}
		for j < end && class[buf[j]]&cHost != 0 {
			j++
		}
		if j > i {
			st = hsReg
		}
		i = j
		if st == hsReg && i < end && buf[i] == ':' {
			st = hsPort
			i++
		}
	}
	if st == hsPort {
		for i < end && class[buf[i]]&cDigit != 0 {
			i++
		}
	}
	// The rest, byte by byte: IP-literals, percent-encoding, trailing
	// whitespace and errors.
	for ; i < end; i++ {
		c := buf[i]
		if class[c]&cValue == 0 {
			break // the line end, or a byte the caller refuses
		}
		p.hostSt = st
		if !p.hostByte(c) {
			p.fail(400, reasonHostInvalid)
			return i + 1, false
		}
		st = p.hostSt
	}
	p.hostSt = st
	return i, true
}

// hostByte moves the host check on by one byte; false means the host is
// invalid: userinfo ('@'), a path ('/'), a list (','), obs-text and
// anything else outside the grammar.
func (p *Parser) hostByte(c byte) bool {
	ok := true
	switch st := p.hostSt; {
	case c == ' ' || c == '\t':
		ok = hostDone(st)
		p.hostSt = hsOWS
	case st == hsOWS:
		ok = false
	case st == hsStart && c == '[':
		p.hostSt = hsLitOpen
	case st == hsStart || st == hsReg:
		switch {
		case class[c]&cHost != 0:
			p.hostSt = hsReg
		case c == '%':
			p.hostSt = hsPct1
		case c == ':' && st == hsReg:
			p.hostSt = hsPort
		default:
			ok = false
		}
	case st == hsPct1:
		ok, p.hostSt = class[c]&cHex != 0, hsPct2
	case st == hsPct2:
		ok, p.hostSt = class[c]&cHex != 0, hsReg
	case st == hsLitOpen:
		// RFC 3986 §3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]"
		switch {
		case c == 'v' || c == 'V':
			p.hostSt = hsFuture
		case class[c]&cHex != 0 || c == ':':
			p.hostSt = hsLiteral
		default:
			ok = false
		}
	case st == hsLiteral:
		switch {
		case c == ']':
			p.hostSt = hsAfter
		default:
			ok = class[c]&cHex != 0 || c == ':' || c == '.'
		}
	case st == hsFuture:
		switch {
		case c == ']':
			p.hostSt = hsAfter
		default:
			ok = class[c]&cHost != 0 || c == ':'
		}
	case st == hsAfter:
		ok, p.hostSt = c == ':', hsPort
	case st == hsPort:
		ok = c >= '0' && c <= '9'
	}
	return ok
}

// endField ends a field line. On error it records it and returns false.
func (p *Parser) endField() bool {
	switch p.kind {
	case kNone:
		return true
	case kContentLength:
		return p.clCommit()
	case kHost:
		switch {
		case p.flags&fHostSeen != 0:
			p.fail(400, reasonHostTwice)
			return false
		case !hostDone(p.hostSt):
			// Empty too: an http URI with an empty host is invalid
			// (RFC 9110 §4.2.1), and an origin-form target has one.
			p.fail(400, reasonHostInvalid)
			return false
		}
		p.flags |= fHostSeen
		return true
	}
	p.elemEnd()
	if p.kind == kTransferEncoding && p.fieldElms == 0 {
		p.flags |= fTEEmpty
	}
	return true
}

// endHead decides the framing once the empty line ending the head (or the
// trailer section) has been consumed.
func (p *Parser) endHead() Result {
	f := p.flags
	if f&fTrailer != 0 {
		return p.finish()
	}
	req := RequestInfo{Method: p.method, Minor: p.minor, HeadLen: int32(p.lineLen + p.hdrLen), QueryStart: p.qStart}
	if p.qStart != 0 {
		req.QueryEnd = p.qEnd
	}
	if p.minor == 1 {
		req.KeepAlive = f&fConnClose == 0
	} else {
		req.KeepAlive = f&(fConnKeep|fConnClose) == fConnKeep
	}
	p.req = req
	if f&fHostSeen == 0 && p.minor == 1 {
		// RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1
		// request without Host. HTTP/1.0 needs none (HAProxy's bare
		// option httpchk sends "OPTIONS / HTTP/1.0").
		return p.fail(400, reasonHostMissing)
	}
	switch {
	case f&fTESeen != 0:
		// RFC 9112 §6.1-6.3; every ambiguity is an error, never a guess.
		switch {
		case p.minor == 0:
			return p.fail(400, reasonTE10)
		case f&fCLSet != 0:
			return p.fail(400, reasonTEWithCL)
		case f&fTEEmpty != 0:
			return p.fail(400, reasonTEEmpty)
		case f&fTEInvalid != 0:
			return p.fail(400, reasonTEInvalid)
		case f&fTEChunkedTwice != 0:
			return p.fail(400, reasonTEChunkedTwice)
		case f&(fTEChunked|fTELastChunked) == fTEChunked:
			return p.fail(400, reasonTENotLast)
		case f&fTEOther != 0:
			return p.fail(501, reasonTEUnsupported)
		}
		p.req.HasBody = true
		p.state = stChunkSize
		p.chunkLine, p.chunkDigs, p.chunkSize = 0, 0, 0
	case f&fCLSet != 0 && p.cl > p.lim.MaxBody:
		return p.fail(413, reasonCLTooLarge)
	case f&fCLSet != 0 && p.cl > 0:
		p.req.HasBody = true
		p.remaining = p.cl
		p.state = stBody
	default:
		return p.finish()
	}
	if f&fExpect100 != 0 && p.minor == 1 {
		return Continue
	}
	return NeedMore
}
