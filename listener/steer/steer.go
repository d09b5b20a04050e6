// Package steer chooses which shard's listener takes each new connection
// of a SO_REUSEPORT group, instead of the kernel's hash of the 4-tuple,
// which with the few long-lived connections a load balancer keeps leaves
// shards idle by luck.
//
// Policies: Load (an eBPF program picks the listener whose shard has the
// fewest connections, counting those it handed over and the shard has not
// accepted yet; among equals the shard on the CPU that handles the SYN,
// then round-robin), RoundRobin (the same program, taking
// turns), CPU (a classic BPF program picks the shard of the CPU that
// handles the SYN, for NICs whose queues are aligned with the shards) and
// Hash (the kernel's default; any program another process attached is
// removed).
//
// The shards publish their connection counts into a BPF array map the
// program reads, by plain stores into memory this process maps: no system
// call per connection.
package steer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Policy is how new connections are spread over the listeners.
type Policy string

// The policies.
const (
	Load       Policy = "load"
	RoundRobin Policy = "round-robin"
	CPU        Policy = "cpu"
	Hash       Policy = "hash"
)

// Parse reads a policy name.
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Load, RoundRobin, CPU, Hash:
		return p, nil
	}
	return "", fmt.Errorf("steer: %q: want load, round-robin, cpu or hash", s)
}

// maxShards bounds the listeners one program chooses among (it is
// generated unrolled, about 20 instructions per shard).
const maxShards = 256

// recent is how long after handing a connection to a shard the program
// counts it as on its way (handed over, not accepted yet). Past it the
// count is ignored, so that a SYN counted twice (retransmitted) does not
// weigh on the shard for good.
const recent = 10_000_000 // ns

// Each shard's words in the load map, in a cache line of its own (the
// ticket of the round-robin takes the first line).
const (
	line      = 64
	offHanded = 0  // connections the program handed over (the program adds)
	offLast   = 8  // when it last did, monotonic ns (the program stores)
	offTaken  = 16 // connections the shard accepted (the shard stores)
	offActive = 24 // connections the shard holds now (the shard stores)
	offTicket = 0  // the round-robin's ticket, in line 0
	skPass    = 1
	stackKey  = -4
	stackNow  = -16
	stackCPU  = -24
	loadShift = 9 // a load is compared as load<<9 + tie, tie <= 256 (maxShards)
)

// Counters is one shard's words in the load map. Only its shard writes
// them, with atomic stores (plain moves on amd64 and arm64).
type Counters struct {
	taken, active *atomic.Uint64
}

// Accepted records that the shard accepted a connection and holds active.
func (c *Counters) Accepted(total, active uint64) {
	if c == nil {
		return
	}
	c.taken.Store(total)
	c.active.Store(active)
}

// Closed records that the shard now holds active connections.
func (c *Counters) Closed(active uint64) {
	if c == nil {
		return
	}
	c.active.Store(active)
}

// Steering is a policy in force on a listener group.
type Steering struct {
	Policy Policy
	shards []Counters
	mem    []byte
	prog   *ebpf.Program
	loads  *ebpf.Map
	socks  *ebpf.Map
}

// Shard returns the counters shard i publishes, or nil when the policy
// reads none.
func (s *Steering) Shard(i int) *Counters {
	if s == nil || s.shards == nil {
		return nil
	}
	return &s.shards[i]
}

// Close releases the program's maps and memory. The program stays
// attached to the group (the kernel holds it) until the listeners close.
func (s *Steering) Close() {
	if s == nil {
		return
	}
	if s.mem != nil {
		_ = unix.Munmap(s.mem)
		s.mem = nil
	}
	for _, c := range []interface{ Close() error }{s.prog, s.loads, s.socks} {
		if c != nil {
			_ = c.Close()
		}
	}
	s.prog, s.loads, s.socks = nil, nil, nil
}

// ErrNotPermitted reports that the kernel refused the BPF the policy needs
// (no CAP_BPF or CAP_SYS_ADMIN, a seccomp filter, an LSM).
var ErrNotPermitted = errors.New("steer: BPF is not permitted here")

// Attach puts policy p in force on the listeners fds, one per shard, in
// shard order, already listening: they must be the whole group this
// process owns. cpus gives each shard's CPU (-1: not pinned): CPU needs
// them, and Load prefers, among equally loaded shards, the one on the CPU
// that handles the SYN.
func Attach(p Policy, fds []int, cpus []int) (*Steering, error) {
	if len(fds) == 0 || len(fds) > maxShards {
		return nil, fmt.Errorf("steer: %d listeners; want 1 to %d", len(fds), maxShards)
	}
	switch p {
	case Hash:
		// A program another process attached to the group (an upgrade
		// that steered) would keep steering to its own listeners.
		if err := unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_DETACH_REUSEPORT_BPF, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("steer: detach the group's program: %w", err)
		}
		return &Steering{Policy: Hash}, nil
	case CPU:
		if err := attachCPU(fds, cpus); err != nil {
			return nil, err
		}
		return &Steering{Policy: CPU}, nil
	}
	s, err := attachEBPF(p, fds, cpus)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func attachEBPF(p Policy, fds []int, cpus []int) (s *Steering, err error) {
	_ = rlimit.RemoveMemlock() // kernels before 5.11 charge maps to it
	n := len(fds)
	s = &Steering{Policy: p}
	defer func() {
		if err != nil {
			s.Close()
			// The verifier refuses a program with EACCES too, and says why
			// in its log: that is a bug here, not a missing permission.
			// (cilium/ebpf wraps every load failure as a VerifierError;
			// an LSM's refusal comes with an empty log.)
			var ve *ebpf.VerifierError
			verifier := errors.As(err, &ve) && len(ve.Log) > 0
			if !verifier && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
				err = fmt.Errorf("%w: %v", ErrNotPermitted, err)
			}
		}
	}()
	size := line * (n + 1)
	if s.loads, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zerosys_loads", Type: ebpf.Array, KeySize: 4,
		ValueSize: uint32(size), MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE}); err != nil {
		return nil, fmt.Errorf("steer: the load map: %w", err)
	}
	if s.socks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zerosys_socks", Type: ebpf.ReusePortSockArray, KeySize: 4,
		ValueSize: 8, MaxEntries: uint32(n)}); err != nil {
		return nil, fmt.Errorf("steer: the socket array: %w", err)
	}
	for i, fd := range fds {
		if err = s.socks.Update(uint32(i), uint64(fd), ebpf.UpdateAny); err != nil {
			return nil, fmt.Errorf("steer: listener %d into the socket array: %w", i, err)
		}
	}
	if s.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{Name: "zerosys_steer", Type: ebpf.SkReuseport,
		AttachType: ebpf.AttachSkReuseportSelect, License: "Apache-2.0",
		Instructions: program(p, n, cpus, s.loads.FD(), s.socks.FD())}); err != nil {
		return nil, fmt.Errorf("steer: load the program: %w", err)
	}
	pages := (size + unix.Getpagesize() - 1) / unix.Getpagesize() * unix.Getpagesize()
	if s.mem, err = unix.Mmap(s.loads.FD(), 0, pages, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("steer: map the load map: %w", err)
	}
	if p == Load {
		s.shards = make([]Counters, n)
		for i := range s.shards {
			base := line * (i + 1)
			s.shards[i] = Counters{
				taken:  (*atomic.Uint64)(unsafe.Pointer(&s.mem[base+offTaken])),
				active: (*atomic.Uint64)(unsafe.Pointer(&s.mem[base+offActive])),
			}
		}
	}
	if err = unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_EBPF, s.prog.FD()); err != nil {
		return nil, fmt.Errorf("steer: attach the program to the group: %w", err)
	}
	return s, nil
}

// program generates the selection for n listeners: Load or RoundRobin;
// cpus[i] is shard i's CPU, or -1 (or cpus nil). The shard's loop is
// unrolled, so every offset is a constant and the verifier sees no loop.
//
// R6 ctx, R7 the load map's value, R8 the turn (ticket mod n), R9 the best
// key so far; R1 now, R2 the best index, R3-R5 scratch.
func program(p Policy, n int, cpus []int, loadsFD, socksFD int) asm.Instructions {
	in := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, stackNow, asm.R0, asm.DWord),
		// The CPU handling the SYN (Load breaks ties by it); helper calls
		// clobber R1-R5, so before they hold anything.
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(asm.RFP, stackCPU, asm.R0, asm.DWord),
		asm.LoadMapValue(asm.R7, loadsFD, 0),
		// The turn: the ticket, then the next ticket stored. Not atomic
		// (cilium/ebpf v0.22 encodes FetchAdd without its fetch bit): two
		// SYNs on two CPUs at once may share a turn, which only decides a
		// tie between equally loaded shards.
		asm.LoadMem(asm.R8, asm.R7, offTicket, asm.DWord),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Add.Imm(asm.R3, 1),
		asm.StoreMem(asm.R7, offTicket, asm.R3, asm.DWord),
		asm.Mod.Imm(asm.R8, int32(n)),
		asm.Mov.Reg(asm.R2, asm.R8), // round-robin: the turn's listener
	}
	if p == Load {
		in = append(in,
			asm.Mov.Imm(asm.R9, -1), // the largest key
			asm.LoadMem(asm.R1, asm.RFP, stackNow, asm.DWord),
		)
		for i := range n {
			cpu := -1
			if i < len(cpus) {
				cpu = cpus[i]
			}
			in = append(in, shardKey(i, n, cpu)...)
		}
	}
	in = append(in,
		asm.StoreMem(asm.RFP, stackKey, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R9, asm.R2),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, socksFD),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stackKey),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkSelectReuseport.Call(),
		// Not selected (the listener is closing): the kernel's hash.
		asm.JNE.Imm(asm.R0, 0, "pass"),
	)
	if p == Load {
		// Count the connection handed over, and when.
		in = append(in, asm.LoadMem(asm.R3, asm.RFP, stackNow, asm.DWord))
		for i := range n {
			base := int16(line * (i + 1))
			in = append(in,
				asm.JNE.Imm(asm.R9, int32(i), fmt.Sprintf("count%d", i+1)),
				asm.Mov.Imm(asm.R1, 1),
				asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, base+offHanded),
				asm.StoreMem(asm.R7, base+offLast, asm.R3, asm.DWord),
				asm.Ja.Label("pass"),
			)
			in = append(in, asm.Mov.Imm(asm.R0, 0).WithSymbol(fmt.Sprintf("count%d", i+1)))
		}
	}
	in = append(in,
		asm.Mov.Imm(asm.R0, skPass).WithSymbol("pass"),
		asm.Return(),
	)
	return in
}

// shardKey compares shard i's key, (load << loadShift) + a tie-break, with
// the best so far: the fewest connections win; among equals the shard on
// cpu if the SYN is handled there (tie-break 0: its answers then stay on
// the CPU of the client's flow), else the first at or after the turn
// (1 + its distance from the turn).
func shardKey(i, n, cpu int) asm.Instructions {
	base := int16(line * (i + 1))
	l := func(s string) string { return fmt.Sprintf("%s%d", s, i) }
	return asm.Instructions{
		// On their way: handed over and not taken yet, if handed recently.
		asm.LoadMem(asm.R3, asm.R7, base+offHanded, asm.DWord),
		asm.LoadMem(asm.R4, asm.R7, base+offTaken, asm.DWord),
		asm.Sub.Reg(asm.R3, asm.R4),
		asm.JSGT.Imm(asm.R3, 0, l("pending")),
		asm.Mov.Imm(asm.R3, 0),
		asm.Ja.Label(l("active")),
		asm.LoadMem(asm.R4, asm.R7, base+offLast, asm.DWord).WithSymbol(l("pending")),
		asm.Mov.Reg(asm.R5, asm.R1),
		asm.Sub.Reg(asm.R5, asm.R4),
		asm.JLT.Imm(asm.R5, recent, l("active")),
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R4, asm.R7, base+offActive, asm.DWord).WithSymbol(l("active")),
		asm.Add.Reg(asm.R3, asm.R4),
		asm.LSh.Imm(asm.R3, loadShift),
		// The tie-break: 1 + the distance from the turn, (n + i - turn) mod n.
		asm.Mov.Imm(asm.R4, int32(n+i+1)),
		asm.Sub.Reg(asm.R4, asm.R8),
		asm.JLE.Imm(asm.R4, int32(n), l("local")),
		asm.Sub.Imm(asm.R4, int32(n)),
		// The SYN's CPU is this shard's: first among equals.
		asm.LoadMem(asm.R5, asm.RFP, stackCPU, asm.DWord).WithSymbol(l("local")),
		asm.JNE.Imm(asm.R5, int32(cpu), l("near")),
		asm.Mov.Imm(asm.R4, 0),
		asm.Add.Reg(asm.R3, asm.R4).WithSymbol(l("near")),
		asm.JGE.Reg(asm.R3, asm.R9, l("next")),
		asm.Mov.Reg(asm.R9, asm.R3),
		asm.Mov.Imm(asm.R2, int32(i)),
		asm.Mov.Reg(asm.R0, asm.R0).WithSymbol(l("next")), // a landing place: R0 holds nothing yet
	}
}

// attachCPU attaches a classic BPF program that returns the index of the
// listener whose shard runs on the CPU handling the SYN (the group's
// sockets in join order, which is shard order for a group this process
// made alone); a CPU of no shard gets CPU mod n.
func attachCPU(fds []int, cpus []int) error {
	n := len(fds)
	if len(cpus) != n || n > 255 {
		return fmt.Errorf("steer: cpu needs each shard's CPU (%d shards, %d CPUs)", n, len(cpus))
	}
	// SKF_AD_OFF + SKF_AD_CPU (linux/filter.h): the CPU handling the packet.
	const skfADCPU = 0xfffff000 + 36
	f := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: skfADCPU}}
	for i, c := range cpus {
		// if A == cpu: return i
		f = append(f, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: uint32(c), Jt: 0, Jf: 1},
			unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: uint32(i)})
	}
	f = append(f, unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K, K: uint32(n)},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_A})
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(fds[0], unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &prog); err != nil {
		return fmt.Errorf("steer: attach the CPU program to the group: %w", err)
	}
	return nil
}
