package shard

// This file, prep.go (hand-filled SQEs) and bufring.go (the provided-buffer
// ring) are the only places in zerosys that touch io_uring memory through
// unsafe pointers: here the io_uring_params layout mirror and the shard's own
// view of the shared SQ and CQ rings.
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
	enterRegRing   = 1 << 4 // IORING_ENTER_REGISTERED_RING

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
	// enterFD is what io_uring_enter names the ring by: its descriptor,
	// or, once registered with this thread (IORING_REGISTER_RING_FDS,
	// 5.18), its index among the thread's registered rings, with
	// enterFlags enterRegRing: the kernel then finds the ring without
	// looking a descriptor up.
	enterFD    int
	enterFlags uint32

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
	submitted uint32 // sqeTail as of the last submit that needed nothing more

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
	errors   uint64 // calls that failed (EINTR, ETIME, EAGAIN and EBUSY excepted)
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
	r.registerFD()
	return r, nil
}

// rsrcUpdate is struct io_uring_rsrc_update.
type rsrcUpdate struct {
	offset uint32
	_      uint32
	data   uint64
}

// The io_uring_register opcodes of ring registration.
const (
	registerRingFDs   = 20
	unregisterRingFDs = 21
)

// registerFD registers the ring's descriptor with the calling thread, the
// only one that enters it. Without it (before 5.18, or the thread's slots
// taken) every enter looks the descriptor up, as before. Done here rather
// than with giouring, whose unregister never runs.
func (r *ring) registerFD() {
	r.enterFD = r.fd
	u := rsrcUpdate{offset: ^uint32(0), data: uint64(r.fd)} // any free slot
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerRingFDs,
		uintptr(unsafe.Pointer(&u)), 1, 0, 0)
	if errno == 0 && n == 1 {
		r.enterFD, r.enterFlags = int(u.offset), enterRegRing
	}
}

// unregisterFD undoes registerFD, on the same thread: a registration keeps
// the ring alive until its thread exits.
func (r *ring) unregisterFD() {
	if r.enterFlags&enterRegRing == 0 {
		return
	}
	u := rsrcUpdate{offset: uint32(r.enterFD)}
	_, _, _ = unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), unregisterRingFDs,
		uintptr(unsafe.Pointer(&u)), 1, 0, 0)
	r.enterFD, r.enterFlags = r.fd, 0
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
		r.unregisterFD()
		r.uring.QueueExit()
		r.uring = nil
	}
}

func (r *ring) sqPoll() bool { return r.flags&setupSQPoll != 0 }

// room is how many SQEs can be claimed before the SQ is full.
func (r *ring) room() uint32 {
	return r.sqEntries - (r.sqeTail - atomic.LoadUint32(r.sqHead))
}

// getSQE claims the next SQE, zeroed (a reused SQE must not carry stale
// fields into the next operation). The caller has checked room.
func (r *ring) getSQE() *sqe {
	e := (*sqe)(unsafe.Add(r.sqeBase, uintptr(r.sqeTail&r.sqMask)*unsafe.Sizeof(sqe{})))
	*e = sqe{}
	r.sqeTail++
	return e
}

// errBusy says the kernel could not take more work until completions are
// reaped (EAGAIN, EBUSY): the loop reaps, then tries again.
var errBusy = errors.New("shard: io_uring busy: reap completions first")

// enter calls io_uring_enter and sorts its result: EINTR is retried (a wait
// cut short returns instead, and the loop waits again if it still must),
// ETIME (a wait's timeout) is no error, EAGAIN and EBUSY are errBusy, and
// anything else is counted and returned.
func (r *ring) enter(submit, wait, flags uint32, arg unsafe.Pointer, argSize int) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.enterFD), uintptr(submit), uintptr(wait),
			uintptr(flags|r.enterFlags), uintptr(arg), uintptr(argSize))
		var err error
		if errno != 0 {
			err = errno
		}
		switch err {
		case nil, unix.ETIME:
			return nil
		case unix.EINTR:
			if wait > 0 {
				return nil
			}
			continue
		case unix.EAGAIN, unix.EBUSY:
			return errBusy
		}
		r.enters.errors++
		return os.NewSyscallError("io_uring_enter", err)
	}
}

// makeRoom asks the kernel to consume the SQ when it is full: with SQPOLL,
// wake the poller if it sleeps (else it is consuming already); without,
// submit what is queued.
func (r *ring) makeRoom() error {
	pending := r.publish()
	if r.sqPoll() && atomic.LoadUint32(r.sqFlags)&sqNeedWakeup == 0 {
		return nil // the poller is awake and consuming: no enter, nothing to count
	}
	r.enters.sqFull++
	if r.sqPoll() {
		return r.enter(0, 0, enterSQWakeup|enterSQWait, nil, 0)
	}
	return r.enter(pending, 0, 0, nil, 0)
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
// Without SQPOLL the SQEs go with the next wait.
//
// With nothing claimed since the last submit it returns at once: an idle
// spinning shard calls it in every turn, and a store to the SQ tail each
// time would keep pulling the cache line the poller reads. (Once the tail
// is published the poller consumes it or, going to sleep, rechecks it.)
func (r *ring) submit() error {
	if r.sqeTail == r.submitted {
		return nil
	}
	pending := r.publish()
	if r.sqPoll() && pending > 0 && atomic.LoadUint32(r.sqFlags)&sqNeedWakeup != 0 {
		r.enters.wakeup++
		if err := r.enter(pending, 0, enterSQWakeup, nil, 0); err != nil {
			return err // not marked submitted: the next turn wakes it again
		}
	}
	r.submitted = r.sqeTail
	return nil
}

// wait submits queued SQEs and blocks until at least one completion is ready
// or timeoutNs passes (0: no timeout). It is the only blocking call.
func (r *ring) wait(timeoutNs int64) error {
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
		return r.enter(pending, 1, flags, nil, 0)
	}
	r.waitTS = unix.NsecToTimespec(timeoutNs)
	r.waitArg = geteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.waitTS)))}
	return r.enter(pending, 1, flags|enterExtArg, unsafe.Pointer(&r.waitArg), int(unsafe.Sizeof(r.waitArg)))
}

// ready returns how many CQEs can be reaped. When the CQ is empty but the
// kernel holds overflowed completions, it flushes them (one counted enter).
func (r *ring) ready() uint32 {
	n := atomic.LoadUint32(r.cqTail) - *r.cqHead
	if n == 0 && atomic.LoadUint32(r.sqFlags)&sqCQOverflow != 0 {
		r.enters.overflow++
		_ = r.enter(0, 0, enterGetEvents, nil, 0) // what it flushed shows in the tail; a failure is counted
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
