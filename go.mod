module zerosys

go 1.26.8

require (
	github.com/pawelgaczynski/giouring v0.0.0-20230826085535-69588b89acb9
	go.uber.org/automaxprocs v1.6.0
	golang.org/x/sys v0.50.0
)

require github.com/cilium/ebpf v0.22.0

require (
	golang.org/x/net v0.62.0
	google.golang.org/grpc v1.85.0
)

require (
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_golang v1.25.0
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	google.golang.org/protobuf v1.36.12
)
