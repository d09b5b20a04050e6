package httpwire

// Limits bounds what a request may use. The zero value means the defaults;
// a zero or negative field takes its default.
type Limits struct {
	// MaxRequestLine bounds the request line in bytes, including its line
	// end and any empty lines before it. Exceeding it yields 414.
	// Default 8192.
	MaxRequestLine int
	// MaxHeaderBytes bounds the header block (everything after the request
	// line, including the final empty line) and, as a shared budget, the
	// chunked trailer section. Exceeding it yields 431. It also bounds each
	// chunk-size line (exceeding that yields 400). Default 8192.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header fields (trailer fields share
	// the budget). Exceeding it yields 431. Default 100.
	MaxHeaders int
	// MaxBody bounds the body in bytes: the Content-Length, or the sum of
	// all chunk sizes. Exceeding it yields 413; a Content-Length over it is
	// refused as soon as the head is parsed. Default 1<<20.
	MaxBody int64
}

// Default limits, used for zero fields of Limits.
const (
	DefaultMaxRequestLine = 8192
	DefaultMaxHeaderBytes = 8192
	DefaultMaxHeaders     = 100
	DefaultMaxBody        = 1 << 20
)

// Method classifies the request method. Only GET, HEAD and POST get their
// own value; every other valid token is MethodOther. The zero value means
// "no request parsed yet".
type Method uint8

// Methods. Matching is exact and case-sensitive (RFC 9110 §9.1): "get" is
// MethodOther.
const (
	MethodGet Method = iota + 1
	MethodHead
	MethodPost
	MethodOther
)

// String returns the method name, or "OTHER" for MethodOther.
func (m Method) String() string {
	switch m {
	case MethodGet:
		return "GET"
	case MethodHead:
		return "HEAD"
	case MethodPost:
		return "POST"
	case MethodOther:
		return "OTHER"
	}
	return "NONE"
}

// Result is the event that made Feed stop.
type Result uint8

// Results of Feed.
const (
	// NeedMore: all of the buffer was consumed and the current request
	// is not complete yet.
	NeedMore Result = iota
	// Continue: the head of an HTTP/1.1 request carrying
	// "Expect: 100-continue" and a body has just been parsed; the caller
	// may send "100 Continue" before feeding the body.
	Continue
	// Request: a whole request, body included, ends at buf[n-1].
	Request
	// Error: the input is malformed or over a limit; see Status and Reason.
	Error
)

// String returns the result's name.
func (r Result) String() string {
	switch r {
	case NeedMore:
		return "NeedMore"
	case Continue:
		return "Continue"
	case Request:
		return "Request"
	case Error:
		return "Error"
	}
	return "Result?"
}

// RequestInfo describes the framing of one parsed request. (It cannot be
// named Request: that name is taken by the Result constant.)
type RequestInfo struct {
	// Method is the request method class.
	Method Method
	// Minor is the minor version of HTTP/1.<Minor>: 0 or 1.
	Minor uint8
	// KeepAlive reports whether the connection stays open after the answer
	// to this request (RFC 9112 §9.3). Always false after an Error.
	KeepAlive bool
	// HasBody reports whether body bytes follow the head: a non-zero
	// Content-Length, or a chunked body (even one holding only the last
	// chunk).
	HasBody bool
	// HeadLen is the bytes of the head: the request line (and empty lines
	// before it) and the header section, up to its final CRLF.
	HeadLen int32
	// QueryStart and QueryEnd locate the query of the request-target
	// (after the first '?'), as offsets from the head's first byte; both
	// are 0 when the target has no '?'.
	QueryStart, QueryEnd int32
}

// Parser frames the requests of one connection. Its state lives in
// fixed-size fields only; it keeps no reference to the bytes it is fed, so
// the caller may reuse its buffers freely between calls. Call Reset before
// first use and whenever a connection slot is reused. A Parser is not safe
// for concurrent use.
type Parser struct {
	lim Limits

	state uint8
	kind  uint8 // header field being parsed, one of k*

	// request line
	lineLen int    // bytes of the request line so far, leading empty lines included
	mword   uint64 // first bytes of the method, packed big-endian
	vpos    uint8  // bytes of the version matched so far
	vmajor  byte
	vminor  byte
	method  Method
	minor   uint8

	// header section (and trailer section)
	hdrLen  int // bytes of the header block so far; trailers continue it
	nfields int
	nameLen int
	name    [18]byte // lower-cased prefix of the field name; longest known is 17

	// comma-list element of Connection, Transfer-Encoding or Expect
	elemLen    int
	elemTrim   int // elemLen without trailing whitespace
	elem       [16]byte
	fieldElms  int  // non-empty elements in the current field
	elemParams bool // the element has reached its parameters (after ';')

	// Content-Length of the current element, and the agreed value
	clDigits int
	clVal    int64
	cl       int64

	flags  uint16 // f* bits
	mlen   uint8  // method length, saturated at 9
	tform  uint8  // tf*: what the request-target's first bytes made of it
	pct    uint8  // hex digits still owed by a '%' in the request-target
	hostSt uint8  // hs*: where a Host value's check is
	qStart int32  // offset of the query in the head (after '?'); 0: none
	qEnd   int32  // offset of the end of the request-target, when qStart != 0

	// body
	remaining int64 // body or chunk-data bytes still to skip
	bodyTotal int64 // sum of chunk sizes so far
	chunkLine int   // bytes of the current chunk-size line
	chunkDigs int
	chunkSize int64

	req    RequestInfo
	status uint16
	reason string
}

// Reset prepares p for a new connection with limits l.
func (p *Parser) Reset(l Limits) {
	if l.MaxRequestLine <= 0 {
		l.MaxRequestLine = DefaultMaxRequestLine
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	*p = Parser{lim: l}
}

// Limits returns the limits in effect, defaults filled in.
func (p *Parser) Limits() Limits { return p.lim }

// Request returns the framing of the request whose head was parsed last.
// It is valid after a Request result, and after Continue for the head
// fields; it stays unchanged until the next request's head is parsed.
func (p *Parser) Request() RequestInfo { return p.req }

// InHead reports whether the current request's head is not complete yet
// (it may not have started).
func (p *Parser) InHead() bool { return p.state <= stHdrLast && p.flags&fTrailer == 0 }

// MayHaveQuery reports whether the current request-target has a query, or
// is not complete yet, so the head may have to be kept for its query.
func (p *Parser) MayHaveQuery() bool { return p.state <= stLineLast || p.qStart != 0 }

// Method returns the method class of the request being parsed once its
// method is complete, and 0 before. After an Error it tells whether the
// answer is to a HEAD (and so must carry no body, RFC 9110 §9.3.2).
func (p *Parser) Method() Method { return p.method }

// Status returns the HTTP status to answer with after an Error result
// (400, 413, 414, 431, 501 or 505), and 0 otherwise.
func (p *Parser) Status() int { return int(p.status) }

// Reason returns a short constant description of the error after an Error
// result, and "" otherwise. It is meant for logs and tests.
func (p *Parser) Reason() string { return p.reason }

// Feed consumes bytes from buf and stops at the first event; n is the number
// of bytes consumed. See Result for the events. After Continue or Request the
// caller feeds the rest, buf[n:], in the next call. Once Feed has returned
// Error it keeps returning (0, Error) until Reset.
//
// The results do not depend on how the input is split across calls.
func (p *Parser) Feed(buf []byte) (n int, r Result) {
	if p.state == stError {
		return 0, Error
	}
	if p.lim.MaxRequestLine == 0 {
		// The zero Parser behaves as if Reset(Limits{}) had been called.
		p.Reset(Limits{})
	}
	i := 0
	for i < len(buf) {
		switch st := p.state; {
		case st <= stLineLast:
			i, r = p.line(buf, i)
		case st <= stHdrLast:
			i, r = p.header(buf, i)
		case st == stBody:
			// Bodies are skipped, never looked at: no copy, no scan.
			k := len(buf) - i
			if int64(k) >= p.remaining {
				i += int(p.remaining)
				p.remaining = 0
				return i, p.finish()
			}
			p.remaining -= int64(k)
			return len(buf), NeedMore
		default:
			i, r = p.chunk(buf, i)
		}
		if r != NeedMore {
			return i, r
		}
	}
	return i, NeedMore
}

// fail records an error; the caller returns it with n covering the
// offending byte.
func (p *Parser) fail(status uint16, reason string) Result {
	p.state = stError
	p.status = status
	p.reason = reason
	p.req.KeepAlive = false
	return Error
}

// finish ends the current request and prepares for the next one, keeping
// the connection-level fields (limits, last Request).
func (p *Parser) finish() Result {
	// Only what is not unconditionally set before being read is cleared:
	// this runs once per request, so it is kept to a few stores.
	p.state = stStart
	p.flags = 0
	p.lineLen, p.hdrLen, p.nfields = 0, 0, 0
	p.mword, p.mlen = 0, 0
	p.bodyTotal = 0
	p.method, p.tform, p.pct = 0, tfNone, 0
	p.qStart = 0
	return Request
}

// Per-request flags.
const (
	fCLSet          = 1 << iota // a Content-Length was seen; its value is in cl
	fCLSpace                    // whitespace after digits of a Content-Length element
	fTESeen                     // a Transfer-Encoding field was seen
	fTEEmpty                    // a Transfer-Encoding field had no coding
	fTEChunked                  // chunked seen
	fTEChunkedTwice             // chunked seen more than once
	fTELastChunked              // the last coding seen is chunked
	fTEOther                    // a coding other than chunked seen
	fConnClose                  // Connection: close
	fConnKeep                   // Connection: keep-alive
	fExpect100                  // Expect: 100-continue
	fTrailer                    // parsing the trailer section
	fHostSeen                   // a Host field was seen
	fTEInvalid                  // a Transfer-Encoding element is no token, or chunked has parameters
)
