package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
)

// Issue 9 item 10 ("records at an owner that match no chain … are listed
// as 'matches no chain' with a safe way to remove them"), against real
// BIND (primary + secondary) and a real Postfix.

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestPruneForeignRecords: the owner carries, beside danehook's record of
// the served key, records danehook did not publish: three that match no
// chain (a panel's 3 0 1 of another certificate, the 3 1 1 of a stale
// key, the 2 1 1 of an unrelated CA) and three that must stay (the 3 0 1
// of the served certificate, the 3 1 1 of the pending renewal's key put
// there by hand, the 3 1 1 another host, mx2, claims in the registry).
// Status lists exactly the first three as matching no chain; Prune keeps
// them, with the reason, while the served chain's record is not aged;
// once it is, Prune removes exactly them on both servers; a rerun prunes
// nothing. After the pending renewal switched (on the hand-made record),
// the previous certificate's 3 0 1 is listed; Prune keeps it while Postfix
// does not present the installed chain file.
func TestPruneForeignRecords(t *testing.T) {
	t.Parallel()
	e, lab, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	e.Config.HostID = "mx1"
	served := presentedLeaf(t, pf, postfix.ECDSA)

	// The pending renewal: a new key, staged by the deploy hook below.
	ca := newCA(t)
	nk, nc, _ := ca.issue(t, nil)
	dir := t.TempDir()
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, nk)
	writeFile(t, rc, nc)

	// Another host at the same owner (its own installation, host_id mx2)
	// publishes and claims its key's record.
	other := hostEngine(t, lab, "mx2")
	mx2 := strings.TrimPrefix(serve(t, other, ca, nil), "3 1 1 ")

	_, otherCert := postfixlab.SelfSigned(t, fixture.Host, false)
	_, _, staleKey := ca.issue(t, nil)
	foreign := []string{
		"3 0 1 " + hexSum(fixture.Leaf(t, otherCert).Raw),        // a panel's 3 0 1 of another certificate
		"3 1 1 " + fixture.KeySPKI(t, staleKey),                  // a stale key
		"2 1 1 " + hexSum(newCA(t).cert.RawSubjectPublicKeyInfo), // an unrelated (retired) CA
	}
	keep := []string{
		"3 0 1 " + hexSum(served.Raw),  // the served certificate, by hand
		"3 1 1 " + fixture.SPKI(t, nc), // the pending renewal's key, by hand
	}
	var script strings.Builder
	for _, r := range append(slices.Clone(foreign), keep...) {
		script.WriteString("update add " + owner + " 1 IN TLSA " + r + "\n")
	}
	lab.Nsupdate(t, script.String())

	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: rk, CertFile: rc})
	if err != nil || res.Installed || res.Pending == nil {
		t.Fatalf("Deploy of a new key: %+v, %v; want a pending switch", res, err)
	}
	servedRec := "3 1 1 " + hexSum(served.RawSubjectPublicKeyInfo)
	all := append(append(append(slices.Clone(foreign), keep...), servedRec), "3 1 1 "+mx2)
	if got := servedRecords(t, e); !sameSet(recordData(got), all) {
		t.Fatalf("the owner serves %v, want %v", recordData(got), all)
	}

	unmatched := func() []string {
		t.Helper()
		st, err := e.Status(t.Context())
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if len(st.Owners) != 1 {
			t.Fatalf("status owners %+v", st.Owners)
		}
		return st.Owners[0].Unmatched
	}
	if got := unmatched(); !sameSet(got, foreign) {
		t.Errorf("status lists %v as matching no chain, want exactly %v", got, foreign)
	}

	// The served chain's record was published just now: not aged.
	p, err := e.Prune(t.Context())
	if err != nil {
		t.Fatalf("Prune before the served chain's record is aged: %v", err)
	}
	if len(p.Removed) != 0 || len(p.Kept) != len(foreign) {
		t.Fatalf("Prune before aged: removed %v, kept %v; want all three kept", p.Removed, p.Kept)
	}
	for _, k := range p.Kept {
		if !strings.Contains(k, "lineage ecdsa") || !strings.Contains(k, "not aged") {
			t.Errorf("kept %q: want the lineage and why (its record not aged yet)", k)
		}
	}
	if got := servedRecords(t, e); len(got) != len(all) {
		t.Fatalf("Prune before aged changed the owner: %v", got)
	}

	waitAgedOwner(t, e, owner)
	p, err = e.Prune(t.Context())
	if err != nil {
		t.Fatalf("Prune once aged: %v", err)
	}
	if !sameSet(recordData(p.Removed), foreign) || len(p.Kept) != 0 {
		t.Fatalf("Prune once aged: removed %v, kept %v; want exactly %v removed", p.Removed, p.Kept, foreign)
	}
	want := append(append(slices.Clone(keep), servedRec), "3 1 1 "+mx2)
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	for _, srv := range []string{lab.Primary, lab.Secondary} {
		if got := serverTLSA(t, srv, owner); !sameSet(got, want) {
			t.Errorf("after Prune %s serves %v, want %v", srv, got, want)
		}
	}
	if got := unmatched(); len(got) != 0 {
		t.Errorf("status after Prune lists %v as matching no chain", got)
	}
	p, err = e.Prune(t.Context())
	if err != nil || len(p.Removed) != 0 || len(p.Kept) != 0 {
		t.Errorf("Prune rerun: removed %v, kept %v, %v; want nothing", p.Removed, p.Kept, err)
	}

	// The pending renewal still switches on the record left by hand, and
	// the tick removes only danehook's own old record.
	r, err := e.Reload(t.Context())
	if err != nil || len(r.Switched) != 1 {
		t.Fatalf("Reload after Prune: %+v, %v; want the pending renewal switched", r, err)
	}
	if got := presentedLeaf(t, pf, postfix.ECDSA); hexSum(got.RawSubjectPublicKeyInfo) != fixture.SPKI(t, nc) {
		t.Errorf("Postfix presents %s, want the renewal", hexSum(got.RawSubjectPublicKeyInfo))
	}
	if !slices.ContainsFunc(r.Removed, func(x string) bool { return strings.Contains(x, servedRec) }) || len(r.Removed) != 1 {
		t.Errorf("Reload after the switch removed %v, want only danehook's %s", r.Removed, short(servedRec))
	}
	// The hand-made 3 0 1 of the previous certificate matches nothing now:
	// listed, and not danehook's to remove unasked (once the secondary
	// has the removal too: a record either server serves is listed).
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
	if got := unmatched(); !sameSet(got, keep[:1]) {
		t.Errorf("status after the switch lists %v as matching no chain, want %v", got, keep[:1])
	}

	// Another hold: the chain file changed by hand and Postfix was not
	// reloaded, so this run cannot see the installed chain presented.
	k3, c3 := postfixlab.SelfSigned(t, fixture.Host, false)
	postfixlab.WriteChain(t, e.Config.Lineages["ecdsa"].ChainFile, k3, c3)
	p, err = e.Prune(t.Context())
	if err != nil || len(p.Removed) != 0 || len(p.Kept) != 1 || !strings.Contains(p.Kept[0], "does not present the installed chain") {
		t.Errorf("Prune while Postfix presents another chain than the installed file: removed %v, kept %v, %v; want the 3 0 1 kept, naming why", p.Removed, p.Kept, err)
	}
}

// recordData strips owner, TTL and class from presentation-form records
// ("_25._tcp.… 1 IN TLSA 3 1 1 ab…" → "3 1 1 ab…"), lower case.
func recordData(rrs []string) []string {
	var out []string
	for _, r := range rrs {
		f := strings.Fields(r)
		if i := slices.Index(f, "TLSA"); i >= 0 {
			f = f[i+1:]
		}
		out = append(out, strings.ToLower(strings.Join(f, " ")))
	}
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(sortedCopy(recordData(a)), sortedCopy(recordData(b)))
}
