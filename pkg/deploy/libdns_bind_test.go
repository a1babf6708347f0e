package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/libdnsprov"
)

// The engine through a libdns provider (libdns/rfc2136 against the lab's
// BIND, reads by direct query): Plan shows the addition, Publish sends it,
// a second Publish sends nothing and reads the owner once, the record of
// another writer survives.
func TestPublishThroughLibdnsRFC2136(t *testing.T) {
	e, lab, rp := bindEngine(t, "")
	spec, err := libdnsprov.Lookup("rfc2136")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := spec.New(libdnsprov.Settings{Server: rp.Server, Key: rp.Key})
	if err != nil {
		t.Fatal(err)
	}
	reader := &dnsupdate.RFC2136{Server: rp.Server, Key: rp.Key, Timeout: 5 * time.Second}
	e.Publishers["lab"] = &dnsupdate.Libdns{Name: "rfc2136", Provider: prov, Reader: reader, Classify: spec.Classify, Timeout: 5 * time.Second}

	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k1, c1)
	spki1 := spkiOf(t, c1)
	other := "3 1 1 " + strings.Repeat("ab", 32)
	lab.Nsupdate(t, "update add _25._tcp.mail.example.test. 60 IN TLSA "+other+"\nsend\n")

	plans, err := e.Plan(t.Context())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if got := planText(plans); !strings.Contains(got, "+ _25._tcp.mail.example.test. 1 IN TLSA 3 1 1 "+spki1) {
		t.Fatalf("plan =\n%s", got)
	}
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	serial := lab.Serial(t, lab.Primary, "example.test.")
	before := lab.Counters(t, "primary")
	plans, err = e.Publish(t.Context())
	if err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	// The owner is read once at query_server, unsigned, and that answer is
	// shared with the propagation check (Libdns is a ViewReader): one TLSA
	// query, where FindZone + Records + the check's own read made two and
	// an SOA query per owner.
	if got := lab.Counters(t, "primary").Queries["TLSA"] - before.Queries["TLSA"]; got != 1 {
		t.Errorf("second Publish: the primary answered %d TLSA queries for one owner, want 1", got)
	}
	for _, p := range plans {
		if !p.Changes.Empty() {
			t.Errorf("second Publish planned:\n%s", p.Changes)
		}
	}
	if s := lab.Serial(t, lab.Primary, "example.test."); s != serial {
		t.Errorf("second Publish changed the serial %d → %d", serial, s)
	}
	got := servedRecords(t, e)
	if !has(got, spki1) || !has(got, strings.Repeat("ab", 32)) {
		t.Errorf("served %v, want the new record and the other writer's", got)
	}
}
