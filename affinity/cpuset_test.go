package affinity

import (
	"slices"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	good := []struct {
		in   string
		want CPUSet
		str  string
	}{
		{"0", CPUSet{0}, "0"},
		{"0-3", CPUSet{0, 1, 2, 3}, "0-3"},
		{"0-3,8,10-11", CPUSet{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
		{" 0-1 , 4 ", CPUSet{0, 1, 4}, "0-1,4"},
		{"0 - 2", CPUSet{0, 1, 2}, "0-2"},
		{"7,5,0,2", CPUSet{0, 2, 5, 7}, "0,2,5,7"},
		{"3-3", CPUSet{3}, "3"},
		{"1,2,3", CPUSet{1, 2, 3}, "1-3"},
		{"4095", CPUSet{4095}, "4095"},
		{"0-1\n", CPUSet{0, 1}, "0-1"}, // as read from /sys files
		{"007", CPUSet{7}, "7"},
	}
	for _, tc := range good {
		got, err := ParseList(tc.in)
		if err != nil {
			t.Errorf("ParseList(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseList(%q) = %v, want %v", tc.in, []int(got), []int(tc.want))
		}
		if got.String() != tc.str {
			t.Errorf("ParseList(%q).String() = %q, want %q", tc.in, got.String(), tc.str)
		}
		again, err := ParseList(got.String())
		if err != nil || !slices.Equal(again, got) {
			t.Errorf("round trip of %q: %v, %v", tc.in, again, err)
		}
	}

	bad := []struct{ in, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"0,,1", "item 2 is empty"},
		{"0,", "item 2 is empty"},
		{",0", "item 1 is empty"},
		{"0-x", `"x" is not a CPU id`},
		{"abc", `"abc" is not a CPU id`},
		{"1.5", `"1.5" is not a CPU id`},
		{"+1", `"+1" is not a CPU id`},
		{"0-", "missing a CPU id"},
		{"3-1", `range "3-1" is reversed (write "1-3")`},
		{"-1", "cannot be negative"},
		{"2--1", "cannot be negative"},
		{"1-2-3", `"2-3" is not a CPU id`},
		{"4096", "out of range"},
		{"0-5000", "out of range"},
		{"99999999999999999999999", "out of range"},
		{"1,1", `cpu 1 is listed twice ("1" appears twice)`},
		{"0-3,2-5", `cpu 2 is listed twice (in "0-3" and "2-5")`},
		{"0-3,3", `cpu 3 is listed twice (in "0-3" and "3")`},
		{"0-7:2", `"7:2" is not a CPU id`},
	}
	for _, tc := range bad {
		_, err := ParseList(tc.in)
		if err == nil {
			t.Errorf("ParseList(%q) succeeded, want error containing %q", tc.in, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, `affinity: bad CPU list "`) || !strings.Contains(msg, tc.want) {
			t.Errorf("ParseList(%q) error = %q, want prefix %q and %q", tc.in, msg, `affinity: bad CPU list "`, tc.want)
		}
	}
}

func TestCPUSetStringContains(t *testing.T) {
	cases := []struct {
		s    CPUSet
		want string
	}{
		{nil, ""},
		{CPUSet{5}, "5"},
		{CPUSet{0, 1}, "0-1"},
		{CPUSet{0, 2, 5, 7}, "0,2,5,7"},
		{CPUSet{0, 1, 2, 3, 8, 10, 11}, "0-3,8,10-11"},
	}
	for _, tc := range cases {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("%v.String() = %q, want %q", []int(tc.s), got, tc.want)
		}
	}
	s := CPUSet{0, 2, 5, 7}
	for cpu, want := range map[int]bool{0: true, 1: false, 2: true, 5: true, 6: false, 7: true, 8: false, -1: false} {
		if s.Contains(cpu) != want {
			t.Errorf("Contains(%d) = %v, want %v", cpu, !want, want)
		}
	}
}
