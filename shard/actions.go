package shard

// actKind is an operation the engine asks the kernel for. Each is named
// after the system call it stands for; the loop turns it into an SQE
// (loop.go, prep.go).
type actKind uint8

const (
	actAccept      actKind = iota + 1 // multishot accept4(2) on the listener
	actRecv                           // recv(2) into buf
	actRecvPool                       // recv(2) into a buffer the kernel takes from the pool
	actRecvMulti                      // multishot recv(2) from the provided-buffer pool
	actSend                           // send(2) of buf
	actSendZC                         // zero-copy send(2) of buf
	actShutdown                       // shutdown(2); how is in n
	actClose                          // close(2)
	actCancel                         // IORING_OP_ASYNC_CANCEL of the operation whose user_data is target
	actRead                           // read(2) into buf (the control eventfd)
	actLingerReset                    // setsockopt(2) SO_LINGER {on, 0}: the close resets
	actSplice                         // a spliced answer's chain (splice.go), or a pipe's drain
	actCloseFile                      // close(2) of a descriptor that is no connection's (a body file)
)

// action is one operation to queue. The engine fills it; the loop copies it
// into an SQE. buf is memory the shard owns (a slot's receive buffer, a
// prepared response), which stays put until the completion arrives.
type action struct {
	ud     uint64
	target uint64 // actCancel: user_data of the operation to cancel
	buf    []byte
	n      uint32 // actShutdown: how; actSplice: body bytes; actSendZC: 1 + the answer's entry in the buffer table (zcIndex)
	fd     int32
	kind   actKind
	link   bool // IOSQE_IO_HARDLINK: the next action runs after this one, even if it fails

	// actSplice: the body file and where the chain's bytes start in it,
	// the pipe, whether more body follows; drain empties the pipe.
	fileOff int64
	file    int32
	pipe    int16
	more    bool
	drain   bool
}

// sqes is how many SQEs a takes, all in one submission: a link chain ends
// at the last SQE of a submission.
func (a *action) sqes() uint32 {
	switch {
	case a.kind == actSplice && a.drain:
		return 1
	case a.kind == actSplice && len(a.buf) > 0:
		return 3
	case a.kind == actSplice:
		return 2
	}
	return 1
}

// actionQueue holds actions not yet turned into SQEs, in order. It is a
// ring of fixed capacity: every action stands for an operation the engine
// has already counted as in flight, and a connection has at most
// maxOpsPerConn of those, so the capacity (set at start from the slot
// count) is never reached. Should it be, the queue grows and says so in
// a counter rather than lose an operation.
type actionQueue struct {
	a     []action // a power of two long
	mask  int
	head  int
	n     int
	grown uint64 // times the queue had to grow (should stay 0)
}

// maxOpsPerConn bounds the operations one connection can have queued or in
// flight at once: a recv, a send (a splice chain's three SQEs), a
// shutdown, a close, and cancels of the recv and the send (three for a
// chain).
const maxOpsPerConn = 10

func newActionQueue(capacity int) actionQueue {
	n := 16
	for n < capacity {
		n *= 2
	}
	return actionQueue{a: make([]action, n), mask: n - 1}
}

// push appends a.
func (q *actionQueue) push(a action) {
	if q.n == len(q.a) {
		q.grow()
	}
	q.a[(q.head+q.n)&q.mask] = a
	q.n++
}

func (q *actionQueue) grow() {
	q.grown++
	bigger := make([]action, 2*len(q.a))
	for i := range q.n {
		bigger[i] = q.a[(q.head+i)&q.mask]
	}
	q.a, q.mask, q.head = bigger, len(bigger)-1, 0
}

// peek returns the i-th queued action.
func (q *actionQueue) peek(i int) *action { return &q.a[(q.head+i)&q.mask] }

// pop removes the first k actions.
func (q *actionQueue) pop(k int) {
	for i := range k {
		q.a[(q.head+i)&q.mask].buf = nil // let go of the memory
	}
	q.head = (q.head + k) & q.mask
	q.n -= k
	if q.n == 0 {
		// Start over at the front: the queue then touches only as many
		// entries as were ever queued at once, not a new stretch of its
		// (connection-sized) capacity with every few thousand operations.
		q.head = 0
	}
}
