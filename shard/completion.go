package shard

// user_data layout, the 64 bits every SQE carries to its CQE:
//
//	bits 63-56  operation (opAccept, opRecv, ...)
//	bits 55-32  generation of the connection slot (24 bits, wraps)
//	bits 31-20  opSendZC: the response set the send reads; opSplice: the step
//	bits 19-0   connection slot index
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
	opLinger    // a reset asked for after the close was queued: counted in no connection's ops
	opSplice    // a step of a spliced answer's chain; the step is in the set bits
	opPipeDrain // a splice pipe emptied into /dev/null; the slot bits are the pipe
)

const (
	genMask  = 1<<24 - 1
	slotBits = 20
	slotMask = 1<<slotBits - 1
	setMask  = 1<<12 - 1
	maxSlots = 1 << slotBits
	noSlot   = slotMask // a close of a connection that got no slot
)

func packUD(o op, gen uint32, slot uint32) uint64 {
	return uint64(o)<<56 | uint64(gen&genMask)<<32 | uint64(slot&slotMask)
}

// packZC is the user_data of a zero-copy send reading response set set.
func packZC(gen, slot uint32, set uint16) uint64 {
	return packUD(opSendZC, gen, slot) | uint64(set&setMask)<<slotBits
}

// completion is a CQE decoded: the one decoder the loop and teardown share.
type completion struct {
	op    op
	gen   uint32
	slot  uint32
	set   uint16 // opSendZC: the response set
	res   int32
	flags uint32
}

func decode(ud uint64, res int32, flags uint32) completion {
	low := uint32(ud)
	return completion{
		op:    op(ud >> 56),
		gen:   uint32(ud>>32) & genMask,
		slot:  low & slotMask,
		set:   uint16(low>>slotBits) & setMask,
		res:   res,
		flags: flags,
	}
}

// more reports IORING_CQE_F_MORE: a multishot operation stays armed, or a
// zero-copy send will post its notification.
func (c completion) more() bool { return c.flags&cqeFMore != 0 }

// notif reports a zero-copy send's notification (IORING_CQE_F_NOTIF).
func (c completion) notif() bool { return c.flags&cqeFNotif != 0 }

// bid returns the provided buffer a multishot recv filled, if any.
func (c completion) bid() (uint16, bool) {
	return uint16(c.flags >> cqeBufferShift), c.flags&cqeFBuffer != 0
}
