package h2wire

import "errors"

// ErrHuffman is a Huffman-coded string that does not decode: a code that
// is no symbol, EOS inside the string, or padding that is longer than 7
// bits or not the EOS code's leading ones (RFC 7541 §5.2).
var ErrHuffman = errors.New("hpack: invalid Huffman-coded string")

// errTooLong is a decoded string longer than the room given for it.
var errTooLong = errors.New("hpack: string longer than allowed")

// huffEntry is one of a decoding node's 256 slots, indexed by the next 8
// bits of input: a symbol whose code ends within them (bits is the part of
// the 8 it takes), or, with bits 0, the node that the code goes on in.
type huffEntry struct {
	next uint16
	sym  uint16
	bits uint8
}

type huffNode [256]huffEntry

// huffTree decodes 8 input bits per step. It is built once from
// huffmanCodes; node 0 is the root.
var huffTree = buildHuffTree()

func buildHuffTree() []huffNode {
	nodes := make([]huffNode, 1, 64)
	for sym, c := range huffmanCodes {
		code, bits := c.code, c.bits
		n := 0
		for bits > 8 {
			bits -= 8
			i := byte(code >> bits)
			if nodes[n][i].next == 0 {
				nodes = append(nodes, huffNode{})
				nodes[n][i].next = uint16(len(nodes) - 1)
			}
			n = int(nodes[n][i].next)
		}
		shift := 8 - bits
		start := int(byte(code << shift))
		for i := range 1 << shift {
			nodes[n][start|i] = huffEntry{sym: uint16(sym), bits: bits}
		}
	}
	return nodes
}

// appendHuffman decodes the Huffman-coded src onto dst, which may grow to
// at most limit bytes.
func appendHuffman(dst, src []byte, limit int) ([]byte, error) {
	var cur uint64 // input bits not yet decoded, right-aligned
	var cbits uint8
	var sbits uint8 // bits taken since the last whole symbol (padding at the end)
	n := 0          // the node the current code has reached
	for _, b := range src {
		cur = cur<<8 | uint64(b)
		cbits += 8
		sbits += 8
		for cbits >= 8 {
			e := huffTree[n][byte(cur>>(cbits-8))]
			if e.bits == 0 {
				n = int(e.next)
				cbits -= 8
				continue
			}
			if e.sym == 256 {
				return dst, ErrHuffman // EOS inside a string
			}
			if len(dst) >= limit {
				return dst, errTooLong
			}
			dst = append(dst, byte(e.sym))
			cbits -= e.bits
			n, sbits = 0, cbits
		}
	}
	for cbits > 0 {
		e := huffTree[n][byte(cur<<(8-cbits))]
		if e.bits == 0 || e.bits > cbits {
			break
		}
		if e.sym == 256 {
			return dst, ErrHuffman
		}
		if len(dst) >= limit {
			return dst, errTooLong
		}
		dst = append(dst, byte(e.sym))
		cbits -= e.bits
		n, sbits = 0, cbits
	}
	// What is left is padding: at most 7 bits, all ones.
	if sbits > 7 {
		return dst, ErrHuffman
	}
	if mask := uint64(1)<<cbits - 1; cur&mask != mask {
		return dst, ErrHuffman
	}
	return dst, nil
}

// appendHuffmanEncoded encodes s onto dst (for tests and prepared
// answers; the hot path sends literals as they are).
func appendHuffmanEncoded(dst []byte, s []byte) []byte {
	var cur uint64
	var cbits uint8
	for _, b := range s {
		c := huffmanCodes[b]
		cur = cur<<c.bits | uint64(c.code)
		cbits += c.bits
		for cbits >= 8 {
			cbits -= 8
			dst = append(dst, byte(cur>>cbits))
		}
	}
	if cbits > 0 {
		dst = append(dst, byte(cur<<(8-cbits))|byte(0xff>>cbits)) // EOS-prefix padding
	}
	return dst
}
