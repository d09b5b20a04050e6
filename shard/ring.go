package shard

// This file is the only place in zerosys that touches io_uring memory through
// unsafe pointers: the io_uring_params layout mirror, the shard's own view of
// the shared SQ and CQ rings, and hand-filled SQEs.
//
// giouring sets the ring up (io_uring_setup, mmap), enters it and tears it
// down. Everything the hot loop does — claiming SQEs, publishing the SQ tail,
// reading NEED_WAKEUP and CQ_OVERFLOW, reaping CQEs — goes through a second
// mapping of the same shared memory that this file reads by the kernel's ABI.
// That keeps every io_uring_enter in code we own (so each one is counted) and
// steps around giouring's defects at the version we pin: helpers that leave
// stale SQE fields, broken timeout helpers, and a batch peek that silently
// enters the kernel.

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Kernel ABI constants from include/uapi/linux/io_uring.h.
const (
	offSQRing = 0
	offSQEs   = 0x10000000

	setupSQPoll       = 1 << 1
	setupSQAff        = 1 << 2
	setupCQSize       = 1 << 3
	setupClamp        = 1 << 4
	setupSubmitAll    = 1 << 7
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1
	featExtArg     = 1 << 8

	enterGetEvents = 1 << 0
	enterSQWakeup  = 1 << 1
	enterSQWait    = 1 << 2
	enterExtArg    = 1 << 3

	sqNeedWakeup = 1 << 0
	sqCQOverflow = 1 << 1

	cqeFMore  = 1 << 1
	cqeFNotif = 1 << 3

	sqeIOLink     = 1 << 2
	sqeIOHardlink = 1 << 3

	acceptMultishot = 1 << 0

	asyncCancelAll = 1 << 0
	asyncCancelAny = 1 << 2
)

// ringParams mirrors struct io_uring_params (120 bytes). giouring's Params has
// only unexported fields, so this layout is handed to it through
// unsafe.Pointer to set sq_thread_cpu and sq_thread_idle; ring_test.go guards
// the layout.
type ringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        sqRingOffsets
	cqOff        cqRingOffsets
}

// sqRingOffsets mirrors struct io_sqring_offsets.
type sqRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

// cqRingOffsets mirrors struct io_cqring_offsets.
type cqRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe (64 bytes); giouring's definition matches the
// kernel's.
type sqe = giouring.SubmissionQueueEntry

// cqe is struct io_uring_cqe (16 bytes, no CQE32).
type cqe = giouring.CompletionQueueEvent

// geteventsArg mirrors struct io_uring_getevents_arg, used with
// IORING_ENTER_EXT_ARG to wait with a timeout.
type geteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWaitUs uint32
	ts        uint64
}

// ringOptions is what a shard asks of its ring.
type ringOptions struct {
	entries   uint32 // SQ entries
	cqEntries uint32 // CQ entries (IORING_SETUP_CQSIZE)
	sqPoll    bool
	pollerCPU int    // with sqPoll: the CPU of the kernel poller (SQ_AFF)
	sqIdleMs  uint32 // with sqPoll: how long the poller spins before it sleeps
}

// ring is one io_uring instance as the owning shard sees it. Only the owning
// goroutine, locked to its thread, may call its methods.
type ring struct {
	uring *giouring.Ring
	fd    int
	flags uint32
	feats uint32

	mem  []byte // SQ and CQ rings (one mapping: FEAT_SINGLE_MMAP)
	sqes []byte // the SQE array

	sqHead    *uint32
	sqTail    *uint32
	sqFlags   *uint32
	sqMask    uint32
	sqEntries uint32
	sqArray   unsafe.Pointer
	sqeBase   unsafe.Pointer
	sqeTail   uint32 // SQEs claimed locally; published by flush

	cqHead     *uint32
	cqTail     *uint32
	cqOverflow *uint32
	cqMask     uint32
	cqEntries  uint32
	cqeBase    unsafe.Pointer

	// waitArg lives in the ring (heap), never on a goroutine stack: the
	// kernel reads it during io_uring_enter.
	waitArg geteventsArg
	waitTS  unix.Timespec

	// enters counts io_uring_enter calls made through this ring, by reason.
	enters enterCounts
}

// enterCounts counts io_uring_enter calls by reason.
type enterCounts struct {
	wakeup   uint64 // SQPOLL poller was asleep (IORING_SQ_NEED_WAKEUP)
	wait     uint64 // waiting for completions (or submitting without SQPOLL)
	overflow uint64 // flushing completions the kernel held back (CQ overflow)
	sqFull   uint64 // the SQ was full and had to be drained
}

// ErrFeature reports a kernel that lacks an io_uring feature zerosys needs.
type ErrFeature struct {
	Feature string
	Since   string
}

func (e *ErrFeature) Error() string {
	return fmt.Sprintf("shard: io_uring %s not supported (requires Linux >= %s)", e.Feature, e.Since)
}

// setupError turns io_uring_setup's errno into one actionable line.
func setupError(err error, o ringOptions) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("shard: io_uring_setup: %w: io_uring is not available: the kernel lacks it or a seccomp filter blocks it (Docker 25+ and containerd 2.0 block io_uring by default: run with a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register, see deploy/)", err)
	case errors.Is(err, unix.EPERM) && o.sqPoll:
		return fmt.Errorf("shard: io_uring_setup: %w: io_uring or SQPOLL is not permitted: check sysctl kernel.io_uring_disabled (0 allows all; 1 allows only root/CAP_SYS_ADMIN or kernel.io_uring_group) and the seccomp profile, or run with --sqpoll off", err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("shard: io_uring_setup: %w: io_uring is not permitted: check sysctl kernel.io_uring_disabled (0 allows all; 1 allows only root/CAP_SYS_ADMIN or kernel.io_uring_group; 2 forbids it) and the container's seccomp profile", err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("shard: io_uring_setup: %w: not enough locked memory for the rings: raise RLIMIT_MEMLOCK (ulimit -l, LimitMEMLOCK=) or lower --max-conns", err)
	case errors.Is(err, unix.EINVAL) && !o.sqPoll:
		return fmt.Errorf("shard: io_uring_setup: %w: %w", err, &ErrFeature{Feature: "IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN", Since: "6.1"})
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("shard: io_uring_setup: %w: the kernel refused SQPOLL with SQ_AFF on cpu %d (is the CPU online and allowed?)", err, o.pollerCPU)
	}
	return fmt.Errorf("shard: io_uring_setup: %w", os.NewSyscallError("io_uring_setup", err))
}

// newRing creates a ring on the calling thread. With SQPOLL the kernel poller
// is pinned to o.pollerCPU; without it the ring is SINGLE_ISSUER with
// DEFER_TASKRUN, so completions are processed only when this thread waits.
func newRing(o ringOptions) (*ring, error) {
	var p ringParams
	p.flags = setupCQSize | setupClamp | setupSubmitAll
	p.cqEntries = o.cqEntries
	if o.sqPoll {
		p.flags |= setupSQPoll | setupSQAff
		p.sqThreadCPU = uint32(o.pollerCPU)
		p.sqThreadIdle = o.sqIdleMs
	} else {
		p.flags |= setupSingleIssuer | setupDeferTaskrun
	}
	u := giouring.NewRing()
	if err := u.QueueInitParams(o.entries, (*giouring.Params)(unsafe.Pointer(&p))); err != nil {
		return nil, setupError(err, o)
	}
	r := &ring{uring: u, fd: u.RingFd(), flags: p.flags, feats: p.features}
	if err := r.mapRings(&p); err != nil {
		u.QueueExit()
		return nil, err
	}
	if p.features&featSingleMmap == 0 || p.features&featExtArg == 0 || p.features&featNoDrop == 0 {
		r.close()
		return nil, &ErrFeature{Feature: "FEAT_SINGLE_MMAP, FEAT_NODROP and FEAT_EXT_ARG", Since: "5.11"}
	}
	return r, nil
}

// mapRings maps the shard's own view of the rings, using the offsets the
// kernel wrote into p.
func (r *ring) mapRings(p *ringParams) error {
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(cqe{}))
	size := max(sqSize, cqSize)
	mem, err := unix.Mmap(r.fd, offSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("shard: mapping the io_uring rings: %w", os.NewSyscallError("mmap", err))
	}
	sqes, err := unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		_ = unix.Munmap(mem)
		return fmt.Errorf("shard: mapping the io_uring SQEs: %w", os.NewSyscallError("mmap", err))
	}
	base := unsafe.Pointer(&mem[0])
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Add(base, off)) }
	r.mem, r.sqes = mem, sqes
	r.sqHead, r.sqTail, r.sqFlags = at(p.sqOff.head), at(p.sqOff.tail), at(p.sqOff.flags)
	r.sqMask, r.sqEntries = *at(p.sqOff.ringMask), *at(p.sqOff.ringEntries)
	r.sqArray = unsafe.Add(base, p.sqOff.array)
	r.sqeBase = unsafe.Pointer(&sqes[0])
	r.cqHead, r.cqTail, r.cqOverflow = at(p.cqOff.head), at(p.cqOff.tail), at(p.cqOff.overflow)
	r.cqMask, r.cqEntries = *at(p.cqOff.ringMask), *at(p.cqOff.ringEntries)
	r.cqeBase = unsafe.Add(base, p.cqOff.cqes)
	r.sqeTail = atomic.LoadUint32(r.sqTail)
	// The SQ array maps ring slots to SQE indexes; identity, set once.
	for i := uint32(0); i < r.sqEntries; i++ {
		*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	}
	return nil
}

// close unmaps the shard's view and destroys the ring. The kernel cancels
// whatever is still in flight.
func (r *ring) close() {
	if r.mem != nil {
		_ = unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.sqes != nil {
		_ = unix.Munmap(r.sqes)
		r.sqes = nil
	}
	if r.uring != nil {
		r.uring.QueueExit()
		r.uring = nil
	}
}

func (r *ring) sqPoll() bool { return r.flags&setupSQPoll != 0 }

// getSQE claims the next free SQE, zeroed (a reused SQE must not carry stale
// fields into the next operation). It flushes, and if need be waits, when the
// SQ is full, so it never fails.
func (r *ring) getSQE() *sqe {
	for r.sqeTail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		r.sqFull()
	}
	e := (*sqe)(unsafe.Add(r.sqeBase, uintptr(r.sqeTail&r.sqMask)*unsafe.Sizeof(sqe{})))
	*e = sqe{}
	r.sqeTail++
	return e
}

// reserve makes sure the next n getSQE calls find room, so SQEs linked
// together are published together: a link chain ends at the last SQE of a
// submission.
func (r *ring) reserve(n uint32) {
	for r.sqeTail+n-atomic.LoadUint32(r.sqHead) > r.sqEntries {
		r.sqFull()
	}
}

// sqFull makes room in a full SQ: with SQPOLL, wake the poller if it sleeps
// or wait for it to consume entries; without, submit what is queued.
func (r *ring) sqFull() {
	r.enters.sqFull++
	if r.sqPoll() {
		r.publish()
		flags := uint32(enterSQWait)
		if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		}
		_, _ = r.uring.Enter(0, 0, flags, nil)
		return
	}
	_, _ = r.uring.Enter(r.publish(), 0, 0, nil)
}

// publish makes claimed SQEs visible to the kernel and returns how many are
// not yet consumed by it.
func (r *ring) publish() uint32 {
	// A sequentially consistent store (XCHG on amd64): the SQE writes above
	// happen before the kernel sees the new tail, and the tail is visible
	// before submit reads IORING_SQ_NEED_WAKEUP below (liburing puts a full
	// barrier at the same place).
	atomic.StoreUint32(r.sqTail, r.sqeTail)
	return r.sqeTail - atomic.LoadUint32(r.sqHead)
}

// submit hands queued SQEs to the kernel. With SQPOLL that is a store plus,
// only when the poller went to sleep, one io_uring_enter to wake it.
func (r *ring) submit() {
	pending := r.publish()
	if !r.sqPoll() || pending == 0 {
		return
	}
	if atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
		r.enters.wakeup++
		_, _ = r.uring.Enter(pending, 0, enterSQWakeup, nil)
	}
}

// wait submits queued SQEs and blocks until at least one completion is ready
// or timeoutNs passes (0: no timeout). It is the only blocking call.
func (r *ring) wait(timeoutNs int64) {
	pending := r.publish()
	if r.sqPoll() {
		pending = 0 // the poller submits; entering only waits
	}
	r.enters.wait++
	flags := uint32(enterGetEvents)
	if r.sqPoll() && r.sqeTail != atomic.LoadUint32(r.sqHead) && atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
		// Wake the poller only for SQEs it has not taken: a wake-up
		// with nothing to submit costs a full CPU for sq_thread_idle.
		flags |= enterSQWakeup
	}
	if timeoutNs <= 0 {
		_, _ = r.uring.Enter(pending, 1, flags, nil)
		return
	}
	r.waitTS = unix.NsecToTimespec(timeoutNs)
	r.waitArg = geteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	_, _ = r.uring.Enter2(pending, 1, flags|enterExtArg, unsafe.Pointer(&r.waitArg), int(unsafe.Sizeof(r.waitArg)))
}

// ready returns how many CQEs can be reaped. When the CQ is empty but the
// kernel holds overflowed completions, it flushes them (one counted enter).
func (r *ring) ready() uint32 {
	n := atomic.LoadUint32(r.cqTail) - *r.cqHead
	if n == 0 && atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
		r.enters.overflow++
		_, _ = r.uring.Enter(0, 0, enterGetEvents, nil)
		n = atomic.LoadUint32(r.cqTail) - *r.cqHead
	}
	return n
}

// cqeAt returns the i-th unreaped CQE; valid until advance.
func (r *ring) cqeAt(i uint32) *cqe {
	return (*cqe)(unsafe.Add(r.cqeBase, uintptr((*r.cqHead+i)&r.cqMask)*unsafe.Sizeof(cqe{})))
}

// advance marks n CQEs as reaped.
func (r *ring) advance(n uint32) {
	// Release: the CQE reads above complete before the kernel may reuse the
	// slots.
	atomic.StoreUint32(r.cqHead, *r.cqHead+n)
}

// overflowed returns the kernel's count of CQEs it had to drop.
func (r *ring) overflowed() uint32 { return atomic.LoadUint32(r.cqOverflow) }

// The prep functions fill SQEs by hand, named after liburing's
// io_uring_prep_*. Buffers passed to them must stay reachable and unmoved
// until the completion arrives: they are heap memory the shard owns.

// prepMultishotAccept queues accept4(2) that keeps producing one CQE per new
// connection (IORING_CQE_F_MORE set while it stays armed). Since 5.19.
func (r *ring) prepMultishotAccept(fd int, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpAccept
	e.Fd = int32(fd)
	e.IoPrio = acceptMultishot
	e.OpcodeFlags = unix.SOCK_CLOEXEC
	e.UserData = ud
}

// prepRecv queues recv(2) into buf.
func (r *ring) prepRecv(fd int32, buf []byte, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpRecv
	e.Fd = fd
	e.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	e.Len = uint32(len(buf))
	e.UserData = ud
}

// prepSend queues send(2) of buf with MSG_NOSIGNAL (a closed peer is an EPIPE
// result, not a signal) and MSG_WAITALL (io_uring retries a short send on a
// stream socket until all of buf is sent or it fails). link is 0, or
// IOSQE_IO_HARDLINK to run the next SQE even if the send fails.
func (r *ring) prepSend(fd int32, buf []byte, link uint8, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpSend
	e.Flags = link
	e.Fd = fd
	e.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	e.Len = uint32(len(buf))
	e.OpcodeFlags = unix.MSG_NOSIGNAL | unix.MSG_WAITALL
	e.UserData = ud
}

// prepRead queues read(2) of buf from fd.
func (r *ring) prepRead(fd int, buf []byte, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpRead
	e.Fd = int32(fd)
	e.Addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
	e.Len = uint32(len(buf))
	e.UserData = ud
}

// prepSendZC is prepSend without the copy into the kernel: the NIC sends
// from buf, and a second completion (IORING_CQE_F_NOTIF) says when the
// kernel no longer reads it. Since 6.0.
func (r *ring) prepSendZC(fd int32, buf []byte, link uint8, ud uint64) {
	r.prepSend(fd, buf, link, ud)
	e := (*sqe)(unsafe.Add(r.sqeBase, uintptr((r.sqeTail-1)&r.sqMask)*unsafe.Sizeof(sqe{})))
	e.OpCode = giouring.OpSendZC
}

// prepShutdown queues shutdown(2). Since 5.11.
func (r *ring) prepShutdown(fd int32, how int, link uint8, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpShutdown
	e.Flags = link
	e.Fd = fd
	e.Len = uint32(how)
	e.UserData = ud
}

// prepClose queues close(2).
func (r *ring) prepClose(fd int32, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpClose
	e.Fd = fd
	e.UserData = ud
}

// prepCancel queues IORING_OP_ASYNC_CANCEL of the request with user_data
// target.
func (r *ring) prepCancel(target uint64, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpAsyncCancel
	e.Fd = -1
	e.Addr = target
	e.UserData = ud
}

// prepCancelAll queues IORING_OP_ASYNC_CANCEL of every request in the ring.
// Since 5.19.
func (r *ring) prepCancelAll(ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpAsyncCancel
	e.Fd = -1
	e.OpcodeFlags = asyncCancelAny | asyncCancelAll
	e.UserData = ud
}

// probeOps reports the first operation in ops that the kernel lacks, by
// IORING_REGISTER_PROBE.
func (r *ring) probeOps(ops []probeOp) error {
	var p giouring.Probe
	if _, err := r.uring.RegisterProbe(&p, len(p.Ops)); err != nil {
		return fmt.Errorf("shard: io_uring_register(PROBE): %w", err)
	}
	for _, op := range ops {
		if !p.IsSupported(op.code) {
			return &ErrFeature{Feature: "operation " + op.name, Since: op.since}
		}
	}
	return nil
}

// probeOp names an io_uring operation for the start-up probe.
type probeOp struct {
	code  uint8
	name  string
	since string
}

// requiredOps are the operations every shard uses.
var requiredOps = []probeOp{
	{giouring.OpAccept, "IORING_OP_ACCEPT", "5.5"},
	{giouring.OpRecv, "IORING_OP_RECV", "5.6"},
	{giouring.OpSend, "IORING_OP_SEND", "5.6"},
	{giouring.OpClose, "IORING_OP_CLOSE", "5.6"},
	{giouring.OpShutdown, "IORING_OP_SHUTDOWN", "5.11"},
	{giouring.OpAsyncCancel, "IORING_OP_ASYNC_CANCEL", "5.5"},
	{giouring.OpRead, "IORING_OP_READ", "5.6"},
}
