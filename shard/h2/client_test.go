package h2

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// h2cClient is x/net's HTTP/2 client speaking cleartext with prior
// knowledge.
func h2cClient() *http.Client {
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestXNetClient(t *testing.T) {
	addr := listen(t, Limits{}, newAnswer(200, "Have a nice day!"))
	cl := h2cClient()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			method, body := "GET", io.Reader(nil)
			if i%3 == 0 {
				method, body = "POST", strings.NewReader(strings.Repeat("x", 100000))
			}
			req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/%d", addr, i), body)
			resp, err := cl.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || string(got) != "Have a nice day!" || resp.ProtoMajor != 2 {
				t.Errorf("%s %d: status %d proto %s body %q err %v", method, i, resp.StatusCode, resp.Proto, got, err)
			}
		})
	}
	wg.Wait()
}

func TestXNetClientLargeBody(t *testing.T) {
	body := strings.Repeat("abcdefghijklmnopqrstuvwxyz", 100000) // 2.6 MB: many windows' worth
	addr := listen(t, Limits{}, newAnswer(200, body))
	cl := h2cClient()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, err := cl.Get("http://" + addr + "/")
			if err != nil {
				t.Error(err)
				return
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(got) != body {
				t.Errorf("%d bytes, err %v", len(got), err)
			}
		})
	}
	wg.Wait()
}
