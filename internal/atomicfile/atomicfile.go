// Package atomicfile replaces files so that a reader sees either the old or
// the new content, never a mix, even across a crash: the way danehook writes
// keys, served chains and state.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Seams for tests that make a step fail; the real calls otherwise.
var (
	writeData  = func(f *os.File, data []byte) error { _, err := f.Write(data); return err }
	renameFile = os.Rename
)

// Write replaces the file at path with data, atomically: data goes to a new
// file ".<name>.tmp-<random>" in the same directory, given mode perm (exactly,
// whatever the umask), written, fsynced and closed, then renamed over path,
// and the directory is fsynced so the rename survives a crash. Readers see
// the old file or the new one, never a mix. The result has mode perm even
// when the file it replaces was more open. When path is a symbolic link, the
// file it points to is replaced and the link kept; a dangling link is an
// error.
//
// On any error the temporary file is removed and the previous file is left
// as it was (a crash can leave a ".<name>.tmp-*" file behind, never a
// partial path). Errors name path and the step that failed and wrap the
// cause (*fs.PathError, *os.LinkError); a failed directory fsync is reported
// although the new file is already in place. File systems that cannot fsync
// a directory (EINVAL) are not an error.
func Write(path string, data []byte, perm os.FileMode) (err error) {
	target := path
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return fmt.Errorf("write %q: resolve symlink: %w", path, err)
		}
	}
	dir, name := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %q: create temporary file: %w", path, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				_ = f.Close()
			}
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err = writeData(f, data); err != nil {
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %q: fsync: %w", path, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %q: close: %w", path, err)
	}
	if err = renameFile(tmp, target); err != nil {
		return fmt.Errorf("write %q: rename into place: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %q: fsync directory %q: %w", path, dir, err)
	}
	return nil
}

// syncDir fsyncs a directory so a rename in it is durable. File systems that
// cannot fsync a directory (EINVAL) are not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// Symlink makes link a symbolic link to target, atomically: the new link is
// made under a temporary name in link's directory and renamed over link, and
// the directory is fsynced. A reader of link sees the old target or the new
// one, never no link. An existing link (or file) at link is replaced. On
// error the temporary link is removed and link is left as it was.
func Symlink(target, link string) error {
	dir, name := filepath.Split(link)
	if dir == "" {
		dir = "."
	}
	tmp := filepath.Join(dir, "."+name+".tmp-link")
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %q: %w", link, err)
	}
	if err := renameFile(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %q: rename into place: %w", link, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("link %q: fsync directory %q: %w", link, dir, err)
	}
	return nil
}
