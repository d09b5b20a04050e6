package shard

// timerHeap holds the connections whose next answer waits for a delay,
// earliest first: an indexed binary min-heap, one entry per connection at
// most (conn.timerIdx), preallocated for every slot, so arming, moving and
// cancelling a delay never allocates.
type timerHeap struct {
	at    []int64  // monotonic ns the answer is due
	slot  []uint32 // the connection's slot
	conns []conn   // the table, for timerIdx
}

func newTimerHeap(conns []conn) timerHeap {
	return timerHeap{at: make([]int64, 0, len(conns)), slot: make([]uint32, 0, len(conns)), conns: conns}
}

// next is the earliest due time, or 0 with no timer.
func (h *timerHeap) next() int64 {
	if len(h.at) == 0 {
		return 0
	}
	return h.at[0]
}

// set arms (or moves) the timer of slot to at.
func (h *timerHeap) set(slot uint32, at int64) {
	c := &h.conns[slot]
	if i := c.timerIdx - 1; i >= 0 {
		if h.at[i] == at {
			return
		}
		h.at[i] = at
		h.fix(int(i))
		return
	}
	h.at = append(h.at, at)
	h.slot = append(h.slot, slot)
	c.timerIdx = int32(len(h.at))
	h.up(len(h.at) - 1)
}

// cancel removes slot's timer, if it has one.
func (h *timerHeap) cancel(slot uint32) {
	i := int(h.conns[slot].timerIdx) - 1
	if i < 0 {
		return
	}
	last := len(h.at) - 1
	h.swap(i, last)
	h.at, h.slot = h.at[:last], h.slot[:last]
	h.conns[slot].timerIdx = 0
	if i < last {
		h.fix(i)
	}
}

// pop removes the earliest timer and returns its slot.
func (h *timerHeap) pop() uint32 {
	slot := h.slot[0]
	h.cancel(slot)
	return slot
}

func (h *timerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h *timerHeap) swap(i, j int) {
	h.at[i], h.at[j] = h.at[j], h.at[i]
	h.slot[i], h.slot[j] = h.slot[j], h.slot[i]
	h.conns[h.slot[i]].timerIdx = int32(i + 1)
	h.conns[h.slot[j]].timerIdx = int32(j + 1)
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.at[p] <= h.at[i] {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h.at) {
			break
		}
		m := l
		if r := l + 1; r < len(h.at) && h.at[r] < h.at[l] {
			m = r
		}
		if h.at[i] <= h.at[m] {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

// fireTimers steps every connection whose delayed answer is due.
func (e *engine) fireTimers() {
	for t := e.timers.next(); t != 0 && t <= e.now; t = e.timers.next() {
		e.step(&e.conns[e.timers.pop()])
	}
}
