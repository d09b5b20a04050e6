package shard

import (
	"encoding/binary"
	"strconv"

	"zerosys/shard/h2"
)

// gRPC over HTTP/2 (gRPC's PROTOCOL-HTTP2): a request whose content-type
// is application/grpc is a call, answered with HEADERS (:status 200 and
// content-type application/grpc), one length-prefixed message, and
// trailers with grpc-status 0; a kind of answer whose HTTP status is not
// 2xx plays the gRPC status a client maps it to, as a trailers-only
// answer (one HEADERS, grpc-status and grpc-message, ending the stream).
// The message is protobuf field 1 (length-delimited) holding the kind's
// body, which any message type reads (an unknown field, or a string or
// bytes field 1), so the size mixes apply. grpc.health.v1.Health/Check
// is answered SERVING, or NOT_SERVING once the server is going (NotReady,
// Drain). Every byte is prepared with the kind; delays apply as to any
// stream.

// grpcMark is what a stream's request head said it is, for the h2 mark
// its answer is drawn by once its body is in.
const (
	grpcNone   uint8 = iota
	grpcCall         // a unary call
	grpcHealth       // grpc.health.v1.Health/Check or Watch
)

// The health service's methods. Watch, a stream, gets Check's answer
// and ends: a client watches again.
const (
	grpcHealthCheck = "/grpc.health.v1.Health/Check"
	grpcHealthWatch = "/grpc.health.v1.Health/Watch"
)

// grpcServing is Check's answer: a message of 2 bytes, status SERVING
// (1); grpcNotServing says NOT_SERVING (2), once the server is going.
var (
	grpcServing    = []byte{0, 0, 0, 0, 2, 0x08, 0x01}
	grpcNotServing = []byte{0, 0, 0, 0, 2, 0x08, 0x02}
)

// grpcOK is the trailers of a call that succeeded: grpc-status 0.
var grpcOK = appendHpackNewName(nil, "grpc-status", "0")

// grpcCode is the gRPC status of a kind of answer with HTTP status st: 0
// for 2xx, else the code gRPC's clients give that HTTP status (its
// "HTTP to gRPC Status Code Mapping").
func grpcCode(st int) int {
	switch {
	case st >= 200 && st < 300:
		return 0
	case st == 400:
		return 13 // INTERNAL
	case st == 401:
		return 16 // UNAUTHENTICATED
	case st == 403:
		return 7 // PERMISSION_DENIED
	case st == 404:
		return 12 // UNIMPLEMENTED
	case st == 429, st == 502, st == 503, st == 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// grpcAnswer is a kind's prepared gRPC answers.
type grpcAnswer struct {
	head []byte // :status 200, content-type application/grpc, Server, Date, the configured fields
	date int    // where head's Date value is
	// ix is head's indexed forms, its shared fields those of every
	// kind's gRPC head (Content-Type application/grpc): a Gen of their
	// own (grpcGen), so a connection that mixes gRPC and other answers
	// primes its table for each in turn. The Date in Prime is at
	// primeDate.
	ix        h2.Indexed
	primeDate int
	// message is the length prefix of the message and the header of its
	// field 1: the kind's body follows it.
	message []byte
	// fail is the trailers-only answer of a kind whose status is not
	// 2xx, nil for the others; its Date value at failDate.
	fail     []byte
	failDate int
}

// buildGRPC prepares the gRPC answers of a kind with status and body.
func buildGRPC(status int, body []byte, server, date string, headers []string) grpcAnswer {
	var g grpcAnswer
	g.head, g.date = buildH2Head(200, -1, grpcType, server, date, headers)
	g.ix, g.primeDate = buildH2Indexed(200, -1, grpcType, grpcType, server, date, headers)
	g.ix.Gen = grpcGen // never the plain heads' Gen, even before the first setDate
	n := 0
	if len(body) > 0 {
		n = 1 + len(binary.AppendUvarint(nil, uint64(len(body)))) + len(body)
	}
	g.message = binary.BigEndian.AppendUint32([]byte{0}, uint32(n)) // not compressed
	if len(body) > 0 {
		g.message = binary.AppendUvarint(append(g.message, 0x0a), uint64(len(body))) // field 1, length-delimited
	}
	if code := grpcCode(status); code != 0 {
		g.fail, g.failDate = buildH2Head(200, -1, grpcType, server, date, headers)
		g.fail = appendHpackNewName(g.fail, "grpc-status", strconv.Itoa(code))
		g.fail = appendHpackNewName(g.fail, "grpc-message", reasonPhrase(status)) // printable ASCII: no percent-encoding
	}
	return g
}

// grpcType is the Content-Type of gRPC's answers.
const grpcType = "application/grpc"

// grpcGen is the high bit of a gRPC head's Gen, which the set's
// generation fills: its shared fields differ from the set's others.
const grpcGen = 1 << 31

// setDate writes d into g's header blocks, gen being the set's new
// generation.
func (g *grpcAnswer) setDate(d []byte, gen uint32) {
	copy(g.head[g.date:], d)
	if g.ix.Prime != nil {
		copy(g.ix.Prime[g.primeDate:], d)
	}
	g.ix.Gen = gen | grpcGen
	if g.fail != nil {
		copy(g.fail[g.failDate:], d)
	}
}

// clone is g in memory of its own.
func (g grpcAnswer) clone() grpcAnswer {
	g.head = append([]byte(nil), g.head...)
	g.fail = append([]byte(nil), g.fail...)
	g.ix.Prime = append([]byte(nil), g.ix.Prime...)
	g.ix.Steady = append([]byte(nil), g.ix.Steady...)
	return g
}
