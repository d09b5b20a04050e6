// Package shard is one CPU's worth of zerosys: a goroutine locked to its OS
// thread and pinned to a CPU, owning one io_uring, one SO_REUSEPORT
// listening socket, a fixed table of connection slots with their receive
// buffers, and responses prepared at start-up.
//
// Rules every change must keep:
//
//   - A ring and its memory are touched only by the shard's own goroutine,
//     locked to its thread (runtime.LockOSThread first, then the pin).
//   - Nothing is allocated per request: slots, buffers and every answer
//     exist from Start. Pipelined answers of one kind leave in a single send
//     from a buffer of repeated copies.
//   - After start-up a request costs the shard thread no system call while
//     an SQPOLL poller is awake. Every io_uring_enter the shard makes is
//     counted by reason (Stats.Enter*), so syscalls per request can be read
//     from the counters.
//   - Memory the kernel reads or writes later (buffers, timespecs) lives on
//     the heap, owned by the shard, never on a goroutine stack.
//   - A connection is closed only after its answers are out, and with input
//     possibly still arriving, only after shutdown(SHUT_WR) and reading to
//     EOF: closing with unread input makes the kernel reset the connection
//     and destroy the answer. A send's close is linked with
//     IOSQE_IO_HARDLINK so a failed send still closes the descriptor.
//   - Completions carry operation, slot and generation in user_data; one
//     for an earlier tenant of a reused slot is dropped.
//   - Bad input on one connection affects only that connection.
package shard
