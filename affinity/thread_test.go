package affinity

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAllowedAndPinThread(t *testing.T) {
	allowed, err := Allowed()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) == 0 {
		t.Fatal("Allowed returned no CPUs")
	}
	if _, err := ParseList(allowed.String()); err != nil {
		t.Fatalf("Allowed() = %q does not parse: %v", allowed, err)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var orig unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			t.Error(err)
			runtime.UnlockOSThread()
			return
		}
		restored := false
		defer func() {
			// Only a thread with its original mask may go back to the
			// scheduler; otherwise let the goroutine exit locked so the
			// runtime discards the thread.
			if restored {
				runtime.UnlockOSThread()
			}
		}()

		cpu := allowed[0]
		if err := PinThread(cpu); err != nil {
			t.Error(err)
			return
		}
		var got unix.CPUSet
		if err := unix.SchedGetaffinity(0, &got); err != nil {
			t.Error(err)
			return
		}
		if got.Count() != 1 || !got.IsSet(cpu) {
			t.Errorf("after PinThread(%d) the mask has %d CPUs, cpu %d set: %v", cpu, got.Count(), cpu, got.IsSet(cpu))
		}
		if now, err := Allowed(); err != nil || len(now) != 1 || now[0] != cpu {
			t.Errorf("Allowed() on the pinned thread = %v, %v; want [%d]", now, err, cpu)
		}

		if err := unix.SchedSetaffinity(0, &orig); err != nil {
			t.Error(err)
			return
		}
		restored = true
	}()
	<-done
}

func TestPinThreadRefusesBadCPU(t *testing.T) {
	for _, cpu := range []int{-1, 4096, 1 << 30} {
		if err := PinThread(cpu); err == nil {
			t.Errorf("PinThread(%d) succeeded", cpu)
		}
	}
}
