// Command fasthttp is the fasthttp bench peer. Run it with GOMAXPROCS set to
// its CPU budget.
package main

import (
	"log"

	"github.com/valyala/fasthttp"

	"zerosys/bench/peers/internal/body"
)

func main() {
	f := body.Parse()
	b := body.Bytes(f.Size)
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.SetContentType("text/plain")
		ctx.Response.SetBodyRaw(b)
	}
	srv := &fasthttp.Server{
		Handler:                       h,
		Name:                          "fasthttp",
		Concurrency:                   1 << 20,
		MaxConnsPerIP:                 0,
		MaxRequestsPerConn:            0,
		NoDefaultDate:                 false,
		DisableHeaderNamesNormalizing: true,
	}
	log.Fatal(srv.ListenAndServe(f.Addr))
}
