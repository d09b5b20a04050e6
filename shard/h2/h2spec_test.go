package h2

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// h2specBinary finds h2spec: H2SPEC, $PATH, or the Go bin directory
// (`make test` installs it there).
func h2specBinary(t *testing.T) string {
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gobin := os.Getenv("GOBIN")
	if gobin == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gobin = filepath.Join(string(bytes.TrimSpace(out)), "bin")
		}
	}
	p := filepath.Join(gobin, "h2spec")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("h2spec not found (go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible, or set H2SPEC): %v", err)
	}
	return p
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestH2Spec runs every h2spec test case against the state machine: all
// must pass.
func TestH2Spec(t *testing.T) {
	addr := listen(t, Limits{}, newAnswer(200, "Have a nice day!"))
	host, port, _ := net.SplitHostPort(addr)
	out, _ := exec.Command(h2specBinary(t), "-h", host, "-p", port, "-o", "2", "-j", filepath.Join(t.TempDir(), "report.xml")).CombinedOutput()
	m := h2specSummary.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no summary from h2spec:\n%s", out)
	}
	t.Logf("h2spec: %s", m[0])
	if string(m[4]) != "0" || string(m[3]) != "0" {
		t.Fatalf("h2spec: %s\n%s", m[0], failures(out))
	}
}

// failures keeps h2spec's report of the failed cases.
func failures(out []byte) []byte {
	if i := bytes.Index(out, []byte("Failures:")); i >= 0 {
		return out[i:]
	}
	return out
}
