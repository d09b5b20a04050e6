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
	stChunkBWS      // BWS after the size or an extension: only ';' may follow
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
	kHost
)

// Character classes, as bits of class[c].
const (
	cTok    = 1 << iota // tchar (RFC 9110 §5.6.2)
	cTarget             // VCHAR: allowed in a request-target
	cValue              // field-vchar, SP, HTAB (RFC 9110 §5.5)
	cQd                 // qdtext (RFC 9110 §5.6.4)
	cHex
	cHost  // reg-name byte of a Host (RFC 3986 §3.2.2: unreserved, sub-delims but ','; '%' is checked apart)
	cPath  // request-target byte taken as it is: pchar but '%', and "/" (RFC 3986 §3.3); "?" is looked at
	cDigit // DIGIT
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
		alnum := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		switch {
		case alnum, c == '-', c == '.', c == '_', c == '~', // unreserved
			c == '!', c == '$', c == '&', c == '\'', c == '(', c == ')', c == '*', c == '+', c == ';', c == '=':
			// sub-delims without ',': a comma makes Host a list of values
			b |= cHost
		}
		if c >= '0' && c <= '9' {
			b |= cDigit
		}
		if b&cHost != 0 || c == ',' || c == ':' || c == '@' || c == '/' {
			b |= cPath // unreserved, sub-delims, ":", "@", "/"; "?" stops a run to mark the query
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
	reasonChunkBWS       = "whitespace after a chunk size or extension must lead to ';'"
	reasonTrailerLF      = "trailer section lines must end with CRLF"
	reasonConnect        = "CONNECT is not supported: this is an origin server, not a proxy"
	reasonTargetForm     = "request-target is not origin-form, absolute-form or (OPTIONS only) asterisk-form"
	reasonHostMissing    = "HTTP/1.1 request without Host"
	reasonHostTwice      = "more than one Host field"
	reasonHostInvalid    = "invalid Host value"
	reasonPctEncoding    = "invalid percent-encoding in request-target"
	reasonTEInvalid      = "transfer-encoding is not a list of tokens, or chunked has parameters"
)

// SWAR constants: the same byte in all eight lanes of a word.
const (
	lanes01 = 0x0101010101010101
	lanes20 = 0x2020202020202020
	lanes21 = 0x2121212121212121
	lanes7f = 0x7f7f7f7f7f7f7f7f
	lanes80 = 0x8080808080808080
)

// load32 reads b's first four bytes as a little-endian word.
func load32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// load64 reads b's first eight bytes as a little-endian word.
func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// lowerIs reports whether tchars n, lower-cased, are s (lower case, the
// same length). c|0x20 lower-cases letters and maps no other tchar onto a
// letter or '-', so the comparison is exact for field names.
func lowerIs(n []byte, s string) bool {
	for k := range len(s) {
		if n[k]|0x20 != s[k] {
			return false
		}
	}
	return true
}

// tokenRun returns the length of the longest prefix of b made of tchars.
func tokenRun(b []byte) int { return classRun(b, cTok) }

// classRun returns the length of the longest prefix of b whose bytes all
// have a class bit of mask. Eight bytes are looked up at a time and their
// classes ANDed, with one branch per word instead of one per byte.
func classRun(b []byte, mask uint8) int {
	j := 0
	for j+8 <= len(b) {
		w := b[j : j+8 : j+8]
		if class[w[0]]&class[w[1]]&class[w[2]]&class[w[3]]&class[w[4]]&class[w[5]]&class[w[6]]&class[w[7]]&mask == 0 {
			break
		}
		j += 8
	}
	for j < len(b) && class[b[j]]&mask != 0 {
		j++
	}
	return j
}

// targetRun returns the length of the longest prefix of b made of bytes a
// request-target takes as they are (cPath). It stops at '%', which needs
// its two hex digits checked, and at anything else for the caller to
// judge.
func targetRun(b []byte) int { return classRun(b, cPath) }

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
