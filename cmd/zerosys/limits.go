package main

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"zerosys/shard"
)

// fdMargin is the descriptors kept back from the connection slots: the
// listeners, rings, eventfds, the metrics server and its clients, the
// steering maps, logs.
const fdMargin = 128

// slotsFromFDLimit is the default --max-conns: the descriptor limit, its
// soft value raised to the hard one (as the Go runtime does at start, done
// again here in case it could not), less a margin and what splicing keeps
// open, shared out over the shards; at least 64 and at most what a shard
// can address.
func slotsFromFDLimit(shards int, splice bool) int {
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 4096
	}
	if l.Cur < l.Max {
		raised := l
		raised.Cur = l.Max
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			l = raised
		}
	}
	perShard := int64(0)
	if splice {
		perShard = shard.SpliceFDs
	}
	n := (int64(min(l.Cur, 1<<40))-fdMargin)/int64(max(shards, 1)) - perShard
	return int(max(64, min(n, 1<<20-1)))
}

// somaxconn is net.core.somaxconn, the default backlog (the kernel caps a
// larger one to it); 4096 when it cannot be read.
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 4096
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 4096
	}
	return n
}
