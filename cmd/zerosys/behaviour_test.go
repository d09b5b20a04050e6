package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServedBy: every answer names the instance and the shard, as curl
// shows it; --served-by=false leaves the header out.
func TestServedBy(t *testing.T) {
	curl := needTool(t, "curl")
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--name", "edge-7")
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 2; i++ {
		out, err := exec.Command(curl, "-sS", "-D", "-", "-o", "/dev/null", p.url("/")).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		for _, line := range strings.Split(string(out), "\r\n") {
			if v, ok := strings.CutPrefix(line, "X-Served-By: "); ok {
				seen[v] = true
			}
		}
	}
	if !seen["edge-7/0"] || !seen["edge-7/1"] || len(seen) != 2 {
		t.Errorf("X-Served-By values %v, want edge-7/0 and edge-7/1", seen)
	}
	// Error answers say who sent them too.
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET / HTTP/1.1\r\n\r\n") // no Host: 400
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	if err != nil || resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("X-Served-By"), "edge-7/") {
		t.Errorf("error answer: %v, %+v; want 400 with X-Served-By", err, resp)
	}
	p.stop(t)

	p = startZerosys(t, "--sqpoll", "off", "--served-by=false")
	resp, err = http.Get(p.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("X-Served-By"); v != "" {
		t.Errorf("--served-by=false: X-Served-By %q", v)
	}
	p.stop(t)
}

// keepAliveRun sends requests one at a time on keep-alive connections,
// reconnecting whenever the server closes, and returns how many answers
// said Connection: close and how many requests each connection carried.
func keepAliveRun(t *testing.T, addr string, requests int) (closes int, perConn []int) {
	t.Helper()
	var c net.Conn
	var br *bufio.Reader
	n := 0
	for i := 0; i < requests; i++ {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br = bufio.NewReader(c)
			n = 0
		}
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("request %d: body: %v", i, err)
		}
		resp.Body.Close()
		n++
		if resp.Close {
			closes++
			perConn = append(perConn, n)
			if b, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("after Connection: close: read %q, %v; want EOF", b, err)
			}
			c.Close()
			c = nil
		}
	}
	if c != nil {
		c.Close()
		perConn = append(perConn, n)
	}
	return closes, perConn
}

// TestKeepAliveRequests: --keepalive-requests 3 closes every connection
// after its third answer, with Connection: close on that answer.
func TestKeepAliveRequests(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--keepalive-requests", "3")
	closes, perConn := keepAliveRun(t, p.addr, 30)
	if closes != 10 {
		t.Errorf("%d closes over 30 requests, want 10 (per connection: %v)", closes, perConn)
	}
	for _, n := range perConn {
		if n != 3 {
			t.Fatalf("a connection carried %d requests, want 3: %v", n, perConn)
		}
	}
	p.stop(t)
}

// TestCloseMix: --close 20 closes about a fifth of the connections after
// an answer, within statistical bounds, and the same seed repeats a run.
func TestCloseMix(t *testing.T) {
	const requests, percent = 3000, 20.0
	run := func() []int {
		p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--close", "20", "--seed", "42")
		closes, perConn := keepAliveRun(t, p.addr, requests)
		p.stop(t)
		// Binomial: mean n*p, standard deviation sqrt(n*p*(1-p)); 4.5
		// sigmas leave a false failure about once in 150,000 runs.
		mean := requests * percent / 100
		sd := math.Sqrt(requests * percent / 100 * (1 - percent/100))
		if d := math.Abs(float64(closes) - mean); d > 4.5*sd {
			t.Errorf("%d closes in %d answers, want %.0f ± %.0f", closes, requests, mean, 4.5*sd)
		}
		t.Logf("--close %v: %d of %d answers closed their connection (%.2f%%)", percent, closes, requests, 100*float64(closes)/requests)
		return perConn
	}
	first, second := run(), run()
	if fmt.Sprint(first) != fmt.Sprint(second) {
		t.Errorf("the same --seed gave different runs:\n%v\n%v", first, second)
	}
}

// TestBehaviourShown: GET /behaviour and zerosys_behaviour_info say what
// the shards play, each mix in its flag's syntax.
func TestBehaviourShown(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--status", "503:20,429:2.5", "--body-size", "0,100:50", "--close", "5", "--keepalive-requests", "7", "--seed", "9")
	resp, err := http.Get("http://" + p.metrics + "/behaviour")
	if err != nil {
		t.Fatal(err)
	}
	var b behaviour
	err = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	want := behaviour{Status: "200,503:20,429:2.5", BodySize: "0,100:50", Delay: "0s", ClosePercent: 5, KeepAliveRequests: 7, Seed: 9, ServedBy: true}
	if err != nil || b != want {
		t.Errorf("GET /behaviour: %+v, %v; want %+v", b, err, want)
	}
	m := p.scrape(t)
	if n := m.sum("zerosys_behaviour_info", `status="200,503:20,429:2.5"`, `body_size="0,100:50"`, `close_percent="5"`, `keepalive_requests="7"`); n != 1 {
		t.Errorf("zerosys_behaviour_info with the behaviour's labels: %v, want 1", n)
	}
	p.stop(t)
}
