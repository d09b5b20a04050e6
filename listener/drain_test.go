package listener

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestQuiesceAndPending(t *testing.T) {
	g, err := Listen(Config{Addr: "127.0.0.1:0"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	addr := g.Addr.String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if n, err := g.Pending(0); err != nil || n != 3 {
		t.Fatalf("Pending = %d, %v; want 3 queued connections", n, err)
	}
	if err := g.Quiesce(0); err != nil {
		t.Fatal(err)
	}
	// A connection attempt now gets no handshake: its SYN is dropped.
	if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a quiesced listener completed a new handshake")
	}
	// The queued ones are still there and can be accepted.
	for want := 2; want >= 0; want-- {
		fd, _, err := unix.Accept4(g.FDs[0], unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if n, err := g.Pending(0); err != nil || n != want {
			t.Fatalf("after an accept, Pending = %d, %v; want %d", n, err, want)
		}
	}
}
