package shard

import (
	"fmt"
	"runtime"

	"zerosys/affinity"
)

// PreflightConfig is the ring a shard would make.
type PreflightConfig struct {
	SQPoll    bool
	PollerCPU int
	CPU       int // the thread to create the ring from is pinned here; -1 = not pinned
}

// onLockedThread runs f on a fresh thread of its own, locked for f's whole
// run and discarded after: a SINGLE_ISSUER ring accepts io_uring_register
// only from the thread that made it.
func onLockedThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // exits locked: the thread dies with the goroutine
		errc <- f()
	}()
	return <-errc
}

// Preflight makes and destroys a small ring the way a shard would, and
// probes the operations shards use, so a machine that cannot run zerosys
// is told why before anything listens. Its errors are the ones Start
// would return.
func Preflight(c PreflightConfig) error {
	errc := make(chan error, 1)
	go func() {
		// A fresh locked thread that exits locked: the pin dies with it.
		runtime.LockOSThread()
		if c.CPU >= 0 {
			if err := affinity.PinThread(c.CPU); err != nil {
				errc <- err
				return
			}
		}
		r, err := newRing(ringOptions{entries: 8, cqEntries: 16, sqPoll: c.SQPoll, pollerCPU: c.PollerCPU, sqIdleMs: 1})
		if err != nil {
			errc <- err
			return
		}
		err = r.probeOps(requiredOps)
		r.close()
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	return nil
}
