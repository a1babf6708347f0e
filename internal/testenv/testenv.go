// Package testenv holds the rules every danehook test follows for real
// components: outside CI a missing component skips the test; under CI=true it
// fails it, so a green CI run never hides a missing install step.
package testenv

import (
	"os"
	"os/exec"
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
