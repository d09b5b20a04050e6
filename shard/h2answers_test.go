package shard

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestH2IndexedForms: every kind's Prime and Steady decode, by x/net's
// decoder, to the fields its plain block carries (in a table no larger
// than the Size they claim), with the Date a refresh writes; a kind
// without Content-Type has no Prime, and fields past the table bound
// leave only the plain block.
func TestH2IndexedForms(t *testing.T) {
	many := make([]string, 200)
	for i := range many {
		many[i] = "A:b"
	}
	for _, tc := range []struct {
		name    string
		r       Response
		primes  bool // every kind with a body can prime
		indexed bool // Steady forms are made
	}{
		{"default", Response{}, true, true},
		{"mixes and headers", Response{ContentType: "application/json", Server: "s", Headers: []string{"X-Served-By: shard-0", "Cache-Control: no-store"},
			StatusMix: []Share{{Value: 204, PPM: 100000}, {Value: 299, PPM: 100000}, {Value: 500, PPM: 100000}}, SizeMix: []Share{{Value: 1000, PPM: 100000}}}, true, true},
		{"a 204 without a Content-Type", Response{StatusMix: []Share{{Value: 204, PPM: 100000}, {Value: 304, PPM: 100000}}}, true, true},
		{"only 204s: nothing primes, Steady never used", Response{Status: 204}, false, true},
		{"fields past the table", Response{Headers: many}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := buildResponses(tc.r)
			if err != nil {
				t.Fatal(err)
			}
			const d1, d2 = "Sun, 06 Nov 1994 08:49:37 GMT", "Mon, 07 Nov 1994 08:49:37 GMT"
			rs.setDate([]byte(d1), 1)
			decode := func(dec *hpack.Decoder, b []byte) []string {
				t.Helper()
				fs, err := dec.DecodeFull(b)
				if err != nil {
					t.Fatalf("% x: %v", b, err)
				}
				var k []string
				for _, f := range fs {
					k = append(k, f.Name+": "+f.Value)
				}
				slices.Sort(k)
				return k
			}
			var primer *prepared
			for v := range rs {
				if p := &rs[v]; p.h2 != nil && p.h2ix.Prime != nil {
					primer = p
					break
				}
			}
			if (primer != nil) != tc.primes {
				t.Fatalf("a kind that primes: %v, want %v", primer != nil, tc.primes)
			}
			kinds := 0
			for v := range rs {
				p := &rs[v]
				if p.h2 == nil {
					continue
				}
				kinds++
				plain := decode(hpack.NewDecoder(4096, nil), p.h2)
				if !slices.Contains(plain, "date: "+d1) {
					t.Fatalf("plain block lacks the Date: %v", plain)
				}
				if p.h2ix.Gen != 1 {
					t.Errorf("Gen %d after setDate(…, 1)", p.h2ix.Gen)
				}
				// The gRPC head's forms: their own shared fields and Gen.
				if g := &p.grpc; g.ix.Prime != nil {
					plain := decode(hpack.NewDecoder(4096, nil), g.head)
					dec := hpack.NewDecoder(g.ix.Size, nil)
					if got := decode(dec, g.ix.Prime); !slices.Equal(got, plain) || !slices.Contains(plain, "date: "+d1) {
						t.Errorf("gRPC Prime decodes to %v, plain to %v", got, plain)
					}
					if got := decode(dec, g.ix.Steady); !slices.Equal(got, plain) {
						t.Errorf("gRPC Steady decodes to %v, plain to %v", got, plain)
					}
					if g.ix.Gen != 1|grpcGen {
						t.Errorf("gRPC Gen %#x", g.ix.Gen)
					}
				} else if tc.indexed {
					t.Errorf("status %d: no indexed gRPC head", p.status)
				}
				if p.h2ix.Prime != nil {
					if got := decode(hpack.NewDecoder(p.h2ix.Size, nil), p.h2ix.Prime); !slices.Equal(got, plain) {
						t.Errorf("status %d: Prime decodes to %v, plain to %v", p.status, got, plain)
					}
				} else if strings.Contains(strings.Join(plain, "\n"), "content-type") && primer != nil {
					t.Errorf("status %d has a Content-Type but no Prime", p.status)
				}
				if (p.h2ix.Steady != nil) != tc.indexed {
					t.Errorf("status %d: a Steady form: %v, want %v", p.status, p.h2ix.Steady != nil, tc.indexed)
				}
				if primer == nil {
					continue
				}
				// The table a connection holds: the primer's fields, in
				// no more room than Size.
				dec := hpack.NewDecoder(primer.h2ix.Size, nil)
				decode(dec, primer.h2ix.Prime)
				if got := decode(dec, p.h2ix.Steady); !slices.Equal(got, plain) {
					t.Errorf("status %d: Steady decodes to %v, plain to %v", p.status, got, plain)
				}
				if len(p.h2ix.Steady) >= len(p.h2)/3 {
					t.Errorf("status %d: Steady takes %d bytes, plain %d", p.status, len(p.h2ix.Steady), len(p.h2))
				}
			}
			if kinds == 0 {
				t.Fatal("no HTTP/2 answer prepared")
			}
			rs.setDate([]byte(d2), 2)
			if primer != nil {
				if got := decode(hpack.NewDecoder(4096, nil), primer.h2ix.Prime); !slices.Contains(got, "date: "+d2) || primer.h2ix.Gen != 2 {
					t.Errorf("after a refresh Prime decodes to %v, Gen %d", got, primer.h2ix.Gen)
				}
			}
		})
	}
}

// TestH2FieldsGeneration: each Date refresh and each behaviour installed
// gives the current set's HTTP/2 fields a new generation, and its Prime
// the new Date: a connection primed before primes again.
func TestH2FieldsGeneration(t *testing.T) {
	first, err := buildResponses(Response{})
	if err != nil {
		t.Fatal(err)
	}
	first.setDate([]byte("Sun, 06 Nov 1994 08:49:37 GMT"), 0)
	sets := newRespSets(first)
	prime := func() (uint32, string) {
		p := &sets.current()[vOK]
		fs, err := hpack.NewDecoder(4096, nil).DecodeFull(p.h2ix.Prime)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if f.Name == "date" {
				return p.h2ix.Gen, f.Value
			}
		}
		t.Fatal("Prime carries no Date")
		return 0, ""
	}
	seen := map[uint32]bool{}
	gen, _ := prime()
	seen[gen] = true
	for i, d := range []string{"Mon, 07 Nov 1994 08:49:37 GMT", "Tue, 08 Nov 1994 08:49:37 GMT", "Wed, 09 Nov 1994 08:49:37 GMT"} {
		if i == 1 {
			rs, err := buildResponses(Response{Status: 201})
			if err != nil {
				t.Fatal(err)
			}
			if !sets.install(rs) {
				t.Fatal("install refused")
			}
			gen, _ := prime()
			if seen[gen] {
				t.Fatalf("an installed behaviour reuses generation %d", gen)
			}
			seen[gen] = true
		}
		if !sets.refresh([]byte(d)) {
			t.Fatal("refresh refused")
		}
		gen, date := prime()
		if seen[gen] || date != d {
			t.Fatalf("after refresh %d: generation %d (seen before: %v), Prime's Date %q, want %q", i, gen, seen[gen], date, d)
		}
		seen[gen] = true
	}
}
