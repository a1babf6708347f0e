package chain_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
)

// TestWriteFile checks what WriteFile promises on top of internal/atomicfile
// (which has the failure, symlink and injection tests): mode 0600 over a
// world-readable file, errors naming path.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "chain-ecdsa.pem")
	if err := os.WriteFile(p, []byte("old chain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	data := []byte("-----BEGIN PRIVATE KEY-----\n...\n")
	if err := chain.WriteFile(p, data); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Errorf("got content %q, %v; want %q", got, err, data)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode() != 0o600 {
		t.Errorf("got %v, %v; want mode -rw-------", fi, err)
	}
	if names := listDir(t, dir); !slices.Equal(names, []string{"chain-ecdsa.pem"}) {
		t.Errorf("got directory %v, want only the chain file", names)
	}

	missing := filepath.Join(dir, "missing", "chain.pem")
	if err := chain.WriteFile(missing, data); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("got error %v, want one naming %q", err, missing)
	}
}
