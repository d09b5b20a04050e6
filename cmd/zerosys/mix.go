package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"zerosys/shard"
)

// parseMix reads fortio's mix syntax: VALUE:PERCENT entries separated by
// commas, and at most one bare VALUE, which takes the remainder. Without a
// bare value the remainder keeps def. It returns the value the remainder
// gets, whether it was given bare, and the shares of the others. Percentages may be fractional; their
// sum may not pass 100. A def of 0 stands for "the configured default"
// (the default body), not for a value of the mix.
func parseMix(flag, spec string, def int, value func(string) (int, error)) (int, bool, []shard.Share, error) {
	var shares []shard.Share
	bare, hasBare := def, false
	seen := map[int]bool{}
	var sum float64
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		vs, ps, hasPct := strings.Cut(item, ":")
		v, err := value(strings.TrimSpace(vs))
		if err != nil {
			return 0, false, nil, fmt.Errorf("--%s %q: %q: %w", flag, spec, item, err)
		}
		if seen[v] {
			return 0, false, nil, fmt.Errorf("--%s %q: %d is given twice", flag, spec, v)
		}
		seen[v] = true
		if !hasPct {
			if hasBare {
				return 0, false, nil, fmt.Errorf("--%s %q: at most one value without a percentage (it takes the remainder)", flag, spec)
			}
			bare, hasBare = v, true
			continue
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(ps), 64)
		if err != nil || !(p >= 0.0001 && p <= 100) || math.IsNaN(p) {
			return 0, false, nil, fmt.Errorf("--%s %q: %q: the percentage must be a number from 0.0001 to 100", flag, spec, item)
		}
		sum += p
		shares = append(shares, shard.Share{Value: v, PPM: uint32(math.Round(p * 10_000))})
	}
	if sum > 100+1e-9 {
		return 0, false, nil, fmt.Errorf("--%s %q: the percentages add up to %g, over 100", flag, spec, sum)
	}
	if def != 0 && seen[bare] && !hasBare && len(shares) > 0 {
		return 0, false, nil, fmt.Errorf("--%s %q: %d is the value the remainder gets already; give it without a percentage", flag, spec, bare)
	}
	return bare, hasBare, shares, nil
}

// statusValue parses a final status code.
func statusValue(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 200 || v > 999 {
		return 0, fmt.Errorf("want a final status, 200 to 999")
	}
	return v, nil
}

// delayValue parses a delay up to max, in microseconds.
func delayValue(max time.Duration) func(string) (int, error) {
	return func(s string) (int, error) {
		d, err := time.ParseDuration(s)
		if s == "0" {
			d, err = 0, nil
		}
		switch {
		case err != nil:
			return 0, fmt.Errorf("want a duration like 20ms or 1.5s")
		case d < 0 || d > max:
			return 0, fmt.Errorf("want a delay from 0 to --max-delay %s", max)
		}
		return int(d / time.Microsecond), nil
	}
}

// sizeValue parses a body size in bytes.
func sizeValue(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 64<<20 {
		return 0, fmt.Errorf("want a body size from 0 to 67108864 bytes")
	}
	return v, nil
}
