package affinity

import (
	"fmt"
	"strconv"
	"strings"
)

// PlanConfig is what the user asked for; the zero value with Allowed set
// means "choose everything".
type PlanConfig struct {
	Allowed    CPUSet // CPUs the process may use (from Allowed)
	CPUs       CPUSet // --cpus: CPUs for shard threads, in shard order; empty = choose
	PollerCPUs CPUSet // --poller-cpus: CPUs for SQPOLL kernel pollers, in shard order; empty = choose
	Shards     int    // --shards: 0 = choose
	SQPoll     bool   // shards use an SQPOLL ring (one kernel poller thread each)
	Spin       bool   // with SQPoll: the shard thread busy-spins (never sleeps), so it must not share a CPU with any poller or other shard thread
}

// Assignment places one shard.
type Assignment struct {
	Shard     int // shard index, 0-based
	CPU       int // CPU of the shard thread
	PollerCPU int // CPU of the shard's SQPOLL kernel poller; -1 without SQPOLL
}

// Plan is the validated layout of all shards.
type Plan struct {
	SQPoll bool
	Spin   bool
	Shards []Assignment
}

// spinStarveHint explains why a spinning shard must not share a CPU with a
// poller, so the refusal teaches the fix instead of just forbidding.
const spinStarveHint = "a spinning shard and a poller on one CPU starve each other (measured ~200 ms latency)"

// MakePlan validates c and lays out the shards.
//
// Without SQPOLL every shard gets its own CPU: the first Shards of CPUs (or
// of Allowed when CPUs is empty), all of them by default.
//
// With SQPOLL each shard also has a kernel poller thread, and the layout
// depends on what was given:
//   - neither CPUs nor PollerCPUs: the allowed CPUs are cut into consecutive
//     pairs, shard i on the (2i)-th and its poller on the (2i+1)-th, giving
//     N/2 shards on N CPUs (an odd last CPU stays unused). Pairs keep the
//     rule predictable from the CPU list alone; adjacent ids also usually
//     share a socket and last-level cache, which the shard/poller hand-off
//     through the rings benefits from. With a single CPU and no spinning, one shard shares it with its
//     poller.
//   - CPUs only: shards on CPUs; pollers take the allowed CPUs outside CPUs,
//     in order. When those run out, a non-spinning shard's poller shares the
//     shard's own CPU; a spinning shard is refused instead.
//   - PollerCPUs only: pollers on PollerCPUs (one shard per poller CPU by
//     default), shards on the allowed CPUs outside PollerCPUs, in order.
//   - both: shard i on CPUs[i], its poller on PollerCPUs[i].
//
// Always refused: CPUs outside Allowed, more shards than CPUs for them,
// negative Shards, a CPU listed twice for shards or twice for pollers,
// PollerCPUs without SQPoll, and, with Spin, any CPU that both a shard and a
// poller use, because a thread that never sleeps leaves the other none.
func MakePlan(c PlanConfig) (Plan, error) {
	allowed := c.Allowed.normalized()
	if len(allowed) == 0 {
		return Plan{}, fmt.Errorf("affinity: no allowed CPUs in the plan config; fill PlanConfig.Allowed from affinity.Allowed()")
	}
	if c.Shards < 0 {
		return Plan{}, fmt.Errorf("affinity: --shards %d is negative; use 0 to choose automatically", c.Shards)
	}
	if cpu, ok := firstDuplicate(c.CPUs); ok {
		return Plan{}, fmt.Errorf("affinity: --cpus lists cpu %d twice; every shard needs a CPU of its own", cpu)
	}
	if cpu, ok := firstDuplicate(c.PollerCPUs); ok {
		return Plan{}, fmt.Errorf("affinity: --poller-cpus lists cpu %d twice; two SQPOLL pollers on one CPU compete for it", cpu)
	}
	if err := checkAllowed("--cpus", c.CPUs, allowed); err != nil {
		return Plan{}, err
	}
	if err := checkAllowed("--poller-cpus", c.PollerCPUs, allowed); err != nil {
		return Plan{}, err
	}

	var shardCPUs, pollerCPUs CPUSet
	var err error
	switch {
	case !c.SQPoll:
		if len(c.PollerCPUs) > 0 {
			return Plan{}, fmt.Errorf("affinity: --poller-cpus %s given without --sqpoll; pollers only exist with SQPOLL rings", c.PollerCPUs)
		}
		shardCPUs, err = planPlain(c, allowed)
	case len(c.CPUs) == 0 && len(c.PollerCPUs) == 0:
		shardCPUs, pollerCPUs, err = planPairs(c, allowed)
	case len(c.PollerCPUs) == 0:
		shardCPUs, pollerCPUs, err = planSpare(c, allowed)
	case len(c.CPUs) == 0:
		shardCPUs, pollerCPUs, err = planGivenPollers(c, allowed)
	default:
		shardCPUs, pollerCPUs, err = planExplicit(c)
	}
	if err != nil {
		return Plan{}, err
	}

	p := Plan{SQPoll: c.SQPoll, Spin: c.Spin}
	for i, cpu := range shardCPUs {
		a := Assignment{Shard: i, CPU: cpu, PollerCPU: -1}
		if c.SQPoll {
			a.PollerCPU = pollerCPUs[i]
		}
		p.Shards = append(p.Shards, a)
	}
	if err := p.check(); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// planPlain lays out shards without SQPOLL: one CPU each.
func planPlain(c PlanConfig, allowed CPUSet) (CPUSet, error) {
	pool, from := allowed, "allowed"
	if len(c.CPUs) > 0 {
		pool, from = c.CPUs, "in --cpus"
	}
	n, err := shardCount(c.Shards, len(pool))
	if err != nil {
		return nil, fmt.Errorf("affinity: --shards %d but only %s %s (%s); every shard needs a CPU of its own: lower --shards or list more --cpus", c.Shards, count(len(pool), "CPU"), from, pool)
	}
	return pool[:n], nil
}

// planPairs lays out SQPOLL shards when no CPUs were named.
func planPairs(c PlanConfig, allowed CPUSet) (CPUSet, CPUSet, error) {
	if len(allowed) == 1 {
		cpu := allowed[0]
		if c.Spin {
			return nil, nil, fmt.Errorf("affinity: only cpu %d is allowed, so a spinning shard would share it with its SQPOLL poller; %s; use --sqpoll off or a non-spinning idle mode, or allow a second CPU for the poller (taskset/cpuset) and name it with --poller-cpus", cpu, spinStarveHint)
		}
		if c.Shards > 1 {
			return nil, nil, fmt.Errorf("affinity: --shards %d but only cpu %d is allowed; with --sqpoll at most 1 shard fits (sharing the CPU with its poller)", c.Shards, cpu)
		}
		return CPUSet{cpu}, CPUSet{cpu}, nil
	}
	n, err := shardCount(c.Shards, len(allowed)/2)
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: --shards %d with --sqpoll needs %d CPUs (one for each shard and one for its poller) but %d are allowed (%s); lower --shards, or name shard CPUs with --cpus", c.Shards, 2*c.Shards, len(allowed), allowed)
	}
	var shards, pollers CPUSet
	for i := range n {
		shards = append(shards, allowed[2*i])
		pollers = append(pollers, allowed[2*i+1])
	}
	return shards, pollers, nil
}

// planSpare lays out SQPOLL shards on --cpus with pollers on the remaining
// allowed CPUs.
func planSpare(c PlanConfig, allowed CPUSet) (CPUSet, CPUSet, error) {
	n, err := shardCount(c.Shards, len(c.CPUs))
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: --shards %d but --cpus %s has only %s; every shard needs a CPU of its own: lower --shards or list more --cpus", c.Shards, c.CPUs, count(len(c.CPUs), "CPU"))
	}
	shards := c.CPUs[:n]
	spare := allowed.minus(c.CPUs)
	var pollers CPUSet
	for i, cpu := range shards {
		switch {
		case i < len(spare):
			pollers = append(pollers, spare[i])
		case c.Spin:
			return nil, nil, fmt.Errorf("affinity: %s %s outside --cpus %s, but only %s left (%s), and %s; name poller CPUs with --poller-cpus, use fewer --shards, or --sqpoll off",
				count(n, "spinning shard"), needs(n, "poller CPU"), c.CPUs, count(len(spare), "allowed CPU"), spare.describe(), spinStarveHint)
		default:
			// Sharing is acceptable without spinning: the shard sleeps when
			// idle, so the poller gets the CPU when it needs it.
			pollers = append(pollers, cpu)
		}
	}
	return shards, pollers, nil
}

// planGivenPollers lays out SQPOLL shards around explicit poller CPUs.
func planGivenPollers(c PlanConfig, allowed CPUSet) (CPUSet, CPUSet, error) {
	n, err := shardCount(c.Shards, len(c.PollerCPUs))
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: --shards %d but --poller-cpus %s has only %s; every shard needs a poller CPU of its own: list more --poller-cpus or lower --shards", c.Shards, c.PollerCPUs, count(len(c.PollerCPUs), "CPU"))
	}
	pool := allowed.minus(c.PollerCPUs)
	if len(pool) < n {
		return nil, nil, fmt.Errorf("affinity: %s %s besides --poller-cpus %s, but only %s left (%s); lower --shards, list fewer --poller-cpus, or name shard CPUs with --cpus",
			count(n, "shard"), needs(n, "CPU"), c.PollerCPUs, count(len(pool), "allowed CPU"), pool.describe())
	}
	return pool[:n], c.PollerCPUs[:n], nil
}

// planExplicit pairs --cpus with --poller-cpus by position.
func planExplicit(c PlanConfig) (CPUSet, CPUSet, error) {
	n, err := shardCount(c.Shards, len(c.CPUs))
	if err != nil {
		return nil, nil, fmt.Errorf("affinity: --shards %d but --cpus %s has only %s; every shard needs a CPU of its own: lower --shards or list more --cpus", c.Shards, c.CPUs, count(len(c.CPUs), "CPU"))
	}
	if len(c.PollerCPUs) < n {
		return nil, nil, fmt.Errorf("affinity: %s %s but --poller-cpus %s has %d; list one poller CPU per shard", count(n, "shard"), needs(n, "poller CPU"), c.PollerCPUs, len(c.PollerCPUs))
	}
	return c.CPUs[:n], c.PollerCPUs[:n], nil
}

// shardCount resolves a requested shard count (0 = as many as fit) against
// the number that fit; it only reports whether the request is too large,
// the caller words the error.
func shardCount(requested, fit int) (int, error) {
	if requested == 0 {
		return fit, nil
	}
	if requested > fit {
		return 0, fmt.Errorf("too many shards")
	}
	return requested, nil
}

// check enforces the invariants on the finished plan, whichever way it was
// built, so no layout rule can slip past the per-mode code.
func (p Plan) check() error {
	if len(p.Shards) == 0 {
		return fmt.Errorf("affinity: the plan has no shards")
	}
	shardOn := make(map[int]int)
	pollerOn := make(map[int]int)
	for _, a := range p.Shards {
		if other, dup := shardOn[a.CPU]; dup {
			return fmt.Errorf("affinity: shards %d and %d would both run on cpu %d; every shard needs a CPU of its own", other, a.Shard, a.CPU)
		}
		shardOn[a.CPU] = a.Shard
		if !p.SQPoll {
			continue
		}
		if other, dup := pollerOn[a.PollerCPU]; dup {
			return fmt.Errorf("affinity: the pollers of shards %d and %d would both run on cpu %d; two SQPOLL pollers on one CPU compete for it", other, a.Shard, a.PollerCPU)
		}
		pollerOn[a.PollerCPU] = a.Shard
	}
	if !p.SQPoll || !p.Spin {
		return nil
	}
	for _, a := range p.Shards {
		if owner, clash := pollerOn[a.CPU]; clash {
			whose := "its own poller"
			if owner != a.Shard {
				whose = "the poller of shard " + strconv.Itoa(owner)
			}
			return fmt.Errorf("affinity: spinning shard %d would share cpu %d with %s; %s; make --cpus and --poller-cpus disjoint, use a non-spinning idle mode, or --sqpoll off", a.Shard, a.CPU, whose, spinStarveHint)
		}
	}
	return nil
}

// String describes the plan for the start-up log, e.g.
// "2 shards, sqpoll=on spin: shard 0 -> cpu 0 (poller cpu 1); shard 1 -> cpu 2 (poller cpu 3)".
func (p Plan) String() string {
	var b strings.Builder
	if len(p.Shards) == 1 {
		b.WriteString("1 shard, ")
	} else {
		fmt.Fprintf(&b, "%d shards, ", len(p.Shards))
	}
	switch {
	case !p.SQPoll:
		b.WriteString("sqpoll=off")
	case p.Spin:
		b.WriteString("sqpoll=on spin")
	default:
		b.WriteString("sqpoll=on adaptive")
	}
	if p.Spin && !p.SQPoll {
		b.WriteString(" spin")
	}
	b.WriteString(":")
	for i, a := range p.Shards {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " shard %d -> cpu %d", a.Shard, a.CPU)
		switch {
		case a.PollerCPU < 0:
		case a.PollerCPU == a.CPU:
			fmt.Fprintf(&b, " (poller cpu %d, shared)", a.PollerCPU)
		default:
			fmt.Fprintf(&b, " (poller cpu %d)", a.PollerCPU)
		}
	}
	return b.String()
}

// CPUs returns every CPU the plan uses, shards and pollers, so the caller
// can check it against other pinned work or report it.
func (p Plan) CPUs() CPUSet {
	var s CPUSet
	for _, a := range p.Shards {
		s = append(s, a.CPU)
		if a.PollerCPU >= 0 {
			s = append(s, a.PollerCPU)
		}
	}
	return s.normalized()
}

// count words a number of things for error messages.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// needs words "need(s) n things" in agreement with n subjects.
func needs(n int, thing string) string {
	if n == 1 {
		return "needs " + count(n, thing)
	}
	return "need " + count(n, thing)
}

// firstDuplicate returns the first CPU listed twice in s.
func firstDuplicate(s CPUSet) (int, bool) {
	seen := make(map[int]bool, len(s))
	for _, cpu := range s {
		if seen[cpu] {
			return cpu, true
		}
		seen[cpu] = true
	}
	return 0, false
}

// checkAllowed refuses CPUs the process may not use; pinning to them would
// fail later with a bare EINVAL.
func checkAllowed(flag string, s, allowed CPUSet) error {
	var outside CPUSet
	for _, cpu := range s {
		if !allowed.Contains(cpu) {
			outside = append(outside, cpu)
		}
	}
	if len(outside) == 0 {
		return nil
	}
	outside = outside.normalized()
	noun := "cpu"
	if len(outside) > 1 {
		noun = "cpus"
	}
	return fmt.Errorf("affinity: %s names %s %s, outside the CPUs this process may use (%s; limited by taskset or the cgroup cpuset)", flag, noun, outside, allowed)
}
