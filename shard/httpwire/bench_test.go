package httpwire

import (
	"strings"
	"testing"
)

func benchFeed(b *testing.B, in []byte, want int) {
	var p Parser
	p.Reset(Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for b.Loop() {
		got := 0
		for buf := in; len(buf) > 0; {
			n, r := p.Feed(buf)
			if r == Error {
				b.Fatalf("error %d %s", p.Status(), p.Reason())
			}
			if r == Request {
				got++
			}
			buf = buf[n:]
		}
		if got != want {
			b.Fatalf("got %d requests, want %d", got, want)
		}
	}
}

// BenchmarkFeed measures framing of typical inputs.
func BenchmarkFeed(b *testing.B) {
	b.Run("wrk-get", func(b *testing.B) { benchFeed(b, []byte(wrkGET), 1) })
	b.Run("browser-get", func(b *testing.B) {
		benchFeed(b, []byte("GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\n"+
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"+
			"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"+
			"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"+
			"Connection: keep-alive\r\nCookie: session=0123456789abcdef0123456789abcdef\r\n\r\n"), 1)
	})
	b.Run("pipelined-16", func(b *testing.B) { benchFeed(b, []byte(strings.Repeat(wrkGET, 16)), 16) })
	b.Run("post-content-length", func(b *testing.B) {
		benchFeed(b, []byte("POST /api HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"hello\":\"world\",\"n\":12345}"), 1)
	})
	b.Run("chunked-post", func(b *testing.B) {
		benchFeed(b, []byte(chunkedPost("10\r\n0123456789abcdef\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\n\r\n")), 1)
	})
	b.Run("wrk-get-bytewise", func(b *testing.B) {
		in := []byte(wrkGET)
		var p Parser
		p.Reset(Limits{})
		b.ReportAllocs()
		b.SetBytes(int64(len(in)))
		for b.Loop() {
			for i := range in {
				if _, r := p.Feed(in[i : i+1]); r == Error {
					b.Fatal(p.Reason())
				}
			}
		}
	})
}
