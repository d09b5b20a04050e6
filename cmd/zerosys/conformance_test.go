package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The conformance corpus (testdata/conformance.txt) holds requests drawn
// from RFC 9110/9112 and public HTTP/1.1 test and smuggling material, each
// with the answer an origin server owes it. Every case is sent on a fresh
// connection followed, in the same write, by a follow-up request: a server
// that frames the case wrongly (a desync) answers the follow-up when it
// should not, or not when it should.

// confCase is one line of the corpus.
type confCase struct {
	line    int
	expect  string // comma list of "200", "200-close" or an error status
	id      string
	name    string
	source  string
	request string
}

// followUp is pipelined behind every case. It asks to close, so a server
// that answers it ends the exchange at once.
const followUp = "GET /follow-up HTTP/1.1\r\nHost: follow-up\r\nConnection: close\r\n\r\n"

func loadCorpus(t *testing.T) []confCase {
	t.Helper()
	b, err := os.ReadFile("testdata/conformance.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cases []confCase
	ids := map[string]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, " | ", 4)
		if len(f) != 4 {
			t.Fatalf("conformance.txt:%d: want `expect | id | name | source | \"request\"`", i+1)
		}
		// The request is the last field; the name and the source may not
		// hold " | ", the request may.
		k := strings.Index(f[3], ` | "`)
		if k < 0 {
			t.Fatalf("conformance.txt:%d: no request", i+1)
		}
		name, source := f[2], f[3][:k]
		req, err := requestExpr(f[3][k+3:])
		if err != nil {
			t.Fatalf("conformance.txt:%d: request: %v", i+1, err)
		}
		if ids[f[1]] {
			t.Fatalf("conformance.txt:%d: id %s twice", i+1, f[1])
		}
		ids[f[1]] = true
		cases = append(cases, confCase{line: i + 1, expect: f[0], id: f[1], name: name, source: source, request: req})
	}
	return cases
}

// requestExpr evaluates a request written as Go string literals and
// repeat("x", n), joined by " + ".
func requestExpr(e string) (string, error) {
	var b strings.Builder
	for e = strings.TrimSpace(e); e != ""; e = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(e), "+")) {
		if rest, ok := strings.CutPrefix(e, "repeat("); ok {
			lit, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return "", err
			}
			s, _ := strconv.Unquote(lit)
			num, after, ok := strings.Cut(strings.TrimPrefix(rest[len(lit):], ", "), ")")
			n, err := strconv.Atoi(num)
			if !ok || err != nil {
				return "", fmt.Errorf("repeat: %q", rest)
			}
			b.WriteString(strings.Repeat(s, n))
			e = after
			continue
		}
		lit, err := strconv.QuotedPrefix(e)
		if err != nil {
			return "", fmt.Errorf("%q: %w", e, err)
		}
		s, _ := strconv.Unquote(lit)
		b.WriteString(s)
		e = e[len(lit):]
	}
	return b.String(), nil
}

// confResult is what a server did with one case.
type confResult struct {
	statuses []int // statuses of the answers, in order (interim 1xx left out)
	closed   bool  // the server closed the connection after its answers
	timedOut bool  // the server kept the connection open and silent
	garbled  string
}

func (r confResult) String() string {
	var b strings.Builder
	for i, s := range r.statuses {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(strconv.Itoa(s))
	}
	switch {
	case r.garbled != "":
		b.WriteString(" garbled: " + r.garbled)
	case r.timedOut:
		b.WriteString(" (then silence)")
	case r.closed:
		b.WriteString(" close")
	}
	if len(r.statuses) == 0 && r.closed {
		return "closed without an answer"
	}
	return b.String()
}

// verdict says whether r is what c expects: "" when it is. After the
// listed answers, a final plain 200 means the follow-up must be answered
// 200 and then the connection closes (the follow-up asks to); anything
// else means the connection closes with nothing more.
func (c confCase) verdict(r confResult) string {
	if r.garbled != "" {
		return "garbled answer"
	}
	want := strings.Split(c.expect, ",")
	var statuses []string
	for _, w := range want {
		statuses = append(statuses, strings.TrimSuffix(w, "-close"))
	}
	if want[len(want)-1] == "200" {
		statuses = append(statuses, "200") // the follow-up
	}
	var got []string
	for _, s := range r.statuses {
		got = append(got, strconv.Itoa(s))
	}
	if strings.Join(got, ",") != strings.Join(statuses, ",") || !r.closed {
		return "want " + strings.Join(statuses, ",") + ", then close"
	}
	return ""
}

// probe sends c and its follow-up to addr and reads what comes back.
func probe(addr string, c confCase) confResult {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return confResult{garbled: err.Error()}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(1500 * time.Millisecond))
	if _, err := conn.Write([]byte(c.request + followUp)); err != nil {
		return confResult{garbled: "write: " + err.Error()}
	}
	var res confResult
	br := bufio.NewReader(conn)
	head := strings.HasPrefix(c.request, "HEAD ")
	for {
		status, err := readAnswer1(br, head && len(res.statuses) == 0)
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, errEOF), errors.Is(err, syscall.ECONNRESET):
				res.closed = true
			case errors.As(err, &ne) && ne.Timeout():
				res.timedOut = true
			default:
				res.garbled = err.Error()
			}
			return res
		}
		if status >= 200 {
			res.statuses = append(res.statuses, status)
		}
	}
}

// errEOF is a clean end between two answers.
var errEOF = errors.New("closed between answers")

// readAnswer1 reads one answer: status line, fields, and a body by
// Content-Length (none for HEAD, 1xx, 204, 304).
func readAnswer1(br *bufio.Reader, head bool) (int, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		if line == "" && errors.Is(err, io.EOF) {
			return 0, errEOF
		}
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, fmt.Errorf("status line %q", line)
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length, chunked := 0, false
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("fields: %w", err)
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		name, value, _ := strings.Cut(l, ":")
		switch strings.ToLower(name) {
		case "content-length":
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(value), "chunked")
		}
	}
	if head || status < 200 || status == 204 || status == 304 {
		return status, nil
	}
	if chunked {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return 0, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(l, ";", 2)[0]), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("chunk size %q", l)
			}
			if _, err := br.Discard(int(n) + 2); err != nil {
				return 0, err
			}
			if n == 0 {
				return status, nil
			}
		}
	}
	if _, err := br.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

// TestConformance runs the corpus against zerosys: every case must get
// its answer, and no follow-up may be answered that should not be (or
// the other way round).
func TestConformance(t *testing.T) {
	cases := loadCorpus(t)
	if len(cases) < 200 {
		t.Fatalf("the corpus has %d cases; it is meant to hold at least 200", len(cases))
	}
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--h2c", "off") // an HTTP/1 port: the corpus has the HTTP/2 preface answered 505
	failed := 0
	for _, c := range cases {
		r := probe(p.addr, c)
		if v := c.verdict(r); v != "" {
			failed++
			t.Errorf("%s %s (conformance.txt:%d): %s; got %s", c.id, c.name, c.line, v, r)
		}
	}
	t.Logf("%d cases, %d as the RFC says, %d not", len(cases), len(cases)-failed, failed)
	p.stop(t)
}

// TestConformanceNginx runs the corpus against nginx and zerosys side by
// side and writes the comparison (make conformance). It fails nothing on
// nginx's account: it shows where the two differ.
func TestConformanceNginx(t *testing.T) {
	out := os.Getenv("ZEROSYS_CONFORMANCE_OUT")
	if out == "" {
		t.Skip("set ZEROSYS_CONFORMANCE_OUT (make conformance) to compare with nginx")
	}
	nginx := needTool(t, "nginx")
	cases := loadCorpus(t)
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--h2c", "off") // an HTTP/1 port: the corpus has the HTTP/2 preface answered 505
	nginxAddr := startNginx(t, nginx)
	var zFail, nFail int
	var rows []string
	for _, c := range cases {
		zr, nr := probe(p.addr, c), probe(nginxAddr, c)
		zv, nv := c.verdict(zr), c.verdict(nr)
		if zv != "" {
			zFail++
		}
		if nv != "" {
			nFail++
		}
		if zv != "" || nv != "" {
			rows = append(rows, fmt.Sprintf("| %s %s | %s | %s | %s |", c.id, c.name, c.expect, mark(zr, zv), mark(nr, nv)))
		}
	}
	p.stop(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# HTTP/1.1 conformance: zerosys and nginx\n\n")
	fmt.Fprintf(&b, "Generated by `make conformance` from `cmd/zerosys/testdata/conformance.txt` (%d cases, each followed by a pipelined follow-up request).\n\n", len(cases))
	fmt.Fprintf(&b, "| server | as the RFC says | not |\n|---|---|---|\n| zerosys | %d | %d |\n| nginx %s | %d | %d |\n\n", len(cases)-zFail, zFail, nginxVersion(nginx), len(cases)-nFail, nFail)
	fmt.Fprintf(&b, "Cases where either differs from the expected answer (statuses as seen; the sources are in the corpus):\n\n| case | expected | zerosys | nginx |\n|---|---|---|---|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("zerosys %d/%d, nginx %d/%d as expected; written to %s", len(cases)-zFail, len(cases), len(cases)-nFail, len(cases), out)
}

func mark(r confResult, v string) string {
	if v == "" {
		return "ok"
	}
	return "**" + r.String() + "**"
}

// startNginx runs nginx answering every request 200 on a free loopback
// port, as the benchmarks configure it, and stops it when the test ends.
func startNginx(t *testing.T, nginx string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path %[1]s;
	proxy_temp_path %[1]s;
	fastcgi_temp_path %[1]s;
	uwsgi_temp_path %[1]s;
	scgi_temp_path %[1]s;
	server {
		listen %[2]s;
		location / { return 200 "Have a nice day!"; }
	}
}
`, dir, addr)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", path, "-p", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nginxVersion(nginx string) string {
	out, _ := exec.Command(nginx, "-v").CombinedOutput()
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: nginx/"))
}
