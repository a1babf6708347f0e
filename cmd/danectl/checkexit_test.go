package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/danehook/danehook/internal/bindlab"
)

// TestCheckExitCodes: 'danectl check' exits as its --help says — 1 while
// a record is not aged, 8 when the live chain cannot be verified (here: the
// endpoint does not answer) — and its help lists both codes.
func TestCheckExitCodes(t *testing.T) {
	code, out, _ := danectl(t, "check", "--help")
	if code != 0 || !strings.Contains(out, "1 something waits") || !strings.Contains(out, "8 the live STARTTLS chain does not match") {
		t.Fatalf("check --help (exit %d) does not document exits 1 and 8:\n%s", code, out)
	}

	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	if code, out, errs := danectl(t, "publish", "--config", cfg); code != exitOK {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	// Right after publishing, the record is not aged: waiting, exit 1.
	code, out, errs := danectl(t, "check", "--config", cfg)
	if code != exitMismatch || !strings.Contains(errs, "waiting") {
		t.Fatalf("check before the record is aged: exit %d, want %d (waiting)\n%s%s", code, exitMismatch, out, errs)
	}

	// An endpoint where nothing answers: exit 8, naming it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	editConfig(t, cfg, "", "", fmt.Sprintf("endpoints = [%q]\n", addr))
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	time.Sleep(2500 * time.Millisecond) // 2 x TTL (1 s)
	code, out, errs = danectl(t, "check", "--config", cfg)
	if code != cliapp.ExitPostfix || !strings.Contains(out+errs, addr) {
		t.Fatalf("check with a dead endpoint: exit %d, want %d naming %s\n%s%s", code, cliapp.ExitPostfix, addr, out, errs)
	}
}
