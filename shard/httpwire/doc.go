// Package httpwire frames HTTP/1.1 requests (RFC 9112) for a server whose
// serving path must not allocate.
//
// It is a framing parser only: it finds where each request ends, what kind
// of answer the request needs (method class, HTTP/1.0 or 1.1, keep-alive,
// 100 Continue) and which status bad input must get. It never stores header
// values, targets or bodies, and never hands out slices of the input; the
// caller keeps the bytes and parses whatever else it needs from them.
//
// # Invariants
//
//   - Zero allocation: Feed, Request, Status and Reason never allocate; all
//     state lives in fixed-size fields of Parser (see alloc_test.go).
//   - Split independence: the sequence of results (event, consumed bytes,
//     request info, status) is the same however the input is split across
//     Feed calls, from one byte per call to a hundred pipelined requests in
//     one buffer (see TestSplit and FuzzParser).
//   - Bodies are skipped, never read: Content-Length bodies and chunk data
//     are passed over by count, so their content cannot affect framing.
//   - Bounded work: every byte is looked at a bounded number of times and
//     every length (request line, header block, header count, chunk-size
//     line, body) has a limit.
//   - Errors are final: after Error, Feed returns (0, Error) until Reset,
//     and the request info reports KeepAlive false.
//   - Ambiguity is an error, never a guess (RFC 9112 §6.3, §11.2).
//
// # Usage
//
//	var p httpwire.Parser
//	p.Reset(httpwire.Limits{})
//	for len(buf) > 0 {
//		n, r := p.Feed(buf)
//		buf = buf[n:]
//		switch r {
//		case httpwire.Continue: // send "HTTP/1.1 100 Continue\r\n\r\n"
//		case httpwire.Request:  // answer p.Request(); close unless KeepAlive
//		case httpwire.Error:    // answer p.Status() and close
//		}
//	}
//
// # Decisions
//
// Framing follows RFC 9112 §6.3: Transfer-Encoding (chunked last), else
// Content-Length, else no body. The table gives this package's answer for
// each kind of input, next to what nginx 1.22, HAProxy 2.6 and Go net/http
// do. The Go column is from the Go standard library source; the nginx and
// HAProxy columns are from reading their parsers (ngx_http_parse.c,
// ngx_http_request.c; h1.c) and their documented defaults; where the nginx
// column says "(seen)", the answer was observed by make conformance, which
// runs the corpus of cmd/zerosys/testdata/conformance.txt against nginx
// 1.22. "-" means the same as this package; "?" means not checked.
//
// Request line:
//
//	input                                  | here | nginx 1.22               | HAProxy 2.6                 | Go net/http
//	---------------------------------------+------+--------------------------+-----------------------------+-----------------------------
//	method with non-token byte ("G(T")      | 400  | 400 (A-Z _ - only)       | 400                         | 400
//	lower-case or custom token method       | ok   | 400 (A-Z _ - only)       | ok                          | ok
//	TLS ClientHello (0x16 0x03 ...)         | 400 at its first byte | 400     | 400                         | waits for a LF, then 400
//	leading empty lines (CRLF or LF)        | skip, counted in MaxRequestLine | skip | skip                  | up to 4 after a POST, else 400
//	leading SP/HTAB                         | 400  | 400                      | 400                         | 400
//	two spaces, tab as separator, trailing SP | 400 | SP runs ok, HTAB 400    | ok (runs of SP/HTAB)        | 400
//	missing target or version ("GET /")     | 400  | HTTP/0.9 for GET         | 400 (no HTTP/0.9 in HTX)    | 400
//	CTL or DEL in target                    | 400  | 400                      | 400                         | 400 (url parse)
//	obs-text (>= 0x80) in target            | 400  | ok                       | 400 unless accept-invalid-http-request | ok
//	asterisk-form with OPTIONS ("OPTIONS *") | ok  | 400 (seen)               | ok                          | ok
//	asterisk-form with any other method     | 400  | 400                      | ?                           | 400 (ServeMux)
//	origin-form not starting with "/" ("GET !") | 400 | 400                   | ?                           | 400
//	authority-form without CONNECT ("GET h:80") | 400 | 400                   | ?                           | ?
//	CONNECT, any target                     | 501: no tunnels here (RFC 9110 §9.3.6) | 400 (seen) | ?      | handler
//	absolute-form (GET http://h/p)          | ok   | ok                       | ok                          | ok
//	absolute-form without "//" ("GET h:x"), userinfo ("http://u@h/") | 400 | ? | ?                       | ?
//	"#", "\", "{", "}", "|", "^", "`", DQUOTE, "<", ">" in a target (not pchar, RFC 3986) | 400 | ok (seen) | ok | ok
//	"%" not followed by two hex digits      | 400  | ?                        | ?                           | 400 (url parse)
//	HTTP/1.0, HTTP/1.1                      | ok   | ok                       | ok                          | ok
//	HTTP/1.2 .. HTTP/1.9                    | ok as 1.1 (RFC 9110 §2.5) | ok as 1.x | ok as 1.1            | ok as 1.x
//	HTTP/2.0, HTTP/3.0 (well-formed d.d)    | 505  | 505 (major > 1)          | (h2 preface only: h2)       | 505
//	HTTP/0.9 spelled out                    | 505  | 400 (major must be 1-9)  | ok as 1.0                   | 505
//	h2 preface "PRI * HTTP/2.0\r\n\r\nSM.." | 505 at the end of its first line | 400 ("*") | switches to HTTP/2 | handed to the handler (h2c hook) unless unencrypted HTTP/2 is on
//	malformed version (HTTP/1.10, http/1.1, HTTP/1) | 400 | 1.10 ok, others 400 | 400                 | 400
//	request line over MaxRequestLine        | 414 on the first byte over | 414 (large_client_header_buffers) | 400 (buffer full) | 431 (MaxHeaderBytes covers line and headers)
//
// Line endings:
//
//	CRLF                                    | ok   | ok                       | ok                          | ok
//	bare LF in request line and headers     | ok   | ok                       | ok                          | ok
//	bare CR not followed by LF              | 400  | 400                      | 400                         | 400
//	bare LF in chunk lines or the trailer section | 400 | ok (seen)           | ok                          | error (body read)
//
// Header fields:
//
//	name with non-token byte ("A(b: x")     | 400  | ignored (ignore_invalid_headers) | 400                 | 400
//	empty name (": x")                      | 400  | 400                      | 400                         | 400
//	SP/HTAB between name and colon          | 400  | 400                      | 400                         | 400
//	obs-fold (line starts with SP/HTAB)     | 400  | 400                      | unfolded to SP              | unfolded (first line: 400)
//	line without colon                      | 400  | not rejected (empty value) | 400                       | 400
//	NUL in value                            | 400  | 400                      | 400                         | 400
//	other CTL or DEL in value               | 400  | ok                       | 400                         | 400
//	obs-text (0x80-0xFF), HTAB in value     | ok   | ok                       | ok                          | ok
//	Host missing (HTTP/1.1; RFC 9112 §3.2 MUST) | 400 | 400                  | ok                          | 400
//	Host missing (HTTP/1.0)                 | ok   | ok                       | ok                          | ok
//	two Host fields (same or different)     | 400  | 400                      | ?                           | 400
//	Host empty, or with userinfo, a path, a list, "{" or obs-text | 400 | ok for most (seen) | ?          | 400, userinfo ok
//	header block over MaxHeaderBytes        | 431 on the first byte over | 400 ("Request Header Or Cookie Too Large") | 400 | 431
//	more than MaxHeaders fields             | 431  | no count limit           | 400 (tune.http.maxhdr)      | no count limit
//
// Names Content-Length, Transfer-Encoding, Connection and Expect are matched
// case-insensitively. Other fields are only checked for syntax.
//
// Content-Length:
//
//	1*DIGIT, leading zeros allowed          | ok   | ok                       | ok                          | ok
//	sign, "0x", inner space, empty, non-digit | 400 | 400                     | 400                         | 400
//	more than 19 digits or > MaxInt64       | 400  | 400                      | 400                         | 400
//	repeated field, identical values        | ok   | 400 (duplicate header)   | ok (merged)                 | ok
//	comma list of identical values ("5, 5") | ok (RFC 9110 §8.6 allows it) | 400 | ok                        | 400 (one value per field)
//	differing values (fields or list)       | 400  | 400                      | 400                         | 400
//	empty list element ("5,", ",5")         | 400  | 400                      | 400 (",5" skipped: ok)      | 400
//	over MaxBody                            | 413 at the end of the head | 413 (client_max_body_size) | no limit | no limit (handler's MaxBytesReader)
//	GET/HEAD with a body                    | framed, body skipped | same     | same                        | same
//
// Transfer-Encoding (values form one comma list across all TE fields,
// case-insensitive, OWS around items, empty items ignored):
//
//	"chunked"                               | chunked | ok                    | ok                          | ok
//	on HTTP/1.0                             | 400  | 400                      | ok (newer versions: 400)    | TE ignored, CL used
//	with Content-Length (any order)         | 400  | 400                      | TE wins, CL dropped, close  | TE wins, CL dropped
//	empty value, or only commas             | 400  | 501                      | 400                         | 501
//	chunked twice (one field or two)        | 400  | 501 / 400 (duplicate)    | 400                         | 501
//	chunked not last ("chunked, gzip")      | 400  | 501                      | 400                         | 501
//	other coding ("gzip, chunked", "identity", "x") | 501 | 501              | forwarded as is             | 501
//	not a token ("\"chunked\"", "chun ked"), or chunked with parameters | 400 | 501 (seen) | ?       | 501
//	two TE fields                           | as one list | 400 (duplicate)   | as one list                 | 501 (one field only)
//
// Chunked body:
//
//	chunk-size 1*HEXDIG, up to 15 digits    | ok   | ok                       | ok                          | ok (16 digits)
//	16 or more hex digits                   | 400  | 400 (overflow)           | 400                         | error at 17
//	sum of chunk sizes over MaxBody         | 413 when the size line ends | 413 | no limit                  | no limit
//	chunk-ext ;name[=token|quoted-string] with BWS | ok, syntax-checked, skipped | skipped unchecked | skipped | skipped
//	BWS after the size or an extension not followed by ";" ("5 \r\n") | 400 | ok (seen) | ?          | ok
//	CTL in chunk-ext                        | 400  | ok                       | 400                         | ok
//	chunk-size line over MaxHeaderBytes     | 400  | no limit                 | buffer size                 | 4096 / 16 KiB ext overhead
//	data not followed by CRLF               | 400  | 400                      | 400                         | error
//	trailer fields                          | header syntax, share MaxHeaderBytes and MaxHeaders | skipped | parsed | parsed
//
// Errors in a body happen after the head was accepted; Go reports them to
// the handler as a read error instead of a status.
//
// Expect and Connection:
//
//	"Expect: 100-continue", HTTP/1.1, body  | Continue event | 100 on first body read | forwarded | 100 on first body read
//	100-continue on HTTP/1.0 or no body     | ignored | ignored                | ignored                     | ignored
//	any other Expect value                  | ignored | ignored                | ignored                     | 417
//	Connection list has "close"             | KeepAlive false | same          | same                        | same
//	HTTP/1.0 with "keep-alive" (no close)   | KeepAlive true | same           | same                        | same
//	HTTP/1.0 otherwise                      | KeepAlive false | same          | same                        | same
//	after any Error                         | KeepAlive false | close         | close                       | close
//
// Error answers to a HEAD carry the same head and no body (RFC 9110
// §9.3.2): Method tells the caller what the failing request was.
//
// Where this package is stricter than all three (single spaces, target
// bytes, chunked extensions and whitespace, Host values), it follows the
// RFC 9112 and RFC 3986 grammars: a framing parser in front of application
// code gains nothing from guessing.
package httpwire
