package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the danehook binaries built once per test binary by TestMain
// from the repository at repoRoot.
var binDir, repoRoot string

// bin returns the path of the built danehook binary name.
func bin(name string) string { return filepath.Join(binDir, name) }

// TestMain builds cmd/... from the repository root into a temporary
// directory, runs the tests and removes the directory.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// The labs mostly wait (ACME validation, records ageing for 2 x TTL),
	// they hardly compute: run every world at once unless -parallel is set.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "4")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: repository root %s: %v\n", root, err)
		return 2
	}
	dir, err := os.MkdirTemp("", "danehook-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 2
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/...: %v\n%s", err, out)
		return 2
	}
	for _, b := range []string{"dane-prerenew", "dane-deploy", "dane-reload", "danectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/... did not produce %s: %v\n", b, err)
			return 2
		}
	}
	binDir, repoRoot = dir, root
	return m.Run()
}
