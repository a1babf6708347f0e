// Package state keeps danehook's state on disk: one JSON document per
// lineage under the state directory, written atomically (temporary file in
// the same directory, fsync, rename, mode 0600) and guarded by an exclusive
// flock(2) lock so that overlapping hook and timer runs cannot interleave.
// It knows nothing of what the documents hold.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
)

// Store is a directory of JSON documents, one per name.
type Store struct {
	// Dir is the state directory, created 0700 on first write.
	Dir string
}

// ErrLocked is returned by TryLock when another process holds the lock.
var ErrLocked = errors.New("state is locked by another danehook process")

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

func (s *Store) path(name, ext string) (string, error) {
	if !validName.MatchString(name) || len(name) > 200 {
		return "", fmt.Errorf("state name %q: use letters, digits, '.', '_', '@' and '-'", name)
	}
	return filepath.Join(s.Dir, name+ext), nil
}

func (s *Store) mkdir() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", s.Dir, err)
	}
	return nil
}

// Load decodes the document called name into v. It returns (false, nil) when
// no document exists yet, and an error naming the file when it cannot be
// read or decoded (a corrupt file is never silently replaced).
func (s *Store) Load(name string, v any) (bool, error) {
	p, err := s.path(name, ".json")
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state %s: %w", p, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		hint := "move it aside; danehook then owns no record it published before, so it never removes them: 'danectl status' lists them as matching no chain and 'danectl prune' removes those once that is safe"
		if prev, perr := os.ReadFile(p + prevExt); perr == nil && json.Valid(prev) {
			hint = fmt.Sprintf("the copy kept by the last writes is intact: 'mv %s %s' restores it", p+prevExt, p)
		}
		return false, fmt.Errorf("state %s is corrupt (%v): %s", p, err, hint)
	}
	return true, nil
}

// prevExt names the copy of a document as it was before its last Save,
// or as its last SaveCompactCopy wrote it.
const prevExt = ".prev"

// Save encodes v as indented JSON and writes it atomically as the document
// called name, mode 0600. A document that already holds exactly that text
// with mode 0600 is left alone (no write, no fsync: a run that changed one
// lineage of fifty writes one file, not fifty). An empty object ({}) is
// not written where no document exists: Load then leaves v as decoding {}
// would (a first run of fifty lineages with nothing to remember spent 15-25
// ms creating fifty such files, each fsynced twice).
func (s *Store) Save(name string, v any) error { return s.save(name, v, "  ", false) }

// SaveCompact is Save with JSON on one line, no indentation: for a large
// document programs read (`jq . FILE` shows it indented). Indenting is
// about half the cost of encoding a document of thousands of map entries
// and doubles its size. Load reads either form, so a document saved
// indented before loads and is then saved compact.
func (s *Store) SaveCompact(name string, v any) error { return s.save(name, v, "", false) }

// SaveCompactCopy is SaveCompact, and writes the same text as the
// document's .prev copy too (atomically, mode 0600, its own file): for a
// write that a restore of the copy must not undo. A damaged document is
// restored from .prev (Load's hint); after a plain save that copy is one
// write behind, so what that write added would be lost by the restore.
// It costs a second write of the document, done alongside the first (a
// crash in between leaves each file the old or the new text).
func (s *Store) SaveCompactCopy(name string, v any) error { return s.save(name, v, "", true) }

func (s *Store) save(name string, v any, indent string, keepCopy bool) error {
	p, err := s.path(name, ".json")
	if err != nil {
		return err
	}
	if err := s.mkdir(); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // as json.Marshal(Indent), and a final newline
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("state %s: %w", p, err)
	}
	data := buf.Bytes()
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) && string(data) == "{}\n" && !keepCopy {
		return nil // nothing to remember: a missing document loads the same
	}
	if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == 0o600 && fi.Size() == int64(len(data)) {
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, data) {
			if keepCopy {
				return s.writeCopy(p, data)
			}
			return nil
		}
	}
	if keepCopy {
		// The copy gets the new text too: both written at once.
		var cerr error
		var copyDone sync.WaitGroup
		copyDone.Go(func() { cerr = s.writeCopy(p, data) })
		err := atomicfile.Write(p, data, 0o600)
		copyDone.Wait()
		return errors.Join(err, cerr)
	}
	// Keep the previous version as <name>.json.prev (a hard link: no copy),
	// so that a document damaged outside danehook can be restored.
	os.Remove(p + prevExt)
	_ = os.Link(p, p+prevExt)
	return atomicfile.Write(p, data, 0o600)
}

// writeCopy makes p's .prev copy hold data, unless it already does.
func (s *Store) writeCopy(p string, data []byte) error {
	if old, err := os.ReadFile(p + prevExt); err == nil && bytes.Equal(old, data) {
		return nil
	}
	// os.Remove first: .prev may be a hard link to an older p, which
	// atomicfile.Write replaces by rename anyway; removing keeps no stale
	// link if the write fails.
	os.Remove(p + prevExt)
	return atomicfile.Write(p+prevExt, data, 0o600)
}

// Lock is a held exclusive lock; Unlock releases it.
type Lock struct{ f *os.File }

// Unlock releases the lock. It is safe to call on a nil Lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}

// Acquire takes the exclusive lock called name (file <name>.lock), waiting up
// to wait for another holder to release it. It returns ErrLocked (wrapped,
// naming the lock file) when the wait runs out.
func (s *Store) Acquire(name string, wait time.Duration) (*Lock, error) {
	p, err := s.path(name, ".lock")
	if err != nil {
		return nil, err
	}
	if err := s.mkdir(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &Lock{f: f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w; if no danehook hook or timer is running, the holder is stuck", p, ErrLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
