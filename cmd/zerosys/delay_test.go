package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// delayRun opens conns connections, then sends one request on each, the
// starts spread over spread (so the client's own scheduling does not pile
// a thousand wake-ups into one instant), and returns each answer's
// latency, from the write to the answer read.
func delayRun(t *testing.T, addr string, conns int, spread time.Duration) []time.Duration {
	t.Helper()
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		cs[i] = c
	}
	lat := make([]time.Duration, conns)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(c)
			<-start
			time.Sleep(spread * time.Duration(i) / time.Duration(conns))
			t0 := time.Now()
			if _, err := fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
				errs <- err
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			lat[i] = time.Since(t0)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return lat
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// TestDelayPrecision: with 1,000 connections each holding an answer back
// 20 ms, the median answer comes between 20 and 23 ms; and 1,000 answers
// held back a second do not slow the ones that are not.
func TestDelayPrecision(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--delay", "20ms")
	lat := delayRun(t, p.addr, 1000, 20*time.Millisecond) // all 1,000 wait at once for most of it
	p50, p99 := quantile(lat, 0.5), quantile(lat, 0.99)
	t.Logf("--delay 20ms, 1,000 connections: p50 %v, p99 %v, min %v", p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), slices.Min(lat).Round(10*time.Microsecond))
	if slices.Min(lat) < 20*time.Millisecond {
		t.Errorf("an answer came after %v, before its 20 ms delay", slices.Min(lat))
	}
	// The clients' own clock is in the figure: 1,000 goroutines on the
	// CPUs the shard uses wake late by up to a millisecond on a busy VM
	// (medians of 20.2-21.2 ms here). A timer coarser than a millisecond
	// or a loop that waits past its deadline shows as 25 ms and more.
	if p50 > 23*time.Millisecond {
		t.Errorf("median %v, want 20-23 ms", p50)
	}
	// The shard's own account: how late each answer left after its due
	// time, without the clients' wake-ups.
	p.metricReaches(t, 1000, "zerosys_answer_lateness_seconds_count")
	m := p.scrape(t)
	n := m.sum("zerosys_answer_lateness_seconds_count")
	within1ms := m.sum("zerosys_answer_lateness_seconds_bucket", `le="0.001"`)
	t.Logf("lateness by the shard's clock: %.0f answers, %.1f%% within 1 ms, %.1f%% within 250 µs, mean %v", n, 100*within1ms/n,
		100*m.sum("zerosys_answer_lateness_seconds_bucket", `le="0.00025"`)/n, time.Duration(m.sum("zerosys_answer_lateness_seconds_sum")/n*1e9).Round(time.Microsecond))
	if n != 1000 || within1ms < 0.99*n {
		t.Errorf("lateness: %.0f answers counted (want 1000), %.0f within 1 ms (want 99%%)", n, within1ms)
	}
	p.stop(t)

	p = startZerosys(t, "--sqpoll", "off", "--shards", "1", "--delay", "1s:50", "--seed", "3")
	lat = delayRun(t, p.addr, 2000, 20*time.Millisecond)
	var fast, slow []time.Duration
	for _, l := range lat {
		if l >= time.Second {
			slow = append(slow, l)
		} else {
			fast = append(fast, l)
		}
	}
	if len(slow) < 800 || len(fast) < 800 {
		t.Fatalf("%d answers held a second, %d not, of 2,000: want about half each", len(slow), len(fast))
	}
	t.Logf("--delay 1s:50, 2,000 connections: %d held a second (p50 %v), %d not (p50 %v, p99 %v)",
		len(slow), quantile(slow, 0.5).Round(time.Millisecond), len(fast), quantile(fast, 0.5).Round(10*time.Microsecond), quantile(fast, 0.99).Round(10*time.Microsecond))
	if q := quantile(fast, 0.99); q > 100*time.Millisecond {
		t.Errorf("answers with no delay took %v at p99 beside a thousand held back", q)
	}
	// The histogram has each delayed answer in the bucket of 1 s.
	m = p.scrape(t)
	if n, le1, below := m.sum("zerosys_answer_delay_seconds_count"), m.sum("zerosys_answer_delay_seconds_bucket", `le="1"`), m.sum("zerosys_answer_delay_seconds_bucket", `le="0.5"`); n != float64(len(slow)) || le1 != n || below != 0 {
		t.Errorf("delay histogram: count %v, le=1 %v, le=0.5 %v; want %d, %d, 0", n, le1, below, len(slow), len(slow))
	}
	if sum := m.sum("zerosys_answer_delay_seconds_sum"); sum != float64(len(slow)) {
		t.Errorf("delay histogram sum %v s, want %d", sum, len(slow))
	}
	p.stop(t)
}

// TestDelayDrainAndIdle: answers waiting for their delay are not cut by
// the idle timeout (it does not run while an answer waits) nor lost in a
// drain (it waits for them, each then says Connection: close).
func TestDelayDrainAndIdle(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--delay", "600ms", "--idle-timeout", "200ms", "--drain-timeout", "5s")
	const conns = 50
	type answer struct {
		status int
		close  bool
		err    error
	}
	answers := make(chan answer, conns)
	for range conns {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			resp.Body.Close()
			if resp.Close {
				c.Close() // as a client does: the server, lingering, sees the EOF
			}
			answers <- answer{status: resp.StatusCode, close: resp.Close}
		}()
	}
	time.Sleep(300 * time.Millisecond) // past the idle timeout, before the delay ends
	t0 := time.Now()
	p.signal(t, syscall.SIGTERM)
	closes := 0
	for range conns {
		a := <-answers
		if a.err != nil || a.status != 200 {
			t.Fatalf("an answer waiting through the idle timeout and a drain: %+v", a)
		}
		if a.close {
			closes++
		}
	}
	t.Logf("%d answers after the drain began (%v), %d saying Connection: close", conns, time.Since(t0).Round(time.Millisecond), closes)
	p.wait(t, 3*time.Second) // well before --drain-timeout: no connection was left open
	if closes != conns {
		t.Errorf("%d of %d answers sent during the drain said Connection: close", closes, conns)
	}
}

// TestDelayRefused: a delay over --max-delay or not a duration is refused.
func TestDelayRefused(t *testing.T) {
	for _, args := range [][]string{{"--delay", "11s"}, {"--delay", "2s:5", "--max-delay", "1s"}, {"--delay", "fast"}} {
		if _, err := parseConfig(args, func(string) string { return "" }, nil); err == nil || !strings.Contains(err.Error(), "--delay") {
			t.Errorf("%v: %v, want a refusal naming --delay", args, err)
		}
	}
}
