package h2

import (
	"bytes"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// genAnswer is an answer in every form, like the shard's: the shared
// fields are content-type and x-gen (its value names gen), inserted in
// that order, so x-gen is entry 62 and content-type 63. A 204 lacks
// content-type and has no Prime.
func genAnswer(status int, gen uint32) (answer, []hpack.HeaderField) {
	g := "g" + strconv.Itoa(int(gen))
	st := byte(0x88) // :status 200
	var cl []byte
	want := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}
	body := "Have a nice day!"
	if status == 204 {
		st, body = 0x89, ""
	} else {
		cl = append([]byte{0x0f, 0x0d, 2}, "16"...) // content-length, literal without indexing
		want = append(want, hpack.HeaderField{Name: "content-type", Value: "text/plain"})
	}
	want = append(want, hpack.HeaderField{Name: "x-gen", Value: g})
	if cl != nil {
		want = append(want, hpack.HeaderField{Name: "content-length", Value: "16"})
	}

	plain := []byte{st}
	steady := []byte{st}
	if status != 204 {
		plain = append(append(plain, 0x0f, 0x10, 10), "text/plain"...)
		steady = append(steady, 0x80|63)
	}
	plain = append(append(append(plain, 0x00, 5), "x-gen"...), byte(len(g)))
	plain = append(append(plain, g...), cl...)
	steady = append(append(steady, 0x80|62), cl...)
	ix := &Indexed{Steady: steady, Gen: gen, Size: uint32(12+10+32) + uint32(5+len(g)+32)}
	if status != 204 {
		p := append([]byte{st, 0x40 | 31, 10}, "text/plain"...)
		p = append(append(append(p, 0x40, 5), "x-gen"...), byte(len(g)))
		ix.Prime = append(append(p, g...), cl...)
	}
	return answer{head: plain, ix: ix, body: []byte(body)}, want
}

// leadingUpdates reads the dynamic table size updates a block starts
// with (RFC 7541 §6.3): their values.
func leadingUpdates(t testing.TB, b []byte) []uint32 {
	t.Helper()
	var vs []uint32
	for len(b) > 0 && b[0]&0xe0 == 0x20 {
		v := uint32(b[0] & 0x1f)
		b = b[1:]
		if v == 0x1f {
			for m := 0; ; m += 7 {
				if len(b) == 0 || m > 21 {
					t.Fatal("a size update's integer is cut short or too long")
				}
				c := b[0]
				b = b[1:]
				v += uint32(c&0x7f) << m
				if c&0x80 == 0 {
					break
				}
			}
		}
		vs = append(vs, v)
	}
	return vs
}

// peer is a client's HPACK decoder with what RFC 7541 asks of the
// encoder checked: a size update within the limit, and one at the start
// of the first block after the limit fell below the table's size (§4.2).
type peer struct {
	dec   *hpack.Decoder
	max   uint32 // the table's maximum size, as the encoder last set it
	limit uint32 // our SETTINGS_HEADER_TABLE_SIZE, acknowledged
	owed  bool
	// old is nghttp2 before 1.47: every acknowledged limit, a raise
	// too, becomes the table's maximum size.
	old bool
}

func newPeer() *peer { return &peer{dec: hpack.NewDecoder(4096, nil), max: 4096, limit: 4096} }

// acked applies a SETTINGS_HEADER_TABLE_SIZE the server acknowledged.
func (p *peer) acked(v uint32) {
	p.limit = v
	p.dec.SetAllowedMaxDynamicTableSize(v)
	p.owed = p.owed || p.max > v
	if p.old {
		p.max = v
	}
}

// block decodes one header block.
func (p *peer) block(t testing.TB, b []byte) []hpack.HeaderField {
	t.Helper()
	ups := leadingUpdates(t, b)
	if p.owed && len(ups) == 0 {
		t.Fatalf("the table limit fell (to %d) under the table's size since the last block, and the next block % x starts with no size update", p.limit, b)
	}
	for _, v := range ups {
		if v > p.limit {
			t.Fatalf("a size update to %d over the limit %d", v, p.limit)
		}
		p.max, p.owed = v, false
	}
	fs, err := p.dec.DecodeFull(b)
	if err != nil {
		t.Fatalf("block % x: %v", b, err)
	}
	return fs
}

// sameFields compares header lists as sets of fields, pseudo-fields
// first: the forms may order regular fields differently.
func sameFields(a, b []hpack.HeaderField) bool {
	key := func(fs []hpack.HeaderField) []string {
		var k []string
		for _, f := range fs {
			k = append(k, f.Name+": "+f.Value)
		}
		slices.Sort(k)
		return k
	}
	return len(a) > 0 && len(b) > 0 && a[0] == b[0] && slices.Equal(key(a), key(b))
}

// TestEncoderPick walks the encoder through its states.
func TestEncoderPick(t *testing.T) {
	a1, _ := genAnswer(200, 1)
	a2, _ := genAnswer(200, 2)
	e1, _ := genAnswer(204, 1)
	size := a1.ix.Size
	type step struct {
		limit  int64 // >= 0: a SETTINGS_HEADER_TABLE_SIZE first
		a      answer
		plain  bool // no indexed forms offered
		form   string
		prefix []byte
		state  tableState
		max    uint32
	}
	prime := appendTableSize(nil, size)          // from the initial table: its size set to the fields'
	again := appendTableSize([]byte{0x20}, size) // cleared first
	steps := []struct {
		name  string
		steps []step
	}{
		{"primes once, then refers", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{-1, a1, false, "steady", nil, tabPrimed, size},
			{-1, a1, false, "steady", nil, tabPrimed, size},
		}},
		{"a new Date clears and primes again", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{-1, a2, false, "prime", again, tabPrimed, size},
			{-1, a2, false, "steady", nil, tabPrimed, size},
			{-1, a1, false, "prime", again, tabPrimed, size},
		}},
		{"a kind without Prime waits for one", []step{
			{-1, e1, false, "plain", nil, tabEmpty, 4096},
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{-1, e1, false, "steady", nil, tabPrimed, size},
		}},
		{"a limit under the shared fields: plain, the table cleared once", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{50, a1, false, "plain", []byte{0x20}, tabEmpty, 0},
			{-1, a1, false, "plain", nil, tabEmpty, 0},
			{4096, a1, false, "prime", prime, tabPrimed, size},
		}},
		{"a limit of 0 from the start", []step{
			{0, a1, false, "plain", []byte{0x20}, tabEmpty, 0},
			{-1, e1, false, "plain", nil, tabEmpty, 0},
		}},
		{"a limit lowered to the fields' size: primed again within it", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{int64(size), a1, false, "prime", again, tabPrimed, size},
			{int64(size), a1, false, "steady", nil, tabPrimed, size},
			{int64(size - 1), a1, false, "plain", []byte{0x20}, tabEmpty, 0},
		}},
		{"a limit lowered under 4096 before any answer", []step{
			{1024, e1, false, "plain", []byte{0x20}, tabEmpty, 0},
			{-1, a1, false, "prime", prime, tabPrimed, size},
		}},
		{"a raise then a fall, the table's fields within both", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{8192, a1, false, "steady", nil, tabPrimed, size},
			{1024, a1, false, "prime", again, tabPrimed, size}, // old nghttp2 took 8192 as its size: an update owed
			{-1, a1, false, "steady", nil, tabPrimed, size},
		}},
		{"answers without indexed forms leave the table alone", []step{
			{-1, a1, false, "prime", prime, tabPrimed, size},
			{-1, a1, true, "plain", nil, tabPrimed, size},
			{-1, a1, false, "steady", nil, tabPrimed, size},
		}},
	}
	for _, tc := range steps {
		t.Run(tc.name, func(t *testing.T) {
			e := newEncoder()
			for i, s := range tc.steps {
				if s.limit >= 0 {
					e.setLimit(uint32(s.limit))
				}
				ix := s.a.ix
				if s.plain {
					ix = nil
				}
				pre, b := e.pick(s.a.head, ix, nil)
				form := "plain"
				switch {
				case ix != nil && bytes.Equal(b, ix.Prime):
					form = "prime"
				case ix != nil && bytes.Equal(b, ix.Steady):
					form = "steady"
				}
				if form != s.form || !bytes.Equal(pre, s.prefix) || e.state != s.state || e.max != s.max {
					t.Fatalf("step %d: %s with updates % x, table %d of max %d; want %s, % x, %d, %d", i, form, pre, e.state, e.max, s.form, s.prefix, s.state, s.max)
				}
			}
		})
	}
}

// FuzzEncoder: any sequence of answers (of 3 Dates, with and without
// Prime, with and without indexed forms) and table limits decodes, by
// x/net's decoder, to each answer's own fields, with every size update
// RFC 7541 asks for.
func FuzzEncoder(f *testing.F) {
	f.Add([]byte{1, 1, 5, 0, 1, 2, 1})
	f.Add([]byte{4, 1, 1, 0x81, 3, 8, 1, 1})
	f.Add([]byte{1, 1, 20, 12, 1}) // old nghttp2: primed, a raise to 65536, a fall to 150
	limits := []uint32{0, 60, 100, 150, 4096, 65536}
	f.Fuzz(func(t *testing.T, ops []byte) {
		e, p := newEncoder(), newPeer()
		if len(ops) > 0 {
			p.old, ops = ops[0]&1 != 0, ops[1:]
		}
		for _, op := range ops {
			if op%4 == 0 {
				v := limits[int(op>>2)%len(limits)]
				e.setLimit(v)
				p.acked(v)
				continue
			}
			status := 200
			if op&0x80 != 0 {
				status = 204
			}
			a, want := genAnswer(status, uint32(op>>2)%3)
			ix := a.ix
			if op%4 == 3 {
				ix = nil
			}
			pre, b := e.pick(a.head, ix, nil)
			got := p.block(t, append(pre, b...))
			if !sameFields(got, want) {
				t.Fatalf("decoded %v, want %v", got, want)
			}
		}
	})
}

// TestIndexedAnswersThroughSettings: through a connection, indexed
// answers decode to their fields as a client's table limit falls to 0
// and rises again, each limit taking effect at the server's SETTINGS
// ACK; steady answers take a few bytes.
func TestIndexedAnswersThroughSettings(t *testing.T) {
	c := New(Limits{})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	id := uint32(1)
	phase := func(limit int64, n int) []byte {
		var buf bytes.Buffer
		if id == 1 {
			buf.WriteString(http2.ClientPreface)
		}
		fr := http2.NewFramer(&buf, nil)
		if limit >= 0 {
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: uint32(limit)})
		} else if id == 1 {
			_ = fr.WriteSettings()
		}
		for range n {
			hb.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "t"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			id += 2
		}
		return buf.Bytes()
	}
	p := newPeer()
	var pending []uint32 // limits sent, waiting for their ACK
	check := func(sent []byte, want []hpack.HeaderField) (sizes []int) {
		fr := http2.NewFramer(nil, bytes.NewReader(sent))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return sizes
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if f.IsAck() && len(pending) > 0 {
					p.acked(pending[0])
					pending = pending[1:]
				}
			case *http2.HeadersFrame:
				b := f.HeaderBlockFragment()
				sizes = append(sizes, len(b))
				if got := p.block(t, b); !sameFields(got, want) {
					t.Fatalf("stream %d: decoded %v, want %v", f.StreamID, got, want)
				}
			}
		}
	}
	g1, want1 := genAnswer(200, 1)
	g2, want2 := genAnswer(200, 2)
	pending = append(pending, 4096) // the client's first SETTINGS: no change
	for _, ph := range []struct {
		limit int64
		a     answer
		want  []hpack.HeaderField
	}{{-1, g1, want1}, {0, g1, want1}, {4096, g1, want1}, {1024, g1, want1}, {-1, g2, want2}, {8192, g2, want2}} {
		if ph.limit >= 0 {
			pending = append(pending, uint32(ph.limit))
		}
		sizes := check(run(c, phase(ph.limit, 4), 7, ph.a), ph.want)
		if len(sizes) != 4 {
			t.Fatalf("limit %d: %d header blocks, want 4", ph.limit, len(sizes))
		}
		if ph.limit != 0 && sizes[3] != len(ph.a.ix.Steady) {
			t.Errorf("limit %d: the last block took %d bytes, want Steady's %d (sizes %v)", ph.limit, sizes[3], len(ph.a.ix.Steady), sizes)
		}
	}
}

// TestH2LoadTableSizes: nghttp2's decoder, which holds an encoder to RFC
// 7541 §4.2 (a limit under 4096 needs a size update in the first block),
// reads indexed answers under every table size a client may announce.
func TestH2LoadTableSizes(t *testing.T) {
	a, _ := genAnswer(200, 1)
	addr := listen(t, Limits{}, a)
	for _, size := range []int{0, 64, 150, 1024, 4096, 65536} {
		out, err := exec.Command("h2load", "-n", "2000", "-c", "2", "-m", "8", "--header-table-size="+strconv.Itoa(size), "http://"+addr+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("h2load: %v\n%s", err, out)
		}
		if m := h2loadSummary.FindSubmatch(out); m == nil || string(m[4]) != "2000" || !bytes.Contains(out, []byte("status codes: 2000 2xx")) {
			t.Fatalf("--header-table-size=%d:\n%s", size, out)
		}
	}
}

// TestUpgradeTableSize: settings an upgrade carries (HTTP2-Settings)
// bound the answer on stream 1 by the smaller of them and 4096, which
// nghttp2 holds its table to until it has our acknowledgement.
func TestUpgradeTableSize(t *testing.T) {
	a, want := genAnswer(200, 1)
	for _, tc := range []struct {
		size     uint32
		updates  []uint32 // the block's size updates
		limitNow uint32
	}{
		{0, []uint32{0}, 0},
		{1024, []uint32{0, a.ix.Size}, 1024},
		{65536, []uint32{a.ix.Size}, 4096},
	} {
		c := New(Limits{})
		var settings [6]byte
		settings[1] = byte(http2.SettingHeaderTableSize)
		settings[2], settings[3], settings[4], settings[5] = byte(tc.size>>24), byte(tc.size>>16), byte(tc.size>>8), byte(tc.size)
		if !c.ResetUpgrade(settings[:], false) {
			t.Fatal("settings refused")
		}
		if c.enc.limit != tc.limitNow {
			t.Errorf("size %d: the encoder's limit is %d, want %d", tc.size, c.enc.limit, tc.limitNow)
		}
		c.Answer(1, &Answer{Head: a.head, Indexed: a.ix, Body: a.body})
		out := c.Output()
		i := bytes.Index(out, []byte("\r\n\r\n"))
		if i < 0 {
			t.Fatalf("no 101 in %q", out)
		}
		fr := http2.NewFramer(nil, bytes.NewReader(out[i+4:]))
		p := newPeer()
		p.acked(min(tc.size, 4096))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("size %d: no HEADERS: %v", tc.size, err)
			}
			if h, ok := f.(*http2.HeadersFrame); ok {
				b := h.HeaderBlockFragment()
				if got := leadingUpdates(t, b); !slices.Equal(got, tc.updates) {
					t.Errorf("size %d: size updates %v, want %v", tc.size, got, tc.updates)
				}
				if got := p.block(t, b); !sameFields(got, want) {
					t.Errorf("size %d: decoded %v, want %v", tc.size, got, want)
				}
				break
			}
		}
	}
}
