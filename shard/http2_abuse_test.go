package shard

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// attacker is a raw HTTP/2 client connection.
type attacker struct {
	c  net.Conn
	fr *http2.Framer
}

func newAttacker(t *testing.T, ts *testServer, settings ...http2.Setting) *attacker {
	c := ts.dial(t)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	_ = fr.WriteSettings(settings...)
	return &attacker{c, fr}
}

// get is a GET's header block.
func getBlock() []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "t"}} {
		_ = e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

// goAway reads until the server's GOAWAY or the end, and returns its code
// (or ^0 when the connection ended without one).
func (a *attacker) goAway() http2.ErrCode {
	for {
		f, err := a.fr.ReadFrame()
		if err != nil {
			return ^http2.ErrCode(0)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g.ErrCode
		}
	}
}

// bystander requests over HTTP/2 on its own connection until stopped,
// and reports its answers, the slowest, how many took over slowAnswer,
// and any failure.
func bystander(t *testing.T, ts *testServer, stop <-chan struct{}) func() (answers int, worst time.Duration, slow, fails int) {
	var wg sync.WaitGroup
	var answers, slow, fails int
	var worst time.Duration
	cl := h2cClient()
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			start := time.Now()
			resp, err := cl.Get("http://" + ts.addr + "/bystander")
			if err != nil {
				fails++
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fails++
			}
			d := time.Since(start)
			answers++
			worst = max(worst, d)
			if d > slowAnswer {
				slow++
			}
		}
	})
	return func() (int, time.Duration, int, int) {
		wg.Wait()
		return answers, worst, slow, fails
	}
}

// slowAnswer is what a bystander's answer takes when an attack holds it
// back: nine in ten must be faster (a VM's steal may catch a few), and
// none may take four times as long.
const slowAnswer = 50 * time.Millisecond

// TestServeH2Abuse: each attack of RFC 9113 §10.5's kind is bounded and
// answered with its code on the attacker's connection alone, counted,
// while a bystander on another connection keeps getting its answers.
func TestServeH2Abuse(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) { c.SendTimeout = 300 * time.Millisecond })
	count := func(c counter) uint64 { return ts.total(func(s Stats) uint64 { return s.Counters[c] }) }
	block := getBlock()
	cases := []struct {
		name    string
		attack  func(a *attacker)
		code    http2.ErrCode
		counter counter
	}{
		{"rapid reset", func(a *attacker) {
			for id := uint32(1); id < 2*3000; id += 2 {
				_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
				_ = a.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}, http2.ErrCodeEnhanceYourCalm, cH2AbuseFlood},
		{"PING flood", func(a *attacker) {
			for range 3000 {
				_ = a.fr.WritePing(false, [8]byte{})
			}
		}, http2.ErrCodeEnhanceYourCalm, cH2AbuseFlood},
		{"SETTINGS flood", func(a *attacker) {
			for range 3000 {
				_ = a.fr.WriteSettings()
			}
		}, http2.ErrCodeEnhanceYourCalm, cH2AbuseFlood},
		{"CONTINUATION flood", func(a *attacker) {
			_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block})
			filler := bytes.Repeat([]byte{0x40, 1, 'x', 1, 'y'}, 3000)
			for range 100 {
				if a.fr.WriteContinuation(1, false, filler) != nil {
					return
				}
			}
		}, http2.ErrCodeEnhanceYourCalm, cH2AbuseHeaderBlock},
	}
	stop := make(chan struct{})
	done := bystander(t, ts, stop)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := count(tc.counter)
			a := newAttacker(t, ts)
			go tc.attack(a)
			code := a.goAway()
			a.c.Close()
			if code != tc.code {
				t.Fatalf("GOAWAY %v, want %v", code, tc.code)
			}
			waitFor(t, "the attack counted", func() bool { return count(tc.counter) == before+1 })
		})
	}
	t.Run("HPACK bomb", func(t *testing.T) {
		// One large entry into the table, then a block of one-byte
		// references to it: megabytes decoded from a few kilobytes.
		a := newAttacker(t, ts)
		var b bytes.Buffer
		e := hpack.NewEncoder(&b)
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}} {
			_ = e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		_ = e.WriteField(hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
		bomb := append(b.Bytes(), bytes.Repeat([]byte{0xbe}, 4000)...) // index 62: the entry just added
		half := len(bomb) / 2
		_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: bomb[:half], EndHeaders: false, EndStream: true})
		_ = a.fr.WriteContinuation(1, true, bomb[half:])
		for {
			f, err := a.fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok {
				if r.ErrCode != http2.ErrCodeEnhanceYourCalm {
					t.Fatalf("RST_STREAM %v", r.ErrCode)
				}
				break
			}
		}
		a.c.Close()
		waitFor(t, "the bomb counted", func() bool { return count(cH2AbuseHeaderList) == 1 })
	})
	t.Run("zero window held", func(t *testing.T) {
		// A window of 0 for every stream: the answer's DATA can never go.
		a := newAttacker(t, ts, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true, EndStream: true})
		start := time.Now()
		for {
			if _, err := a.fr.ReadFrame(); err != nil {
				break // cut by the send timeout
			}
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("held for %v", d)
		}
		waitFor(t, "the stall counted", func() bool { return count(cH2AbuseStalled) == 1 })
	})
	t.Run("zero window held, with PINGs", func(t *testing.T) {
		// Chatter does not count as progress: the stalled answer is cut
		// by the send timeout all the same.
		before := count(cH2AbuseStalled)
		a := newAttacker(t, ts, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true, EndStream: true})
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					if a.fr.WritePing(false, [8]byte{1}) != nil {
						return
					}
				}
			}
		}()
		start := time.Now()
		for {
			if _, err := a.fr.ReadFrame(); err != nil {
				break
			}
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("held for %v", d)
		}
		waitFor(t, "the stall counted", func() bool { return count(cH2AbuseStalled) == before+1 })
	})
	t.Run("more streams than allowed", func(t *testing.T) {
		a := newAttacker(t, ts)
		for id := uint32(1); id < 2*200; id += 2 { // bodies that never come: every stream stays open
			_ = a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true})
		}
		refused := 0
		for refused < 200-128 {
			f, err := a.fr.ReadFrame()
			if err != nil {
				t.Fatalf("%v after %d refused", err, refused)
			}
			if r, ok := f.(*http2.RSTStreamFrame); ok && r.ErrCode == http2.ErrCodeRefusedStream {
				refused++
			}
		}
		a.c.Close()
	})
	close(stop)
	answers, worst, slow, fails := done()
	t.Logf("bystander: %d answers, the slowest in %v, %d over %v, %d failed", answers, worst, slow, slowAnswer, fails)
	if fails > 0 || answers == 0 || slow > answers/10 || worst > 4*slowAnswer {
		t.Fatalf("bystander: %d answers, the slowest in %v, %d over %v, %d failed", answers, worst, slow, slowAnswer, fails)
	}
}
