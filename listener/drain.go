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

// Quiesce makes socket i take no new connection: a classic BPF filter that
// drops every packet is attached to it. The kernel runs a listener's filter
// on incoming SYNs and on the ACKs that would complete a handshake, so no
// connection joins the accept queue afterwards; clients whose SYN is
// dropped retry it (after ~1 s) and then reach another listener of the
// group, or are refused once this one is closed. Connections already queued
// are unaffected and can still be accepted.
func (g *Group) Quiesce(i int) error {
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
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
