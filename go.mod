module zerosys

go 1.26.8

require (
	github.com/pawelgaczynski/giouring v0.0.0-20230826085535-69588b89acb9
	go.uber.org/automaxprocs v1.6.0
	golang.org/x/sys v0.50.0
)

require github.com/prometheus/client_golang v1.25.0 // indirect
