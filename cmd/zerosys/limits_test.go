package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rssKB is a process's resident memory.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestManyConnections: with default flags (slots from the descriptor
// limit), 15,000 concurrent keep-alive connections are each answered,
// and held open together.
func TestManyConnections(t *testing.T) {
	const n = 15_000
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2")
	before := rssKB(t, p.cmd.Process.Pid)
	conns := make([]net.Conn, n)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err == nil {
					_ = c.SetDeadline(time.Now().Add(20 * time.Second))
					_, err = fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
				}
				if err == nil {
					var resp *http.Response
					if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if f := failed.Load(); f != 0 {
		t.Fatalf("%d of %d connections failed; the first: %v", f, n, firstErr.Load())
	}
	time.Sleep(50 * time.Millisecond)
	m := p.scrape(t)
	after := rssKB(t, p.cmd.Process.Pid)
	t.Logf("%d keep-alive connections open and answered; zerosys RSS %d MiB before, %d MiB with them (%.1f KiB per connection); evicted %v",
		n, before>>10, after>>10, float64(after-before)/n, m.sum("zerosys_connections_evicted_total"))
	if a := m.sum("zerosys_connections_active"); a != n {
		t.Errorf("%v connections active, want %d", a, n)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	p.stop(t)
}

// TestSlowloris: an attacker holding more connections than a shard has
// slots, each sending its head a byte at a time, does not keep a
// bystander out: every bystander request (one every 100 ms) is answered
// within 100 ms, and the attacker's oldest connections are evicted.
func TestSlowloris(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--max-conns", "200")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var attackers atomic.Int64
	for range 4 {
		wg.Go(func() {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.DialTimeout("tcp", p.addr, time.Second)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
				held = append(held, c)
				attackers.Add(1)
				if len(held) > 150 {
					for _, h := range held {
						_, _ = h.Write([]byte("a")) // a byte now and then, never the end
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond) // the table fills
	var worst time.Duration
	var waits []time.Duration
	for i := range 30 {
		d, _ := bystander(t, p.addr, i)
		worst = max(worst, d)
		waits = append(waits, d)
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	m := p.scrape(t)
	t.Logf("attacker opened %d connections against 200 slots; 30 bystander requests, the slowest answered in %v; evicted: %v waiting for a head, %v idle",
		attackers.Load(), worst.Round(100*time.Microsecond), m.sum("zerosys_connections_evicted_total", `kind="head"`), m.sum("zerosys_connections_evicted_total", `kind="idle"`))
	judgeBystanders(t, waits, 100*time.Millisecond)
	if m.sum("zerosys_connections_evicted_total", `kind="head"`) == 0 {
		t.Error("no attacker connection was evicted")
	}
	p.stop(t)
}

// TestSlowAttacks runs slowhttptest's slow-read (-X: huge answers read a
// few bytes a second through a tiny window) and slow-body (-B: a POST body
// trickled a few bytes a second) attacks against one shard while a
// bystander sends a request every 100 ms. Every bystander request must be
// answered within 100 ms, the attackers must be cut by the send and header
// timeouts (not by the attack's end), and nothing may be left behind: no
// connection, no descriptor.
func TestSlowAttacks(t *testing.T) {
	tool := needTool(t, "slowhttptest")
	taskset := needTool(t, "taskset")
	cpus := needCPUs(t, 2)
	for _, tc := range []struct {
		name   string
		args   []string // slowhttptest's, without -u
		path   string
		reason string        // the close reason the timeouts give
		bound  time.Duration // the slowest bystander answer allowed
	}{
		// 4 pipelined 1 MiB answers, read 32 bytes a second through a
		// 512-1024 byte window: the send stalls.
		// Before send timeouts reset the connection, the cut ones stayed
		// orphans holding their unread answers (1.1 GiB of TCP memory),
		// and bystanders stalled up to 150 ms.
		{"slow-read", []string{"-X", "-k", "4", "-n", "1", "-z", "32", "-w", "512", "-y", "1024"}, "/?size=1048576", "timeout_send", 100 * time.Millisecond},
		// Content-Length 8192, 10 bytes of body a second.
		{"slow-body", []string{"-B", "-i", "1", "-s", "8192", "-x", "10"}, "/", "timeout_header", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The shard on one CPU, the attacker on the other: what is
			// measured is the server under attack, not the scheduler
			// sharing a CPU between it and slowhttptest.
			p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--cpus", strconv.Itoa(cpus[0]), "--send-timeout", "2s", "--header-timeout", "2s")
			pid := p.cmd.Process.Pid
			p.scrape(t) // its keep-alive connection to the metrics server stays open
			fdsBefore := countFDs(t, pid)
			args := append([]string{"-c", "300", "-r", "100", "-l", "7", "-p", "2", "-u", "http://" + p.addr + tc.path}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			attack := exec.CommandContext(ctx, taskset, append([]string{"-c", strconv.Itoa(cpus[1]), tool}, args...)...)
			var out bytes.Buffer
			attack.Stdout, attack.Stderr = &out, &out
			if err := attack.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- attack.Wait() }()
			time.Sleep(time.Second) // the attack ramps up

			var worst, worstDial time.Duration
			var waits []time.Duration
			worstAt := 0
			peak := 0.0
		bystander:
			for i := 0; ; i++ {
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("slowhttptest: %v\n%s", err, out.String())
					}
					break bystander
				default:
				}
				d, dial := bystander(t, p.addr, i)
				if d > worst {
					worst, worstDial, worstAt = d, dial, i
				}
				waits = append(waits, d)
				if i%10 == 0 {
					peak = max(peak, p.scrape(t).sum("zerosys_connections_active"))
				}
				time.Sleep(100 * time.Millisecond)
			}
			m := p.scrape(t)
			cut := m.sum("zerosys_connections_closed_total", `reason="`+tc.reason+`"`)
			// After the attack every connection is gone, and so is every
			// descriptor it used.
			deadline := time.Now().Add(5 * time.Second)
			for m.sum("zerosys_connections_active") != 0 || countFDs(t, pid) > fdsBefore {
				if time.Now().After(deadline) {
					t.Fatalf("after the attack: %v connections active, %d descriptors (%d before)",
						m.sum("zerosys_connections_active"), countFDs(t, pid), fdsBefore)
				}
				time.Sleep(50 * time.Millisecond)
				m = p.scrape(t)
			}
			answered := len(waits)
			t.Logf("%s: up to %v connections open; %v cut by %s during the attack; %d bystander requests, the slowest answered in %v (%v of it connecting; request %d); afterwards 0 connections, %d descriptors as before",
				tc.name, peak, cut, tc.reason, answered, worst.Round(100*time.Microsecond), worstDial.Round(100*time.Microsecond), worstAt, fdsBefore)
			judgeBystanders(t, waits, tc.bound)
			if answered < 30 {
				t.Errorf("only %d bystander requests during the attack", answered)
			}
			if cut < 100 {
				t.Errorf("%v attacker connections cut by %s, want at least 100 of 300\n%s", cut, tc.reason, out.String())
			}
			p.stop(t)
		})
	}
}

// judgeBystanders fails the test when more than one bystander request in
// ten waited over bound, or any over four times bound. On a 2-CPU VM a
// few may meet a neighbour's steal or the moment the kernel frees a
// hundred reset sockets' queues; a starved bystander (the attacks before
// their fixes kept most over the bound) fails either check.
func judgeBystanders(t *testing.T, waits []time.Duration, bound time.Duration) {
	t.Helper()
	sorted := slices.Sorted(slices.Values(waits))
	over := len(sorted) - sort.Search(len(sorted), func(i int) bool { return sorted[i] > bound })
	worst := sorted[len(sorted)-1]
	t.Logf("bystanders: median %v, slowest %v, %d of %d over %v", sorted[len(sorted)/2].Round(100*time.Microsecond), worst.Round(100*time.Microsecond), over, len(sorted), bound)
	if over > len(sorted)/10 || worst > 4*bound {
		t.Errorf("%d of %d bystander requests waited over %v, the slowest %v; want at most one in ten, none over %v", over, len(sorted), bound, worst, 4*bound)
	}
}

// bystander sends request i of a bystander on a connection of its own and
// waits for its 200; it returns how long that took, and how much of it
// the connect.
func bystander(t *testing.T, addr string, i int) (total, dial time.Duration) {
	t.Helper()
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("bystander %d: %v", i, err)
	}
	dial = time.Since(t0)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	total = time.Since(t0)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bystander %d: %v %v after %v", i, resp, err, total)
	}
	return total, dial
}

// countFDs is the number of descriptors process pid has open.
func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
