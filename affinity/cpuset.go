// Package affinity decides where zerosys threads run: which CPUs the process
// may use, how shards and their SQPOLL kernel pollers are laid out on them,
// and pinning the calling OS thread to one CPU.
//
// Layout decisions live here, apart from the server, so that every refusal
// (a CPU outside the allowed set, a spinning shard sharing a CPU with a
// poller, ...) happens once at start-up with a one-line, actionable error
// instead of showing up later as unexplained latency.
package affinity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxCPUs bounds CPU ids: every id must be below it. It matches the largest
// CONFIG_NR_CPUS of common distribution kernels, and keeps a typo such as
// "0-40000" from allocating huge masks.
const maxCPUs = 4096

// CPUSet is a sorted list of distinct CPU ids.
type CPUSet []int

// ParseList parses the Linux cpu-list syntax used by taskset -c, cgroup
// cpusets and /sys/devices/system/cpu/*, e.g. "0-3,8,10-11". Whitespace around
// items is tolerated. Empty items, reversed ranges, negative or non-numeric
// ids, ids of 4096 or more, and ids listed twice are errors, because a CPU
// list that silently means something other than what was typed leads to a
// wrong shard layout.
func ParseList(s string) (CPUSet, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("affinity: bad CPU list %q: %s", s, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(s) == "" {
		return nil, bad("it is empty")
	}
	from := make(map[int]string) // cpu -> the item that listed it, to name both sides of a duplicate
	var set CPUSet
	for i, raw := range strings.Split(s, ",") {
		item := strings.TrimSpace(raw)
		if item == "" {
			return nil, bad("item %d is empty", i+1)
		}
		if strings.HasPrefix(item, "-") {
			return nil, bad("%q: CPU ids cannot be negative", item)
		}
		loText, hiText, isRange := strings.Cut(item, "-")
		lo, err := parseID(strings.TrimSpace(loText))
		if err != nil {
			return nil, bad("%v", err)
		}
		hi := lo
		if isRange {
			hiText = strings.TrimSpace(hiText)
			if strings.HasPrefix(hiText, "-") {
				return nil, bad("%q: CPU ids cannot be negative", item)
			}
			if hi, err = parseID(hiText); err != nil {
				return nil, bad("%v", err)
			}
			if hi < lo {
				return nil, bad("range %q is reversed (write \"%d-%d\")", item, hi, lo)
			}
		}
		for cpu := lo; cpu <= hi; cpu++ {
			if prev, dup := from[cpu]; dup {
				if prev == item {
					return nil, bad("cpu %d is listed twice (%q appears twice)", cpu, item)
				}
				return nil, bad("cpu %d is listed twice (in %q and %q)", cpu, prev, item)
			}
			from[cpu] = item
			set = append(set, cpu)
		}
	}
	slices.Sort(set)
	return set, nil
}

func parseID(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("a range is missing a CPU id")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("%q is not a CPU id", s)
		}
	}
	id, err := strconv.Atoi(s)
	if err != nil || id >= maxCPUs {
		// Atoi can only fail on overflow here, which is out of range too.
		return 0, fmt.Errorf("cpu %s is out of range (ids must be below %d)", s, maxCPUs)
	}
	return id, nil
}

// String returns the canonical compact cpu-list form, e.g. "0-3,8", which
// ParseList accepts again. The empty set is "".
func (s CPUSet) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Contains reports whether cpu is in s. It scans rather than bisects so that
// a hand-built, unsorted set still answers correctly.
func (s CPUSet) Contains(cpu int) bool {
	return slices.Contains(s, cpu)
}

// normalized returns a sorted copy of s without duplicates.
func (s CPUSet) normalized() CPUSet {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

// minus returns the CPUs of s not in t, keeping the order of s.
func (s CPUSet) minus(t CPUSet) CPUSet {
	var out CPUSet
	for _, cpu := range s {
		if !t.Contains(cpu) {
			out = append(out, cpu)
		}
	}
	return out
}

// describe names a set in error messages, where "" would read as a typo.
func (s CPUSet) describe() string {
	if len(s) == 0 {
		return "none"
	}
	return s.String()
}
