package shard

// maxRuns bounds the distinct answer runs queued on one connection. A run is
// consecutive answers of one variant, so 16 pipelined GETs are one run.
const maxRuns = 16

// run is a queued batch of identical answers, due at the same time. It
// holds a reference on the response set current when it was framed, so an
// answer is sent from the behaviour its request was framed under, even if
// the behaviour changes while it waits.
type run struct {
	v     variant
	set   uint16 // the response set its bytes come from
	count uint32
	at    int64 // monotonic ns before which it is not sent (a delay); 0: at once
}

// answerQueue is a connection's answers framed and not yet sent, in order.
type answerQueue struct {
	runs    [maxRuns]run
	head    uint8
	len     uint8
	custom  bool   // a custom answer (vCustom) is queued: the connection's only one
	pending uint32 // answers queued
}

// traceAnswers, when set (tests only), sees every answer queued and the
// bytes it is to be sent as.
var traceAnswers func(q *answerQueue, v variant, one []byte)

// traceLast, when set (tests only), sees the last queued answer rewritten
// (a drain makes it say Connection: close).
var traceLast func(q *answerQueue, v variant, one []byte)

// push appends one answer of variant v, to be sent at once.
func (q *answerQueue) push(v variant, sets *respSets) { q.pushAt(v, 0, sets) }

// pushAt appends one answer of variant v from the current response set,
// not to be sent before at.
func (q *answerQueue) pushAt(v variant, at int64, sets *respSets) {
	set := sets.cur
	if debugChecks && traceAnswers != nil && v != vCustom {
		traceAnswers(q, v, sets.at(set)[v].one)
	}
	q.pending++
	if v == vCustom {
		q.custom = true
	}
	if q.len > 0 {
		last := &q.runs[(int(q.head)+int(q.len)-1)%maxRuns]
		if last.v == v && last.at == at && last.set == set {
			last.count++
			return
		}
	}
	sets.hold(set)
	q.runs[(int(q.head)+int(q.len))%maxRuns] = run{v: v, set: set, count: 1, at: at}
	q.len++
}

// first is the run the next send starts with.
func (q *answerQueue) first() *run { return &q.runs[q.head] }

// pop removes k answers from the first run.
func (q *answerQueue) pop(k uint32, sets *respSets) {
	r := q.first()
	r.count -= k
	q.pending -= k
	if r.count == 0 {
		sets.release(r.set)
		if r.v == vCustom {
			q.custom = false
		}
		q.head = (q.head + 1) % maxRuns
		q.len--
	}
}

// drop forgets every queued answer (the peer is gone).
func (q *answerQueue) drop(sets *respSets) {
	for ; q.len > 0; q.len-- {
		sets.release(q.runs[q.head].set)
		q.head = (q.head + 1) % maxRuns
	}
	q.head, q.pending, q.custom = 0, 0, false
}

// full reports whether no further request may be framed until answers
// drain: this is what bounds a client that pipelines faster than it reads.
func (q *answerQueue) full(maxPending uint32) bool {
	return q.len >= maxRuns || q.pending >= maxPending || q.custom
}
