package shard

import (
	"strings"
	"testing"
	"time"
)

var testKnobLimits = knobLimits{maxDelay: int64(10 * time.Second), maxSize: 1 << 20}

// TestParseKnobs: each knob in the flags' syntax, percent-encoded or not;
// other parameters are left alone; a bad knob is refused naming it.
func TestParseKnobs(t *testing.T) {
	for _, c := range []struct {
		q    string
		ok   bool
		err  string // a prefix of the refusal
		want func(k *knobs) bool
	}{
		{q: "x=1&y", ok: true, want: func(k *knobs) bool { return !k.any }},
		{q: "status=503", ok: true, want: func(k *knobs) bool { return k.status.hasBare && k.status.bare == 503 && k.status.n == 0 }},
		{q: "status=503:20,429:2.5", ok: true, want: func(k *knobs) bool {
			return k.status.n == 2 && k.status.vals[1] == 429 && k.status.cum[0] == 200_000 && k.status.cum[1] == 225_000 && !k.status.hasBare
		}},
		{q: "status=503%3A20%2C200", ok: true, want: func(k *knobs) bool { return k.status.n == 1 && k.status.hasBare && k.status.bare == 200 }},
		{q: "size=100:50,0", ok: true, want: func(k *knobs) bool {
			return k.size.n == 1 && k.size.vals[0] == 100 && k.size.bare == 0 && k.size.hasBare
		}},
		{q: "delay=1.5s", ok: true, want: func(k *knobs) bool { return k.delay.bare == int64(1500*time.Millisecond) }},
		{q: "delay=250us:10,20ms:90", ok: true, want: func(k *knobs) bool { return k.delay.vals[0] == 250_000 && k.delay.vals[1] == 20_000_000 }},
		{q: "delay=0", ok: true, want: func(k *knobs) bool { return k.delay.hasBare && k.delay.bare == 0 }},
		{q: "close=1&echo=true", ok: true, want: func(k *knobs) bool { return k.close && k.echo }},
		{q: "header=X-A:1&header=X-B%3A+two+words", ok: true, want: func(k *knobs) bool { return string(k.headers[:k.hlen]) == "X-A: 1\r\nX-B: two words\r\n" }},
		{q: "status=199", err: "status:"},
		{q: "status=abc", err: "status:"},
		{q: "status=", err: "status:"},
		{q: "status=503:60,429:50", err: "a mix"},
		{q: "status=503,429", err: "a mix"},
		{q: "status=503:0", err: "a mix"},
		{q: "status=503:1.00001", err: "a mix"},
		{q: "status=" + strings.Repeat("503:1,", 9) + "200", err: "a mix"},
		{q: "size=2000000", err: "size:"},
		{q: "delay=11s", err: "delay:"},
		{q: "delay=5", err: "delay:"},
		{q: "delay=1h", err: "delay:"},
		{q: "close=yes", err: "close:"},
		{q: "echo=2", err: "echo:"},
		{q: "header=NoColon", err: "header:"},
		{q: "header=Bad Name:x", err: "header:"},
		{q: "header=Content-Length:5", err: "header: Content-Length"},
		{q: "header=X:%0d%0aInjected:1", err: "header:"},
		{q: "status=%zz", err: "a knob's value has a bad"},
		{q: "status=%4", err: "a knob's value has a bad"},
		{q: "header=X:" + strings.Repeat("v", 300), err: "a knob's value is over"},
	} {
		var k knobs
		ok := parseKnobs([]byte(c.q), testKnobLimits, &k)
		switch {
		case ok != c.ok:
			t.Errorf("%q: ok %v (%s), want %v", c.q, ok, k.err, c.ok)
		case !ok && !strings.HasPrefix(k.err, c.err):
			t.Errorf("%q: refused with %q, want %q...", c.q, k.err, c.err)
		case ok && !c.want(&k):
			t.Errorf("%q: parsed %+v", c.q, k)
		}
	}
}

// TestKnobsDoNotAllocate: parsing knobs costs no allocation.
func TestKnobsDoNotAllocate(t *testing.T) {
	q := []byte("status=503:20,429:5&size=100:50&delay=1ms:90,20ms:10&close=0&header=X-A:1&echo=1&cb=123")
	var k knobs
	if n := testing.AllocsPerRun(1000, func() {
		if !parseKnobs(q, testKnobLimits, &k) {
			t.Fatal(k.err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
}

// FuzzKnobs: any query parses or is refused with a reason, and what
// parses is within bounds.
func FuzzKnobs(f *testing.F) {
	for _, q := range []string{"status=503:20,429:2.5", "delay=1ms:90,1s:1&size=100", "header=X:y&echo=1&close=1", "a=%41&status=%3"} {
		f.Add([]byte(q))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		var k knobs
		if !parseKnobs(q, testKnobLimits, &k) {
			if k.err == "" {
				t.Fatal("refused without a reason")
			}
			return
		}
		for _, m := range []*knobMix{&k.status, &k.size, &k.delay} {
			if m.n > maxMix || m.n > 0 && m.cum[m.n-1] > 1_000_000 {
				t.Fatalf("mix %+v", m)
			}
		}
		if k.delay.bare > testKnobLimits.maxDelay || k.size.bare > testKnobLimits.maxSize {
			t.Fatalf("out of bounds: %+v", k)
		}
		if strings.ContainsAny(strings.ReplaceAll(string(k.headers[:k.hlen]), "\r\n", ""), "\r\n") {
			t.Fatalf("a header knob split a line: %q", k.headers[:k.hlen])
		}
	})
}
