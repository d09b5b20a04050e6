package check

import "os/exec"

func runHelp(bin string) (string, error) {
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if len(out) > 0 {
		err = nil // --help may exit non-zero; its text is what matters
	}
	return string(out), err
}
