package shard

import "testing"

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

// TestVariantsCounted: the fixed variants are always published; a mix's
// kinds add theirs.
func TestVariantsCounted(t *testing.T) {
	for _, c := range []struct {
		mix  Response
		want int
	}{
		{Response{}, int(kindBase)},
		{Response{StatusMix: []Share{{Value: 503, PPM: 1}}}, int(kindBase) + variantsPerKind},
		{Response{StatusMix: []Share{{Value: 503, PPM: 1}}, SizeMix: []Share{{Value: 9, PPM: 1}}}, int(kindBase) + 3*variantsPerKind},
	} {
		cfg := Config{MaxConns: 1, Response: c.mix}
		cfg.setDefaults()
		rs, err := buildResponses(cfg.Response)
		if err != nil {
			t.Fatal(err)
		}
		var e engine
		e.init(cfg, rs, nil)
		if e.variants != c.want {
			t.Errorf("%+v: %d variants counted, want %d", c.mix, e.variants, c.want)
		}
		for v := range e.variants {
			if rs[v].one == nil {
				t.Errorf("%+v: variant %d counted but not prepared", c.mix, v)
			}
		}
	}
}
