package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Issue 13, "Install and first issuance", against real BIND and Postfix.

// firstRenewal writes a fresh certificate of the test CA and returns the
// hook environment a lego v5 deploy hook would get for it.
func firstRenewal(t *testing.T, lineage string) *hookenv.Deploy {
	t.Helper()
	dir := t.TempDir()
	k, c, _ := newCA(t).issue(t, nil)
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, k)
	writeFile(t, rc, c)
	return &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: lineage, KeyFile: rk, CertFile: rc}
}

// TestFirstIssuancePostfixServesNothing: before the first issuance Postfix
// serves no chain (smtpd_tls_chain_files unset). Once the first chain's
// record is aged, the run installs the chain file (changing nothing a
// sender sees) and reports the postconf line as a notice, without an
// error, every run until Postfix reads it; after the postconf line the
// next run reloads and verifies as usual.
func TestFirstIssuancePostfixServesNothing(t *testing.T) {
	e, _, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}, Main: []string{"smtpd_tls_chain_files ="}})
	l := e.Config.Lineages["ecdsa"]
	l.ChainFile = filepath.Join(t.TempDir(), "mail-ecdsa.pem")
	d := firstRenewal(t, "ecdsa")
	res, err := e.Deploy(t.Context(), d)
	if err != nil || res.Installed {
		t.Fatalf("first Deploy: %+v, %v; want a pending switch (no record aged yet)", res, err)
	}
	waitAged(t, e)
	for i := 0; i < 2; i++ {
		r, err := e.Reload(t.Context())
		if err != nil {
			t.Fatalf("Reload %d while Postfix serves nothing: %v; want a notice, no error", i, err)
		}
		if len(r.Notices) != 1 || !strings.Contains(r.Notices[0], "postconf") || !strings.Contains(r.Notices[0], l.ChainFile) {
			t.Fatalf("Reload %d notices %q; want one naming %s with the postconf line", i, r.Notices, l.ChainFile)
		}
		if r.Reloaded || len(r.Removed) > 0 {
			t.Errorf("Reload %d reloaded (%v) or removed %v while Postfix does not read the chain file", i, r.Reloaded, r.Removed)
		}
		if c, _, _ := readChainFile(l.ChainFile); c == nil || tlsa.SPKIDigestHex(c.Leaf) != res.SPKI {
			t.Fatalf("Reload %d: the first chain file was not installed", i)
		}
	}
	// status: a warning with the postconf line, not the refusal.
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Refusal != nil || st.Lineages[0].Err != "" || !has(st.Lineages[0].Warnings, "postconf") {
		t.Errorf("status while Postfix serves nothing: refusal %v, error %q, warnings %q; want only a warning with the postconf line", st.Refusal, st.Lineages[0].Err, st.Lineages[0].Warnings)
	}
	// The operator runs the notice's postconf line.
	if out, err := exec.Command("postconf", "-c", pf.ConfigDir, "-e", "smtpd_tls_chain_files = "+l.ChainFile).CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v: %s", err, out)
	}
	r, err := e.Reload(t.Context())
	if err != nil || !r.Reloaded || len(r.Notices) > 0 || len(r.Verified) == 0 {
		t.Fatalf("Reload after the postconf line: %+v, %v; want reloaded and verified, no notice", r, err)
	}
	if got := presentedLeaf(t, pf, postfix.ECDSA); tlsa.SPKIDigestHex(got) != res.SPKI {
		t.Errorf("Postfix presents %s, want the first chain %s", tlsa.SPKIDigestHex(got), res.SPKI)
	}
}

// TestFirstIssuancePostfixServesOtherChain: the guard stands when Postfix
// serves some other chain (here its own self-signed file, as Debian's
// snakeoil): every run refuses with ErrPostfixNotReading and the postconf
// line, and what Postfix presents does not change. The first chain's
// record is not published: with the owner's first TLSA record out while
// Postfix presents another key, every DANE sender would defer mail until
// the line is run (firstRecordsHeld). The first chain file is installed
// (Postfix reads another file: nothing a sender sees changes), so the
// hint's line — postconf, a reload, danectl tick — may run at once: after
// the reload Postfix serves the chain file with no TLSA record yet, and
// the tick publishes its first record.
func TestFirstIssuancePostfixServesOtherChain(t *testing.T) {
	e, _, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	l := e.Config.Lineages["ecdsa"]
	served := presentedLeaf(t, pf, postfix.ECDSA)
	l.ChainFile = filepath.Join(t.TempDir(), "mail-ecdsa.pem")
	d := firstRenewal(t, "ecdsa")
	res, err := e.Deploy(t.Context(), d)
	if !errors.Is(err, ErrPostfixNotReading) || res == nil || !res.Installed {
		t.Fatalf("first Deploy while Postfix serves another chain: %+v, %v; want ErrPostfixNotReading and the first chain file installed", res, err)
	}
	wantHint := func(what string, err error) string {
		t.Helper()
		var h interface{ Hint() string }
		if !errors.As(err, &h) || !strings.HasPrefix(h.Hint(), "run: postconf") || !strings.Contains(h.Hint(), l.ChainFile) ||
			!strings.Contains(h.Hint(), " reload && danectl tick") {
			t.Fatalf("hint of %s: want the postconf line, a reload and danectl tick, to run at once; got %v", what, err)
		}
		return h.Hint()
	}
	wantHint("the first Deploy's refusal", err)
	if got := servedRecords(t, e); len(got) != 0 {
		t.Errorf("the refusing first Deploy published %v while Postfix presents another key", got)
	}
	held := 0
	for _, p := range res.Plans {
		held += len(p.HeldAdditions)
	}
	if held == 0 {
		t.Errorf("first Deploy's plans hold no first record: %+v", res.Plans)
	}
	if st, err := e.Status(t.Context()); err != nil || !errors.Is(st.Refusal, ErrPostfixNotReading) {
		t.Errorf("status while Postfix serves another chain: %v, refusal %v; want ErrPostfixNotReading", err, st.Refusal)
	} else {
		wantHint("status", st.Refusal)
	}
	r, err := e.Reload(t.Context())
	if !errors.Is(err, ErrPostfixNotReading) {
		t.Fatalf("Reload while Postfix serves another chain: %+v, %v; want ErrPostfixNotReading", r, err)
	}
	if len(r.Notices) > 0 || r.Reloaded {
		t.Errorf("notices %q, reloaded %v: the refusal must not be downgraded, nor Postfix reloaded", r.Notices, r.Reloaded)
	}
	hint := wantHint("Reload's refusal", err)
	if got := presentedLeaf(t, pf, postfix.ECDSA); !got.Equal(served) {
		t.Errorf("Postfix changed what it presents")
	}
	if got := servedRecords(t, e); len(got) != 0 {
		t.Errorf("the refusing Reload published %v", got)
	}
	if _, err = e.Deploy(t.Context(), d); !errors.Is(err, ErrPostfixNotReading) {
		t.Fatalf("second Deploy while Postfix serves another chain: %v; want ErrPostfixNotReading", err)
	}

	// The operator runs the hint's line; its danectl tick publishes.
	line := strings.TrimPrefix(hint[:strings.Index(hint, " && danectl tick")], "run: ")
	if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
		t.Fatalf("the hint's line %q: %v: %s", line, err, out)
	}
	first, _, err := readChainFile(l.ChainFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postfix.WaitPresented(t.Context(), pf.Addr, postfixlab.Hostname, first.Leaf, 10*time.Second); err != nil {
		t.Errorf("after the reload Postfix does not present the first chain: %v", err)
	}
	r, err = e.Reload(t.Context())
	if err != nil || len(r.Published) == 0 || len(r.HeldFirst) > 0 {
		t.Fatalf("tick after the hint's line: %+v, %v; want the first record published", r, err)
	}
	if !has(servedRecords(t, e), res.SPKI) {
		t.Errorf("the first chain's record is not served: %v", servedRecords(t, e))
	}
}

// TestNotIssuedYet: a lineage configured before its first issuance
// (certbot_lineage does not exist) is reported as not issued yet by
// Status and Verify, and Reload completes the other lineage without an
// error; Status is OK.
func TestNotIssuedYet(t *testing.T) {
	dir := t.TempDir()
	extra := `[lineage.later]
hosts = ["later.example.test"]
ttl = 1
provider = "lab"
chain_file = "` + filepath.Join(dir, "later.pem") + `"
certbot_lineage = "` + filepath.Join(dir, "live", "later") + `"
`
	e, _, _ := observedLabExtra(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}}, extra)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	waitAgedOwner(t, e, "_25._tcp.mail.example.test.")
	r, err := e.Reload(t.Context())
	if err != nil {
		t.Fatalf("Reload with a lineage not issued yet: %v", err)
	}
	if len(r.Verified) == 0 {
		t.Errorf("the issued lineage was not verified: %+v", r)
	}
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	var later *LineageStatus
	for i := range st.Lineages {
		if st.Lineages[i].Name == "later" {
			later = &st.Lineages[i]
		}
	}
	if later == nil || !later.NotIssued || later.Err != "" || !strings.Contains(later.NotIssuedReason, "live/later") {
		t.Fatalf("status of lineage later: %+v; want not issued yet naming live/later", later)
	}
	if !st.OK() {
		t.Errorf("Status not OK: %s", st.Waiting())
	}
	lines, err := e.Verify(t.Context())
	if err != nil || !strings.Contains(strings.Join(lines, "\n"), "not issued yet") {
		t.Errorf("Verify: %q, %v; want no error and a not issued yet line", lines, err)
	}
	// Once certbot has issued it, it is an error again to lack its files.
	if err := os.MkdirAll(filepath.Join(dir, "live", "later"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Reload(t.Context()); err == nil {
		t.Errorf("Reload with an empty live/later: no error; want the missing privkey.pem named")
	}
}

// waitAgedOwner waits until owner's desired records are aged.
func waitAgedOwner(t *testing.T, e *Engine, owner string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		st, err := e.Status(t.Context())
		if err == nil {
			for _, o := range st.Owners {
				if o.Owner == owner && o.Records.Aged {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("records at %s not aged within 10 s", owner)
}
