package httpwire

// Packed method names, compared against Parser.mword.
const (
	wordGET  = 'G'<<16 | 'E'<<8 | 'T'
	wordHEAD = 'H'<<24 | 'E'<<16 | 'A'<<8 | 'D'
	wordPOST = 'P'<<24 | 'O'<<16 | 'S'<<8 | 'T'
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
			j := i + tokenRun(buf[i:end])
			w, ml := p.mword, p.mlen
			for _, c := range buf[i:j] {
				if ml == 5 {
					break
				}
				w = w<<8 | uint32(c)
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
			default:
				p.method = MethodOther
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
			st = stTarget
			i++
			fallthrough
		case stTarget:
			i += targetRun(buf[i:end])
			if i == end {
				break
			}
			if buf[i] != ' ' {
				if buf[i] == '\r' || buf[i] == '\n' {
					// "GET /\r\n": HTTP/0.9 style, no version.
					return i + 1, p.fail(400, reasonSpaces)
				}
				return i + 1, p.fail(400, reasonTarget)
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

// endLine checks the version once the line is complete: only then is
// "HTTP/2.0" known to be well-formed rather than a prefix of garbage.
func (p *Parser) endLine() Result {
	if p.vmajor != '1' || (p.vminor != '0' && p.vminor != '1') {
		return p.fail(505, reasonVersionUnsup)
	}
	p.minor = p.vminor - '0'
	p.state = stHLine
	return NeedMore
}
