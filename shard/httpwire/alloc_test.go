//go:build !race

package httpwire

import (
	"strings"
	"testing"
)

// TestFeedAllocs proves the serving-path promise: Feed never allocates.
func TestFeedAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"pipelined get", strings.Repeat(wrkGET, 16)},
		{"post content-length", clPost("11") + "hello world"},
		{"chunked", chunkedPost("5;a=\"b\"\r\nhello\r\n6\r\n world\r\n0\r\nX: y\r\n\r\n")},
		{"expect", "POST / HTTP/1.1\r\nExpect: 100-continue\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"},
		{"error", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
	} {
		in := []byte(tc.in)
		var p Parser
		allocs := testing.AllocsPerRun(1000, func() {
			p.Reset(Limits{})
			for b := in; len(b) > 0; {
				n, r := p.Feed(b)
				if r == Error {
					_, _ = p.Status(), p.Reason()
					break
				}
				_ = p.Request()
				b = b[n:]
			}
			// byte at a time too: the split path must not allocate either
			p.Reset(Limits{})
			for i := 0; i < len(in); {
				n, r := p.Feed(in[i : i+1])
				if r == Error {
					break
				}
				i += n
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per run", tc.name, allocs)
		}
	}
}
