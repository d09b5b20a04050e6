package httpwire

import (
	"fmt"
	"strings"
	"testing"
)

// event is one non-NeedMore result of Feed, plus a final NeedMore when the
// input ends inside a request. End is the absolute offset just past the
// event in the concatenated input.
type event struct {
	R      Result
	Req    RequestInfo
	Status int
	M      Method // Error: the failing request's method, as Method reports it
	End    int
}

func (e event) String() string {
	switch e.R {
	case Error:
		return fmt.Sprintf("Error(%d)@%d", e.Status, e.End)
	case NeedMore:
		return fmt.Sprintf("NeedMore@%d", e.End)
	}
	return fmt.Sprintf("%v%+v@%d", e.R, e.Req, e.End)
}

// run feeds the pieces in order, re-feeding the unconsumed rest of a piece
// after Continue and Request, and stops at the first Error.
func run(t testing.TB, l Limits, pieces ...[]byte) []event {
	var p Parser
	p.Reset(l)
	var evs []event
	off, last, pending := 0, 0, false
	for _, b := range pieces {
		for len(b) > 0 {
			n, r := p.Feed(b)
			if n < 0 || n > len(b) {
				t.Fatalf("n=%d out of [0,%d]", n, len(b))
			}
			if n == 0 {
				t.Fatalf("no progress: Feed(%q) = 0, %v", b, r)
			}
			off += n
			b = b[n:]
			switch r {
			case NeedMore:
				if len(b) != 0 {
					t.Fatalf("NeedMore with %d bytes left", len(b))
				}
			case Error:
				if p.Request().KeepAlive {
					t.Fatalf("KeepAlive after Error")
				}
				if p.Reason() == "" {
					t.Fatalf("Error without reason")
				}
				evs = append(evs, event{R: Error, Status: p.Status(), M: p.Method(), End: off})
				if n2, r2 := p.Feed([]byte("GET / HTTP/1.1\r\n\r\n")); n2 != 0 || r2 != Error {
					t.Fatalf("Error not sticky: %d %v", n2, r2)
				}
				return evs
			default:
				evs = append(evs, event{R: r, Req: p.Request(), End: off})
				last, pending = off, r == Continue
			}
		}
	}
	if off != last || pending {
		evs = append(evs, event{R: NeedMore, End: off})
	}
	return evs
}

func fmtEvents(evs []event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.String()
	}
	return strings.Join(s, " ")
}

// Shorthands for expected events; End is not compared when zero.
func rq(m Method, minor uint8, ka, body bool) event {
	return event{R: Request, Req: RequestInfo{Method: m, Minor: minor, KeepAlive: ka, HasBody: body}}
}
func cont(m Method, ka bool) event {
	return event{R: Continue, Req: RequestInfo{Method: m, Minor: 1, KeepAlive: ka, HasBody: true}}
}
func get11() event              { return rq(MethodGet, 1, true, false) }
func post11() event             { return rq(MethodPost, 1, true, true) }
func fail(s int) event          { return event{R: Error, Status: s} }
func failHead(s int) event      { return event{R: Error, Status: s, M: MethodHead} }
func at(e event, end int) event { e.End = end; return e }

var more = event{R: NeedMore}

type tcase struct {
	name string
	in   string
	lim  Limits
	want []event
}

const wrkGET = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"

func chunkedPost(body string) string {
	return "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
}

func clPost(cl string) string {
	return "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + cl + "\r\n\r\n"
}

var tlsHello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + strings.Repeat("\xaa", 32)

var cases = []tcase{
	// request line: valid
	{name: "wrk get", in: wrkGET, want: []event{at(get11(), len(wrkGET))}},
	{name: "head", in: "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodHead, 1, true, false)}},
	{name: "post no body", in: "POST / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodPost, 1, true, false)}},
	{name: "put", in: "PUT /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "delete", in: "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "patch", in: "PATCH /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "options asterisk", in: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "connect authority", in: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", want: []event{at(fail(501), 8)}},
	{name: "connect invalid authority", in: "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(501), 8)}},
	{name: "connect lowercase is another method", in: "connect h:1 HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute form", in: "GET http://h/p?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "custom token", in: "M-SEARCH /x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "asterisk with GET", in: "GET * HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 6)}},
	{name: "asterisk with M-SEARCH", in: "M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "asterisk then more", in: "OPTIONS *x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 10)}},
	{name: "origin-form must start with slash", in: "GET ! HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 5)}},
	{name: "target starting with a digit", in: "GET 1/x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "authority-form without CONNECT", in: "GET example.com:80 HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "scheme without slashes", in: "GET http:x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "scheme only", in: "GET http HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "bad scheme byte", in: "GET ht_tp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form other scheme", in: "GET https://h:8443/p HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "lowercase get is other", in: "get / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "GETX is other", in: "GETX / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "GE is other", in: "GE / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "POSTS is other", in: "POSTS / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "XGET is other", in: "XGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "token chars in method", in: "!#$%&'*+-.^_`|~09aZ / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "target pchars", in: "GET /a/b?c=d&e=%20~!$'()*+,;=:@/?.-_ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "target fragment", in: "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 7)}},
	{name: "target brace", in: "GET /{a} HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "target pipe", in: "GET /a|b HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "target backslash", in: "GET /a\\b HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "target caret backtick quote", in: "GET /a^`\"<> HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "target square brackets in a path", in: "GET /a[1] HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "target pct bad digit", in: "GET /a%2g HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 9)}},
	{name: "target pct cut by the end", in: "GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 9)}},
	{name: "target pct nul is valid syntax", in: "GET /a%00%0d%0A HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "absolute-form ip-literal", in: "GET http://[::1]:80/p?q HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "absolute-form no path", in: "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "absolute-form userinfo", in: "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 13)}},
	{name: "absolute-form fragment", in: "GET http://h/p#f HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form bad pct in host", in: "GET http://%zz/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form pct cut in host", in: "GET http://a%/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form empty host", in: "GET http:/// HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form empty host with port", in: "GET http://:80/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form unclosed literal", in: "GET http://[/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form two ports", in: "GET http://a:b:c/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form host ends the target", in: "GET http://h:8080 HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "absolute-form empty host ends the target", in: "GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "absolute-form query after host", in: "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "host empty literal", in: "GET / HTTP/1.1\r\nHost: []\r\n\r\n", want: []event{fail(400)}},
	{name: "host literal with other bytes", in: "GET / HTTP/1.1\r\nHost: [zz!]\r\n\r\n", want: []event{fail(400)}},
	{name: "host ipv4 in ipv6", in: "GET / HTTP/1.1\r\nHost: [::ffff:127.0.0.1]:80\r\n\r\n", want: []event{get11()}},
	{name: "host ipvfuture", in: "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n", want: []event{get11()}},
	{name: "head error names HEAD", in: "HEAD / HTTP/1.1\r\n\r\n", want: []event{failHead(400)}},
	{name: "head after get error names HEAD", in: wrkGET + "HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n", want: []event{get11(), failHead(400)}},
	{name: "error in method names none", in: "HE(D / HTTP/1.1\r\n\r\n", want: []event{fail(400)}},
	{name: "haproxy httpchk", in: "OPTIONS / HTTP/1.0\r\n\r\n", want: []event{rq(MethodOther, 0, false, false)}},
	{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "leading bare LF lines", in: "\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "bare LF everywhere", in: "GET / HTTP/1.1\nHost: x\nA: b\n\n", want: []event{get11()}},
	{name: "bare LF request line", in: "GET / HTTP/1.0\n\r\n", want: []event{rq(MethodGet, 0, false, false)}},
	{name: "only empty lines", in: "\r\n\r\n\n", want: []event{more}},
	{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: x\r\n", want: []event{more}},

	// request line: invalid
	{name: "tls client hello", in: tlsHello, want: []event{at(fail(400), 1)}},
	{name: "nul byte", in: "\x00GET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 1)}},
	{name: "binary in method", in: "GE\x80T / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 3)}},
	{name: "paren in method", in: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 2)}},
	{name: "leading space", in: " GET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 1)}},
	{name: "tab after method", in: "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "double space after method", in: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 5)}},
	{name: "double space after target", in: "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "trailing space", in: "GET / HTTP/1.1 \r\n\r\n", want: []event{fail(400)}},
	{name: "method only", in: "GET\r\n\r\n", want: []event{at(fail(400), 4)}},
	{name: "http/0.9 style", in: "GET /\r\n\r\n", want: []event{at(fail(400), 6)}},
	{name: "missing target", in: "GET HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "three parts extra", in: "GET / x HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "ctl in target", in: "GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 7)}},
	{name: "tab in target", in: "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "del in target", in: "GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "obs-text in target", in: "GET /café HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},
	{name: "bare CR in empty line", in: "\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(400), 2)}},
	{name: "bare CR after version", in: "GET / HTTP/1.1\rHost: x\r\n\r\n", want: []event{at(fail(400), 16)}},
	{name: "CR in method", in: "GET\r / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{fail(400)}},

	// versions
	{name: "http/1.0", in: "GET / HTTP/1.0\r\n\r\n", want: []event{rq(MethodGet, 0, false, false)}},
	{name: "http/2.0", in: "GET / HTTP/2.0\r\n\r\n", want: []event{at(fail(505), 16)}},
	{name: "http/3.0", in: "GET / HTTP/3.0\r\n\r\n", want: []event{fail(505)}},
	{name: "http/1.2", in: "GET / HTTP/1.2\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "http/1.3 keeps alive as 1.1", in: "GET / HTTP/1.3\r\nHost: h\r\n\r\n" + wrkGET, want: []event{get11(), get11()}},
	{name: "http/1.5 needs Host", in: "GET / HTTP/1.5\r\n\r\n", want: []event{fail(400)}},
	{name: "http/1.9", in: "GET / HTTP/1.9\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "http/0.9", in: "GET / HTTP/0.9\r\n\r\n", want: []event{fail(505)}},
	{name: "http/9.9 bare LF", in: "GET / HTTP/9.9\n\n", want: []event{at(fail(505), 15)}},
	{name: "h2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: []event{at(fail(505), 16)}},
	{name: "http/1.10", in: "GET / HTTP/1.10\r\n\r\n", want: []event{at(fail(400), 15)}},
	{name: "http/11.1", in: "GET / HTTP/11.1\r\n\r\n", want: []event{fail(400)}},
	{name: "lowercase http", in: "GET / http/1.1\r\n\r\n", want: []event{at(fail(400), 7)}},
	{name: "http/1", in: "GET / HTTP/1\r\n\r\n", want: []event{fail(400)}},
	{name: "http/1.", in: "GET / HTTP/1.\r\n\r\n", want: []event{fail(400)}},
	{name: "http/a.b", in: "GET / HTTP/a.b\r\n\r\n", want: []event{fail(400)}},
	{name: "http/1.1x", in: "GET / HTTP/1.1x\r\n\r\n", want: []event{fail(400)}},
	{name: "http/2.0 garbage", in: "GET / HTTP/2.0x\r\n\r\n", want: []event{fail(400)}},
	{name: "no version", in: "GET / \r\n\r\n", want: []event{fail(400)}},

	// headers
	{name: "header ows", in: "GET / HTTP/1.1\r\nHost: h\r\nA:b\r\nB: \t c \t\r\nC:\r\nD: \r\n\r\n", want: []event{get11()}},
	{name: "header obs-text value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: café \xff\r\n\r\n", want: []event{get11()}},
	{name: "header tab in value", in: "GET / HTTP/1.1\r\nHost: h\r\nX: a\tb\r\n\r\n", want: []event{get11()}},
	{name: "header name token chars", in: "GET / HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09aZ: v\r\n\r\n", want: []event{get11()}},
	{name: "long header name", in: "GET / HTTP/1.1\r\nHost: h\r\nContent-Length-Extra-Long-Name: x\r\nTransfer-Encodingx: y\r\nConnectionx: close\r\n\r\n", want: []event{get11()}},
	{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : x\r\n\r\n", want: []event{at(fail(400), 21)}},
	{name: "tab before colon", in: "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", want: []event{fail(400)}},
	{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n", want: []event{at(fail(400), 32)}},
	{name: "obs-fold tab", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\tc\r\n\r\n", want: []event{fail(400)}},
	{name: "leading whitespace first field", in: "GET / HTTP/1.1\r\nHost: h\r\n Host: x\r\n\r\n", want: []event{fail(400)}},
	{name: "no colon", in: "GET / HTTP/1.1\r\nHost: h\r\nHost\r\n\r\n", want: []event{at(fail(400), 30)}},
	{name: "no colon LF", in: "GET / HTTP/1.1\r\nHost: h\r\nHost\n\n", want: []event{fail(400)}},
	{name: "empty name", in: "GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n", want: []event{at(fail(400), 26)}},
	{name: "bad name char", in: "GET / HTTP/1.1\r\nHost: h\r\nA(b: x\r\n\r\n", want: []event{fail(400)}},
	{name: "binary name", in: "GET / HTTP/1.1\r\nHost: h\r\n\x80: x\r\n\r\n", want: []event{fail(400)}},
	{name: "nul in value", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\x00c\r\n\r\n", want: []event{at(fail(400), 30)}},
	{name: "ctl in value", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\x01c\r\n\r\n", want: []event{fail(400)}},
	{name: "del in value", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\x7fc\r\n\r\n", want: []event{fail(400)}},
	{name: "nul in content-length value", in: "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\x00\r\n\r\n", want: []event{fail(400)}},
	{name: "bare CR in value", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\rc\r\n\r\n", want: []event{at(fail(400), 31)}},
	{name: "bare CR end of head", in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\rX", want: []event{at(fail(400), 33)}},
	{name: "host required in 1.1", in: "GET / HTTP/1.1\r\n\r\n", want: []event{at(fail(400), 18)}},
	{name: "host required with other fields", in: "GET / HTTP/1.1\r\nA: b\r\nConnection: close\r\n\r\n", want: []event{fail(400)}},
	{name: "host required with absolute-form", in: "GET http://h/ HTTP/1.1\r\n\r\n", want: []event{fail(400)}},
	{name: "host not required in 1.0", in: "GET / HTTP/1.0\r\n\r\n", want: []event{rq(MethodGet, 0, false, false)}},
	{name: "host twice", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", want: []event{at(fail(400), 34)}},
	{name: "host twice differing", in: "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", want: []event{fail(400)}},
	{name: "host twice in 1.0", in: "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", want: []event{fail(400)}},
	{name: "host empty", in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: []event{at(fail(400), 23)}},
	{name: "host only whitespace", in: "GET / HTTP/1.1\r\nHost:  \r\n\r\n", want: []event{fail(400)}},
	{name: "host ows", in: "GET / HTTP/1.1\r\nHost: \t example.com:8080 \t\r\n\r\n", want: []event{get11()}},
	{name: "host ipv4 port", in: "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n", want: []event{get11()}},
	{name: "host ipv6", in: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", want: []event{get11()}},
	{name: "host ipv6 no port", in: "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", want: []event{fail(400)}},
	{name: "host pct-encoded", in: "GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n", want: []event{get11()}},
	{name: "host sub-delims", in: "GET / HTTP/1.1\r\nHost: a!$&'()*+;=b\r\n\r\n", want: []event{get11()}},
	{name: "host empty port", in: "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", want: []event{get11()}},
	{name: "host userinfo", in: "GET / HTTP/1.1\r\nHost: user@host\r\n\r\n", want: []event{at(fail(400), 27)}},
	{name: "host path", in: "GET / HTTP/1.1\r\nHost: host/path\r\n\r\n", want: []event{fail(400)}},
	{name: "host list", in: "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", want: []event{fail(400)}},
	{name: "host brace", in: "GET / HTTP/1.1\r\nHost: {a}\r\n\r\n", want: []event{fail(400)}},
	{name: "host obs-text", in: "GET / HTTP/1.1\r\nHost: caf\xff\r\n\r\n", want: []event{fail(400)}},
	{name: "host inner space", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", want: []event{fail(400)}},
	{name: "host port letters", in: "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", want: []event{fail(400)}},
	{name: "host only port", in: "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", want: []event{fail(400)}},
	{name: "host bad pct", in: "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", want: []event{fail(400)}},
	{name: "host unclosed literal", in: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", want: []event{fail(400)}},
	{name: "host after literal", in: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", want: []event{fail(400)}},
	{name: "host lower case", in: "GET / HTTP/1.1\r\nhost: h\r\n\r\n", want: []event{get11()}},
	{name: "host upper case", in: "GET / HTTP/1.1\r\nHOST: h\r\n\r\n", want: []event{get11()}},
	{name: "host without space", in: "GET / HTTP/1.1\r\nHost:h\r\n\r\n", want: []event{get11()}},
	{name: "host with tab", in: "GET / HTTP/1.1\r\nHost:\th\r\n\r\n", want: []event{get11()}},
	{name: "host with more spaces", in: "GET / HTTP/1.1\r\nHost:   h \r\n\r\n", want: []event{get11()}},
	{name: "host control in place of colon", in: "GET / HTTP/1.1\r\nHost\x1a h\r\n\r\n", want: []event{at(fail(400), 21)}},
	{name: "hostx is not host", in: "GET / HTTP/1.1\r\nHostx: h\r\n\r\n", want: []event{fail(400)}},
	{name: "host then empty value", in: "GET / HTTP/1.1\r\nHost: \r\n\r\n", want: []event{fail(400)}},
	{name: "head and post quick methods", in: "HEAD / HTTP/1.1\r\nHost: h\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodHead, 1, true, false), rq(MethodPost, 1, true, false)}},
	{name: "HEADX is other", in: "HEADX / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{rq(MethodOther, 1, true, false)}},
	{name: "host in trailer ignored", in: chunkedPost("0\r\nHost: y\r\n\r\n"), want: []event{post11()}},
	{name: "host invalid in 1.0", in: "GET / HTTP/1.0\r\nHost: a@b\r\n\r\n", want: []event{fail(400)}},

	// connection
	{name: "1.1 close", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", want: []event{rq(MethodGet, 1, false, false)}},
	{name: "1.1 CLOSE list", in: "GET / HTTP/1.1\r\nHost: h\r\nconnection: Upgrade , CLOSE\r\n\r\n", want: []event{rq(MethodGet, 1, false, false)}},
	{name: "1.1 close second field", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", want: []event{rq(MethodGet, 1, false, false)}},
	{name: "1.1 closed is not close", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed, xclose, clo se\r\n\r\n", want: []event{get11()}},
	{name: "1.1 keep-alive", in: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", want: []event{get11()}},
	{name: "1.0 default close", in: "GET / HTTP/1.0\r\nHost: x\r\n\r\n", want: []event{rq(MethodGet, 0, false, false)}},
	{name: "1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", want: []event{rq(MethodGet, 0, true, false)}},
	{name: "1.0 keep-alive list", in: "GET / HTTP/1.0\r\nConnection: ,, foo ,keep-alive,\r\n\r\n", want: []event{rq(MethodGet, 0, true, false)}},
	{name: "1.0 keep-alive and close", in: "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", want: []event{rq(MethodGet, 0, false, false)}},
	{name: "1.0 pipelined keep-alive", in: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		want: []event{rq(MethodGet, 0, true, false), rq(MethodGet, 0, true, false)}},

	// content-length
	{name: "cl body", in: clPost("5") + "hello", want: []event{post11()}},
	{name: "cl body incomplete", in: clPost("5") + "hel", want: []event{more}},
	{name: "cl zero", in: clPost("0"), want: []event{rq(MethodPost, 1, true, false)}},
	{name: "cl leading zeros", in: clPost("005") + "hello", want: []event{post11()}},
	{name: "cl ows", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \t 5 \t\r\n\r\nhello", want: []event{post11()}},
	{name: "cl case", in: "POST / HTTP/1.1\r\nHost: h\r\ncOnTeNt-LeNgTh: 5\r\n\r\nhello", want: []event{post11()}},
	{name: "cl duplicate same", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", want: []event{post11()}},
	{name: "cl list same", in: clPost("5, 5 ,5") + "hello", want: []event{post11()}},
	{name: "cl duplicate differ", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", want: []event{fail(400)}},
	{name: "cl list differ", in: clPost("5, 6") + "hello", want: []event{fail(400)}},
	{name: "cl 005 vs 5", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\nContent-Length: 5\r\n\r\nhello", want: []event{post11()}},
	{name: "cl empty", in: clPost(""), want: []event{fail(400)}},
	{name: "cl spaces only", in: clPost("  "), want: []event{fail(400)}},
	{name: "cl trailing comma", in: clPost("5,"), want: []event{fail(400)}},
	{name: "cl leading comma", in: clPost(",5"), want: []event{fail(400)}},
	{name: "cl letters", in: clPost("abc"), want: []event{fail(400)}},
	{name: "cl negative", in: clPost("-1"), want: []event{fail(400)}},
	{name: "cl plus", in: clPost("+5"), want: []event{fail(400)}},
	{name: "cl hex", in: clPost("0x5"), want: []event{fail(400)}},
	{name: "cl inner space", in: clPost("1 2"), want: []event{fail(400)}},
	{name: "cl decimal", in: clPost("1.0"), want: []event{fail(400)}},
	{name: "cl 19 digits", in: clPost("9223372036854775807"), want: []event{fail(413)}},
	{name: "cl int64 overflow", in: clPost("9223372036854775808"), want: []event{fail(400)}},
	{name: "cl 20 digits", in: clPost("00000000000000000005"), want: []event{fail(400)}},
	{name: "get with body", in: "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: h\r\n\r\n",
		want: []event{rq(MethodGet, 1, true, true), get11()}},
	{name: "head with body", in: "HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi", want: []event{rq(MethodHead, 1, true, true)}},
	{name: "cl body looks like request", in: clPost("18") + "GET / HTTP/1.1\r\n\r\n", want: []event{post11()}},
	{name: "1.0 cl body", in: "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi", want: []event{rq(MethodPost, 0, false, true)}},

	// transfer-encoding
	{name: "chunked", in: chunkedPost("5\r\nhello\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked multi", in: chunkedPost("5\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked only last", in: chunkedPost("0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked leading zeros", in: chunkedPost("0005\r\nhello\r\n000\r\n\r\n"), want: []event{post11()}},
	{name: "chunked 15 digits", in: chunkedPost("000000000000005\r\nhello\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked case", in: "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: ChUnKeD\r\n\r\n0\r\n\r\n", want: []event{post11()}},
	{name: "chunked empty list elements", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked ,\r\n\r\n0\r\n\r\n", want: []event{post11()}},
	{name: "chunked extensions", in: chunkedPost("5;a\r\nhello\r\n5;a=b;c=\"d;\\\"e\"\r\nhello\r\n3 ; x = y ; z\r\nabc\r\n0;last=\"\"\r\n\r\n"), want: []event{post11()}},
	{name: "chunked ext obs-text quoted", in: chunkedPost("1;a=\"\xe9\"\r\nx\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked trailers", in: chunkedPost("3\r\nabc\r\n0\r\nX-Sum: 123\r\nContent-Length: 99\r\n\r\n"), want: []event{post11()}},
	{name: "chunked trailer bare LF", in: chunkedPost("3\r\nabc\r\n0\r\nX: y\n\n"), want: []event{fail(400)}},
	{name: "chunked trailer bare LF end", in: chunkedPost("3\r\nabc\r\n0\r\nX: y\r\n\n"), want: []event{fail(400)}},
	{name: "chunked last chunk bare LF end", in: chunkedPost("3\r\nabc\r\n0\r\n\n"), want: []event{fail(400)}},
	{name: "chunk size then space", in: chunkedPost("5 \r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk size then tab", in: chunkedPost("5\t\r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk size BWS ext", in: chunkedPost("5 \t; a\r\nhello\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunk ext name then space", in: chunkedPost("5;a \r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext value then space", in: chunkedPost("5;a=b \r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext quoted then space", in: chunkedPost("5;a=\"b\" \r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunked then get", in: chunkedPost("3\r\nabc\r\n0\r\n\r\n") + wrkGET, want: []event{post11(), get11()}},
	{name: "chunked body looks like chunks", in: chunkedPost("5\r\n0\r\n\r\n\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked incomplete", in: chunkedPost("5\r\nhel"), want: []event{more}},
	{name: "te on 1.0", in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []event{fail(400)}},
	{name: "te with cl", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", want: []event{fail(400)}},
	{name: "cl with te", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []event{fail(400)}},
	{name: "cl 0 with te", in: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", want: []event{fail(400)}},
	{name: "te gzip chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want: []event{fail(501)}},
	{name: "te gzip then chunked fields", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", want: []event{fail(501)}},
	{name: "te identity", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", want: []event{fail(501)}},
	{name: "te x", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: x\r\n\r\n", want: []event{fail(501)}},
	{name: "te chunked with params", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", want: []event{fail(400)}},
	{name: "te chunked with empty params", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked ;\r\n\r\n", want: []event{fail(400)}},
	{name: "te other coding with params", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n", want: []event{fail(501)}},
	{name: "te quoted", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", want: []event{fail(400)}},
	{name: "te inner space", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chun ked\r\n\r\n", want: []event{fail(400)}},
	{name: "te obs-text", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\xff\r\n\r\n", want: []event{fail(400)}},
	{name: "te empty items around chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked,\r\n\r\n0\r\n\r\n", want: []event{post11()}},
	{name: "te single-quoted is a token", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: 'chunked'\r\n\r\n", want: []event{fail(501)}},
	{name: "te long coding", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunkedchunkedchunked\r\n\r\n", want: []event{fail(501)}},
	{name: "te chunked not last", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", want: []event{fail(400)}},
	{name: "te chunked not last fields", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", want: []event{fail(400)}},
	{name: "te chunked twice", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", want: []event{fail(400)}},
	{name: "te chunked twice fields", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", want: []event{fail(400)}},
	{name: "te empty", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", want: []event{fail(400)}},
	{name: "te commas only", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , ,\r\n\r\n", want: []event{fail(400)}},
	{name: "te empty plus chunked", in: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\nTransfer-Encoding: chunked\r\n\r\n", want: []event{fail(400)}},

	// chunked errors
	{name: "chunk bad hex", in: chunkedPost("z\r\n"), want: []event{fail(400)}},
	{name: "chunk empty size", in: chunkedPost("\r\n"), want: []event{fail(400)}},
	{name: "chunk negative", in: chunkedPost("-1\r\n"), want: []event{fail(400)}},
	{name: "chunk 0x prefix", in: chunkedPost("0x5\r\n"), want: []event{fail(400)}},
	{name: "chunk 16 digits", in: chunkedPost("0000000000000005\r\nhello\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk 16 digits big", in: chunkedPost("ffffffffffffffff\r\n"), want: []event{fail(400)}},
	{name: "chunk over max body", in: chunkedPost("100001\r\n"), want: []event{fail(413)}},
	{name: "chunk bare LF", in: chunkedPost("3\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext bare LF", in: chunkedPost("3;a\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk bare CR", in: chunkedPost("3\rabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "last chunk bare LF", in: chunkedPost("0\n\r\n"), want: []event{fail(400)}},
	{name: "chunk data no CRLF", in: chunkedPost("3\r\nabcX\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk data LF only", in: chunkedPost("3\r\nabc\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk data CR only", in: chunkedPost("3\r\nabc\rX0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk data too long", in: chunkedPost("3\r\nabcd\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext ctl", in: chunkedPost("3;a=\x01\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext ctl quoted", in: chunkedPost("3;a=\"\x01\"\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext no name", in: chunkedPost("3;=b\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext no value", in: chunkedPost("3;a=\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext unterminated quote", in: chunkedPost("3;a=\"b\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk ext junk after value", in: chunkedPost("3;a=b c\r\nabc\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "chunk space in size", in: chunkedPost("1 0\r\n"), want: []event{fail(400)}},
	{name: "trailer obs-fold", in: chunkedPost("0\r\nA: b\r\n c\r\n\r\n"), want: []event{fail(400)}},
	{name: "trailer no colon", in: chunkedPost("0\r\nAb\r\n\r\n"), want: []event{fail(400)}},
	{name: "trailer nul", in: chunkedPost("0\r\nA: \x00\r\n\r\n"), want: []event{fail(400)}},
	{name: "trailer space before colon", in: chunkedPost("0\r\nA : b\r\n\r\n"), want: []event{fail(400)}},

	// expect
	{name: "expect cl", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
		want: []event{cont(MethodPost, true), post11()}},
	{name: "expect chunked", in: "PUT / HTTP/1.1\r\nHost: h\r\nEXPECT: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		want: []event{cont(MethodOther, true), rq(MethodOther, 1, true, true)}},
	{name: "expect close", in: "POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		want: []event{cont(MethodPost, false), rq(MethodPost, 1, false, true)}},
	{name: "expect no body", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n", want: []event{rq(MethodPost, 1, true, false)}},
	{name: "expect cl 0", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n", want: []event{rq(MethodPost, 1, true, false)}},
	{name: "expect 1.0", in: "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", want: []event{rq(MethodPost, 0, false, true)}},
	{name: "expect other", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", want: []event{post11()}},
	{name: "expect ows", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect:  100-continue \r\nContent-Length: 1\r\n\r\nx", want: []event{cont(MethodPost, true), post11()}},
	{name: "expect body pending", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
		want: []event{cont(MethodPost, true), more}},
	{name: "expect over limit", in: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n", want: []event{fail(413)}},

	// pipelining
	{name: "pipelined mix", in: wrkGET + clPost("3") + "abc" + "HEAD / HTTP/1.0\r\n\r\n" + chunkedPost("1\r\nx\r\n0\r\n\r\n") + "\r\n" + wrkGET,
		want: []event{get11(), post11(), rq(MethodHead, 0, false, false), post11(), get11()}},
	{name: "pipelined then error", in: wrkGET + "GET / HTTP/2.0\r\n\r\n" + wrkGET, want: []event{get11(), fail(505)}},
	{name: "pipelined then close", in: wrkGET + "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" + wrkGET,
		want: []event{get11(), rq(MethodGet, 1, false, false), get11()}},

	// limits, exactly at and one over
	{name: "request line at limit", lim: Limits{MaxRequestLine: 16}, in: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11()}},
	{name: "request line over limit", lim: Limits{MaxRequestLine: 16}, in: "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(414), 17)}},
	{name: "request line bare LF at limit", lim: Limits{MaxRequestLine: 15}, in: "GET / HTTP/1.1\nHost: h\n\r\n", want: []event{get11()}},
	{name: "request line over limit early", lim: Limits{MaxRequestLine: 16}, in: "GET /" + strings.Repeat("a", 30), want: []event{at(fail(414), 17)}},
	{name: "request line garbage over limit", lim: Limits{MaxRequestLine: 16}, in: "GET /aaaaaaaaaaa\x00", want: []event{at(fail(414), 17)}},
	{name: "empty lines count", lim: Limits{MaxRequestLine: 16}, in: "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{at(fail(414), 17)}},
	{name: "empty lines flood", lim: Limits{MaxRequestLine: 16}, in: strings.Repeat("\r\n", 9), want: []event{at(fail(414), 17)}},
	{name: "request line limit per request", lim: Limits{MaxRequestLine: 16}, in: "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", want: []event{get11(), get11()}},
	{name: "header bytes at limit", lim: Limits{MaxHeaderBytes: 17}, in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n", want: []event{get11()}},
	{name: "header bytes over limit", lim: Limits{MaxHeaderBytes: 16}, in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n", want: []event{at(fail(431), 33)}},
	{name: "header bytes over limit early", lim: Limits{MaxHeaderBytes: 10}, in: "GET / HTTP/1.1\r\nA: " + strings.Repeat("b", 50), want: []event{at(fail(431), 27)}},
	{name: "header bytes default", in: "GET / HTTP/1.1\r\nA: " + strings.Repeat("b", 8192) + "\r\n\r\n", want: []event{fail(431)}},
	{name: "header fields at limit", lim: Limits{MaxHeaders: 3}, in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nB: c\r\n\r\n", want: []event{get11()}},
	{name: "header fields over limit", lim: Limits{MaxHeaders: 3}, in: "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\nB: c\r\nC: d\r\n\r\n", want: []event{at(fail(431), 38)}},
	{name: "body at limit", lim: Limits{MaxBody: 5}, in: clPost("5") + "hello", want: []event{post11()}},
	{name: "body over limit", lim: Limits{MaxBody: 5}, in: clPost("6") + "hello!", want: []event{at(fail(413), len(clPost("6")))}},
	{name: "chunked at limit", lim: Limits{MaxBody: 5}, in: chunkedPost("2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunked over limit", lim: Limits{MaxBody: 5}, in: chunkedPost("2\r\nhe\r\n4\r\nllo!\r\n0\r\n\r\n"), want: []event{fail(413)}},
	{name: "chunk line at limit", lim: Limits{MaxHeaderBytes: 64}, in: chunkedPost("1;" + strings.Repeat("a", 60) + "\r\nx\r\n0\r\n\r\n"), want: []event{post11()}},
	{name: "chunk line over limit", lim: Limits{MaxHeaderBytes: 64}, in: chunkedPost("1;" + strings.Repeat("a", 61) + "\r\nx\r\n0\r\n\r\n"), want: []event{fail(400)}},
	{name: "trailers share header budget", lim: Limits{MaxHeaderBytes: 48}, in: chunkedPost("0\r\nX: " + strings.Repeat("y", 8) + "\r\n\r\n"), want: []event{fail(431)}},
	{name: "trailers within header budget", lim: Limits{MaxHeaderBytes: 64}, in: chunkedPost("0\r\nX: " + strings.Repeat("y", 8) + "\r\n\r\n"), want: []event{post11()}},
	{name: "trailers share field budget", lim: Limits{MaxHeaders: 2}, in: chunkedPost("0\r\nX: y\r\n\r\n"), want: []event{fail(431)}},
}

func eventsMatch(got, want []event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if w.End == 0 {
			g.End = 0
		}
		if w.M == 0 {
			g.M = 0 // tables name the method only where it matters
		}
		if w.Req.HeadLen == 0 {
			// Tables locate the head and query only where it matters.
			g.Req.HeadLen, g.Req.QueryStart, g.Req.QueryEnd = 0, 0, 0
		}
		if g != w {
			return false
		}
	}
	return true
}

func TestParser(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, tc.lim, []byte(tc.in))
			if !eventsMatch(got, tc.want) {
				t.Errorf("input %q\n got %s\nwant %s", tc.in, fmtEvents(got), fmtEvents(tc.want))
			}
		})
	}
}

// TestSplit checks that results do not depend on how the input is split:
// at every single boundary, at every pair of boundaries for short inputs,
// and one byte at a time.
func TestSplit(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			whole := run(t, tc.lim, in)
			check := func(desc string, pieces ...[]byte) {
				t.Helper()
				got := run(t, tc.lim, pieces...)
				if !eventsMatch(got, whole) {
					t.Fatalf("%s: got %s\nwant %s", desc, fmtEvents(got), fmtEvents(whole))
				}
			}
			for k := 0; k <= len(in); k++ {
				check(fmt.Sprintf("split at %d", k), in[:k], in[k:])
			}
			if len(in) <= 200 {
				for a := 1; a < len(in); a++ {
					for b := a; b < len(in); b++ {
						check(fmt.Sprintf("split at %d,%d", a, b), in[:a], in[a:b], in[b:])
					}
				}
			}
			bytewise := make([][]byte, len(in))
			for i := range in {
				bytewise[i] = in[i : i+1]
			}
			check("byte at a time", bytewise...)
		})
	}
}

// TestPipelined100 frames 100 requests of several kinds from one buffer.
func TestPipelined100(t *testing.T) {
	var b strings.Builder
	var want []event
	for i := 0; i < 100; i++ {
		switch i % 4 {
		case 0:
			b.WriteString(wrkGET)
			want = append(want, get11())
		case 1:
			fmt.Fprintf(&b, "POST /%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", i, i, strings.Repeat("x", i))
			want = append(want, post11())
		case 2:
			b.WriteString(chunkedPost(fmt.Sprintf("%x;i=%d\r\n%s\r\n0\r\nT: %d\r\n\r\n", i, i, strings.Repeat("y", i), i)))
			want = append(want, post11())
		case 3:
			b.WriteString("HEAD /h HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
			want = append(want, rq(MethodHead, 0, true, false))
		}
	}
	in := []byte(b.String())
	got := run(t, Limits{}, in)
	if !eventsMatch(got, want) {
		t.Fatalf("got %s\nwant %s", fmtEvents(got), fmtEvents(want))
	}
	// Split at a few odd sizes too.
	for _, sz := range []int{1, 2, 3, 7, 13, 64, 100, 4096} {
		var pieces [][]byte
		for i := 0; i < len(in); i += sz {
			pieces = append(pieces, in[i:min(i+sz, len(in))])
		}
		if got := run(t, Limits{}, pieces...); !eventsMatch(got, want) {
			t.Fatalf("size %d: got %s", sz, fmtEvents(got))
		}
	}
}

func TestContinueOffset(t *testing.T) {
	head := "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
	in := []byte(head + "hello" + wrkGET)
	var p Parser
	p.Reset(Limits{})
	n, r := p.Feed(in)
	if r != Continue || n != len(head) {
		t.Fatalf("got %d %v, want %d Continue", n, r, len(head))
	}
	if got := p.Request(); got != (RequestInfo{Method: MethodPost, Minor: 1, KeepAlive: true, HasBody: true, HeadLen: int32(len(head))}) {
		t.Fatalf("head info %+v", got)
	}
	n2, r := p.Feed(in[n:])
	if r != Request || n2 != 5 {
		t.Fatalf("body: got %d %v", n2, r)
	}
	n3, r := p.Feed(in[n+n2:])
	if r != Request || n3 != len(in)-n-n2 || p.Request() != (RequestInfo{Method: MethodGet, Minor: 1, KeepAlive: true, HeadLen: int32(len(wrkGET))}) {
		t.Fatalf("next: got %d %v %+v", n3, r, p.Request())
	}
}

func TestZeroParserAndReset(t *testing.T) {
	var p Parser // no Reset: defaults apply
	if n, r := p.Feed([]byte(wrkGET)); n != len(wrkGET) || r != Request {
		t.Fatalf("zero parser: %d %v", n, r)
	}
	if l := p.Limits(); l.MaxRequestLine != DefaultMaxRequestLine || l.MaxHeaderBytes != DefaultMaxHeaderBytes ||
		l.MaxHeaders != DefaultMaxHeaders || l.MaxBody != DefaultMaxBody {
		t.Fatalf("defaults %+v", l)
	}
	if n, r := p.Feed([]byte("\x16\x03")); n != 1 || r != Error || p.Status() != 400 {
		t.Fatalf("tls: %d %v %d", n, r, p.Status())
	}
	if n, r := p.Feed(nil); n != 0 || r != Error {
		t.Fatalf("sticky: %d %v", n, r)
	}
	p.Reset(Limits{MaxHeaders: 1})
	if p.Status() != 0 || p.Reason() != "" || p.Request() != (RequestInfo{}) {
		t.Fatalf("Reset left state behind")
	}
	if n, r := p.Feed(nil); n != 0 || r != NeedMore {
		t.Fatalf("empty feed: %d %v", n, r)
	}
	if _, r := p.Feed([]byte("GET / HTTP/1.1\r\nA: b\r\nB: c\r\n\r\n")); r != Error || p.Status() != 431 {
		t.Fatalf("limit after Reset: %v %d", r, p.Status())
	}
}

func TestReasons(t *testing.T) {
	for _, tc := range []struct{ in, reason string }{
		{"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", "content-length with transfer-encoding"},
		{"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 request without Host"},
		{"CONNECT h:443 HTTP/1.1\r\n\r\n", "CONNECT is not supported: this is an origin server, not a proxy"},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "unsupported HTTP version"},
		{"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "obsolete line folding or leading whitespace"},
	} {
		var p Parser
		p.Reset(Limits{})
		if _, r := p.Feed([]byte(tc.in)); r != Error || p.Reason() != tc.reason {
			t.Errorf("%q: %v %q", tc.in, r, p.Reason())
		}
	}
}

func TestStrings(t *testing.T) {
	for m, s := range map[Method]string{MethodGet: "GET", MethodHead: "HEAD", MethodPost: "POST", MethodOther: "OTHER", 0: "NONE"} {
		if m.String() != s {
			t.Errorf("%d: %q", m, m.String())
		}
	}
	for r, s := range map[Result]string{NeedMore: "NeedMore", Continue: "Continue", Request: "Request", Error: "Error", 9: "Result?"} {
		if r.String() != s {
			t.Errorf("%d: %q", r, r.String())
		}
	}
}

// TestQueryLocated: the head's length and the query's place in it, the
// same however the input is split.
func TestQueryLocated(t *testing.T) {
	for _, c := range []struct {
		in                string
		qStart, qEnd, off int // off: where the request starts in in (after a first one)
	}{
		{"GET /?status=503 HTTP/1.1\r\nHost: a\r\n\r\n", 6, 16, 0},
		{"GET /a/b?x=1&y=%41?z HTTP/1.1\r\nHost: a\r\n\r\n", 9, 20, 0},
		{"GET /? HTTP/1.1\r\nHost: a\r\n\r\n", 6, 6, 0},
		{"\r\nGET /p?q HTTP/1.1\r\nHost: a\r\n\r\n", 9, 10, 0},
		{"GET http://a/p?q HTTP/1.1\r\nHost: a\r\n\r\n", 15, 16, 0},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0, 0},
		{wrkGET + "GET /?delay=1ms HTTP/1.1\r\nHost: a\r\n\r\n", 6, 15, len(wrkGET)},
		{"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 7, 13, 0},
	} {
		in := []byte(c.in)
		head := strings.Index(c.in[c.off:], "\r\n\r\n") + 4
		for k := 0; k <= len(in); k++ {
			evs := run(t, Limits{}, in[:k], in[k:])
			last := evs[len(evs)-1]
			if last.R != Request {
				t.Fatalf("%q split at %d: %s", c.in, k, fmtEvents(evs))
			}
			if r := last.Req; int(r.HeadLen) != head || int(r.QueryStart) != c.qStart || int(r.QueryEnd) != c.qEnd {
				t.Fatalf("%q split at %d: head %d query [%d,%d), want %d [%d,%d)", c.in, k, r.HeadLen, r.QueryStart, r.QueryEnd, head, c.qStart, c.qEnd)
			}
		}
	}
}
