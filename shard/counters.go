package shard

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// counter names one per-shard counter.
type counter int

const (
	cAccepted      counter = iota // connections accepted
	cClosed                       // connections closed
	cAcceptErrors                 // accept completions with an error
	cAcceptDropped                // connections accepted with no free slot (closed at once)
	cAcceptPaused                 // times accepting paused because the table was full
	cRequests                     // complete requests framed
	cRejected                     // requests refused as malformed or over a limit
	cBytesIn                      // bytes received
	cBytesOut                     // bytes sent
	cResets                       // connections that ended in ECONNRESET/EPIPE or another socket error
	cTimeoutHeader                // connections closed for the header timeout
	cTimeoutIdle                  // keep-alive connections closed when idle too long
	cTimeoutSend                  // connections closed because the client stopped reading
	cTimeoutLinger                // lingering closes cut short
	cStale                        // completions for an earlier tenant of a reused slot
	cLoopsBusy                    // loop iterations that reaped completions
	cLoopsIdle                    // loop iterations that found none
	cEnterWakeup                  // io_uring_enter: SQPOLL poller wake-ups
	cEnterWait                    // io_uring_enter: waits (and submits without SQPOLL)
	cEnterOverflow                // io_uring_enter: CQ overflow flushes
	cEnterSQFull                  // io_uring_enter: full SQ
	cCQOverflow                   // completions the kernel dropped (should stay 0: FEAT_NODROP)
	cRecvNoBufs                   // multishot recvs ended because the buffer pool ran dry
	numCounters
)

// statusCounters counts responses by prepared variant; see responses.go.
type statusCounters [numVariants]uint64

// published holds the counters other threads read. Only the shard writes
// them, by copying its private tallies at most every few batches, so the
// request path pays for plain increments and never for an atomic or a
// shared cache line. The padding keeps two shards' counters off one cache
// line.
type published struct {
	_         cpu.CacheLinePad
	counters  [numCounters]atomic.Uint64
	responses [numVariants]atomic.Uint64
	active    atomic.Int64
	_         cpu.CacheLinePad
}

// Stats is a snapshot of one shard's counters. Each field is read atomically,
// but fields are not read at one instant: a snapshot taken under load may mix
// moments a few microseconds apart.
type Stats struct {
	Shard int // shard index
	CPU   int // CPU the shard thread is pinned to (-1: not pinned)
	TID   int // OS thread id of the shard thread (for strace -p)

	Accepted, Closed, Active    uint64
	AcceptErrors, AcceptDropped uint64
	AcceptPaused                uint64
	Requests, Rejected          uint64
	BytesIn, BytesOut           uint64
	Resets                      uint64
	TimeoutHeader, TimeoutIdle  uint64
	TimeoutSend, TimeoutLinger  uint64
	Stale                       uint64
	LoopsBusy, LoopsIdle        uint64
	EnterWakeup, EnterWait      uint64
	EnterOverflow, EnterSQFull  uint64
	CQOverflow                  uint64
	RecvNoBufs                  uint64
	Responses                   map[int]uint64 // by status code
	Enters                      uint64         // all io_uring_enter calls the shard made
}

func (p *published) snapshot(st *Stats, statusOf *[numVariants]int) {
	c := func(i counter) uint64 { return p.counters[i].Load() }
	st.Accepted, st.Closed = c(cAccepted), c(cClosed)
	st.Active = uint64(max(p.active.Load(), 0))
	st.AcceptErrors, st.AcceptDropped, st.AcceptPaused = c(cAcceptErrors), c(cAcceptDropped), c(cAcceptPaused)
	st.Requests, st.Rejected = c(cRequests), c(cRejected)
	st.BytesIn, st.BytesOut = c(cBytesIn), c(cBytesOut)
	st.Resets = c(cResets)
	st.TimeoutHeader, st.TimeoutIdle = c(cTimeoutHeader), c(cTimeoutIdle)
	st.TimeoutSend, st.TimeoutLinger = c(cTimeoutSend), c(cTimeoutLinger)
	st.Stale = c(cStale)
	st.LoopsBusy, st.LoopsIdle = c(cLoopsBusy), c(cLoopsIdle)
	st.EnterWakeup, st.EnterWait = c(cEnterWakeup), c(cEnterWait)
	st.EnterOverflow, st.EnterSQFull = c(cEnterOverflow), c(cEnterSQFull)
	st.CQOverflow = c(cCQOverflow)
	st.RecvNoBufs = c(cRecvNoBufs)
	st.Enters = st.EnterWakeup + st.EnterWait + st.EnterOverflow + st.EnterSQFull
	st.Responses = make(map[int]uint64, numVariants)
	for v := range p.responses {
		if n := p.responses[v].Load(); n > 0 {
			st.Responses[statusOf[v]] += n
		}
	}
}
