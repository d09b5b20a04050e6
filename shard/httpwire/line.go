package httpwire

// Packed method names, compared against Parser.mword.
const (
	wordGET     = 'G'<<16 | 'E'<<8 | 'T'
	wordHEAD    = 'H'<<24 | 'E'<<16 | 'A'<<8 | 'D'
	wordPOST    = 'P'<<24 | 'O'<<16 | 'S'<<8 | 'T'
	wordCONNECT = 'C'<<48 | 'O'<<40 | 'N'<<32 | 'N'<<24 | 'E'<<16 | 'C'<<8 | 'T'
	wordOPTIONS = 'O'<<48 | 'P'<<40 | 'T'<<32 | 'I'<<24 | 'O'<<16 | 'N'<<8 | 'S'
	wordPRI     = 'P'<<16 | 'R'<<8 | 'I'

	// The same as load32 reads them.
	wordGETSP  = 'G' | 'E'<<8 | 'T'<<16 | ' '<<24
	wordHEADLE = 'H' | 'E'<<8 | 'A'<<16 | 'D'<<24
	wordPOSTLE = 'P' | 'O'<<8 | 'S'<<16 | 'T'<<24
)

// isPreface reports the method and target of the HTTP/2 client preface,
// "PRI * HTTP/2.0" (RFC 9113 §3.4): it must reach the version check, which
// answers it 505 rather than 400.
func (p *Parser) isPreface() bool { return p.tform == tfAsterisk && p.mlen == 3 && p.mword == wordPRI }

// What the first bytes of a request-target make of it (RFC 9112 §3.2).
const (
	tfNone      uint8 = iota // nothing seen yet
	tfOrigin                 // "/...": origin-form
	tfAsterisk               // "*": asterisk-form, nothing may follow
	tfScheme                 // ALPHA *(scheme byte): an absolute-form's scheme, so far
	tfColon                  // scheme ":" seen; "//" must follow
	tfSlash                  // scheme ":/" seen
	tfAuthority              // scheme "://": in the authority of an absolute-form
	tfAbsolute               // past the authority: the path and query of an absolute-form
)

// line parses the request line from buf[i:]. It returns as soon as the
// line is complete so that the header phase starts with its own budget.
func (p *Parser) line(buf []byte, i int) (int, Result) {
	// Bounding the scan by the remaining budget makes every inner loop
	// limit-safe without a per-byte counter check.
	end := len(buf)
	if rem := p.lim.MaxRequestLine - p.lineLen; end-i > rem {
		end = i + rem
	}
	start := i
	st := p.state
	for i < end {
		switch st {
		case stStart:
			c := buf[i]
			if class[c]&cTok == 0 {
				switch c {
				case '\r':
					st = stStartCR
				case '\n':
					// RFC 9112 §2.2: empty lines before a request are ignored.
				case ' ', '\t':
					return i + 1, p.fail(400, reasonSpaces)
				default:
					return i + 1, p.fail(400, reasonMethod)
				}
				i++
				continue
			}
			st = stMethod
			// The states of the line follow each other in order, so a
			// complete line is parsed without going round the loop.
			fallthrough
		case stMethod:
			if m, n := p.quickMethod(buf[i:end]); m != 0 {
				p.method = m
				i += n
			} else {
				j := i + tokenRun(buf[i:end])
				w, ml := p.mword, p.mlen
				for _, c := range buf[i:j] {
					if ml == 9 {
						break // longer than any method we name
					}
					w = w<<8 | uint64(c)
					ml++
				}
				p.mword, p.mlen = w, ml
				i = j
				if i == end {
					break
				}
				if buf[i] != ' ' {
					if buf[i] == '\r' || buf[i] == '\n' || buf[i] == '\t' {
						return i + 1, p.fail(400, reasonSpaces)
					}
					return i + 1, p.fail(400, reasonMethod)
				}
				switch {
				case ml == 3 && w == wordGET:
					p.method = MethodGet
				case ml == 4 && w == wordHEAD:
					p.method = MethodHead
				case ml == 4 && w == wordPOST:
					p.method = MethodPost
				case ml == 7 && w == wordCONNECT:
					// A 2xx to CONNECT would open a tunnel (RFC 9110 §9.3.6);
					// an origin server has none to open, whatever the target.
					p.method = MethodOther
					return i + 1, p.fail(501, reasonConnect)
				default:
					p.method = MethodOther
				}
			}
			st = stTargetStart
			i++
			fallthrough
		case stTargetStart:
			if i == end {
				break
			}
			c := buf[i]
			if class[c]&cTarget == 0 {
				if c == ' ' || c == '\r' || c == '\n' {
					return i + 1, p.fail(400, reasonSpaces)
				}
				return i + 1, p.fail(400, reasonTarget)
			}
			switch {
			case c == '/':
				p.tform = tfOrigin
			case c == '*':
				p.tform = tfAsterisk
			case c|0x20 >= 'a' && c|0x20 <= 'z':
				p.tform = tfScheme
			default:
				return i + 1, p.fail(400, reasonTargetForm)
			}
			st = stTarget
			i++
			fallthrough
		case stTarget:
			// Until the form is known, look at each byte; then skip.
			for i < end && p.tform != tfOrigin && p.tform != tfAbsolute && class[buf[i]]&cTarget != 0 {
				if !p.targetForm(buf[i]) {
					return i + 1, p.fail(400, reasonTargetForm)
				}
				i++
			}
			for i < end {
				if p.pct > 0 {
					// RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG
					if class[buf[i]]&cHex == 0 {
						return i + 1, p.fail(400, reasonPctEncoding)
					}
					p.pct--
					i++
					continue
				}
				if class[buf[i]]&cPath != 0 { // "/" alone, the usual target, needs no run
					i += targetRun(buf[i:end])
					if i == end {
						break
					}
				}
				if buf[i] == '?' {
					// RFC 3986 §3.4: the query starts after the first '?'.
					if p.qStart == 0 {
						p.qStart = int32(p.lineLen + i - start + 1)
					}
					i++
					continue
				}
				if buf[i] != '%' {
					break
				}
				p.pct = 2
				i++
			}
			if i == end {
				break
			}
			if p.pct > 0 {
				return i + 1, p.fail(400, reasonPctEncoding)
			}
			if buf[i] != ' ' {
				if buf[i] == '\r' || buf[i] == '\n' {
					// "GET /\r\n": HTTP/0.9 style, no version.
					return i + 1, p.fail(400, reasonSpaces)
				}
				return i + 1, p.fail(400, reasonTarget)
			}
			if p.qStart != 0 {
				p.qEnd = int32(p.lineLen + i - start)
			}
			switch p.tform {
			case tfScheme, tfColon, tfSlash:
				return i + 1, p.fail(400, reasonTargetForm)
			case tfAuthority:
				if !hostDone(p.hostSt) {
					return i + 1, p.fail(400, reasonTargetForm)
				}
			case tfAsterisk:
				if (p.mlen != 7 || p.mword != wordOPTIONS) && !p.isPreface() {
					return i + 1, p.fail(400, reasonTargetForm)
				}
			}
			st = stVersion
			p.vpos = 0
			i++
			fallthrough
		case stVersion:
			if i == end {
				break
			}
			// Fast path for the common case; it must agree with the
			// byte-wise path below, which handles every split.
			if p.vpos == 0 && end-i >= 10 && buf[i] == 'H' && buf[i+1] == 'T' &&
				buf[i+2] == 'T' && buf[i+3] == 'P' && buf[i+4] == '/' && buf[i+5] == '1' &&
				buf[i+6] == '.' && (buf[i+7] == '1' || buf[i+7] == '0') &&
				buf[i+8] == '\r' && buf[i+9] == '\n' {
				p.vmajor, p.vminor = '1', buf[i+7]
				i += 10
				p.lineLen += i - start
				return i, p.endLine()
			}
			c := buf[i]
			switch vp := p.vpos; vp {
			case 0, 1, 2, 3, 4:
				if c != "HTTP/"[vp] {
					if c == ' ' {
						return i + 1, p.fail(400, reasonSpaces)
					}
					return i + 1, p.fail(400, reasonVersion)
				}
			case 5:
				if c < '0' || c > '9' {
					return i + 1, p.fail(400, reasonVersion)
				}
				p.vmajor = c
			case 6:
				if c != '.' {
					return i + 1, p.fail(400, reasonVersion)
				}
			case 7:
				if c < '0' || c > '9' {
					return i + 1, p.fail(400, reasonVersion)
				}
				p.vminor = c
			default:
				switch c {
				case '\r':
					st = stLineCR
				case '\n':
					i++
					p.lineLen += i - start
					return i, p.endLine()
				case ' ', '\t':
					return i + 1, p.fail(400, reasonSpaces)
				default:
					return i + 1, p.fail(400, reasonVersion)
				}
			}
			p.vpos++
			i++
		case stStartCR:
			if buf[i] != '\n' {
				return i + 1, p.fail(400, reasonBareCR)
			}
			st = stStart
			i++
		case stLineCR:
			if buf[i] != '\n' {
				return i + 1, p.fail(400, reasonBareCR)
			}
			i++
			p.lineLen += i - start
			return i, p.endLine()
		}
	}
	p.state = st
	p.lineLen += i - start
	if end < len(buf) {
		// buf[end] is the first byte over the budget.
		return end + 1, p.fail(414, reasonLineTooLong)
	}
	return i, NeedMore
}

// quickMethod recognises "GET ", "HEAD " and "POST " at the start of b, a
// fresh method, in one or two compares; it returns the method and the
// bytes up to the space, or 0 when the byte-wise path must decide.
func (p *Parser) quickMethod(b []byte) (Method, int) {
	if p.mlen != 0 || len(b) < 5 {
		return 0, 0
	}
	switch load32(b) {
	case wordGETSP:
		p.mword, p.mlen = wordGET, 3
		return MethodGet, 3
	case wordHEADLE:
		if b[4] == ' ' {
			p.mword, p.mlen = wordHEAD, 4
			return MethodHead, 4
		}
	case wordPOSTLE:
		if b[4] == ' ' {
			p.mword, p.mlen = wordPOST, 4
			return MethodPost, 4
		}
	}
	return 0, 0
}

// targetForm moves the request-target's form check on by one byte; false
// means the target has no valid form.
func (p *Parser) targetForm(c byte) bool {
	switch p.tform {
	case tfAsterisk:
		return false // "*" is the whole target
	case tfScheme:
		if c == ':' {
			p.tform = tfColon
			return true
		}
		// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
		return class[c]&cDigit != 0 || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '+' || c == '-' || c == '.'
	case tfColon:
		p.tform = tfSlash
		return c == '/'
	case tfSlash:
		p.tform, p.hostSt = tfAuthority, hsStart
		return c == '/'
	case tfAuthority:
		// The authority is a host and port, checked like a Host field;
		// userinfo ('@') is an error in an http(s) URI (RFC 9110 §4.2.4).
		if c == '/' || c == '?' {
			p.tform = tfAbsolute
			return hostDone(p.hostSt)
		}
		return p.hostByte(c)
	}
	return true
}

// endLine checks the version once the line is complete: only then is
// "HTTP/2.0" known to be well-formed rather than a prefix of garbage.
// HTTP/1.2 to 1.9 are processed as 1.1 (RFC 9110 §2.5: a higher minor
// version is compatible).
func (p *Parser) endLine() Result {
	if p.vmajor != '1' {
		return p.fail(505, reasonVersionUnsup)
	}
	if p.isPreface() {
		return p.fail(400, reasonTargetForm) // "PRI *" in HTTP/1.x
	}
	p.minor = 0
	if p.vminor != '0' {
		p.minor = 1
	}
	p.state = stHLine
	return NeedMore
}
