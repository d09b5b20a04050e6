package shard

import (
	"fmt"
	"log/slog"
	"time"

	"zerosys/listener/steer"
	"zerosys/shard/httpwire"
)

// Mode is how connections are treated after an answer.
type Mode uint8

const (
	// ModeKeepAlive keeps each connection for further (pipelined) requests
	// until the client closes it or asks "Connection: close".
	ModeKeepAlive Mode = iota
	// ModeClose answers one request per connection, then closes it.
	ModeClose
)

// Config is one shard's configuration. Fields left zero take the documented
// defaults; ListenFD is required.
type Config struct {
	ID       int // shard index, for stats and logs
	ListenFD int // listening socket (SO_REUSEPORT, one per shard)
	CPU      int // CPU to pin the shard thread to; -1 leaves it unpinned

	SQPoll    bool          // use a kernel SQPOLL poller; without it the ring is SINGLE_ISSUER|DEFER_TASKRUN and the loop waits for completions
	PollerCPU int           // with SQPoll: the poller's CPU (SQ_AFF)
	SQIdle    time.Duration // with SQPoll: how long the poller spins without work before it sleeps; default 100ms
	// Spin, with SQPoll, busy-polls the completion queue forever. Without
	// it (adaptive), the shard busy-polls while completions keep coming
	// and, after SpinWindow without any, blocks in io_uring_enter until one
	// arrives: one syscall per idle period, none per request under load.
	Spin       bool
	SpinWindow time.Duration // adaptive: how long to spin without completions before blocking; default 10ms

	Mode     Mode
	Response Response
	Limits   httpwire.Limits

	MaxConns   int // connection slots; default 4096, at most 1<<20 - 1
	RecvBuffer int // bytes of a receive buffer; default 4096
	// Recv chooses where received bytes land; see RecvMode.
	Recv          RecvMode
	MaxPipeline   int           // answers queued per connection before reading pauses; default 1024
	HeaderTimeout time.Duration // a request's head must arrive within this; default 30s
	IdleTimeout   time.Duration // keep-alive connection without a request; default 75s
	SendTimeout   time.Duration // a batch of answers may wait this long for the client to read it; default 60s
	LingerTimeout time.Duration // reading to EOF after the last answer; default 5s

	// SendZC sends answers of at least zcMin bytes with IORING_OP_SEND_ZC.
	SendZC bool
	// SpliceMin splices the body of every prepared answer of at least this
	// many bytes from a memory file into the socket instead of copying it
	// (splice.go); 0 never does. The shard then keeps SpliceFDs more
	// descriptors open.
	SpliceMin int
	// FixedFiles accepts connections into the ring's file table instead
	// of the process's descriptor table (fixedfiles.go); a kernel that
	// refuses the table gets descriptors, with one log line.
	FixedFiles bool
	// H2C says when a connection speaks HTTP/2 over cleartext (http2.go).
	H2C H2CMode
	// H2MaxStreams is each HTTP/2 connection's
	// SETTINGS_MAX_CONCURRENT_STREAMS (default 128, at most
	// MaxH2Streams); H2StreamWindow and H2ConnWindow are its receive
	// windows (default 1 MiB and 4 MiB, from 65,535 to 2^31-1).
	H2MaxStreams   int
	H2StreamWindow int
	H2ConnWindow   int

	// KeepAliveRequests closes a connection after this many answers, as
	// nginx's keepalive_requests does; 0 means no limit.
	KeepAliveRequests int
	// ClosePerMillion closes a connection after an answer with this
	// probability, in parts per million: connection churn for tests of
	// load balancers.
	ClosePerMillion uint32
	// Seed seeds the shard's random draws (mixes, ClosePerMillion); the
	// same seed gives the same draws.
	Seed uint64
	// Delay holds every answer back this long before it is sent, and
	// DelayMix (Share.Value in microseconds) gives other delays their
	// shares. A delayed answer holds back the ones behind it on its
	// connection, never another connection's. Timers cost no syscall.
	Delay    time.Duration
	DelayMix []Share

	// RequestKnobs lets a request's query override the behaviour for its
	// own answer: status, size, delay, close, header (repeatable) and echo,
	// each in the syntax of the flag of the same name; bounded by MaxDelay
	// (default 10s) and MaxBodySize (default 1 MiB). A malformed or out of
	// bounds knob is answered 400, saying which and why.
	RequestKnobs bool
	MaxDelay     time.Duration
	MaxBodySize  int

	// Load, when set, receives the shard's connection counts for the
	// listener group's steering program (see listener/steer): plain
	// stores, no syscall.
	Load *steer.Counters

	// Logger receives the shard's rare reports (a failing io_uring_enter,
	// a teardown that hit its bound); nil means slog.Default().
	Logger *slog.Logger

	bufCount int // with a pool (every mode but RecvSlot): its buffers (a power of two); 0 sizes it from MaxConns. For tests.
}

// maxPoolBuffers bounds the receive pool (see poolSize).
const maxPoolBuffers = 4096

// RecvMode is where a shard's received bytes land.
type RecvMode uint8

// Receive modes. The pool modes take a buffer from the shard's buffer ring
// only when bytes arrive and give it back once they are framed, so an idle
// connection holds no receive memory.
const (
	// RecvAuto: a connection's first read as in RecvPool, every later one
	// from a multishot recv. A connection that closes after one request
	// (churn) then costs no multishot arm, linger and cancel, and one
	// that stays (keep-alive, pipelining, HTTP/2) no poll re-arm per read.
	// The default.
	RecvAuto RecvMode = iota
	// RecvPool: a recv per read, whose buffer the kernel takes from the
	// shard's pool as the bytes arrive (IOSQE_BUFFER_SELECT).
	RecvPool
	// RecvSlot: a recv per read into a buffer of the connection's own
	// (RecvBuffer bytes per slot, touched once the slot is first used).
	RecvSlot
	// RecvMultishot: one multishot recv per connection, armed until it
	// ends, from the same pool.
	RecvMultishot
)

// String returns the mode's flag spelling.
func (m RecvMode) String() string {
	switch m {
	case RecvPool:
		return "pool"
	case RecvSlot:
		return "slot"
	case RecvMultishot:
		return "multishot"
	case RecvAuto:
		return "auto"
	}
	return "recv?"
}

// ParseRecvMode reads a mode in its flag spelling; "single" is the
// earlier name of "slot".
func ParseRecvMode(s string) (RecvMode, error) {
	if s == "single" {
		return RecvSlot, nil
	}
	for _, m := range []RecvMode{RecvAuto, RecvPool, RecvSlot, RecvMultishot} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("recv %q: want auto, pool, slot or multishot", s)
}

// pooled reports whether the mode receives into the shard's buffer ring.
func (m RecvMode) pooled() bool { return m != RecvSlot }

// H2CMode says which connections speak HTTP/2 over cleartext.
type H2CMode uint8

const (
	// H2CAuto: HTTP/2 for a connection that opens with the client
	// preface (prior knowledge), HTTP/1.1 for the rest.
	H2CAuto H2CMode = iota
	// H2COff: HTTP/1.1 only; the preface is answered 505.
	H2COff
	// H2COnly: HTTP/2 only, as a backend behind a proxy configured for
	// HTTP/2 is; anything but the preface ends the connection with
	// GOAWAY (RFC 9113 §3.4).
	H2COnly
)

// ParseH2CMode reads an --h2c value: on (or true), off (or false), only.
func ParseH2CMode(s string) (H2CMode, error) {
	switch s {
	case "on", "true", "auto":
		return H2CAuto, nil
	case "off", "false":
		return H2COff, nil
	case "only":
		return H2COnly, nil
	}
	return 0, fmt.Errorf("h2c %q: want on, off or only", s)
}

func (c *Config) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&c.MaxConns, 4096)
	def(&c.RecvBuffer, 4096)
	def(&c.MaxPipeline, 1024)
	defd(&c.SQIdle, 100*time.Millisecond)
	defd(&c.SpinWindow, 10*time.Millisecond)
	defd(&c.HeaderTimeout, 30*time.Second)
	defd(&c.IdleTimeout, 75*time.Second)
	defd(&c.SendTimeout, 60*time.Second)
	defd(&c.LingerTimeout, 5*time.Second)
	defd(&c.MaxDelay, 10*time.Second)
	def(&c.MaxBodySize, 1<<20)
	def(&c.H2MaxStreams, 128)
	def(&c.H2StreamWindow, 1<<20)
	def(&c.H2ConnWindow, 4<<20)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.MaxConns >= maxSlots {
		return fmt.Errorf("shard: %d connection slots is more than a shard can address (at most %d)", c.MaxConns, maxSlots-1)
	}
	if c.H2MaxStreams > MaxH2Streams {
		return fmt.Errorf("shard: %d HTTP/2 streams per connection; at most %d", c.H2MaxStreams, MaxH2Streams)
	}
	for _, w := range []int{c.H2StreamWindow, c.H2ConnWindow} {
		if w < 65535 || w > 1<<31-1 {
			return fmt.Errorf("shard: an HTTP/2 window of %d bytes; want 65535 to 2147483647", w)
		}
	}
	return nil
}

// MaxH2Streams bounds H2MaxStreams: each stream takes a slot of the
// connection's state from its start.
const MaxH2Streams = 4096

// poolSize is the number of buffers in the receive pool: as many as the
// table has slots, from 64 up to 4096. A buffer is out only from the recv
// that fills it until its bytes are framed, the same loop turn unless the
// connection's answer queue is full (a multishot recv may fill a few more
// between the pause the full queue asks for and its cancel), so what the
// pool needs follows the reads in flight, not the connections open; and
// only the buffers those reads have needed are ever touched (see bufPool).
func (c *Config) poolSize() int {
	if c.bufCount > 0 {
		return c.bufCount
	}
	n := 64
	for n < min(c.MaxConns, maxPoolBuffers) {
		n *= 2
	}
	return n
}
