package httpwire

// chunk parses a chunked body (RFC 9112 §7.1) from buf[i:], up to the
// trailer section, which the header phase handles.
func (p *Parser) chunk(buf []byte, i int) (int, Result) {
	for i < len(buf) {
		st := p.state
		if st <= stChunkLineCR {
			// A chunk-size line has no natural bound (extensions are
			// free-form), so each one gets the header budget.
			if p.chunkLine >= p.lim.MaxHeaderBytes {
				return i + 1, p.fail(400, reasonChunkLineLong)
			}
			p.chunkLine++
		}
		c := buf[i]
		switch st {
		case stChunkSize:
			if class[c]&cHex == 0 {
				return i + 1, p.fail(400, reasonChunkSize)
			}
			p.chunkSize = hexVal(c)
			p.chunkDigs = 1
			p.state = stChunkSizeMore
		case stChunkSizeMore:
			if class[c]&cHex != 0 {
				// 15 hex digits are 60 bits: never an overflow, and far
				// beyond any MaxBody.
				if p.chunkDigs == 15 {
					return i + 1, p.fail(400, reasonChunkOverflow)
				}
				p.chunkSize = p.chunkSize<<4 | hexVal(c)
				p.chunkDigs++
				break
			}
			if p.chunkSize > p.lim.MaxBody-p.bodyTotal {
				return i + 1, p.fail(413, reasonChunkTooLarge)
			}
			p.bodyTotal += p.chunkSize
			p.state = stChunkAfter
			p.chunkLine--
			continue // c is looked at again in stChunkAfter
		case stChunkAfter:
			switch c {
			case ' ', '\t':
				p.state = stChunkBWS
			case ';':
				p.state = stExtNameStart
			case '\r':
				p.state = stChunkLineCR
			case '\n':
				return i + 1, p.fail(400, reasonChunkLF)
			default:
				return i + 1, p.fail(400, reasonChunkExt)
			}
		case stChunkBWS:
			// RFC 9112 §7.1.1: BWS only before a ';' that starts an
			// extension.
			switch c {
			case ' ', '\t':
			case ';':
				p.state = stExtNameStart
			default:
				return i + 1, p.fail(400, reasonChunkBWS)
			}
		case stExtNameStart:
			if class[c]&cTok != 0 {
				p.state = stExtName
			} else if c != ' ' && c != '\t' {
				return i + 1, p.fail(400, reasonChunkExt)
			}
		case stExtName:
			switch {
			case class[c]&cTok != 0:
			case c == ' ' || c == '\t':
				p.state = stExtNameEnd
			case c == '=':
				p.state = stExtValStart
			case c == ';':
				p.state = stExtNameStart
			case c == '\r':
				p.state = stChunkLineCR
			default:
				return i + 1, p.fail(400, reasonChunkExt)
			}
		case stExtNameEnd:
			// BWS after a name leads to '=' or, as the next extension's
			// leading BWS, to ';'.
			switch c {
			case ' ', '\t':
			case '=':
				p.state = stExtValStart
			case ';':
				p.state = stExtNameStart
			default:
				return i + 1, p.fail(400, reasonChunkBWS)
			}
		case stExtValStart:
			switch {
			case class[c]&cTok != 0:
				p.state = stExtValTok
			case c == '"':
				p.state = stExtQuoted
			case c == ' ' || c == '\t':
			default:
				return i + 1, p.fail(400, reasonChunkExt)
			}
		case stExtValTok:
			if class[c]&cTok == 0 {
				p.state = stChunkAfter
				p.chunkLine--
				continue
			}
		case stExtQuoted:
			switch {
			case c == '"':
				p.state = stChunkAfter
			case c == '\\':
				p.state = stExtQuotedEsc
			case class[c]&cQd == 0:
				return i + 1, p.fail(400, reasonChunkExt)
			}
		case stExtQuotedEsc:
			if class[c]&cValue == 0 {
				return i + 1, p.fail(400, reasonChunkExt)
			}
			p.state = stExtQuoted
		case stChunkLineCR:
			if c != '\n' {
				return i + 1, p.fail(400, reasonChunkLF)
			}
			i++
			p.chunkLine = 0
			if p.chunkSize == 0 {
				// Last chunk: the trailer section follows, parsed like a
				// header section (sharing its budgets).
				p.flags |= fTrailer
				p.state = stHLine
				return i, NeedMore
			}
			p.remaining = p.chunkSize
			p.state = stChunkData
			continue
		case stChunkData:
			k := len(buf) - i
			if int64(k) < p.remaining {
				p.remaining -= int64(k)
				return len(buf), NeedMore
			}
			i += int(p.remaining)
			p.remaining = 0
			p.state = stChunkDataCR
			continue
		case stChunkDataCR:
			if c != '\r' {
				return i + 1, p.fail(400, reasonChunkDataEnd)
			}
			p.state = stChunkDataLF
		case stChunkDataLF:
			if c != '\n' {
				return i + 1, p.fail(400, reasonChunkDataEnd)
			}
			p.state = stChunkSize
		}
		i++
	}
	return i, NeedMore
}
