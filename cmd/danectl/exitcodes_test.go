package main

import (
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/state"
)

// The exit codes of README.md's table that need a real server or file
// system, each provoked through danectl's run against BIND (codes 0, 1, 2
// and 4 are in dns_test.go; every code also runs through cliapp.Run in
// cliapp's TestRunExitCodes and TestRunSignals).

// editConfig replaces old with new in the configuration file cfg (old must
// occur) and appends extra.
func editConfig(t *testing.T, cfg, old, new, extra string) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if old != "" {
		if !strings.Contains(s, old) {
			t.Fatalf("config %s has no %q:\n%s", cfg, old, s)
		}
		s = strings.Replace(s, old, new, 1)
	}
	if err := os.WriteFile(cfg, []byte(s+extra), 0o600); err != nil {
		t.Fatal(err)
	}
}

func wantExit(t *testing.T, what string, code, want int, out, errs string, contains ...string) {
	t.Helper()
	if code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, code, want, out, errs)
	}
	for _, s := range contains {
		if !strings.Contains(errs, s) {
			t.Errorf("%s: stderr does not contain %q:\n%s", what, s, errs)
		}
	}
	t.Logf("%s: exit %d: %s", what, code, errs)
	if !strings.Contains(errs, "danectl") || !strings.Contains(errs, "error:") {
		t.Errorf("%s: stderr has no \"danectl …: error:\" line:\n%s", what, errs)
	}
}

func TestExitTSIG(t *testing.T) {
	var lab *bindlab.Lab
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { lab = l; return l.KeyFile })
	data, err := os.ReadFile(lab.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Replace(string(data), lab.KeySecret(), base64.StdEncoding.EncodeToString([]byte("not the secret of this key!!")), 1)
	wrongFile := filepath.Join(t.TempDir(), "wrong.key")
	if err := os.WriteFile(wrongFile, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	editConfig(t, cfg, `key_file = "`+lab.KeyFile+`"`, `key_file = "`+wrongFile+`"`, "")
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish with a wrong secret", code, cliapp.ExitTSIG, out, errs, "BADSIG")
	if strings.Contains(errs, lab.KeySecret()) {
		t.Errorf("stderr contains the secret")
	}
}

func TestExitNotAuth(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	editConfig(t, cfg, `hosts = ["mail.example.test"]`, `hosts = ["mail.nothere.test"]`, "")
	editConfig(t, cfg, "timeout = 2\n", "timeout = 2\nzone = \"nothere.test.\"\n", "")
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish to a zone the server does not serve", code, cliapp.ExitNotAuth, out, errs, "_25._tcp.mail.nothere.test.", "not authoritative")
}

func TestExitServer(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	editConfig(t, cfg, `server = "`+lab.Primary+`"`, `server = "`+addr+`"`, "")
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish to a closed port", code, cliapp.ExitServer, out, errs, addr, "connection refused")
}

func TestExitPending(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	if code, out, errs := danectl(t, "rotate", "stage", "--config", cfg, "mail"); code != exitOK {
		t.Fatalf("rotate stage: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := danectl(t, "rotate", "commit", "--config", cfg, "mail")
	wantExit(t, "rotate commit right after stage", code, cliapp.ExitPending, out, errs, "not aged", "hint:")
}

func TestExitPostfix(t *testing.T) {
	testenv.Require(t, "postfix")
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	// A Postfix instance directory without main.cf: the real postfix check fails.
	editConfig(t, cfg, "", "", "\n[postfix]\nconfig_dir = \""+t.TempDir()+"\"\n")
	code, out, errs := danectl(t, "tick", "--config", cfg)
	wantExit(t, "tick with a broken Postfix instance", code, cliapp.ExitPostfix, out, errs, "postfix", "hint:")
}

func TestExitLocked(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	stateDir := filepath.Join(filepath.Dir(cfg), "state")
	lk, err := (&state.Store{Dir: stateDir}).Acquire("danehook", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Unlock()
	old := cliapp.LockWait
	cliapp.LockWait = 200 * time.Millisecond
	defer func() { cliapp.LockWait = old }()
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish while another run holds the lock", code, cliapp.ExitLocked, out, errs, "danehook.lock", "hint:")
}

// TestExitSystem makes the state directory unwritable: immutable for root
// (chattr +i; root ignores permission bits), mode 0500 otherwise.
func TestExitSystem(t *testing.T) {
	cfg, _ := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	stateDir := filepath.Join(filepath.Dir(cfg), "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		testenv.Require(t, "chattr")
		if out, err := exec.Command("chattr", "+i", stateDir).CombinedOutput(); err != nil {
			t.Fatalf("chattr +i %s: %v: %s", stateDir, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", stateDir).Run() })
	} else {
		if err := os.Chmod(stateDir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(stateDir, 0o700) })
	}
	code, out, errs := danectl(t, "publish", "--config", cfg)
	wantExit(t, "publish with an unwritable state directory", code, cliapp.ExitSystem, out, errs, stateDir, "hint:")
}

// TestExitSignal sends SIGTERM, then SIGINT, to this process while
// 'danectl publish' waits for a DNS server that accepts and never answers:
// the publish stops at once with 143 or 130, and nothing was published.
// Not parallel: the signal reaches the whole process.
func TestExitSignal(t *testing.T) {
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)

	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	editConfig(t, cfg, `server = "`+lab.Primary+`"`, `server = "`+ln.Addr().String()+`"`, "")
	editConfig(t, cfg, "timeout = 2\n", "timeout = 60\n", "")

	for _, tc := range []struct {
		sig  syscall.Signal
		name string
		code int
	}{{syscall.SIGTERM, "SIGTERM", cliapp.ExitSIGTERM}, {syscall.SIGINT, "SIGINT", cliapp.ExitSIGINT}} {
		t.Run(tc.name, func(t *testing.T) {
			for len(accepted) > 0 { // connections of the previous run
				(<-accepted).Close()
			}
			held := make(chan net.Conn, 1)
			go func() {
				c := <-accepted // publish is waiting for the answer
				held <- c       // kept open: the answer never comes
				_ = syscall.Kill(os.Getpid(), tc.sig)
			}()
			defer func() {
				select {
				case c := <-held:
					c.Close()
				default:
				}
			}()
			start := time.Now()
			code, out, errs := danectl(t, "publish", "--config", cfg)
			wantExit(t, "publish interrupted by "+tc.name, code, tc.code, out, errs, "interrupted by "+tc.name, "run it again")
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("publish took %v after the signal: the context was not cancelled", d)
			}
			if strings.Contains(out, "added") {
				t.Errorf("interrupted publish reported as applied:\n%s", out)
			}
		})
	}
}
