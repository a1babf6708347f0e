// Package testenv holds the rules every danehook test follows for real
// components: outside CI a missing component skips the test; under CI=true it
// fails it, so a green CI run never hides a missing install step.
package testenv

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// CI reports whether the tests run under CI (the environment variable CI is "true").
func CI() bool { return os.Getenv("CI") == "true" }

// Require checks that every command in cmds is on PATH. When one is missing it
// fails t under CI and skips t otherwise, naming the command and the script
// that installs it (scripts/install-deps.sh).
func Require(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			Missing(t, "command "+c+" is not on PATH; run scripts/install-deps.sh")
		}
	}
}

// Missing reports a missing real component described by what: a failure under
// CI, a skip elsewhere.
func Missing(t testing.TB, what string) {
	t.Helper()
	if CI() {
		t.Fatalf("missing component under CI=true: %s", what)
	}
	t.Skipf("missing component: %s (this would fail under CI=true)", what)
}

// Tail returns the last n lines of the file at path ("" when it cannot be
// read), for the logs a test harness prints when a test fails.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// OpenSSL runs the openssl command line with stdin and returns its standard
// output, failing t with openssl's standard error when it exits non-zero.
// Callers Require "openssl" first.
func OpenSSL(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Atd makes sure atd(8) runs, for the tests of at(1) scheduling: it starts
// the daemon when none runs (as root) and leaves it running: test binaries
// of several packages run at once (scripts/test.sh), and one that stopped
// the daemon it started would stop it under another's at jobs (pkg/schedule
// beside scripts/e2e's TestSwitchAtFloor). A missing at or atd is Missing;
// so is a test run by another user than root.
func Atd(t testing.TB) {
	t.Helper()
	Require(t, "at", "atq", "atrm", "atd")
	if os.Geteuid() != 0 {
		Missing(t, "atd needs root to run jobs (run the tests as root)")
	}
	if exec.Command("pgrep", "-x", "atd").Run() == nil {
		return
	}
	if out, err := exec.Command("atd").CombinedOutput(); err != nil {
		t.Fatalf("start atd: %v: %s", err, out)
	}
}
