package listener

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Closing a listening socket resets every connection waiting in its accept
// queue (unless net.ipv4.tcp_migrate_req moves them to another socket of
// the group). To stop without losing any, a server first makes the socket
// take no new connection (Quiesce), then accepts until Pending reports an
// empty queue, then stops accepting and closes.

// Quiesce makes socket i start no new connection: a classic BPF filter
// that drops pure SYNs (SYN set, ACK clear) is attached to it. The kernel
// runs a listener's filter on every segment for it with the TCP header at
// offset 0, so new handshakes never start, while handshakes already under
// way complete (their ACK passes) and join the accept queue, where Pending
// counts them. A client whose SYN is dropped retries it after about a
// second, and is refused once the socket is closed (or, in a zero-downtime
// upgrade, may reach the new process if the group has changed). A child
// socket that inherits the filter is unaffected: it never sees a pure SYN.
func (g *Group) Quiesce(i int) error {
	const flagsOffset, synAck, syn = 13, 0x12, 0x02
	drop := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: flagsOffset},
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: synAck},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: syn, Jt: 1, Jf: 0},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff}, // keep the segment
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},          // drop the SYN
	}
	prog := unix.SockFprog{Len: uint16(len(drop)), Filter: &drop[0]}
	if err := unix.SetsockoptSockFprog(g.FDs[i], unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("listener: cannot quiesce socket %d: %w", g.FDs[i], os.NewSyscallError("setsockopt(SO_ATTACH_FILTER)", err))
	}
	return nil
}

// Pending returns how many established connections wait in socket i's
// accept queue. For a listening socket the kernel reports the queue length
// in tcpi_unacked.
func (g *Group) Pending(i int) (int, error) {
	info, err := unix.GetsockoptTCPInfo(g.FDs[i], unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, fmt.Errorf("listener: cannot read the accept queue of socket %d: %w", g.FDs[i], os.NewSyscallError("getsockopt(TCP_INFO)", err))
	}
	return int(info.Unacked), nil
}
