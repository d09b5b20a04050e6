package shard

import (
	"bytes"
	"testing"
)

func mustResponses(t *testing.T, r Response) *responses {
	t.Helper()
	rs, err := buildResponses(r)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestRespSetsBehaviourChange: after install, new answers come from the
// new behaviour; a set an older answer holds keeps its bytes through Date
// refreshes; once free, it is dropped, and a refresh never brings the old
// behaviour back.
func TestRespSetsBehaviourChange(t *testing.T) {
	old := mustResponses(t, Response{Body: []byte("old")})
	s := newRespSets(old)
	var q answerQueue
	q.push(vOK, &s) // framed under the old behaviour, waiting (a delay)
	oldBytes := append([]byte(nil), s.at(q.first().set)[vOK].one...)

	if !s.install(mustResponses(t, Response{Status: 503, Body: []byte("new")})) {
		t.Fatal("install found no free set")
	}
	if !bytes.Contains(s.current()[vOK].one, []byte("503")) {
		t.Fatalf("current set after install answers %q", s.current()[vOK].one)
	}
	for i := range 2 * maxSets {
		date := []byte("Mon, 01 Jan 2001 00:00:0" + string(rune('0'+i%10)) + " GMT")
		if !s.refresh(date) {
			t.Fatalf("refresh %d: no free set", i)
		}
		if !bytes.Contains(s.current()[vOK].one, []byte("new")) {
			t.Fatalf("refresh %d brought back %q", i, s.current()[vOK].one)
		}
	}
	if got := s.at(q.first().set)[vOK].one; !bytes.Equal(got, oldBytes) {
		t.Fatalf("the held old set changed: %q, was %q", got, oldBytes)
	}
	q.pop(1, &s)
	if !s.refresh([]byte("Mon, 01 Jan 2001 00:00:09 GMT")) {
		t.Fatal("refresh: no free set")
	}
	live := 0
	for i, rs := range s.sets {
		if rs == nil {
			continue
		}
		live++
		if s.tab[i] != s.gen {
			t.Errorf("set %d of an older behaviour still live after it was freed", i)
		}
	}
	if live > s.limit {
		t.Errorf("%d live sets, limit %d", live, s.limit)
	}
	if n := s.held(); n != 0 {
		t.Errorf("%d references held", n)
	}
}

// TestRespSetsInstallWhenFull: with every set held, install waits.
func TestRespSetsInstallWhenFull(t *testing.T) {
	s := newRespSets(mustResponses(t, Response{}))
	for i := 0; len(s.sets) < maxSets; i++ {
		s.hold(s.cur)
		if !s.install(mustResponses(t, Response{})) {
			t.Fatalf("install %d failed with %d sets", i, len(s.sets))
		}
	}
	s.hold(s.cur)
	if s.install(mustResponses(t, Response{})) {
		t.Fatal("install succeeded with every set held")
	}
	s.release(3)
	if !s.install(mustResponses(t, Response{Status: 500})) {
		t.Fatal("install failed with a set free")
	}
	if s.cur != 3 {
		t.Errorf("installed in set %d, want the free one, 3", s.cur)
	}
}
