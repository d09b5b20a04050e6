package shard

import (
	"testing"
	"unsafe"
)

// ringReader plays the kernel's side of a bufPool: it takes the published
// buffers in ring order, as a recv does.
type ringReader struct {
	p    *bufPool
	head uint16
}

func (r *ringReader) take() (uint16, bool) {
	tail := *(*uint16)(unsafe.Add(r.p.base, 14))
	if r.head == tail {
		return 0, false
	}
	bid := *(*uint16)(unsafe.Add(r.p.base, uintptr(r.head&r.p.mask)*16+12))
	r.head++
	return bid, true
}

// TestBufPoolFollowsReads: only the buffers that reads in flight have
// needed are ever published (and so ever touched), however long the
// traffic runs; a burst grows the circulation up to the pool's size, and a
// dry pool is reported as such.
func TestBufPoolFollowsReads(t *testing.T) {
	p, err := newBufPool(1024, 64)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	k := &ringReader{p: p}
	if p.free != poolStart || p.fresh != poolStart {
		t.Fatalf("at start: %d free, %d published; want %d", p.free, p.fresh, poolStart)
	}
	// Steady traffic, 8 reads in flight at a time, for many rounds: the
	// circulation stays at its start.
	var held []uint16
	for range 10_000 {
		for len(held) < 8 {
			bid, ok := k.take()
			if !ok {
				t.Fatal("no buffer with 8 in flight")
			}
			p.take(bid, 10)
			held = append(held, bid)
		}
		for _, bid := range held {
			p.put(bid)
		}
		held = held[:0]
	}
	if p.fresh != poolStart {
		t.Errorf("after steady traffic %d buffers published, want %d", p.fresh, poolStart)
	}
	// A burst: 500 reads in flight grow the circulation to cover them.
	for range 500 {
		bid, ok := k.take()
		if !ok {
			t.Fatalf("dry with %d in flight and %d published", len(held), p.fresh)
		}
		p.take(bid, 10)
		held = append(held, bid)
	}
	if p.fresh < 500 || p.fresh > 500+poolStart {
		t.Errorf("after a burst of 500: %d published", p.fresh)
	}
	// More than the pool holds: it runs dry, and says so.
	for {
		bid, ok := k.take()
		if !ok {
			break
		}
		p.take(bid, 10)
		held = append(held, bid)
	}
	if len(held) != 1024 || !p.dry() || p.out != 1024 {
		t.Errorf("all taken: %d held, dry %v, out %d", len(held), p.dry(), p.out)
	}
	for _, bid := range held {
		p.put(bid)
	}
	if p.out != 0 || p.free != 1024 || p.dry() {
		t.Errorf("all returned: out %d, free %d, dry %v", p.out, p.free, p.dry())
	}
}
