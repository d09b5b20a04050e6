package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// TestGRPCBehindHAProxy: gRPC-Go's client through HAProxy (an h2c
// frontend, `server ... proto h2` to zerosys): the health service, 200
// concurrent calls with their messages, and a failing backend's status
// passed through as gRPC clients expect.
func TestGRPCBehindHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
			haproxy = "/usr/sbin/haproxy"
		} else {
			haproxy = needTool(t, "haproxy")
		}
	}
	for _, tc := range []struct {
		args []string
		code codes.Code
	}{{nil, codes.OK}, {[]string{"--status", "503"}, codes.Unavailable}} {
		p := startZerosys(t, append([]string{"--sqpoll", "off", "--shards", "1"}, tc.args...)...)
		front := freeAddr(t)
		cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
		conf := fmt.Sprintf(`global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind %s proto h2
    default_backend be
backend be
    server zs %s proto h2
`, front, p.addr)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		hp := exec.Command(haproxy, "-db", "-f", cfg)
		hp.Stdout, hp.Stderr = os.Stderr, os.Stderr
		if err := hp.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = hp.Process.Kill(); _ = hp.Wait() })
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", front); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("haproxy did not listen")
			}
		}
		cc, err := grpc.NewClient("passthrough:///"+front, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("zerosys %v: health Check through HAProxy: %v, %v", tc.args, r, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		got := map[codes.Code]int{}
		msgs := map[string]int{}
		for range 200 {
			wg.Go(func() {
				var out wrapperspb.BytesValue
				err := cc.Invoke(ctx, "/zerosys.test.Service/Call", &emptypb.Empty{}, &out)
				code := status.Code(err)
				if err == nil && string(out.GetValue()) != "Have a nice day!" {
					code = codes.DataLoss
				}
				mu.Lock()
				got[code]++
				msgs[status.Convert(err).Message()]++
				mu.Unlock()
			})
		}
		wg.Wait()
		cancel()
		cc.Close()
		t.Logf("messages: %v", msgs)
		if got[tc.code] != 200 {
			t.Errorf("zerosys %v: 200 calls through HAProxy ended %v, want all %v", tc.args, got, tc.code)
		}
		// Every call reached zerosys (none was HAProxy's own 503): the
		// count, published within a millisecond or so.
		if n := p.metricReaches(t, 201, "zerosys_grpc_calls_total"); n != 201 {
			t.Errorf("zerosys %v: %v calls counted, want 201", tc.args, n)
		}
		_ = hp.Process.Kill()
		p.stop(t)
	}
}

// freeAddr is a loopback address no one listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
