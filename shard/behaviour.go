package shard

import (
	"time"

	"golang.org/x/sys/unix"
)

// Behaviour is the part of a shard's configuration that may change while
// it serves (Shard.SetBehaviour): what its answers are and when they go.
// Its fields mean what Config's fields of the same names mean.
type Behaviour struct {
	Response          Response
	KeepAliveRequests int
	ClosePerMillion   uint32
	Delay             time.Duration
	DelayMix          []Share
}

// behaviour is cfg's start-up behaviour.
func (c *Config) behaviour() Behaviour {
	return Behaviour{
		Response:          c.Response,
		KeepAliveRequests: c.KeepAliveRequests,
		ClosePerMillion:   c.ClosePerMillion,
		Delay:             c.Delay,
		DelayMix:          c.DelayMix,
	}
}

// table is a behaviour made ready for the loop: its answers prepared and
// its draws laid out. It is built off the loop (the allocations happen
// there) and never changed after.
type table struct {
	rs        *responses
	server    string // what custom answers (knobs) say in Server,
	ctype     string // Content-Type,
	headers   string // and the configured header lines, each ending in CRLF
	h2headers []byte // the configured fields, HPACK-encoded (h2answers.go)
	keepMax   uint32
	closePPM  uint32
	statusCum []uint32
	sizeCum   []uint32
	sizes     int
	delays    []int64
	delayCum  []uint32
	delayBkt  []uint8 // each delay's histogram bucket
	bodyFD    int32   // the memory file its large bodies are spliced from; -1: none
}

// spliceBodies writes t's large bodies into a memory file, when the shard
// splices answers of at least minBody bytes. Off the loop: it is the
// system calls and the copy of every large body, once.
func (t *table) spliceBodies(minBody int) error {
	fd, err := writeBodyFile(t.rs, minBody)
	t.bodyFD = fd
	return err
}

// closeFile closes the table's memory file, for a table no shard will use.
func (t *table) closeFile() {
	if t.bodyFD >= 0 {
		unix.Close(int(t.bodyFD))
		t.bodyFD = -1
	}
}

// newTable prepares b, or says why it cannot be served.
func newTable(b Behaviour) (*table, error) {
	rs, err := buildResponses(b.Response)
	if err != nil {
		return nil, err
	}
	r := b.Response
	delays := delayTable(b.Delay, b.DelayMix)
	t := &table{
		rs:        rs,
		server:    r.Server,
		ctype:     r.ContentType,
		keepMax:   uint32(max(b.KeepAliveRequests, 0)),
		closePPM:  b.ClosePerMillion,
		statusCum: cumulative(b.Response.StatusMix),
		sizeCum:   cumulative(b.Response.SizeMix),
		sizes:     1 + len(b.Response.SizeMix),
		delays:    delays,
		delayCum:  cumulative(b.DelayMix),
		delayBkt:  delayBuckets(delays),
		bodyFD:    -1,
	}
	if t.server == "" {
		t.server = "zerosys"
	}
	if t.ctype == "" {
		t.ctype = "text/plain"
	}
	for _, h := range r.Headers {
		t.headers += h + "\r\n"
	}
	t.h2headers = appendH2Fields(nil, r.Headers)
	return t, nil
}

// DelayBounds are the upper bounds of the delay histogram's buckets
// (Stats.DelayBuckets); the last bucket takes the rest.
var DelayBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// numDelayBuckets counts DelayBounds' buckets and the one past them.
const numDelayBuckets = len(DelayBounds) + 1

// delayBucket is the histogram bucket of a delay of d ns.
func delayBucket(d int64) uint8 { return bucketOf(DelayBounds[:], d) }

// bucketOf is the bucket of d ns among bounds, the last past them all.
func bucketOf(bounds []time.Duration, d int64) uint8 {
	for i, b := range bounds {
		if d <= int64(b) {
			return uint8(i)
		}
	}
	return uint8(len(bounds))
}

// delayBuckets is delayBucket of each delay, worked out once per table so
// a delayed answer costs one increment.
func delayBuckets(delays []int64) []uint8 {
	var b []uint8
	for _, d := range delays {
		b = append(b, delayBucket(d))
	}
	return b
}

// useTable makes t the behaviour requests are framed by from now on;
// answers already framed keep theirs. t must be new: its answers become a
// response set whose Date is rewritten while older sets still serve. It reports false when no response
// set is free for t (the loop tries again on its next turn).
func (e *engine) useTable(t *table) bool {
	if !e.sets.install(t.rs) {
		return false
	}
	if t.bodyFD >= 0 {
		e.files = append(e.files, bodyFile{fd: t.bodyFD, gen: e.sets.gen})
	}
	e.closeStaleFiles()
	e.setDraws(t)
	e.noteStatuses(t.rs)
	e.local[cBehaviourChanges]++
	return true
}

// setDraws lays t's draws out in the protocol's environment.
func (e *engine) setDraws(t *table) {
	env := &e.env
	env.keepMax, env.closePPM = t.keepMax, t.closePPM
	env.statusCum, env.sizeCum, env.sizes = t.statusCum, t.sizeCum, t.sizes
	env.delays, env.delayCum, env.delayBkt = t.delays, t.delayCum, t.delayBkt
	env.table = t
}

// maxStatus bounds the status codes answers are counted by (100-999).
const maxStatus = 1000

// noteStatuses adds the statuses rs answers with to those published.
func (e *engine) noteStatuses(rs *responses) {
	for v := range rs {
		if st := rs[v].status; st > 0 && st < maxStatus && !e.statusSeen[st] {
			e.noteStatus(st)
		}
	}
}

// noteStatus publishes the answers of status st from now on. The list
// grows at most to the 900 final statuses, each once.
func (e *engine) noteStatus(st int) {
	e.statusSeen[st] = true
	e.statuses = append(e.statuses, uint16(st))
}
