package shard

// Per-request knobs: query parameters that override the server's behaviour
// for one request (status, size, delay, close, header, echo). They are read
// from the request's own bytes into a per-shard scratch value: no
// allocation, no map, no strconv. Parameters with other names are the
// application's (a cache buster, say) and are left alone.

// maxMix bounds the entries of a knob's mix.
const maxMix = 8

// maxKnobHeaders bounds the bytes of the header lines knobs add.
const maxKnobHeaders = 1024

// knobMix is a mix as a knob gives it: values with their cumulative
// shares, and the value the remainder gets if one was given bare.
type knobMix struct {
	n       int
	vals    [maxMix]int64
	cum     [maxMix]uint32 // cumulative parts per million
	bare    int64
	hasBare bool
}

// given reports whether the knob was in the query.
func (m *knobMix) given() bool { return m.n > 0 || m.hasBare }

// draw picks a value: ok is false when the draw falls in the remainder and
// no bare value takes it (the server's own value applies).
func (m *knobMix) draw(rng *uint64) (v int64, ok bool) {
	if m.n > 0 {
		r := draw(rng, 1_000_000)
		for i := range m.n {
			if r < m.cum[i] {
				return m.vals[i], true
			}
		}
	}
	return m.bare, m.hasBare
}

// knobs are the knobs of one request.
type knobs struct {
	status, size, delay knobMix // delay in ns
	close, echo         bool
	headers             [maxKnobHeaders]byte // "Name: value\r\n" lines
	hlen                int
	ctype               [128]byte // a header knob's Content-Type, in place of the server's
	clen                int
	any                 bool   // some knob was given
	err                 string // why the query was refused; "" when it was not
}

// knobLimits bound what knobs may ask for.
type knobLimits struct {
	maxDelay int64 // ns
	maxSize  int64
}

// Refusals, each naming the parameter and why (the 400's body).
const (
	errKnobStatus    = "status: want a final status from 200 to 999, or a mix like 503:20,429:5"
	errKnobSize      = "size: want a body size from 0 to --max-body-size, or a mix like 128:80,65536:20"
	errKnobDelay     = "delay: want a duration from 0 to --max-delay like 20ms or 1.5s, or a mix like 1ms:90,50ms:10"
	errKnobMix       = "a mix: at most 8 entries, percentages from 0.0001 to 100 adding up to at most 100, one bare value"
	errKnobClose     = "close: want 1 or 0"
	errKnobEcho      = "echo: want 1 or 0"
	errKnobHeader    = "header: want Name:Value, a token name and a visible value"
	errKnobHeaderOwn = "header: Content-Length, Transfer-Encoding, Connection and Date are the server's"
	errKnobHeaders   = "header: at most 1024 bytes of headers"
	errKnobLong      = "a knob's value is over 256 bytes"
	errKnobEncoding  = "a knob's value has a bad percent-encoding"
	errKnobEchoBody  = "echo: the status carries no body"
)

// parseKnobs reads the knobs of query (the bytes after '?') into k. It
// reports false with k.err set when a knob is malformed or out of bounds.
func parseKnobs(query []byte, lim knobLimits, k *knobs) bool {
	// Only what is read is cleared: the header bytes past hlen are not.
	k.status.n, k.status.hasBare = 0, false
	k.size.n, k.size.hasBare = 0, false
	k.delay.n, k.delay.hasBare = 0, false
	k.close, k.echo, k.hlen, k.clen, k.any, k.err = false, false, 0, 0, false, ""
	for len(query) > 0 {
		var pair []byte
		pair, query = cutByte(query, '&')
		name, raw := cutByte(pair, '=')
		kind := knobName(name)
		if kind == knobNone {
			continue
		}
		var buf [256]byte
		v, msg := unescape(raw, buf[:])
		if msg != "" {
			k.err = msg
			return false
		}
		k.any = true
		switch kind {
		case knobStatus:
			msg = parseMixValue(v, &k.status, knobStatus, lim, errKnobStatus)
		case knobSize:
			msg = parseMixValue(v, &k.size, knobSize, lim, errKnobSize)
		case knobDelay:
			msg = parseMixValue(v, &k.delay, knobDelay, lim, errKnobDelay)
		case knobClose:
			k.close, msg = parseFlag(v, errKnobClose)
		case knobEcho:
			k.echo, msg = parseFlag(v, errKnobEcho)
		case knobHeader:
			msg = k.addHeader(v)
		}
		if msg != "" {
			k.err = msg
			return false
		}
	}
	return true
}

// The knobs, by name.
const (
	knobNone = iota
	knobStatus
	knobSize
	knobDelay
	knobClose
	knobEcho
	knobHeader
)

func knobName(n []byte) int {
	switch string(n) { // compiled to comparisons: no allocation
	case "status":
		return knobStatus
	case "size":
		return knobSize
	case "delay":
		return knobDelay
	case "close":
		return knobClose
	case "echo":
		return knobEcho
	case "header":
		return knobHeader
	}
	return knobNone
}

// cutByte splits b at the first c.
func cutByte(b []byte, c byte) (before, after []byte) {
	for i, x := range b {
		if x == c {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// unescape decodes %XX and '+' (a space, as in forms) of raw into buf.
func unescape(raw []byte, buf []byte) ([]byte, string) {
	n := 0
	for i := 0; i < len(raw); i++ {
		if n == len(buf) {
			return nil, errKnobLong
		}
		c := raw[i]
		switch c {
		case '+':
			c = ' '
		case '%':
			if i+2 >= len(raw) {
				return nil, errKnobEncoding
			}
			h, l := unhex(raw[i+1]), unhex(raw[i+2])
			if h < 0 || l < 0 {
				return nil, errKnobEncoding
			}
			c = byte(h<<4 | l)
			i += 2
		}
		buf[n] = c
		n++
	}
	return buf[:n], ""
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return -1
}

// parseMixValue reads a mix in the flags' syntax (VALUE:PERCENT entries
// and at most one bare VALUE, separated by commas) of the knob kind into m.
func parseMixValue(v []byte, m *knobMix, kind int, lim knobLimits, bad string) string {
	var sum uint32
	for len(v) > 0 {
		var item []byte
		item, v = cutByte(v, ',')
		vs, ps := cutByte(item, ':')
		x, ok := knobValue(trimSpace(vs), kind, lim)
		if !ok {
			return bad
		}
		if ps == nil && !hasByte(item, ':') {
			if m.hasBare {
				return errKnobMix
			}
			m.bare, m.hasBare = x, true
			continue
		}
		ppm, ok := parsePercent(trimSpace(ps))
		if !ok || m.n == maxMix {
			return errKnobMix
		}
		sum += ppm
		if sum > 1_000_000 {
			return errKnobMix
		}
		m.vals[m.n], m.cum[m.n] = x, sum
		m.n++
	}
	if !m.given() {
		return bad
	}
	return ""
}

// knobValue reads one value of a status, size or delay mix, in bounds.
func knobValue(b []byte, kind int, lim knobLimits) (int64, bool) {
	switch kind {
	case knobStatus:
		n, ok := parseUint(b)
		return n, ok && n >= 200 && n <= 999
	case knobSize:
		n, ok := parseUint(b)
		return n, ok && n <= lim.maxSize
	default:
		d, ok := parseDuration(b)
		return d, ok && d <= lim.maxDelay
	}
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint reads a decimal number of at most 12 digits.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parsePercent reads a percentage from 0.0001 to 100, with at most four
// decimals, as parts per million.
func parsePercent(b []byte) (uint32, bool) {
	whole, frac := cutByte(b, '.')
	w, ok := parseUint(whole)
	if !ok || len(frac) > 4 || hasByte(b, '.') && len(frac) == 0 {
		return 0, false
	}
	ppm := w * 10_000
	scale := int64(1000)
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
		ppm += int64(c-'0') * scale
		scale /= 10
	}
	if ppm < 1 || ppm > 1_000_000 {
		return 0, false
	}
	return uint32(ppm), true
}

// parseDuration reads a duration like time.ParseDuration's single
// number-and-unit form (1.5s, 20ms, 250us, 0), in ns.
func parseDuration(b []byte) (int64, bool) {
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	i := 0
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == '.') {
		i++
	}
	num, unit := b[:i], b[i:]
	var mult int64
	switch string(unit) {
	case "ns":
		mult = 1
	case "us", "µs":
		mult = 1_000
	case "ms":
		mult = 1_000_000
	case "s":
		mult = 1_000_000_000
	case "m":
		mult = 60_000_000_000
	default:
		return 0, false
	}
	whole, frac := cutByte(num, '.')
	w, ok := parseUint(whole)
	if !ok || len(frac) > 9 || w > 1<<62/mult {
		return 0, false
	}
	d := w * mult
	scale := mult / 10
	for _, c := range frac {
		if c < '0' || c > '9' {
			return 0, false
		}
		d += int64(c-'0') * scale
		scale /= 10
	}
	return d, true
}

func parseFlag(v []byte, bad string) (bool, string) {
	switch string(v) {
	case "1", "true":
		return true, ""
	case "0", "false":
		return false, ""
	}
	return false, bad
}

// addHeader appends "Name: value\r\n" for a header knob (Name:Value).
func (k *knobs) addHeader(v []byte) string {
	name, value := cutByte(v, ':')
	name, value = trimSpace(name), trimSpace(value)
	if len(name) == 0 || !hasByte(v, ':') {
		return errKnobHeader
	}
	for _, c := range name {
		if !isTokenChar(c) {
			return errKnobHeader
		}
	}
	for _, c := range value {
		if c < ' ' && c != '\t' || c == 0x7f {
			return errKnobHeader
		}
	}
	if serverHeader(name) {
		return errKnobHeaderOwn
	}
	if len(name) == 12 && lowerEq(name, "content-type") {
		if len(value) > len(k.ctype) {
			return errKnobHeaders
		}
		k.clen = copy(k.ctype[:], value)
		return ""
	}
	if k.hlen+len(name)+len(value)+4 > len(k.headers) {
		return errKnobHeaders
	}
	k.hlen += copy(k.headers[k.hlen:], name)
	k.hlen += copy(k.headers[k.hlen:], ": ")
	k.hlen += copy(k.headers[k.hlen:], value)
	k.hlen += copy(k.headers[k.hlen:], "\r\n")
	return ""
}

// serverHeader reports the header names zerosys sets itself, without
// regard to case: neither the configured headers nor a knob's may be one.
func serverHeader(n []byte) bool {
	switch len(n) {
	case 4:
		return lowerEq(n, "date")
	case 10:
		return lowerEq(n, "connection")
	case 14:
		return lowerEq(n, "content-length")
	case 17:
		return lowerEq(n, "transfer-encoding")
	}
	return false
}

func lowerEq(n []byte, s string) bool {
	for i := range len(s) {
		c := n[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
