// Package listener opens the listening sockets of a sharded server: one
// SO_REUSEPORT socket per shard, all bound to the same address, so the kernel
// spreads incoming connections across shards without a shared accept queue.
//
// The sockets are left blocking: they are only accepted from through
// io_uring, which never blocks the submitting thread on them (it tries a
// non-blocking accept and otherwise waits on its own poll), so O_NONBLOCK
// would add nothing.
//
// Invariant: every error path closes every descriptor it opened, so a failed
// Listen or Probe leaves the process's descriptor table as it found it.
package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrAddrInUse reports that another socket holds the address in a way that
// rules out sharing it.
var ErrAddrInUse = errors.New("listener: address already in use")

// ErrForeignReusePort reports that another process already listens on the
// address with SO_REUSEPORT. Joining it would silently hand that process a
// share of the connections, so it is refused unless Config.AllowShared is set.
var ErrForeignReusePort = errors.New("listener: another process is already listening on this address with SO_REUSEPORT")

// defaultBacklog is deliberately large: bursts of connections should wait in
// the kernel, not be refused; the kernel caps it at net.core.somaxconn anyway.
const defaultBacklog = 4096

// Config describes where to listen.
type Config struct {
	// Addr is "host:port". An empty host (":8080") listens dual-stack on [::]
	// with IPV6_V6ONLY off, falling back to 0.0.0.0 when the kernel has no
	// IPv6. "0.0.0.0:80" is IPv4 only, an IPv6 literal such as "[::1]:80" or
	// "[::]:80" is IPv6 only, and "localhost" means 127.0.0.1. Other host
	// names are refused because resolving them could pick either family. Port
	// 0 lets the kernel pick one port, which all sockets of the group share.
	Addr string
	// Backlog is the listen backlog; 0 means 4096. The kernel caps it at
	// net.core.somaxconn.
	Backlog int
	// AllowShared joins a port another process already listens on with
	// SO_REUSEPORT, as a zero-downtime upgrade does deliberately; false
	// refuses with ErrForeignReusePort.
	AllowShared bool
}

// Group is the set of listening sockets, one per shard. It is not safe for
// concurrent use.
type Group struct {
	FDs    []int          // listening sockets, one per shard
	Addr   netip.AddrPort // bound address, including the port the kernel picked for port 0
	Family int            // unix.AF_INET or unix.AF_INET6
}

// Listen opens n listening sockets on c.Addr. Unless c.AllowShared is set or
// the port is 0, it first checks, as Probe does, that no other process
// listens there with SO_REUSEPORT.
func Listen(c Config, n int) (*Group, error) {
	if n < 1 {
		return nil, fmt.Errorf("listener: need at least one socket, asked for %d", n)
	}
	backlog := c.Backlog
	switch {
	case backlog == 0:
		backlog = defaultBacklog
	case backlog < 0:
		return nil, fmt.Errorf("listener: backlog %d is negative; use 0 for the default of %d", backlog, defaultBacklog)
	}
	t, err := parseAddr(c.Addr)
	if err != nil {
		return nil, err
	}
	if t.port != 0 {
		if err := t.probe(c.AllowShared); err != nil {
			return nil, err
		}
	}

	g := &Group{FDs: make([]int, 0, n)}
	for range n {
		fd, err := t.open(true)
		if err != nil {
			g.Close()
			return nil, err
		}
		g.FDs = append(g.FDs, fd)
		if err := unix.Listen(fd, backlog); err != nil {
			g.Close()
			return nil, t.bindError("listen", err)
		}
		if t.port == 0 {
			// The first socket learns the port; the others must join it
			// instead of each getting a port of its own.
			port, err := boundPort(fd)
			if err != nil {
				g.Close()
				return nil, fmt.Errorf("listener: cannot read the port picked for %s: %w", t, err)
			}
			t.port = port
		}
	}
	g.Addr = netip.AddrPortFrom(t.addr, t.port)
	g.Family = t.family
	return g, nil
}

// Close closes all sockets. Calling it again does nothing. Accepts already
// queued in an io_uring keep their own reference to the socket, so cancel
// them first.
func (g *Group) Close() error {
	if g == nil {
		return nil
	}
	var errs []error
	for _, fd := range g.FDs {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("listener: cannot close socket %d: %w", fd, os.NewSyscallError("close", err)))
		}
	}
	g.FDs = nil
	return errors.Join(errs...)
}

// Probe is the start-up check alone: it reports whether c.Addr is free (nil),
// held by a socket that cannot be shared (ErrAddrInUse), or held by another
// process with SO_REUSEPORT (ErrForeignReusePort, or nil with
// c.AllowShared). It leaves nothing open. Port 0 is always free.
func Probe(c Config) error {
	t, err := parseAddr(c.Addr)
	if err != nil {
		return err
	}
	if t.port == 0 {
		return nil
	}
	return t.probe(c.AllowShared)
}

// target is a parsed, bindable address.
type target struct {
	family    int
	addr      netip.Addr
	port      uint16
	v6only    bool
	dualStack bool   // from an empty host: may fall back to IPv4
	zoneID    uint32 // interface index for link-local IPv6
}

func (t *target) String() string {
	return netip.AddrPortFrom(t.addr, t.port).String()
}

func parseAddr(s string) (*target, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return nil, fmt.Errorf("listener: bad address %q: want host:port, e.g. \":8080\" or \"127.0.0.1:8080\": %w", s, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("listener: bad address %q: port %q must be a number from 0 to 65535", s, portText)
	}
	t := &target{port: uint16(port)}
	switch host {
	case "":
		t.family, t.addr, t.dualStack = unix.AF_INET6, netip.IPv6Unspecified(), true
		return t, nil
	case "localhost":
		// Fixed rather than resolved: /etc/hosts may list ::1 first, and
		// the address must not depend on it.
		t.family, t.addr = unix.AF_INET, netip.AddrFrom4([4]byte{127, 0, 0, 1})
		return t, nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("listener: bad address %q: host %q must be an IP address, \"localhost\" or empty for all interfaces", s, host)
	}
	addr = addr.Unmap()
	t.addr = addr
	if addr.Is4() {
		t.family = unix.AF_INET
		return t, nil
	}
	// An explicit IPv6 address means IPv6 only, as nginx does for [::]: the
	// empty host is the way to ask for both families.
	t.family, t.v6only = unix.AF_INET6, true
	if zone := addr.Zone(); zone != "" {
		if id, err := strconv.ParseUint(zone, 10, 32); err == nil {
			t.zoneID = uint32(id)
		} else if ifi, err := net.InterfaceByName(zone); err == nil {
			t.zoneID = uint32(ifi.Index)
		} else {
			return nil, fmt.Errorf("listener: bad address %q: unknown interface %q: %w", s, zone, err)
		}
	}
	return t, nil
}

func (t *target) sockaddr() unix.Sockaddr {
	if t.family == unix.AF_INET {
		return &unix.SockaddrInet4{Port: int(t.port), Addr: t.addr.As4()}
	}
	return &unix.SockaddrInet6{Port: int(t.port), Addr: t.addr.As16(), ZoneId: t.zoneID}
}

// socket creates a socket of t's family. For the dual-stack default it
// switches t to IPv4 once the kernel says IPv6 is missing, so the rest of the
// group follows.
func (t *target) socket() (int, error) {
	fd, err := unix.Socket(t.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) && t.dualStack {
		t.family, t.addr, t.dualStack = unix.AF_INET, netip.IPv4Unspecified(), false
		fd, err = unix.Socket(t.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fmt.Errorf("listener: cannot create a socket for %s: %w", t, os.NewSyscallError("socket", err))
	}
	return fd, nil
}

// open creates a socket and binds it to t. With reusePort it is set up as a
// group member; without, it is the probe that only a free address accepts.
// SO_REUSEADDR is set either way so that connections in TIME_WAIT from an
// earlier run do not count as "in use".
func (t *target) open(reusePort bool) (_ int, err error) {
	fd, err := t.socket()
	if err != nil {
		return -1, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if t.family == unix.AF_INET6 {
		if err := t.setOpt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, "IPV6_V6ONLY", boolInt(t.v6only)); err != nil {
			return -1, err
		}
	}
	if err := t.setOpt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR", 1); err != nil {
		return -1, err
	}
	if reusePort {
		if err := t.setOpt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, "SO_REUSEPORT", 1); err != nil {
			return -1, err
		}
		// Linux copies TCP_NODELAY to accepted sockets, which saves a
		// setsockopt per connection on the hot path.
		if err := t.setOpt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY", 1); err != nil {
			return -1, err
		}
	}
	if err := unix.Bind(fd, t.sockaddr()); err != nil {
		return -1, t.bindError("bind", err)
	}
	return fd, nil
}

func (t *target) setOpt(fd, level, opt int, name string, value int) error {
	if err := unix.SetsockoptInt(fd, level, opt, value); err != nil {
		verb := "enable"
		if value == 0 {
			verb = "disable"
		}
		return fmt.Errorf("listener: cannot %s %s on %s: %w", verb, name, t, os.NewSyscallError("setsockopt", err))
	}
	return nil
}

// bindError words a bind or listen failure with the most likely fix.
func (t *target) bindError(call string, errno error) error {
	err := os.NewSyscallError(call, errno)
	switch {
	case errors.Is(errno, unix.EADDRINUSE):
		return fmt.Errorf("%w: cannot %s %s: %w; is another server running on port %d? find it with `ss -ltnp 'sport = :%d'`",
			ErrAddrInUse, call, t, err, t.port, t.port)
	case errors.Is(errno, unix.EACCES) && t.port != 0 && t.port < 1024:
		return fmt.Errorf("listener: cannot %s %s: %w; ports below 1024 need root or CAP_NET_BIND_SERVICE (e.g. `setcap cap_net_bind_service=+ep` on the binary), or a lower net.ipv4.ip_unprivileged_port_start",
			call, t, err)
	case errors.Is(errno, unix.EADDRNOTAVAIL):
		return fmt.Errorf("listener: cannot %s %s: %w; is %s an address of this machine? use an empty host to listen on all interfaces",
			call, t, err, t.addr)
	}
	return fmt.Errorf("listener: cannot %s %s: %w", call, t, err)
}

// probe tells a free address from one held by a plain socket or by another
// SO_REUSEPORT group. A bind without SO_REUSEPORT succeeds only if nobody
// listens there; if it fails, a bind with SO_REUSEPORT succeeds only if every
// listener there has SO_REUSEPORT under our effective UID, which is exactly
// the case where Listen would silently share the port.
func (t *target) probe(allowShared bool) error {
	fd, err := t.open(false)
	if err == nil {
		return closeProbe(fd, t)
	}
	if !errors.Is(err, ErrAddrInUse) {
		return err
	}
	fd, err2 := t.open(true)
	if err2 != nil {
		if errors.Is(err2, ErrAddrInUse) {
			return err
		}
		return err2
	}
	if err := closeProbe(fd, t); err != nil {
		return err
	}
	if allowShared {
		return nil
	}
	return fmt.Errorf("%w: %s would silently share connections with it (the kernel lets sockets of the same effective UID share a port); find it with `ss -ltnp 'sport = :%d'` and stop it, or pass --allow-shared-port if sharing is deliberate, as in a zero-downtime upgrade",
		ErrForeignReusePort, t, t.port)
}

func closeProbe(fd int, t *target) error {
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("listener: cannot close the probe socket for %s: %w", t, os.NewSyscallError("close", err))
	}
	return nil
}

func boundPort(fd int) (uint16, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, os.NewSyscallError("getsockname", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return uint16(sa.Port), nil
	case *unix.SockaddrInet6:
		return uint16(sa.Port), nil
	}
	return 0, fmt.Errorf("unexpected socket address type %T", sa)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
