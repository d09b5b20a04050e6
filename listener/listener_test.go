package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// acceptN accepts until want connections have arrived on fds in total,
// polling so that a socket without pending connections never blocks the test.
// It returns how many each fd accepted.
func acceptN(t *testing.T, fds []int, want int) []int {
	t.Helper()
	counts := make([]int, len(fds))
	pfds := make([]unix.PollFd, len(fds))
	deadline := time.Now().Add(5 * time.Second)
	total := 0
	for total < want {
		if time.Now().After(deadline) {
			t.Fatalf("accepted %d of %d connections before the deadline (per socket %v)", total, want, counts)
		}
		for i, fd := range fds {
			pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		}
		if _, err := unix.Poll(pfds, 100); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatalf("poll: %v", err)
		}
		for i, p := range pfds {
			if p.Revents&unix.POLLIN == 0 {
				continue
			}
			nfd, _, err := unix.Accept4(fds[i], unix.SOCK_CLOEXEC)
			if err != nil {
				t.Fatalf("accept on socket %d: %v", i, err)
			}
			if v, err := unix.GetsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v == 0 {
				t.Errorf("accepted socket did not inherit TCP_NODELAY: %d, %v", v, err)
			}
			unix.Close(nfd)
			counts[i]++
			total++
		}
	}
	return counts
}

func dial(t *testing.T, network, addr string, n int) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout(network, addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
	}
}

func mustListen(t *testing.T, c Config, n int) *Group {
	t.Helper()
	g, err := Listen(c, n)
	if err != nil {
		t.Fatalf("Listen(%+v, %d): %v", c, n, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestListenSpreadsConnections(t *testing.T) {
	g := mustListen(t, Config{Addr: "127.0.0.1:0"}, 3)
	if len(g.FDs) != 3 {
		t.Fatalf("%d fds, want 3", len(g.FDs))
	}
	if g.Family != unix.AF_INET || g.Addr.Addr() != netip.MustParseAddr("127.0.0.1") || g.Addr.Port() == 0 {
		t.Fatalf("group address %v family %d", g.Addr, g.Family)
	}
	for i, fd := range g.FDs {
		port, err := boundPort(fd)
		if err != nil || port != g.Addr.Port() {
			t.Errorf("socket %d bound to port %d (%v), group port %d", i, port, err, g.Addr.Port())
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT); err != nil || v != 1 {
			t.Errorf("socket %d: SO_REUSEPORT = %d, %v", i, v, err)
		}
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			t.Errorf("socket %d is not listening: %d, %v", i, v, err)
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil || flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("socket %d lacks FD_CLOEXEC: %#x, %v", i, flags, err)
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || fl&unix.O_NONBLOCK != 0 {
			t.Errorf("socket %d is non-blocking: %#x, %v", i, fl, err)
		}
	}

	// SO_REUSEPORT hashes each connection's 4-tuple onto one socket; with 60
	// connections the chance that one of 3 sockets gets none is ~1e-10.
	const conns = 60
	dial(t, "tcp4", g.Addr.String(), conns)
	counts := acceptN(t, g.FDs, conns)
	for i, c := range counts {
		if c == 0 {
			t.Errorf("socket %d accepted no connections (per socket %v)", i, counts)
		}
	}
	t.Logf("connections per socket: %v", counts)
}

func TestListenIPv6Loopback(t *testing.T) {
	g, err := Listen(Config{Addr: "[::1]:0"}, 2)
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if g.Family != unix.AF_INET6 || g.Addr.Addr() != netip.IPv6Loopback() || g.Addr.Port() == 0 {
		t.Fatalf("group address %v family %d", g.Addr, g.Family)
	}
	for _, fd := range g.FDs {
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err != nil || v != 1 {
			t.Errorf("IPV6_V6ONLY = %d, %v; an explicit IPv6 address should be IPv6 only", v, err)
		}
	}
	dial(t, "tcp6", g.Addr.String(), 4)
	acceptN(t, g.FDs, 4)
}

func TestListenDualStack(t *testing.T) {
	g := mustListen(t, Config{Addr: ":0"}, 2)
	port := strconv.Itoa(int(g.Addr.Port()))
	switch g.Family {
	case unix.AF_INET6:
		if g.Addr.Addr() != netip.IPv6Unspecified() {
			t.Fatalf("dual-stack group bound to %v", g.Addr)
		}
		for _, fd := range g.FDs {
			if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err != nil || v != 0 {
				t.Errorf("IPV6_V6ONLY = %d, %v; want 0 for dual-stack", v, err)
			}
		}
	case unix.AF_INET:
		t.Logf("no IPv6 here; fell back to %v", g.Addr)
	default:
		t.Fatalf("family %d", g.Family)
	}
	dial(t, "tcp4", "127.0.0.1:"+port, 3)
	acceptN(t, g.FDs, 3)
}

// holder occupies an address the way another process might.
type holder func(t *testing.T) (port int)

func goHolder(network, addr string) holder {
	return func(t *testing.T) int {
		l, err := net.Listen(network, addr) // SO_REUSEADDR, no SO_REUSEPORT
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().(*net.TCPAddr).Port
	}
}

func rawHolder(reuseAddr, reusePort bool) holder {
	return func(t *testing.T) int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if reuseAddr {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				t.Fatal(err)
			}
		}
		if reusePort {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(fd, 16); err != nil {
			t.Fatal(err)
		}
		port, err := boundPort(fd)
		if err != nil {
			t.Fatal(err)
		}
		return int(port)
	}
}

func TestHeldPort(t *testing.T) {
	cases := []struct {
		name        string
		hold        holder
		host        string // host part of the address we ask for
		allowShared bool
		want        error // nil: Listen must succeed
	}{
		{"go listener", goHolder("tcp4", "127.0.0.1:0"), "127.0.0.1", false, ErrAddrInUse},
		{"go listener, allow shared", goHolder("tcp4", "127.0.0.1:0"), "127.0.0.1", true, ErrAddrInUse},
		{"go wildcard listener, we ask loopback", goHolder("tcp4", "0.0.0.0:0"), "127.0.0.1", false, ErrAddrInUse},
		{"go loopback listener, we ask dual-stack", goHolder("tcp4", "127.0.0.1:0"), "", false, ErrAddrInUse},
		{"plain socket", rawHolder(false, false), "127.0.0.1", false, ErrAddrInUse},
		{"reuseaddr socket", rawHolder(true, false), "127.0.0.1", false, ErrAddrInUse},
		{"reuseport socket", rawHolder(false, true), "127.0.0.1", false, ErrForeignReusePort},
		{"reuseport+reuseaddr socket", rawHolder(true, true), "127.0.0.1", false, ErrForeignReusePort},
		{"reuseport socket, we ask dual-stack", rawHolder(true, true), "", false, ErrForeignReusePort},
		{"reuseport socket, allow shared", rawHolder(true, true), "127.0.0.1", true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := tc.hold(t)
			c := Config{Addr: net.JoinHostPort(tc.host, strconv.Itoa(port)), AllowShared: tc.allowShared}

			err := Probe(c)
			if tc.want == nil && err != nil {
				t.Errorf("Probe: %v", err)
			}
			// With AllowShared, Probe only reports what Listen's bind would.
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Probe = %v, want %v", err, tc.want)
			}

			g, err := Listen(c, 2)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				g.Close()
				return
			}
			if err == nil {
				g.Close()
				t.Fatalf("Listen succeeded, want %v", tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Listen = %v, want %v", err, tc.want)
			}
			msg := err.Error()
			if hint := fmt.Sprintf("ss -ltnp 'sport = :%d'", port); !strings.Contains(msg, hint) {
				t.Errorf("error %q lacks the hint %q", msg, hint)
			}
			if tc.want == ErrForeignReusePort && !strings.Contains(msg, "--allow-shared-port") {
				t.Errorf("error %q does not name the opt-in", msg)
			}
			if tc.want == ErrAddrInUse && !errors.Is(err, unix.EADDRINUSE) {
				t.Errorf("error %q does not wrap EADDRINUSE", msg)
			}
		})
	}
}

// TestTimeWaitIsFree checks that connections left in TIME_WAIT by a previous
// run do not make the address look taken.
func TestTimeWaitIsFree(t *testing.T) {
	g, err := Listen(Config{Addr: "127.0.0.1:0"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	addr := g.Addr
	client, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	nfd, _, err := unix.Accept(g.FDs[0])
	if err != nil {
		t.Fatal(err)
	}
	// The server closing first is what leaves TIME_WAIT on the server port.
	unix.Close(nfd)
	client.Close()
	g.Close()

	// Without SO_REUSEADDR the TIME_WAIT socket blocks a bind; wait for it.
	deadline := time.Now().Add(3 * time.Second)
	for {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TIME_WAIT on %v (plain bind: %v); the test cannot check anything", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	c := Config{Addr: addr.String()}
	if err := Probe(c); err != nil {
		t.Fatalf("Probe with only TIME_WAIT left: %v", err)
	}
	g2 := mustListen(t, c, 2)
	if g2.Addr != addr {
		t.Fatalf("relistened on %v, want %v", g2.Addr, addr)
	}
}

func TestBadConfig(t *testing.T) {
	cases := []struct {
		addr string
		n    int
		cfg  Config
		want string
	}{
		{addr: "nope", want: `listener: bad address "nope": want host:port`},
		{addr: "", want: `listener: bad address "": want host:port`},
		{addr: "1.2.3.4.5:80", want: `host "1.2.3.4.5" must be an IP address`},
		{addr: "example.com:80", want: `host "example.com" must be an IP address`},
		{addr: ":99999", want: `port "99999" must be a number from 0 to 65535`},
		{addr: ":-1", want: `port "-1" must be a number`},
		{addr: "127.0.0.1:http", want: `port "http" must be a number`},
		{addr: "127.0.0.1:", want: `port "" must be a number`},
		{addr: "[fe80::1%no-such-if0]:80", want: `unknown interface "no-such-if0"`},
		{addr: "192.0.2.1:0", want: "is 192.0.2.1 an address of this machine?"},
		{addr: "127.0.0.1:0", n: -1, want: "need at least one socket"},
		{addr: "127.0.0.1:0", cfg: Config{Backlog: -5}, want: "backlog -5 is negative"},
	}
	for _, tc := range cases {
		c := tc.cfg
		c.Addr = tc.addr
		n := tc.n
		if n == 0 {
			n = 2
		}
		g, err := Listen(c, n)
		if err == nil {
			g.Close()
			t.Errorf("Listen(%q, %d) succeeded", tc.addr, n)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "listener: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("Listen(%q, %d) = %q, want %q in it", tc.addr, n, msg, tc.want)
		}
	}
	if err := Probe(Config{Addr: ":99999"}); err == nil {
		t.Error("Probe accepted :99999")
	}
}

func TestParseAddr(t *testing.T) {
	cases := []struct {
		in     string
		family int
		addr   string
		v6only bool
		dual   bool
	}{
		{":8080", unix.AF_INET6, "[::]:8080", false, true},
		{"0.0.0.0:80", unix.AF_INET, "0.0.0.0:80", false, false},
		{"[::1]:80", unix.AF_INET6, "[::1]:80", true, false},
		{"[::]:80", unix.AF_INET6, "[::]:80", true, false},
		{"localhost:80", unix.AF_INET, "127.0.0.1:80", false, false},
		{"[::ffff:10.0.0.1]:80", unix.AF_INET, "10.0.0.1:80", false, false},
		{"[fe80::1%1]:80", unix.AF_INET6, "[fe80::1%1]:80", true, false},
	}
	for _, tc := range cases {
		tg, err := parseAddr(tc.in)
		if err != nil {
			t.Errorf("parseAddr(%q): %v", tc.in, err)
			continue
		}
		if tg.family != tc.family || tg.String() != tc.addr || tg.v6only != tc.v6only || tg.dualStack != tc.dual {
			t.Errorf("parseAddr(%q) = %+v (%s)", tc.in, *tg, tg)
		}
	}
}

func TestBindErrorHints(t *testing.T) {
	tg, err := parseAddr("0.0.0.0:80")
	if err != nil {
		t.Fatal(err)
	}
	err = tg.bindError("bind", unix.EACCES)
	if !errors.Is(err, unix.EACCES) || !strings.Contains(err.Error(), "CAP_NET_BIND_SERVICE") {
		t.Errorf("EACCES on port 80: %v", err)
	}
	err = tg.bindError("bind", unix.EADDRINUSE)
	if !errors.Is(err, ErrAddrInUse) || !strings.Contains(err.Error(), "ss -ltnp 'sport = :80'") {
		t.Errorf("EADDRINUSE on port 80: %v", err)
	}
	var sysErr *os.SyscallError
	if !errors.As(err, &sysErr) || sysErr.Syscall != "bind" {
		t.Errorf("EADDRINUSE not wrapped in an os.SyscallError: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	g, err := Listen(Config{Addr: "127.0.0.1:0"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil || g.FDs != nil {
		t.Fatalf("second Close: %v, fds %v", err, g.FDs)
	}
	var nilGroup *Group
	if err := nilGroup.Close(); err != nil {
		t.Fatal(err)
	}
}

func openFDs(t *testing.T) (count, highest int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > highest {
			highest = fd
		}
	}
	return len(entries), highest
}

// TestNoFDLeak checks the package invariant: every error path closes what it
// opened, and Close closes everything.
func TestNoFDLeak(t *testing.T) {
	// Let the runtime open its poller descriptors before counting.
	if l, err := net.Listen("tcp4", "127.0.0.1:0"); err == nil {
		l.Close()
	}
	before, _ := openFDs(t)
	check := func(step string) {
		t.Helper()
		if now, _ := openFDs(t); now != before {
			t.Errorf("after %s: %d descriptors open, %d before", step, now, before)
		}
	}

	held := goHolder("tcp4", "127.0.0.1:0")(t)
	before, _ = openFDs(t)
	heldAddr := "127.0.0.1:" + strconv.Itoa(held)
	if _, err := Listen(Config{Addr: "nope"}, 3); err == nil {
		t.Fatal("Listen on a bad address succeeded")
	}
	check("a bad address")
	if _, err := Listen(Config{Addr: heldAddr}, 3); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("Listen on a held port: %v", err)
	}
	check("a refused probe")
	if _, err := Listen(Config{Addr: heldAddr, AllowShared: true}, 3); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("Listen on a held port, allow shared: %v", err)
	}
	check("a failed bind")
	if _, err := Listen(Config{Addr: "192.0.2.1:0"}, 3); err == nil {
		t.Fatal("Listen on a foreign address succeeded")
	}
	check("an unavailable address")

	// Run out of descriptors in the middle of the group, after some sockets
	// are already listening.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	count, highest := openFDs(t)
	tight := lim
	tight.Cur = uint64(highest + 3)
	free := int(tight.Cur) - (count - 1) // ReadDir's own descriptor is closed again
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &tight); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(Config{Addr: "127.0.0.1:0"}, free+5)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, unix.EMFILE) {
		t.Fatalf("Listen past RLIMIT_NOFILE: %v, want EMFILE", err)
	}
	if strings.Contains(err.Error(), "127.0.0.1:0:") {
		t.Fatalf("the first socket already failed (%v); the test needs a failure mid-group", err)
	}
	check("running out of descriptors mid-group")

	g, err := Listen(Config{Addr: "127.0.0.1:0"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := openFDs(t); now != before+4 {
		t.Errorf("%d descriptors open with a group of 4, want %d", now, before+4)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	check("Close")
}
