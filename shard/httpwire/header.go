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
					st = stHEndCR
					i++
				case '\n':
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
			p.nameLen = 0
			p.kind = kNone
			// Only names starting like the four we interpret are
			// recorded; the rest skip the copy.
			if p.flags&fTrailer != 0 {
				p.nameLen = len(p.name) + 1
			} else if l := c | 0x20; l != 'c' && l != 't' && l != 'e' {
				p.nameLen = len(p.name) + 1
			}
			st = stHName
			// The states of a field line follow each other in order, so
			// a complete line is parsed without going round the loop.
			fallthrough
		case stHName:
			j := i + tokenRun(buf[i:end])
			if nl := p.nameLen; nl < len(p.name) {
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
			if p.nameLen < len(p.name) {
				p.classify()
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
			if p.kind == kNone {
				i += valueRun(buf[i:end])
			} else {
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
				fallthrough
			case '\n':
				i++
				if !p.endField() {
					return i, Error
				}
				st = stHLine
			default:
				return i + 1, p.fail(400, reasonValueChar)
			}
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

// classify sets p.kind from the recorded lower-cased field name.
func (p *Parser) classify() {
	n := p.name[:p.nameLen]
	switch len(n) {
	case 6:
		if string(n) == "expect" {
			p.kind = kExpect
		}
	case 10:
		if string(n) == "connection" {
			p.kind = kConnection
		}
	case 14:
		if string(n) == "content-length" {
			p.kind = kContentLength
		}
	case 17:
		if string(n) == "transfer-encoding" {
			p.kind = kTransferEncoding
			p.flags |= fTESeen
		}
	}
	p.clDigits, p.clVal = 0, 0
	p.flags &^= fCLSpace
	p.elemLen, p.elemTrim, p.fieldElms = 0, 0, 0
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
	switch c {
	case ',':
		p.elemEnd()
	case ' ', '\t':
		if p.elemLen > 0 {
			if p.elemLen < len(p.elem) {
				p.elem[p.elemLen] = ' '
			}
			p.elemLen++
		}
	default:
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
	n := p.elemTrim
	p.elemLen, p.elemTrim = 0, 0
	if n == 0 {
		return
	}
	p.fieldElms++
	if n > len(p.elem) {
		n = 0 // longer than any value we recognise
	}
	e := p.elem[:n]
	switch p.kind {
	case kTransferEncoding:
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

// endField ends a field line. On error it records it and returns false.
func (p *Parser) endField() bool {
	switch p.kind {
	case kNone:
		return true
	case kContentLength:
		return p.clCommit()
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
	req := RequestInfo{Method: p.method, Minor: p.minor}
	if p.minor == 1 {
		req.KeepAlive = f&fConnClose == 0
	} else {
		req.KeepAlive = f&(fConnKeep|fConnClose) == fConnKeep
	}
	p.req = req
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
