package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestSaveDNSSkipsUnchanged: a second save of an unchanged DNS state
// writes nothing (the file's mode, set aside to 0644, stays: Store.Save
// would rewrite it 0600), and any change — an owned record, a first
// sighting, a nil map becoming empty — is written.
func TestSaveDNSSkipsUnchanged(t *testing.T) {
	dir := t.TempDir()
	e := &Engine{Store: &state.Store{Dir: dir}}
	s := &snapshot{DNS: &DNSState{Seen: &propagate.Seen{}}}
	rec, err := tlsa.Parse("3 1 1 " + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789cdef")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dns.json")
	mode := func() os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	save := func(what string, wantWritten bool) {
		t.Helper()
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := e.saveDNS(s); err != nil {
			t.Fatal(err)
		}
		if written := mode() == 0o600; written != wantWritten {
			t.Fatalf("%s: written = %v, want %v", what, written, wantWritten)
		}
		var got DNSState
		data, _ := os.ReadFile(p)
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(s.DNS)
		if string(data) != string(want)+"\n" {
			t.Fatalf("%s: dns.json holds\n%s\nwant\n%s", what, data, want)
		}
	}
	if err := e.saveDNS(s); err != nil {
		t.Fatal(err)
	}
	save("nothing changed", false)
	s.DNS.own("_25._tcp.mx.example.com.", rec, "lab")
	save("a record owned", true)
	save("nothing changed since", false)
	s.DNS.noteLineages("_25._tcp.mx.example.com.", []string{"mx"})
	save("a lineage noted", true)
	s.DNS.Seen.Owners = map[string]map[string]map[string]time.Time{"_25._tcp.mx.example.com.": {rec.String(): {"127.0.0.1:53": time.Unix(1e9, 0).UTC()}}}
	save("a first sighting", true)
	s.DNS.Seen.Owners["_25._tcp.mx.example.com."][rec.String()]["127.0.0.1:53"] = time.Unix(1e9+1, 0).UTC()
	save("a later sighting", true)
	s.DNS.Retiring = map[string]time.Time{}
	save("an empty map where nil was", true)
	s.DNS.disown("_25._tcp.mx.example.com.", rec)
	save("a record disowned", true)
	s.DNS.PostfixChecked = "x"
	save("postfix checked", true)
	save("nothing changed at the end", false)
}

// TestDNSStateCloneCoversFields fails when DNSState or propagate.Seen gains
// a field that clone and equal do not know: saveDNS would then skip a save
// that changes the file.
func TestDNSStateCloneCoversFields(t *testing.T) {
	if n := reflect.TypeOf(DNSState{}).NumField(); n != 6 {
		t.Fatalf("DNSState has %d fields: teach clone and equal (statesave.go) the new one, then update this count", n)
	}
	if n := reflect.TypeOf(propagate.Seen{}).NumField(); n != 2 {
		t.Fatalf("propagate.Seen has %d fields: teach clone and equal (statesave.go) the new one, then update this count", n)
	}
}

// TestIndentedDNSStateLoads: a dns.json an earlier version saved indented
// loads as the same state, and the next save that changes it writes it
// compact (one line) holding what the indented one held and the change.
func TestIndentedDNSStateLoads(t *testing.T) {
	dir := t.TempDir()
	e := &Engine{Store: &state.Store{Dir: dir}}
	old := benchDNS(20, true)
	old.Retiring = map[string]time.Time{"_25._tcp.gone.example.": time.Date(2026, 11, 30, 1, 2, 3, 4, time.UTC)}
	old.PostfixChecked = "digest"
	if err := e.Store.Save(dnsDoc, old); err != nil { // as before: indented
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dns.json")
	if b, _ := os.ReadFile(p); !strings.HasPrefix(string(b), "{\n  \"owned\": {\n") {
		t.Fatalf("the earlier form is not indented:\n%.200s", b)
	}
	loaded, err := e.loadDNS()
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.equal(old) {
		t.Fatalf("the indented dns.json loads as\n%+v\nwant\n%+v", loaded, old)
	}
	s := &snapshot{DNS: loaded}
	rec, err := tlsa.Parse("3 1 1 " + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	s.DNS.own("_25._tcp.new.example.", rec, "lab")
	if err := e.saveDNS(s); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if strings.Count(string(b), "\n") != 1 || !strings.HasSuffix(string(b), "}\n") {
		t.Fatalf("dns.json after the save is not one line of JSON:\n%.300s", b)
	}
	again, err := e.loadDNS()
	if err != nil {
		t.Fatal(err)
	}
	if !again.equal(s.DNS) || len(again.Owned) != 21 || again.Seen.Owners["_25._tcp.h00003.z0.bench.test."] == nil {
		t.Fatalf("the compact dns.json loads as %d owned owners, seen %v; want the indented state and the new owner", len(again.Owned), again.Seen.Owners != nil)
	}
}
