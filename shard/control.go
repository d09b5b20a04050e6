package shard

import "golang.org/x/sys/unix"

// Control bits other goroutines set and the loop reads once per iteration.
const (
	ctlDrain      = 1 << iota // answer every further request with Connection: close
	ctlStopAccept             // cancel accept; the listener may be closed once AcceptStopped is closed
	ctlBehaviour              // a behaviour was posted (SetBehaviour); the loop clears it when it takes it
	ctlStop                   // leave the loop, cutting what is left
	ctlNotReady               // the server is going: health checks say so (gRPC NOT_SERVING)
)

// setCtl sets a control bit and wakes the loop. Called by other goroutines.
func (s *Shard) setCtl(bit uint32) {
	for {
		old := s.ctl.Load()
		if old&bit != 0 {
			return
		}
		if s.ctl.CompareAndSwap(old, old|bit) {
			break
		}
	}
	// Wake the loop if it is blocked in io_uring_enter. EAGAIN (the counter
	// is full) means a wake-up is pending anyway. After Stop the eventfd
	// is closed and its number may belong to another file.
	s.wakeMu.Lock()
	if !s.wakeClosed {
		one := [8]byte{1}
		_, _ = unix.Write(s.wakeFD, one[:])
	}
	s.wakeMu.Unlock()
}

func (s *Shard) releaseWake() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if !s.wakeClosed {
		s.wakeClosed = true
		_ = unix.Close(s.wakeFD)
	}
}

// armWake keeps a read armed on the control eventfd.
func (s *Shard) armWake() {
	s.e.push(action{kind: actRead, fd: int32(s.wakeFD), buf: s.wakeBuf[:], ud: packUD(opWake, 0, 0)})
	s.wakeArmed = true
}

// onWake handles the control eventfd's read: re-arm it unless stopping.
func (s *Shard) onWake() {
	s.e.inflight--
	s.wakeArmed = false
	if s.ctl.Load()&ctlStop == 0 {
		s.armWake()
	}
}

// control acts on newly set control bits (not ctlStop: the loop returns).
func (s *Shard) control(ctl uint32) {
	if ctl&ctlBehaviour != 0 {
		s.takeBehaviour()
		ctl &^= ctlBehaviour
	}
	s.seen = ctl
	if ctl&ctlNotReady != 0 {
		s.e.notReady = true
	}
	if ctl&ctlDrain != 0 {
		s.e.drain()
	}
	if ctl&ctlStopAccept != 0 {
		s.e.stopAccepting()
	}
	s.checkAcceptStopped()
}

// checkAcceptStopped reports, once, that accept is gone for good.
func (s *Shard) checkAcceptStopped() {
	if !s.e.acceptGone() {
		return
	}
	select {
	case <-s.acceptStopped:
	default:
		// Connections taken by the last accepts must be counted before
		// anyone waits for the active count to reach zero.
		s.publish()
		close(s.acceptStopped)
	}
}
