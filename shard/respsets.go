package shard

import "time"

// maxSets bounds the response sets a shard keeps, and setBudget the bytes
// they take (large bodies make large sets), with at least minSets. A set is
// current (new sends read it) or retired; a retired set is rewritten only
// once no send reads it any more. A stuck send holds one set for up to the
// send timeout; a zero-copy send (SendZC) holds it until the kernel lets go
// of the pages, which for a peer that never reads can be until the
// connection is gone. The bound is what stands between a crowd of slow
// readers and unbounded memory; past it the Date refresh waits (counted:
// date_refresh_delayed_total).
const (
	maxSets   = 16
	minSets   = 3
	setBudget = 256 << 20
)

// respSets is a shard's generations of prepared responses, each with a
// count of the sends reading it. Sends take a reference on the current set
// for a whole answer batch, so a set's bytes never change under a send,
// and one stuck send never delays what the others send.
type respSets struct {
	sets  []*responses
	refs  []int32
	cur   uint16
	limit int // sets at most: maxSets, or fewer within setBudget
}

func newRespSets(first *responses) respSets {
	return respSets{
		sets:  append(make([]*responses, 0, maxSets), first),
		refs:  make([]int32, 1, maxSets),
		limit: min(maxSets, max(minSets, setBudget/max(first.bytes(), 1))),
	}
}

// acquire takes a reference on the current set and returns its index.
func (s *respSets) acquire() uint16 {
	s.refs[s.cur]++
	return s.cur
}

// hold takes one more reference on set i (one already held).
func (s *respSets) hold(i uint16) { s.refs[i]++ }

// release returns a reference taken by acquire or hold.
func (s *respSets) release(i uint16) {
	s.refs[i]--
	if debugChecks && s.refs[i] < 0 {
		panic("shard: response set released more often than acquired")
	}
}

func (s *respSets) at(i uint16) *responses { return s.sets[i] }

// current is the set new sends read.
func (s *respSets) current() *responses { return s.sets[s.cur] }

// refresh writes the date d into a set no send reads and makes it current.
// It reuses a retired set, or adds one (an allocation, at most once a
// second, never per request) while fewer than maxSets exist. It reports
// false when every set is in use.
func (s *respSets) refresh(d []byte) bool {
	next := -1
	for i := range s.sets {
		if uint16(i) != s.cur && s.refs[i] == 0 {
			next = i
			break
		}
	}
	if next < 0 {
		if len(s.sets) >= s.limit {
			return false
		}
		s.sets = append(s.sets, s.current().clone())
		s.refs = append(s.refs, 0)
		next = len(s.sets) - 1
	}
	s.sets[next].setDate(d)
	s.cur = uint16(next)
	return true
}

// held is the references taken and not returned, over every set.
func (s *respSets) held() int32 {
	var n int32
	for _, r := range s.refs {
		n += r
	}
	return n
}

// dateClock rewrites the Date of the prepared responses once a second.
type dateClock struct {
	next int64 // monotonic ns of the next refresh
	buf  [dateLen]byte
}

// due reports whether the Date should be rewritten at now.
func (d *dateClock) due(now int64) bool { return now >= d.next }

// tick rewrites the Date in a free set; the wall clock is read through the
// vDSO, no syscall. It reports false when no set was free (try again next
// loop turn).
func (d *dateClock) tick(now int64, sets *respSets) bool {
	if !sets.refresh(appendDate(d.buf[:0], time.Now())) {
		return false
	}
	d.next = now + int64(time.Second)
	return true
}
