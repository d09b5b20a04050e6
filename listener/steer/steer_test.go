package steer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zerosys/listener"
)

// group opens n listeners on a loopback port the kernel picks.
func group(t *testing.T, n int) *listener.Group {
	t.Helper()
	g, err := listener.Listen(listener.Config{Addr: "127.0.0.1:0"}, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// attachOrSkip attaches p, skipping where BPF is not permitted (outside
// CI, where it must be).
func attachOrSkip(t *testing.T, p Policy, g *listener.Group) *Steering {
	t.Helper()
	s, err := Attach(p, g.FDs, nil)
	if errors.Is(err, ErrNotPermitted) && os.Getenv("CI") == "" {
		t.Skipf("BPF not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// whichListener accepts the connection that just arrived on one of g's
// listeners and returns that listener's index.
func whichListener(t *testing.T, g *listener.Group) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for i, fd := range g.FDs {
			nfd, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			if err == nil {
				unix.Close(nfd)
				return i
			}
		}
		// The listeners are blocking; poll them instead of accepting blind.
		fds := make([]unix.PollFd, len(g.FDs))
		for i, fd := range g.FDs {
			fds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		}
		_, _ = unix.Poll(fds, 100)
	}
	t.Fatal("no listener got the connection")
	return -1
}

func dial(t *testing.T, g *listener.Group) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", g.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLoadSteersToTheLeastLoaded: connections opened one after another go
// to the shard with the fewest, counting those handed over and not yet
// accepted; a shard that closes its connections gets the next ones.
func TestLoadSteersToTheLeastLoaded(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := group(t, n)
			// Non-blocking accepts for whichListener.
			for _, fd := range g.FDs {
				if err := unix.SetNonblock(fd, true); err != nil {
					t.Fatal(err)
				}
			}
			s := attachOrSkip(t, Load, g)
			counts := make([]int, n)
			taken := make([]uint64, n)
			// Not accepted yet: the program's own count must spread them.
			for range 4 * n {
				dial(t, g)
			}
			for range 4 * n {
				i := whichListener(t, g)
				counts[i]++
			}
			for i, c := range counts {
				if c != 4 {
					t.Fatalf("%d listeners, %d connections opened before any accept: %v, want 4 each", n, 4*n, counts)
				}
				taken[i] = uint64(c)
				s.Shard(i).Accepted(taken[i], uint64(c))
			}
			// Shard 0 loses its connections: the next 4 go there.
			s.Shard(0).Closed(0)
			time.Sleep(2 * recent) // the hand-over counts are past
			for range 4 {
				dial(t, g)
				if i := whichListener(t, g); i != 0 {
					t.Fatalf("after shard 0 emptied, a connection went to %d", i)
				}
				taken[0]++
			}
		})
	}
}

// dialFrom connects to g from a thread pinned to cpu: on loopback the SYN
// is handled on the connecting CPU. The thread ends with its goroutine, so
// its pinning leaves with it.
func dialFrom(t *testing.T, g *listener.Group, cpu int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- err
			return
		}
		c, err := net.Dial("tcp", g.Addr.String())
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestLoadPrefersTheSYNsCPU: among equally loaded shards the one on the
// CPU that handled the SYN wins (over the round-robin's turn), and a
// lighter shard still beats it.
func TestLoadPrefersTheSYNsCPU(t *testing.T) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpu []int // the first two CPUs this process may use: shard 0's and shard 1's
	for c := 0; c < 1024 && len(cpu) < 2; c++ {
		if set.IsSet(c) {
			cpu = append(cpu, c)
		}
	}
	if len(cpu) < 2 {
		t.Skip("needs 2 CPUs")
	}
	g := group(t, 2)
	for _, fd := range g.FDs {
		_ = unix.SetNonblock(fd, true)
	}
	s, err := Attach(Load, g.FDs, cpu)
	if errors.Is(err, ErrNotPermitted) && os.Getenv("CI") == "" {
		t.Skipf("BPF not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	taken := make([]uint64, 2)
	for step, c := range []struct{ from, want int }{ // from: whose shard's CPU dials
		{1, 1}, // 0 and 0: the SYN's CPU, though the turn is shard 0's
		{1, 0}, // 0 and 1: the lighter one, away from the SYN's CPU
		{1, 1}, // 1 and 1: the SYN's CPU again, though the turn is shard 0's
		{0, 0}, // 1 and 2: the lighter one, which is also local
	} {
		dialFrom(t, g, cpu[c.from])
		got := whichListener(t, g)
		if got != c.want {
			t.Fatalf("step %d: a SYN on shard %d's CPU went to shard %d, want %d", step, c.from, got, c.want)
		}
		taken[got]++
		s.Shard(got).Accepted(taken[got], taken[got])
	}
}

// TestRoundRobin: connections take turns.
func TestRoundRobin(t *testing.T) {
	g := group(t, 3)
	for _, fd := range g.FDs {
		_ = unix.SetNonblock(fd, true)
	}
	attachOrSkip(t, RoundRobin, g)
	counts := make([]int, 3)
	for range 9 {
		dial(t, g)
		counts[whichListener(t, g)]++
	}
	if counts[0] != 3 || counts[1] != 3 || counts[2] != 3 {
		t.Errorf("round-robin over 3: %v", counts)
	}
}

// TestHashDetaches: Hash removes a program the group has (another
// process's, in an upgrade), and is a no-op without one.
func TestHashDetaches(t *testing.T) {
	g := group(t, 2)
	if _, err := Attach(Hash, g.FDs, nil); err != nil {
		t.Fatalf("hash with no program: %v", err)
	}
	attachOrSkip(t, RoundRobin, g)
	if _, err := Attach(Hash, g.FDs, nil); err != nil {
		t.Fatalf("hash over a program: %v", err)
	}
	if err := unix.SetsockoptInt(g.FDs[0], unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0); !errors.Is(err, unix.ENOENT) {
		t.Errorf("after Hash the group still has a program (detach: %v)", err)
	}
}

// TestCPU: the classic program is accepted by the kernel; on loopback the
// SYN's CPU is the client's, so the listener follows the dialing CPU.
func TestCPU(t *testing.T) {
	g := group(t, 2)
	if _, err := Attach(CPU, g.FDs, []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Attach(CPU, g.FDs, []int{0}); err == nil {
		t.Error("cpu with too few CPUs accepted")
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"load", "round-robin", "cpu", "hash"} {
		if p, err := Parse(s); err != nil || string(p) != s {
			t.Errorf("Parse(%q) = %q, %v", s, p, err)
		}
	}
	if _, err := Parse("random"); err == nil {
		t.Error("Parse(random) succeeded")
	}
}
