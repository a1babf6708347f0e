package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// fakeRec returns a distinct 3 1 1 record (a key no chain has).
func fakeRec(t *testing.T, i int) tlsa.Record {
	t.Helper()
	r, err := tlsa.Parse(fmt.Sprintf("3 1 1 %064x", i+1))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCapOwner: the record count at an owner never exceeds 12; the refusal
// names what can be dropped and how.
func TestCapOwner(t *testing.T) {
	ca := newCA(t)
	cur := memChain(t, ca, nil, 0)
	for _, tc := range []struct {
		name    string
		others  int // records of others that no chain relies on
		owned   int // danehook's records no longer wanted
		matched bool
		want    int // extra wanted records beyond cur's 3 1 1 (not served)
		refused bool
		says    []string
	}{
		{name: "11 others + 1 addition = 12: allowed", others: 11},
		{name: "12 others + 1 addition: refused, prune named", others: 12, refused: true, says: []string{"would hold 13 records", "drop at least 1", "'danectl prune' removes it"}},
		{name: "owned leftovers named with tick", others: 6, owned: 6, refused: true, says: []string{"'danectl tick' removes it"}},
		{name: "a record of others a chain matches: remove by hand", others: 11, matched: true, refused: true, says: []string{"remove it by hand"}},
		{name: "danehook alone wants 13", want: 12, refused: true, says: []string{"danehook alone wants 13", "issuer_set"}},
		{name: "nothing to add, 14 served: no refusal (nothing sent)", others: 14, want: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []servedRec
			n := 0
			for i := 0; i < tc.others; i++ {
				recs = append(recs, servedRec{rec: fakeRec(t, n), since: time.Hour})
				n++
			}
			var owned []tlsa.Record
			for i := 0; i < tc.owned; i++ {
				owned = append(owned, fakeRec(t, n))
				recs = append(recs, servedRec{rec: fakeRec(t, n), since: time.Hour})
				n++
			}
			if tc.matched {
				recs = append(recs, servedRec{rec: rec301(t, cur), since: time.Hour})
			}
			want := []tlsa.Record{rec311(t, cur)}
			if tc.want < 0 {
				want = nil
			}
			for i := 0; i < tc.want; i++ {
				want = append(want, fakeRec(t, 1000+i))
			}
			s, _ := world(t, cur, 60, recs, nil)
			for _, r := range owned {
				s.DNS.own(tOwner, r, "lab")
			}
			ov := s.owner(tOwner)
			err := capOwner(s, ov, want, additions(ov, want))
			var tm *TooManyRecordsError
			if tc.refused != errors.As(err, &tm) {
				t.Fatalf("capOwner = %v, refused want %v", err, tc.refused)
			}
			for _, w := range tc.says {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestCapOwnerRefusesAgainstBIND: with 12 records of others at the owner,
// plan and publish refuse to add the lineage's record, say which records
// to drop, and send nothing; once one is gone the record is published.
func TestCapOwnerRefusesAgainstBIND(t *testing.T) {
	e, lab, rp := bindEngine(t, "")
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	var b strings.Builder
	for i := 0; i < MaxRecordsPerOwner; i++ {
		fmt.Fprintf(&b, "update add %s 60 IN TLSA %s\n", owner, fakeRec(t, i))
	}
	lab.Nsupdate(t, b.String()+"send\n")

	_, err := e.Plan(t.Context())
	var tm *TooManyRecordsError
	if !errors.As(err, &tm) || tm.Served != 12 || tm.Adding != 1 || len(tm.Drop) != 12 || !strings.Contains(err.Error(), "'danectl prune'") {
		t.Fatalf("Plan = %v, want a TooManyRecordsError naming the 12 records to drop", err)
	}
	if _, err := e.Publish(t.Context()); !errors.As(err, &tm) {
		t.Fatalf("Publish = %v, want a TooManyRecordsError", err)
	}
	if n := rp.Sent().Updates; n != 0 {
		t.Fatalf("sent %d UPDATEs, want 0", n)
	}
	if got := servedRecords(t, e); len(got) != 12 {
		t.Fatalf("served %d records, want the 12 untouched", len(got))
	}
	lab.Nsupdate(t, fmt.Sprintf("update delete %s IN TLSA %s\nsend\n", owner, fakeRec(t, 0)))
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish after one record was dropped: %v", err)
	}
	if got := servedRecords(t, e); len(got) != 12 || !has(got, spkiOf(t, c)) {
		t.Fatalf("served %v, want 12 with the lineage's 3 1 1", got)
	}
}

// TestCapRemovalsMakeRoom: at an owner that holds 12 records, 11 of them
// danehook's and no longer wanted, a run whose addition the cap refuses
// still removes those records (they are what makes room) and fails with
// the TooManyRecordsError; the next run publishes the record. Before, the
// refusal stopped the run before its removals, so every later run failed
// the same way: measured in bench-hooks' new-key round, where each pending
// key superseded the last while the secondary lagged.
func TestCapRemovalsMakeRoom(t *testing.T) {
	e, _, rp := bindEngine(t, "")
	ca := newCA(t)
	path := e.Config.Lineages["mail"].ChainFile
	install := func() []byte {
		k, c, _ := ca.issue(t, nil)
		writeFile(t, path, k, c)
		// As if Postfix had been reloaded onto it (no endpoints here).
		d, _ := fileDigest(path)
		if err := e.Store.Save("mail", &LineageState{VerifiedChain: d}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	var first []byte
	for i := 0; i < MaxRecordsPerOwner; i++ {
		c := install()
		if i == 0 {
			first = c
		}
		if _, err := e.Publish(t.Context()); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	if got := servedRecords(t, e); len(got) != MaxRecordsPerOwner {
		t.Fatalf("served %d records, want %d", len(got), MaxRecordsPerOwner)
	}
	last := install()
	_, err := e.Reload(t.Context())
	var tm *TooManyRecordsError
	if !errors.As(err, &tm) {
		t.Fatalf("Reload = %v, want the TooManyRecordsError", err)
	}
	got := servedRecords(t, e)
	if has(got, spkiOf(t, first)) || len(got) >= MaxRecordsPerOwner {
		t.Fatalf("after the refused addition served %d records %v: danehook's unwanted records stayed", len(got), got)
	}
	before := rp.Sent().Updates
	if _, err := e.Reload(t.Context()); err != nil {
		t.Fatalf("the run after the removals: %v", err)
	}
	if got := servedRecords(t, e); !has(got, spkiOf(t, last)) {
		t.Fatalf("served %v, want the new key's record", got)
	}
	if rp.Sent().Updates == before {
		t.Fatal("the run after the removals sent no UPDATE")
	}
}
