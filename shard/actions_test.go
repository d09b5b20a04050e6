package shard

import "testing"

// TestActionQueue: actions come out in order across the wrap, and a full
// queue grows (counted) rather than lose one.
func TestActionQueue(t *testing.T) {
	q := newActionQueue(5)
	if len(q.a) != 16 {
		t.Fatalf("capacity %d, want the next power of two at least 16", len(q.a))
	}
	next, want := uint64(0), uint64(0)
	for round := range 40 {
		for range round % 7 {
			q.push(action{ud: next})
			next++
		}
		k := min(q.n, round%5)
		for i := range k {
			if got := q.peek(i).ud; got != want+uint64(i) {
				t.Fatalf("round %d: action %d has ud %d, want %d", round, i, got, want+uint64(i))
			}
		}
		q.pop(k)
		want += uint64(k)
	}
	for range 40 {
		q.push(action{ud: next})
		next++
	}
	if q.grown == 0 {
		t.Error("the queue held more than its capacity without growing")
	}
	for i := range q.n {
		if got := q.peek(i).ud; got != want+uint64(i) {
			t.Fatalf("after growing: action %d has ud %d, want %d", i, got, want+uint64(i))
		}
	}
}

// TestActionQueueReusesFront: a queue that empties starts over at its
// front, so a shard touches only as many entries as were ever queued at
// once, however many operations pass through its connection-sized ring.
func TestActionQueueReusesFront(t *testing.T) {
	q := newActionQueue(1 << 12)
	for i := range 10000 {
		for j := range 3 {
			q.push(action{kind: actSend, fd: int32(i), n: uint32(j + 1)})
		}
		if i%2 == 0 {
			q.pop(1) // drained in two steps now and then
		}
		q.pop(q.n)
	}
	if q.n != 0 || q.head != 0 {
		t.Fatalf("empty queue: n %d, head %d; want both 0", q.n, q.head)
	}
	for i := 3; i < len(q.a); i++ {
		if a := q.a[i]; a.kind != 0 || a.fd != 0 || a.n != 0 {
			t.Fatalf("entry %d of %d was used (%+v); want only the first 3 ever", i, len(q.a), q.a[i])
		}
	}
}
