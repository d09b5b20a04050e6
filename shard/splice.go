package shard

import (
	"fmt"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Large answers are spliced, the way nginx serves a file with sendfile:
// their bodies are written once into a memory file (memfd) when the
// behaviour is prepared, and each answer moves page references from it
// through a pipe into the socket (two IORING_OP_SPLICEs) instead of
// copying the body into the kernel on every send. The head, which carries
// the Date, is sent from the prepared bytes as before, in the same link
// chain:
//
//	send(head, MSG_MORE) -> splice(body file -> pipe) -> splice(pipe -> socket)
//
// The kernel runs splices on its io-wq worker threads, which the shard
// registers on its own CPU and bounds to one per pipe. A pipe carries one
// answer at a time; with every pipe busy, an answer is sent the usual
// way. A chain that fails may leave bytes in its pipe: they are spliced
// to /dev/null before the pipe is used again.

// splicePipeCount is how many answers a shard splices at once.
const splicePipeCount = 32

// SpliceFDs is the descriptors a shard keeps open for splicing (its pipes
// and /dev/null), on top of one per connection slot.
const SpliceFDs = 2*splicePipeCount + 1

// spliceChunk is the pipe size asked for: the body bytes one chain moves.
// 1 MiB is the kernel's default fs.pipe-max-size; a larger body takes
// several chains.
const spliceChunk = 1 << 20

// Link flags and splice flags.
const (
	spliceFMore    = 0x04 // SPLICE_F_MORE: more data follows
	spliceFNonblk  = 0x02 // SPLICE_F_NONBLOCK: an empty pipe is EAGAIN, not a wait
	noOffset       = ^uint64(0)
	stepHead       = 0 // the chain's steps, in the set bits of its user_data
	stepFill       = 1
	stepBody       = 2
	spliceChainMax = 3 // SQEs (and CQEs) of one chain
)

// splicePipes is a shard's pipes for splicing, and the /dev/null that
// drains one a failed chain left bytes in.
type splicePipes struct {
	r, w    []int32
	free    []uint16
	chunk   uint32 // bytes one chain moves: the smallest pipe's size
	devNull int32
}

// newSplicePipes opens n pipes of spliceChunk bytes each (or as large as
// the kernel allows) and /dev/null. It runs at start-up, where system
// calls belong.
func newSplicePipes(n int) (*splicePipes, error) {
	p := &splicePipes{chunk: spliceChunk, devNull: -1}
	fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("splice: open /dev/null: %w", err)
	}
	p.devNull = int32(fd)
	for i := range n {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			p.close()
			return nil, fmt.Errorf("splice: pipe %d of %d: %w (raise the descriptor limit, or --splice-min 0)", i+1, n, err)
		}
		p.r, p.w = append(p.r, int32(fds[0])), append(p.w, int32(fds[1]))
		size, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, spliceChunk)
		if err != nil {
			// Over fs.pipe-max-size or the user's pipe pages: keep the
			// size it has.
			size, err = unix.FcntlInt(uintptr(fds[1]), unix.F_GETPIPE_SZ, 0)
			if err != nil {
				p.close()
				return nil, fmt.Errorf("splice: pipe size: %w", err)
			}
		}
		p.chunk = min(p.chunk, uint32(size))
		p.free = append(p.free, uint16(i))
	}
	return p, nil
}

// take lends a free pipe; ok is false when every pipe is busy.
func (p *splicePipes) take() (i int16, ok bool) {
	if p == nil || len(p.free) == 0 {
		return -1, false
	}
	n := len(p.free) - 1
	i = int16(p.free[n])
	p.free = p.free[:n]
	return i, true
}

// put returns pipe i, empty.
func (p *splicePipes) put(i int16) { p.free = append(p.free, uint16(i)) }

// close closes every descriptor; nothing in the ring may use them.
func (p *splicePipes) close() {
	if p == nil {
		return
	}
	for i := range p.r {
		unix.Close(int(p.r[i]))
		unix.Close(int(p.w[i]))
	}
	p.r, p.w, p.free = nil, nil, nil
	if p.devNull >= 0 {
		unix.Close(int(p.devNull))
		p.devNull = -1
	}
}

// writeBodyFile puts every body of rs of at least min bytes into a new
// memory file and marks their GET variants spliced from it. It returns
// the file, or -1 when no body is that large.
func writeBodyFile(rs *responses, minBody int) (int32, error) {
	if minBody <= 0 {
		return -1, nil
	}
	fd := -1
	var off int64
	for v := range rs {
		p := &rs[v]
		if p.body < minBody || p.spliced {
			continue
		}
		if fd < 0 {
			var err error
			if fd, err = unix.MemfdCreate("zerosys-bodies", unix.MFD_CLOEXEC); err != nil {
				return -1, fmt.Errorf("splice: memfd_create: %w", err)
			}
		}
		body := p.bodyOf()
		for done := 0; done < len(body); {
			n, err := unix.Pwrite(fd, body[done:], off+int64(done))
			if err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("splice: writing a body into its memory file: %w", err)
			}
			done += n
		}
		// Every GET variant of the same body reads the same file bytes.
		for w := v; w < len(rs); w++ {
			if q := &rs[w]; q.body == p.body && !q.spliced && string(q.bodyOf()) == string(body) {
				q.spliced, q.file, q.fileOff = true, int32(fd), off
			}
		}
		off += int64(len(body))
	}
	return int32(fd), nil
}

// bodyFile is a behaviour's memory file, closed once no set of that
// behaviour is left.
type bodyFile struct {
	fd  int32
	gen uint32 // the behaviour generation (respSets.gen) its sets carry
}

// closeStaleFiles queues the close of every body file whose behaviour no
// set serves any more: a set is dropped only when nothing reads it, so no
// splice of it is in flight.
func (e *engine) closeStaleFiles() {
	kept := e.files[:0]
	for _, f := range e.files {
		if f.gen == e.sets.gen || e.sets.serves(f.gen) {
			kept = append(kept, f)
			continue
		}
		e.push(action{kind: actCloseFile, fd: f.fd, ud: packUD(opClose, 0, noSlot)})
	}
	e.files = kept
}

// closeSplice closes the pipes and every body file: at teardown, once
// the ring is gone, or when the shard could not start.
func (e *engine) closeSplice() {
	e.pipes.close()
	e.pipes = nil
	for _, f := range e.files {
		unix.Close(int(f.fd))
	}
	e.files = nil
}

// spliceOps are the operations splicing needs.
var spliceOps = []probeOp{{giouring.OpSplice, "IORING_OP_SPLICE", "5.7"}}

// spliceUD is the user_data of step s of a connection's splice chain.
func spliceUD(c *conn, s uint16) uint64 { return c.ud(opSplice) | uint64(s)<<slotBits }

// sendSpliced queues the next chain of a spliced answer: its head (the
// first time) and up to a pipe's worth of its body.
func (e *engine) sendSpliced(c *conn, p *prepared) {
	head := uint32(len(p.one) - p.body)
	var hb []byte
	if c.out.off < head {
		hb = p.one[c.out.off:head]
	}
	from := max(c.out.off, head) - head
	n := min(uint32(p.body)-from, e.pipes.chunk)
	c.out.chainEnd = head + from + n
	c.out.headLen = uint32(len(hb))
	a := action{
		kind: actSplice, fd: c.fd, buf: hb, ud: c.ud(opSplice),
		file: p.file, fileOff: p.fileOff + int64(from), n: n,
		pipe: c.out.pipe, more: from+n < uint32(p.body),
	}
	k := a.sqes()
	e.acts.push(a)
	e.inflight += int(k)
	c.ops += int32(k)
	c.out.chain = uint8(k)
}

// onSplice handles one completion of a splice chain; the chain ends with
// its last.
func (e *engine) onSplice(c *conn, step uint16, res int32) {
	o := &c.out
	switch {
	case res < 0 && errno(res) == unix.ECANCELED:
		o.cancelled = true
	case res < 0:
		if o.failed == 0 {
			o.failed = res
		}
	case step == stepFill:
		o.piped += uint32(res)
	default: // the head, or body bytes the socket took from the pipe
		e.local[cBytesOut] += uint64(res)
		o.off += uint32(res)
		if step == stepHead && uint32(res) < o.headLen && o.failed == 0 {
			o.failed = -int32(unix.EIO) // short (a signal, a socket error): the rest is cancelled, not timed out
		}
		if step == stepBody {
			o.piped -= uint32(res)
		}
	}
	o.chain--
	if o.chain > 0 {
		return
	}
	c.sending = false
	if o.piped > 0 {
		// The chain broke with body bytes in the pipe: drain it before
		// another answer uses it. The pipe leaves the connection.
		e.push(action{kind: actSplice, pipe: o.pipe, drain: true, n: e.pipes.chunk, ud: packUD(opPipeDrain, 0, uint32(o.pipe))})
		e.local[cPipeDrains]++
		o.pipe, o.piped = -1, 0
	}
	if o.off < o.chainEnd {
		r := reasonError
		if o.failed == 0 && o.cancelled {
			r = reasonTimeoutSend // only the sweep cancels a chain's first step
		}
		e.endBatch(c)
		c.setReason(r)
		e.abort(c, r)
		return
	}
	o.failed, o.cancelled = 0, false
	if c.phase == phaseAborting {
		e.endBatch(c)
		return
	}
	if o.off < o.end {
		return // more body: step queues the next chain
	}
	e.countAnswers(c, c.q.first().v, o.k)
	c.q.pop(o.k, &e.sets)
	e.endBatch(c)
}

// prepSplice queues splice(2) of n bytes from in at offIn (noOffset: a
// pipe) to out. Since 5.7; the kernel runs it on an io-wq worker.
func (r *ring) prepSplice(in int32, offIn uint64, out int32, n uint32, flags uint32, link uint8, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpSplice
	e.Flags = link
	e.Fd = out
	e.Off = noOffset // off_out: a pipe or a socket has none
	e.SpliceFdIn = in
	e.Addr = offIn // splice_off_in
	e.Len = n
	e.OpcodeFlags = flags // splice_flags
	e.UserData = ud
}

// prepSpliceChain queues a's chain: the head send, the body into the pipe,
// the pipe into the socket; or, for a drain, the pipe into /dev/null.
func (s *Shard) prepSpliceChain(a *action) {
	r, p := s.r, s.e.pipes
	if a.drain {
		r.prepSplice(p.r[a.pipe], noOffset, p.devNull, a.n, spliceFNonblk, 0, a.ud)
		return
	}
	fixed := uint8(0)
	if s.e.fixedFiles {
		fixed = sqeFixedFile // the socket is a slot of the file table; the pipes and the file are not
	}
	if len(a.buf) > 0 {
		r.prepSend(a.fd, a.buf, sqeIOLink|fixed, a.ud|stepHead<<slotBits)
		r.lastSQE().OpcodeFlags |= unix.MSG_MORE
	}
	r.prepSplice(a.file, uint64(a.fileOff), p.w[a.pipe], a.n, 0, sqeIOLink, a.ud|stepFill<<slotBits)
	var more uint32
	if a.more {
		more = spliceFMore
	}
	r.prepSplice(p.r[a.pipe], noOffset, a.fd, a.n, more, fixed, a.ud|stepBody<<slotBits)
}

// io_uring_register opcodes for the io-wq.
const (
	registerIOWQAff        = 17 // IORING_REGISTER_IOWQ_AFF (5.14)
	registerIOWQMaxWorkers = 19 // IORING_REGISTER_IOWQ_MAX_WORKERS (5.15)
)

// boundWorkers pins the ring's io-wq workers (which run the splices) to
// cpu, when there is one, and bounds the unbound ones to n: a splice into
// a socket whose client does not read waits in its worker. Both are
// best-effort: without them the kernel's defaults apply.
func (r *ring) boundWorkers(cpu, n int) {
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerIOWQAff,
			uintptr(unsafe.Pointer(&set)), unsafe.Sizeof(set), 0, 0)
	}
	limits := [2]uint32{0, uint32(n)} // bounded: unchanged; unbound: n
	unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerIOWQMaxWorkers,
		uintptr(unsafe.Pointer(&limits)), 2, 0, 0)
}

// SpliceSupported makes a small ring and probes IORING_OP_SPLICE, so
// `zerosys check` can say whether --splice-min would splice; a shard that
// finds it missing copies instead and logs one line.
func SpliceSupported() error {
	return onLockedThread(func() error {
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
		if err != nil {
			return err
		}
		defer r.close()
		return r.probeOps(spliceOps)
	})
}
