package shard

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"zerosys/shard/httpwire"
)

func TestBuildResponsesDefault(t *testing.T) {
	rs, err := buildResponses(Response{})
	if err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 200 OK\r\nServer: zerosys\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nHave a nice day!"
	rs.setDate([]byte("Sun, 06 Nov 1994 08:49:37 GMT"), 1)
	if got := string(rs[vOK].one); got != want {
		t.Errorf("vOK = %q, want %q", got, want)
	}
	for v := range rs {
		p := &rs[v]
		if v == int(vContinue) {
			if p.date != -1 {
				t.Errorf("100 Continue carries a Date")
			}
			continue
		}
		for i := range p.k {
			copyAt := p.many[i*len(p.one):]
			if p.date < 0 || string(copyAt[p.date:p.date+dateLen]) != "Sun, 06 Nov 1994 08:49:37 GMT" {
				t.Fatalf("variant %d copy %d: Date not rewritten: %q", v, i, copyAt[:len(p.one)])
			}
		}
	}
	for _, c := range []struct {
		v        variant
		contains string
		body     bool
	}{
		{vOKKeep10, "Connection: keep-alive\r\n", true},
		{vOKClose, "Connection: close\r\n", true},
		{vHead, "Content-Length: 16\r\n", false},
		{vHeadClose, "Connection: close\r\n", false},
		{v400, "HTTP/1.1 400 Bad Request\r\n", true},
		{v505, "Connection: close\r\n", true},
		{v413, "HTTP/1.1 413 Request Entity Too Large\r\n", true},
	} {
		one := string(rs[c.v].one)
		if !strings.Contains(one, c.contains) {
			t.Errorf("variant %d = %q, want it to contain %q", c.v, one, c.contains)
		}
		_, body, _ := strings.Cut(one, "\r\n\r\n")
		if (body != "") != c.body {
			t.Errorf("variant %d body = %q, want body: %v", c.v, body, c.body)
		}
	}
	for v := range rs {
		p := &rs[v]
		if v >= int(kindBase) {
			continue // kinds of a mix: none here
		}
		if p.k < 1 || len(p.many) != p.k*len(p.one) || !bytes.Equal(p.many[:len(p.one)], p.one) {
			t.Errorf("variant %d: %d copies in %d bytes of a %d-byte answer", v, p.k, len(p.many), len(p.one))
		}
	}
	if rs[vOK].k != maxBatch {
		t.Errorf("small answers repeat %d times, want %d", rs[vOK].k, maxBatch)
	}
}

func TestBuildResponsesOptions(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 1<<20)
	rs, err := buildResponses(Response{Status: 201, Body: big, ContentType: "application/octet-stream", Headers: []string{"X-Test: 1"}})
	if err != nil {
		t.Fatal(err)
	}
	if rs[vOK].k != 1 {
		t.Errorf("a 1 MiB answer repeats %d times, want 1", rs[vOK].k)
	}
	head := string(rs[vHead].one)
	for _, s := range []string{"HTTP/1.1 201 Created\r\n", "Content-Length: 1048576\r\n", "X-Test: 1\r\n", "application/octet-stream"} {
		if !strings.Contains(head, s) {
			t.Errorf("HEAD answer %q lacks %q", head, s)
		}
	}
	rs, err = buildResponses(Response{Status: 204})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rs[vOK].one); strings.Contains(got, "Content-Length") || !strings.HasSuffix(got, "\r\n\r\n") {
		t.Errorf("204 answer %q has a length or body", got)
	}
}

func TestBuildResponsesRefuses(t *testing.T) {
	for _, r := range []Response{
		{Status: 100},
		{Status: 1000},
		{Status: 204, Body: []byte("x")},
		{Headers: []string{"NoColon"}},
		{Headers: []string{"Bad Name: x"}},
		{Headers: []string{"X: a\r\nInjected: yes"}},
		{Headers: []string{"Content-Length: 5"}},
		{Headers: []string{"connection: close"}},
		{Headers: []string{"Date: yesterday"}},
	} {
		if _, err := buildResponses(r); err == nil {
			t.Errorf("buildResponses(%+v) succeeded, want an error", r)
		}
	}
}

func TestAppendDateDoesNotAllocate(t *testing.T) {
	var buf [dateLen]byte
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { appendDate(buf[:0], now) }); n != 0 {
		t.Errorf("appendDate allocates %v times", n)
	}
	if got := string(appendDate(buf[:0], time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC))); got != "Sun, 06 Nov 1994 08:49:37 GMT" {
		t.Errorf("appendDate = %q", got)
	}
}

func TestAnswerVariant(t *testing.T) {
	cases := []struct {
		req   httpwire.RequestInfo
		close bool
		want  variant
	}{
		{httpwire.RequestInfo{Method: httpwire.MethodGet, Minor: 1, KeepAlive: true}, false, vOK},
		{httpwire.RequestInfo{Method: httpwire.MethodGet, Minor: 1, KeepAlive: false}, false, vOKClose},
		{httpwire.RequestInfo{Method: httpwire.MethodGet, Minor: 0, KeepAlive: true}, false, vOKKeep10},
		{httpwire.RequestInfo{Method: httpwire.MethodHead, Minor: 0, KeepAlive: true}, false, vHeadKeep10},
		{httpwire.RequestInfo{Method: httpwire.MethodHead, Minor: 1, KeepAlive: true}, true, vHeadClose},
		{httpwire.RequestInfo{Method: httpwire.MethodPost, Minor: 1, KeepAlive: true}, false, vOK},
	}
	for _, c := range cases {
		if got := answerVariant(c.req, c.close); got != c.want {
			t.Errorf("answerVariant(%+v, %v) = %d, want %d", c.req, c.close, got, c.want)
		}
	}
}

func TestAnswerQueue(t *testing.T) {
	var q answerQueue
	sets := newRespSets(&responses{})
	for i := 0; i < 3; i++ {
		q.push(vOK, &sets)
	}
	q.push(vHead, &sets)
	q.push(vOK, &sets)
	if q.len != 3 || q.pending != 5 || q.first().count != 3 {
		t.Fatalf("queue: len %d pending %d first %d, want 3 5 3", q.len, q.pending, q.first().count)
	}
	q.pop(2, &sets)
	q.pop(1, &sets)
	if q.len != 2 || q.first().v != vHead {
		t.Fatalf("after popping the first run: len %d first %d", q.len, q.first().v)
	}
	for i := 0; i < maxRuns; i++ {
		q.push(variant(i%2), &sets)
	}
	if !q.full(1 << 20) {
		t.Error("queue with maxRuns runs is not full")
	}
	if !q.full(3) {
		t.Error("queue over maxPending is not full")
	}
}

// TestBuildResponsesKinds: every status and body size of the mixes is
// prepared, with its six variants, each whole and correctly framed.
func TestBuildResponsesKinds(t *testing.T) {
	rs, err := buildResponses(Response{
		StatusMix: []Share{{Value: 503, PPM: 1}, {Value: 204, PPM: 1}},
		SizeMix:   []Share{{Value: 1000, PPM: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	statuses, sizes := []int{200, 503, 204}, []int{16, 1000}
	for si, st := range statuses {
		for zi, size := range sizes {
			k := si*len(sizes) + zi
			for _, sub := range []variant{vOK, vOKKeep10, vOKClose, vHead, vHeadKeep10, vHeadClose} {
				p := rs[kindVariant(k, sub)]
				head, body, _ := strings.Cut(string(p.one), "\r\n\r\n")
				if !strings.HasPrefix(head, fmt.Sprintf("HTTP/1.1 %d ", st)) || p.status != st {
					t.Errorf("kind %d variant %d: %q", k, sub, head)
				}
				wantBody := size
				if st == 204 || sub >= vHead {
					wantBody = 0
				}
				if len(body) != wantBody {
					t.Errorf("kind %d variant %d: %d body bytes, want %d", k, sub, len(body), wantBody)
				}
				if hasCL := strings.Contains(head, fmt.Sprintf("\r\nContent-Length: %d", size)); hasCL == (st == 204) {
					t.Errorf("kind %d variant %d: Content-Length wrong for %d: %q", k, sub, st, head)
				}
			}
		}
	}
	if _, err := buildResponses(Response{StatusMix: make([]Share, 40)}); err == nil {
		t.Error("41 kinds of answer were prepared")
	}
	// RFC 9110 §15.3.6: 205 carries no content, and may say so.
	rs205, err := buildResponses(Response{StatusMix: []Share{{Value: 205, PPM: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rs205[kindVariant(1, vOK)].one); !strings.HasSuffix(got, "Content-Length: 0\r\n\r\n") {
		t.Errorf("205: %q, want an empty body announced as Content-Length: 0", got)
	}
	// Too many bytes to prepare: refused before anything is built.
	big := []Share{{Value: 64 << 20, PPM: 1}, {Value: 64<<20 - 1, PPM: 1}}
	if _, err := buildResponses(Response{SizeMix: big, StatusMix: []Share{{Value: 500, PPM: 1}}}); err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Errorf("six 64 MiB answers: %v, want a refusal", err)
	}
}

// TestCloseTwin: every keep-alive answer has a close twin of the same
// kind and method; 100 Continue and the errors have none.
func TestCloseTwin(t *testing.T) {
	for k := range maxKinds {
		for _, c := range []struct{ sub, want variant }{
			{vOK, vOKClose}, {vOKKeep10, vOKClose}, {vOKClose, vOKClose},
			{vHead, vHeadClose}, {vHeadKeep10, vHeadClose}, {vHeadClose, vHeadClose},
		} {
			if got, ok := closeTwin(kindVariant(k, c.sub)); !ok || got != kindVariant(k, c.want) {
				t.Errorf("kind %d: closeTwin(%d) = %d, %v; want %d", k, c.sub, got, ok, kindVariant(k, c.want))
			}
		}
	}
	for _, v := range []variant{vContinue, v400, v400Head, v505Head} {
		if _, ok := closeTwin(v); ok {
			t.Errorf("closeTwin(%d): ok, want none", v)
		}
	}
}
