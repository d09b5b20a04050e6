package shard

// maxRuns bounds the distinct answer runs queued on one connection. A run is
// consecutive answers of one variant, so 16 pipelined GETs are one run.
const maxRuns = 16

// run is a queued batch of identical answers, due at the same time.
type run struct {
	v     variant
	count uint32
	at    int64 // monotonic ns before which it is not sent (a delay); 0: at once
}

// answerQueue is a connection's answers framed and not yet sent, in order.
type answerQueue struct {
	runs    [maxRuns]run
	head    uint8
	len     uint8
	pending uint32 // answers queued
}

// traceAnswers, when set (tests only), sees every answer queued.
var traceAnswers func(q *answerQueue, v variant)

// push appends one answer of variant v, to be sent at once.
func (q *answerQueue) push(v variant) { q.pushAt(v, 0) }

// pushAt appends one answer of variant v, not to be sent before at.
func (q *answerQueue) pushAt(v variant, at int64) {
	if debugChecks && traceAnswers != nil {
		traceAnswers(q, v)
	}
	q.pending++
	if q.len > 0 {
		last := &q.runs[(int(q.head)+int(q.len)-1)%maxRuns]
		if last.v == v && last.at == at {
			last.count++
			return
		}
	}
	q.runs[(int(q.head)+int(q.len))%maxRuns] = run{v: v, count: 1, at: at}
	q.len++
}

// first is the run the next send starts with.
func (q *answerQueue) first() *run { return &q.runs[q.head] }

// pop removes k answers from the first run.
func (q *answerQueue) pop(k uint32) {
	r := q.first()
	r.count -= k
	q.pending -= k
	if r.count == 0 {
		q.head = (q.head + 1) % maxRuns
		q.len--
	}
}

// drop forgets every queued answer (the peer is gone).
func (q *answerQueue) drop() { q.len, q.head, q.pending = 0, 0, 0 }

// full reports whether no further request may be framed until answers
// drain: this is what bounds a client that pipelines faster than it reads.
func (q *answerQueue) full(maxPending uint32) bool {
	return q.len >= maxRuns || q.pending >= maxPending
}
