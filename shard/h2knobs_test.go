package shard

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	w "zerosys/shard/h2wire"
)

// h2Peer writes a client's side of an HTTP/2 connection.
type h2Peer struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newH2Peer() *h2Peer {
	p := &h2Peer{}
	p.fr = http2.NewFramer(&p.buf, nil)
	p.enc = hpack.NewEncoder(&p.hb)
	p.buf.WriteString(w.ClientPreface)
	_ = p.fr.WriteSettings()
	return p
}

// request writes a request head on stream id: method, path, then name,
// value pairs; end says no body follows.
func (p *h2Peer) request(id uint32, method, path string, end bool, fields ...string) {
	p.hb.Reset()
	all := append([]string{":method", method, ":scheme", "http", ":path", path, ":authority", "t.example"}, fields...)
	for i := 0; i < len(all); i += 2 {
		_ = p.enc.WriteField(hpack.HeaderField{Name: all[i], Value: all[i+1]})
	}
	_ = p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hb.Bytes(), EndStream: end, EndHeaders: true})
}

// take returns what was written since the last take.
func (p *h2Peer) take() string {
	s := p.buf.String()
	p.buf.Reset()
	return s
}

// h2Stream is one stream's answer as a client decodes it.
type h2Stream struct {
	status string
	fields map[string]string
	body   string
	ended  bool
	reset  http2.ErrCode
}

// decodeH2 decodes what the server sent, by stream, and whether it sent
// GOAWAY.
func decodeH2(t *testing.T, sent []byte) (map[uint32]*h2Stream, bool) {
	t.Helper()
	got := map[uint32]*h2Stream{}
	at := func(id uint32) *h2Stream {
		if got[id] == nil {
			got[id] = &h2Stream{fields: map[string]string{}, reset: ^http2.ErrCode(0)}
		}
		return got[id]
	}
	goAway := false
	fr := http2.NewFramer(nil, bytes.NewReader(sent))
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return got, goAway
		}
		id := f.Header().StreamID
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			s := at(id)
			s.status = f.PseudoValue("status")
			for _, hf := range f.RegularFields() {
				s.fields[hf.Name] = hf.Value
			}
			s.ended = f.StreamEnded()
		case *http2.DataFrame:
			s := at(id)
			s.body += string(f.Data())
			s.ended = s.ended || f.StreamEnded()
		case *http2.RSTStreamFrame:
			at(id).reset = f.ErrCode
		case *http2.GoAwayFrame:
			goAway = true
		}
	}
}

// newH2Fake is a fake shard by cfg with one HTTP/2 client connected,
// whose reads take all there is.
func newH2Fake(t *testing.T, cfg Config) (*fakeKernel, *fakeSock, *h2Peer) {
	k := newFakeKernel(t, cfg)
	k.connect()
	k.whole = true
	return k, k.socks[0], newH2Peer()
}

// exchange sends what p wrote and lets the server read it and answer.
func (k *fakeKernel) exchange(s *fakeSock, p *h2Peer) {
	s.send(p.take())
	k.completeAll(actRecv)
	k.completeAll(actSend)
}

// smallCustomBuffers makes cfg's custom buffers 4.5 KiB.
func smallCustomBuffers(cfg Config) Config {
	cfg.Limits.MaxRequestLine, cfg.Limits.MaxHeaderBytes = 256, 256
	return cfg
}

// h2KnobsConfig is a fake shard with knobs, for HTTP/2.
func h2KnobsConfig() Config {
	cfg := lifecycleConfig(128)
	cfg.RecvBuffer = 64 << 10
	cfg.H2C = H2CAuto
	cfg.Response.Headers = []string{"X-Served-By: t/0", "Keep-Alive: timeout=5"}
	return cfg
}

// TestLifecycleH2Knobs: each knob on an HTTP/2 stream, as over HTTP/1.1:
// the same statuses, sizes, fields and 400s, per stream, with the others
// on the connection answered as usual. An echo is the request as text.
func TestLifecycleH2Knobs(t *testing.T) {
	k, s, p := newH2Fake(t, h2KnobsConfig())
	p.request(1, "GET", "/?status=503&size=30", true)
	p.request(3, "GET", "/?size=25000", true)
	p.request(5, "GET", "/e?echo=1&header=X-K:v", true, "x-forwarded-for", "192.0.2.7")
	p.request(7, "GET", "/?size=5&header=content-type:application/json&header=Keep-Alive:1&header=Upgrade:x", true)
	p.request(9, "HEAD", "/?status=201&size=500", true)
	p.request(11, "GET", "/?status=204", true)
	p.request(13, "GET", "/?status=299&cb=1", true)
	p.request(15, "GET", "/?status=abc", true)
	p.request(17, "GET", "/plain?cb=2", true)
	p.request(19, "POST", "/?status=202&size=10", false, "content-length", "4")
	_ = p.fr.WriteData(19, true, []byte("body"))
	p.request(21, "GET", "/?echo=1&status=204", true)
	k.exchange(s, p)
	got, goAway := decodeH2(t, s.tx)

	pattern := func(n int) string { return string(PatternBody(n)) }
	echo := "GET /e?echo=1&header=X-K:v HTTP/2.0\r\nhost: t.example\r\nx-forwarded-for: 192.0.2.7\r\n\r\n"
	for _, c := range []struct {
		id     uint32
		status string
		body   string
		fields map[string]string // "": the field is absent
	}{
		{1, "503", pattern(30), map[string]string{"content-length": "30", "x-served-by": "t/0", "server": "zerosys", "keep-alive": ""}},
		{3, "200", pattern(25000), map[string]string{"content-length": "25000"}},
		{5, "200", echo, map[string]string{"x-k": "v", "content-type": "text/plain", "content-length": strconv.Itoa(len(echo))}},
		{7, "200", "abcd\n", map[string]string{"content-type": "application/json", "keep-alive": "", "upgrade": ""}},
		{9, "201", "", map[string]string{"content-length": "500"}},
		{11, "204", "", map[string]string{"content-length": "", "content-type": ""}},
		{13, "299", "Have a nice day!", map[string]string{"content-length": "16"}},
		{15, "400", "Bad Request: " + errKnobStatus + "\n", map[string]string{"content-type": "text/plain"}},
		{17, "200", "Have a nice day!", nil},
		{19, "202", pattern(10), nil},
		{21, "400", "Bad Request: " + errKnobEchoBody + "\n", nil},
	} {
		a := got[c.id]
		if a == nil || a.status != c.status || a.body != c.body || !a.ended {
			t.Errorf("stream %d: %+v; want status %s, body %q", c.id, a, c.status, c.body)
			continue
		}
		if a.fields["date"] == "" {
			t.Errorf("stream %d: no date", c.id)
		}
		for name, want := range c.fields {
			if v, ok := a.fields[name]; v != want || want == "" && ok {
				t.Errorf("stream %d: %s %q, want %q (fields %v)", c.id, name, v, want, a.fields)
			}
		}
	}
	if len(got) != 11 || goAway {
		t.Errorf("%d streams answered, GOAWAY %v", len(got), goAway)
	}
	if n := k.e.local[cRejected]; n != 2 {
		t.Errorf("%d requests rejected, want 2", n)
	}
	k.quiesce()
}

// TestLifecycleH2KnobsWait: knob answers that wait (a delay, a request
// body still coming) keep their own bytes while the stream after them is
// answered at once; close=1 sends GOAWAY after its stream; a stream reset
// while it waits gives its bytes back.
func TestLifecycleH2KnobsWait(t *testing.T) {
	k, s, p := newH2Fake(t, h2KnobsConfig())
	p.request(1, "GET", "/?delay=200ms&status=201&header=X-Late:1", true)
	p.request(3, "GET", "/?delay=100ms&echo=1", true, "x-a", "b")
	p.request(5, "POST", "/?status=202&echo=1", false)
	p.request(7, "GET", "/?delay=300ms&size=3", true)
	p.request(9, "GET", "/now", true)
	k.exchange(s, p)
	got, _ := decodeH2(t, s.tx)
	if len(got) != 1 || got[9] == nil || got[9].status != "200" {
		t.Fatalf("before the delays: %v, want stream 9 alone", got)
	}
	if n := c0(k).h2.gran.lent(); n == 0 {
		t.Fatal("waiting custom answers lent no granules")
	}
	// The client gives up on stream 7; stream 5's body ends.
	_ = p.fr.WriteRSTStream(7, http2.ErrCodeCancel)
	_ = p.fr.WriteData(5, true, []byte("abc"))
	p.request(11, "GET", "/?close=1", true)
	k.exchange(s, p)
	for range 8 {
		k.advance(int64(50 * time.Millisecond))
		k.completeAll(actSend)
	}
	got, goAway := decodeH2(t, s.tx)
	want := map[uint32]string{1: "201", 3: "200", 5: "202", 9: "200", 11: "200"}
	for id, st := range want {
		if got[id] == nil || got[id].status != st || !got[id].ended {
			t.Errorf("stream %d: %+v, want %s", id, got[id], st)
		}
	}
	if got[7] != nil {
		t.Errorf("stream 7 was answered after its reset: %+v", got[7])
	}
	if got[1] != nil && got[1].fields["x-late"] != "1" {
		t.Errorf("stream 1: %v", got[1].fields)
	}
	if b := got[3]; b != nil && !strings.HasPrefix(b.body, "GET /?delay=100ms&echo=1 HTTP/2.0\r\nhost: t.example\r\nx-a: b\r\n") {
		t.Errorf("stream 3's echo %q", b.body)
	}
	if b := got[5]; b != nil && !strings.HasPrefix(b.body, "POST /?status=202&echo=1 HTTP/2.0\r\n") {
		t.Errorf("stream 5's echo %q", b.body)
	}
	if !goAway {
		t.Error("close=1 sent no GOAWAY")
	}
	k.quiesce()
}

// TestLifecycleH2KnobsNoRoom: waiting custom answers that outgrow the
// connection's custom buffer are refused (REFUSED_STREAM, which a client
// may retry); the others are answered, and every granule comes back.
func TestLifecycleH2KnobsNoRoom(t *testing.T) {
	k, s, p := newH2Fake(t, smallCustomBuffers(h2KnobsConfig()))
	const streams = 100
	for i := range streams {
		p.request(uint32(2*i+1), "GET", "/?delay=50ms&echo=1", true, "x-pad", strings.Repeat("p", 100))
	}
	s.send(p.take())
	k.completeAll(actRecv)
	for range 4 {
		k.advance(int64(50 * time.Millisecond))
		k.completeAll(actSend)
	}
	got, _ := decodeH2(t, s.tx)
	answered, refused := 0, 0
	for id, a := range got {
		switch {
		case a.reset == http2.ErrCodeRefusedStream:
			refused++
		case a.status == "200" && a.ended && strings.Contains(a.body, "x-pad: ppp"):
			answered++
		default:
			t.Errorf("stream %d: %+v", id, a)
		}
	}
	if answered == 0 || refused == 0 || answered+refused != streams {
		t.Fatalf("%d answered, %d refused of %d", answered, refused, streams)
	}
	if n := c0(k).h2.gran.lent(); n != 0 {
		t.Fatalf("%d granules still lent with every stream done", n)
	}
	k.quiesce()
}

// c0 is the fake shard's first connection.
func c0(k *fakeKernel) *conn { return &k.e.conns[k.socks[0].slot] }

// TestZeroAllocsPerStreamWithKnobs: streams whose knobs build custom
// answers (a drawn status and size, a header, an echo, a refused knob, a
// POST whose answer waits for its body) allocate nothing.
func TestZeroAllocsPerStreamWithKnobs(t *testing.T) {
	var e engine
	cfg := Config{MaxConns: 1, RequestKnobs: true, MaxBodySize: 100_000, H2C: H2CAuto}
	cfg = initEngine(t, &e, cfg)
	c := &e.conns[0]
	c.phase, c.in.head = phaseOpen, -1
	feed := func(b []byte) {
		c.in.off, c.in.end = 0, uint32(copy(e.slotBuf(c.slot), b))
		e.frameH2(c)
		for len(c.h2.Output()) > 0 {
			c.h2.Sent(len(c.h2.Output()))
			e.h2Tags(c)
		}
	}
	p := newH2Peer()
	first := []byte(p.take())
	e.maybeH2(c)
	feed(first)
	_ = p.fr.WriteWindowUpdate(0, 1<<30)
	feed([]byte(p.take()))
	// Literals never indexed: the blocks can be sent again and again.
	block := func(fields ...string) []byte {
		p.hb.Reset()
		for i := 0; i < len(fields); i += 2 {
			_ = p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1], Sensitive: true})
		}
		return bytes.Clone(p.hb.Bytes())
	}
	base := func(method, path string) []string {
		return []string{":method", method, ":scheme", "http", ":path", path, ":authority", "t"}
	}
	reqs := [][]byte{
		block(base("GET", "/?status=503:50,201&size=100:50,50000&header=X-K:v")...),
		block(append(base("GET", "/x?echo=1&cb=7"), "x-forwarded-for", "10.0.0.1")...),
		block(base("GET", "/?status=nope")...),
		block(base("POST", "/?status=202&echo=1")...),
	}
	id := uint32(1)
	round := func() {
		for i, b := range reqs {
			_ = p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b, EndStream: i != 3, EndHeaders: true})
			if i == 3 {
				_ = p.fr.WriteData(id, true, []byte("body"))
			}
			id += 2
		}
		feed(p.buf.Bytes())
		p.buf.Reset()
	}
	for range 10 {
		round()
	}
	before := e.local[cH2Streams]
	allocs := testing.AllocsPerRun(2000, round)
	if n := e.local[cH2Streams] - before; n != 2001*4 {
		t.Fatalf("%d streams answered over 2001 rounds of 4", n)
	}
	if allocs != 0 {
		t.Errorf("%.2f allocations per round of 4 streams, want 0", allocs)
	}
	if n := c.h2.gran.lent(); n != 0 {
		t.Errorf("%d granules lent with every stream answered", n)
	}
}

// TestLifecycleH2KnobsBodyLater: an answer whose request body comes
// later says the Date of when it leaves, prepared or custom.
func TestLifecycleH2KnobsBodyLater(t *testing.T) {
	k, s, p := newH2Fake(t, h2KnobsConfig())
	p.request(1, "POST", "/?status=202&header=X-A:1", false)
	p.request(3, "POST", "/?close=0", false)
	k.exchange(s, p)
	before := string(k.e.sets.current().date())
	k.advance(int64(2 * time.Second))
	k.e.sets.refresh([]byte("Wed, 02 Dec 2026 00:00:00 GMT")) // what the Date's tick does, a second on
	now := string(k.e.sets.current().date())
	if now == before {
		t.Fatalf("the Date did not move on: %s", now)
	}
	_ = p.fr.WriteData(1, true, []byte("a"))
	_ = p.fr.WriteData(3, true, []byte("b"))
	k.exchange(s, p)
	got, _ := decodeH2(t, s.tx)
	for _, id := range []uint32{1, 3} {
		if a := got[id]; a == nil || a.fields["date"] != now {
			t.Errorf("stream %d: %+v, want the Date %q", id, a, now)
		}
	}
	if got[1] != nil && (got[1].status != "202" || got[1].fields["x-a"] != "1") {
		t.Errorf("stream 1: %+v", got[1])
	}
	k.quiesce()
}

// TestLifecycleH2KnobsRoomComesBack: the runs of answers whose streams
// the client reset while they waited come back before a stream is
// refused; an echo larger than any run is a 400, not a refusal a client
// would retry for ever; refused streams count as no answer.
func TestLifecycleH2KnobsRoomComesBack(t *testing.T) {
	k, s, p := newH2Fake(t, smallCustomBuffers(h2KnobsConfig()))
	id := uint32(1)
	for range 30 { // echoes waiting for bodies that never come: the buffer fills
		p.request(id, "POST", "/?echo=1", false, "x-pad", strings.Repeat("p", 100))
		_ = p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		id += 2
	}
	for range 5 {
		p.request(id, "GET", "/?echo=1&delay=50ms", true, "x-pad", strings.Repeat("q", 100))
		id += 2
	}
	p.request(id, "GET", "/?echo=1", true, "x-pad", strings.Repeat("r", 1000))
	s.send(p.take())
	k.completeAll(actRecv)
	for range 3 {
		k.advance(int64(50 * time.Millisecond))
		k.completeAll(actSend)
	}
	got, _ := decodeH2(t, s.tx)
	for i := range uint32(5) {
		if a := got[61+2*i]; a == nil || a.status != "200" || !strings.Contains(a.body, "x-pad: qqq") {
			t.Errorf("stream %d: %+v", 61+2*i, a)
		}
	}
	if a := got[id]; a == nil || a.status != "400" || a.body != "Bad Request: "+errKnobEchoLarge+"\n" {
		t.Errorf("the large echo: %+v", a)
	}
	if n := c0(k).h2.answers; n != 6 {
		t.Errorf("%d answers counted, want 6", n)
	}
	k.quiesce()
}

// TestLifecycleH2Limits: the configured stream limit and windows are
// what the server's SETTINGS announce and what it holds streams to.
func TestLifecycleH2Limits(t *testing.T) {
	cfg := h2KnobsConfig()
	cfg.H2MaxStreams, cfg.H2StreamWindow, cfg.H2ConnWindow = 4, 100_000, 1_000_000
	k, s, p := newH2Fake(t, cfg)
	for i := range uint32(10) {
		p.request(2*i+1, "GET", "/?delay=100ms", true)
	}
	k.exchange(s, p)
	var settings []http2.Setting
	var connWindow uint32
	fr := http2.NewFramer(nil, bytes.NewReader(s.tx))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = f.ForeachSetting(func(st http2.Setting) error { settings = append(settings, st); return nil })
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				connWindow += f.Increment
			}
		}
	}
	want := map[http2.SettingID]uint32{http2.SettingMaxConcurrentStreams: 4, http2.SettingInitialWindowSize: 100_000}
	for _, st := range settings {
		if v, ok := want[st.ID]; ok && v != st.Val {
			t.Errorf("SETTINGS %v = %d, want %d", st.ID, st.Val, v)
		}
		delete(want, st.ID)
	}
	if len(want) != 0 || connWindow != 1_000_000-65535 {
		t.Errorf("settings %v (missing %v), connection window raised by %d", settings, want, connWindow)
	}
	k.advance(int64(150 * time.Millisecond))
	k.completeAll(actSend)
	got, _ := decodeH2(t, s.tx)
	answered, refused := 0, 0
	for _, a := range got {
		switch {
		case a.reset == http2.ErrCodeRefusedStream:
			refused++
		case a.status == "200" && a.ended:
			answered++
		}
	}
	if answered != 4 || refused != 6 {
		t.Errorf("%d answered, %d refused; want 4 and 6", answered, refused)
	}
	k.quiesce()
}
