// Package body holds what every bench peer shares: its flags and the body
// bytes, so all peers (and zerosys) serve exactly the same response body.
package body

import (
	"flag"
	"fmt"
	"os"
)

// Default is zerosys's default body.
const Default = "Have a nice day!"

// Flags are the command-line flags every peer takes.
type Flags struct {
	Addr string
	Size int
}

// Parse reads -addr and -body-size.
func Parse() Flags {
	var f Flags
	flag.StringVar(&f.Addr, "addr", "127.0.0.1:8080", "listen address")
	flag.IntVar(&f.Size, "body-size", 0, "a body of this many bytes (0: \""+Default+"\")")
	flag.Parse()
	if f.Size < 0 {
		fmt.Fprintln(os.Stderr, "-body-size must be >= 0")
		os.Exit(2)
	}
	return f
}

// Bytes returns the body: Default for size 0, else the same pattern as
// zerosys --body-size N ('a'..'z' repeated, last byte '\n').
func Bytes(size int) []byte {
	if size == 0 {
		return []byte(Default)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	if size > 1 {
		b[size-1] = '\n'
	}
	return b
}
