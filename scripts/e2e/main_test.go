package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// binDir holds the danehook binaries: built once per test binary by
// TestMain from the repository at repoRoot, or the installed ones in
// $DANEHOOK_BIN_DIR. hooksDir is $DANEHOOK_HOOKS_DIR ("" when unset): the
// hook wrappers (certbot/{pre,deploy,post}/danehook) that certbot worlds
// link with `danectl init certbot` instead of naming the binaries.
var binDir, repoRoot, hooksDir string

// binaries are the four programs danehook installs.
var binaries = []string{"dane-prerenew", "dane-deploy", "dane-reload", "danectl"}

// bin returns the path of the danehook binary name.
func bin(name string) string { return filepath.Join(binDir, name) }

// TestMain builds cmd/... from the repository root into a temporary
// directory, runs the tests and removes the directory. With
// DANEHOOK_BIN_DIR set (scripts/pkgtest sets /usr/bin while the package is
// installed) it builds nothing and runs the binaries found there.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// The labs mostly wait (ACME validation, records ageing for 2 x TTL),
	// they hardly compute, but each runs a judge that samples
	// posttls-finger twice a second: run six worlds at once (of TestClients
	// 5, TestRotate 2, TestLabWalkthrough 1; with all eight the samplers
	// starved on 2 cores) unless -parallel is set.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "6")
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
	repoRoot = root
	if d := os.Getenv("DANEHOOK_HOOKS_DIR"); d != "" {
		if hooksDir, err = filepath.Abs(d); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: DANEHOOK_HOOKS_DIR=%q: %v\n", d, err)
			return 2
		}
		if fi, err := os.Stat(hooksDir); err != nil || !fi.IsDir() {
			fmt.Fprintf(os.Stderr, "e2e: DANEHOOK_HOOKS_DIR=%q is not a directory\n", d)
			return 2
		}
	}
	if d := os.Getenv("DANEHOOK_BIN_DIR"); d != "" {
		if binDir, err = filepath.Abs(d); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: DANEHOOK_BIN_DIR=%q: %v\n", d, err)
			return 2
		}
		if err := checkBinaries(binDir); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: DANEHOOK_BIN_DIR=%q: %v\n", d, err)
			return 2
		}
		return m.Run()
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
	if err := checkBinaries(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/...: %v\n", err)
		return 2
	}
	binDir = dir
	return m.Run()
}

// checkBinaries checks that dir holds each of binaries as an executable
// regular file (or a link to one).
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
