package h2

// Answers' header blocks are prepared by the caller, in up to three
// forms. The plain one names fields by static-table index and carries
// values as literals without indexing: any decoder reads it in any
// state. Prime carries the same fields but inserts those every answer of
// a set shares (Server, Date, Content-Type, the configured fields) into
// the peer's dynamic table (RFC 7541 §6.2.1); Steady refers to them, a
// byte each (§6.1). The connection picks a form as it writes each
// HEADERS, in the order the peer decodes them, so all the encoder state
// it keeps is which set's fields the table holds: no field is looked up
// or compared per answer, and a stream's bytes are still prepared ones.

// Indexed is an answer's header block in the forms that use the peer's
// dynamic table. Its bytes must not change while a stream holds it.
type Indexed struct {
	// Prime inserts the shared fields as it carries them; nil when the
	// answer lacks one of them (a 204 has no Content-Type) and so cannot
	// fill the table.
	Prime []byte
	// Steady refers to the fields a Prime of the same Gen inserted.
	Steady []byte
	// Size is the table space Prime's fields take (§4.1: name, value
	// and 32 bytes each).
	Size uint32
	// Gen names the shared fields' values (a new Date is a new Gen).
	Gen uint32
}

// tableState is what our answers left in the peer's dynamic table.
type tableState uint8

const (
	tabEmpty  tableState = iota // nothing: no Prime since the last clearing
	tabPrimed                   // the shared fields of encoder.gen
)

// maxUpdates is the most bytes of dynamic table size updates a block
// starts with: a clearing to 0 (for a lowered limit or a new Date), then
// a size of up to 2^14 + 30.
const maxUpdates = 1 + 3

// maxPrime bounds the table space a Prime may fill: its size update
// then takes at most 3 bytes.
const maxPrime = 1 << 14

// defaultTableSize is SETTINGS_HEADER_TABLE_SIZE's initial value
// (RFC 9113 §6.5.2).
const defaultTableSize = 4096

// encoder is the state of our side of the peer's dynamic table.
type encoder struct {
	state tableState
	gen   uint32
	max   uint32 // the table's maximum size as the peer's decoder has it from us
	limit uint32 // the peer's SETTINGS_HEADER_TABLE_SIZE: max may not exceed it
	owed  bool   // the limit fell under max since the last block
}

func newEncoder() encoder { return encoder{max: defaultTableSize, limit: defaultTableSize} }

// setLimit takes a new SETTINGS_HEADER_TABLE_SIZE. A limit under the
// table's size, or under the limit before it, owes a size update: nghttp2
// before 1.47 takes every acknowledged limit, a raise too, as its table's
// size, and then wants one for any fall.
func (e *encoder) setLimit(v uint32) {
	e.owed = e.owed || v < max(e.max, e.limit)
	e.limit = v
}

// pick chooses the form of the next header block written, plain or ix's,
// and the size updates it must start with (appended to pre), and takes
// the table to the state the block leaves it in.
func (e *encoder) pick(plain []byte, ix *Indexed, pre []byte) ([]byte, []byte) {
	if ix == nil {
		ix = &noIndex
	}
	if e.owed {
		// The peer's decoder shrank the table, perhaps evicting our
		// fields, and waits for a size update no larger than the smallest
		// limit since the last block (RFC 7541 §4.2; nghttp2 refuses a
		// block without it): 0 is under any.
		pre = append(pre, 0x20)
		e.state, e.max, e.owed = tabEmpty, 0, false
	}
	switch {
	case ix.Steady != nil && e.state == tabPrimed && e.gen == ix.Gen:
		return pre, ix.Steady
	case ix.Prime != nil && ix.Size <= min(e.limit, maxPrime):
		if e.state == tabPrimed {
			pre = append(pre, 0x20) // evict the other fields: Steady's indices count from the newest
			e.max = 0
		}
		if e.max != ix.Size {
			pre = appendTableSize(pre, ix.Size)
			e.max = ix.Size
		}
		e.state, e.gen = tabPrimed, ix.Gen
		return pre, ix.Prime
	}
	return pre, plain
}

// noIndex is the forms of an answer that has none.
var noIndex Indexed

// appendTableSize appends a dynamic table size update (RFC 7541 §6.3).
func appendTableSize(b []byte, v uint32) []byte {
	const mask = 1<<5 - 1
	if v < mask {
		return append(b, 0x20|byte(v))
	}
	b = append(b, 0x20|mask)
	v -= mask
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// headBound is the most bytes a header block of plain and ix takes once
// picked, its size updates included.
func headBound(plain []byte, ix *Indexed) int {
	n := len(plain) + 1 // a clearing may come first
	if ix != nil {
		n = max(n, len(ix.Prime)+maxUpdates, len(ix.Steady)+1)
	}
	return n
}
