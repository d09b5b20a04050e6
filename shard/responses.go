package shard

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"zerosys/shard/h2"
	"zerosys/shard/httpwire"
)

// Response describes the answer every valid request gets. The zero value
// answers 200 "Have a nice day!" as text/plain.
type Response struct {
	Status      int      // status code; 0 means 200
	Body        []byte   // body; nil means "Have a nice day!"
	ContentType string   // Content-Type; "" means text/plain (none if the body is empty)
	Headers     []string // extra "Name: value" header lines, sent as given
	Server      string   // Server header; "" means zerosys

	// StatusMix and SizeMix give further statuses and body sizes, each
	// with its share of answers (drawn per request); the rest get Status
	// and Body. Every combination is prepared at start.
	StatusMix []Share
	SizeMix   []Share
}

// Share is a value (a status, a body size) and the share of answers that
// get it, in parts per million.
type Share struct {
	Value int
	PPM   uint32
}

// variant is one prepared response: a status, a connection disposition and
// GET or HEAD. Every answer zerosys sends is one of these, built at start-up.
type variant uint8

const (
	vOK       variant = iota // HTTP/1.1 keep-alive
	vOKKeep10                // HTTP/1.0 client that asked for keep-alive
	vOKClose                 // last answer on the connection
	vHead                    // HEAD: the same headers, no body
	vHeadKeep10
	vHeadClose
	vContinue // interim 100 Continue
	// The errors, each followed by the same answer to a HEAD: the same
	// head, no body (RFC 9110 §9.3.2).
	v400
	v400Head
	v408
	v408Head
	v413
	v413Head
	v414
	v414Head
	v431
	v431Head
	v501
	v501Head
	v505
	v505Head
	// The variants of kinds 1 and up follow, six each (see kindVariant).
	kindBase
	numVariants = kindBase + variantsPerKind*(maxKinds-1)
)

// maxKinds bounds the kinds of answer (statuses times body sizes); every
// kind has variantsPerKind variants, the first kind's being vOK..vHeadClose.
const (
	maxKinds        = 32
	variantsPerKind = 6
	kindsBudget     = 192 << 20 // prepared bytes of all kinds, per response set
)

// kindVariant is the variant sub (vOK..vHeadClose) of kind k.
func kindVariant(k int, sub variant) variant {
	if k == 0 {
		return sub
	}
	return kindBase + variant(variantsPerKind*(k-1)) + sub
}

// closeTwin is the variant that answers like v and says Connection:
// close; ok is false for variants that have none (100 Continue) or need
// none (the errors close already).
func closeTwin(v variant) (variant, bool) {
	sub := v
	if v >= numVariants {
		return v, false // a custom answer: custom.sayClose rewrites it
	}
	if v >= kindBase {
		sub = (v - kindBase) % variantsPerKind
	} else if v > vHeadClose {
		return v, false
	}
	switch sub {
	case vOK, vOKKeep10:
		return v - sub + vOKClose, true
	case vHead, vHeadKeep10:
		return v - sub + vHeadClose, true
	}
	return v, true // already the close variant
}

// errorStatuses are the statuses of the error variants, in their order.
var errorStatuses = [...]int{400, 408, 413, 414, 431, 501, 505}

// maxBatch is how many copies of a response one send may carry: pipelined
// requests answered by the same variant go out in a single send straight
// from a buffer of repeated copies, with no copy per request.
const maxBatch = 64

// batchBytes bounds a repeated buffer, so large bodies are not repeated.
const batchBytes = 256 << 10

// prepared is a variant's bytes: one copy, and up to maxBatch back to back.
type prepared struct {
	status int
	body   int // bytes of body at the end of one
	one    []byte
	many   []byte // k copies of one
	k      int
	date   int // offset of the Date value in one; -1: none
	// spliced: the body is also in a memory file, at fileOff in file,
	// and large enough to be spliced from there (see splice.go).
	spliced bool
	file    int32
	fileOff int64
	// h2 is the HTTP/2 header block of a GET variant (h2answers.go),
	// its Date value at h2date.
	h2     []byte
	h2date int
	// h2ix is h2's indexed forms, the Date value in its Prime at
	// h2primeDate.
	h2ix        h2.Indexed
	h2primeDate int
	// grpc is the kind's gRPC answers (grpc.go), with h2.
	grpc grpcAnswer
}

// bodyOf is the body of a prepared answer (a GET's), in its own bytes.
func (p *prepared) bodyOf() []byte { return p.one[len(p.one)-p.body:] }

// date is the Date value rs's answers carry.
func (rs *responses) date() []byte {
	p := &rs[vOK]
	return p.one[p.date : p.date+dateLen]
}

// dateLen is the length of an IMF-fixdate (RFC 9110 §5.6.7).
const dateLen = len("Sun, 06 Nov 1994 08:49:37 GMT")

// setDate writes d (an IMF-fixdate) into every copy of every variant;
// gen is the new version of the fields HTTP/2 connections index.
func (rs *responses) setDate(d []byte, gen uint32) {
	for v := range rs {
		p := &rs[v]
		if p.date < 0 {
			continue
		}
		for i := range p.k {
			copy(p.many[i*len(p.one)+p.date:], d)
		}
		if p.h2 != nil {
			copy(p.h2[p.h2date:], d)
		}
		if p.h2ix.Prime != nil {
			copy(p.h2ix.Prime[p.h2primeDate:], d)
		}
		if p.grpc.head != nil {
			p.grpc.setDate(d, gen)
		}
		p.h2ix.Gen = gen
	}
}

// appendDate appends t as an IMF-fixdate; it does not allocate when dst
// has room for dateLen bytes.
func appendDate(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, http.TimeFormat)
}

// responses holds every variant, per shard.
type responses [numVariants]prepared

// errorVariant maps an error status to its variant; head picks the
// answer to a HEAD. A status with no variant of its own gets 400's.
func errorVariant(status int, head bool) variant {
	v := v400
	for i, st := range errorStatuses {
		if st == status {
			v = v400 + variant(2*i)
		}
	}
	if head {
		v++
	}
	return v
}

// answerVariant picks the answer to a valid request.
func answerVariant(req httpwire.RequestInfo, forceClose bool) variant {
	v := vOK
	switch {
	case forceClose || !req.KeepAlive:
		v = vOKClose
	case req.Minor == 0:
		v = vOKKeep10
	}
	if req.Method == httpwire.MethodHead {
		v += vHead - vOK
	}
	return v
}

// buildResponses prepares every variant for r: each kind of answer (a
// status of StatusMix or Status, with a body of SizeMix or Body) with its
// six variants, the interim 100 and the errors.
func buildResponses(r Response) (*responses, error) {
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := r.Body
	if body == nil {
		body = []byte("Have a nice day!")
	}
	if (bodiless(status) || emptyBody(status)) && r.Body != nil && len(r.Body) > 0 {
		return nil, fmt.Errorf("shard: a %d response has no body; drop the body or choose another status", status)
	}
	statuses := []int{status}
	for _, sh := range r.StatusMix {
		statuses = append(statuses, sh.Value)
	}
	bodies := [][]byte{body}
	for _, sh := range r.SizeMix {
		bodies = append(bodies, PatternBody(sh.Value))
	}
	if n := len(statuses) * len(bodies); n > maxKinds {
		return nil, fmt.Errorf("shard: %d statuses times %d body sizes make %d kinds of answer; at most %d", len(statuses), len(bodies), n, maxKinds)
	}
	for _, st := range statuses {
		if st < 200 || st > 999 {
			return nil, fmt.Errorf("shard: response status %d is not a final status (200-999)", st)
		}
	}
	// Refuse before building: a kind's GET variants each hold its body,
	// repeated up to batchBytes.
	var need int
	for _, b := range bodies {
		need += len(statuses) * 3 * max(len(b)+512, min(batchBytes, maxBatch*(len(b)+512)))
	}
	if need > kindsBudget {
		return nil, fmt.Errorf("shard: the answers would take about %d MiB prepared; at most %d MiB: fewer or smaller body sizes", need>>20, kindsBudget>>20)
	}
	server := r.Server
	if server == "" {
		server = "zerosys"
	}
	extraLen := len(server) + len(r.ContentType)
	for _, h := range r.Headers {
		if err := checkHeaderLine(h); err != nil {
			return nil, err
		}
		extraLen += len(h) + 2
	}
	if extraLen > maxExtraHeaders {
		return nil, fmt.Errorf("shard: the extra headers, Server and Content-Type take %d bytes; at most %d", extraLen, maxExtraHeaders)
	}
	var rs responses
	now := string(appendDate(nil, time.Now()))
	for si, st := range statuses {
		for bi, b := range bodies {
			rs.prepareKind(kindVariant(si*len(bodies)+bi, vOK), st, b, r, server, now)
		}
	}
	rs[vContinue] = newPrepared(100, []byte("HTTP/1.1 100 Continue\r\n\r\n"))
	var extra strings.Builder // the configured headers (X-Served-By among them) on errors too
	for _, h := range r.Headers {
		extra.WriteString(h)
		extra.WriteString("\r\n")
	}
	for _, st := range errorStatuses {
		text := reasonPhrase(st) + "\n"
		head := fmt.Sprintf("HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n",
			st, reasonPhrase(st), server, now, len(text), extra.String())
		v := errorVariant(st, false)
		rs[v] = newPrepared(st, []byte(head+text))
		rs[v+1] = newPrepared(st, []byte(head))
	}
	return &rs, nil
}

// bodiless reports the statuses that carry no body and no Content-Length
// announcing one (RFC 9110 §15.3.5, §15.4.5).
func bodiless(status int) bool {
	return status == http.StatusNoContent || status == http.StatusNotModified
}

// emptyBody reports the statuses that carry no content (RFC 9110
// §15.3.6: 205 MUST NOT), but may say so with Content-Length: 0.
func emptyBody(status int) bool { return status == http.StatusResetContent }

// sharedType is the Content-Type of the answers of r that have one.
func sharedType(r Response) string {
	if r.ContentType != "" {
		return r.ContentType
	}
	return "text/plain"
}

// prepareKind prepares the six variants of one kind of answer, from base:
// keep-alive, HTTP/1.0 keep-alive and close, for GET and for HEAD.
func (rs *responses) prepareKind(base variant, status int, body []byte, r Response, server, now string) {
	if bodiless(status) || emptyBody(status) {
		body = nil
	}
	ctype := r.ContentType
	if ctype == "" && len(body) > 0 {
		ctype = sharedType(r)
	}
	answer := func(sub variant, conn string, head bool) {
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n", status, reasonPhrase(status), server, now)
		if ctype != "" {
			fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
		}
		if !bodiless(status) {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
		}
		for _, h := range r.Headers {
			b.WriteString(h)
			b.WriteString("\r\n")
		}
		if conn != "" {
			fmt.Fprintf(&b, "Connection: %s\r\n", conn)
		}
		b.WriteString("\r\n")
		msg := []byte(b.String())
		if !head {
			msg = append(msg, body...)
		}
		rs[base+sub] = newPrepared(status, msg)
		if !head {
			rs[base+sub].body = len(body)
		}
		if sub == vOK {
			rs[base].h2, rs[base].h2date = buildH2Head(status, len(body), ctype, server, now, r.Headers)
			rs[base].h2ix, rs[base].h2primeDate = buildH2Indexed(status, len(body), ctype, sharedType(r), server, now, r.Headers)
			rs[base].grpc = buildGRPC(status, body, server, now, r.Headers)
		}
	}
	answer(vOK, "", false)
	answer(vOKKeep10, "keep-alive", false)
	answer(vOKClose, "close", false)
	answer(vHead, "", true)
	answer(vHeadKeep10, "keep-alive", true)
	answer(vHeadClose, "close", true)
}

// PatternBody is a body of n bytes, letters a to z over and over ending
// in a newline: the same bytes for the same size, so a tester can check
// them.
func PatternBody(n int) []byte {
	b := patternBody(n)
	if n > 1 {
		b[n-1] = '\n'
	}
	return b
}

func newPrepared(status int, one []byte) prepared {
	k := max(1, min(maxBatch, batchBytes/len(one)))
	many := make([]byte, 0, k*len(one))
	for range k {
		many = append(many, one...)
	}
	date := -1
	if head, _, ok := bytes.Cut(one, []byte("\r\n\r\n")); ok {
		if i := bytes.Index(head, []byte("\r\nDate: ")); i >= 0 {
			date = i + len("\r\nDate: ")
		}
	}
	return prepared{status: status, one: many[:len(one)], many: many, k: k, date: date}
}

func reasonPhrase(status int) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	return "Status " + strconv.Itoa(status)
}

// checkHeaderLine refuses a configured header line that would break the
// framing of every response: no name, bad characters, or a header zerosys
// sets itself.
func checkHeaderLine(h string) error {
	name, value, ok := strings.Cut(h, ":")
	if !ok || name == "" {
		return fmt.Errorf("shard: header %q: want \"Name: value\"", h)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("shard: header %q: invalid character %q in the name", h, name[i])
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("shard: header %q: control character in the value", h)
		}
	}
	if serverHeader([]byte(name)) {
		return fmt.Errorf("shard: header %q: zerosys sets %s itself", h, name)
	}
	return nil
}

func isTokenChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", rune(c))
}

// clone returns a deep copy of rs: the same bytes in memory of its own.
func (rs *responses) clone() *responses {
	c := *rs
	for v := range c {
		p := &c[v]
		p.many = append([]byte(nil), p.many...)
		p.one = p.many[:len(p.one)]
		p.h2 = append([]byte(nil), p.h2...)
		p.h2ix.Prime = append([]byte(nil), p.h2ix.Prime...)
		p.h2ix.Steady = append([]byte(nil), p.h2ix.Steady...)
		if p.grpc.head != nil {
			p.grpc = p.grpc.clone()
		}
	}
	return &c
}

// bytes is the memory rs's answers take.
func (rs *responses) bytes() int {
	n := 0
	for v := range rs {
		n += cap(rs[v].many)
	}
	return n
}
