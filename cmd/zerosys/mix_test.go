package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"zerosys/shard"
)

func TestParseMix(t *testing.T) {
	cases := []struct {
		spec   string
		def    int
		shares []shard.Share
		err    string
	}{
		{"200", 200, nil, ""},
		{"503", 503, nil, ""},
		{"503:1", 200, []shard.Share{{Value: 503, PPM: 10_000}}, ""},
		{"200,503:5,429:2", 200, []shard.Share{{Value: 503, PPM: 50_000}, {Value: 429, PPM: 20_000}}, ""},
		{"503:0.1, 429:2.5", 200, []shard.Share{{Value: 503, PPM: 1_000}, {Value: 429, PPM: 25_000}}, ""},
		{"500:100", 200, []shard.Share{{Value: 500, PPM: 1_000_000}}, ""},
		{"503:60,429:50", 0, nil, "add up to 110"},
		{"200,204", 0, nil, "at most one value without a percentage"},
		{"503:1,503:2", 0, nil, "given twice"},
		{"200:5", 0, nil, "gets already"},
		{"99:5", 0, nil, "final status"},
		{"503:0", 0, nil, "from 0.0001"},
		{"503:0.00001", 0, nil, "from 0.0001"},
		{"503:x", 0, nil, "from 0.0001"},
		{"abc", 0, nil, "final status"},
	}
	for _, c := range cases {
		def, _, shares, err := parseMix("status", c.spec, 200, statusValue)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want one saying %q", c.spec, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.spec, err)
		case def != c.def || fmt.Sprint(shares) != fmt.Sprint(c.shares):
			t.Errorf("%q: %d %v, want %d %v", c.spec, def, shares, c.def, c.shares)
		}
	}
	if _, _, _, err := parseMix("body-size", "128:80,99999999:20", 0, sizeValue); err == nil {
		t.Error("a body size over 64 MiB was taken")
	}
	// A bare 0 is an empty body for the remainder; without a bare value
	// the remainder keeps the default body.
	if v, bare, _, err := parseMix("body-size", "0,100:50", 0, sizeValue); err != nil || v != 0 || !bare {
		t.Errorf("\"0,100:50\": %d %v %v, want a bare 0", v, bare, err)
	}
	if _, bare, _, err := parseMix("body-size", "100:50", 0, sizeValue); err != nil || bare {
		t.Errorf("\"100:50\": bare %v %v, want none", bare, err)
	}
}

// TestStatusAndSizeMix: --status and --body-size mixes give each status
// and size its share of answers, within binomial bounds, drawn
// independently; every answer is whole (its Content-Length holds).
func TestStatusAndSizeMix(t *testing.T) {
	p := startZerosys(t, "--sqpoll", "off", "--shards", "1", "--status", "503:20,429:10", "--body-size", "100:50,0:25", "--seed", "7")
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	const n = 4000
	statuses, sizes, pairs := map[int]int{}, map[int]int{}, map[[2]int]int{}
	for i := 0; i < n; i += 100 {
		fmt.Fprint(c, strings.Repeat("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 100))
		for range 100 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			statuses[resp.StatusCode]++
			sizes[len(b)]++
			pairs[[2]int{resp.StatusCode, len(b)}]++
		}
	}
	within := func(what string, got int, percent float64) {
		mean := n * percent / 100
		sd := math.Sqrt(n * percent / 100 * (1 - percent/100))
		if math.Abs(float64(got)-mean) > 4.5*sd {
			t.Errorf("%s: %d of %d, want %.0f ± %.0f", what, got, n, mean, 4.5*sd)
		}
	}
	within("503", statuses[503], 20)
	within("429", statuses[429], 10)
	within("200", statuses[200], 70)
	within("100-byte bodies", sizes[100], 50)
	within("empty bodies", sizes[0], 25)
	within("default bodies", sizes[len("Have a nice day!")], 25)
	// Status and size are drawn apart: each pair gets the product.
	within("503 with 100 bytes", pairs[[2]int{503, 100}], 20*50/100.0)
	within("429 with an empty body", pairs[[2]int{429, 0}], 10*25/100.0)
	within("200 with the default body", pairs[[2]int{200, len("Have a nice day!")}], 70*25/100.0)
	t.Logf("statuses %v, body sizes %v over %d answers", statuses, sizes, n)
	c.Close() // before the stop: an open connection would wait out the drain
	p.stop(t)
}

// TestMixRefusedAtStart: a mix that cannot be is refused at start with
// one line that says why.
func TestMixRefusedAtStart(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "503:60,429:50"}, "add up to 110, over 100"},
		{[]string{"--status", "500:1,501:1,502:1,503:1", "--body-size", "1:1,2:1,3:1,4:1,5:1,6:1,7:1"}, "make 40 kinds of answer; at most 32"},
	} {
		args := append([]string{"--addr", "127.0.0.1:0", "--metrics-addr", "", "--sqpoll", "off"}, c.args...)
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("zerosys %v: %v, %q; want a failure saying %q", c.args, err, out, c.want)
		}
	}
}
