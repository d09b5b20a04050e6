package shard

// user_data layout, the 64 bits every SQE carries to its CQE:
//
//	bits 63-56  operation (opAccept, opRecv, ...)
//	bits 55-32  generation of the connection slot (24 bits, wraps)
//	bits 31-0   connection slot index
//
// A slot's generation changes each time the slot is freed, so a completion
// that arrives for an earlier tenant of a reused slot is recognised and
// dropped rather than misrouted (the Go runtime's netpoll guards its fds
// with a sequence number for the same reason).

// op is the operation a completion belongs to.
type op uint8

const (
	opAccept op = iota + 1
	opRecv
	opSend
	opShutdown
	opClose
	opCancel
	opWake // the control eventfd was written: another goroutine set a control bit
	opSendZC
)

// zcSetBit marks, in the slot field of an opSendZC, which set of prepared
// responses the send reads: its notification must release that set even
// after the connection is gone. Slots stay below 1<<20.
const zcSetBit = 1 << 31

const genMask = 1<<24 - 1

func packUD(o op, gen uint32, slot uint32) uint64 {
	return uint64(o)<<56 | uint64(gen&genMask)<<32 | uint64(slot)
}

func unpackUD(ud uint64) (o op, gen uint32, slot uint32) {
	return op(ud >> 56), uint32(ud>>32) & genMask, uint32(ud)
}
