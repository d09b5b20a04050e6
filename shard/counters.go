package shard

import (
	"strings"
	"sync/atomic"
	"time"

	"zerosys/shard/h2"
	"zerosys/shard/h2wire"

	"golang.org/x/sys/cpu"
)

// counter names one per-shard counter.
type counter int

// The counters, in the order of counterTable.
const (
	cAccepted counter = iota
	cClosedNormal
	cClosedTimeoutHeader
	cClosedTimeoutIdle
	cClosedTimeoutSend
	cClosedTimeoutLinger
	cClosedError
	cClosedShutdown
	cClosedEvicted
	cAcceptErrors
	cAcceptDropped
	cAcceptPaused
	cRequests
	cRejected
	cBytesIn
	cBytesOut
	cStale
	cLoopsBusy
	cLoopsIdle
	cEnterWakeup
	cEnterWait
	cEnterOverflow
	cEnterSQFull
	cEnterErrors
	cCQOverflow
	cRecvNoBufs
	cDateDelayed
	cActionsGrown
	cDelayed
	cBehaviourChanges
	cEvictedHead
	cEvictedIdle
	cSpliced
	cSpliceFallback
	cPipeDrains
	cSendZCFixed
	cZCRegisterFailed
	cH2Conns
	cH2Streams
	cH2Refused
	cH2PeerResets
	cH2AbuseFlood
	cH2AbuseHeaderBlock
	cH2AbuseHeaderList
	cH2AbuseStalled
	cGRPCCalls
	cH2Frames // the first of h2.FrameKinds: HTTP/2 frames received, by type
)

// The ranges of counters by HTTP/2 frame type and error code.
const (
	cH2StreamErrors = cH2Frames + h2.FrameKinds            // RST_STREAM sent, by code
	cH2ConnErrors   = cH2StreamErrors + h2wire.NumErrCodes // GOAWAY with an error sent, by code
	numCounters     = cH2ConnErrors + h2wire.NumErrCodes
)

// CounterInfo describes one counter: the Prometheus family it belongs to
// (without the zerosys_ prefix), the label that tells it from the family's
// other members, its help text and its key in the exit log.
type CounterInfo struct {
	Family string // e.g. "connections_closed_total"
	Label  string // label name, "" when the family has one member
	Value  string // label value
	Help   string // the family's help (the same for each member)
	Log    string // key in the exit log
}

const closedHelp = "Connections closed, by what ended them; each connection is counted once."
const enterHelp = "io_uring_enter calls the shard made, by reason; divide by requests for syscalls per request."
const evictHelp = "Connections closed to make room when the table was full: the longest waiting for a first request head, then the longest idle keep-alive ones."
const h2AbuseHelp = "HTTP/2 abuse bounded: connections ended for floods of SETTINGS, PING, RST_STREAM (rapid reset) or empty DATA (flood) or an endless header block (header_block, CONTINUATION floods); streams refused for a header list over the limit (header_list, HPACK bombs); connections cut for holding answers with a zero window past the send timeout (stalled)."
const loopHelp = "Shard loop iterations that found completions (busy) or none (idle); busy/(busy+idle) near 1 means saturated."

// counterTable is the one list of counters: the shard's Stats, the
// Prometheus collector, the exit log and the README's list all come from
// it (a test holds the README to it).
var counterTable = [numCounters]CounterInfo{
	cAccepted:            {"connections_accepted_total", "", "", "Connections accepted.", "accepted"},
	cClosedNormal:        {"connections_closed_total", "reason", "normal", closedHelp, "closed_normal"},
	cClosedTimeoutHeader: {"connections_closed_total", "reason", "timeout_header", closedHelp, "closed_timeout_header"},
	cClosedTimeoutIdle:   {"connections_closed_total", "reason", "timeout_idle", closedHelp, "closed_timeout_idle"},
	cClosedTimeoutSend:   {"connections_closed_total", "reason", "timeout_send", closedHelp, "closed_timeout_send"},
	cClosedTimeoutLinger: {"connections_closed_total", "reason", "timeout_linger", closedHelp, "closed_timeout_linger"},
	cClosedError:         {"connections_closed_total", "reason", "error", closedHelp, "closed_error"},
	cClosedShutdown:      {"connections_closed_total", "reason", "shutdown", closedHelp, "closed_shutdown"},
	cClosedEvicted:       {"connections_closed_total", "reason", "evicted", closedHelp, "closed_evicted"},
	cAcceptErrors:        {"accept_errors_total", "", "", "Accept completions with an error (EMFILE backs off 100 ms).", "accept_errors"},
	cAcceptDropped:       {"accept_dropped_total", "", "", "Connections accepted with no free slot and closed at once.", "accept_dropped"},
	cAcceptPaused:        {"accept_paused_total", "", "", "Times accepting paused because the connection table was full.", "accept_paused"},
	cRequests:            {"requests_total", "", "", "Complete requests framed.", "requests"},
	cRejected:            {"requests_rejected_total", "", "", "Requests refused as malformed or over a limit (answered 4xx/5xx, then closed).", "rejected"},
	cBytesIn:             {"received_bytes_total", "", "", "Bytes received.", "bytes_in"},
	cBytesOut:            {"sent_bytes_total", "", "", "Bytes sent.", "bytes_out"},
	cStale:               {"stale_completions_total", "", "", "Completions for an earlier tenant of a reused slot, dropped.", "stale"},
	cLoopsBusy:           {"loop_iterations_total", "state", "busy", loopHelp, "loops_busy"},
	cLoopsIdle:           {"loop_iterations_total", "state", "idle", loopHelp, "loops_idle"},
	cEnterWakeup:         {"io_uring_enter_total", "reason", "wakeup", enterHelp, "enter_wakeup"},
	cEnterWait:           {"io_uring_enter_total", "reason", "wait", enterHelp, "enter_wait"},
	cEnterOverflow:       {"io_uring_enter_total", "reason", "overflow", enterHelp, "enter_overflow"},
	cEnterSQFull:         {"io_uring_enter_total", "reason", "sq_full", enterHelp, "enter_sqfull"},
	cEnterErrors:         {"io_uring_enter_errors_total", "", "", "io_uring_enter calls that failed with an error other than EINTR, EAGAIN, EBUSY or ETIME (the first is logged).", "enter_errors"},
	cCQOverflow:          {"cq_overflow_total", "", "", "Completions the kernel could not post (should stay 0).", "cq_overflow"},
	cRecvNoBufs:          {"recv_nobufs_total", "", "", "Recvs that found the receive buffer pool dry (re-armed as buffers return).", "recv_nobufs"},
	cDateDelayed:         {"date_refresh_delayed_total", "", "", "Date refreshes put off because every response set was read by a send.", "date_delayed"},
	cActionsGrown:        {"action_queue_grown_total", "", "", "Times the queue of operations waiting for the submission queue had to grow (should stay 0).", "actions_grown"},
	cDelayed:             {"answers_delayed_total", "", "", "Answers held back (--delay, a delay knob, PUT /behaviour); zero delays are not counted.", "delayed"},
	cBehaviourChanges:    {"behaviour_changes_total", "", "", "Behaviour changes the shard took up (PUT and DELETE /behaviour).", "behaviour_changes"},
	cEvictedHead:         {"connections_evicted_total", "kind", "head", evictHelp, "evicted_head"},
	cEvictedIdle:         {"connections_evicted_total", "kind", "idle", evictHelp, "evicted_idle"},
	cSendZCFixed:         {"sends_zerocopy_registered_total", "", "", "Zero-copy sends from answers registered with the ring (--send-zc): no page pinning per send.", "sends_zc_registered"},
	cZCRegisterFailed:    {"zerocopy_registrations_failed_total", "", "", "Answers the ring refused to register for zero-copy sends (RLIMIT_MEMLOCK); they are sent zero-copy from plain memory.", "zc_registrations_failed"},
	cSpliced:             {"answers_spliced_total", "", "", "Answers whose body was spliced from a memory file (--splice-min).", "spliced"},
	cSpliceFallback:      {"splice_fallback_total", "", "", "Answers large enough to splice that were copied instead: every pipe was busy.", "splice_fallback"},
	cPipeDrains:          {"splice_pipe_drains_total", "", "", "Splice pipes emptied into /dev/null after a chain broke with body bytes in them.", "splice_pipe_drains"},
	cH2Conns:             {"h2_connections_total", "", "", "Connections that spoke HTTP/2 (cleartext, prior knowledge).", "h2_connections"},
	cH2Streams:           {"h2_streams_total", "", "", "HTTP/2 streams answered.", "h2_streams"},
	cH2Refused:           {"h2_streams_refused_total", "", "", "HTTP/2 streams refused over SETTINGS_MAX_CONCURRENT_STREAMS.", "h2_refused"},
	cH2PeerResets:        {"h2_peer_resets_total", "", "", "HTTP/2 streams the client reset.", "h2_peer_resets"},
	cH2AbuseFlood:        {"h2_abuse_total", "kind", "flood", h2AbuseHelp, "h2_abuse_flood"},
	cH2AbuseHeaderBlock:  {"h2_abuse_total", "kind", "header_block", h2AbuseHelp, "h2_abuse_header_block"},
	cH2AbuseHeaderList:   {"h2_abuse_total", "kind", "header_list", h2AbuseHelp, "h2_abuse_header_list"},
	cH2AbuseStalled:      {"h2_abuse_total", "kind", "stalled", h2AbuseHelp, "h2_abuse_stalled"},
	cGRPCCalls:           {"grpc_calls_total", "", "", "gRPC calls answered (HTTP/2 requests of content-type application/grpc), health checks among them.", "grpc_calls"},
}

// The HTTP/2 counters by frame type and error code are laid out here.
func init() {
	for t := range h2.FrameKinds {
		name := h2wire.FrameType(t).String()
		counterTable[cH2Frames+counter(t)] = CounterInfo{"h2_frames_received_total", "type", name,
			"HTTP/2 frames received, by type (UNKNOWN: types RFC 9113 does not define).", "h2_frames_" + strings.ToLower(name)}
	}
	for code := range h2wire.NumErrCodes {
		name := h2wire.ErrCode(code).String()
		counterTable[cH2StreamErrors+counter(code)] = CounterInfo{"h2_stream_errors_total", "code", name,
			"HTTP/2 streams reset (RST_STREAM sent), by error code.", "h2_stream_errors_" + strings.ToLower(name)}
		counterTable[cH2ConnErrors+counter(code)] = CounterInfo{"h2_connection_errors_total", "code", name,
			"HTTP/2 connections ended with an error (GOAWAY sent), by error code.", "h2_connection_errors_" + strings.ToLower(name)}
	}
}

// Counters describes every counter in Stats.Counters, by index.
func Counters() []CounterInfo { return counterTable[:] }

// published holds the counters other threads read. Only the shard writes
// them, by copying its private tallies at most every publishEvery, so the
// request path pays for plain increments and never for an atomic or a
// shared cache line. The padding keeps two shards' counters off one cache
// line.
type published struct {
	_         cpu.CacheLinePad
	counters  [numCounters]atomic.Uint64
	responses [maxStatus]atomic.Uint64           // by status code
	delays    [numDelayBuckets + 1]atomic.Uint64 // histogram: the buckets, then the sum
	late      [numLateBuckets + 1]atomic.Uint64
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

	// Counters holds every counter, described by Counters() at the same index.
	Counters  [numCounters]uint64
	Active    uint64         // connections open now
	Responses map[int]uint64 // answers sent, by status code

	// DelayBuckets counts the answers delayed, by the bucket of their
	// delay (not cumulative: bucket i is above DelayBounds[i-1] and at most
	// DelayBounds[i]; the last is above every bound). DelaySum is their sum.
	DelayBuckets [numDelayBuckets]uint64
	DelaySum     time.Duration
	// LateBuckets counts delayed answers by how late they left after
	// their due time, in the buckets of LateBounds; LateSum is the sum.
	LateBuckets [numLateBuckets]uint64
	LateSum     time.Duration
}

// histogram is a shard's histogram of delays (or lateness): bucket counts
// for the bounds its user knows, and their sum.
type histogram struct {
	n   [max(numDelayBuckets, numLateBuckets)]uint64
	sum int64 // ns
}

// add counts k values of d ns in bucket.
func (h *histogram) add(bucket uint8, d int64, k uint32) {
	h.n[bucket] += uint64(k)
	h.sum += d * int64(k)
}

// LateBounds are the upper bounds of the lateness histogram's buckets
// (Stats.LateBuckets); the last bucket takes the rest.
var LateBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 100 * time.Millisecond,
}

// numLateBuckets counts LateBounds' buckets and the one past them.
const numLateBuckets = len(LateBounds) + 1

// noteLate counts k delayed answers due at (monotonic ns) that leave now:
// the loop turn they waited for, and the connection's answers before
// them. A shard near saturation shows here before anywhere else.
func (e *engine) noteLate(at int64, k uint32) {
	if at == 0 {
		return
	}
	late := max(e.now-at, 0)
	e.late.add(bucketOf(LateBounds[:], late), late, k)
}

// Closed is the connections closed for any reason.
func (st Stats) Closed() uint64 {
	var n uint64
	for c := cClosedNormal; c <= cClosedEvicted; c++ {
		n += st.Counters[c]
	}
	return n
}

// Enters is every io_uring_enter call the shard made.
func (st Stats) Enters() uint64 {
	return st.Counters[cEnterWakeup] + st.Counters[cEnterWait] + st.Counters[cEnterOverflow] + st.Counters[cEnterSQFull]
}

// Accepted is the connections accepted.
func (st Stats) Accepted() uint64 { return st.Counters[cAccepted] }

func (p *published) snapshot(st *Stats) {
	for i := range p.counters {
		st.Counters[i] = p.counters[i].Load()
	}
	st.Active = uint64(max(p.active.Load(), 0))
	for i := range st.DelayBuckets {
		st.DelayBuckets[i] = p.delays[i].Load()
	}
	st.DelaySum = time.Duration(p.delays[numDelayBuckets].Load())
	for i := range st.LateBuckets {
		st.LateBuckets[i] = p.late[i].Load()
	}
	st.LateSum = time.Duration(p.late[numLateBuckets].Load())
	st.Responses = make(map[int]uint64)
	for code := range p.responses {
		if n := p.responses[code].Load(); n > 0 {
			st.Responses[code] = n
		}
	}
}

// closeReason is what ended a connection; each connection has one, counted
// once when its slot is released (see conn.setReason).
type closeReason uint8

const (
	reasonNone closeReason = iota
	reasonNormal
	reasonTimeoutHeader
	reasonTimeoutIdle
	reasonTimeoutSend
	reasonTimeoutLinger
	reasonError
	reasonShutdown
	reasonEvicted
)

// counter is the closed_total member a reason is counted in.
func (r closeReason) counter() counter {
	if r == reasonNone {
		r = reasonNormal
	}
	return cClosedNormal + counter(r-reasonNormal)
}
