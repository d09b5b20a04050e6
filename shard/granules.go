package shard

// granules lends out a buffer in runs of granuleSize bytes, first fit,
// and takes them back in any order: the custom answers of an HTTP/2
// connection's streams (h2knobs.go) live in its custom buffer while they
// wait, and their streams end in any order. No allocation after
// newGranules.
type granules struct {
	used []uint64 // a bit per granule
	runs []uint16 // at a run's first granule: its granules
}

// granuleSize is the bytes of a granule: a typical custom header block
// takes two.
const granuleSize = 64

// maxGranules bounds the granules: a run's start+1 fits 16 bits (a
// stream's tag carries it).
const maxGranules = 1<<16 - 1

// newGranules lends out a buffer of size bytes.
func newGranules(size int) granules {
	n := min(size/granuleSize, maxGranules)
	return granules{used: make([]uint64, (n+63)/64), runs: make([]uint16, n)}
}

// reset takes every run back.
func (g *granules) reset() { clear(g.used) }

// busy reports whether granule i is lent.
func (g *granules) busy(i int) bool { return g.used[i>>6]&(1<<(i&63)) != 0 }

// alloc lends a run of at least size bytes (one granule for none) and
// returns its first granule; ok is false when no free run is that long.
func (g *granules) alloc(size int) (start int, ok bool) {
	k := max((size+granuleSize-1)/granuleSize, 1)
	run := 0
	for i := 0; i < len(g.runs); i++ {
		if i&63 == 0 && g.used[i>>6] == ^uint64(0) {
			run = 0
			i += 63 // a whole word lent
			continue
		}
		if g.busy(i) {
			run = 0
			continue
		}
		if run++; run == k {
			start = i - k + 1
			for j := start; j <= i; j++ {
				g.used[j>>6] |= 1 << (j & 63)
			}
			g.runs[start] = uint16(k)
			return start, true
		}
	}
	return 0, false
}

// free takes back the run that starts at granule start.
func (g *granules) free(start int) {
	for j := start; j < start+int(g.runs[start]); j++ {
		g.used[j>>6] &^= 1 << (j & 63)
	}
	g.runs[start] = 0
}

// lent counts the granules lent (tests).
func (g *granules) lent() int {
	n := 0
	for i := range g.runs {
		if g.busy(i) {
			n++
		}
	}
	return n
}
