package httpwire

// States, in phase order so that Feed can dispatch on ranges.
const (
	// request line
	stStart uint8 = iota // before the method; empty lines allowed
	stMethod
	stTargetStart
	stTarget
	stVersion
	stLineCR  // CR after the version seen
	stStartCR // CR of an empty line seen

	// header and trailer section
	stHLine  // at the start of a field line
	stHName  // in a field name
	stHOWS   // after the colon
	stHVal   // in a field value
	stHCR    // CR after a field value seen
	stHEndCR // CR of the final empty line seen

	// Content-Length body
	stBody

	// chunked body
	stChunkSize     // first hex digit of a chunk size
	stChunkSizeMore // further hex digits
	stChunkAfter    // after the size or an extension: BWS, ';' or CR
	stExtNameStart  // after ';'
	stExtName
	stExtNameEnd // BWS after an extension name
	stExtValStart
	stExtValTok
	stExtQuoted
	stExtQuotedEsc
	stChunkLineCR
	stChunkData
	stChunkDataCR
	stChunkDataLF

	stError = 255
)

// Last state of each phase.
const (
	stLineLast = stStartCR
	stHdrLast  = stHEndCR
)

// Header fields whose values matter for framing.
const (
	kNone uint8 = iota
	kContentLength
	kTransferEncoding
	kConnection
	kExpect
)

// Character classes, as bits of class[c].
const (
	cTok    = 1 << iota // tchar (RFC 9110 §5.6.2)
	cTarget             // VCHAR: allowed in a request-target
	cValue              // field-vchar, SP, HTAB (RFC 9110 §5.5)
	cQd                 // qdtext (RFC 9110 §5.6.4)
	cHex
)

var class = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		var b uint8
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			b |= cTok
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			b |= cTok
		}
		if c >= 0x21 && c <= 0x7e {
			b |= cTarget
		}
		if c == ' ' || c == '\t' || c >= 0x21 && c != 0x7f {
			b |= cValue
		}
		if c == ' ' || c == '\t' || c == 0x21 || c >= 0x23 && c <= 0x5b || c >= 0x5d && c <= 0x7e || c >= 0x80 {
			b |= cQd
		}
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			b |= cHex
		}
		t[c] = b
	}
	return t
}()

func hexVal(c byte) int64 {
	switch {
	case c <= '9':
		return int64(c - '0')
	case c >= 'a':
		return int64(c-'a') + 10
	}
	return int64(c-'A') + 10
}

// Error reasons. They are constants so that Reason never allocates.
const (
	reasonMethod         = "invalid character in method"
	reasonBareCR         = "CR not followed by LF"
	reasonSpaces         = "request line needs exactly two single spaces"
	reasonTarget         = "invalid character in request-target"
	reasonVersion        = "malformed HTTP version"
	reasonVersionUnsup   = "unsupported HTTP version"
	reasonLineTooLong    = "request line too long"
	reasonObsFold        = "obsolete line folding or leading whitespace"
	reasonEmptyName      = "empty header field name"
	reasonNameChar       = "invalid character in header field name"
	reasonSpaceColon     = "whitespace between field name and colon"
	reasonNoColon        = "header field without colon"
	reasonValueChar      = "invalid character in header field value"
	reasonHeadTooLarge   = "header section too large"
	reasonTooManyFields  = "too many header fields"
	reasonCLInvalid      = "invalid content-length"
	reasonCLOverflow     = "content-length overflow"
	reasonCLConflict     = "conflicting content-length values"
	reasonCLTooLarge     = "content-length over body limit"
	reasonTE10           = "transfer-encoding in HTTP/1.0 request"
	reasonTEWithCL       = "content-length with transfer-encoding"
	reasonTEEmpty        = "empty transfer-encoding"
	reasonTEChunkedTwice = "chunked applied more than once"
	reasonTENotLast      = "chunked is not the final transfer coding"
	reasonTEUnsupported  = "unsupported transfer coding"
	reasonChunkSize      = "invalid chunk size"
	reasonChunkOverflow  = "chunk size overflow"
	reasonChunkTooLarge  = "chunked body over body limit"
	reasonChunkExt       = "invalid chunk extension"
	reasonChunkLineLong  = "chunk line too long"
	reasonChunkLF        = "chunk line must end with CRLF"
	reasonChunkDataEnd   = "chunk data not followed by CRLF"
)

// SWAR constants: the same byte in all eight lanes of a word.
const (
	lanes01 = 0x0101010101010101
	lanes20 = 0x2020202020202020
	lanes21 = 0x2121212121212121
	lanes7f = 0x7f7f7f7f7f7f7f7f
	lanes80 = 0x8080808080808080
)

func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// tokenRun returns the length of the longest prefix of b made of tchars.
func tokenRun(b []byte) int {
	for j, c := range b {
		if class[c]&cTok == 0 {
			return j
		}
	}
	return len(b)
}

// targetRun returns the length of the longest prefix of b made of VCHARs.
// Eight bytes are tested at once; the word test may flag a clean word
// (borrows), never miss a bad byte, and a flagged word is rechecked byte
// by byte, so the result is exact.
func targetRun(b []byte) int {
	j := 0
	for j+8 <= len(b) {
		x := load64(b[j:])
		y := x ^ lanes7f
		if ((x-lanes21)&^x|(y-lanes01)&^y|x)&lanes80 != 0 {
			for k := j; k < j+8; k++ {
				if class[b[k]]&cTarget == 0 {
					return k
				}
			}
		}
		j += 8
	}
	for ; j < len(b); j++ {
		if class[b[j]]&cTarget == 0 {
			return j
		}
	}
	return len(b)
}

// valueRun returns the length of the longest prefix of b made of
// field-value bytes (VCHAR, obs-text, SP, HTAB). Same word trick as
// targetRun; HTAB always takes the byte-wise recheck.
func valueRun(b []byte) int {
	j := 0
	for j+8 <= len(b) {
		x := load64(b[j:])
		y := x ^ lanes7f
		if ((x-lanes20)&^x|(y-lanes01)&^y)&lanes80 != 0 {
			for k := j; k < j+8; k++ {
				if class[b[k]]&cValue == 0 {
					return k
				}
			}
		}
		j += 8
	}
	for ; j < len(b); j++ {
		if class[b[j]]&cValue == 0 {
			return j
		}
	}
	return len(b)
}
