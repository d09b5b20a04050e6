package main

// Fault injection behind HAProxy: one backend made to fail, then one made
// slow, each at run time with PUT /behaviour on its metrics address, and
// what HAProxy does about it.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// labToken is the --admin-token of the lab's zerosys: their metrics
// addresses are not loopback, so PUT /behaviour needs one.
const labToken = "zslab-token"

// labServerTimeout is the lab HAProxy's `timeout server`, below the slow
// backend's delay, so that its answers time out and are retried.
const (
	labServerTimeout = "100ms"
	slowDelay        = "200ms"
)

// faultSections are a frontend on :81 and its backend be_faults: the
// servers of be_zerosys in the configuration src, watched by their answers
// (observe layer7: ten errors in a row mark one down until its health
// check brings it back), and a response that does not come within
// labServerTimeout retried on another server. The other phases keep the
// configuration as it is.
func faultSections(src []byte) []string {
	out := []string{"", "# lab: the fault phase's own frontend and backend",
		"frontend fe_faults", "    bind :81", "    default_backend be_faults", "",
		"backend be_faults",
		"    # below the slow backend's " + slowDelay,
		"    timeout server " + labServerTimeout,
		"    retry-on conn-failure response-timeout"}
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "backend be_zerosys"):
			in = true
			continue
		case in && line != "" && line[0] != ' ' && line[0] != '\t' && line[0] != '#':
			in = false // the next section
		}
		if !in || t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasPrefix(t, "default-server ") {
			line += " observe layer7 error-limit 10 on-error mark-down"
		}
		out = append(out, line)
	}
	return out
}

// faultKey is how the lab's HAProxy watcher names a be_faults server.
func faultKey(server string) string { return "f/" + server }

// behaviourDo sends a PUT or DELETE /behaviour to a zerosys's metrics
// address and returns the status.
func behaviourDo(ns, addr, method, query string) (int, error) {
	return httpDo(ns, addr, method+" /behaviour?"+query+" HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer "+labToken+"\r\nConnection: close\r\n\r\n")
}

// serverCounters reads be_faults's counters of one server.
func serverCounters(sock, server string) (map[string]int64, error) {
	rows, col, err := statRows(sock)
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if len(row) < len(col) || row[col["pxname"]] != "be_faults" || row[col["svname"]] != server {
			continue
		}
		out := map[string]int64{}
		for h, i := range col {
			if n, err := strconv.ParseInt(row[i], 10, 64); err == nil {
				out[h] = n
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no be_faults/%s row", server)
}

// downs counts HAProxy's DOWN transitions of server since t.
func (s *haStats) downs(server string, since time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.changes {
		if c.server == server && c.status == "DOWN" && !c.at.Before(since) {
			n++
		}
	}
	return n
}

// faultResult is what the fault phases measured.
type faultResult struct {
	ran                    bool
	failFailed, slowFailed int64
	failDown               time.Duration // PUT to HAProxy's first DOWN; -1: none
	failDowns              int
	slowRetries            int64 // HAProxy's retries and redispatches off the slow server
}

// injectFaults runs the failing and the slow phase, each for d, on the load ld.
func (l *lab) injectFaults(ctx context.Context, ld *load, failing, slow *zs, d time.Duration) (r faultResult, ok bool) {
	r.ran, r.failDown = true, -1

	// A backend that fails every request.
	ph := ld.setPhase("failing")
	t0 := time.Now()
	if code, err := behaviourDo(failing.ns, failing.metrics, "PUT", "status=503:100"); err != nil || code != 200 {
		l.fail("PUT /behaviour?status=503:100 on %s: %d %v", failing.name, code, err)
		return r, false
	}
	ok = sleepCtx(ctx, d)
	if down, downOK := l.stats.waitStatus(faultKey(failing.name), "DOWN", t0, 0); downOK {
		r.failDown = down.Sub(t0)
	}
	r.failDowns = l.stats.downs(faultKey(failing.name), t0)
	t1 := time.Now()
	if code, err := behaviourDo(failing.ns, failing.metrics, "DELETE", ""); err != nil || code != 200 {
		l.fail("DELETE /behaviour on %s: %d %v", failing.name, code, err)
		return r, false
	}
	ld.setPhase("steady")
	r.failFailed = ph.failed()
	up := "already UP"
	if l.stats.current(faultKey(failing.name)) != "UP" {
		if at, upOK := l.stats.waitStatus(faultKey(failing.name), "UP", t1, 10*time.Second); upOK {
			up = "UP " + secs(at.Sub(t1))
		} else {
			up = "not UP within 10s"
		}
	}
	fmt.Printf("lab: failing %s (PUT status=503:100 for %s): client requests failed=%d (%s); HAProxy marked it DOWN %d times (observe layer7, error-limit 10), the first %s after the PUT; its health check (/readyz, still 200) brought it back each time; DELETE -> %s\n",
		failing.name, secs(d), r.failFailed, ph.String(), r.failDowns, secs(r.failDown), up)
	if !ok || !sleepCtx(ctx, time.Second) {
		return r, ok
	}

	// A backend slower than HAProxy's server timeout.
	before, _ := serverCounters(l.haSock, slow.name)
	tSlow := time.Now()
	ph = ld.setPhase("slow")
	if code, err := behaviourDo(slow.ns, slow.metrics, "PUT", "delay="+slowDelay); err != nil || code != 200 {
		l.fail("PUT /behaviour?delay=%s on %s: %d %v", slowDelay, slow.name, code, err)
		return r, false
	}
	ok = sleepCtx(ctx, d)
	if code, err := behaviourDo(slow.ns, slow.metrics, "DELETE", ""); err != nil || code != 200 {
		l.fail("DELETE /behaviour on %s: %d %v", slow.name, code, err)
		return r, false
	}
	ld.setPhase("steady")
	after, _ := serverCounters(l.haSock, slow.name)
	r.slowFailed = ph.failed()
	r.slowRetries = after["wretr"] + after["wredis"] - before["wretr"] - before["wredis"]
	fmt.Printf("lab: slow %s (PUT delay=%s for %s, HAProxy timeout server %s, retry-on response-timeout): client requests failed=%d (%s); HAProxy retried or redispatched %d requests off %s; DOWN %d times\n",
		slow.name, slowDelay, secs(d), labServerTimeout, r.slowFailed, ph.String(), r.slowRetries, slow.name, l.stats.downs(faultKey(slow.name), tSlow))
	return r, ok
}
