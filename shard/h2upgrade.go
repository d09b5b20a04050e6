package shard

import "bytes"

// HTTP/1.1 to HTTP/2 by `Upgrade: h2c` (RFC 7540 §3.2; curl --http2 on
// http:// asks this way). Only a connection's first request, without a
// body, is upgraded: the answer is a 101, then HTTP/2, and the request
// itself is answered on stream 1.

// maxH2Settings bounds the HTTP2-Settings payload decoded (RFC 7540
// §3.2.1): 16 settings, more than RFC 9113 defines.
const maxH2Settings = 16 * 6

// upgradeH2C reports whether head (a complete request head) asks for h2c
// with a valid HTTP2-Settings, decoded into settings (capacity
// maxH2Settings). It looks at the head only when it holds "2-S" or "2-s"
// (HTTP2-Settings in any case), which costs one vectorised search per
// connection's first request.
func upgradeH2C(head []byte, settings *[]byte) bool {
	if !bytes.Contains(head, []byte("2-S")) && !bytes.Contains(head, []byte("2-s")) {
		return false
	}
	up, got := false, false
	lines := head
	if i := bytes.IndexByte(lines, '\n'); i >= 0 {
		lines = lines[i+1:] // past the request line
	}
	for len(lines) > 0 {
		line := lines
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			line, lines = lines[:i], lines[i+1:]
		} else {
			lines = nil
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\r"), []byte(":"))
		if !ok {
			continue
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "upgrade"):
			for _, tok := range bytes.Split(value, []byte(",")) {
				if asciiEqualFold(bytes.Trim(tok, " \t"), "h2c") {
					up = true
				}
			}
		case asciiEqualFold(name, "http2-settings"):
			if got {
				return false // twice
			}
			got = decodeBase64URL(value, settings)
			if !got {
				return false
			}
		}
	}
	return up && got
}

// asciiEqualFold compares b with the lowercase s without regard to case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// decodeBase64URL decodes base64url without padding (RFC 4648 §5, the
// token68 of HTTP2-Settings) into *dst, which has room for maxH2Settings
// bytes; it reports false for anything else or more.
func decodeBase64URL(s []byte, dst *[]byte) bool {
	out := (*dst)[:0]
	var acc uint32
	bits := 0
	for _, c := range s {
		var v byte
		switch {
		case c >= 'A' && c <= 'Z':
			v = c - 'A'
		case c >= 'a' && c <= 'z':
			v = c - 'a' + 26
		case c >= '0' && c <= '9':
			v = c - '0' + 52
		case c == '-':
			v = 62
		case c == '_':
			v = 63
		case c == '=':
			continue // padding some clients send anyway
		default:
			return false
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			if len(out) == cap(out) {
				return false
			}
			out = append(out, byte(acc>>bits))
		}
	}
	*dst = out
	return true
}

// upgradeH2 switches c, whose first request asked for h2c, to HTTP/2 and
// answers that request on stream 1. It reports false when the settings
// are not valid: the request is then answered as HTTP/1.1.
func (e *engine) upgradeH2(c *conn, head bool, src *h2Source) bool {
	x := e.takeH2(c)
	if !x.ResetUpgrade(e.env.h2settings, head) {
		e.h2free = append(e.h2free, x)
		return false
	}
	c.h2 = x
	e.local[cH2Conns]++
	e.answerH2(c, 1, src, grpcNone)
	e.h2Tags(c)
	return true
}
