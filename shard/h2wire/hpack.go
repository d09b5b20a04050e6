package h2wire

import "errors"

// HPACK (RFC 7541) decoding without allocation: the dynamic table lives in
// a fixed arena sized by the table size we announce, Huffman-coded strings
// decode into a fixed scratch buffer, and fields come out one at a time,
// as slices valid until the next call.

// Decoding errors. Any of them is a COMPRESSION_ERROR on the connection
// (RFC 9113 §4.3); ErrFieldTooLong and ErrTableSize are ours to bound.
var (
	ErrIndex        = errors.New("hpack: index out of range")
	ErrInteger      = errors.New("hpack: integer too large or truncated")
	ErrTruncated    = errors.New("hpack: header block ends inside a field")
	ErrTableSize    = errors.New("hpack: dynamic table size update over the allowed size")
	ErrSizeUpdate   = errors.New("hpack: dynamic table size update after the first field")
	ErrFieldTooLong = errors.New("hpack: field longer than the decoder allows")
)

// entryOverhead is the 32 bytes RFC 7541 §4.1 counts per table entry.
const entryOverhead = 32

// tableEntry is a dynamic table entry: its name and value in the arena.
type tableEntry struct {
	off      uint32
	nameLen  uint32
	valueLen uint32
}

// Decoder decodes the header blocks of one connection, in order.
type Decoder struct {
	// The dynamic table: entries newest last in a ring, their bytes in
	// arena (appended; compacted to the front when the end is reached).
	ents    []tableEntry
	head    int // index of the oldest entry in ents
	n       int // entries in the table
	arena   []byte
	used    uint32 // arena bytes appended since the last compaction
	size    uint32 // the table's size as RFC 7541 counts it
	maxSize uint32 // the size the encoder last set (at most limit)
	limit   uint32 // SETTINGS_HEADER_TABLE_SIZE we announced

	scratch  []byte // Huffman-decoded strings of the current field
	maxField int    // longest name or value accepted

	block  []byte // the rest of the block being decoded
	fields int    // fields decoded from the block
}

// NewDecoder makes a decoder for a table of at most tableSize bytes (our
// SETTINGS_HEADER_TABLE_SIZE) and fields of at most maxField bytes each.
// It allocates everything it will use.
func NewDecoder(tableSize uint32, maxField int) *Decoder {
	d := &Decoder{
		ents:     make([]tableEntry, ringSize(tableSize/entryOverhead+1)),
		arena:    make([]byte, 2*tableSize),
		limit:    tableSize,
		maxSize:  tableSize,
		scratch:  make([]byte, 0, 2*maxField+int(tableSize)), // a name, a value, a table name copied out
		maxField: maxField,
	}
	return d
}

// ringSize is n rounded up to a power of two: the entry ring is indexed
// with a mask, not a division.
func ringSize(n uint32) int {
	r := 1
	for r < int(n) {
		r *= 2
	}
	return r
}

// Reset empties the table for a new connection.
func (d *Decoder) Reset() {
	d.head, d.n, d.used, d.size, d.maxSize = 0, 0, 0, 0, d.limit
	d.block, d.fields = nil, 0
}

// Start begins decoding a whole header block (HEADERS and its
// CONTINUATIONs, joined).
func (d *Decoder) Start(block []byte) {
	d.block, d.fields = block, 0
}

// Next decodes the next field of the block. It reports ok false at the
// end of the block. name and value stay valid until the next call.
func (d *Decoder) Next() (name, value []byte, ok bool, err error) {
	for len(d.block) > 0 {
		b := d.block[0]
		switch {
		case b&0x80 != 0: // indexed field (§6.1)
			i, err := d.integer(7)
			if err != nil {
				return nil, nil, false, err
			}
			name, value, err = d.at(i)
			if err != nil {
				return nil, nil, false, err
			}
			d.fields++
			return name, value, true, nil
		case b&0xc0 == 0x40: // literal with incremental indexing (§6.2.1)
			name, value, err = d.literal(6)
			if err != nil {
				return nil, nil, false, err
			}
			d.fields++
			d.insert(name, value)
			return name, value, true, nil
		case b&0xe0 == 0x20: // dynamic table size update (§6.3)
			if d.fields > 0 {
				return nil, nil, false, ErrSizeUpdate
			}
			n, err := d.integer(5)
			if err != nil {
				return nil, nil, false, err
			}
			if n > uint64(d.limit) {
				return nil, nil, false, ErrTableSize
			}
			d.maxSize = uint32(n)
			d.evictTo(d.maxSize)
		default: // literal without indexing, or never indexed (§6.2.2, §6.2.3)
			name, value, err = d.literal(4)
			if err != nil {
				return nil, nil, false, err
			}
			d.fields++
			return name, value, true, nil
		}
	}
	return nil, nil, false, nil
}

// integer decodes an integer with an n-bit prefix (§5.1) at the start of
// the block. Values above 1<<28 are refused: no field or table is that
// large, and it keeps the arithmetic far from overflow.
func (d *Decoder) integer(n uint) (uint64, error) {
	b := d.block
	mask := byte(1)<<n - 1
	v := uint64(b[0] & mask)
	if v < uint64(mask) {
		d.block = b[1:]
		return v, nil
	}
	var m uint
	for i := 1; i < len(b); i++ {
		c := b[i]
		v += uint64(c&0x7f) << m
		if v > 1<<28 {
			return 0, ErrInteger
		}
		if c&0x80 == 0 {
			d.block = b[i+1:]
			return v, nil
		}
		m += 7
	}
	return 0, ErrInteger
}

// literal decodes a literal field whose name index has an n-bit prefix:
// an indexed name, or a literal one, then the value.
func (d *Decoder) literal(n uint) (name, value []byte, err error) {
	d.scratch = d.scratch[:0]
	i, err := d.integer(n)
	if err != nil {
		return nil, nil, err
	}
	if i > 0 {
		if name, _, err = d.at(i); err != nil {
			return nil, nil, err
		}
		if i > uint64(len(staticTable)) {
			// A name from the dynamic table: copied out first, since
			// inserting this field may evict and move its entry.
			start := len(d.scratch)
			d.scratch = append(d.scratch, name...)
			name = d.scratch[start:]
		}
	} else if name, err = d.str(); err != nil {
		return nil, nil, err
	}
	if value, err = d.str(); err != nil {
		return nil, nil, err
	}
	return name, value, nil
}

// str decodes a string literal (§5.2): raw, as a slice of the block, or
// Huffman-decoded into scratch.
func (d *Decoder) str() ([]byte, error) {
	if len(d.block) == 0 {
		return nil, ErrTruncated
	}
	huff := d.block[0]&0x80 != 0
	n, err := d.integer(7)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(d.block)) {
		return nil, ErrTruncated
	}
	raw := d.block[:n]
	d.block = d.block[n:]
	if !huff {
		if len(raw) > d.maxField {
			return nil, ErrFieldTooLong
		}
		return raw, nil
	}
	start := len(d.scratch)
	out, err := appendHuffman(d.scratch, raw, start+d.maxField)
	if err == errTooLong {
		return nil, ErrFieldTooLong
	}
	if err != nil {
		return nil, err
	}
	d.scratch = out
	return out[start:], nil
}

// at returns the field at index i (§2.3.3): the static table first, then
// the dynamic table, newest first.
func (d *Decoder) at(i uint64) (name, value []byte, err error) {
	if i == 0 {
		return nil, nil, ErrIndex
	}
	if i <= uint64(len(staticTable)) {
		f := &staticTable[i-1]
		return f.name, f.value, nil
	}
	i -= uint64(len(staticTable)) + 1
	if i >= uint64(d.n) {
		return nil, nil, ErrIndex
	}
	e := d.ents[(d.head+d.n-1-int(i))%len(d.ents)]
	return d.arena[e.off : e.off+e.nameLen], d.arena[e.off+e.nameLen : e.off+e.nameLen+e.valueLen], nil
}

// insert adds name: value as the newest entry, evicting the oldest ones
// to make room (§4.4); an entry larger than the table empties it. name
// and value are never arena bytes (literal copies a table name out).
func (d *Decoder) insert(name, value []byte) {
	need := uint32(len(name)+len(value)) + entryOverhead
	if need > d.maxSize {
		d.evictTo(0)
		return
	}
	d.evictTo(d.maxSize - need)
	l := uint32(len(name) + len(value))
	if d.used+l > uint32(len(d.arena)) {
		d.compact()
	}
	off := d.used
	copy(d.arena[off:], name)
	copy(d.arena[off+uint32(len(name)):], value)
	d.used += l
	d.ents[(d.head+d.n)%len(d.ents)] = tableEntry{off: off, nameLen: uint32(len(name)), valueLen: uint32(len(value))}
	d.n++
	d.size += need
}

// evictTo drops the oldest entries until the table takes at most max.
func (d *Decoder) evictTo(max uint32) {
	for d.size > max && d.n > 0 {
		e := d.ents[d.head]
		d.size -= e.nameLen + e.valueLen + entryOverhead
		d.head = (d.head + 1) & (len(d.ents) - 1)
		d.n--
	}
	if d.n == 0 {
		d.used = 0
	}
}

// compact moves the live entries to the front of the arena. The arena is
// twice the table size, so this runs at most once per table's worth of
// insertions.
func (d *Decoder) compact() {
	var off uint32
	for k := range d.n {
		e := &d.ents[(d.head+k)%len(d.ents)]
		l := e.nameLen + e.valueLen
		copy(d.arena[off:off+l], d.arena[e.off:e.off+l])
		e.off = off
		off += l
	}
	d.used = off
}
