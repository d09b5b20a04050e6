package shard

import (
	"fmt"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Registered answers for zero-copy sends (Config.SendZC). A zero-copy
// send of plain memory makes the kernel look up and pin the pages of the
// buffer on every send (and unpin them when the notification comes); a
// send naming a registered buffer (IORING_RECVSEND_FIXED_BUF) uses pages
// pinned once, at registration. The ring's buffer table has an entry per
// (response set, variant); an entry is registered when the set's memory
// for that variant first appears or changes (a new set, a new behaviour),
// at most a few times a second and never per request, and cleared when
// the set is dropped, so the kernel pins nothing the shard has let go.
// Only variants of at least zcMin bytes are registered: smaller answers
// are never sent zero-copy.

const (
	registerBuffers2      = 15     // IORING_REGISTER_BUFFERS2
	registerBuffersUpdate = 16     // IORING_REGISTER_BUFFERS_UPDATE
	recvsendFixedBuf      = 1 << 2 // IORING_RECVSEND_FIXED_BUF
)

// rsrcUpdate2 is struct io_uring_rsrc_update2.
type rsrcUpdate2 struct {
	offset uint32
	resv   uint32
	data   uint64
	tags   uint64
	nr     uint32
	resv2  uint32
}

// zcBuffers is what the ring's buffer table holds: per entry the start and
// length of the registered bytes (0, 0: empty).
type zcBuffers struct {
	base []uintptr
	size []int
	// failed is, per entry, the start of the bytes the kernel last
	// refused to register (0: none): they are not asked for again, so a
	// refusal (RLIMIT_MEMLOCK) costs one pin and unpin and one count, not
	// one every second. A new set's bytes are asked for afresh; as old
	// sets are dropped, room may have come back.
	failed []uintptr
	off    bool       // an entry could be neither set nor cleared: name no entry again
	iov    unix.Iovec // setBuffer's argument: the kernel reads it through a pointer, so not on a stack
}

// zcIndex is the table entry of variant v of response set set.
func zcIndex(set uint16, v variant) uint32 { return uint32(set)*uint32(numVariants) + uint32(v) }

// registerBufferTable gives the ring an empty buffer table of n entries
// (5.19).
func (r *ring) registerBufferTable(n int) error { return r.registerSparse(registerBuffers2, n) }

// setBuffer registers b as entry i of the buffer table, or clears the
// entry when b is empty (5.13), through iov, which must not live on a
// goroutine stack. Sends in flight that name the entry keep the pages
// they started with.
func (r *ring) setBuffer(i uint32, b []byte, iov *unix.Iovec) error {
	*iov = unix.Iovec{}
	if len(b) > 0 {
		iov.Base = unsafe.SliceData(b)
		iov.SetLen(len(b))
	}
	u := rsrcUpdate2{offset: i, data: uint64(uintptr(unsafe.Pointer(iov))), nr: 1}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerBuffersUpdate,
		uintptr(unsafe.Pointer(&u)), unsafe.Sizeof(u), 0, 0)
	if errno != 0 {
		return errno
	}
	if n != 1 {
		return unix.EINVAL
	}
	return nil
}

// newZCBuffers registers an empty table for every (set, variant).
func (r *ring) newZCBuffers() (*zcBuffers, error) {
	n := maxSets * int(numVariants)
	if err := r.registerBufferTable(n); err != nil {
		return nil, err
	}
	return &zcBuffers{base: make([]uintptr, n), size: make([]int, n), failed: make([]uintptr, n)}, nil
}

// sync makes the table match the sets: each large variant of a live set
// registered where its bytes are now, every other entry empty. It returns
// how many registrations failed (those entries stay empty: their answers
// go as zero-copy sends of plain memory).
//
// An entry whose bytes have not moved is left alone. That is safe only
// because every set that is dropped or replaced passes through a sync
// that clears or moves its entries before new memory can take its place:
// an entry kept over a reused address would name the pages pinned
// before, which need not be the ones the address maps now.
func (z *zcBuffers) sync(r *ring, sets *respSets) (failed int) {
	if z.off {
		return 0
	}
	for set := range maxSets {
		var rs *responses
		if set < len(sets.sets) {
			rs = sets.sets[set]
		}
		for v := range variant(numVariants) {
			var b []byte
			if rs != nil && len(rs[v].one) >= zcMin {
				b = rs[v].many[:cap(rs[v].many)]
			}
			i := zcIndex(uint16(set), v)
			var base uintptr
			if len(b) > 0 {
				base = uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			}
			if base == z.base[i] && len(b) == z.size[i] || base != 0 && base == z.failed[i] && z.base[i] == 0 {
				continue
			}
			if err := r.setBuffer(i, b, &z.iov); err != nil {
				failed++
				z.failed[i] = base
				if z.base[i] != 0 && r.setBuffer(i, nil, &z.iov) != nil {
					// It still holds bytes the set has let go of, which
					// new memory could come to occupy.
					z.off = true
				}
				base, b = 0, nil
			}
			z.base[i], z.size[i] = base, len(b)
		}
	}
	return failed
}

// lookup returns the entry that holds buf, if its registration covers it.
func (z *zcBuffers) lookup(i uint32, buf []byte) (uint16, bool) {
	if z == nil || z.off || int(i) >= len(z.base) || z.base[i] == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	if p < z.base[i] || p+uintptr(len(buf)) > z.base[i]+uintptr(z.size[i]) {
		return 0, false
	}
	return uint16(i), true
}

// ZeroCopySupported makes a small ring, probes IORING_OP_SEND_ZC and
// registers one buffer in a buffer table, so `zerosys check` can say what
// --send-zc would do: err when the kernel lacks zero-copy sends (a shard
// would not start), unregistered when it sends them from plain memory.
func ZeroCopySupported() (unregistered, err error) {
	err = onLockedThread(func() error {
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
		if err != nil {
			return err
		}
		defer r.close()
		if err := r.probeOps([]probeOp{{giouring.OpSendZC, "IORING_OP_SEND_ZC", "6.0"}}); err != nil {
			return err
		}
		if err := r.registerBufferTable(4); err != nil {
			unregistered = fmt.Errorf("the ring refused a buffer table (5.19): %w", err)
		} else if err := r.setBuffer(0, make([]byte, zcMin), new(unix.Iovec)); err != nil {
			unregistered = fmt.Errorf("the ring refused to register a buffer (RLIMIT_MEMLOCK): %w", err)
		}
		return nil
	})
	return unregistered, err
}
