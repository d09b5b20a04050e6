package shard

import "zerosys/shard/httpwire"

// This file is the protocol side of a connection: it turns received bytes
// into queued answers and says when the connection should end. It knows
// nothing of sockets, operations or phases; the lifecycle (conn.go) calls
// it with bytes and acts on what it returns. HTTP/1.1 is the only protocol
// today; another (HTTP/2) becomes a second state beside http1, chosen per
// connection, with a switch rather than an interface on the request path.

// ending is what a protocol decided about the connection.
type ending uint8

const (
	keepOpen     ending = iota // go on reading requests
	endLinger                  // close after the queued answers; input may still arrive, so half-close and drain
	endNoLinger                // close after the queued answers; the client sends nothing more
	endUpgradeH2               // the first request asked for h2c (h2upgrade.go): switch, and answer it on stream 1
)

// protoEnv is what a protocol needs from the shard, refreshed by the engine
// before it feeds bytes: plain values, so feeding costs no call out.
type protoEnv struct {
	now        int64 // monotonic ns
	closeAll   bool  // close after every answer (close mode or draining)
	maxPending uint32
	sets       *respSets // the response sets; answers are framed with the current one
	keepMax    uint32    // close after this many answers (0: no limit)
	statusCum  []uint32  // cumulative shares (ppm) of the statuses after the first; nil: one status
	sizeCum    []uint32  // the same for body sizes
	sizes      int       // body sizes, the first included (kind = status*sizes + size)
	delays     []int64   // delays in ns: the remainder's, then the mix's; nil: none
	delayCum   []uint32  // cumulative shares of the mix's delays
	delayBkt   []uint8   // each delay's histogram bucket
	delayed    *uint64   // counter: answers delayed
	delayHist  *histogram
	table      *table // the current behaviour

	// Per-request knobs; knobs is nil when they are off.
	knobs    *knobs     // the shard's scratch for one request's knobs
	knobLim  knobLimits //
	pattern  []byte     // letters a-z over and over: size knobs' bodies are prefixes
	closePPM uint32     // close after an answer with this probability, per million
	rng      *uint64    // the shard's random state (splitmix64)
	requests *uint64    // counter: complete requests framed
	rejected *uint64    // counter: requests refused

	h2c        bool   // Upgrade: h2c is taken (H2CAuto)
	h2settings []byte // the HTTP2-Settings payload of the request that asks, decoded (capacity maxH2Settings)
}

// endByPolicy reports whether the connection ends after its n-th answer
// by the server's choice: the keep-alive limit or the close mix.
func (env *protoEnv) endByPolicy(n uint32) bool {
	if env.keepMax > 0 && n >= env.keepMax {
		return true
	}
	return env.closePPM > 0 && draw(env.rng, 1_000_000) < env.closePPM
}

// kind draws the kind of the next answer: a status and a body size from
// their mixes. Without mixes it is 0 and costs a branch.
func (env *protoEnv) kind() int {
	if env.statusCum == nil && env.sizeCum == nil {
		return 0
	}
	return pick(env.rng, env.statusCum)*env.sizes + pick(env.rng, env.sizeCum)
}

// due draws the time the next answer may leave: 0 (at once) without
// delays, else now plus a delay drawn from the mix.
func (env *protoEnv) due() int64 {
	at, bkt := env.drawDue()
	env.countDelay(at, bkt)
	return at
}

// drawDue is due without counting the delay (countDelay does, once the
// answer is sure to wait): its time and its histogram bucket.
func (env *protoEnv) drawDue() (at int64, bkt uint8) {
	if env.delays == nil {
		return 0, 0
	}
	i := pick(env.rng, env.delayCum)
	if d := env.delays[i]; d > 0 {
		return env.now + d, env.delayBkt[i]
	}
	return 0, 0
}

// countDelay counts an answer that waits until at (0: it does not).
func (env *protoEnv) countDelay(at int64, bkt uint8) {
	if at > 0 {
		*env.delayed++
		env.delayHist.add(bkt, at-env.now, 1)
	}
}

// pick draws an index from cumulative shares: i+1 for the i-th share, 0
// for the rest.
func pick(rng *uint64, cum []uint32) int {
	if cum == nil {
		return 0
	}
	r := draw(rng, 1_000_000)
	for i, c := range cum {
		if r < c {
			return i + 1
		}
	}
	return 0
}

// draw returns a number in [0, n) from the splitmix64 sequence at *state:
// a few multiplies, no allocation, the same sequence for the same seed.
func draw(state *uint64, n uint32) uint32 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return uint32((z >> 32) * uint64(n) >> 32)
}

// http1 is one connection's HTTP/1.1 state.
type http1 struct {
	cust       custom // the custom answer (knobs) and the head capture
	parser     httpwire.Parser
	midRequest bool   // the parser holds part of a request
	answers    uint32 // requests framed on this connection
	reqStart   int64  // monotonic ns: the current request's first byte (or the accept)
}

// reset prepares h for a new connection; buf is its custom buffer (nil
// without knobs).
func (h *http1) reset(lim httpwire.Limits, now int64, buf []byte) {
	h.parser.Reset(lim)
	h.midRequest, h.answers, h.reqStart = false, 0, now
	h.cust = custom{buf: buf}
}

// wholeHead is the head of the request that ended in fed, when it is at
// hand: in fed from its first byte, or kept by capture.
func (h *http1) wholeHead(fed []byte, req httpwire.RequestInfo) ([]byte, bool) {
	if h.cust.capLen == 0 && int(req.HeadLen) <= len(fed) {
		return fed[:req.HeadLen], true
	}
	if h.cust.capLen == 0 {
		return nil, false // not kept (no custom buffer)
	}
	return h.head(fed, req), true
}

// startRequest notes that the parser holds part of a request: the
// header timeout runs from its first byte.
func (h *http1) startRequest(now int64) {
	if !h.midRequest {
		h.midRequest = true
		if h.answers > 0 {
			h.reqStart = now
		}
	}
}

// waitingForHead reports whether the connection owes us a request head: it
// is mid-request, or new and silent. The header timeout runs from reqStart.
func (h *http1) waitingForHead() bool { return h.midRequest || h.answers == 0 }

// feed frames b into answers on q until b runs out, q is full or the
// connection is to end. It returns the bytes used (all of b when it ends:
// the rest is not read as requests) and the decision. more says further
// input is already buffered after b.
func (h *http1) feed(b []byte, more bool, q *answerQueue, env *protoEnv) (int, ending) {
	total := len(b)
	for len(b) > 0 && !q.full(env.maxPending) {
		n, r := h.parser.Feed(b)
		fed := b[:n]
		b = b[n:]
		switch r {
		case httpwire.NeedMore:
			h.startRequest(env.now)
			if h.cust.buf != nil {
				h.capture(fed, env.knobs != nil, h.answers == 0 && env.h2c)
			}
		case httpwire.Continue:
			h.startRequest(env.now) // its body is to come
			q.push(vContinue, env.sets)
			if h.cust.buf != nil {
				h.capture(fed, env.knobs != nil, h.answers == 0 && env.h2c)
			}
		case httpwire.Request:
			*env.requests++
			h.midRequest = false
			h.answers++
			req := h.parser.Request()
			// An upgrade is looked for on a first request whose whole head
			// is at hand: in this read, or kept across reads (capture).
			if h.answers == 1 && env.h2c && !req.HasBody && !env.closeAll {
				if head, ok := h.wholeHead(fed, req); ok && upgradeH2C(head, &env.h2settings) {
					h.cust.capLen = 0
					if req.QueryStart != 0 && env.knobs != nil {
						// Its knobs apply on stream 1: the head is kept, as
						// the buffer it came in may go before it is answered.
						h.cust.capLen = copy(h.cust.buf[customHeadroom:], head)
					}
					return total - len(b), endUpgradeH2
				}
			}
			closeAfter := env.closeAll || !req.KeepAlive || env.endByPolicy(h.answers)
			v, at, knobbed := variant(0), int64(0), false
			if req.QueryStart != 0 && env.knobs != nil {
				v, at, closeAfter, knobbed = h.answerKnobs(h.head(fed, req), req, closeAfter, env)
			}
			h.cust.capLen = 0
			if !knobbed {
				v, at = kindVariant(env.kind(), answerVariant(req, closeAfter)), env.due()
			}
			q.pushAt(v, at, env.sets)
			if debugChecks && traceAnswers != nil && v == vCustom {
				traceAnswers(q, v, h.cust.bytes())
			}
			if closeAfter {
				// Linger when input may still come: bytes already here,
				// or a client that expected to keep the connection
				// (close mode, drain, the keep-alive limit, the close mix)
				// and may be sending its next request right now.
				if len(b) > 0 || more || req.KeepAlive {
					return total, endLinger
				}
				return total, endNoLinger
			}
		case httpwire.Error:
			*env.rejected++
			h.cust.capLen = 0
			q.push(errorVariant(h.parser.Status(), h.parser.Method() == httpwire.MethodHead), env.sets)
			// The rest of the request may still be arriving: read it away
			// so our answer is not destroyed by a reset.
			return total, endLinger
		}
	}
	return total - len(b), keepOpen
}
