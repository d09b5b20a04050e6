package main

import (
	"io"
	"strings"
	"testing"

	"zerosys/affinity"
)

func TestAutoSQPollPlan(t *testing.T) {
	cases := []struct {
		name    string
		allowed affinity.CPUSet
		args    []string
		want    string // Plan.String() must contain it
	}{
		{"two CPUs: a shard and its poller", affinity.CPUSet{0, 1}, nil, "sqpoll=on adaptive: shard 0 -> cpu 0 (poller cpu 1)"},
		{"one CPU: no poller", affinity.CPUSet{3}, nil, "sqpoll=off: shard 0 -> cpu 3"},
		{"more shards than pairs: no pollers", affinity.CPUSet{0, 1}, []string{"--shards", "2"}, "2 shards, sqpoll=off"},
		{"four CPUs: two pairs", affinity.CPUSet{0, 1, 2, 3}, nil, "shard 1 -> cpu 2 (poller cpu 3)"},
		{"shard CPU named: poller on a spare one", affinity.CPUSet{0, 1}, []string{"--cpus", "1"}, "shard 0 -> cpu 1 (poller cpu 0)"},
		{"explicit on may share", affinity.CPUSet{0, 1}, []string{"--sqpoll", "on", "--cpus", "1", "--poller-cpus", "1"}, "(poller cpu 1, shared)"},
		{"explicit off", affinity.CPUSet{0, 1}, []string{"--sqpoll", "off"}, "2 shards, sqpoll=off"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := parseConfig(c.args, func(string) string { return "" }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			p, err := cfg.plan(c.allowed)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.String(), c.want) {
				t.Errorf("plan %q, want it to contain %q", p.String(), c.want)
			}
		})
	}
}

func TestEnvTwins(t *testing.T) {
	env := map[string]string{
		"ZEROSYS_MAX_CONNS": "77",
		"ZEROSYS_MODE":      "close",
		"ZEROSYS_HEADER":    "X-A: 1\nX-B: 2",
		"ZEROSYS_SQPOLL":    "on",
	}
	cfg, err := parseConfig([]string{"--sqpoll", "off"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.maxConns != 77 || cfg.mode != "close" || len(cfg.headers) != 2 || cfg.headers[1] != "X-B: 2" {
		t.Errorf("env twins not applied: %+v", cfg)
	}
	if cfg.sqpoll != "off" {
		t.Errorf("--sqpoll on the command line must win over ZEROSYS_SQPOLL; got %q", cfg.sqpoll)
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "ZEROSYS_MAX_CONNS" {
			return "many"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "ZEROSYS_MAX_CONNS") {
		t.Errorf("a bad env twin must be named in the error, got %v", err)
	}
}
