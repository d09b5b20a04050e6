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
// count of the sends and queued answer runs reading it. A run takes a
// reference on the current set when it is framed and a send one for its
// batch, so a set's bytes never change under them, and one stuck send
// never delays what the others send.
//
// Sets differ by their Date and, after a behaviour change (install), by
// the behaviour they hold: tab is each set's behaviour generation. Sets of
// an older behaviour serve the answers framed under it and are dropped
// once free; a set rewritten for a new Date is first made a copy of the
// current behaviour.
type respSets struct {
	sets []*responses // nil: a slot whose set was dropped
	refs []int32
	tab  []uint32 // behaviour generation of each set
	cur  uint16
	gen  uint32 // the current behaviour's generation
	// fields numbers each Date or behaviour a set was given, the Gen of
	// the fields its HTTP/2 answers put in a connection's dynamic table.
	fields uint32
	limit  int // live sets at most: maxSets, or fewer within setBudget
}

func newRespSets(first *responses) respSets {
	return respSets{
		sets:  append(make([]*responses, 0, maxSets), first),
		refs:  make([]int32, 1, maxSets),
		tab:   make([]uint32, 1, maxSets),
		limit: setLimit(first),
	}
}

// setLimit is how many sets like rs fit in setBudget, within minSets and
// maxSets.
func setLimit(rs *responses) int {
	return min(maxSets, max(minSets, setBudget/max(rs.bytes(), 1)))
}

// hold takes one more reference on set i.
func (s *respSets) hold(i uint16) { s.refs[i]++ }

// release returns a reference taken by hold.
func (s *respSets) release(i uint16) {
	s.refs[i]--
	if debugChecks && s.refs[i] < 0 {
		panic("shard: response set released more often than held")
	}
}

func (s *respSets) at(i uint16) *responses { return s.sets[i] }

// current is the set new answers are framed with.
func (s *respSets) current() *responses { return s.sets[s.cur] }

// free reports whether set i may be rewritten or dropped: it is not the
// current one and nothing reads it.
func (s *respSets) free(i int) bool { return i != int(s.cur) && s.refs[i] == 0 }

// refresh writes the date d into a set no send reads and makes it current.
// It reuses a free set of the current behaviour, or else copies the
// current set into a free slot or a new one (an allocation, at most once a
// second, never per request) while fewer than limit sets live. It reports
// false when every set is in use.
func (s *respSets) refresh(d []byte) bool {
	live := 0
	for _, rs := range s.sets {
		if rs != nil {
			live++
		}
	}
	next := -1
	for i, rs := range s.sets {
		if !s.free(i) {
			continue
		}
		if rs != nil && s.tab[i] == s.gen {
			next = i
			break
		}
		if next < 0 && (rs != nil || live < s.limit) {
			next = i
		}
	}
	switch {
	case next >= 0 && (s.sets[next] == nil || s.tab[next] != s.gen):
		s.sets[next], s.tab[next] = s.current().clone(), s.gen
	case next < 0:
		if live >= s.limit || len(s.sets) >= maxSets {
			return false
		}
		s.sets = append(s.sets, s.current().clone())
		s.refs = append(s.refs, 0)
		s.tab = append(s.tab, s.gen)
		next = len(s.sets) - 1
	}
	s.fields++
	s.sets[next].setDate(d, s.fields)
	s.cur = uint16(next)
	s.dropStale()
	return true
}

// install makes rs, a new behaviour's answers, the current set. Answers
// already framed keep the sets they hold. It reports false when every
// slot is in use (try again on the next loop turn).
func (s *respSets) install(rs *responses) bool {
	next, live := -1, 0
	for i := range s.sets {
		if s.sets[i] != nil {
			live++
		}
		if next < 0 && s.free(i) {
			next = i
		}
	}
	if next < 0 {
		if len(s.sets) >= maxSets || live >= min(s.limit, setLimit(rs)) {
			return false // within the budget: wait for a send to let go of a set
		}
		s.sets, s.refs, s.tab = append(s.sets, nil), append(s.refs, 0), append(s.tab, 0)
		next = len(s.sets) - 1
	}
	s.fields++
	rs.setDate(s.current().date(), s.fields) // it was prepared a moment ago; the clock's current Date
	s.gen++
	s.sets[next], s.tab[next] = rs, s.gen
	s.cur = uint16(next)
	s.limit = setLimit(rs)
	s.dropStale()
	return true
}

// dropStale lets go of free sets of older behaviours: nothing will read
// them again.
func (s *respSets) dropStale() {
	for i := range s.sets {
		if s.free(i) && s.tab[i] != s.gen {
			s.sets[i] = nil
		}
	}
}

// serves reports whether a set of behaviour generation gen is left.
func (s *respSets) serves(gen uint32) bool {
	for i, rs := range s.sets {
		if rs != nil && s.tab[i] == gen {
			return true
		}
	}
	return false
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
