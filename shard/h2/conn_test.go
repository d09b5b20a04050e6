package h2

import (
	"bytes"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	w "zerosys/shard/h2wire"
)

// clientBytes encodes a client's side of a connection with x/net's
// framer: the preface, SETTINGS, and n GET requests on streams 1, 3, ...
func clientBytes(n int, extra func(fr *http2.Framer)) []byte {
	var buf bytes.Buffer
	buf.WriteString(w.ClientPreface)
	fr := http2.NewFramer(&buf, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range n {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/" + strconv.Itoa(i)}, {":authority", "t"}, {"user-agent", "h2load nghttp2/1.52.0"}, {"accept-encoding", "gzip, deflate"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	if extra != nil {
		extra(fr)
	}
	return buf.Bytes()
}

// run feeds in to c in chunks of step bytes, answering every request,
// and returns what c sent.
func run(c *Conn, in []byte, step int, a answer) []byte {
	var sent []byte
	for len(in) > 0 && !c.Closing() {
		k, ev := c.Feed(in[:min(step, len(in))], 0)
		in = in[k:]
		answerEvent(c, ev, a)
		if k == 0 && ev == EventNone {
			sent = append(sent, c.Output()...) // the output was full: the socket takes it
			c.Sent(len(c.Output()))
		}
	}
	sent = append(sent, c.Output()...)
	c.Sent(len(c.Output()))
	return sent
}

// responses decodes what the server sent with x/net's framer.
func responses(t *testing.T, sent []byte) (answers int, goAway http2.ErrCode, resets int) {
	t.Helper()
	fr := http2.NewFramer(nil, bytes.NewReader(sent))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	goAway = ^http2.ErrCode(0)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.PseudoValue("status") != "200" {
				t.Fatalf("status %q", f.PseudoValue("status"))
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				answers++
			}
		case *http2.GoAwayFrame:
			goAway = f.ErrCode
		case *http2.RSTStreamFrame:
			resets++
		}
	}
}

func TestRequestsInAnySplit(t *testing.T) {
	a := newAnswer(200, "Have a nice day!")
	in := clientBytes(20, nil)
	for _, step := range []int{1, 7, 9, 64, len(in)} {
		c := New(Limits{})
		got, goAway, resets := responses(t, run(c, in, step, a))
		if got != 20 || goAway != ^http2.ErrCode(0) || resets != 0 {
			t.Fatalf("step %d: %d answers, GOAWAY %v, %d resets", step, got, goAway, resets)
		}
	}
}

func TestMoreStreamsThanAllowedAreRefused(t *testing.T) {
	c := New(Limits{MaxStreams: 4})
	in := clientBytes(10, nil)
	var sent []byte
	for len(in) > 0 {
		k, _ := c.Feed(in, 0) // requests are never answered: the streams stay open
		in = in[k:]
	}
	sent = append(sent, c.Output()...)
	if _, _, resets := responses(t, sent); resets != 6 || c.Counters.Refused != 6 {
		t.Fatalf("%d resets, %d refused; want 6", resets, c.Counters.Refused)
	}
}

func TestFloodsEndTheConnection(t *testing.T) {
	cases := map[string]func(fr *http2.Framer){
		"ping":     func(fr *http2.Framer) { _ = fr.WritePing(false, [8]byte{}) },
		"settings": func(fr *http2.Framer) { _ = fr.WriteSettings() },
		"reset": func(fr *http2.Framer) {
			_ = fr.WriteRSTStream(1, http2.ErrCodeCancel)
		},
		"empty data": func(fr *http2.Framer) { _ = fr.WriteData(1, false, nil) },
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			c := New(Limits{FloodPerSecond: 100})
			in := clientBytes(0, func(fr *http2.Framer) {
				// A POST whose body never comes: stream 1 stays open.
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x83, 0x86, 0x84}, EndHeaders: true})
				for range 200 {
					frame(fr)
				}
			})
			run(c, in, 4096, newAnswer(200, "x"))
			if c.Counters.ConnErrors[w.ErrCodeEnhanceYourCalm] != 1 || !c.Closing() {
				t.Fatalf("conn errors %v, closing %v", c.Counters.ConnErrors, c.Closing())
			}
		})
	}
}

func TestContinuationFloodIsBounded(t *testing.T) {
	c := New(Limits{MaxHeaderBlock: 4096})
	in := clientBytes(0, func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x82}})
		for range 100 {
			_ = fr.WriteContinuation(1, false, bytes.Repeat([]byte{0x40, 1, 'a', 1, 'b'}, 200))
		}
	})
	run(c, in, 1<<20, newAnswer(200, "x"))
	if c.Counters.ConnErrors[w.ErrCodeEnhanceYourCalm] != 1 {
		t.Fatalf("conn errors %v", c.Counters.ConnErrors)
	}
}

func TestServeAllocatesNothing(t *testing.T) {
	a := newAnswer(200, "Have a nice day!")
	c := New(Limits{})
	in := clientBytes(100, nil)
	allocs := testing.AllocsPerRun(20, func() {
		c.Reset()
		run2(c, in, a)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 100 streams", allocs)
	}
}

// run2 is run without keeping the output.
func run2(c *Conn, in []byte, a answer) {
	for len(in) > 0 && !c.Closing() {
		k, ev := c.Feed(in, 0)
		in = in[k:]
		answerEvent(c, ev, a)
		if k == 0 && ev == EventNone {
			c.Sent(len(c.Output()))
		}
	}
	c.Sent(len(c.Output()))
}

// BenchmarkStreams: 100 GET streams on one connection, with the
// request's fields kept (an echo may need them) and without.
func BenchmarkStreams(b *testing.B) {
	for _, keep := range []bool{false, true} {
		b.Run("keepFields="+strconv.FormatBool(keep), func(b *testing.B) {
			a := newAnswer(200, "Have a nice day!")
			lim := Limits{}
			if keep {
				lim.FieldsFor = "/" // every path
			}
			c := New(lim)
			in := clientBytes(100, nil)
			b.ReportAllocs()
			for b.Loop() {
				c.Reset()
				run2(c, in, a)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/stream")
		})
	}
}

// FuzzConn feeds arbitrary bytes after a valid start, in arbitrary
// pieces: the connection never panics, never grows its buffers, and every
// Feed makes progress or asks for the output to drain.
func FuzzConn(f *testing.F) {
	f.Add(clientBytes(3, nil)[len(w.ClientPreface):], uint8(5))
	f.Add(clientBytes(0, func(fr *http2.Framer) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x83, 0x86, 0x84}, EndHeaders: true})
		_ = fr.WriteData(1, true, []byte("body"))
		_ = fr.WriteWindowUpdate(0, 100)
		_ = fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
	})[len(w.ClientPreface):], uint8(1))
	plain := newAnswer(200, "Have a nice day!")
	indexed, _ := genAnswer(200, 1)
	indexed.trailers = append([]byte{0x00, 11}, "grpc-status\x010"...)
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		a := plain
		if step&0x80 != 0 {
			a = indexed // indexed forms and trailers
		}
		c := New(Limits{MaxStreams: 8, OutBuffer: 4096, FieldsFor: "/"})
		outCap, fieldCap := cap(c.Output()), cap(c.fieldBuf)
		in := append([]byte(w.ClientPreface), data...)
		s := int(step)%64 + 1
		for rounds := 0; len(in) > 0 && !c.Closing(); rounds++ {
			if rounds > 1<<16 {
				t.Fatal("no progress")
			}
			k, ev := c.Feed(in[:min(s, len(in))], int64(rounds))
			if k < 0 || k > len(in) {
				t.Fatalf("consumed %d of %d", k, len(in))
			}
			in = in[k:]
			answerEvent(c, ev, a)
			if cap(c.Output()) != outCap || cap(c.doneTags) != 8 || cap(c.fieldBuf) != fieldCap {
				t.Fatal("a buffer grew")
			}
			if c.open < 0 || c.open > 8 {
				t.Fatalf("%d streams open", c.open)
			}
			c.Sent(len(c.Output()))
		}
	})
}

var h2loadSummary = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)

// TestH2Load: h2load's h2c with prior knowledge, 16 connections of 32
// streams each: every request answered 2xx.
func TestH2Load(t *testing.T) {
	addr := listen(t, Limits{}, newAnswer(200, "Have a nice day!"))
	out, err := exec.Command("h2load", "-n", "50000", "-c", "16", "-m", "32", "http://"+addr+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	m := h2loadSummary.FindSubmatch(out)
	if m == nil || string(m[4]) != "50000" || string(m[5]) != "0" || string(m[6]) != "0" || !bytes.Contains(out, []byte("status codes: 50000 2xx")) {
		t.Fatalf("h2load:\n%s", out)
	}
}

// TestCurlPriorKnowledge: curl's HTTP/2 with prior knowledge.
func TestCurlPriorKnowledge(t *testing.T) {
	addr := listen(t, Limits{}, newAnswer(200, "Have a nice day!"))
	out, err := exec.Command("curl", "-sS", "--http2-prior-knowledge", "-w", " %{http_version}", "http://"+addr+"/").CombinedOutput()
	if err != nil || string(out) != "Have a nice day! 2" {
		t.Fatalf("curl: %v: %q", err, out)
	}
}
