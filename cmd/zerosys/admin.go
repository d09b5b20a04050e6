package main

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"zerosys/shard"
)

// behaviourWait is how long PUT and DELETE /behaviour wait for every shard
// to answer by the new behaviour (they take it at their next loop turn).
const behaviourWait = 100 * time.Millisecond

// admin changes the shards' behaviour at run time: PUT /behaviour sets
// the start-up flags overridden by the query's parameters, DELETE returns
// to the start-up flags. Each change starts from the start-up flags, so
// the result depends on the request alone, never on the changes before.
type admin struct {
	srv   *server
	start *config // the start-up flags
	log   *slog.Logger
	token string // required as "Authorization: Bearer" when set
	open  bool   // without a token: PUT and DELETE allowed (loopback metrics address)

	mu     sync.Mutex // one change at a time; guards cur
	cur    behaviour
	seed   uint64
	change uint64 // changes made
}

// behaviourParams are the parameters PUT /behaviour takes, each in the
// syntax of the flag of the same name (size is --body-size).
var behaviourParams = []string{"status", "size", "delay", "close", "keepalive-requests", "header"}

func newAdmin(srv *server, start *config, seed uint64, log *slog.Logger) *admin {
	return &admin{
		srv: srv, start: start, log: log, seed: seed,
		token: start.adminToken,
		open:  start.adminToken == "" && loopbackAddr(start.metricsAddr),
		cur:   newBehaviour(start, seed),
	}
}

// loopbackAddr reports whether a listen address only takes connections
// from this host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// current is the behaviour the shards play now.
func (a *admin) current() behaviour {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur
}

func (a *admin) serveGet(w http.ResponseWriter, _ *http.Request) {
	writeBehaviour(w, http.StatusOK, a.current())
}

// allowed checks a PUT or DELETE's credentials and answers 403 if they
// fall short.
func (a *admin) allowed(w http.ResponseWriter, r *http.Request) bool {
	if a.token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1 {
			return true
		}
		http.Error(w, "PUT and DELETE /behaviour need Authorization: Bearer with the --admin-token", http.StatusForbidden)
		return false
	}
	if a.open {
		// Loopback without a token: refuse a page in a browser that
		// reached here by a name of its own (DNS rebinding).
		if host, _, err := net.SplitHostPort(r.Host); err == nil && loopbackAddr(net.JoinHostPort(host, "0")) {
			return true
		}
		http.Error(w, "PUT and DELETE /behaviour without --admin-token take only Host: localhost or a loopback address", http.StatusForbidden)
		return false
	}
	http.Error(w, "PUT and DELETE /behaviour are refused: --metrics-addr is not a loopback address and no --admin-token is set", http.StatusForbidden)
	return false
}

func (a *admin) servePut(w http.ResponseWriter, r *http.Request) {
	if !a.allowed(w, r) {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "PUT /behaviour: the query: "+err.Error(), http.StatusBadRequest)
		return
	}
	cfg, err := a.start.withBehaviour(q)
	if err != nil {
		http.Error(w, "PUT /behaviour: "+err.Error(), http.StatusBadRequest)
		return
	}
	a.apply(w, r, cfg)
}

func (a *admin) serveDelete(w http.ResponseWriter, r *http.Request) {
	if !a.allowed(w, r) {
		return
	}
	a.apply(w, r, a.start)
}

// apply prepares cfg's behaviour for every shard, then hands it to each:
// either every shard changes or, when it cannot be prepared, none does.
func (a *admin) apply(w http.ResponseWriter, r *http.Request, cfg *config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	prepared := make([]*shard.Prepared, len(a.srv.shards))
	for i := range a.srv.shards {
		b, err := cfg.shardBehaviour(i)
		if err == nil {
			prepared[i], err = shard.Prepare(b)
		}
		if err != nil {
			http.Error(w, r.Method+" /behaviour: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	errs := make([]error, len(prepared))
	var wg sync.WaitGroup
	for i, s := range a.srv.shards {
		wg.Go(func() { errs[i] = s.SetBehaviour(prepared[i], behaviourWait) })
	}
	wg.Wait()
	a.change++
	a.cur = newBehaviour(cfg, a.seed)
	a.log.Info("behaviour changed", "method", r.Method, "query", r.URL.RawQuery, "from", r.RemoteAddr,
		"status", a.cur.Status, "body_size", a.cur.BodySize, "delay", a.cur.Delay,
		"close_percent", a.cur.ClosePercent, "keepalive_requests", a.cur.KeepAliveRequests, "change", a.change)
	if err := errors.Join(errs...); err != nil {
		a.log.Warn("behaviour change slow", "err", err)
		http.Error(w, r.Method+" /behaviour: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeBehaviour(w, http.StatusOK, a.cur)
}

func writeBehaviour(w http.ResponseWriter, code int, b behaviour) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(b)
}

// withBehaviour is c with the behaviour parameters of q in place of their
// flags, checked as the flags are.
func (c *config) withBehaviour(q url.Values) (*config, error) {
	n := *c
	n.headers = append(headerList(nil), c.headers...)
	for name, vals := range q {
		known := false
		for _, p := range behaviourParams {
			known = known || p == name
		}
		if !known {
			return nil, fmt.Errorf("unknown parameter %q (known: %s)", name, strings.Join(behaviourParams, ", "))
		}
		if name != "header" && len(vals) > 1 {
			return nil, fmt.Errorf("parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		var err error
		switch name {
		case "status":
			n.statusSpec = v
		case "size":
			n.sizeSpec, n.body, n.bodyFile = v, "", ""
		case "delay":
			n.delaySpec = v
		case "close":
			if n.closePercent, err = strconv.ParseFloat(v, 64); err != nil {
				return nil, fmt.Errorf("close=%q: want a percentage from 0 to 100", v)
			}
		case "keepalive-requests":
			if n.keepaliveRequests, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("keepalive-requests=%q: want 0 (no limit) or more", v)
			}
		case "header":
			for _, h := range vals {
				name, value, ok := strings.Cut(h, ":")
				if !ok {
					return nil, fmt.Errorf("header=%q: want Name:Value", h)
				}
				n.headers = append(n.headers, strings.TrimSpace(name)+": "+strings.TrimSpace(value))
			}
		}
	}
	// The mixes are parsed again from their specs; a flag's bare body
	// stays only if no size was given.
	n.status, n.statusMix, n.sizeMix, n.sizeBare, n.delayMix = 0, nil, nil, false, nil
	if err := n.validate(); err != nil {
		return nil, err
	}
	return &n, nil
}

// shardBehaviour is the behaviour shard i plays under c: the response
// with its X-Served-By, the delays and the closes.
func (c *config) shardBehaviour(i int) (shard.Behaviour, error) {
	resp, err := c.response()
	if err != nil {
		return shard.Behaviour{}, err
	}
	h, err := c.servedByHeader(i)
	if err != nil {
		return shard.Behaviour{}, err
	}
	if h != "" {
		resp.Headers = append(append([]string(nil), resp.Headers...), h)
	}
	return shard.Behaviour{
		Response:          resp,
		KeepAliveRequests: c.keepaliveRequests,
		ClosePerMillion:   uint32(c.closePercent*10_000 + 0.5),
		Delay:             c.delay,
		DelayMix:          c.delayMix,
	}, nil
}
