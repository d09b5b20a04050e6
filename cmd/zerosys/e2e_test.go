package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCurl(t *testing.T) {
	curl := needTool(t, "curl")
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-si"}, []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/plain\r\n", "Content-Length: 16\r\n", "\r\n\r\nHave a nice day!"}},
		{[]string{"-si", "--http1.0"}, []string{"HTTP/1.1 200 OK\r\n", "Connection: close\r\n", "Have a nice day!"}},
		{[]string{"-sI"}, []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 16\r\n"}},
		{[]string{"-si", "-X", "OPTIONS", "--request-target", "*"}, []string{"HTTP/1.1 200 OK\r\n"}},
		{[]string{"-si", "-d", "hello", "-H", "Transfer-Encoding: chunked"}, []string{"HTTP/1.1 200 OK\r\n", "Have a nice day!"}},
		{[]string{"-si", "-d", "@-", "-H", "Expect: 100-continue"}, []string{"HTTP/1.1 100 Continue\r\n", "HTTP/1.1 200 OK\r\n"}},
	} {
		cmd := exec.Command(curl, append(c.args, "--max-time", "5", p.url("/"))...)
		cmd.Stdin = strings.NewReader(strings.Repeat("x", 2000))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("curl %v: output %q lacks %q", c.args, out, w)
			}
		}
		if c.args[0] == "-sI" && bytes.Contains(out, []byte("Have a nice day!")) {
			t.Errorf("HEAD answer has a body: %q", out)
		}
	}
	p.stop(t)
}

// straceCount attaches strace to every thread of pid for as long as f
// runs and returns how many syscalls they made.
func straceCount(t *testing.T, pid int, f func()) (int, string) {
	t.Helper()
	out := t.TempDir() + "/strace"
	cmd := exec.Command("strace", "-f", "-c", "-o", out, "-p", strconv.Itoa(pid))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // attached to every thread
	f()
	_ = cmd.Process.Signal(syscall.SIGINT) // detach and write the summary
	// strace re-raises the SIGINT that detached it: that is its normal end.
	var exit *exec.ExitError
	if err := cmd.Wait(); err != nil && !(errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		t.Fatalf("strace: %v", err)
	}
	summary, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(summary), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[len(f)-1] == "total" {
			n, err := strconv.Atoi(f[3])
			if err != nil {
				t.Fatalf("strace total line %q", line)
			}
			return n, string(summary)
		}
	}
	// The Go runtime always makes some calls (futex, nanosleep, signals):
	// no total line means strace measured nothing, not zero syscalls.
	t.Fatalf("strace printed no total line:\n%s", summary)
	return 0, ""
}

// TestZeroSyscallsPerRequest is the project's central claim: with one
// SQPOLL shard serving, requests cost the process no syscalls. strace
// counts every thread's syscalls over an idle window and over an equal
// window under load; the Go runtime's own background calls are in both.
func TestZeroSyscallsPerRequest(t *testing.T) {
	needTool(t, "strace")
	cpus := needCPUs(t, 2)
	grpcCall := filepath.Join(t.TempDir(), "call.bin")
	if err := os.WriteFile(grpcCall, []byte{0, 0, 0, 0, 0}, 0o644); err != nil { // an empty message
		t.Fatal(err)
	}
	for _, mode := range []string{"keepalive", "close", "delay", "knobs", "h2", "h2-knobs", "grpc"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{"--sqpoll", "on", "--idle", "spin", "--mode", mode,
				"--cpus", strconv.Itoa(cpus[0]), "--poller-cpus", strconv.Itoa(cpus[1])}
			path := "/"
			switch mode {
			case "delay":
				// Every answer waits 1 ms in the shard's timers.
				args[5] = "keepalive"
				args = append(args, "--delay", "1ms")
			case "knobs":
				// Every answer built for its request: drawn status and
				// size, an extra header, one in ten delayed.
				args[5] = "keepalive"
				path = "/?status=503:50,200&size=100:50,2000&header=X-K:v&delay=0:90,1ms:10&cb=1"
			case "h2", "h2-knobs", "grpc":
				// HTTP/2 streams from h2load: 8 connections of 16 streams;
				// with knobs, every answer built for its stream (an echo,
				// drawn status and size, a header, one in ten delayed);
				// gRPC: unary calls, each an empty message, answered with a
				// message and trailers.
				needTool(t, "h2load")
				args[5] = "keepalive"
				if mode == "h2-knobs" {
					path = "/?echo=1&status=201:50,200&header=X-K:v&delay=0:90,1ms:10&cb=1"
				}
				if mode == "grpc" {
					path = "/zerosys.test.Service/Call"
				}
			}
			p := startZerosys(t, args...)
			pid := p.cmd.Process.Pid
			const window = 2 * time.Second
			run := func(count *atomic.Int64) {
				if !strings.HasPrefix(mode, "h2") && mode != "grpc" {
					loadPath(t, p.addr, path, mode == "close", window, 4000, 8*window, count)
					return
				}
				before := p.scrape(t)
				h2args := []string{"-D", "2", "-c", "8", "-m", "16", "-t", "1"}
				if mode == "grpc" {
					h2args = append(h2args, "-d", grpcCall, "-H", "content-type: application/grpc", "-H", "te: trailers")
				}
				out, err := exec.Command("h2load", append(h2args, "http://"+p.addr+path)...).CombinedOutput()
				if err != nil || !bytes.Contains(out, []byte(" 0 failed, 0 errored")) {
					t.Fatalf("h2load: %v\n%s", err, out)
				}
				count.Add(int64(p.scrape(t).sum("zerosys_h2_streams_total") - before.sum("zerosys_h2_streams_total")))
			}
			idleStart := time.Now()
			idle, _ := straceCount(t, pid, func() { time.Sleep(window) })
			idleDur := time.Since(idleStart)
			if idle == 0 {
				t.Fatal("strace counted no syscall in the idle window: it did not trace the process")
			}
			before := p.scrape(t)
			var requests atomic.Int64
			busyStart := time.Now()
			busy, summary := straceCount(t, pid, func() { run(&requests) })
			busyDur := time.Since(busyStart)
			after := p.scrape(t)
			n := requests.Load()
			served := after.sum("zerosys_requests_total") - before.sum("zerosys_requests_total")
			enters := after.sum("zerosys_io_uring_enter_total") - before.sum("zerosys_io_uring_enter_total")
			// The busy window may run longer than the idle one: the
			// runtime's background calls are scaled to its length.
			background := float64(idle) * busyDur.Seconds() / idleDur.Seconds()
			perReq := (float64(busy) - background) / float64(n)
			t.Logf("%s: %d requests in %v (%0.f counted by zerosys); strace: idle %d in %v, busy %d -> %.5f per request; io_uring_enter by the shard: %.0f",
				mode, n, busyDur.Round(time.Millisecond), served, idle, idleDur.Round(time.Millisecond), busy, perReq, enters)
			if n < 2000 {
				t.Fatalf("only %d requests in %v; the claim needs at least 2000", n, busyDur)
			}
			if perReq >= 0.01 {
				t.Errorf("%.4f syscalls per request (busy %d - background %.0f over %d requests), want < 0.01\n%s", perReq, busy, background, n, summary)
			}
			// The shard's own count of its enters, over a window of the
			// same load without strace: a traced thread stops for every
			// signal the runtime sends it (preemption), and a stop that
			// outlasts the poller's idle time puts the poller to sleep,
			// so under strace the shard must wake it more often than it
			// ever does in service.
			before = p.scrape(t)
			var plain atomic.Int64
			run(&plain)
			after = p.scrape(t)
			plainEnters := after.sum("zerosys_io_uring_enter_total") - before.sum("zerosys_io_uring_enter_total")
			t.Logf("%s without strace: %d requests, io_uring_enter by the shard: %.0f", mode, plain.Load(), plainEnters)
			if plainEnters/float64(plain.Load()) >= 0.01 {
				t.Errorf("the shard entered the kernel %.0f times for %d requests", plainEnters, plain.Load())
			}
			p.stop(t)
		})
	}
}

// load sends requests until d passes: keep-alive requests over 8
// connections, or one request per connection with close.
func load(t *testing.T, addr string, closeEach bool, d time.Duration, count *atomic.Int64) {
	t.Helper()
	loadUntil(t, addr, closeEach, d, 0, d, count)
}

// loadUntil is load that runs at least least, and longer, up to most, until
// count reaches minCount: on a busy machine (or under strace) a fixed
// window may not carry enough requests for a claim about each of them.
func loadUntil(t *testing.T, addr string, closeEach bool, least time.Duration, minCount int64, most time.Duration, count *atomic.Int64) {
	t.Helper()
	loadPath(t, addr, "/", closeEach, least, minCount, most, count)
}

// loadPath is loadUntil requesting path.
func loadPath(t *testing.T, addr, path string, closeEach bool, least time.Duration, minCount int64, most time.Duration, count *atomic.Int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), most)
	defer cancel()
	start := time.Now()
	go func() {
		for ctx.Err() == nil {
			if time.Since(start) >= least && count.Load() >= minCount {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n")
	suffix := "Have a nice day!"
	if path != "/" {
		suffix = "\n" // a size knob's pattern body
	}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for ctx.Err() == nil {
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						errs <- err
						return
					}
				}
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				if closeEach {
					got, err := io.ReadAll(c)
					if err != nil || !bytes.HasSuffix(got, []byte("Have a nice day!")) {
						errs <- fmt.Errorf("close-mode answer %q, %v", got, err)
						return
					}
					c.Close()
					c = nil
				} else if err := readAnswerEnding(c, buf, suffix); err != nil {
					errs <- err
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// readAnswer reads one default answer (whatever its header lines) into
// buf: the head up to its empty line, then Content-Length bytes of body.
func readAnswer(c net.Conn, buf []byte) error { return readAnswerEnding(c, buf, "Have a nice day!") }

// readAnswerEnding is readAnswer for an answer whose body ends in suffix.
func readAnswerEnding(c net.Conn, buf []byte, suffix string) error {
	n := 0
	for {
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			head := buf[:i]
			k := bytes.Index(head, []byte("\r\nContent-Length: "))
			if k < 0 {
				return fmt.Errorf("answer without Content-Length: %q", head)
			}
			cl, err := strconv.Atoi(string(head[k+len("\r\nContent-Length: ") : k+bytes.IndexByte(head[k+2:], '\r')+2]))
			if err != nil {
				return fmt.Errorf("answer %q: %w", head, err)
			}
			total := i + 4 + cl
			if n > total {
				return fmt.Errorf("more than one answer: %q", buf[:n])
			}
			if _, err := io.ReadFull(c, buf[n:total]); err != nil {
				return err
			}
			if !bytes.HasSuffix(buf[:total], []byte(suffix)) {
				return fmt.Errorf("unexpected answer %q", buf[:total])
			}
			return nil
		}
		if n == len(buf) {
			return fmt.Errorf("answer head over %d bytes", len(buf))
		}
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return err
		}
	}
}

// TestNoResetsOnClose runs zerosys and a client in a network namespace of
// its own, so the kernel's TCP counters there see only this traffic:
// closing with unread input (TCPAbortOnClose) or receiving data after close
// (TCPAbortOnData) would mean answers destroyed by a reset. The client
// reads every answer to EOF, so any abort counted is the server's.
func TestNoResetsOnClose(t *testing.T) {
	needRoot(t)
	ip, nstat := needTool(t, "ip"), needTool(t, "nstat")
	ns := fmt.Sprintf("zerosys-test-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		skip(t, fmt.Sprintf("cannot create a network namespace: %v %s", err, out), "")
	}
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", ns).Run() })
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, mode := range []struct{ name, flag, header, recv string }{
		{"close-mode", "close", "X-Test: 1", "pool"},
		{"keepalive-mode-connection-close", "keepalive", "Connection: close", "pool"},
		{"close-mode-slot-recv", "close", "X-Test: 1", "slot"},
		{"close-mode-multishot-recv", "close", "X-Test: 1", "multishot"},
		{"keepalive-mode-connection-close-multishot-recv", "keepalive", "Connection: close", "multishot"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			p := startCommand(t, exec.Command(ip, "netns", "exec", ns, binary, "--addr", "127.0.0.1:8080", "--metrics-addr", "",
				"--sqpoll", "off", "--shards", "1", "--mode", mode.flag, "--recv", mode.recv))
			counters := func() map[string]int {
				out, err := exec.Command(ip, "netns", "exec", ns, nstat, "-asz", "TcpExtTCPAbortOnData", "TcpExtTCPAbortOnClose", "TcpPassiveOpens").Output()
				if err != nil {
					t.Fatal(err)
				}
				m := map[string]int{}
				for _, line := range strings.Split(string(out), "\n") {
					if f := strings.Fields(line); len(f) >= 2 {
						m[f[0]], _ = strconv.Atoi(f[1])
					}
				}
				return m
			}
			before := counters()
			n, err := closingClientInNetns(ns, "127.0.0.1:8080", mode.header, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			after := counters()
			opens := after["TcpPassiveOpens"] - before["TcpPassiveOpens"]
			t.Logf("%d connections, each answered and closed", n)
			if n < 500 || opens < n {
				t.Fatalf("only %d connections (%d passive opens)", n, opens)
			}
			for _, k := range []string{"TcpExtTCPAbortOnData", "TcpExtTCPAbortOnClose"} {
				if d := after[k] - before[k]; d != 0 {
					t.Errorf("%s rose by %d over %d connections", k, d, n)
				}
			}
			p.stop(t)
		})
	}
}

// closingClientInNetns opens connections from inside network namespace ns
// for d, each sending one request and reading the answer to EOF.
func closingClientInNetns(ns, addr, header string, d time.Duration) (int, error) {
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread enters the namespace and exits with the goroutine
		// (never unlocked), so no other goroutine runs in the namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			done <- result{0, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{0, fmt.Errorf("setns: %w", err)}
			return
		}
		req := []byte("GET / HTTP/1.1\r\nHost: t\r\n" + header + "\r\n\r\n")
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				done <- result{n, err}
				return
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(req); err != nil {
				c.Close()
				done <- result{n, err}
				return
			}
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || !bytes.HasSuffix(got, []byte("Have a nice day!")) || !bytes.Contains(got, []byte("Connection: close")) {
				done <- result{n, fmt.Errorf("connection %d: answer %q, %v", n, got, err)}
				return
			}
		}
		done <- result{n, nil}
	}()
	r := <-done
	return r.n, r.err
}

func TestStartupErrors(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	shared := reusePortListener(t)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"address in use", []string{"--addr", held.Addr().String()}, 1, "address already in use"},
		{"foreign SO_REUSEPORT", []string{"--addr", shared}, 1, "another process is already listening"},
		{"bad CPU list", []string{"--cpus", "0-x"}, 1, "bad CPU list"},
		{"CPU not allowed", []string{"--sqpoll", "off", "--cpus", "4000"}, 1, "4000"},
		{"spin shares its poller's CPU", []string{"--idle", "spin", "--cpus", "0", "--poller-cpus", "0"}, 1, "starve"},
		{"too many shards", []string{"--sqpoll", "off", "--shards", "4096"}, 1, "shards"},
		{"bad flag value", []string{"--sqpoll", "maybe"}, 2, "want auto, on or off"},
		{"bad status", []string{"--status", "99"}, 2, "final status"},
		{"header zerosys owns", []string{"--header", "Content-Length: 3"}, 1, "sets Content-Length itself"},
		{"two bodies", []string{"--body", "x", "--body-size", "10"}, 2, "at most one"},
		{"stray argument", []string{"serve"}, 2, "unexpected argument"},
		{"too many HTTP/2 streams", []string{"--h2-max-streams", "5000"}, 2, "--h2-max-streams 5000: want 1 to 4096"},
		{"HTTP/2 window too small", []string{"--h2-stream-window", "1000"}, 2, "want 65535 to 2147483647"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary, append([]string{"--metrics-addr", ""}, c.args...)...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != c.code {
				t.Fatalf("exit %v, want code %d; output:\n%s", err, c.code, out)
			}
			if !bytes.Contains(out, []byte(c.want)) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
		})
	}
}

// reusePortListener holds a loopback port with SO_REUSEPORT, as a
// leftover server would; it returns the address.
func reusePortListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

func TestCheckCommand(t *testing.T) {
	out, err := exec.Command(binary, "check", "--sqpoll", "off", "--addr", "127.0.0.1:0").CombinedOutput()
	if err != nil {
		t.Fatalf("check failed: %v\n%s", err, out)
	}
	for _, w := range []string{"ok   kernel", "ok   io_uring ", "ok   cpu plan", "ok   address", "zerosys can run as configured"} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("check output lacks %q:\n%s", w, out)
		}
	}
	out, err = exec.Command(binary, "check", "--idle", "spin", "--cpus", "0", "--poller-cpus", "0").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !bytes.Contains(out, []byte("FAIL cpu plan")) {
		t.Errorf("check of an impossible plan: %v\n%s", err, out)
	}
}

// TestMetricsMatchTraffic sends known traffic and reads it back.
func TestMetricsMatchTraffic(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1")
	const good, bad, conns = 120, 5, 4
	for i := range conns {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", good/conns))
		br := bufio.NewReader(c)
		for j := range good / conns {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("conn %d answer %d: %v", i, j, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		c.Close()
	}
	for range bad {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
		_, _ = io.ReadAll(c)
		c.Close()
	}
	// Counters are published up to a millisecond after the shard counts
	// them: wait for the last connection's close to show.
	var m metrics
	deadline := time.Now().Add(5 * time.Second)
	for {
		m = p.scrape(t)
		if m.sum("zerosys_connections_closed_total") == conns+bad || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zerosys_requests_total", nil, good},
		{"zerosys_responses_total", []string{`code="200"`}, good},
		{"zerosys_responses_total", []string{`code="400"`}, bad},
		{"zerosys_requests_rejected_total", nil, bad},
		{"zerosys_connections_accepted_total", nil, conns + bad},
		{"zerosys_connections_closed_total", nil, conns + bad},
		{"zerosys_connections_active", nil, 0},
		{"zerosys_ready", nil, 1},
		{"zerosys_build_info", nil, 1},
		{"zerosys_shard_info", []string{`sqpoll="off"`}, 1},
	}
	for _, c := range checks {
		if got := m.sum(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"zerosys_io_uring_enter_total", "zerosys_loop_iterations_total", "go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := findSeries(m, name); !ok {
			t.Errorf("no %s series", name)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get("http://" + p.metrics + path)
		if err != nil || resp.StatusCode != want {
			t.Errorf("GET %s: %v %v, want %d", path, resp.Status, err, want)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	p.stop(t)
}

func findSeries(m metrics, name string) (string, bool) {
	for k := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			return k, true
		}
	}
	return "", false
}

// TestDrainLosesNothing stops zerosys while keep-alive clients send
// requests back to back and reconnect after each close: every request
// written must get a complete answer, and every connection must end only
// after an answer that said "Connection: close".
func TestDrainLosesNothing(t *testing.T) {
	for _, args := range [][]string{
		{"--sqpoll", "off", "--shards", "1"},
		{"--sqpoll", "off"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			p := startZerosys(t, append(args, "--drain-delay", "300ms", "--drain-timeout", "5s")...)
			const clients = 32
			var (
				wg                          sync.WaitGroup
				written, answered, closings atomic.Int64
				refused                     atomic.Int64
				failures                    = make(chan string, clients)
			)
			start := make(chan struct{})
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for conn := 0; ; conn++ {
						c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
						if err != nil {
							refused.Add(1) // the listener is gone: nothing was written
							return
						}
						_ = c.SetDeadline(time.Now().Add(10 * time.Second))
						br := bufio.NewReader(c)
						for {
							if _, err := fmt.Fprintf(c, "GET /%d/%d HTTP/1.1\r\nHost: t\r\n\r\n", i, conn); err != nil {
								failures <- fmt.Sprintf("client %d: write: %v", i, err)
								c.Close()
								return
							}
							written.Add(1)
							resp, err := http.ReadResponse(br, nil)
							if err != nil {
								failures <- fmt.Sprintf("client %d: request written, no answer: %v", i, err)
								c.Close()
								return
							}
							body, err := io.ReadAll(resp.Body)
							if err != nil || string(body) != "Have a nice day!" {
								failures <- fmt.Sprintf("client %d: incomplete answer %q: %v", i, body, err)
								c.Close()
								return
							}
							answered.Add(1)
							if resp.Close {
								closings.Add(1)
								if _, err := br.ReadByte(); err != io.EOF {
									failures <- fmt.Sprintf("client %d: after Connection: close: %v", i, err)
								}
								c.Close()
								break // reconnect
							}
						}
					}
				}()
			}
			close(start)
			time.Sleep(500 * time.Millisecond)
			p.signal(t, syscall.SIGTERM)
			// /readyz turns 503 once the signal is taken, and stays so
			// through the drain-delay: polled, since under this load the
			// moment the signal is taken varies.
			readyz := 0
			for deadline := time.Now().Add(250 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				resp, err := http.Get("http://" + p.metrics + "/readyz")
				if err != nil {
					t.Errorf("/readyz during drain-delay: %v", err)
					break
				}
				resp.Body.Close()
				if readyz = resp.StatusCode; readyz == http.StatusServiceUnavailable {
					break
				}
			}
			if readyz != http.StatusServiceUnavailable {
				t.Errorf("/readyz during drain: %d, want 503", readyz)
			}
			p.wait(t, 15*time.Second)
			wg.Wait()
			close(failures)
			for f := range failures {
				t.Error(f)
			}
			t.Logf("written %d, answered %d, connections closed by a Connection: close answer %d, dials refused after drain %d",
				written.Load(), answered.Load(), closings.Load(), refused.Load())
			if written.Load() != answered.Load() {
				t.Errorf("%d requests written, %d answered", written.Load(), answered.Load())
			}
			if answered.Load() < 1000 {
				t.Errorf("only %d answers: the load did not run", answered.Load())
			}
			if !strings.Contains(p.log(), "msg=stopped") {
				t.Errorf("no clean stop in the log:\n%s", p.log())
			}
		})
	}
}

// cpuTime is the CPU time every thread of pid has used, the SQPOLL
// poller's included, in nanoseconds: schedstat counts what each thread ran
// exactly, where /proc/PID/stat counts 10 ms ticks (a 1% bound over 3 s
// would be three ticks of margin).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var total time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			t.Fatalf("schedstat %q: %v", b, err)
		}
		total += time.Duration(ns)
	}
	return total
}

// TestIdleCPU: one second after traffic stops, an adaptive SQPOLL shard
// and its poller use under 1% of a CPU.
func TestIdleCPU(t *testing.T) {
	cpus := needCPUs(t, 2)
	p := startZerosys(t, "--sqpoll", "on", "--idle", "adaptive", "--cpus", strconv.Itoa(cpus[0]), "--poller-cpus", strconv.Itoa(cpus[1]))
	var n atomic.Int64
	load(t, p.addr, false, time.Second, &n)
	time.Sleep(time.Second)
	pid := p.cmd.Process.Pid
	t0, start := cpuTime(t, pid), time.Now()
	time.Sleep(3 * time.Second)
	used := float64(cpuTime(t, pid)-t0) / float64(time.Since(start))
	// First request after idle: the shard and its poller wake up.
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := time.Now()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	if err := readAnswer(c, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	t.Logf("after %d requests: idle CPU %.2f%% of one CPU (all threads, poller included); first answer after idle in %v",
		n.Load(), used*100, time.Since(first))
	if used >= 0.01 {
		t.Errorf("idle CPU %.2f%%, want < 1%%", used*100)
	}
	p.stop(t)
}

// TestGRPCHealthProbe: grpc-health-probe, the client Kubernetes' gRPC
// health checks were first built on, finds zerosys SERVING, whatever the
// behaviour's status (a failing backend's calls fail; its health service
// answers). make test installs it; GRPC_PROBE names it.
func TestGRPCHealthProbe(t *testing.T) {
	probe := os.Getenv("GRPC_PROBE")
	if probe == "" {
		var err error
		if probe, err = exec.LookPath("grpc-health-probe"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("grpc-health-probe is not installed; make test installs it")
			}
			skip(t, "grpc-health-probe is not installed (make test installs it)", "")
		}
	}
	for _, args := range [][]string{{}, {"--status", "503"}} {
		p := startZerosys(t, append([]string{"--sqpoll", "off", "--shards", "1"}, args...)...)
		out, err := exec.Command(probe, "-addr", p.addr, "-connect-timeout", "5s", "-rpc-timeout", "5s").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("status: SERVING")) {
			t.Errorf("zerosys %v: grpc-health-probe: %v: %s", args, err, out)
		}
		if n := p.metricReaches(t, 1, "zerosys_grpc_calls_total"); n != 1 {
			t.Errorf("zerosys %v: %v gRPC calls counted, want 1", args, n)
		}
		if n := p.metricReaches(t, 1, "zerosys_responses_total", `code="200"`); n != 1 {
			t.Errorf("zerosys %v: %v answers counted 200, want the health check's 1", args, n)
		}
		p.stop(t)
	}
	// Through the drain's delay the health service agrees with /readyz.
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--drain-delay", "3s")
	p.signal(t, syscall.SIGTERM)
	var out []byte
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out, _ = exec.Command(probe, "-addr", p.addr, "-connect-timeout", "1s", "-rpc-timeout", "1s").CombinedOutput(); bytes.Contains(out, []byte("NOT_SERVING")) {
			break
		}
	}
	if !bytes.Contains(out, []byte("NOT_SERVING")) {
		t.Errorf("during the drain's delay: grpc-health-probe: %s", out)
	}
	p.wait(t, 10*time.Second)
}

// TestRealClients drives zerosys with the load generators and client
// libraries people point at a capacity-testing backend; each must finish
// with every request answered 200.
func TestRealClients(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1")
	url := p.url("/")
	cases := []struct {
		tool string
		args []string
		want []string // all must appear in the output
		deny []string // none may appear
	}{
		{"h2load", []string{"--h1", "-n", "20000", "-c", "16", "-m", "16", url},
			[]string{"20000 succeeded, 0 failed, 0 errored", "status codes: 20000 2xx"}, nil},
		// HTTP/2 over cleartext, prior knowledge.
		{"h2load", []string{"-n", "200000", "-c", "16", "-m", "32", url},
			[]string{"200000 succeeded, 0 failed, 0 errored", "status codes: 200000 2xx"}, nil},
		// Clients that shrink the dynamic table our answers index into:
		// nghttp2 refuses a first block without the size update that
		// owes them (RFC 7541 §4.2).
		{"h2load", []string{"-n", "20000", "-c", "4", "-m", "32", "--header-table-size=0", url},
			[]string{"20000 succeeded, 0 failed, 0 errored", "status codes: 20000 2xx"}, nil},
		{"h2load", []string{"-n", "20000", "-c", "4", "-m", "32", "--header-table-size=1024", url},
			[]string{"20000 succeeded, 0 failed, 0 errored", "status codes: 20000 2xx"}, nil},
		{"nghttp", []string{"-v", url}, []string{":status: 200", "Have a nice day!"}, []string{"[ERROR]", "PROTOCOL_ERROR", "RST_STREAM"}},
		{"nghttp", []string{"-v", "--header-table-size=0", url, url}, []string{":status: 200", "Have a nice day!"}, []string{"[ERROR]", "COMPRESSION_ERROR", "RST_STREAM"}},
		{"curl", []string{"-sS", "--http2-prior-knowledge", "-w", " %{http_version}", url}, []string{"Have a nice day! 2"}, nil},
		{"curl", []string{"-sS", "--http2", "-w", " %{http_version}", url, url}, []string{"Have a nice day! 2Have a nice day! 2"}, nil}, // Upgrade: h2c
		{"ab", []string{"-k", "-n", "20000", "-c", "16", url},
			[]string{"Complete requests:      20000", "Failed requests:        0", "Keep-Alive requests:    20000"}, []string{"Non-2xx"}},
		{"hey", []string{"-n", "4800", "-c", "16", url}, // hey sends n rounded down to a multiple of c
			[]string{"[200]\t4800 responses"}, []string{"Error distribution"}},
		{"wrk", []string{"-t1", "-c8", "-d1s", "-s", "testdata/pipeline.lua", url},
			[]string{"requests in"}, []string{"Non-2xx", "Socket errors"}},
		{"python3", []string{"-c", `
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], timeout=5)
for i in range(500):
    c.request("GET" if i % 3 else "POST", "/", body=None if i % 3 else b"x" * i)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Have a nice day!", (r.status, i)
c.close()
print("python ok")
`, p.addr}, []string{"python ok"}, nil},
	}
	for _, c := range cases {
		t.Run(c.tool, func(t *testing.T) {
			path := needTool(t, c.tool)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, path, c.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.tool, err, out)
			}
			for _, w := range c.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("%s output lacks %q:\n%s", c.tool, w, out)
				}
			}
			for _, d := range c.deny {
				if bytes.Contains(out, []byte(d)) {
					t.Errorf("%s output has %q:\n%s", c.tool, d, out)
				}
			}
		})
	}
	p.stop(t)
}
