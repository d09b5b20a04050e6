package h2wire

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// The oracle is golang.org/x/net/http2/hpack: our decoder must give the
// same fields for every block, or fail where it fails.

const testTable, testField = 4096, 8192

type field struct{ name, value string }

// decodeAll decodes blocks in order with our decoder.
func decodeAll(d *Decoder, blocks [][]byte) ([][]field, error) {
	var out [][]field
	for _, b := range blocks {
		var fs []field
		d.Start(b)
		for {
			name, value, ok, err := d.Next()
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			fs = append(fs, field{string(name), string(value)})
		}
		out = append(out, fs)
	}
	return out, nil
}

// oracleAll decodes blocks in order with x/net's decoder.
func oracleAll(blocks [][]byte) ([][]field, error) {
	var cur []field
	d := hpack.NewDecoder(testTable, func(f hpack.HeaderField) { cur = append(cur, field{f.Name, f.Value}) })
	d.SetMaxStringLength(testField)
	var out [][]field
	for _, b := range blocks {
		cur = nil
		if _, err := d.Write(b); err != nil {
			return out, err
		}
		if err := d.Close(); err != nil {
			return out, err
		}
		out = append(out, cur)
	}
	return out, nil
}

// compare runs both decoders over blocks.
func compare(t *testing.T, blocks [][]byte) {
	t.Helper()
	got, err := decodeAll(NewDecoder(testTable, testField), blocks)
	want, werr := oracleAll(blocks)
	switch {
	case err != nil && werr != nil:
		return // both refuse (the blocks before agree: checked below)
	case errors.Is(err, ErrSizeUpdate) && werr == nil:
		// RFC 7541 §4.2: a size update comes first in a block; x/net
		// lets one through after fields while its table is empty.
		return
	case err == nil && errors.Is(werr, hpack.ErrStringLength):
		// x/net also bounds a Huffman string's encoded length; we bound
		// what it decodes to.
		return
	case err != nil || werr != nil:
		t.Fatalf("blocks %x: ours %v, x/net %v (ours decoded %q, x/net %q)", blocks, err, werr, got, want)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("blocks %x:\nours  %q\nx/net %q", blocks, got, want)
	}
}

// encodeBlocks encodes header lists with x/net's encoder, which uses the
// dynamic table, Huffman and size updates.
func encodeBlocks(lists [][]hpack.HeaderField, tableSizes []uint32) [][]byte {
	var buf bytes.Buffer
	e := hpack.NewEncoder(&buf)
	var out [][]byte
	for i, l := range lists {
		if i < len(tableSizes) {
			e.SetMaxDynamicTableSize(tableSizes[i])
		}
		buf.Reset()
		for _, f := range l {
			_ = e.WriteField(f)
		}
		out = append(out, bytes.Clone(buf.Bytes()))
	}
	return out
}

func TestStaticTableMatchesRFC(t *testing.T) {
	for i := 1; i <= len(staticTable); i++ {
		compare(t, [][]byte{{0x80 | byte(i)}})
	}
	compare(t, [][]byte{{0x80 | byte(len(staticTable)+1)}}) // the first dynamic index: empty table
}

func TestDecodeRequests(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{":method", ":path", ":scheme", ":authority", "user-agent", "accept", "x-custom", "cookie", "content-length"}
	for round := range 200 {
		var lists [][]hpack.HeaderField
		for range 1 + r.IntN(8) {
			var l []hpack.HeaderField
			for range 1 + r.IntN(10) {
				v := strings.Repeat(string(rune('a'+r.IntN(26))), r.IntN(300))
				l = append(l, hpack.HeaderField{Name: names[r.IntN(len(names))], Value: v, Sensitive: r.IntN(5) == 0})
			}
			lists = append(lists, l)
		}
		sizes := []uint32{4096}
		if round%3 == 0 {
			sizes = []uint32{4096, 256, 0, 4096}
		}
		compare(t, encodeBlocks(lists, sizes))
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name  string
		block []byte
		want  error
	}{
		{"index 0", []byte{0x80}, ErrIndex},
		{"index past the tables", []byte{0xff, 0x00}, ErrIndex},
		{"integer runs off the block", []byte{0xff, 0x80}, ErrInteger},
		{"integer too large", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, ErrInteger},
		{"name runs off the block", []byte{0x40, 0x05, 'a'}, ErrTruncated},
		{"value missing", []byte{0x40, 0x01, 'a'}, ErrTruncated},
		{"size update over our limit", []byte{0x3f, 0xe2, 0x1f}, ErrTableSize}, // 4097
		{"size update after a field", []byte{0x82, 0x20}, ErrSizeUpdate},
		{"Huffman EOS inside", []byte{0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00}, ErrHuffman},
		{"Huffman padding of 8 bits", []byte{0x00, 0x82, 0x1f, 0xff, 0x00}, ErrHuffman},
		{"Huffman padding not ones", []byte{0x00, 0x81, 0x00, 0x00}, ErrHuffman},
		{"literal too long", append([]byte{0x00, 0x7f, 0x82, 0x3f}, make([]byte, testField+1)...), ErrFieldTooLong}, // a name of 8193 bytes
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeAll(NewDecoder(testTable, testField), [][]byte{tc.block})
			if !errors.Is(err, tc.want) {
				t.Fatalf("block %.32x: error %v, want %v", tc.block, err, tc.want)
			}
			if _, werr := oracleAll([][]byte{tc.block}); werr == nil && tc.want != ErrSizeUpdate {
				t.Fatalf("block %.32x: x/net accepts it", tc.block)
			}
		})
	}
}

func TestHuffmanAgainstOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		s := make([]byte, r.IntN(64))
		for i := range s {
			s[i] = byte(r.IntN(256))
		}
		enc := hpack.AppendHuffmanString(nil, string(s))
		if ours := appendHuffmanEncoded(nil, s); !bytes.Equal(ours, enc) {
			t.Fatalf("%q encodes to %x, x/net %x", s, ours, enc)
		}
		got, err := appendHuffman(nil, enc, 1<<20)
		if err != nil || !bytes.Equal(got, s) {
			t.Fatalf("%x decodes to %q, %v; want %q", enc, got, err, s)
		}
	}
}

// TestTableEviction fills the table past its size, with entries whose
// names come from the table itself (moved by compaction, evicted while
// in use), and checks every later reference against the oracle.
func TestTableEviction(t *testing.T) {
	var lists [][]hpack.HeaderField
	for i := range 300 {
		lists = append(lists, []hpack.HeaderField{
			{Name: fmt.Sprintf("x-h%d", i%40), Value: strings.Repeat("v", i%500)},
			{Name: fmt.Sprintf("x-h%d", (i+7)%40), Value: strings.Repeat("w", (i*13)%700)},
		})
	}
	compare(t, encodeBlocks(lists, nil))
}

func TestDecodeAllocatesNothing(t *testing.T) {
	blocks := encodeBlocks([][]hpack.HeaderField{
		{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/index?x=1"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "127.0.0.1:8080"}, {Name: "user-agent", Value: "h2load nghttp2/1.52.0"}},
	}, nil)
	d := NewDecoder(testTable, testField)
	allocs := testing.AllocsPerRun(1000, func() {
		d.Start(blocks[0])
		for {
			_, _, ok, err := d.Next()
			if err != nil || !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per block", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	var lists [][]hpack.HeaderField
	for range 2 {
		lists = append(lists, []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/"},
			{Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "127.0.0.1:8080"},
			{Name: "user-agent", Value: "h2load nghttp2/1.52.0"}})
	}
	blocks := encodeBlocks(lists, nil)
	d := NewDecoder(testTable, testField)
	d.Start(blocks[0])
	for {
		if _, _, ok, _ := d.Next(); !ok {
			break
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		d.Start(blocks[1]) // every field indexed from the dynamic table, as h2load sends them
		for {
			if _, _, ok, _ := d.Next(); !ok {
				break
			}
		}
	}
}

// FuzzDecode splits its input into header blocks and decodes them in
// order with both decoders.
func FuzzDecode(f *testing.F) {
	seeds := encodeBlocks([][]hpack.HeaderField{
		{{Name: ":method", Value: "GET"}, {Name: ":path", Value: "/"}, {Name: "x-a", Value: "b"}},
		{{Name: ":method", Value: "GET"}, {Name: "x-a", Value: "b"}, {Name: "cookie", Value: "c=d", Sensitive: true}},
	}, []uint32{4096, 100})
	f.Add(append(append(seeds[0], 0xff), seeds[1]...))
	f.Add([]byte{0x3f, 0xe1, 0x1f, 0x82})
	f.Add([]byte{0x20, 0x40, 0x01, 'a', 0x01, 'b', 0xff, 0xbe})
	f.Fuzz(func(t *testing.T, data []byte) {
		// 0xff 0xff separates blocks (an index that long is refused
		// anyway, so few real blocks are split by it).
		blocks := bytes.Split(data, []byte{0xff, 0xff})
		compare(t, blocks)
	})
}
