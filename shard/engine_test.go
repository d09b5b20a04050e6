package shard

import (
	"reflect"
	"testing"
	"time"
)

// TestPickShares: the cumulative shares give each entry exactly its share
// of draws, the rest to index 0.
func TestPickShares(t *testing.T) {
	cum := cumulative([]Share{{Value: 1, PPM: 200_000}, {Value: 2, PPM: 100_000}})
	if len(cum) != 2 || cum[0] != 200_000 || cum[1] != 300_000 {
		t.Fatalf("cumulative %v", cum)
	}
	rng := uint64(1)
	var got [3]int
	const n = 200_000
	for range n {
		got[pick(&rng, cum)]++
	}
	for i, want := range []float64{0.7, 0.2, 0.1} {
		if f := float64(got[i]) / n; f < want-0.006 || f > want+0.006 { // > 5 sigmas
			t.Errorf("index %d drawn %.4f of the time, want %.1f", i, f, want)
		}
	}
	if pick(&rng, nil) != 0 || cumulative(nil) != nil {
		t.Error("no shares must mean index 0, at no cost")
	}
}

// TestStatusesCounted: the statuses published are those the behaviour
// answers with, the fixed ones (100 and the errors) among them.
func TestStatusesCounted(t *testing.T) {
	fixed := []int{100, 400, 408, 413, 414, 431, 501, 505}
	for _, c := range []struct {
		mix  Response
		want []int
	}{
		{Response{}, []int{200}},
		{Response{StatusMix: []Share{{Value: 503, PPM: 1}}}, []int{200, 503}},
		{Response{Status: 204, StatusMix: []Share{{Value: 503, PPM: 1}, {Value: 400, PPM: 1}}}, []int{204, 503}},
	} {
		cfg := Config{MaxConns: 1, Response: c.mix}
		var e engine
		cfg = initEngine(t, &e, cfg)
		want := map[int]bool{}
		for _, st := range append(c.want, fixed...) {
			want[st] = true
		}
		got := map[int]bool{}
		for _, st := range e.statuses {
			if got[int(st)] {
				t.Errorf("%+v: status %d listed twice", c.mix, st)
			}
			got[int(st)] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%+v: statuses %v, want %v", c.mix, e.statuses, want)
		}
	}
}

// TestDelayBucket: a delay falls in the first bucket whose bound it does
// not pass; past the last bound, the overflow bucket.
func TestDelayBucket(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want uint8
	}{
		{time.Microsecond, 0}, {time.Millisecond, 0}, {time.Millisecond + 1, 1},
		{20 * time.Millisecond, 4}, {time.Second, 9}, {10 * time.Second, 12}, {time.Minute, 13},
	} {
		if got := delayBucket(int64(c.d)); got != c.want {
			t.Errorf("delayBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	if int(delayBucket(int64(time.Hour))) != numDelayBuckets-1 {
		t.Error("the overflow bucket is not the last")
	}
}

// initEngine sets cfg's defaults and readies e, with no ring, to frame
// requests by cfg's behaviour; it returns cfg as the engine holds it.
func initEngine(t testing.TB, e *engine, cfg Config) Config {
	t.Helper()
	cfg.setDefaults()
	tb, err := newTable(cfg.behaviour())
	if err != nil {
		t.Fatal(err)
	}
	e.init(cfg, tb, nil)
	return cfg
}
