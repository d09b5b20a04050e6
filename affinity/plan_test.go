package affinity

import (
	"slices"
	"strings"
	"testing"
)

func TestMakePlan(t *testing.T) {
	var (
		one    = CPUSet{0}
		two    = CPUSet{0, 1}
		three  = CPUSet{0, 1, 2}
		four   = CPUSet{0, 1, 2, 3}
		eight  = CPUSet{0, 1, 2, 3, 4, 5, 6, 7}
		sparse = CPUSet{0, 2, 5, 7}
		upper  = CPUSet{4, 5, 6, 7} // like taskset -c 4-7
		lone3  = CPUSet{3}          // like taskset -c 3
	)
	cases := []struct {
		name string
		cfg  PlanConfig
		want string // Plan.String(); empty when an error is expected
		err  string // substring of the error
	}{
		// Without SQPOLL: one shard per CPU.
		{name: "plain 1", cfg: PlanConfig{Allowed: one},
			want: "1 shard, sqpoll=off: shard 0 -> cpu 0"},
		{name: "plain 2", cfg: PlanConfig{Allowed: two},
			want: "2 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 1"},
		{name: "plain 3", cfg: PlanConfig{Allowed: three},
			want: "3 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 1; shard 2 -> cpu 2"},
		{name: "plain 4", cfg: PlanConfig{Allowed: four},
			want: "4 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 1; shard 2 -> cpu 2; shard 3 -> cpu 3"},
		{name: "plain 8 shards=3", cfg: PlanConfig{Allowed: eight, Shards: 3},
			want: "3 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 1; shard 2 -> cpu 2"},
		{name: "plain sparse", cfg: PlanConfig{Allowed: sparse},
			want: "4 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 2; shard 2 -> cpu 5; shard 3 -> cpu 7"},
		{name: "plain taskset upper", cfg: PlanConfig{Allowed: upper, Shards: 2},
			want: "2 shards, sqpoll=off: shard 0 -> cpu 4; shard 1 -> cpu 5"},
		{name: "plain taskset single", cfg: PlanConfig{Allowed: lone3},
			want: "1 shard, sqpoll=off: shard 0 -> cpu 3"},
		{name: "plain explicit cpus", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{2, 4, 6}},
			want: "3 shards, sqpoll=off: shard 0 -> cpu 2; shard 1 -> cpu 4; shard 2 -> cpu 6"},
		{name: "plain explicit cpus first shards", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{2, 4, 6}, Shards: 2},
			want: "2 shards, sqpoll=off: shard 0 -> cpu 2; shard 1 -> cpu 4"},
		{name: "plain unsorted allowed", cfg: PlanConfig{Allowed: CPUSet{3, 1, 1, 0}},
			want: "3 shards, sqpoll=off: shard 0 -> cpu 0; shard 1 -> cpu 1; shard 2 -> cpu 3"},
		{name: "plain spin passes through", cfg: PlanConfig{Allowed: two, Spin: true},
			want: "2 shards, sqpoll=off spin: shard 0 -> cpu 0; shard 1 -> cpu 1"},

		// SQPOLL defaults: consecutive pairs.
		{name: "sqpoll 1 adaptive shares", cfg: PlanConfig{Allowed: one, SQPoll: true},
			want: "1 shard, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 0, shared)"},
		{name: "sqpoll 1 adaptive shards=1", cfg: PlanConfig{Allowed: lone3, SQPoll: true, Shards: 1},
			want: "1 shard, sqpoll=on adaptive: shard 0 -> cpu 3 (poller cpu 3, shared)"},
		{name: "sqpoll 2 spin", cfg: PlanConfig{Allowed: two, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 1)"},
		{name: "sqpoll 2 adaptive", cfg: PlanConfig{Allowed: two, SQPoll: true},
			want: "1 shard, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 1)"},
		{name: "sqpoll 3 spin odd cpu unused", cfg: PlanConfig{Allowed: three, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 1)"},
		{name: "sqpoll 4 spin", cfg: PlanConfig{Allowed: four, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 1); shard 1 -> cpu 2 (poller cpu 3)"},
		{name: "sqpoll 8 spin", cfg: PlanConfig{Allowed: eight, SQPoll: true, Spin: true},
			want: "4 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 1); shard 1 -> cpu 2 (poller cpu 3); shard 2 -> cpu 4 (poller cpu 5); shard 3 -> cpu 6 (poller cpu 7)"},
		{name: "sqpoll 8 shards=3", cfg: PlanConfig{Allowed: eight, SQPoll: true, Shards: 3},
			want: "3 shards, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 1); shard 1 -> cpu 2 (poller cpu 3); shard 2 -> cpu 4 (poller cpu 5)"},
		{name: "sqpoll sparse", cfg: PlanConfig{Allowed: sparse, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 2); shard 1 -> cpu 5 (poller cpu 7)"},
		{name: "sqpoll taskset upper", cfg: PlanConfig{Allowed: upper, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 4 (poller cpu 5); shard 1 -> cpu 6 (poller cpu 7)"},

		// SQPOLL with --cpus only: pollers on the other allowed CPUs.
		{name: "cpus only spin", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0, 1}, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 2); shard 1 -> cpu 1 (poller cpu 3)"},
		{name: "cpus only sparse", cfg: PlanConfig{Allowed: sparse, CPUs: CPUSet{2, 7}, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 2 (poller cpu 0); shard 1 -> cpu 7 (poller cpu 5)"},
		{name: "cpus only shards=1", cfg: PlanConfig{Allowed: four, CPUs: CPUSet{1, 2}, Shards: 1, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 1 (poller cpu 0)"},
		{name: "cpus only adaptive runs out of spare", cfg: PlanConfig{Allowed: four, CPUs: CPUSet{0, 1, 2}, SQPoll: true},
			want: "3 shards, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 3); shard 1 -> cpu 1 (poller cpu 1, shared); shard 2 -> cpu 2 (poller cpu 2, shared)"},
		{name: "cpus only adaptive all cpus", cfg: PlanConfig{Allowed: two, CPUs: two, SQPoll: true},
			want: "2 shards, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 0, shared); shard 1 -> cpu 1 (poller cpu 1, shared)"},

		// SQPOLL with --poller-cpus only: shards on the other allowed CPUs.
		{name: "pollers only", cfg: PlanConfig{Allowed: four, PollerCPUs: CPUSet{2, 3}, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 2); shard 1 -> cpu 1 (poller cpu 3)"},
		{name: "pollers only shards=1 uses first", cfg: PlanConfig{Allowed: four, PollerCPUs: CPUSet{2, 3}, Shards: 1, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 2)"},
		{name: "pollers only sparse", cfg: PlanConfig{Allowed: sparse, PollerCPUs: CPUSet{0}, SQPoll: true},
			want: "1 shard, sqpoll=on adaptive: shard 0 -> cpu 2 (poller cpu 0)"},

		// SQPOLL with both lists: paired by position.
		{name: "explicit spin", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0, 2}, PollerCPUs: CPUSet{4, 6}, SQPoll: true, Spin: true},
			want: "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 4); shard 1 -> cpu 2 (poller cpu 6)"},
		{name: "explicit extra pollers ignored", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0}, PollerCPUs: CPUSet{4, 6}, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 4)"},
		{name: "explicit adaptive shared", cfg: PlanConfig{Allowed: one, CPUs: one, PollerCPUs: one, SQPoll: true},
			want: "1 shard, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 0, shared)"},
		{name: "explicit adaptive crossed", cfg: PlanConfig{Allowed: two, CPUs: CPUSet{0, 1}, PollerCPUs: CPUSet{1, 0}, SQPoll: true},
			want: "2 shards, sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 1); shard 1 -> cpu 1 (poller cpu 0)"},
		{name: "explicit shards=1", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{1, 3, 5}, PollerCPUs: CPUSet{7}, Shards: 1, SQPoll: true, Spin: true},
			want: "1 shard, sqpoll=on spin: shard 0 -> cpu 1 (poller cpu 7)"},

		// Refusals.
		{name: "no allowed", cfg: PlanConfig{}, err: "no allowed CPUs"},
		{name: "negative shards", cfg: PlanConfig{Allowed: four, Shards: -1}, err: "--shards -1 is negative"},
		{name: "plain too many shards", cfg: PlanConfig{Allowed: two, Shards: 3}, err: "--shards 3 but only 2 CPUs allowed (0-1)"},
		{name: "plain too many shards for cpus", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0, 1}, Shards: 3}, err: "only 2 CPUs in --cpus (0-1)"},
		{name: "cpus outside allowed", cfg: PlanConfig{Allowed: upper, CPUs: CPUSet{2, 3, 4}}, err: "--cpus names cpus 2-3, outside the CPUs this process may use (4-7"},
		{name: "cpus outside allowed single", cfg: PlanConfig{Allowed: sparse, CPUs: CPUSet{1}}, err: "--cpus names cpu 1, outside the CPUs this process may use (0,2,5,7"},
		{name: "pollers outside allowed", cfg: PlanConfig{Allowed: four, PollerCPUs: CPUSet{9}, SQPoll: true}, err: "--poller-cpus names cpu 9, outside"},
		{name: "pollers without sqpoll", cfg: PlanConfig{Allowed: four, PollerCPUs: CPUSet{3}}, err: "--poller-cpus 3 given without --sqpoll"},
		{name: "duplicate shard cpus", cfg: PlanConfig{Allowed: four, CPUs: CPUSet{1, 1}}, err: "--cpus lists cpu 1 twice"},
		{name: "duplicate poller cpus", cfg: PlanConfig{Allowed: four, CPUs: CPUSet{0, 1}, PollerCPUs: CPUSet{3, 3}, SQPoll: true}, err: "--poller-cpus lists cpu 3 twice"},
		{name: "spin single cpu", cfg: PlanConfig{Allowed: one, SQPoll: true, Spin: true}, err: "only cpu 0 is allowed, so a spinning shard would share it with its SQPOLL poller; a spinning shard and a poller on one CPU starve each other (measured ~200 ms latency); use --sqpoll off"},
		{name: "spin taskset single cpu", cfg: PlanConfig{Allowed: lone3, SQPoll: true, Spin: true}, err: "only cpu 3 is allowed"},
		{name: "adaptive single cpu two shards", cfg: PlanConfig{Allowed: one, SQPoll: true, Shards: 2}, err: "at most 1 shard fits"},
		{name: "sqpoll too many shards", cfg: PlanConfig{Allowed: four, SQPoll: true, Shards: 3}, err: "--shards 3 with --sqpoll needs 6 CPUs (one for each shard and one for its poller) but 4 are allowed (0-3)"},
		{name: "sqpoll 3 cpus two shards", cfg: PlanConfig{Allowed: three, SQPoll: true, Spin: true, Shards: 2}, err: "needs 4 CPUs"},
		{name: "cpus only spin no spare", cfg: PlanConfig{Allowed: four, CPUs: four, SQPoll: true, Spin: true}, err: "4 spinning shards need 4 poller CPUs outside --cpus 0-3, but only 0 allowed CPUs left (none)"},
		{name: "cpus only spin short spare", cfg: PlanConfig{Allowed: four, CPUs: three, SQPoll: true, Spin: true}, err: "only 1 allowed CPU left (3)"},
		{name: "cpus only too many shards", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0, 1}, Shards: 4, SQPoll: true}, err: "--shards 4 but --cpus 0-1 has only 2 CPUs"},
		{name: "pollers only no shard cpus", cfg: PlanConfig{Allowed: one, PollerCPUs: one, SQPoll: true}, err: "1 shard needs 1 CPU besides --poller-cpus 0, but only 0 allowed CPUs left (none)"},
		{name: "pollers only too few shard cpus", cfg: PlanConfig{Allowed: four, PollerCPUs: CPUSet{1, 2, 3}, SQPoll: true, Spin: true}, err: "3 shards need 3 CPUs besides --poller-cpus 1-3"},
		{name: "pollers only too many shards", cfg: PlanConfig{Allowed: eight, PollerCPUs: CPUSet{6, 7}, Shards: 3, SQPoll: true}, err: "--poller-cpus 6-7 has only 2 CPUs"},
		{name: "explicit too few pollers", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0, 1, 2}, PollerCPUs: CPUSet{4, 5}, SQPoll: true}, err: "3 shards need 3 poller CPUs but --poller-cpus 4-5 has 2"},
		{name: "explicit too many shards", cfg: PlanConfig{Allowed: eight, CPUs: CPUSet{0}, PollerCPUs: CPUSet{4, 5}, Shards: 2, SQPoll: true}, err: "--shards 2 but --cpus 0 has only 1 CPU;"},
		{name: "explicit spin own poller", cfg: PlanConfig{Allowed: one, CPUs: one, PollerCPUs: one, SQPoll: true, Spin: true}, err: "spinning shard 0 would share cpu 0 with its own poller; a spinning shard and a poller on one CPU starve each other"},
		{name: "explicit spin other poller", cfg: PlanConfig{Allowed: four, CPUs: CPUSet{0, 1}, PollerCPUs: CPUSet{1, 2}, SQPoll: true, Spin: true}, err: "spinning shard 1 would share cpu 1 with the poller of shard 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := MakePlan(tc.cfg)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("MakePlan succeeded with %q, want error containing %q", p, tc.err)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "affinity: ") || !strings.Contains(msg, tc.err) || strings.Contains(msg, "\n") {
					t.Fatalf("error %q: want one line starting with \"affinity: \" containing %q", msg, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("MakePlan: %v", err)
			}
			if got := p.String(); got != tc.want {
				t.Fatalf("plan\n got %s\nwant %s", got, tc.want)
			}
			checkPlanInvariants(t, tc.cfg, p)
		})
	}
}

// checkPlanInvariants re-derives the rules from the result, independent of
// how MakePlan reached it.
func checkPlanInvariants(t *testing.T, c PlanConfig, p Plan) {
	t.Helper()
	if p.SQPoll != c.SQPoll || p.Spin != c.Spin {
		t.Errorf("plan flags %v/%v, config %v/%v", p.SQPoll, p.Spin, c.SQPoll, c.Spin)
	}
	if c.Shards > 0 && len(p.Shards) != c.Shards {
		t.Errorf("%d shards, asked for %d", len(p.Shards), c.Shards)
	}
	shardCPUs := map[int]bool{}
	pollerCPUs := map[int]bool{}
	for i, a := range p.Shards {
		if a.Shard != i {
			t.Errorf("shard %d has index %d", i, a.Shard)
		}
		if !c.Allowed.Contains(a.CPU) || (c.SQPoll && !c.Allowed.Contains(a.PollerCPU)) {
			t.Errorf("shard %d uses a CPU outside %v: %+v", i, c.Allowed, a)
		}
		if len(c.CPUs) > 0 && a.CPU != c.CPUs[i] {
			t.Errorf("shard %d on cpu %d, --cpus says %d", i, a.CPU, c.CPUs[i])
		}
		if len(c.PollerCPUs) > 0 && a.PollerCPU != c.PollerCPUs[i] {
			t.Errorf("poller %d on cpu %d, --poller-cpus says %d", i, a.PollerCPU, c.PollerCPUs[i])
		}
		if !c.SQPoll && a.PollerCPU != -1 {
			t.Errorf("poller cpu %d without sqpoll", a.PollerCPU)
		}
		if shardCPUs[a.CPU] {
			t.Errorf("two shards on cpu %d", a.CPU)
		}
		shardCPUs[a.CPU] = true
		if c.SQPoll {
			if pollerCPUs[a.PollerCPU] {
				t.Errorf("two pollers on cpu %d", a.PollerCPU)
			}
			pollerCPUs[a.PollerCPU] = true
		}
	}
	if c.Spin {
		for cpu := range shardCPUs {
			if pollerCPUs[cpu] {
				t.Errorf("spinning shard shares cpu %d with a poller", cpu)
			}
		}
	}
	var all CPUSet
	for cpu := range shardCPUs {
		all = append(all, cpu)
	}
	for cpu := range pollerCPUs {
		if !shardCPUs[cpu] {
			all = append(all, cpu)
		}
	}
	slices.Sort(all)
	if got := p.CPUs(); !slices.Equal(got, all) {
		t.Errorf("CPUs() = %v, want %v", got, all)
	}
}

func TestPlanCPUs(t *testing.T) {
	p, err := MakePlan(PlanConfig{Allowed: CPUSet{0, 2, 5, 7}, SQPoll: true, Spin: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.CPUs().String(); got != "0,2,5,7" {
		t.Errorf("CPUs() = %q", got)
	}
	p, err = MakePlan(PlanConfig{Allowed: CPUSet{0, 1, 2, 3}, CPUs: CPUSet{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.CPUs().String(); got != "0-1" {
		t.Errorf("CPUs() = %q", got)
	}
}
