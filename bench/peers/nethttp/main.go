// Command nethttp is the Go net/http bench peer: one handler that writes the
// prepared body. Run it with GOMAXPROCS set to its CPU budget.
package main

import (
	"log"
	"net/http"
	"strconv"

	"zerosys/bench/peers/internal/body"
)

func main() {
	f := body.Parse()
	b := body.Bytes(f.Size)
	cl := []string{strconv.Itoa(len(b))}
	ct := []string{"text/plain"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = ct
		hd["Content-Length"] = cl
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
	})
	srv := &http.Server{Addr: f.Addr, Handler: h}
	log.Fatal(srv.ListenAndServe())
}
