package shard

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fixed files (Config.FixedFiles): the multishot accept puts each new
// connection into the ring's own file table (IORING_FILE_INDEX_ALLOC,
// 5.19) instead of the process's descriptor table, and every operation on
// it names that table's index with IOSQE_FIXED_FILE. The kernel then skips
// the descriptor lookup (fget/fput) per operation and the descriptor
// allocation (fd_install) per connection. Such a connection has no
// descriptor: only the ring can reach it, and closing the ring closes it.

const (
	sqeFixedFile       = 1 << 0 // IOSQE_FIXED_FILE
	registerFiles2     = 13     // IORING_REGISTER_FILES2
	rsrcRegisterSparse = 1 << 0 // IORING_RSRC_REGISTER_SPARSE
)

// rsrcRegister is struct io_uring_rsrc_register.
type rsrcRegister struct {
	nr    uint32
	flags uint32
	resv2 uint64
	data  uint64
	tags  uint64
}

// registerFileTable gives the ring an empty file table of n slots. The
// kernel refuses more slots than RLIMIT_NOFILE allows.
func (r *ring) registerFileTable(n int) error { return r.registerSparse(registerFiles2, n) }

// registerSparse gives the ring an empty table of n entries: files
// (registerFiles2) or buffers (registerBuffers2).
func (r *ring) registerSparse(opcode uintptr, n int) error {
	reg := rsrcRegister{nr: uint32(n), flags: rsrcRegisterSparse}
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), opcode,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// fileTableSize is the table a shard registers: a slot per connection
// slot, and room for the accepts that complete while a full table pauses
// accepting (they are closed at once, but hold a slot until then); at
// most RLIMIT_NOFILE, which the kernel holds a table to. An accept that
// finds the table full fails (ENFILE) and rests like one out of
// descriptors.
func fileTableSize(cfg *Config) int {
	n := cfg.MaxConns + cfg.MaxConns/32 + 64
	var l unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &l) == nil && l.Cur < uint64(n) {
		n = int(l.Cur)
	}
	return n
}

// onConn reports whether a's descriptor is a connection's: with fixed
// files, an index into the ring's table.
func (a *action) onConn() bool {
	switch a.kind {
	case actRecv, actRecvPool, actRecvMulti, actSend, actSendZC, actShutdown, actClose, actLingerReset:
		return true
	}
	return false
}

// lastSQE is the SQE getSQE handed out last.
func (r *ring) lastSQE() *sqe {
	return (*sqe)(unsafe.Add(r.sqeBase, uintptr((r.sqeTail-1)&r.sqMask)*unsafe.Sizeof(sqe{})))
}

// fixFile turns the SQE just prepared for a connection into one naming a
// slot of the file table: a close names it in file_index (plus one), the
// others in fd with IOSQE_FIXED_FILE.
func (r *ring) fixFile(close bool) {
	e := r.lastSQE()
	if close {
		e.SpliceFdIn = e.Fd + 1
		e.Fd = 0
		return
	}
	e.Flags |= sqeFixedFile
}

// FixedFilesSupported makes a small ring and gives it a file table, so
// `zerosys check` can say whether --fixed-files would take.
func FixedFilesSupported() error {
	return onLockedThread(func() error {
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
		if err != nil {
			return err
		}
		defer r.close()
		return r.registerFileTable(16)
	})
}
