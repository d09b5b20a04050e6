package shard

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel reads these structs by layout; a drift would corrupt setup or
// waits silently.
func TestKernelLayouts(t *testing.T) {
	var p ringParams
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(io_uring_params)", unsafe.Sizeof(p), 120},
		{"sq_thread_cpu", unsafe.Offsetof(p.sqThreadCPU), 12},
		{"sq_thread_idle", unsafe.Offsetof(p.sqThreadIdle), 16},
		{"features", unsafe.Offsetof(p.features), 20},
		{"sq_off", unsafe.Offsetof(p.sqOff), 40},
		{"cq_off", unsafe.Offsetof(p.cqOff), 80},
		{"sq_off.flags", unsafe.Offsetof(p.sqOff.flags), 16},
		{"sq_off.array", unsafe.Offsetof(p.sqOff.array), 24},
		{"cq_off.overflow", unsafe.Offsetof(p.cqOff.overflow), 16},
		{"cq_off.cqes", unsafe.Offsetof(p.cqOff.cqes), 20},
		{"sizeof(io_uring_sqe)", unsafe.Sizeof(sqe{}), 64},
		{"sizeof(io_uring_cqe)", unsafe.Sizeof(cqe{}), 16},
		{"sizeof(io_uring_getevents_arg)", unsafe.Sizeof(geteventsArg{}), 24},
		{"getevents_arg.ts", unsafe.Offsetof(geteventsArg{}.ts), 16},
		{"sqe.ioprio", unsafe.Offsetof(sqe{}.IoPrio), 2},
		{"sqe.addr", unsafe.Offsetof(sqe{}.Addr), 16},
		{"sqe.msg_flags", unsafe.Offsetof(sqe{}.OpcodeFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(sqe{}.UserData), 32},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestUserData(t *testing.T) {
	cases := []struct {
		o    op
		gen  uint32
		slot uint32
		set  uint16
	}{
		{opAccept, 0, 0, 0},
		{opRecv, 1, 7, 0},
		{opSend, genMask, maxSlots - 2, 0},
		{opClose, 12345, noSlot, 0},
		{opCancel, 1 << 23, 99, 0},
		{opSendZC, 77, 5, maxSets - 1},
	}
	for _, c := range cases {
		ud := packUD(c.o, c.gen, c.slot)
		if c.o == opSendZC {
			ud = packZC(c.gen, c.slot, c.set)
		}
		got := decode(ud, -4, cqeFMore)
		if got.op != c.o || got.gen != c.gen || got.slot != c.slot || got.set != c.set || got.res != -4 || !got.more() {
			t.Errorf("round trip of %+v = %+v", c, got)
		}
	}
	// A generation wraps within its 24 bits, so a reused slot's old
	// completions differ from its new ones for 16M reuses.
	if gen := decode(packUD(opRecv, genMask+1, 3), 0, 0).gen; gen != 0 {
		t.Errorf("generation %d did not wrap to 0", gen)
	}
}

// Each way io_uring_setup can fail gets a line that says what to do.
func TestSetupErrorMessages(t *testing.T) {
	cases := []struct {
		err    error
		sqpoll bool
		want   string
	}{
		{unix.ENOSYS, false, "seccomp"},
		{unix.EPERM, false, "kernel.io_uring_disabled"},
		{unix.EPERM, true, "--sqpoll off"},
		{unix.ENOMEM, false, "RLIMIT_MEMLOCK"},
		{unix.EINVAL, false, "DEFER_TASKRUN"},
		{unix.EINVAL, true, "SQPOLL with SQ_AFF on cpu 3"},
	}
	for _, c := range cases {
		err := setupError(c.err, ringOptions{sqPoll: c.sqpoll, pollerCPU: 3})
		if !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.err) {
			t.Errorf("setupError(%v, sqpoll=%v) = %q; want it to mention %q and wrap the errno", c.err, c.sqpoll, err, c.want)
		}
	}
}

// TestEnterResults: io_uring_enter's results are sorted, not discarded: a
// wait that times out is no error, a refused call is counted and returned.
func TestEnterResults(t *testing.T) {
	runtime.LockOSThread() // SINGLE_ISSUER: one thread enters the ring
	defer runtime.UnlockOSThread()
	r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
	if err != nil {
		t.Skipf("no ring here: %v", err)
	}
	defer r.close()
	if err := r.wait(int64(time.Millisecond)); err != nil {
		t.Errorf("a wait that timed out: %v, want no error (ETIME)", err)
	}
	if r.enters.errors != 0 {
		t.Errorf("%d errors counted after a timed-out wait", r.enters.errors)
	}
	const bogus = 1 << 30 // no such IORING_ENTER_* flag: EINVAL
	err = r.enter(0, 0, bogus, nil, 0)
	if !errors.Is(err, unix.EINVAL) || r.enters.errors != 1 {
		t.Errorf("enter with a bad flag: %v, %d errors counted; want EINVAL counted once", err, r.enters.errors)
	}
}

// TestRegisteredRing: the ring's fd is registered with its thread and
// every enter names it by its index; waits and later registrations (the
// buffer ring) still work, and closing the ring unregisters it: a thread
// has 16 slots, and 20 rings in a row each get one.
func TestRegisteredRing(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := range 20 {
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
		if err != nil {
			t.Skipf("no ring here: %v", err)
		}
		if r.enterFlags != enterRegRing {
			r.close()
			if i == 0 {
				t.Skip("the kernel cannot register a ring's fd (before 5.18)")
			}
			t.Fatalf("ring %d: not registered: the earlier rings' registrations were not undone", i)
		}
		if err := r.wait(int64(time.Millisecond)); err != nil {
			t.Fatalf("a wait on the registered ring: %v", err)
		}
		p, err := newBufPool(64, 512)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.register(r); err != nil {
			t.Fatalf("registering a buffer ring: %v", err)
		}
		if r.enters.errors != 0 {
			t.Errorf("%d enter errors", r.enters.errors)
		}
		r.close()
		p.close()
	}
}
