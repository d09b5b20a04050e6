package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// adminDo sends method to /behaviour with query and token, returning the
// status and body.
func adminDo(t *testing.T, metrics, method, query, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+metrics+"/behaviour?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// statuses fetches / n times on new connections and counts the statuses.
func statuses(t *testing.T, addr string, n int) map[int]int {
	t.Helper()
	got := map[int]int{}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for range n {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got[resp.StatusCode]++
	}
	return got
}

// TestBehaviourChange: PUT /behaviour changes what every shard answers by
// the time it returns, with the same JSON GET shows; bad parameters get a
// 400 that names them and change nothing; DELETE returns to the flags.
// Changes are counted and logged.
func TestBehaviourChange(t *testing.T) {
	curl := needTool(t, "curl")
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--seed", "3")
	if got := statuses(t, p.addr, 20); got[200] != 20 {
		t.Fatalf("before: %v", got)
	}
	// curl as a tester would.
	out, err := exec.Command(curl, "-sS", "-X", "PUT", "http://"+p.metrics+"/behaviour?status=503:100&delay=1ms").Output()
	if err != nil {
		t.Fatalf("curl -X PUT: %v", err)
	}
	var b behaviour
	if err := json.Unmarshal(out, &b); err != nil || b.Status != "200,503:100" || b.Delay != "1ms" {
		t.Fatalf("PUT answered %s (%v)", out, err)
	}
	if code, body := adminDo(t, p.metrics, "GET", "", ""); code != 200 || body != string(out) {
		t.Errorf("GET after PUT: %d %s, want the PUT's answer %s", code, body, out)
	}
	if got := statuses(t, p.addr, 20); got[503] != 20 {
		t.Errorf("after PUT status=503:100: %v, want every answer 503", got)
	}
	if n := p.scrape(t).sum("zerosys_behaviour_info", `status="200,503:100"`, `delay="1ms"`); n != 1 {
		t.Errorf("zerosys_behaviour_info after the PUT: %v series with its labels, want 1", n)
	}
	for _, q := range []string{"status=99", "delay=1h", "close=200", "bogus=1", "size=abc", "status=503:60,429:60", "header=NoColon"} {
		code, body := adminDo(t, p.metrics, "PUT", q, "")
		if code != 400 || !strings.Contains(body, strings.SplitN(q, "=", 2)[0]) {
			t.Errorf("PUT ?%s: %d %q, want 400 naming the parameter", q, code, body)
		}
	}
	if got := statuses(t, p.addr, 10); got[503] != 10 {
		t.Errorf("after refused PUTs: %v, want the 503 behaviour kept", got)
	}
	if code, body := adminDo(t, p.metrics, "PUT", "status=503;x", ""); code != 400 || !strings.Contains(body, "query") {
		t.Errorf("PUT with a malformed query: %d %q, want 400", code, body)
	}
	// Without a token, a Host that is not loopback is refused (DNS rebinding).
	req, _ := http.NewRequest("DELETE", "http://"+p.metrics+"/behaviour", nil)
	req.Host = "evil.example:9090"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("DELETE with Host evil.example: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	code, body := adminDo(t, p.metrics, "PUT", "size=1000&header=X-Test:yes", "")
	if code != 200 {
		t.Fatalf("PUT size: %d %s", code, body)
	}
	resp, err := http.Get(p.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != 1000 || resp.Header.Get("X-Test") != "yes" {
		t.Errorf("after PUT size=1000&header=X-Test:yes (the status back at its flag): %d, %d bytes, X-Test %q", resp.StatusCode, n, resp.Header.Get("X-Test"))
	}
	if code, _ := adminDo(t, p.metrics, "DELETE", "", ""); code != 200 {
		t.Fatalf("DELETE: %d", code)
	}
	if got := statuses(t, p.addr, 10); got[200] != 10 {
		t.Errorf("after DELETE: %v", got)
	}
	http.DefaultClient.CloseIdleConnections() // else the stop waits for it (--drain-timeout)
	m := p.scrape(t)
	if n := m.sum("zerosys_behaviour_changes_total"); n != 6 { // three changes, two shards
		t.Errorf("zerosys_behaviour_changes_total %v, want 6", n)
	}
	if n := m.sum("zerosys_responses_total", `code="503"`); n != 30 {
		t.Errorf("503 answers counted %v, want 30", n)
	}
	p.stop(t)
	if !strings.Contains(p.log(), `msg="behaviour changed" method=PUT query="status=503:100&delay=1ms"`) {
		t.Errorf("the change is not logged:\n%s", p.log())
	}
}

// TestBehaviourAdminToken: with a token, PUT and DELETE need it; on a
// metrics address that is not loopback they are refused without one; GET
// stays open.
func TestBehaviourAdminToken(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--admin-token", "s3cret")
	for _, tok := range []string{"", "wrong"} {
		if code, _ := adminDo(t, p.metrics, "PUT", "status=500", tok); code != 403 {
			t.Errorf("PUT with token %q: %d, want 403", tok, code)
		}
	}
	if code, _ := adminDo(t, p.metrics, "PUT", "status=500", "s3cret"); code != 200 {
		t.Errorf("PUT with the token: %d", code)
	}
	p.stop(t)

	p = startCommand(t, exec.Command(binary, "--addr", "127.0.0.1:0", "--metrics-addr", "0.0.0.0:0", "--sqpoll", "off"))
	_, port, _ := net.SplitHostPort(p.metrics)
	local := "127.0.0.1:" + port
	if code, body := adminDo(t, local, "DELETE", "", ""); code != 403 || !strings.Contains(body, "admin-token") {
		t.Errorf("DELETE on a non-loopback metrics address without a token: %d %q, want 403 naming --admin-token", code, body)
	}
	if code, _ := adminDo(t, local, "GET", "", ""); code != 200 {
		t.Errorf("GET: %d, want 200", code)
	}
	p.stop(t)
}

// TestBehaviourChangeUnderLoad: clients keep requesting while the
// behaviour flips between 200, 503 and a 30 ms delay: every request gets
// one whole answer (none lost, none torn between two behaviours), and
// every request sent after a PUT returned is answered by it.
func TestBehaviourChangeUnderLoad(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--body-size", "300")
	var (
		phase   atomic.Int32 // 0: 200, 1: 503 (since the PUT returned), 2: unknown (changing)
		changes atomic.Int64 // phase changes: a request that overlaps one is not judged by it
		sent    atomic.Int64
		got     atomic.Int64
		wrong   atomic.Int64
		stop    atomic.Bool
		wg      sync.WaitGroup
		errOnce sync.Once
		firstEr error
	)
	phase.Store(0)
	for range 8 {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				errOnce.Do(func() { firstEr = err })
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for !stop.Load() {
				before, want := changes.Load(), phase.Load()
				fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
				sent.Add(1)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errOnce.Do(func() { firstEr = err })
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errOnce.Do(func() { firstEr = err })
					return
				}
				got.Add(1)
				ok := (resp.StatusCode == 200 || resp.StatusCode == 503) && len(body) == 300
				if changes.Load() == before && (want == 0 && resp.StatusCode != 200 || want == 1 && resp.StatusCode != 503) {
					ok = false
				}
				if !ok {
					wrong.Add(1)
				}
			}
		})
	}
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		time.Sleep(50 * time.Millisecond)
		changes.Add(1)
		phase.Store(2)
		q, next := "status=503:100", int32(1)
		switch i % 3 {
		case 1:
			q, next = "delay=30ms", 0
		case 2:
			q, next = "", 0
		}
		method := "PUT"
		if q == "" {
			method = "DELETE"
		}
		if code, body := adminDo(t, p.metrics, method, q, ""); code != 200 {
			t.Fatalf("%s ?%s: %d %s", method, q, code, body)
		}
		phase.Store(next)
		changes.Add(1)
	}
	stop.Store(true)
	wg.Wait()
	if firstEr != nil {
		t.Fatalf("a client failed: %v", firstEr)
	}
	if sent.Load() != got.Load() || got.Load() < 100 {
		t.Errorf("%d requests sent, %d answered", sent.Load(), got.Load())
	}
	if wrong.Load() != 0 {
		t.Errorf("%d of %d answers not the behaviour in force when their request was sent", wrong.Load(), got.Load())
	}
	p.stop(t)
}
