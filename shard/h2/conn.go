// Package h2 is the server side of one HTTP/2 connection (RFC 9113)
// without I/O and without allocation after New: bytes received go in
// (Feed), requests come out as events, answers go in (Respond), and the
// frames to send accumulate in the connection's output buffer (Output,
// Sent). The caller owns the socket, the timers and what the answers are.
//
// Every connection and stream error of RFC 9113 is answered with its
// code: a stream error with RST_STREAM, a connection error with GOAWAY,
// after which the caller closes once the output is sent (Closing).
// Abuse (floods of SETTINGS, PING or resets, endless header blocks) is
// bounded and answered with ENHANCE_YOUR_CALM.
package h2

import (
	w "zerosys/shard/h2wire"
)

// Limits bounds what a peer may make the connection hold.
type Limits struct {
	MaxStreams     uint32 // SETTINGS_MAX_CONCURRENT_STREAMS; default 128
	StreamWindow   uint32 // our initial stream receive window; default 1 MiB
	ConnWindow     uint32 // our connection receive window; default 4 MiB
	MaxHeaderBlock int    // bytes of one header block with its CONTINUATIONs; default 16 KiB
	MaxField       int    // bytes of one decoded name or value; default 8 KiB
	OutBuffer      int    // bytes of the output buffer; default 64 KiB
	FloodPerSecond int    // SETTINGS, PING and RST_STREAM frames (and empty frames) a second before ENHANCE_YOUR_CALM; default 1000
	// HeadRoom is the largest plain answer header block Respond writes
	// at once (HeadFits): Feed reads a frame only with room for one left,
	// and DATA leaves it free. Default 4 KiB, at most a quarter of
	// OutBuffer.
	HeadRoom int
	// FieldsFor keeps the regular fields of a request whose :path
	// holds it, as text in Request.Fields (an echo of the request); the
	// others' are checked and dropped. "": none are kept.
	FieldsFor string
}

func (l *Limits) setDefaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = 128
	}
	if l.StreamWindow == 0 {
		l.StreamWindow = 1 << 20
	}
	if l.ConnWindow < w.DefaultWindow {
		l.ConnWindow = 4 << 20
	}
	def(&l.MaxHeaderBlock, 16<<10)
	def(&l.MaxField, 8<<10)
	def(&l.OutBuffer, 64<<10)
	def(&l.FloodPerSecond, 1000)
	def(&l.HeadRoom, 4<<10)
	l.HeadRoom = min(l.HeadRoom, l.OutBuffer/4) // DATA keeps the rest
}

// Event is what Feed stopped for.
type Event uint8

const (
	// EventNone: every byte given was consumed (or the output is full:
	// send it, then feed the rest).
	EventNone Event = iota
	// EventRequest: a request head arrived; Request describes it. The
	// caller answers with Respond once it is Complete (or refuses it
	// with Reset).
	EventRequest
	// EventComplete: the request on Stream ended (END_STREAM after its
	// body); answer it now.
	EventComplete
	// EventClose: the connection is over (GOAWAY sent or received and
	// nothing left to answer): close it once Output is sent.
	EventClose
)

// Request is the request head just decoded, valid until the next Feed.
type Request struct {
	Stream    uint32
	Method    []byte
	Path      []byte
	Authority []byte
	Fields    []byte // with Limits.FieldsFor: "name: value\r\n" for each regular field
	Head      bool   // HEAD: answer without a body
	Complete  bool   // END_STREAM came with the head: answer now
	GRPC      bool   // its content-type is application/grpc (or +proto, ...)
}

// FrameKinds is the frame types counted apart: RFC 9113's, and the rest
// (unknown types) in the last.
const FrameKinds = 11

// Counters count what happened, by frame type received and error code
// sent. A connection counts into its own unless given a shared one
// (UseCounters): a shard's connections all count into one, which it
// publishes as they go, not only when a connection ends.
type Counters struct {
	FramesIn      [FrameKinds]uint64
	StreamErrors  [w.NumErrCodes]uint64
	ConnErrors    [w.NumErrCodes]uint64
	Streams       uint64 // streams opened by the peer
	Refused       uint64 // refused over MaxStreams
	PeerResets    uint64
	ListTooLarge  uint64 // header lists decoded over MaxHeaderBlock (HPACK bombs)
	Floods        uint64 // connections ended for SETTINGS, PING, RST_STREAM or empty DATA floods
	BlockTooLong  uint64 // connections ended for a header block over MaxHeaderBlock (CONTINUATION floods)
	OutputStalled uint64 // Feed stopped because the output was full
}

// streamState follows RFC 9113 §5.1 for a server that never pushes.
type streamState uint8

const (
	stIdle           streamState = iota // unused slot
	stOpen                              // request head in, body may follow
	stHalfClosedRemo                    // request complete: ours to answer
	stAnswering                         // our HEADERS sent, DATA may follow
)

// stream is one open stream.
type stream struct {
	id       uint32
	state    streamState
	head     bool  // a HEAD request
	sendWin  int64 // our DATA it may still take (its window)
	recvWin  int64 // the peer's DATA we still allow on it
	unacked  uint32
	wantLen  int64    // content-length the request announced; -1 none
	gotLen   int64    // DATA payload received
	hdr      []byte   // the answer's header block, not yet sent
	ix       *Indexed // its indexed forms, or nil
	trailers []byte   // the answer's trailers, not yet sent
	mark     uint8    // the caller's (Mark)
	body     []byte   // the answer's body not yet sent
	tail     []byte   // the rest of the body, after body (Answer.Tail)
	slot     int32    // its index in Conn.streams
	next     int32    // in the pending list (streams with body to send); -1 end
	inList   bool
	answered bool   // Respond was called
	tag      uint32 // the caller's, given back by DoneTag
}

// frame is the frame being received: its header and how much of its
// payload has arrived.
type frame struct {
	h       w.FrameHeader
	got     uint32
	padLen  uint32
	padRead bool
}

// connState is where the connection is.
type connState uint8

const (
	csPreface  connState = iota // waiting for the client preface
	csSettings                  // preface read; the first frame must be SETTINGS
	csOpen
	csGoingAway // GOAWAY sent: nothing more is read
)

// Conn is one HTTP/2 server connection.
type Conn struct {
	lim   Limits
	state connState
	dec   *w.Decoder

	prefaceGot  int
	cur         frame
	inFrame     bool
	fbuf        []byte // the payload of the control frame being received
	hbuf        []byte // the header block being received (HEADERS + CONTINUATIONs)
	hStream     uint32 // the stream whose header block continues; 0: none
	hEnd        bool   // that HEADERS had END_STREAM
	hPrio       bool
	hPadded     bool
	hFrameStart int        // where the HEADERS frame's payload starts in hbuf
	hFate       uint8      // what the block does once decoded (fateNew, ...)
	hCode       w.ErrCode  // fateReset: the code
	reqBuf      []byte     // Req's bytes
	fieldBuf    []byte     // Req.Fields' bytes (Limits.FieldsFor)
	doneTags    []uint32   // tags of answered streams that ended, for DoneTag
	resets      [32]uint32 // streams we reset lately: their late frames are read away
	resetAt     int
	draining    bool   // no new stream is taken (GOAWAY received or GoAway called)
	progress    uint64 // answer frames written (Progress)

	lastStream uint32 // highest stream the peer opened
	streams    []stream
	index      []int16 // stream id -> slot (streams.go), -1 empty
	freeSlots  []int32
	open       int   // streams not idle
	pending    int32 // first stream with body to send; -1 none
	pendTail   int32

	peerMaxFrame uint32
	peerWindow   int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	sendWin      int64 // connection window for our DATA
	recvWin      int64 // connection window for the peer's DATA
	recvUnacked  uint32

	out      []byte  // frames to send: out[:len] (Output), capacity fixed
	enc      encoder // what our answers keep in the peer's dynamic table
	goAway   bool    // GOAWAY sent
	closing  bool
	peerGone bool // the peer sent GOAWAY

	floodAt int64 // start of the current flood second (caller's clock, ns)
	floods  int

	Req Request
	// Done is the stream EventComplete reports, and DoneMark what the
	// caller marked it with (Mark).
	Done     uint32
	DoneMark uint8
	Counters *Counters
	own      Counters
}

// UseCounters makes the connection count into ctr from now on.
func (c *Conn) UseCounters(ctr *Counters) { c.Counters = ctr }

// indexSize is the stream index's buckets: a power of two, at least twice
// the streams.
func indexSize(streams uint32) int {
	n := 16
	for n < 2*int(streams) {
		n *= 2
	}
	return n
}

// New makes a connection with every buffer it will use.
func New(lim Limits) *Conn {
	lim.setDefaults()
	c := &Conn{
		lim:       lim,
		dec:       w.NewDecoder(4096, lim.MaxField),
		fbuf:      make([]byte, 0, w.DefaultMaxFrameSize),
		hbuf:      make([]byte, 0, lim.MaxHeaderBlock+w.DefaultMaxFrameSize),
		reqBuf:    make([]byte, 0, 3*lim.MaxField),
		fieldBuf:  make([]byte, 0, fieldBufSize(lim)),
		doneTags:  make([]uint32, 0, lim.MaxStreams),
		streams:   make([]stream, lim.MaxStreams),
		index:     make([]int16, indexSize(lim.MaxStreams)),
		freeSlots: make([]int32, 0, lim.MaxStreams),
		out:       make([]byte, 0, lim.OutBuffer),
	}
	c.Counters = &c.own
	c.Reset()
	return c
}

// Reset makes c a new connection and queues our preface: SETTINGS and
// the connection window's increase.
func (c *Conn) Reset() {
	c.reset()
	c.preface()
}

// upgradeReply is the answer that switches an HTTP/1.1 connection to
// HTTP/2 (RFC 7540 §3.2).
const upgradeReply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"

// ResetUpgrade makes c a connection upgraded from HTTP/1.1 (RFC 7540
// §3.2, `Upgrade: h2c`): the 101 and our preface are queued, settings
// (the HTTP2-Settings payload, decoded) are applied without an
// acknowledgement, and the request that asked becomes stream 1, complete
// and the caller's to answer. The client's preface comes next. It
// reports false, leaving c unusable until the next Reset, when settings
// are not a valid SETTINGS payload: the request is then answered as
// HTTP/1.1.
func (c *Conn) ResetUpgrade(settings []byte, head bool) bool {
	c.reset()
	if !validSettings(settings) {
		return false
	}
	c.applySettings(settings)
	// nghttp2 takes the settings it sent in HTTP2-Settings once we
	// acknowledge its preface's SETTINGS, after our answer on stream 1:
	// until then its table may be as large as 4096 and no larger.
	c.enc.limit = min(c.enc.limit, defaultTableSize)
	c.out = append(c.out[:0], upgradeReply...)
	c.preface()
	s := c.alloc(1)
	s.state, s.head = stHalfClosedRemo, head
	c.lastStream = 1
	return true
}

// reset clears every state of the connection.
func (c *Conn) reset() {
	*c = Conn{
		lim: c.lim, dec: c.dec, fbuf: c.fbuf[:0], hbuf: c.hbuf[:0], reqBuf: c.reqBuf[:0], fieldBuf: c.fieldBuf[:0], doneTags: c.doneTags[:0],
		streams: c.streams, index: c.index, freeSlots: c.freeSlots[:0], out: c.out[:0],
		Counters: c.Counters,
		pending:  -1, pendTail: -1,
		peerMaxFrame: w.DefaultMaxFrameSize,
		enc:          newEncoder(),
		peerWindow:   w.DefaultWindow,
		sendWin:      w.DefaultWindow,
		recvWin:      int64(c.lim.ConnWindow),
	}
	c.dec.Reset()
	for i := range c.streams {
		// alloc sets every field of the slot it takes; an idle one is left
		// as it is, so a connection's state touches (and keeps resident)
		// only the slots its streams have used.
		if c.streams[i].state != stIdle {
			c.streams[i] = stream{}
		}
		c.freeSlots = append(c.freeSlots, int32(len(c.streams)-1-i))
	}
	for i := range c.index {
		c.index[i] = -1
	}
}

// preface queues our SETTINGS and the connection window's increase.
func (c *Conn) preface() {
	c.out = w.AppendHeader(c.out, 3*6, w.FrameSettings, 0, 0)
	c.out = w.AppendSetting(c.out, w.SettingMaxConcurrentStreams, c.lim.MaxStreams)
	c.out = w.AppendSetting(c.out, w.SettingInitialWindowSize, c.lim.StreamWindow)
	c.out = w.AppendSetting(c.out, w.SettingMaxHeaderListSize, uint32(c.lim.MaxHeaderBlock))
	if inc := c.lim.ConnWindow - w.DefaultWindow; inc > 0 {
		c.out = w.AppendWindowUpdate(c.out, 0, inc)
	}
}

// Output is the bytes to send, in order. They stay put until Sent.
func (c *Conn) Output() []byte { return c.out }

// Sent drops the first n bytes of Output (a send completed) and writes
// more of the answers waiting for room.
func (c *Conn) Sent(n int) {
	copy(c.out, c.out[n:])
	c.out = c.out[:len(c.out)-n]
	c.pump()
}

// Closing reports that the connection is over once Output is sent.
func (c *Conn) Closing() bool { return c.closing }

// Busy reports streams still open: requests not yet answered or answers
// not yet out.
func (c *Conn) Busy() bool { return c.open > 0 }

// room is how much the output buffer can still take.
func (c *Conn) room() int { return cap(c.out) - len(c.out) }

// ctlReserve is room kept for control frames (acknowledgements, resets,
// GOAWAY) when DATA fills the output.
const ctlReserve = 512

// reserve is the room Feed needs to read a frame and DATA leaves: the
// control frames' and one answer header block's, so a request just read
// can have its HEADERS written at once (Respond), size updates and all.
func (c *Conn) reserve() int { return ctlReserve + w.HeaderLen + c.lim.HeadRoom + maxUpdates }

// fieldBufSize is the room Request.Fields needs: every field of a list
// within MaxHeaderBlock, as text, takes fewer bytes than it counts for.
func fieldBufSize(lim Limits) int {
	if lim.FieldsFor == "" {
		return 0
	}
	return lim.MaxHeaderBlock
}

// Feed consumes received bytes until it has an event for the caller or
// the output is too full to answer what comes next. It returns the bytes
// it consumed; the caller feeds the rest again after handling the event.
func (c *Conn) Feed(in []byte, now int64) (int, Event) {
	n := 0
	for n < len(in) {
		if c.state == csGoingAway {
			return len(in), c.closeEvent() // read away
		}
		if c.room() < c.reserve() {
			c.Counters.OutputStalled++
			return n, EventNone
		}
		if c.state == csPreface {
			k := min(len(in)-n, len(w.ClientPreface)-c.prefaceGot)
			if string(in[n:n+k]) != w.ClientPreface[c.prefaceGot:c.prefaceGot+k] {
				c.connError(w.ErrCodeProtocol)
				return len(in), c.closeEvent()
			}
			n += k
			c.prefaceGot += k
			if c.prefaceGot == len(w.ClientPreface) {
				c.state = csSettings
				c.pump() // an upgraded stream's DATA (writeSome)
			}
			continue
		}
		if !c.inFrame {
			k, ok := c.takeHeader(in[n:])
			n += k
			if !ok {
				return n, EventNone
			}
			if ev := c.startFrame(now); ev != EventNone || c.state == csGoingAway {
				return n, ev
			}
			continue
		}
		k, ev := c.payload(in[n:], now)
		n += k
		if ev != EventNone {
			return n, ev
		}
	}
	return n, EventNone
}

// takeHeader gathers the nine bytes of a frame header into fbuf.
func (c *Conn) takeHeader(in []byte) (int, bool) {
	if len(c.fbuf) == 0 && len(in) >= w.HeaderLen {
		c.cur = frame{h: w.ParseHeader(in)}
		c.inFrame = true
		return w.HeaderLen, true
	}
	k := min(len(in), w.HeaderLen-len(c.fbuf))
	c.fbuf = append(c.fbuf, in[:k]...)
	if len(c.fbuf) < w.HeaderLen {
		return k, false
	}
	c.cur = frame{h: w.ParseHeader(c.fbuf)}
	c.fbuf = c.fbuf[:0]
	c.inFrame = true
	return k, true
}

// closeEvent is EventClose once the connection is over, else none.
func (c *Conn) closeEvent() Event {
	if c.closing {
		return EventClose
	}
	return EventNone
}
