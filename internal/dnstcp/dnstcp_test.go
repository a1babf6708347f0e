package dnstcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gateConn is a net.Conn whose Writes are recorded and, while gate is
// closed, blocked until it opens.
type gateConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	gate   chan struct{} // nil: writes pass; else they wait for it to close
	err    error         // returned by every Write once set
}

func (c *gateConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	g := c.gate
	c.writes = append(c.writes, bytes.Clone(p))
	c.mu.Unlock()
	if g != nil {
		<-g
	}
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *gateConn) SetWriteDeadline(time.Time) error { return nil }

func frames(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
			t.Fatalf("a truncated frame: % x", b)
		}
		n := int(binary.BigEndian.Uint16(b))
		out = append(out, string(b[2:2+n]))
		b = b[2+n:]
	}
	return out
}

// TestWriterCoalesces: while one Write's system call is in progress, the
// messages 20 other goroutines write are queued, and the next write sends
// all of them, framed, in one call; every Write returns only once its
// message was written.
func TestWriterCoalesces(t *testing.T) {
	gate := make(chan struct{})
	c := &gateConn{gate: gate}
	w := NewWriter(c)
	first := make(chan error, 1)
	go func() { first <- w.Write([]byte("first"), time.Time{}) }()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.writes) == 1 })
	const n = 20
	var done sync.WaitGroup
	returned := make(chan string, n)
	for i := range n {
		done.Go(func() {
			msg := fmt.Sprintf("m%02d", i)
			if err := w.Write([]byte(msg), time.Time{}); err != nil {
				t.Errorf("Write(%s): %v", msg, err)
			}
			returned <- msg
		})
	}
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.buf) == n*5 })
	if len(returned) != 0 {
		t.Fatalf("%d Writes returned before their message was written", len(returned))
	}
	c.mu.Lock()
	c.gate = nil
	c.mu.Unlock()
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	done.Wait()
	if len(c.writes) != 2 {
		t.Fatalf("%d write calls, want 2 (the first message, then the 20 queued together)", len(c.writes))
	}
	if got := frames(t, c.writes[0]); len(got) != 1 || got[0] != "first" {
		t.Errorf("first write = %q", got)
	}
	got := frames(t, c.writes[1])
	if len(got) != n {
		t.Fatalf("second write carried %d messages, want %d: %q", len(got), n, got)
	}
	seen := map[string]bool{}
	for _, m := range got {
		seen[m] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf("m%02d", i)] {
			t.Errorf("message m%02d missing from the second write", i)
		}
	}
}

// TestWriterError: a failed write fails every Write whose message it
// carried and every later Write, which writes nothing more.
func TestWriterError(t *testing.T) {
	gate := make(chan struct{})
	c := &gateConn{gate: gate}
	w := NewWriter(c)
	first := make(chan error, 1)
	go func() { first <- w.Write([]byte("a"), time.Time{}) }()
	waitFor(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.writes) == 1 })
	queued := make(chan error, 3)
	for range 3 {
		go func() { queued <- w.Write([]byte("b"), time.Time{}) }()
	}
	waitFor(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return len(w.buf) == 9 })
	c.mu.Lock()
	c.err, c.gate = syscall.EPIPE, nil
	c.mu.Unlock()
	close(gate)
	if err := <-first; !errors.Is(err, syscall.EPIPE) {
		t.Errorf("first Write = %v, want EPIPE", err)
	}
	for range 3 {
		if err := <-queued; !errors.Is(err, syscall.EPIPE) {
			t.Errorf("queued Write = %v, want EPIPE", err)
		}
	}
	n := len(c.writes)
	if err := w.Write([]byte("later"), time.Time{}); !errors.Is(err, syscall.EPIPE) || len(c.writes) != n {
		t.Errorf("Write after the failure = %v with %d new write calls, want EPIPE and none", err, len(c.writes)-n)
	}
	if err := NewWriter(c).Write(make([]byte, 0x10000), time.Time{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write of 65,536 octets = %v, want ErrTooLarge", err)
	}
}

// TestWriterResultOfEachWrite: a message carried by a write that
// succeeded is reported written even when a later write failed before its
// goroutine woke up; one carried by the failed write, or queued after it,
// gets the error.
func TestWriterResultOfEachWrite(t *testing.T) {
	w := NewWriter(&gateConn{})
	w.started, w.finished, w.failed, w.err = 3, 3, 3, syscall.EPIPE
	for n, want := range map[uint64]error{1: nil, 2: nil, 3: syscall.EPIPE, 4: syscall.EPIPE} {
		if got := w.resultOf(n); !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Errorf("result of write %d = %v, want %v", n, got, want)
		}
	}
	ok := NewWriter(&gateConn{})
	ok.started, ok.finished = 5, 5
	if err := ok.resultOf(5); err != nil {
		t.Errorf("no failed write: %v", err)
	}
}

// TestReader: over real loopback TCP, messages written in one burst are
// read with fewer read calls than messages; messages split across writes
// come out whole; a close between messages is io.EOF, within one
// io.ErrUnexpectedEOF.
func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunks  func(stream []byte) [][]byte
		wantErr error
		cut     int // octets dropped from the end of the stream
	}{
		{"one burst", func(s []byte) [][]byte { return [][]byte{s} }, io.EOF, 0},
		{"one octet at a time", func(s []byte) [][]byte {
			var out [][]byte
			for i := range s {
				out = append(out, s[i:i+1])
			}
			return out
		}, io.EOF, 0},
		{"closed within a message", func(s []byte) [][]byte { return [][]byte{s} }, io.ErrUnexpectedEOF, 3},
		{"closed within a length", func(s []byte) [][]byte { return [][]byte{s} }, io.ErrUnexpectedEOF, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stream []byte
			var want []string
			for i := range 300 {
				m := bytes.Repeat([]byte{byte(i)}, 10+i%7)
				stream = binary.BigEndian.AppendUint16(stream, uint16(len(m)))
				stream = append(stream, m...)
				want = append(want, string(m))
			}
			if tc.cut > 0 {
				// Drop the last message's tail (3: within its body) or
				// the last message and one octet of its length (11 …
				// 16 octets: the last message is 10+299%7 = 16 long).
				last := len(want[len(want)-1])
				if tc.cut > last {
					stream = stream[:len(stream)-last-1]
				} else {
					stream = stream[:len(stream)-tc.cut]
				}
				want = want[:len(want)-1]
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				for _, ch := range tc.chunks(stream) {
					if _, err := c.Write(ch); err != nil {
						break
					}
				}
				c.Close()
			}()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			reads := 0
			r := NewReader(conn, func() { reads++ })
			for i, w := range want {
				got, err := r.Next()
				if err != nil || string(got) != w {
					t.Fatalf("message %d: %d octets, %v; want %d octets", i, len(got), err, len(w))
				}
			}
			if _, err := r.Next(); err != tc.wantErr {
				t.Errorf("after the last message: %v, want %v", err, tc.wantErr)
			}
			t.Logf("%d messages in %d read calls", len(want), reads)
			if tc.name == "one burst" && reads >= len(want)/4 {
				t.Errorf("%d read calls for %d messages written at once, want a few", reads, len(want))
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
