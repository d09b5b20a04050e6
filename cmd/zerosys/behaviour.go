package main

import (
	"strconv"
	"strings"
	"time"

	"zerosys/shard"
)

// behaviour is what the shards play, as GET /behaviour shows it: each
// mix in the syntax its flag takes, so a value can be pasted back.
type behaviour struct {
	Status            string  `json:"status"`
	BodySize          string  `json:"body_size"`
	Delay             string  `json:"delay"`
	ClosePercent      float64 `json:"close_percent"`
	KeepAliveRequests int     `json:"keepalive_requests"`
	Seed              uint64  `json:"seed"`
	ServedBy          bool    `json:"served_by"`
}

// newBehaviour describes cfg's behaviour with the seed in use.
func newBehaviour(cfg *config, seed uint64) behaviour {
	size := "default"
	switch {
	case cfg.sizeBare || cfg.sizeMix != nil:
		size = mixString(cfg.bodySize, cfg.sizeBare, cfg.sizeMix)
	case cfg.body != "":
		size = strconv.Itoa(len(cfg.body))
	case cfg.bodyFile != "":
		size = "file:" + cfg.bodyFile
	}
	return behaviour{
		Status:            mixString(cfg.status, true, cfg.statusMix),
		BodySize:          size,
		Delay:             delayString(cfg.delay, cfg.delayMix),
		ClosePercent:      cfg.closePercent,
		KeepAliveRequests: cfg.keepaliveRequests,
		Seed:              seed,
		ServedBy:          cfg.servedBy,
	}
}

// mixString writes a mix back in fortio's syntax: the bare value first.
func mixString(bare int, hasBare bool, shares []shard.Share) string {
	var parts []string
	if hasBare {
		parts = append(parts, strconv.Itoa(bare))
	}
	for _, sh := range shares {
		parts = append(parts, strconv.Itoa(sh.Value)+":"+strconv.FormatFloat(float64(sh.PPM)/10_000, 'f', -1, 64))
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ",")
}

// delayString writes the delay mix back in --delay's syntax.
func delayString(def time.Duration, mix []shard.Share) string {
	parts := []string{def.String()}
	for _, sh := range mix {
		d := time.Duration(sh.Value) * time.Microsecond
		parts = append(parts, d.String()+":"+strconv.FormatFloat(float64(sh.PPM)/10_000, 'f', -1, 64))
	}
	return strings.Join(parts, ",")
}
