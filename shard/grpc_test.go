package shard

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpcClient is gRPC-Go's client on a connection of its own to ts.
func grpcClient(t *testing.T, ts *testServer) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestServeGRPC: gRPC-Go's client calls any method and reads the answer
// as a protobuf message (field 1: the body, here as a BytesValue), many
// calls at once on one connection, large messages over many DATA frames;
// the health service answers SERVING.
func TestServeGRPC(t *testing.T) {
	for _, size := range []int{0, 16, 100_000} {
		body := PatternBody(size)
		if size == 16 {
			body = nil // the default answer
		}
		ts := startServer(t, modes[0], func(c *Config) { c.Response.Body = body })
		want := body
		if body == nil {
			want = []byte("Have a nice day!")
		}
		cc := grpcClient(t, ts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health Check: %v, %v", hc, err)
		}
		const calls = 200
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		for range calls {
			wg.Go(func() {
				var out wrapperspb.BytesValue
				if err := cc.Invoke(ctx, "/zerosys.test.Service/Call", &emptypb.Empty{}, &out); err != nil {
					errs <- err
				} else if !bytes.Equal(out.GetValue(), want) {
					errs <- status.Errorf(codes.DataLoss, "a message of %d bytes, want %d", len(out.GetValue()), len(want))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("body %d: %v", size, err)
		}
		waitFor(t, "the calls counted", func() bool { return ts.total(func(s Stats) uint64 { return s.Counters[cGRPCCalls] }) == calls+1 })
	}
}

// TestServeGRPCStatuses: a kind whose HTTP status is not 2xx answers a
// call with the gRPC status a client maps it to (trailers-only), the
// health service still answers SERVING, and a delay mix holds calls back.
func TestServeGRPCStatuses(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   codes.Code
		msg    string
	}{
		{503, codes.Unavailable, "Service Unavailable"},
		{404, codes.Unimplemented, "Not Found"},
		{500, codes.Unknown, "Internal Server Error"},
		{201, codes.OK, ""},
	} {
		ts := startServer(t, modes[0], func(c *Config) {
			c.Response.Status = tc.status
			c.DelayMix = []Share{{Value: 50_000, PPM: 1_000_000}} // every answer 50 ms late
		})
		cc := grpcClient(t, ts)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		var out wrapperspb.BytesValue
		err := cc.Invoke(ctx, "/zerosys.test.Service/Call", &emptypb.Empty{}, &out)
		took := time.Since(start)
		if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("status %d: %v %q, want %v %q", tc.status, st.Code(), st.Message(), tc.code, tc.msg)
		}
		if took < 50*time.Millisecond {
			t.Errorf("status %d: answered in %v, before its 50 ms delay", tc.status, took)
		}
		hc, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("status %d: health Check: %v, %v", tc.status, hc, err)
		}
	}
}

// TestServeGRPCHealthGoing: once the server is going (NotReady, the
// drain's delay), the health service says NOT_SERVING while calls are
// still answered.
func TestServeGRPCHealthGoing(t *testing.T) {
	ts := startServer(t, modes[0], nil)
	cc := grpcClient(t, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	health := healthpb.NewHealthClient(cc)
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: "any"})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetStatus()
	}
	if st := check(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("before: %v", st)
	}
	// Watch, a stream, gets Check's answer and ends.
	w, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v", r, err)
	}
	ts.shards[0].NotReady()
	waitFor(t, "NOT_SERVING", func() bool { return check() == healthpb.HealthCheckResponse_NOT_SERVING })
	var out wrapperspb.BytesValue
	if err := cc.Invoke(ctx, "/zerosys.test.Service/Call", &emptypb.Empty{}, &out); err != nil || string(out.GetValue()) != "Have a nice day!" {
		t.Fatalf("a call while going: %q, %v", out.GetValue(), err)
	}
}
