package main

import (
	"errors"
	"log/slog"

	"zerosys/affinity"
	"zerosys/listener"
	"zerosys/listener/steer"
)

// steerGroup puts --steer in force on the listener group. Where the
// kernel refuses the BPF it needs, it falls back to the kernel's hash with
// one line saying why, as it does for a cpu policy on unpinned shards.
func steerGroup(cfg *config, plan affinity.Plan, g *listener.Group, log *slog.Logger) *steer.Steering {
	var cpus []int
	for _, a := range plan.Shards {
		cpus = append(cpus, a.CPU)
	}
	s, err := steer.Attach(cfg.steer, g.FDs, cpus)
	if err == nil {
		return s
	}
	why := "the kernel refused it"
	if errors.Is(err, steer.ErrNotPermitted) {
		why = "BPF is not permitted (needs CAP_BPF or CAP_SYS_ADMIN, and bpf(2) allowed by seccomp)"
	}
	log.Warn("steering: falling back to the kernel's hash of the 4-tuple", "steer", cfg.steer, "reason", why, "err", err)
	if s, err := steer.Attach(steer.Hash, g.FDs, nil); err == nil {
		return s
	}
	return &steer.Steering{Policy: steer.Hash}
}
