package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type doc struct {
	SPKI  string            `json:"spki"`
	Owned map[string]string `json:"owned"`
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "state")}
	var d doc
	found, err := s.Load("mail", &d)
	if err != nil || found {
		t.Fatalf("Load on empty store = %v, %v; want false, nil", found, err)
	}
	want := doc{SPKI: "ab", Owned: map[string]string{"_25._tcp.mail.example.test.": "3 1 1 ab"}}
	if err := s.Save("mail", want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	var got doc
	if found, err := s.Load("mail", &got); err != nil || !found {
		t.Fatalf("Load = %v, %v", found, err)
	}
	if got.SPKI != want.SPKI || got.Owned["_25._tcp.mail.example.test."] != "3 1 1 ab" {
		t.Errorf("got %+v, want %+v", got, want)
	}
	fi, _ := os.Stat(filepath.Join(s.Dir, "mail.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode = %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(s.Dir)
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", di.Mode().Perm())
	}
}

func TestCorruptStateIsAnErrorNotAReset(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	p := filepath.Join(s.Dir, "mail.json")
	os.WriteFile(p, []byte("{not json"), 0o600)
	var d doc
	_, err := s.Load("mail", &d)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Load of corrupt state = %v, want an error naming %s", err, p)
	}
	if b, _ := os.ReadFile(p); string(b) != "{not json" {
		t.Error("corrupt state file was modified")
	}
}

func TestBadNames(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	for _, n := range []string{"", "../x", "a/b", ".hidden"} {
		if err := s.Save(n, doc{}); err == nil {
			t.Errorf("Save(%q) succeeded, want an error", n)
		}
	}
}

func TestLockExcludes(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	l, err := s.Acquire("mail", 0)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// flock locks belong to open file descriptions, so a second open in the
	// same process contends like another process would.
	if _, err := s.Acquire("mail", 100*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Acquire = %v, want ErrLocked", err)
	}
	other, err := s.Acquire("other", 0)
	if err != nil {
		t.Fatalf("Acquire of another name: %v", err)
	}
	other.Unlock()
	l.Unlock()
	l2, err := s.Acquire("mail", 0)
	if err != nil {
		t.Fatalf("Acquire after Unlock: %v", err)
	}
	l2.Unlock()
}

// TestCorruptDocumentNamesTheIntactPrevious: a document damaged outside
// danehook is never replaced silently; the error names the copy from
// before the last write and the command that restores it.
func TestCorruptDocumentNamesTheIntactPrevious(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	type doc struct{ N int }
	for n := 1; n <= 2; n++ {
		if err := s.Save("dns", doc{n}); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(s.Dir, "dns.json")
	if err := os.WriteFile(p, []byte("{truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	var d doc
	_, err := s.Load("dns", &d)
	if err == nil || !strings.Contains(err.Error(), "mv "+p+".prev "+p) {
		t.Fatalf("Load of a corrupt document: %v, want the restore command", err)
	}
	if err := os.Rename(p+".prev", p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("dns", &d); err != nil || d.N != 1 {
		t.Errorf("restored previous: %+v, %v; want N=1", d, err)
	}
	os.Remove(p + ".prev")
	os.WriteFile(p, []byte("{truncated"), 0o600)
	if _, err := s.Load("dns", &d); err == nil || !strings.Contains(err.Error(), "danectl prune") {
		t.Errorf("corrupt without a previous copy: %v, want the prune hint", err)
	}
}

// TestSaveCompactCopyKeepsTheCopyInStep: after SaveCompactCopy the .prev
// copy holds that write (a restore after in-place damage loses nothing of
// it), also when the document already held the text; the next plain save
// keeps the copy one write behind again.
func TestSaveCompactCopyKeepsTheCopyInStep(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	type doc struct{ N int }
	p := filepath.Join(s.Dir, "dns.json")
	load := func(path string) int {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d doc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return d.N
	}
	if err := s.SaveCompact("dns", doc{1}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveCompactCopy("dns", doc{2}); err != nil {
		t.Fatal(err)
	}
	if got := load(p + ".prev"); got != 2 {
		t.Fatalf(".prev after SaveCompactCopy holds N=%d, want 2", got)
	}
	// In-place damage (the same inode) leaves the copy intact.
	if err := os.WriteFile(p, []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	var d doc
	if _, err := s.Load("dns", &d); err == nil || !strings.Contains(err.Error(), "mv "+p+".prev "+p) {
		t.Fatalf("Load: %v, want the restore command", err)
	}
	if err := os.Rename(p+".prev", p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("dns", &d); err != nil || d.N != 2 {
		t.Fatalf("restored: %+v, %v; want N=2", d, err)
	}
	// The document already holds the text: the copy is written anyway.
	if err := s.SaveCompactCopy("dns", doc{2}); err != nil {
		t.Fatal(err)
	}
	if got := load(p + ".prev"); got != 2 {
		t.Errorf(".prev after an unchanged SaveCompactCopy holds N=%d, want 2", got)
	}
	if err := s.SaveCompact("dns", doc{3}); err != nil {
		t.Fatal(err)
	}
	if got := load(p + ".prev"); got != 2 {
		t.Errorf(".prev after a plain save holds N=%d, want the write before (2)", got)
	}
	if fi, err := os.Stat(p + ".prev"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf(".prev mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestSaveUnchangedWritesNothing: saving the text a document already holds
// leaves the file (same inode, so no rename) and its .prev alone; a change,
// or a mode other than 0600, is written.
func TestSaveUnchangedWritesNothing(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	type doc struct{ N int }
	p := filepath.Join(s.Dir, "d.json")
	ino := func() uint64 {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if err := s.Save("d", doc{1}); err != nil {
		t.Fatal(err)
	}
	first := ino()
	if err := s.Save("d", doc{1}); err != nil {
		t.Fatal(err)
	}
	if got := ino(); got != first {
		t.Errorf("unchanged document rewritten (inode %d, was %d)", got, first)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("d", doc{1}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 || ino() == first {
		t.Errorf("document with mode %v not rewritten 0600", fi.Mode().Perm())
	}
	second := ino()
	if err := s.Save("d", doc{2}); err != nil {
		t.Fatal(err)
	}
	var got doc
	if _, err := s.Load("d", &got); err != nil || got.N != 2 || ino() == second {
		t.Errorf("changed document: %+v, %v, rewritten %t; want N 2 written", got, err, ino() != second)
	}
}

// TestSaveForms: Save writes json.MarshalIndent's text (two spaces) and
// SaveCompact json.Marshal's, each with a final newline; Load reads both,
// so a document saved indented loads and is then saved compact (once:
// an unchanged compact document is not written again).
func TestSaveForms(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	v := doc{SPKI: "<ab&>", Owned: map[string]string{"b.": "3 1 1 cd", "a.": "3 1 1 ab"}}
	p := filepath.Join(s.Dir, "d.json")
	indented, _ := json.MarshalIndent(v, "", "  ")
	compact, _ := json.Marshal(v)
	if err := s.Save("d", v); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(indented)+"\n" {
		t.Fatalf("Save wrote\n%s\nwant\n%s", b, indented)
	}
	var got doc
	if found, err := s.Load("d", &got); err != nil || !found || got.SPKI != v.SPKI || got.Owned["b."] != "3 1 1 cd" {
		t.Fatalf("Load of the indented document = %v, %v, %+v", found, err, got)
	}
	if err := s.SaveCompact("d", got); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(compact)+"\n" || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("SaveCompact wrote\n%s\nwant\n%s", b, compact)
	}
	if b, err := os.ReadFile(p + prevExt); err != nil || string(b) != string(indented)+"\n" {
		t.Fatalf("%s holds %q, %v; want the indented document", p+prevExt, b, err)
	}
	got = doc{}
	if found, err := s.Load("d", &got); err != nil || !found || got.SPKI != v.SPKI || len(got.Owned) != 2 {
		t.Fatalf("Load of the compact document = %v, %v, %+v", found, err, got)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if err := s.SaveCompact("d", got); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Stat(p); !os.SameFile(before, after) {
		t.Error("an unchanged compact document was written again")
	}
}

// TestSaveEmptyCreatesNothing: an empty object ({}) is not written where no
// document exists, and loads the same (not found, v unchanged); where a
// document exists it is written like any other, and SaveCompactCopy
// always writes (its copy must hold the text).
func TestSaveEmptyCreatesNothing(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	type lineage struct {
		Pinned string `json:"pinned,omitempty"`
	}
	p := filepath.Join(s.Dir, "l.json")
	if err := s.Save("l", lineage{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an empty document was created (%v)", err)
	}
	var got lineage
	if found, err := s.Load("l", &got); found || err != nil || got != (lineage{}) {
		t.Errorf("Load after an empty Save = %t, %v, %+v; want not found, zero", found, err, got)
	}
	if err := s.Save("l", lineage{Pinned: "k1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("l", lineage{}); err != nil {
		t.Fatal(err)
	}
	if found, err := s.Load("l", &got); !found || err != nil || got.Pinned != "" {
		t.Errorf("an emptied document was not written: %t, %v, %+v", found, err, got)
	}
	if err := s.SaveCompactCopy("c", lineage{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"c.json", "c.json.prev"} {
		if b, err := os.ReadFile(filepath.Join(s.Dir, f)); err != nil || string(b) != "{}\n" {
			t.Errorf("SaveCompactCopy of {}: %s = %q, %v; want {}", f, b, err)
		}
	}
}
