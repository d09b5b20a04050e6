package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// openKeepAlive opens n keep-alive connections one after another, each
// answered once, as a load balancer's upstream pool fills.
func openKeepAlive(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs = append(cs, c)
	}
	return cs
}

// perShard is zerosys_connections_active of shards 0 and 1.
func perShard(t *testing.T, p *proc) [2]float64 {
	t.Helper()
	time.Sleep(20 * time.Millisecond) // counters are published every millisecond
	m := p.scrape(t)
	return [2]float64{m.sum("zerosys_connections_active", `shard="0"`), m.sum("zerosys_connections_active", `shard="1"`)}
}

// TestSteerByLoad: with 2 shards, N keep-alive connections opened one
// after another are spread within 1 of even (N = 2: one each), in every
// run; --steer hash shows the kernel's spread for comparison.
func TestSteerByLoad(t *testing.T) {
	needRoot(t)
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2")
	if !strings.Contains(p.log(), "steer=load") {
		t.Fatalf("not steering by load:\n%s", p.log())
	}
	for _, n := range []int{2, 4, 8, 64} {
		for run := range 3 {
			cs := openKeepAlive(t, p.addr, n)
			got := perShard(t, p)
			if d := got[0] - got[1]; d > 1 || d < -1 || got[0]+got[1] != float64(n) {
				t.Errorf("N=%d run %d: connections per shard %v, want within 1 of %d each", n, run, got, n/2)
			}
			for _, c := range cs {
				c.Close()
			}
			for i := 0; i < 100 && perShard(t, p) != [2]float64{}; i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	p.stop(t)

	p = startZerosys(t, "--sqpoll", "off", "--shards", "2", "--steer", "hash")
	var spreads []string
	for _, n := range []int{2, 4, 8, 64} {
		cs := openKeepAlive(t, p.addr, n)
		got := perShard(t, p)
		spreads = append(spreads, fmt.Sprintf("N=%d: %v/%v", n, got[0], got[1]))
		for _, c := range cs {
			c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("--steer hash, for comparison: %s", strings.Join(spreads, ", "))
	p.stop(t)
}

// TestSteerWithoutBPF: without CAP_BPF and CAP_SYS_ADMIN, zerosys starts
// with the kernel's hash and one line saying why, and serves.
func TestSteerWithoutBPF(t *testing.T) {
	needRoot(t)
	setpriv := needTool(t, "setpriv")
	p := startCommand(t, exec.Command(setpriv, "--bounding-set=-bpf,-sys_admin", binary,
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--sqpoll", "off", "--shards", "2"))
	if !strings.Contains(p.log(), `msg="steering: falling back to the kernel's hash of the 4-tuple" steer=load reason="BPF is not permitted`) ||
		!strings.Contains(p.log(), "steer=hash") {
		t.Errorf("no fallback line, or not serving with hash:\n%s", p.log())
	}
	for _, c := range openKeepAlive(t, p.addr, 4) {
		c.Close()
	}
	p.stop(t)
}
