package shard

import (
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

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

// lingerReset is SO_LINGER {on, 0 s}: a close then resets the connection
// and frees its unsent data at once. The kernel reads it when the command
// runs; it never changes.
var lingerReset = unix.Linger{Onoff: 1, Linger: 0}

// socketOpSetsockopt is SOCKET_URING_OP_SETSOCKOPT, the socket command of
// IORING_OP_URING_CMD that runs setsockopt(2) (Linux 6.7).
const socketOpSetsockopt = 3

// prepLingerReset queues setsockopt(fd, SOL_SOCKET, SO_LINGER, {1, 0}) as
// an io_uring socket command: no syscall. A kernel without it fails the
// command (EOPNOTSUPP), and the close is an orderly one as before.
func (r *ring) prepLingerReset(fd int32, ud uint64) {
	e := r.getSQE()
	e.OpCode = giouring.OpUringCmd
	e.Fd = fd
	e.Off = socketOpSetsockopt                                    // cmd_op: the low half of off
	e.Addr = uint64(unix.SOL_SOCKET) | uint64(unix.SO_LINGER)<<32 // level, optname
	e.SpliceFdIn = int32(unsafe.Sizeof(lingerReset))              // optlen
	e.Addr3 = uint64(uintptr(unsafe.Pointer(&lingerReset)))       // optval
	e.UserData = ud
}
