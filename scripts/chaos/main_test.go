package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds danehook's binaries, built once per test binary by TestMain
// from the repository (as scripts/e2e does), or the installed ones named
// by $DANEHOOK_BIN_DIR.
var binDir string

// binaries are the four programs danehook installs.
var binaries = []string{"dane-prerenew", "dane-deploy", "dane-reload", "danectl"}

// bin returns the path of the danehook binary name.
func bin(name string) string { return filepath.Join(binDir, name) }

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	if d := os.Getenv("DANEHOOK_BIN_DIR"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: DANEHOOK_BIN_DIR=%q: %v\n", d, err)
			return 2
		}
		if err := checkBinaries(abs); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: DANEHOOK_BIN_DIR=%q: %v\n", d, err)
			return 2
		}
		binDir = abs
		return m.Run()
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		return 2
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: repository root %s: %v\n", root, err)
		return 2
	}
	dir, err := os.MkdirTemp("", "danehook-chaos-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "chaos: %v\n", err)
		return 2
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: go build ./cmd/...: %v\n%s", err, out)
		return 2
	}
	if err := checkBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: go build ./cmd/...: %v\n", err)
		return 2
	}
	binDir = dir
	return m.Run()
}

// checkBinaries checks that dir holds each of binaries as an executable file.
func checkBinaries(dir string) error {
	for _, b := range binaries {
		p := filepath.Join(dir, b)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("no %s: %w", b, err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file (mode %v)", p, fi.Mode())
		}
	}
	return nil
}
