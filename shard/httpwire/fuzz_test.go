package httpwire

import (
	"testing"
)

// fuzzLimits picks small limits from the bits of sel so that the fuzzer
// reaches every limit path with short inputs.
func fuzzLimits(sel uint8) Limits {
	var l Limits
	if sel&1 != 0 {
		l.MaxRequestLine = 32
	}
	if sel&2 != 0 {
		l.MaxHeaderBytes = 64
	}
	if sel&4 != 0 {
		l.MaxHeaders = 3
	}
	if sel&8 != 0 {
		l.MaxBody = 16
	}
	return l
}

// FuzzParser checks the invariants of Feed on arbitrary input: no panic,
// n within [0, len(buf)], progress, NeedMore only when all is consumed,
// sticky errors with a known status, and identical results whether the
// input comes whole, split at one point, or one byte at a time.
func FuzzParser(f *testing.F) {
	for i, tc := range cases {
		f.Add([]byte(tc.in), uint16(i*7), uint8(i))
	}
	f.Add([]byte(tlsHello), uint16(3), uint8(0))
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), uint16(5), uint8(0))
	f.Add([]byte("GET /a?status=503:20&delay=1ms HTTP/1.1\r\nHost: a\r\n\r\nGET /?%41?b HTTP/1.1\r\nHost: a\r\n\r\n"), uint16(9), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, split uint16, sel uint8) {
		l := fuzzLimits(sel)
		whole := run(t, l, data)
		start := 0 // where the current request began
		for _, e := range whole {
			if e.R == Request || e.R == Continue {
				// The head and the query lie within the request's bytes.
				r := e.Req
				if r.HeadLen <= 0 || start+int(r.HeadLen) > e.End || r.QueryStart > r.QueryEnd || r.QueryEnd >= r.HeadLen ||
					r.QueryStart > 0 && data[start+int(r.QueryStart)-1] != '?' {
					t.Fatalf("head %d, query [%d,%d) of the request at %d..%d of %q", r.HeadLen, r.QueryStart, r.QueryEnd, start, e.End, data)
				}
			}
			if e.R == Request {
				start = e.End // after checking this request's
			}
			switch e.R {
			case Error:
				switch e.Status {
				case 400, 413, 414, 431, 501, 505:
				default:
					t.Fatalf("unexpected status %d", e.Status)
				}
			case Request, Continue:
				r := e.Req
				if r.Method < MethodGet || r.Method > MethodOther || r.Minor > 1 {
					t.Fatalf("bad request info %+v", r)
				}
				if e.R == Continue && (!r.HasBody || r.Minor != 1) {
					t.Fatalf("Continue without body or on 1.0: %+v", r)
				}
			}
		}
		k := int(split) % (len(data) + 1)
		if got := run(t, l, data[:k], data[k:]); !eventsMatch(got, whole) {
			t.Fatalf("split at %d of %q:\n got %s\nwant %s", k, data, fmtEvents(got), fmtEvents(whole))
		}
		if len(data) <= 4096 {
			bytewise := make([][]byte, len(data))
			for i := range data {
				bytewise[i] = data[i : i+1]
			}
			if got := run(t, l, bytewise...); !eventsMatch(got, whole) {
				t.Fatalf("byte at a time of %q:\n got %s\nwant %s", data, fmtEvents(got), fmtEvents(whole))
			}
		}
	})
}
