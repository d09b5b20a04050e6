package h2

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// decoded is what a client made of the server's frames: each stream's
// status, fields and body, whether it ended, and the resets.
type decoded struct {
	status map[uint32]string
	fields map[uint32]map[string]string
	body   map[uint32]string
	ended  map[uint32]bool
	resets map[uint32]http2.ErrCode
	frames map[uint32]int // DATA frames
}

func decode(t *testing.T, sent []byte) decoded {
	t.Helper()
	d := decoded{map[uint32]string{}, map[uint32]map[string]string{}, map[uint32]string{}, map[uint32]bool{}, map[uint32]http2.ErrCode{}, map[uint32]int{}}
	fr := http2.NewFramer(nil, bytes.NewReader(sent))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return d
		}
		id := f.Header().StreamID
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			d.status[id] = f.PseudoValue("status")
			d.fields[id] = map[string]string{}
			for _, hf := range f.RegularFields() {
				d.fields[id][hf.Name] = hf.Value
			}
			d.ended[id] = f.StreamEnded()
		case *http2.DataFrame:
			d.body[id] += string(f.Data())
			d.frames[id]++
			d.ended[id] = d.ended[id] || f.StreamEnded()
		case *http2.RSTStreamFrame:
			d.resets[id] = f.ErrCode
		}
	}
}

// request encodes a GET for path with extra fields on stream id.
func request(fr *http2.Framer, id uint32, path string, fields ...string) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	all := append([]string{":method", "GET", ":scheme", "http", ":path", path, ":authority", "t"}, fields...)
	for i := 0; i < len(all); i += 2 {
		_ = enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
}

// TestRespondWritesTheHeadAtOnce: right after Feed returns a request,
// even with the output filled by another stream's DATA, a header block
// of up to HeadRoom bytes goes into the output at Respond, so a block
// built in a scratch buffer may be reused at once.
func TestRespondWritesTheHeadAtOnce(t *testing.T) {
	c := New(Limits{})
	big := bytes.Repeat([]byte("x"), 1<<20)
	in := clientBytes(0, func(fr *http2.Framer) {
		_ = fr.WriteWindowUpdate(0, 8<<20)
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4 << 20})
		request(fr, 1, "/big")
		request(fr, 3, "/small")
	})
	scratch := make([]byte, 0, c.lim.HeadRoom)
	var sent []byte
	for len(in) > 0 {
		k, ev := c.Feed(in, 0)
		in = in[k:]
		if ev == EventRequest {
			if c.Req.Stream == 1 {
				c.Respond(1, newAnswer(200, "").head, big, 0) // fills the output with DATA
				continue
			}
			if !c.HeadFits(cap(scratch)) {
				t.Fatalf("%d bytes of room after a request; a %d-byte head does not fit", c.room(), cap(scratch))
			}
			scratch = append(scratch[:0], newAnswer(404, "gone").head...)
			c.Respond(3, scratch, []byte("gone"), 0)
			clear(scratch[:cap(scratch)]) // reused at once
		}
		if k == 0 && ev == EventNone {
			sent = append(sent, c.Output()...)
			c.Sent(len(c.Output()))
		}
	}
	for i := 0; i < 100 && len(c.Output()) > 0; i++ {
		sent = append(sent, c.Output()...)
		c.Sent(len(c.Output()))
	}
	d := decode(t, sent)
	if d.status[3] != "404" || d.body[3] != "gone" || !d.ended[3] {
		t.Fatalf("stream 3: status %q body %q ended %v", d.status[3], d.body[3], d.ended[3])
	}
	if len(d.body[1]) != len(big) || !d.ended[1] {
		t.Fatalf("stream 1: %d of %d body bytes, ended %v", len(d.body[1]), len(big), d.ended[1])
	}
}

// TestAnswerSendsBodyThenTail: a body in two parts leaves as one,
// across DATA frames the window cuts, with END_STREAM on the last.
func TestAnswerSendsBodyThenTail(t *testing.T) {
	for _, win := range []uint32{1, 2, 3, 65535} {
		c := New(Limits{})
		in := clientBytes(0, func(fr *http2.Framer) {
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: win})
			request(fr, 1, "/")
			for range 8 {
				_ = fr.WriteWindowUpdate(1, 1)
				_ = fr.WriteWindowUpdate(0, 1)
			}
		})
		var sent []byte
		for len(in) > 0 {
			k, ev := c.Feed(in, 0)
			in = in[k:]
			if ev == EventRequest {
				c.Answer(1, &Answer{Head: newAnswer(200, "abcd").head, Body: []byte("abc"), Tail: []byte("d")})
			}
			sent = append(sent, c.Output()...)
			c.Sent(len(c.Output()))
		}
		d := decode(t, sent)
		if d.body[1] != "abcd" || !d.ended[1] {
			t.Fatalf("window %d: body %q, ended %v", win, d.body[1], d.ended[1])
		}
		// The first frame takes the window, then each update of 1 a byte;
		// the tail goes with the body's end when the window allows.
		if frames := 1 + max(4-int(win), 0); d.frames[1] != frames {
			t.Fatalf("window %d: %d DATA frames, want %d", win, d.frames[1], frames)
		}
	}
}

// TestAnswerWithTrailers: trailers follow the whole body, however the
// window cuts it, and end the stream; with no body they follow HEADERS.
// The request's content-type says whether it is gRPC, and a mark set at
// its head comes back with its end.
func TestAnswerWithTrailers(t *testing.T) {
	trailers := append([]byte{0x00, 11}, "grpc-status"...)
	trailers = append(append(trailers, 1), '0')
	for _, tc := range []struct {
		body string
		win  uint32
	}{{"", 65535}, {"abcd", 65535}, {"abcd", 1}} {
		c := New(Limits{})
		in := clientBytes(0, func(fr *http2.Framer) {
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: tc.win})
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/p.S/M"}, {":authority", "t"}, {"content-type", "application/grpc+proto"}, {"te", "trailers"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
			_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 0})
			for range 8 {
				_ = fr.WriteWindowUpdate(1, 1)
				_ = fr.WriteWindowUpdate(0, 1)
			}
		})
		var sent []byte
		grpc := false
		for len(in) > 0 {
			k, ev := c.Feed(in, 0)
			in = in[k:]
			switch ev {
			case EventRequest:
				grpc = c.Req.GRPC
				c.Mark(c.Req.Stream, 7)
			case EventComplete:
				if c.DoneMark != 7 {
					t.Fatalf("mark %d at the body's end, want 7", c.DoneMark)
				}
				c.Answer(c.Done, &Answer{Head: newAnswer(200, tc.body).head, Body: []byte(tc.body), Trailers: trailers})
			}
			sent = append(sent, c.Output()...)
			c.Sent(len(c.Output()))
		}
		if !grpc {
			t.Error("a request of application/grpc+proto not taken for gRPC")
		}
		fr := http2.NewFramer(nil, bytes.NewReader(sent))
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		var seq []string
		body := ""
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				k := "headers"
				if v := f.PseudoValue("status"); v == "" {
					k = "trailers grpc-status=" + f.RegularFields()[0].Value
				}
				seq = append(seq, k+fmt.Sprint(" end=", f.StreamEnded()))
			case *http2.DataFrame:
				body += string(f.Data())
				if f.StreamEnded() {
					seq = append(seq, "data end=true")
				}
			}
		}
		want := []string{"headers end=false", "trailers grpc-status=0 end=true"}
		if got := strings.Join(seq, ", "); got != strings.Join(want, ", ") || body != tc.body {
			t.Errorf("body %q, window %d: %s and body %q; want %s", tc.body, tc.win, got, body, strings.Join(want, ", "))
		}
	}
}

// TestKeepFields: the regular fields of a request whose path holds
// FieldsFor come as text in Request.Fields; the others' are not kept.
func TestKeepFields(t *testing.T) {
	for _, c := range []struct {
		fieldsFor, path string
		keep            bool
	}{
		{"echo=", "/?echo=1", true},
		{"echo=", "/plain", false},
		{"", "/?echo=1", false},
	} {
		conn := New(Limits{FieldsFor: c.fieldsFor})
		in := clientBytes(0, func(fr *http2.Framer) {
			request(fr, 1, c.path, "user-agent", "test/1", "x-forwarded-for", "192.0.2.1")
		})
		_, ev := conn.Feed(in, 0)
		if ev != EventRequest {
			t.Fatalf("event %v", ev)
		}
		want := ""
		if c.keep {
			want = "user-agent: test/1\r\nx-forwarded-for: 192.0.2.1\r\n"
		}
		if string(conn.Req.Fields) != want || string(conn.Req.Path) != c.path || string(conn.Req.Authority) != "t" {
			t.Fatalf("%+v: fields %q path %q authority %q", c, conn.Req.Fields, conn.Req.Path, conn.Req.Authority)
		}
	}
}

// TestOpen: a stream is open until the peer resets it or its answer is
// out.
func TestOpen(t *testing.T) {
	c := New(Limits{})
	in := clientBytes(0, func(fr *http2.Framer) {
		request(fr, 1, "/")
		request(fr, 3, "/")
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	})
	for len(in) > 0 {
		k, _ := c.Feed(in, 0)
		in = in[k:]
	}
	if !c.Open(1) || c.Open(3) || c.Open(5) {
		t.Fatalf("open: 1 %v, 3 %v, 5 %v", c.Open(1), c.Open(3), c.Open(5))
	}
	c.Respond(1, newAnswer(200, "").head, nil, 0)
	if c.Open(1) {
		t.Fatal("stream 1 is open after its answer")
	}
}

// TestUpgradeHoldsDataUntilPreface: an upgraded connection's stream 1
// sends its HEADERS at once but its DATA only after the client's preface,
// so a client that reads the 101 and what follows into one small buffer
// gets no more than the 101, our SETTINGS and the HEADERS.
func TestUpgradeHoldsDataUntilPreface(t *testing.T) {
	c := New(Limits{})
	if !c.ResetUpgrade(nil, false) {
		t.Fatal("ResetUpgrade refused empty settings")
	}
	body := bytes.Repeat([]byte("b"), 70000)
	if !c.Respond(1, newAnswer(200, string(body)).head, body, 0) {
		t.Fatal("stream 1 not answerable")
	}
	first := bytes.Clone(c.Output())
	rest, ok := bytes.CutPrefix(first, []byte(upgradeReply))
	if !ok || len(first) > 200 {
		t.Fatalf("before the preface: %d bytes %q", len(first), first)
	}
	if d := decode(t, rest); d.status[1] != "200" || d.body[1] != "" {
		t.Fatalf("before the preface: status %q, %d body bytes", d.status[1], len(d.body[1]))
	}
	c.Sent(len(first))
	in := clientBytes(0, func(fr *http2.Framer) { _ = fr.WriteWindowUpdate(0, 1<<20) })
	sent := run(c, append(in, windowUpdate(1, 1<<20)...), len(in)+13, newAnswer(200, ""))
	if d := decode(t, append(rest, sent...)); d.body[1] != string(body) || !d.ended[1] {
		t.Fatalf("after the preface: %d of %d body bytes, ended %v", len(d.body[1]), len(body), d.ended[1])
	}
}

// windowUpdate is a WINDOW_UPDATE frame.
func windowUpdate(id, inc uint32) []byte {
	var b bytes.Buffer
	_ = http2.NewFramer(&b, nil).WriteWindowUpdate(id, inc)
	return b.Bytes()
}

// TestResetAfterOpenStreams: a connection reset with streams still open
// (never answered, never abandoned) starts clean: every slot is free.
func TestResetAfterOpenStreams(t *testing.T) {
	c := New(Limits{MaxStreams: 4})
	in := clientBytes(3, nil)
	for len(in) > 0 {
		k, _ := c.Feed(in, 0) // requests left unanswered
		in = in[k:]
	}
	if c.open != 3 {
		t.Fatalf("%d streams open, want 3", c.open)
	}
	c.Reset()
	got, goAway, resets := responses(t, run(c, clientBytes(4, nil), 1<<20, newAnswer(200, "ok")))
	if got != 4 || resets != 0 || goAway != ^http2.ErrCode(0) {
		t.Fatalf("after Reset: %d answers, %d resets, GOAWAY %v", got, resets, goAway)
	}
}

// TestIsGRPC: gRPC's content-types, in any case, and nothing else.
func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "application/grpc+json": true,
		"Application/gRPC": true, "application/grpc; charset=utf-8": true,
		"application/grpcx": false, "application/grp": false, "application/json": false, "": false,
		"application/grpc-web": false, "text/plain": false,
	} {
		if got := isGRPC([]byte(ct)); got != want {
			t.Errorf("%q: %v, want %v", ct, got, want)
		}
	}
}

// FuzzValidValue: the word-at-a-time check says what a byte-by-byte
// reading of RFC 9113 §8.2.1 says.
func FuzzValidValue(f *testing.F) {
	for _, v := range []string{"", "a", "h2load nghttp2/1.52.0", "a\tb", "\tab", "ab ", "0123456789abcdef\x00", "0123456\r89", "x\x0dy", "\x0e\x0f\x7f\x80\xff"} {
		f.Add([]byte(v))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		want := !bytes.ContainsAny(v, "\x00\r\n") && !(len(v) > 0 && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t'))
		if got := validValue(v); got != want {
			t.Fatalf("validValue(%q) = %v, want %v", v, got, want)
		}
	})
}
