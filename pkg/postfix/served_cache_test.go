package postfix_test

// Tests of Served's cache (Instance.ServedCache) and of SetMaillog against a
// real postconf, run through a wrapper that counts its invocations.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/postfix"
)

// countingPostconf writes a postconf wrapper that appends a line to the
// returned counter file on each run, then runs the real postconf.
func countingPostconf(t *testing.T) (prog string, count func() int) {
	t.Helper()
	real, err := exec.LookPath("postconf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	counter := filepath.Join(dir, "runs")
	prog = filepath.Join(dir, "postconf")
	script := fmt.Sprintf("#!/bin/sh\necho run >>'%s'\nexec '%s' \"$@\"\n", counter, real)
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return prog, func() int {
		b, _ := os.ReadFile(counter)
		return strings.Count(string(b), "run\n")
	}
}

func TestServedCache(t *testing.T) {
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	prog, runs := countingPostconf(t)
	cache := filepath.Join(t.TempDir(), "state", "postfix-served.json")
	in := &postfix.Instance{ConfigDir: l.ConfigDir, Postconf: prog, ServedCache: cache}
	fresh := &postfix.Instance{ConfigDir: l.ConfigDir}
	mainCF, masterCF := filepath.Join(l.ConfigDir, "main.cf"), filepath.Join(l.ConfigDir, "master.cf")

	served := func(wantRuns int) *postfix.Config {
		t.Helper()
		before := runs()
		cfg, err := in.Served(t.Context())
		if err != nil {
			t.Fatalf("Served: %v", err)
		}
		if got := runs() - before; got != wantRuns {
			t.Errorf("Served ran postconf %d times, want %d", got, wantRuns)
		}
		want, err := fresh.Served(t.Context())
		if err != nil {
			t.Fatalf("Served without cache: %v", err)
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("Served with cache:\n%+v\nwithout:\n%+v", cfg, want)
		}
		return cfg
	}

	cfg := served(3)
	if cfg.Maillog != l.Maillog {
		t.Errorf("Maillog got %q want %q", cfg.Maillog, l.Maillog)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v, want mode 0600", fi, err)
	}
	served(0)

	// main.cf edited: the cache is not used.
	appendTo(t, mainCF, "smtpd_tls_chain_files = /elsewhere/ecdsa.pem\n")
	if cfg := served(3); !reflect.DeepEqual(cfg.Services[0].ChainFiles, []string{"/elsewhere/ecdsa.pem"}) {
		t.Errorf("after editing main.cf ChainFiles got %q", cfg.Services[0].ChainFiles)
	}
	served(0)

	// master.cf edited (a service with an override): three runs and one
	// for the service.
	port := postfixlab.FreePort(t)
	appendTo(t, masterCF, fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_chain_files=/other.pem\n", port))
	if cfg := served(4); len(cfg.Services) != 2 || !reflect.DeepEqual(cfg.Services[1].ChainFiles, []string{"/other.pem"}) {
		t.Errorf("after editing master.cf services got %+v", cfg.Services)
	}

	// A damaged cache, or one written under another key, is not read.
	for _, junk := range []string{"{", `{"version":2,"key":"0000","config":{"Services":[]}}`, ""} {
		if err := os.WriteFile(cache, []byte(junk), 0o600); err != nil {
			t.Fatal(err)
		}
		served(4)
		served(0)
	}
}

func TestSetMaillogSkipsPostconf(t *testing.T) {
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	prog, runs := countingPostconf(t)
	in := &postfix.Instance{ConfigDir: l.ConfigDir, Postconf: prog}
	if err := in.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	// Check runs postconf for maillog_file, then Served's three.
	if runs() != 4 {
		t.Fatalf("Check without SetMaillog ran postconf %d times, want 4 (maillog_file, then Served)", runs())
	}
	in.SetMaillog(l.Maillog)
	if err := in.Check(t.Context()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if runs() != 7 {
		t.Errorf("Check after SetMaillog ran postconf %d more times, want 3 (Served only)", runs()-4)
	}
}

func appendTo(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line); err != nil {
		t.Fatal(err)
	}
}
