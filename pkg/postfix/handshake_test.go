package postfix_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/postfix"
)

// fakeSMTP serves one connection on 127.0.0.1:0 with serve and returns the
// address. It reproduces the server side of RFC 5321/3207 closely enough to
// inject faults a real Postfix does not produce on demand.
func fakeSMTP(t *testing.T, serve func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c, bufio.NewReader(c))
	}()
	return ln.Addr().String()
}

// expect reads one command line and checks its verb.
func expect(t *testing.T, r *bufio.Reader, verb string) bool {
	line, err := r.ReadString('\n')
	if err != nil {
		return false
	}
	if !strings.HasPrefix(strings.ToUpper(line), verb) {
		t.Errorf("fake server got command %q want %s", strings.TrimSpace(line), verb)
		return false
	}
	return true
}

func TestHandshakeFake(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	cert := tls.Certificate{Certificate: [][]byte{p.leaf.Raw, p.inter.Raw}, PrivateKey: p.leafKey}

	tests := []struct {
		desc       string
		serve      func(t *testing.T, c net.Conn, r *bufio.Reader)
		wantErr    error  // errors.Is target; nil with wantSubstr "" means success
		wantSubstr string // substring of the error
	}{
		{"multi-line greeting and lower-case keyword", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220-mail.example.test ESMTP\r\n220-second line\r\n220 ready\r\n"))
			if !expect(t, r, "EHLO [127.0.0.1]") {
				return
			}
			c.Write([]byte("250-mail.example.test\r\n250-PIPELINING\r\n250-starttls\r\n250 8BITMIME\r\n"))
			if !expect(t, r, "STARTTLS") {
				return
			}
			c.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
			if err := tc.Handshake(); err != nil {
				t.Errorf("fake server handshake: %v", err)
				return
			}
			tr := bufio.NewReader(tc)
			if expect(t, tr, "QUIT") {
				tc.Write([]byte("221 2.0.0 Bye\r\n"))
			}
		}, nil, ""},
		{"STARTTLS not offered", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220 mail.example.test ESMTP\r\n"))
			expect(t, r, "EHLO")
			c.Write([]byte("250-mail.example.test\r\n250 PIPELINING\r\n"))
			if expect(t, r, "QUIT") {
				c.Write([]byte("221 Bye\r\n"))
			}
		}, postfix.ErrNoSTARTTLS, "does not offer STARTTLS"},
		{"STARTTLS refused", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220 mail.example.test ESMTP\r\n"))
			expect(t, r, "EHLO")
			c.Write([]byte("250-mail.example.test\r\n250 STARTTLS\r\n"))
			expect(t, r, "STARTTLS")
			c.Write([]byte("454 4.7.0 TLS not available due to local problem\r\n"))
		}, postfix.ErrNoSTARTTLS, "server answered 454 4.7.0 TLS not available"},
		{"connection closed at STARTTLS", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220 mail.example.test ESMTP\r\n"))
			expect(t, r, "EHLO")
			c.Write([]byte("250-mail.example.test\r\n250 STARTTLS\r\n"))
			expect(t, r, "STARTTLS")
		}, nil, "STARTTLS: EOF"},
		{"greeting refused", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("554 5.3.2 go away\r\n"))
		}, nil, "greeting: server answered 554 5.3.2 go away"},
		{"EHLO refused", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220 ok\r\n"))
			expect(t, r, "EHLO")
			c.Write([]byte("502 5.5.1 no EHLO\r\n"))
		}, nil, "EHLO: server answered 502 5.5.1 no EHLO"},
		{"TLS garbage", func(t *testing.T, c net.Conn, r *bufio.Reader) {
			c.Write([]byte("220 ok\r\n"))
			expect(t, r, "EHLO")
			c.Write([]byte("250-x\r\n250 STARTTLS\r\n"))
			expect(t, r, "STARTTLS")
			c.Write([]byte("220 go ahead\r\nthis is not TLS\r\n"))
		}, nil, "tls handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			addr := fakeSMTP(t, func(c net.Conn, r *bufio.Reader) { tt.serve(t, c, r) })
			chain, state, err := postfix.Handshake(t.Context(), addr, "mail.example.test")
			if tt.wantErr == nil && tt.wantSubstr == "" {
				if err != nil {
					t.Fatalf("Handshake got %v want nil", err)
				}
				if len(chain) != 2 || !chain[0].Equal(p.leaf) || !chain[1].Equal(p.inter) {
					t.Errorf("chain got %d certificates want leaf then intermediate", len(chain))
				}
				if state.ServerName != "mail.example.test" || len(state.PeerCertificates) != 2 {
					t.Errorf("state got ServerName %q and %d peer certificates want mail.example.test and 2", state.ServerName, len(state.PeerCertificates))
				}
				return
			}
			if err == nil {
				t.Fatalf("Handshake got nil want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Handshake got %v want errors.Is %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && errors.Is(err, postfix.ErrNoSTARTTLS) {
				t.Errorf("Handshake got %v, which should not match ErrNoSTARTTLS", err)
			}
			if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), tt.wantSubstr) {
				t.Errorf("Handshake got %q want it to name %s and contain %q", err, addr, tt.wantSubstr)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	release := make(chan struct{})
	addr := fakeSMTP(t, func(c net.Conn, r *bufio.Reader) { <-release }) // never greets
	defer close(release)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := postfix.Handshake(ctx, addr, "mail.example.test")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), addr) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Handshake got %v want a deadline error naming %s", err, addr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Handshake did not return after its context expired")
	}
}

func TestHandshakeRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, _, err := postfix.Handshake(t.Context(), addr, "mail.example.test"); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Handshake to a closed port got %v want an error naming %s", err, addr)
	}
}
