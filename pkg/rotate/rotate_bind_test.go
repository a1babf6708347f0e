package rotate

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/hookenv"
)

func TestRotationStageCommitDeploy(t *testing.T) {
	e, ca, crt, key := legoLab(t, "")
	old := servedRecords(t, e)
	t0 := time.Now()
	e.Now = func() time.Time { return t0 }

	n, _, err := Stage(t.Context(), e, "mail", KeySpec{})
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if fi, err := os.Stat(n.File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("staged key file %s: %v %v, want mode 0600", n.File, fi, err)
	}
	if n.Algorithm != "ecdsa-p256" {
		t.Errorf("algorithm = %q, want the current key's (ecdsa-p256)", n.Algorithm)
	}
	if got := keyFileSPKI(t, n.File); got != n.SPKI {
		t.Errorf("staged key file holds key %s, state says %s", got, n.SPKI)
	}
	got := servedRecords(t, e)
	if !has(got, n.SPKI) || !has(got, old[0]) {
		t.Fatalf("after stage the primary serves %v, want the current and the next key", got)
	}
	// danectl status shows the staged key offline, from the state.
	if st, err := e.Status(t.Context(), "mail"); err != nil || st.Lineages[0].Next == nil || st.Lineages[0].Next.SPKI != n.SPKI {
		t.Errorf("Status after stage: %v, want the staged key listed", err)
	}
	// Staging again keeps the key.
	n2, _, err := Stage(t.Context(), e, "mail", KeySpec{Type: "rsa"})
	if err != nil || n2.SPKI != n.SPKI {
		t.Fatalf("second Stage = %v, %v; want the same staged key", n2, err)
	}

	// Not aged yet: commit refused with the time it becomes safe.
	_, err = Commit(t.Context(), e, "mail", false)
	if !errors.Is(err, ErrNotAged) || !strings.Contains(err.Error(), "safe at") {
		t.Fatalf("early Commit = %v, want ErrNotAged with the time", err)
	}
	// Both servers serve it (bounded wait), then 2 x TTL later it is aged.
	deadline := time.Now().Add(10 * time.Second)
	var observed []*Status
	for {
		observed, err = Observe(t.Context(), e, "mail")
		if err != nil {
			t.Fatal(err)
		}
		if len(observed[0].Blocking) == 1 && strings.Contains(observed[0].Blocking[0], "aged at") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// danectl status tells the same time as rotate status: when the commit
	// becomes allowed.
	if observed[0].AgedAt.IsZero() {
		t.Fatalf("rotate status after both servers serve the staged record: %+v, want the time it is aged", observed[0])
	}
	if st, err := e.Status(t.Context(), "mail"); err != nil {
		t.Fatalf("Status: %v", err)
	} else if got := st.Lineages[0].NextAgedAt; !got.Equal(observed[0].AgedAt) {
		t.Errorf("Status: next key aged at %v; rotate status says %v", got, observed[0].AgedAt)
	}
	e.Now = func() time.Time { return t0.Add(time.Minute) }
	rs, err := Commit(t.Context(), e, "mail", false)
	if err != nil {
		t.Fatalf("Commit once aged: %v", err)
	}
	if !rs.Aged || len(rs.Owners) != 1 || rs.Owners[0].Owner != owner {
		t.Errorf("Commit status = %+v, want aged at %s", rs, owner)
	}
	// lego reads its key before the pre hook: the key file is swapped now.
	if got := keyFileSPKI(t, key); got != n.SPKI {
		t.Fatalf("lego key file after commit holds %s; want the staged key %s", got, n.SPKI)
	}
	if st := lineageState(t, e, "mail"); st.Next == nil || st.Next.Committed.IsZero() || !st.Next.Swapped {
		t.Errorf("state after commit: %+v, want committed and swapped", st.Next)
	}
	if st, err := e.Status(t.Context(), "mail"); err != nil {
		t.Fatalf("Status after commit: %v", err)
	} else if got := st.Lineages[0].NextAgedAt; !got.IsZero() {
		t.Errorf("Status after commit: next key aged at %v, want none (committed)", got)
	}
	// Until the renewal lego's key file holds the staged key and its
	// certificate the old one: the timer's plan must not fail on that.
	if _, err := e.Plan(t.Context()); err != nil {
		t.Errorf("Plan between commit and renewal: %v", err)
	}
	if _, err := Abort(t.Context(), e, "mail"); !errors.Is(err, ErrCommitted) {
		t.Errorf("Abort after commit = %v, want ErrCommitted", err)
	}

	// The renewal certifies the staged key; dane-deploy installs it at once
	// (its record is aged) and the old record stays until verification.
	_, cpem, _ := ca.Issue(t, mustKey(t, key))
	fixture.WriteFile(t, crt, cpem)
	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: key, CertFile: crt})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !res.Installed || !res.KeyChanged {
		t.Fatalf("Deploy = %+v, want the new key installed", res)
	}
	if st := lineageState(t, e, "mail"); st.Next != nil {
		t.Errorf("rotation not completed in state: %+v", st.Next)
	}
	if _, err := os.Stat(n.File); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staged key file after the switch: %v, want removed", err)
	}
	if got := servedRecords(t, e); !has(got, old[0]) || !has(got, n.SPKI) {
		t.Errorf("before verification the primary serves %v, want both keys", got)
	}
}

// TestRotationCommitLegoCSR: lego --csr reads the pinned CSR before its
// pre hook, like the key, so commit makes lego_csr from the staged key.
func TestRotationCommitLegoCSR(t *testing.T) {
	csr := filepath.Join(t.TempDir(), "mail.csr")
	e, _, _, _ := legoLab(t, `lego_csr = "`+csr+`"`)
	if _, err := Pin(e, false); err != nil {
		t.Fatal(err)
	}
	n, _, err := Stage(t.Context(), e, "mail", KeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	waitServedEverywhere(t, e)
	e.Now = func() time.Time { return time.Now().Add(time.Minute) }
	if _, err := Commit(t.Context(), e, "mail", false); err != nil {
		t.Fatalf("Commit once aged: %v", err)
	}
	b, err := chain.ReadFile(csr)
	if err != nil || len(b.CSRs) != 1 {
		t.Fatalf("%s after commit: %v; want one CSR", csr, err)
	}
	if got := fixture.KeySPKI(t, b.CSRs[0].PublicKey); got != n.SPKI {
		t.Errorf("lego_csr after commit is made from key %s; want the staged key %s", got, n.SPKI)
	}
}

func TestRotationAbortWithdrawsRecord(t *testing.T) {
	e, _, _, _ := legoLab(t, "")
	n, _, err := Stage(t.Context(), e, "mail", KeySpec{Type: "rsa", Bits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if n.Algorithm != "rsa-2048" || !has(servedRecords(t, e), n.SPKI) {
		t.Fatalf("staged %+v not published", n)
	}
	if _, err := Abort(t.Context(), e, "mail"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if has(servedRecords(t, e), n.SPKI) {
		t.Error("aborted key's record still served")
	}
	if _, err := os.Stat(n.File); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("aborted key file still exists: %v", err)
	}
	if _, err := Commit(t.Context(), e, "mail", false); !errors.Is(err, ErrNoStagedKey) {
		t.Errorf("Commit without a staged key = %v, want ErrNoStagedKey", err)
	}
	if _, err := Abort(t.Context(), e, "mail"); !errors.Is(err, ErrNoStagedKey) {
		t.Errorf("Abort without a staged key = %v, want ErrNoStagedKey", err)
	}
}

// TestRotationDualAlgorithms: an RSA and an ECDSA lineage share the owner;
// rotating the ECDSA one leaves the RSA record alone.
func TestRotationDualAlgorithms(t *testing.T) {
	dir := t.TempDir()
	e := bindEngine(t, `
[lineage.mail-rsa]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
allow_untrusted = true
chain_file = "`+filepath.Join(dir, "mail-rsa.pem")+`"
`)
	ca := fixture.NewCA(t)
	k, c, _ := ca.Issue(t, nil)
	fixture.WriteFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rkp, rc, _ := ca.Issue(t, rk)
	fixture.WriteFile(t, filepath.Join(dir, "mail-rsa.pem"), rkp, rc)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := servedRecords(t, e)
	if len(before) != 2 {
		t.Fatalf("served %v, want the ECDSA and the RSA record", before)
	}
	n, _, err := Stage(t.Context(), e, "mail", KeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	after := servedRecords(t, e)
	if len(after) != 3 || !has(after, before[0]) || !has(after, before[1]) || !has(after, n.SPKI) {
		t.Fatalf("after staging the ECDSA lineage: %v", after)
	}
	if _, err := Abort(t.Context(), e, "mail"); err != nil {
		t.Fatal(err)
	}
	if got := servedRecords(t, e); len(got) != 2 || !has(got, before[0]) || !has(got, before[1]) {
		t.Errorf("after abort: %v, want the two original records", got)
	}
}

// TestPolicyRotateEvery: rotate_every stages a key once the served key is
// older than it, waits while the staged record is not aged, then commits.
func TestPolicyRotateEvery(t *testing.T) {
	e, _, _, key := legoLab(t, `rotate_every = "1h"`)
	t0 := time.Now()
	e.Now = func() time.Time { return t0 }
	st := lineageState(t, e, "mail")
	st.KeySince = t0.Add(-30 * time.Minute)
	if err := e.SaveLineageState("mail", st); err != nil {
		t.Fatal(err)
	}
	if done, err := Policy(t.Context(), e); err != nil || len(done) != 0 {
		t.Fatalf("Policy with a key younger than rotate_every = %q, %v; want nothing done", done, err)
	}
	st.KeySince = t0.Add(-2 * time.Hour)
	if err := e.SaveLineageState("mail", st); err != nil {
		t.Fatal(err)
	}
	done, err := Policy(t.Context(), e)
	if err != nil || len(done) != 1 || !strings.Contains(done[0], "staged") {
		t.Fatalf("Policy with an old key = %q, %v; want one key staged", done, err)
	}
	next := lineageState(t, e, "mail").Next
	if next == nil || !has(servedRecords(t, e), next.SPKI) {
		t.Fatalf("after Policy: staged %+v, served %v", next, servedRecords(t, e))
	}
	// Not aged: nothing committed.
	if done, err := Policy(t.Context(), e); err != nil || len(done) != 0 {
		t.Fatalf("Policy with an unaged staged key = %q, %v; want nothing done", done, err)
	}
	waitServedEverywhere(t, e)
	e.Now = func() time.Time { return time.Now().Add(time.Minute) }
	done, err = Policy(t.Context(), e)
	if err != nil || len(done) != 1 || !strings.Contains(done[0], "committed") {
		t.Fatalf("Policy with an aged staged key = %q, %v; want it committed", done, err)
	}
	if got := keyFileSPKI(t, key); got != next.SPKI {
		t.Errorf("lego key after the policy committed: %s, want the staged key %s", got, next.SPKI)
	}
}
