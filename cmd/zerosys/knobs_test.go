package main

import (
	"bufio"
	"fmt"
	"math"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"zerosys/shard"
)

// curlAnswer fetches url with curl and returns the head and the body.
func curlAnswer(t *testing.T, curl string, args ...string) (head, body string) {
	t.Helper()
	out, err := exec.Command(curl, append([]string{"-sS", "-i"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	h, b, _ := strings.Cut(string(out), "\r\n\r\n")
	if strings.HasPrefix(h, "HTTP/1.1 101 ") {
		h, b, _ = strings.Cut(b, "\r\n\r\n") // Upgrade: the answer follows
	}
	return h, b
}

// TestKnobs: each knob end to end with curl; a bad knob gets a 400 that
// names it while other connections go on; --request-knobs=false ignores
// them.
func TestKnobs(t *testing.T) {
	curl := needTool(t, "curl")
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--max-body-size", "100000", "--max-delay", "2s")
	// A keep-alive connection that must not notice the others' knobs.
	other, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	br := bufio.NewReader(other)
	plain := func() {
		t.Helper()
		fmt.Fprint(other, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("the other connection: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	plain()

	head, body := curlAnswer(t, curl, p.url("/any/path?status=503&cb=9"))
	if !strings.HasPrefix(head, "HTTP/1.1 503 Service Unavailable") || body != "Have a nice day!" {
		t.Errorf("status=503: %q %q", head, body)
	}
	head, body = curlAnswer(t, curl, p.url("/?size=70000"))
	if want := string(shard.PatternBody(70000)); !strings.Contains(head, "Content-Length: 70000") || body != want {
		t.Errorf("size=70000: %q and %d bytes, want the pattern body", head, len(body))
	}
	head, _ = curlAnswer(t, curl, p.url("/?header=X-Knob:yes&header=X-Other:two%20words"))
	if !strings.Contains(head, "\r\nX-Knob: yes\r\n") || !strings.Contains(head, "\r\nX-Other: two words") {
		t.Errorf("header knobs: %q", head)
	}
	head, _ = curlAnswer(t, curl, p.url("/?close=1"))
	if !strings.Contains(head, "\r\nConnection: close") {
		t.Errorf("close=1: %q", head)
	}
	_, body = curlAnswer(t, curl, "-H", "X-Forwarded-For: 10.1.2.3", p.url("/who?echo=1"))
	if !strings.HasPrefix(body, "GET /who?echo=1 HTTP/1.1\r\n") || !strings.Contains(body, "\r\nX-Forwarded-For: 10.1.2.3\r\n") || !strings.HasSuffix(body, "\r\n\r\n") {
		t.Errorf("echo=1: %q", body)
	}
	head, body = curlAnswer(t, curl, "-I", p.url("/?size=500&status=201"))
	if !strings.HasPrefix(head, "HTTP/1.1 201 Created") || !strings.Contains(head, "Content-Length: 500") || body != "" {
		t.Errorf("HEAD with knobs: %q %q", head, body)
	}
	t0 := time.Now()
	curlAnswer(t, curl, p.url("/?delay=300ms"))
	if d := time.Since(t0); d < 300*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("delay=300ms took %v", d)
	}
	for _, c := range []struct{ q, says string }{
		{"status=99", "status:"}, {"size=100001", "size:"}, {"delay=3s", "delay:"},
		{"header=Content-Length:1", "header:"}, {"close=maybe", "close:"}, {"status=503:70,500:70", "a mix"},
	} {
		head, body := curlAnswer(t, curl, p.url("/?"+c.q))
		if !strings.HasPrefix(head, "HTTP/1.1 400 Bad Request") || !strings.Contains(head, "Connection: close") || !strings.HasPrefix(body, "Bad Request: "+c.says) {
			t.Errorf("?%s: %q %q, want a 400 saying %q", c.q, head, body, c.says)
		}
		plain()
	}
	other.Close()
	p.stop(t)

	p = startZerosys(t, "--sqpoll", "off", "--request-knobs=false")
	if head, _ := curlAnswer(t, curl, p.url("/?status=503&delay=abc")); !strings.HasPrefix(head, "HTTP/1.1 200 OK") {
		t.Errorf("--request-knobs=false: %q", head)
	}
	p.stop(t)
}

// TestKnobMixRatios: a status mix in the query is drawn per request within
// statistical bounds, and a delay mix delays about its share.
func TestKnobMixRatios(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "2", "--seed", "5")
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	const n = 4000
	got := map[int]int{}
	slow := 0
	for range n {
		t0 := time.Now()
		fmt.Fprint(c, "GET /?status=503:25,429:5&delay=5ms:10 HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got[resp.StatusCode]++
		if time.Since(t0) >= 5*time.Millisecond {
			slow++
		}
	}
	for code, share := range map[int]float64{503: 0.25, 429: 0.05, 200: 0.70} {
		sigma := math.Sqrt(n * share * (1 - share))
		if d := math.Abs(float64(got[code]) - n*share); d > 4*sigma {
			t.Errorf("status %d: %d of %d, want %.0f ± %.0f", code, got[code], n, n*share, 4*sigma)
		}
	}
	// The share is the server's count: the client's clock would also
	// count an undelayed answer caught by a 5 ms stall of this VM. Every
	// delayed one must have taken 5 ms, though.
	delayed := p.scrape(t).sum("zerosys_answers_delayed_total")
	if sigma := math.Sqrt(n * 0.1 * 0.9); math.Abs(delayed-n*0.1) > 4*sigma {
		t.Errorf("%v of %d answers delayed 5 ms, want about %d", delayed, n, n/10)
	}
	if float64(slow) < delayed {
		t.Errorf("%d answers took 5 ms or more, fewer than the %v delayed", slow, delayed)
	}
	t.Logf("statuses %v, %v delayed, %d took 5 ms or more", got, delayed, slow)
	c.Close()
	p.stop(t)
}

// TestKnobsOverH2: the knobs on HTTP/2 streams, with real clients: curl
// with prior knowledge and by Upgrade (the upgraded request's knobs apply
// on stream 1), nghttp, and h2load with a status mix on many streams at
// once.
func TestKnobsOverH2(t *testing.T) {
	curl := needTool(t, "curl")
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--max-body-size", "100000", "--max-delay", "2s")
	for _, how := range []string{"--http2-prior-knowledge", "--http2"} {
		head, body := curlAnswer(t, curl, how, p.url("/any?status=503&header=X-Knob:yes"))
		if !strings.HasPrefix(head, "HTTP/2 503") || !strings.Contains(head, "\r\nx-knob: yes") || body != "Have a nice day!" {
			t.Errorf("%s status=503: %q %q", how, head, body)
		}
		head, body = curlAnswer(t, curl, how, p.url("/?size=70000"))
		if !strings.HasPrefix(head, "HTTP/2 200") || !strings.Contains(head, "content-length: 70000") || body != string(shard.PatternBody(70000)) {
			t.Errorf("%s size=70000: %q and %d bytes", how, head, len(body))
		}
		_, body = curlAnswer(t, curl, how, "-H", "X-Forwarded-For: 10.1.2.3", p.url("/who?echo=1"))
		if !strings.Contains(body, "/who?echo=1 HTTP/") || !strings.Contains(body, "10.1.2.3\r\n") {
			t.Errorf("%s echo=1: %q", how, body)
		}
		head, body = curlAnswer(t, curl, how, p.url("/?status=abc"))
		if !strings.HasPrefix(head, "HTTP/2 400") || !strings.HasPrefix(body, "Bad Request: status:") {
			t.Errorf("%s status=abc: %q %q", how, head, body)
		}
		t0 := time.Now()
		curlAnswer(t, curl, how, p.url("/?delay=300ms"))
		if d := time.Since(t0); d < 300*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("%s delay=300ms took %v", how, d)
		}
	}
	// A delayed stream and one at once on the same connection: the one at
	// once is not held back.
	if nghttp, err := exec.LookPath("nghttp"); err == nil {
		t0 := time.Now()
		out, err := exec.Command(nghttp, "-v", "-n", p.url("/?delay=1s"), p.url("/?status=201")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ":status: 201") || !strings.Contains(string(out), ":status: 200") {
			t.Errorf("nghttp: %v\n%s", err, out)
		}
		if d := time.Since(t0); d < time.Second {
			t.Errorf("nghttp took %v, want the 1 s delay", d)
		}
	}
	h2load := needTool(t, "h2load")
	out, err := exec.Command(h2load, "-n", "20000", "-c", "4", "-m", "32", p.url("/?status=503:25,201")).CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`status codes: (\d+) 2xx, \d+ 3xx, \d+ 4xx, (\d+) 5xx`).FindSubmatch(out)
	if m == nil || !strings.Contains(string(out), "20000 done") || !strings.Contains(string(out), " 0 errored, 0 timeout") { // h2load counts 5xx as failed
		t.Fatalf("h2load:\n%s", out)
	}
	ok, _ := strconv.Atoi(string(m[1]))
	failed, _ := strconv.Atoi(string(m[2]))
	if share := float64(failed) / 20000; ok+failed != 20000 || math.Abs(share-0.25) > 0.02 {
		t.Errorf("h2load: %d 2xx, %d 5xx; want a quarter 503", ok, failed)
	}
	p.stop(t)
}
