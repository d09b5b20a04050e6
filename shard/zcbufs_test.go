package shard

import (
	"bufio"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestServeZeroCopyRegistered: with SendZC the large answers go from
// registered buffers, and after each behaviour change (new sets, the old
// ones dropped and their entries cleared) and across Date refreshes (sets
// cloned and rewritten) every answer carries the current bytes, never
// those an entry held before.
func TestServeZeroCopyRegistered(t *testing.T) {
	ts := startServer(t, modes[0], func(c *Config) {
		c.Response.Body = PatternBody(300 << 10)
		c.SendZC = true
	})
	s := ts.shards[0]
	if s.zc == nil {
		t.Skip("the ring refused a buffer table: zero-copy sends from plain memory")
	}
	registered := func() uint64 { return ts.total(func(st Stats) uint64 { return st.Counters[cSendZCFixed] }) }
	for i := range 6 {
		// Sizes that come back, so new sets may land where old ones
		// were, and bytes of their own, so stale pages would show.
		body := PatternBody(200<<10 + i%2*1000)
		copy(body, fmt.Sprintf("behaviour %d", i))
		p, err := Prepare(Behaviour{Response: Response{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetBehaviour(p, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		before := registered()
		c := ts.dial(t)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for j := range 3 {
			fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
			readPattern(t, br, body)
			if i == 2 && j == 0 {
				time.Sleep(1100 * time.Millisecond) // a Date refresh between answers
			}
		}
		c.Close()
		waitFor(t, "registered zero-copy sends of the new behaviour", func() bool { return registered() > before })
	}
	if n := ts.total(func(st Stats) uint64 { return st.Counters[cZCRegisterFailed] }); n != 0 {
		t.Errorf("%d registrations failed", n)
	}
	// Entries of sets no longer live are empty (read once the shard has
	// stopped: the table is its own).
	s.Stop()
	live := 0
	for set, rs := range s.e.sets.sets {
		for v := range variant(numVariants) {
			i := zcIndex(uint16(set), v)
			want := rs != nil && len(rs[v].one) >= zcMin
			if got := s.zc.base[i] != 0; got != want {
				t.Errorf("set %d variant %d: registered %v, want %v", set, v, got, want)
			}
			if want {
				live++
			}
		}
	}
	if live == 0 {
		t.Error("no entry registered for the live sets")
	}
}

// TestZCBuffersRefusedOnce: bytes the kernel refuses to register (here
// memory it cannot pin) leave their entry empty, are counted once and not
// asked for again by later syncs, and never make lookup name the entry;
// the bytes it takes are looked up by range; a dropped set's entries are
// cleared.
func TestZCBuffersRefusedOnce(t *testing.T) {
	var noTable error
	err := onLockedThread(func() error {
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16})
		if err != nil {
			return err
		}
		defer r.close()
		z, err := r.newZCBuffers()
		if err != nil {
			noTable = err
			return nil
		}
		unpinnable, err := unix.Mmap(-1, 0, 1<<16, unix.PROT_NONE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return err
		}
		defer func() { _ = unix.Munmap(unpinnable) }()
		good := make([]byte, 2*zcMin)
		var rs responses
		rs[vOK].many, rs[vOK].one = good, good[:zcMin]
		rs[vHead].many, rs[vHead].one = unpinnable, unpinnable[:zcMin]
		sets := newRespSets(&rs)
		if n := z.sync(r, &sets); n != 1 {
			t.Errorf("first sync: %d refusals, want 1", n)
		}
		for range 3 {
			if n := z.sync(r, &sets); n != 0 {
				t.Errorf("later sync: %d refusals, want 0 (not asked again)", n)
			}
		}
		if _, ok := z.lookup(zcIndex(0, vOK), good[zcMin:]); !ok {
			t.Error("registered bytes not looked up")
		}
		if _, ok := z.lookup(zcIndex(0, vOK), make([]byte, 100)); ok {
			t.Error("bytes outside the registration looked up")
		}
		if _, ok := z.lookup(zcIndex(0, vHead), unpinnable[:100]); ok {
			t.Error("refused bytes looked up")
		}
		sets.sets[0] = nil
		if n := z.sync(r, &sets); n != 0 {
			t.Errorf("sync after the drop: %d refusals", n)
		}
		for i, b := range z.base {
			if b != 0 {
				t.Errorf("entry %d still registered after its set was dropped", i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if noTable != nil {
		t.Skipf("no buffer table: %v", noTable)
	}
}
