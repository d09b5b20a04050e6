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
//     counted by reason (the io_uring_enter_total counters), so syscalls per
//     request can be read from the counters.
//   - Memory the kernel reads or writes later (buffers, timespecs) lives on
//     the heap, owned by the shard, never on a goroutine stack, and outlives
//     every operation that uses it: teardown waits for all of them.
//   - A connection is closed only after its answers are out, and with input
//     possibly still arriving, only after shutdown(SHUT_WR) and reading to
//     EOF: closing with unread input makes the kernel reset the connection
//     and destroy the answer. A send's close is linked with
//     IOSQE_IO_HARDLINK so a failed send still closes the descriptor.
//   - Completions carry operation, slot and generation in user_data; one
//     for an earlier tenant of a reused slot is dropped.
//   - Bad input on one connection affects only that connection.
//
// # Decisions without I/O
//
// The engine (engine.go) decides everything and performs no I/O:
// completions go in, and the operations the kernel should run next come out
// as actions, which the loop (loop.go) turns into SQEs. That is the
// "sans-I/O" shape of quinn-proto, h11 and rustls: the whole lifecycle runs
// in plain tests against a model kernel (fakekernel_test.go), and
// FuzzLifecycle drives it with random completion sequences.
//
// # The connection lifecycle
//
// A connection is in one phase at a time, and phases only move forward
// (conn.enter asserts it in tests). Beside the phase, a few facts are
// independent of it: a recv armed, a send in flight, the operations
// outstanding, whether the peer shut its side, whether to linger.
//
//	        accept
//	          |
//	          v
//	+------> open ------------------------------+
//	| answer | "Connection: close", bad input,  | reset, send error,
//	+--------+ drain, 408, peer EOF             | idle/send timeout
//	          |                                 |
//	          v                                 v
//	      finishing --- reset, send error ---> aborting
//	          |  answers out                    |   SHUT_RDWR ends what is
//	          |                                 |   in flight
//	          +-- input may still come -+       |
//	          |   (linger, recv armed)  |       |
//	          |                         v       |
//	          |                    lingering ---+ reset, linger timeout
//	          |            SHUT_WR, read to EOF |
//	          |                         |       |
//	          | nothing may come        | EOF   | nothing in flight
//	          v                         v       v
//	        closing <-------------------+-------+
//	          |   close queued (linked behind the last send where it can be)
//	          v
//	        free     slot released, generation bumped, close reason counted
//
// Events and who handles them: accept (accept.go: onAccept), recv and send
// results (conn.go: onRecv, onSend), the close's completion (conn.go:
// release), deadlines (sweep.go: expire), drain and stop (engine.drain,
// sweep.go: stopAll). After each, conn.go's step is the one place that turns
// the state into operations. Each connection has one close reason, counted
// once when its slot is released.
//
// # Files
//
//	shard.go       Shard: Start, Stop, Drain, StopAccepting, Stats; the shard goroutine
//	config.go      Config and its defaults
//	control.go     control bits other goroutines set, and the eventfd that wakes the loop
//	loop.go        the hot loop: reap, hand to the engine, actions to SQEs, idle waits
//	teardown.go    stopping: cut every connection, wait for every operation, close the ring
//	engine.go      the engine: completions in, actions out
//	accept.go      the multishot accept, pausing when the table is full
//	conn.go        a connection's phases and transitions (the lifecycle)
//	input.go       received bytes not yet framed, and framing them
//	http1.go       the protocol side: bytes to answers (HTTP/1.1)
//	http2.go       HTTP/2 connections: the preface, h2.Conn fed and sent, streams answered
//	h2answers.go   the prepared HTTP/2 header blocks: plain, priming and referring forms
//	grpc.go        gRPC calls over HTTP/2: the prepared answers, statuses, the health service
//	queue.go       a connection's queued answers, each holding the response set it came from
//	behaviour.go   Behaviour: what a shard plays, prepared off the loop and taken up at a batch boundary
//	knobs.go       per-request knobs read from the query, without allocation
//	custom.go      answers built for one request (knobs) in the connection's own buffer
//	timers.go      the heap of connections whose next answer waits for its delay
//	sweep.go       deadlines, and what each one's expiry does
//	actions.go     the operations the engine asks for, queued for the SQ
//	completion.go  user_data layout and the one completion decoder
//	responses.go   prepared answers
//	splice.go      large answers spliced from a memory file through a pipe (--splice-min)
//	fixedfiles.go  connections in the ring's file table (--fixed-files)
//	respsets.go    generations of prepared answers with reference counts; the Date clock
//	counters.go    the one table of counters, and Stats
//	bufring.go     the provided-buffer pool the pool and multishot recvs take from
//	ring.go        the ring: setup, the shared SQ/CQ, io_uring_enter and its results
//	prep.go        hand-filled SQEs, one function per operation
//	preflight.go   the start-up check zerosys check runs
//
// # Who touches what
//
// The shard goroutine owns the engine, the ring and everything they point
// to. Other goroutines touch only: ctl (atomic control bits, set by Drain,
// StopAccepting, SetBehaviour and Stop), the wake eventfd (written under
// wakeMu), posted and applied (a behaviour handed over by SetBehaviour, and
// the generation the shard answers by), pub (the published counters, read
// by Stats), tid, and the channels acceptStopped and done. ring.go, prep.go and bufring.go are the only files that use unsafe
// on io_uring memory.
package shard
