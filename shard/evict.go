package shard

import (
	"cmp"
	"slices"
)

// When the connection table is nearly full, a new connection still gets
// in: the shard ends, in this order, the connections that have waited
// longest without completing their first request head (a slowloris holds
// its slots that way) and then the keep-alive connections idle longest, as
// nginx reuses idle connections under pressure. Both are closed at once
// (shutdown, then close: a FIN), not lingered over, so their slots free in
// a ring round trip. Pausing accept stays the last resort, for a table
// full of connections at work.

// evictRoom ends up to n connections other than the one in slot newest
// (just accepted) to make room, and reports how many. It walks the table
// once; it runs only when the table is nearly full, at most once per batch
// of n accepts.
func (e *engine) evictRoom(n int, newest uint32) int {
	heads, idle := e.evictHeads[:0], e.evictIdle[:0]
	for i := range e.conns {
		c := &e.conns[i]
		if c.phase != phaseOpen || c.sending || c.q.len > 0 || c.deadline == 0 || uint32(i) == newest {
			continue
		}
		switch {
		case c.h1.answers == 0:
			heads = append(heads, uint32(i))
		case !c.h1.midRequest:
			idle = append(idle, uint32(i))
		}
	}
	done := e.evictOldest(heads, n, cEvictedHead)
	done += e.evictOldest(idle, n-done, cEvictedIdle)
	e.evictHeads, e.evictIdle = heads, idle
	return done
}

// evictOldest closes the up to n connections of slots with the earliest
// deadlines (the longest waiting), counting them in kind.
func (e *engine) evictOldest(slots []uint32, n int, kind counter) int {
	if n <= 0 || len(slots) == 0 {
		return 0
	}
	slices.SortFunc(slots, func(a, b uint32) int { return cmp.Compare(e.conns[a].deadline, e.conns[b].deadline) })
	slots = slots[:min(n, len(slots))]
	for _, slot := range slots {
		c := &e.conns[slot]
		e.abort(c, reasonEvicted)
		e.local[kind]++
		e.evicting++
		e.step(c)
	}
	return len(slots)
}
