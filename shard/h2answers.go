package shard

import (
	"strconv"
	"strings"

	"zerosys/shard/h2"
)

// HTTP/2 answers are prepared like HTTP/1.1's: each kind's header block
// is HPACK-encoded at start-up, in three forms (h2.Indexed says how the
// connection picks one). The plain form has static-table names and
// literals without indexing (RFC 7541 §6.2.2). Prime inserts the fields
// every kind of a set shares into the peer's dynamic table, and Steady
// refers to them: an answer's block shrinks from some 60 bytes to under
// 10, which is what a load generator decoding a million of them a second
// spends its time on. Date values are plain literals at known offsets,
// rewritten with the HTTP/1.1 bytes once a second.

// Static-table indices of the names an answer carries (RFC 7541 App. A).
const (
	hpackStatus        = 8
	hpackContentLength = 28
	hpackContentType   = 31
	hpackDate          = 33
	hpackServer        = 54
)

// appendHpackInt appends v with an n-bit prefix whose high bits are
// flags (RFC 7541 §5.1).
func appendHpackInt(dst []byte, flags byte, n uint, v uint64) []byte {
	mask := uint64(1)<<n - 1
	if v < mask {
		return append(dst, flags|byte(v))
	}
	dst = append(dst, flags|byte(mask))
	v -= mask
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// appendHpackLiteral appends name (a static index) with value as a
// literal without indexing, the value not Huffman-coded; it returns where
// the value starts.
func appendHpackLiteral(dst []byte, name int, value string) ([]byte, int) {
	dst = appendHpackInt(dst, 0x00, 4, uint64(name))
	dst = appendHpackInt(dst, 0x00, 7, uint64(len(value)))
	at := len(dst)
	return append(dst, value...), at
}

// appendHpackNewName appends a literal without indexing with a literal
// name, lowercased as HTTP/2 requires (RFC 9113 §8.2.1).
func appendHpackNewName(dst []byte, name, value string) []byte {
	dst = append(dst, 0x00)
	dst = appendHpackInt(dst, 0x00, 7, uint64(len(name)))
	dst = append(dst, strings.ToLower(name)...)
	dst = appendHpackInt(dst, 0x00, 7, uint64(len(value)))
	return append(dst, value...)
}

// h2StaticStatus is the static-table index of a status, or 0.
func h2StaticStatus(status int) int {
	switch status {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

// h2Connection names fields HTTP/2 forbids (RFC 9113 §8.2.2): a
// configured header of one of these is left out of HTTP/2 answers.
func h2Connection(name string) bool {
	switch strings.ToLower(name) {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// h2Field is a field an answer's block carries.
type h2Field struct {
	static      int // the static table's index of its name; 0: name is literal
	name, value string
}

// h2Shared is the fields Prime inserts, in order: those every kind of a
// set carries, Content-Type among them (a kind without it cannot prime).
func h2Shared(server, date, ctype string, headers []string) []h2Field {
	f := []h2Field{{hpackServer, "server", server}, {hpackDate, "date", date}, {hpackContentType, "content-type", ctype}}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		if !h2Connection(name) {
			f = append(f, h2Field{0, strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)})
		}
	}
	return f
}

// maxH2Table bounds the table space the shared fields may take: the
// initial SETTINGS_HEADER_TABLE_SIZE, which most clients keep. Past it
// the answers are plain.
const maxH2Table = 4096

// buildH2Indexed is the indexed forms of the answer buildH2Head makes,
// the shared fields (h2Shared, sharedType their Content-Type) those of
// the set, and the offset of the Date value in Prime. A bodyLen under 0
// leaves Content-Length out (a gRPC answer's).
func buildH2Indexed(status int, bodyLen int, ctype, sharedType, server, date string, headers []string) (h2.Indexed, int) {
	shared := h2Shared(server, date, sharedType, headers)
	var ix h2.Indexed
	for _, f := range shared {
		ix.Size += uint32(len(f.name) + len(f.value) + 32) // RFC 7541 §4.1
	}
	if ix.Size > maxH2Table {
		return h2.Indexed{}, 0
	}
	var first, last []byte // what comes before and after the shared fields
	if i := h2StaticStatus(status); i > 0 {
		first = append(first, 0x80|byte(i))
	} else {
		first, _ = appendHpackLiteral(first, hpackStatus, strconv.Itoa(status))
	}
	if !bodiless(status) && bodyLen >= 0 {
		last, _ = appendHpackLiteral(last, hpackContentLength, strconv.Itoa(bodyLen))
	}
	ix.Steady = append([]byte(nil), first...)
	for i, f := range shared {
		if f.static == hpackContentType && ctype == "" {
			continue
		}
		// The newest entry is 62 (§2.3.3): the last inserted.
		ix.Steady = appendHpackInt(ix.Steady, 0x80, 7, uint64(61+len(shared)-i))
	}
	ix.Steady = append(ix.Steady, last...)
	if ctype != sharedType {
		if ctype != "" {
			return h2.Indexed{}, 0 // a Content-Type of its own: plain only
		}
		return ix, 0
	}
	at := 0
	ix.Prime = append([]byte(nil), first...)
	for _, f := range shared {
		if f.static > 0 {
			ix.Prime = appendHpackInt(ix.Prime, 0x40, 6, uint64(f.static)) // §6.2.1, an indexed name
		} else {
			ix.Prime = appendHpackInt(append(ix.Prime, 0x40), 0x00, 7, uint64(len(f.name)))
			ix.Prime = append(ix.Prime, f.name...)
		}
		ix.Prime = appendHpackInt(ix.Prime, 0x00, 7, uint64(len(f.value)))
		if f.static == hpackDate {
			at = len(ix.Prime)
		}
		ix.Prime = append(ix.Prime, f.value...)
	}
	ix.Prime = append(ix.Prime, last...)
	return ix, at
}

// buildH2Head is the header block of an answer with status, body length
// and the configured fields, and the offset of its Date value. A bodyLen
// under 0 leaves Content-Length out (a gRPC answer's).
func buildH2Head(status int, bodyLen int, ctype, server, date string, headers []string) ([]byte, int) {
	var b []byte
	if i := h2StaticStatus(status); i > 0 {
		b = append(b, 0x80|byte(i))
	} else {
		b, _ = appendHpackLiteral(b, hpackStatus, strconv.Itoa(status))
	}
	b, _ = appendHpackLiteral(b, hpackServer, server)
	b, at := appendHpackLiteral(b, hpackDate, date)
	if ctype != "" {
		b, _ = appendHpackLiteral(b, hpackContentType, ctype)
	}
	if !bodiless(status) && bodyLen >= 0 {
		b, _ = appendHpackLiteral(b, hpackContentLength, strconv.Itoa(bodyLen))
	}
	return appendH2Fields(b, headers), at
}

// appendH2Fields appends the configured header lines as fields, those
// HTTP/2 forbids left out.
func appendH2Fields(b []byte, headers []string) []byte {
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		if h2Connection(name) {
			continue
		}
		b = appendHpackNewName(b, strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return b
}

// h2ScratchSize is the room of the scratch a custom header block is built
// in: more than the largest one (the configured headers within
// maxExtraHeaders, a knob's within maxKnobHeaders, its Content-Type, the
// Server and Date fields).
const h2ScratchSize = 16 << 10
