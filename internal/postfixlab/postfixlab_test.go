package postfixlab

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartServesSTARTTLSAndStops(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{ChainFiles: []string{"ecdsa.pem", "rsa.pem"}})

	for _, f := range l.ChainFiles {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s: mode got %o want 600", f, got)
		}
	}
	if got, want := l.ChainFiles[1], filepath.Join(l.Dir, "tls", "rsa.pem"); got != want {
		t.Errorf("ChainFiles[1] got %q want %q", got, want)
	}

	up, err := l.Instance.Running(t.Context())
	if err != nil || !up {
		t.Fatalf("Running got %v, %v want true, nil", up, err)
	}
	state := starttls(t, l.Addr)
	if got := state.PeerCertificates[0].Subject.CommonName; got != Hostname {
		t.Errorf("leaf CN got %q want %q", got, Hostname)
	}

	pid := l.masterPID()
	l.Stop(t)
	if m := groupMembers(pid); len(m) != 0 {
		t.Errorf("after Stop, processes of group %d still run: %v", pid, m)
	}
	up, err = l.Instance.Running(t.Context())
	if err != nil || up {
		t.Fatalf("Running after Stop got %v, %v want false, nil", up, err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr, time.Second); err == nil {
		t.Errorf("%s still accepts connections after Stop", l.Addr)
	}
	l.Start(t)
	starttls(t, l.Addr)
}

func TestStartStoppedOption(t *testing.T) {
	t.Parallel()
	l := Start(t, Options{Stopped: true})
	up, err := l.Instance.Running(t.Context())
	if err != nil || up {
		t.Fatalf("Running got %v, %v want false, nil", up, err)
	}
}

// starttls speaks the minimum SMTP to get a TLS handshake, independently of
// pkg/postfix.
func starttls(t *testing.T, addr string) tls.ConnectionState {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	read := func(want string) {
		var got string
		for !strings.Contains(got, want) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("reading %q: got %q, %v", want, got, err)
			}
			got += string(buf[:n])
		}
	}
	read("220 ")
	c.Write([]byte("EHLO [127.0.0.1]\r\n"))
	read("250 ")
	c.Write([]byte("STARTTLS\r\n"))
	read("220 ")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc.ConnectionState()
}
