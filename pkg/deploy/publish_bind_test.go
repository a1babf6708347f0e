package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/danehook/danehook/internal/fixture"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

func spkiOf(t *testing.T, certsPEM []byte) string {
	t.Helper()
	c := mustLeaf(t, certsPEM)
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

func TestPlanPublishIdempotentAndOthersSurvive(t *testing.T) {
	e, lab, rp := bindEngine(t, "")
	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k1, c1)
	spki1 := spkiOf(t, c1)

	// A record published by someone else at the same owner.
	other := "3 1 1 " + strings.Repeat("ab", 32)
	lab.Nsupdate(t, "update add _25._tcp.mail.example.test. 60 IN TLSA "+other+"\nsend\n")

	plans, err := e.Plan(t.Context())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	want := "+ _25._tcp.mail.example.test. 1 IN TLSA 3 1 1 " + spki1
	if got := planText(plans); !strings.Contains(got, want) || !strings.Contains(got, "= _25._tcp.mail.example.test. 60 IN TLSA "+other) {
		t.Fatalf("plan =\n%s\nwant it to contain %q and keep the other record", got, want)
	}
	if rp.Sent().Updates != 0 {
		t.Fatalf("Plan sent %d UPDATEs, want 0", rp.Sent().Updates)
	}

	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := rp.Sent().Updates; got != 1 {
		t.Errorf("first Publish sent %d UPDATEs, want 1", got)
	}
	plans, err = e.Publish(t.Context())
	if err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	if got := rp.Sent().Updates; got != 1 {
		t.Errorf("second Publish sent %d more UPDATEs, want 0", got-1)
	}
	for _, p := range plans {
		if !p.Changes.Empty() {
			t.Errorf("second Publish planned changes:\n%s", p.Changes)
		}
	}

	// A new key in the chain file: Publish adds its record and never
	// removes one, whatever the state says was verified (removal is
	// tick's, after it saw what Postfix presents).
	k2, c2, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k2, c2)
	digest, _ := fileDigest(e.Config.Lineages["mail"].ChainFile)
	if err := e.Store.Save("mail", &LineageState{VerifiedChain: digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish after key change: %v", err)
	}
	if got := rp.Sent().Updates; got != 2 {
		t.Errorf("key change sent %d UPDATEs, want 1", got-1)
	}
	all := served(t, rp)
	if !strings.Contains(all, spkiOf(t, c2)) || !strings.Contains(all, spki1) || !strings.Contains(all, other) {
		t.Errorf("served after key change:\n%s\nwant the new key added, the old key and the other record kept", all)
	}
	// Without endpoints, a reload counts as verification of the file: the
	// old record goes, the foreign one stays.
	if _, err := e.Reload(t.Context()); err == nil {
		t.Log("Reload without Postfix succeeded")
	}
}

func served(t *testing.T, rp *dnsupdate.RFC2136) string {
	t.Helper()
	rrs, err := rp.Records(t.Context(), "_25._tcp.mail.example.test.")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rr := range rrs {
		got = append(got, rr.Record.String())
	}
	return strings.Join(got, "\n")
}

func TestRemovalHeldWhileAChainReliesOnIt(t *testing.T) {
	e, _, rp := bindEngine(t, "")
	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	path := e.Config.Lineages["mail"].ChainFile
	writeFile(t, path, k1, c1)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A pending chain with a new key: both records are wanted; the plan
	// removes nothing.
	k2, c2, _ := ca.issue(t, nil)
	pending := filepath.Join(e.Store.Dir, "mail.pending.pem")
	writeFile(t, pending, k2, c2)
	if err := e.Store.Save("mail", &LineageState{Pending: &Pending{File: pending}}); err != nil {
		t.Fatal(err)
	}
	plans, err := e.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range plans[0].Changes {
		if c.Op == dnsupdate.Remove {
			t.Errorf("plan removes %s while the installed chain relies on it", c.RR)
		}
	}
	// The installed file vanishes (moved by hand): its record is still
	// what Postfix may serve per the state; nothing owned is removed and
	// the renewal is not installed as a "first chain".
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if all := served(t, rp); !strings.Contains(all, spkiOf(t, c1)) || !strings.Contains(all, spkiOf(t, c2)) {
		t.Errorf("served:\n%s\nwant both keys' records", all)
	}
}

func TestStatusAgesAndNamesLaggingSecondary(t *testing.T) {
	e, lab, _ := bindEngine(t, "")
	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k1, c1)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)

	t0 := time.Now()
	e.Now = func() time.Time { return t0 }
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(st.Owners) != 1 || st.Owners[0].Err != "" {
		t.Fatalf("owners = %+v", st.Owners)
	}
	r := st.Owners[0].Records
	if r.Aged || len(r.Records) != 1 || len(r.Records[0].Serving) != 2 {
		t.Fatalf("just after publishing: %+v, want served by both servers and not aged", r)
	}
	// TTL 1 s and negative TTL 1 s: aged 2 s after the last first sighting.
	e.Now = func() time.Time { return t0.Add(2 * time.Second) }
	st, err = e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Owners[0].Records.Aged {
		t.Errorf("2 x TTL later: not aged: %+v", st.Owners[0].Records)
	}
	if st.Owners[0].DNSSEC == nil || st.Owners[0].DNSSEC.Signed || st.Owners[0].DNSSEC.Warning == "" {
		t.Errorf("unsigned lab zone: DNSSEC = %+v, want a warning", st.Owners[0].DNSSEC)
	}

	// The secondary stops transferring: a new key's record is not aged and
	// the secondary is named.
	lab.BlockTransfers(t)
	k2, c2, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k2, c2)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.Now = func() time.Time { return t0.Add(time.Hour) }
	st, err = e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := tlsa.Parse("3 1 1 " + spkiOf(t, c2))
	var found bool
	for _, s := range st.Owners[0].Records.Records {
		if s.Record == rec.String() {
			found = true
			if s.Aged || !strings.Contains(strings.Join(s.Blocking, ";"), "127.0.0.2") {
				t.Errorf("new record with a blocked secondary: %+v, want not aged and the secondary named", s)
			}
		}
	}
	if !found {
		t.Errorf("status does not list the new record: %+v", st.Owners[0].Records)
	}
	if st.OK() {
		t.Error("Status.OK() with a lagging secondary")
	}
}

func TestPublishErrorKeepsStateAndNamesServer(t *testing.T) {
	e, lab, _ := bindEngine(t, "")
	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k1, c1)
	// A provider whose key the server does not know.
	key, err := dnsupdate.NewTSIGKey("wrong-key", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0")
	if err != nil {
		t.Fatal(err)
	}
	good := e.Publishers["lab"].(*dnsupdate.RFC2136)
	e.Publishers["lab"] = &dnsupdate.RFC2136{Server: good.Server, Zone: good.Zone, Key: key, Timeout: good.Timeout}
	_, err = e.Publish(t.Context())
	if err == nil {
		t.Fatal("Publish with an unknown TSIG key succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, lab.Primary) || strings.Contains(msg, "c2VjcmV0c2VjcmV0") {
		t.Errorf("error %q: want the server named and no secret", msg)
	}
	if !errors.Is(err, dnsupdate.ErrTSIG) {
		t.Errorf("error %v is not ErrTSIG", err)
	}
}

// TestTwoHostsShareAnOwnerWithPrerequisites: two danehook instances (two
// MX hosts with their own state, the same TLSA owner) publish, switch and
// clean up with prerequisites = true; each removes only its own old
// record, a foreign record survives (issue 9 item 9).
func TestTwoHostsShareAnOwnerWithPrerequisites(t *testing.T) {
	a, lab, rp := bindEngine(t, "")
	rp.Prerequisites = true
	a.Config.Providers["lab"].Prerequisites = true
	// The second host: the same configuration with its own state and chain.
	cfgB := *a.Config
	dir := t.TempDir()
	cfgB.StateDir = filepath.Join(dir, "state")
	lb := *a.Config.Lineages["mail"]
	lb.ChainFile = filepath.Join(dir, "mail-ecdsa.pem")
	cfgB.Lineages = map[string]*config.Lineage{"mail": &lb}
	pfB := filepath.Join(dir, "postfix-etc")
	fixture.WritePostfixConfig(t, pfB, lb.ChainFile)
	cfgB.Postfix.ConfigDir = pfB
	rpB := dnsupdate.RFC2136{Server: rp.Server, Key: rp.Key, Timeout: rp.Timeout, Prerequisites: true}
	b := &Engine{Config: &cfgB, Store: &state.Store{Dir: cfgB.StateDir}, Publishers: map[string]Publisher{"lab": &rpB}, LockWait: time.Second}

	foreign := "3 1 1 " + strings.Repeat("ef", 32)
	lab.Nsupdate(t, "update add _25._tcp.mail.example.test. 60 IN TLSA "+foreign+"\nsend\n")
	ca := newCA(t)
	install := func(e *Engine) string {
		k, c, _ := ca.issue(t, nil)
		path := e.Config.Lineages["mail"].ChainFile
		writeFile(t, path, k, c)
		// As if Postfix had been reloaded onto it (no endpoints here).
		d, _ := fileDigest(path)
		if err := e.Store.Save("mail", &LineageState{VerifiedChain: d}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Publish(t.Context()); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		return spkiOf(t, c)
	}
	a1, b1 := install(a), install(b)
	a2, b2 := install(a), install(b)
	for _, e := range []*Engine{a, b} {
		if _, err := e.Reload(t.Context()); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	}
	got := served(t, rp)
	for _, keep := range []string{a2, b2, foreign[len("3 1 1 "):]} {
		if !strings.Contains(got, keep) {
			t.Errorf("served:\n%s\nwant %s kept", got, keep)
		}
	}
	for _, gone := range []string{a1, b1} {
		if strings.Contains(got, gone) {
			t.Errorf("served:\n%s\nwant the old record %s removed", got, gone)
		}
	}
}

// TestRecordPublishedAndSupersededInOneRunStaysOwned: a run publishes the
// record of a pending chain and, in the same run, a newer renewal
// supersedes that chain. The record was not in the run's snapshot; it must
// not be "forgotten" as a record no server serves (it would stay in DNS
// owned by nobody, for ever).
func TestRecordPublishedAndSupersededInOneRunStaysOwned(t *testing.T) {
	e, ca, crt, key := legoLab(t)
	l := e.Config.Lineages["mail"]
	d, _ := fileDigest(l.ChainFile)
	pk, pc, _ := ca.issue(t, nil)
	pending := e.pendingPath("mail")
	writeFile(t, pending, pk, pc)
	if err := e.Store.Save("mail", &LineageState{VerifiedChain: d, Pending: &Pending{File: pending}}); err != nil {
		t.Fatal(err)
	}
	nk, nc, _ := ca.issue(t, nil)
	writeFile(t, key, nk)
	writeFile(t, crt, nc)
	if _, err := e.Reload(t.Context()); err != nil {
		t.Logf("Reload: %v", err)
	}
	dns, _ := e.loadDNS()
	owned := strings.Join(dns.Owned["_25._tcp.mail.example.test."], "\n")
	servedNow := servedRecords(t, e)
	p := spkiOf(t, pc)
	if has(servedNow, p) && !strings.Contains(owned, p) {
		t.Errorf("the superseded pending chain's record %s is served but owned by nobody:\nserved %v\nowned %s", short(p), servedNow, owned)
	}
}

// TestPlanHoldsTheLock: Plan saves this run's sightings in dns.json, so it
// takes the state lock like every run that saves: while another run holds
// it, Plan waits (LockWait) and fails instead of overwriting what that run
// records; once the lock is free it plans.
func TestPlanHoldsTheLock(t *testing.T) {
	e, _, _ := bindEngine(t, "")
	e.LockWait = 300 * time.Millisecond
	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k1, c1)
	lk, err := e.lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Plan(t.Context()); err == nil {
		t.Error("Plan ran while another run held the state lock")
	}
	lk.Unlock()
	if _, err := e.Plan(t.Context()); err != nil {
		t.Fatalf("Plan after the lock was released: %v", err)
	}
}
