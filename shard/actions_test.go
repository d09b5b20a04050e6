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
