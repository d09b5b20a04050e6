package affinity

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Allowed returns the CPUs the calling thread may run on. It asks the kernel
// rather than counting CPUs because taskset and cgroup cpusets restrict the
// ids, not just their number, and pinning outside them fails. The answer is
// the process's set only while no thread is pinned, so call it at start-up,
// before pinning, from a goroutine not locked to a pinned thread.
func Allowed() (CPUSet, error) {
	// The dynamic mask goes up to maxCPUs; the fixed unix.CPUSet stops at
	// 1024 and makes the syscall fail with EINVAL on bigger machines.
	mask := unix.NewCPUSet(maxCPUs)
	if err := unix.SchedGetaffinityDynamic(0, mask); err != nil {
		return nil, fmt.Errorf("affinity: cannot read the CPUs this process may use: %w",
			os.NewSyscallError("sched_getaffinity", err))
	}
	var set CPUSet
	for cpu := range maxCPUs {
		if mask.IsSet(cpu) {
			set = append(set, cpu)
		}
	}
	if len(set) == 0 {
		return nil, errors.New("affinity: the kernel reported an empty CPU mask for this process")
	}
	return set, nil
}

// PinThread pins the calling OS thread to cpu.
//
// Call runtime.LockOSThread first: otherwise the goroutine may move to
// another thread right after the call, and the pin lands on whichever thread
// the scheduler later hands to unrelated goroutines. For the same reason,
// do not call runtime.UnlockOSThread on a pinned thread without restoring its
// mask; letting the goroutine exit while still locked makes the runtime
// discard the thread instead.
func PinThread(cpu int) error {
	if cpu < 0 || cpu >= maxCPUs {
		return fmt.Errorf("affinity: cannot pin thread to cpu %d: ids must be in 0-%d", cpu, maxCPUs-1)
	}
	mask := unix.NewCPUSet(cpu + 1)
	mask.Set(cpu)
	if err := unix.SchedSetaffinityDynamic(0, mask); err != nil {
		err = os.NewSyscallError("sched_setaffinity", err)
		if errors.Is(err, unix.EINVAL) {
			// The kernel says EINVAL when the CPU is offline or outside the
			// cgroup cpuset, which is the common cause here.
			return fmt.Errorf("affinity: cannot pin thread to cpu %d (offline or outside this process's cpuset?): %w", cpu, err)
		}
		return fmt.Errorf("affinity: cannot pin thread to cpu %d: %w", cpu, err)
	}
	return nil
}
