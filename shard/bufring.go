package shard

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// bufPool is a provided-buffer ring (IORING_REGISTER_PBUF_RING, 5.19): the
// shard hands the kernel a pool of receive buffers, and a recv takes one
// per completion. Buffers come back to the pool only when the shard has
// framed their bytes. The pool itself is plain memory; register hands it
// to a ring, so the lifecycle can be tested without one.
//
// The kernel takes buffers in ring order, so every buffer in circulation
// is touched in turn. Only poolStart buffers circulate at first; more are
// published as the free ones run low (poolLow), so resident memory follows
// the most reads ever in flight at once, not the pool's size.
type bufPool struct {
	mem   []byte         // the ring: entries of struct io_uring_buf, 16 bytes each
	bufs  []byte         // the buffers, size bytes each
	size  int            // bytes per buffer
	mask  uint16         // entries - 1
	tail  uint16         // local tail, published by put
	word  *uint32        // bytes 12-15 of the ring: entry 0's bid and the tail
	group uint16         // buffer group id
	out   int            // buffers the kernel has filled and the shard not returned
	free  int            // buffers published and not yet filled
	fresh int            // buffers [fresh, n) have never been published
	n     int            // entries
	next  []int32        // per buffer: the next buffer held by the same connection
	fill  []uint32       // per buffer: bytes received into it
	base  unsafe.Pointer // &mem[0]
}

const (
	sqeBufferSelect = 1 << 5
	recvMultishot   = 1 << 1
	cqeFBuffer      = 1 << 0
	cqeBufferShift  = 16
)

// newBufPool makes n buffers of size bytes (n a power of two), all given to
// the kernel's side of the ring.
func newBufPool(n, size int) (*bufPool, error) {
	// Page-aligned, as PBUF_RING requires of the ring's memory.
	mem, err := unix.Mmap(-1, 0, n*16, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("shard: mapping the buffer ring: %w", os.NewSyscallError("mmap", err))
	}
	b := &bufPool{
		mem: mem, bufs: make([]byte, n*size), size: size, mask: uint16(n - 1), n: n,
		next: make([]int32, n), fill: make([]uint32, n), base: unsafe.Pointer(&mem[0]),
	}
	b.word = (*uint32)(unsafe.Add(b.base, 12))
	b.grow(poolStart)
	return b, nil
}

// Buffers in circulation at first, and the free count below which more
// are published, up to the pool's size.
const (
	poolStart = 64
	poolLow   = 32
)

// grow publishes up to k buffers never published before.
func (b *bufPool) grow(k int) {
	for ; k > 0 && b.fresh < b.n; k-- {
		b.publish(uint16(b.fresh))
		b.fresh++
	}
}

// register makes the pool group b.group of ring r.
func (b *bufPool) register(r *ring) error {
	reg := giouring.BufReg{RingAddr: uint64(uintptr(b.base)), RingEntries: uint32(b.n), Bgid: b.group}
	if _, err := r.uring.RegisterBufferRing(&reg, 0); err != nil {
		return fmt.Errorf("shard: io_uring_register(PBUF_RING): %w", &ErrFeature{Feature: "provided buffer rings", Since: "5.19"})
	}
	return nil
}

// dry reports that no published buffer is free, as far as the completions
// reaped so far tell (the kernel may have taken more since).
func (b *bufPool) dry() bool { return b.free == 0 }

// buf returns buffer bid's received bytes.
func (b *bufPool) buf(bid uint16) []byte {
	off := int(bid) * b.size
	return b.bufs[off : off+int(b.fill[bid])]
}

// take records that the kernel filled buffer bid with n bytes.
func (b *bufPool) take(bid uint16, n int32) {
	b.out++
	b.free--
	b.fill[bid] = uint32(max(n, 0))
	b.next[bid] = -1
	if b.free < poolLow {
		b.grow(poolLow)
	}
}

// put returns buffer bid to the kernel.
func (b *bufPool) put(bid uint16) {
	b.out--
	if debugChecks && b.out < 0 {
		panic("shard: pool buffer returned twice")
	}
	b.publish(bid)
}

// publish hands buffer bid to the kernel's side of the ring.
func (b *bufPool) publish(bid uint16) {
	e := unsafe.Add(b.base, uintptr(b.tail&b.mask)*16)
	*(*uint64)(e) = uint64(uintptr(unsafe.Pointer(&b.bufs[int(bid)*b.size])))
	*(*uint32)(unsafe.Add(e, 8)) = uint32(b.size)
	*(*uint16)(unsafe.Add(e, 12)) = bid
	b.tail++
	b.free++
	// The tail is a __u16 sharing a 32-bit word with entry 0's bid. Go has
	// no 16-bit atomic, so the word is stored whole, with the bid as it is:
	// the store is a release, ordering the entry's fields before the tail.
	bid0 := *(*uint16)(unsafe.Add(b.base, 12))
	atomic.StoreUint32(b.word, uint32(bid0)|uint32(b.tail)<<16)
}

func (b *bufPool) close() {
	if b != nil && b.mem != nil {
		_ = unix.Munmap(b.mem)
		b.mem = nil
	}
}

// prepRecvPool queues a recv(2) that takes its buffer from group when the
// bytes arrive: no memory is committed to a connection that sends nothing.
// Length 0 reads up to the buffer's size. It returns the SQE, for
// prepRecvMultishot to mark.
func (r *ring) prepRecvPool(fd int32, group uint16, ud uint64) *sqe {
	e := r.getSQE()
	e.OpCode = giouring.OpRecv
	e.Fd = fd
	e.Flags = sqeBufferSelect
	e.BufIG = group
	e.UserData = ud
	return e
}

// prepRecvMultishot queues a recv(2) that stays armed and takes a buffer
// from group for each completion (IORING_CQE_F_MORE while armed). Since 6.0.
func (r *ring) prepRecvMultishot(fd int32, group uint16, ud uint64) {
	r.prepRecvPool(fd, group, ud).IoPrio = recvMultishot
}
