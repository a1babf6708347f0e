package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		previous []byte      // nil: no previous file
		prevMode fs.FileMode // of the previous file
		perm     fs.FileMode
	}{
		{"new file", nil, 0, 0o600},
		{"new world-readable file", nil, 0, 0o644},
		{"past the umask", nil, 0, 0o666},
		{"replaces a world-readable file", []byte("old\n"), 0o644, 0o600},
		{"replaces a 0600 file", []byte("old\n"), 0o600, 0o600},
		{"opens a 0600 file", []byte("old\n"), 0o600, 0o644},
		{"replaces an empty file", []byte{}, 0o640, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "chain-ecdsa.pem")
			if tt.previous != nil {
				if err := os.WriteFile(p, tt.previous, tt.prevMode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tt.prevMode); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			data := []byte("-----BEGIN PRIVATE KEY-----\n...\n")
			if err := Write(p, data, tt.perm); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("got content %q, %v; want %q", got, err, data)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.perm {
				t.Errorf("got mode %v, want %v", fi.Mode(), tt.perm)
			}
			if names := listDir(t, dir); !slices.Equal(names, []string{"chain-ecdsa.pem"}) {
				t.Errorf("got directory %v, want only the written file", names)
			}
		})
	}
}

// TestWriteRelativePath writes a bare file name, in the working directory.
func TestWriteRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := Write("state.json", []byte("{}\n"), 0o600); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "state.json")); err != nil || string(got) != "{}\n" {
		t.Errorf("got %q, %v; want %q", got, err, "{}\n")
	}
	if names := listDir(t, dir); !slices.Equal(names, []string{"state.json"}) {
		t.Errorf("got directory %v, want only state.json", names)
	}
}

func TestWriteThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real", "chain.pem")
	if err := os.MkdirAll(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "chain.pem")
	if err := os.Symlink(filepath.Join("real", "chain.pem"), link); err != nil {
		t.Fatal(err)
	}
	if err := Write(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("got %v, %v; want the link kept", fi, err)
	}
	if got, _ := os.ReadFile(real); string(got) != "new" {
		t.Errorf("got target content %q, want %q", got, "new")
	}
	if fi, err := os.Stat(real); err != nil || fi.Mode() != 0o600 {
		t.Errorf("got target %v, %v; want mode -rw-------", fi, err)
	}
	if names := listDir(t, filepath.Dir(real)); !slices.Equal(names, []string{"chain.pem"}) {
		t.Errorf("got %v in the target's directory, want only chain.pem", names)
	}
}

// TestWriteFailures uses failures that happen even as root.
func TestWriteFailures(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) (path string)
		wantIn  string
		wantErr error // matched with errors.Is; nil: not checked
	}{
		{"directory missing", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "missing", "chain.pem")
		}, "create temporary file", fs.ErrNotExist},
		{"parent is a file", func(t *testing.T, dir string) string {
			writeFile(t, filepath.Join(dir, "file"), "x")
			return filepath.Join(dir, "file", "chain.pem")
		}, "create temporary file", syscall.ENOTDIR},
		{"name too long for a temporary file", func(t *testing.T, dir string) string {
			return filepath.Join(dir, strings.Repeat("n", 250))
		}, "create temporary file", syscall.ENAMETOOLONG},
		{"target is a non-empty directory", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "chain.pem")
			writeFile(t, filepath.Join(p, "keep"), "previous content")
			return p
		}, "rename into place", nil},
		{"dangling symlink", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "chain.pem")
			if err := os.Symlink("gone/chain.pem", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "resolve symlink", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := tt.setup(t, dir)
			before := snapshot(t, dir)
			err := Write(p, []byte("new content"), 0o600)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got error %v, want one naming %q and containing %q", err, p, tt.wantIn)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want one matching %v", err, tt.wantErr)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("directory changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestWriteInjectedFailures makes the write and the rename fail, which no
// file system condition does reliably for root: the previous file must stay
// intact and no temporary file may remain.
func TestWriteInjectedFailures(t *testing.T) {
	boom := errors.New("injected failure")
	tests := []struct {
		name   string
		write  func(f *os.File, data []byte) error
		rename func(from, to string) error
		wantIn string
	}{
		{"write fails half way", func(f *os.File, data []byte) error {
			_, _ = f.Write(data[:len(data)/2])
			return boom
		}, os.Rename, "injected failure"},
		{"disk full (short write)", func(f *os.File, data []byte) error {
			_, _ = f.Write(data[:1])
			return syscall.ENOSPC
		}, os.Rename, "no space left on device"},
		{"rename fails", writeData, func(string, string) error { return boom }, "rename into place"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldWrite, oldRename := writeData, renameFile
			t.Cleanup(func() { writeData, renameFile = oldWrite, oldRename })
			writeData, renameFile = tt.write, tt.rename

			dir := t.TempDir()
			p := filepath.Join(dir, "chain-rsa.pem")
			previous := []byte("previous chain\n")
			if err := os.WriteFile(p, previous, 0o600); err != nil {
				t.Fatal(err)
			}
			err := Write(p, bytes.Repeat([]byte("new chain\n"), 100), 0o600)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got error %v, want one naming %q and containing %q", err, p, tt.wantIn)
			}
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, previous) {
				t.Errorf("got previous file %q, %v; want it intact", got, err)
			}
			if names := listDir(t, dir); !slices.Equal(names, []string{"chain-rsa.pem"}) {
				t.Errorf("got directory %v, want only the previous file", names)
			}
		})
	}
}

// writeFile writes content to p, creating its directory.
func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// listDir returns the names in dir, failing t on error.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// snapshot describes every file under dir with its content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(strings.TrimPrefix(p, dir) + " ")
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(string(data) + "; ")
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return b.String()
}

func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "privkey.pem")
	for _, target := range []string{"../archive/privkey1.pem", "../archive/privkey2.pem"} {
		if err := Symlink(target, link); err != nil {
			t.Fatalf("Symlink(%q): %v", target, err)
		}
		if got, err := os.Readlink(link); err != nil || got != target {
			t.Errorf("link points to %q, %v; want %q", got, err, target)
		}
	}
	if names := listDir(t, dir); !slices.Equal(names, []string{"privkey.pem"}) {
		t.Errorf("directory %v, want only the link", names)
	}

	old := renameFile
	t.Cleanup(func() { renameFile = old })
	renameFile = func(string, string) error { return errors.New("injected failure") }
	if err := Symlink("../archive/privkey3.pem", link); err == nil || !strings.Contains(err.Error(), "rename into place") {
		t.Fatalf("Symlink with a failing rename: %v, want the rename error", err)
	}
	if got, _ := os.Readlink(link); got != "../archive/privkey2.pem" {
		t.Errorf("after a failed Symlink the link points to %q, want the previous target", got)
	}
	if names := listDir(t, dir); !slices.Equal(names, []string{"privkey.pem"}) {
		t.Errorf("directory %v after a failure, want only the link", names)
	}
}
