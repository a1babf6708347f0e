package deploy

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Issue 9 item 1, the two permanent shapes: Postfix keeps presenting the
// previous chain after the switch because it does not read the installed
// file. Verification must not pass on the previous chain, and nothing may
// be removed (the previous key's record stays) until a corrected
// configuration converges. Real BIND (primary + secondary), real Postfix.

// verifiedLab publishes the record of the chain Postfix serves from the
// lineage's chain file, waits until it is aged and verifies it (Reload),
// and returns the previous key's record (3 1 1 data).
func verifiedLab(t *testing.T, e *Engine) string {
	t.Helper()
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitAged(t, e)
	r, err := e.Reload(t.Context())
	if err != nil || len(r.Verified) == 0 {
		t.Fatalf("Reload of the first chain: %+v, %v; want verified", r, err)
	}
	c, _, _ := readChainFile(e.Config.Lineages["ecdsa"].ChainFile)
	return tlsa.SPKIDigestHex(c.Leaf)
}

// newKeyRenewal writes a renewal with a new key and returns its hook
// environment (lego v5) and its 3 1 1 data.
func newKeyRenewal(t *testing.T, lineage string) (*hookenv.Deploy, string) {
	t.Helper()
	k, c, _ := newCA(t).issue(t, nil)
	dir := t.TempDir()
	rk, rc := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, rk, k)
	writeFile(t, rc, c)
	return &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: lineage, KeyFile: rk, CertFile: rc}, tlsa.SPKIDigestHex(mustLeaf(t, c))
}

func postconf(t *testing.T, dir, setting string) {
	t.Helper()
	if out, err := exec.Command("postconf", "-c", dir, "-e", setting).CombinedOutput(); err != nil {
		t.Fatalf("postconf -e %q: %v: %s", setting, err, out)
	}
}

// TestChainFilesNameACopyOfThePrevious: smtpd_tls_chain_files names a copy
// of the previous chain, not the lineage's chain_file. The renewal with a
// new key is published and aged, but neither Deploy nor Reload installs it
// or counts the previous chain as verified: both refuse with
// ErrPostfixNotReading naming the copy and the postconf line, Postfix
// keeps presenting the previous key and its record stays. After the
// postconf line the next Reload switches, verifies the new key and only
// then removes the previous record.
func TestChainFilesNameACopyOfThePrevious(t *testing.T) {
	t.Parallel()
	e, lab, pf := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	l := e.Config.Lineages["ecdsa"]
	old := verifiedLab(t, e)

	// The operator points Postfix at a copy of the served chain.
	data, err := os.ReadFile(l.ChainFile)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(filepath.Dir(l.ChainFile), "copy.pem")
	if err := os.WriteFile(cp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	postconf(t, pf.ConfigDir, "smtpd_tls_chain_files = "+cp)
	if err := pf.Instance.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}

	d, next := newKeyRenewal(t, "ecdsa")
	// Postfix reads a file that is not the chain file: every run refuses
	// (issue 9 item 5), the new key's record published beside the
	// served one and the switch pending.
	if res, err := e.Deploy(t.Context(), d); !errors.Is(err, ErrPostfixNotReading) || res == nil || res.Installed || res.Pending == nil {
		t.Fatalf("Deploy of a new key: %+v, %v; want ErrPostfixNotReading and a pending switch", res, err)
	}
	waitAged(t, e)
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrPostfixNotReading) || !strings.Contains(err.Error(), cp) {
			t.Fatalf("%s while Postfix reads a copy: %v; want ErrPostfixNotReading naming %s", what, err, cp)
		}
		var nse *postfix.NotServedError
		if !errors.As(err, &nse) || !strings.Contains(nse.Hint(), "-e 'smtpd_tls_chain_files = "+l.ChainFile+"'") {
			t.Errorf("%s: want the postconf line naming %s, got hint %q", what, l.ChainFile, nse.Hint())
		}
		if c, _, _ := readChainFile(l.ChainFile); tlsa.SPKIDigestHex(c.Leaf) != old {
			t.Fatalf("%s: the renewal was installed although Postfix reads another file", what)
		}
		if got := tlsa.SPKIDigestHex(presentedLeaf(t, pf, postfix.ECDSA)); got != old {
			t.Fatalf("%s: Postfix presents %s, want the previous key %s", what, short(got), short(old))
		}
		if recs := servedRecords(t, e); !has(recs, old) || !has(recs, next) {
			t.Fatalf("%s: the owner serves %v, want the previous key's and the renewal's records", what, recs)
		}
	}
	_, err = e.Deploy(t.Context(), d)
	refused("Deploy of the aged renewal", err)
	r, err := e.Reload(t.Context())
	refused("Reload", err)
	if len(r.Switched) > 0 || len(r.Removed) > 0 || strings.Contains(strings.Join(r.Verified, "\n"), next) {
		t.Fatalf("Reload while Postfix reads a copy: switched %v, removed %v, verified %v", r.Switched, r.Removed, r.Verified)
	}

	// The hint's postconf line; the next run reloads.
	postconf(t, pf.ConfigDir, "smtpd_tls_chain_files = "+l.ChainFile)
	r, err = e.Reload(t.Context())
	if err != nil || len(r.Switched) != 1 || !r.Reloaded {
		t.Fatalf("Reload after the postconf line: %+v, %v; want switched and reloaded", r, err)
	}
	if !strings.Contains(strings.Join(r.Verified, "\n"), next) || len(r.Removed) != 1 || !strings.Contains(r.Removed[0], old) {
		t.Errorf("Reload after the postconf line: verified %v, removed %v; want the renewal verified and the previous record removed", r.Verified, r.Removed)
	}
	if got := tlsa.SPKIDigestHex(presentedLeaf(t, pf, postfix.ECDSA)); got != next {
		t.Errorf("Postfix presents %s, want the renewal %s", short(got), short(next))
	}
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10e9)
	for _, srv := range []string{lab.Primary, lab.Secondary} {
		if got := serverTLSA(t, srv, owner); len(got) != 1 || !strings.Contains(got[0], next) {
			t.Errorf("%s serves %v, want only the renewal's record", srv, got)
		}
	}
}

// TestConfigDirNamesAnotherInstance: [postfix] config_dir names a Postfix
// instance (A) that reads the same chain file as the one listening at
// endpoints (B). The switch installs the file and reloads A; B keeps
// presenting the previous key, so verification fails (ErrVerify naming
// the endpoint, the presented and the installed key, and the config_dir
// reloaded) and the previous
// key's record stays. With config_dir naming B the next Reload reloads B,
// verifies the renewal and removes the previous record.
func TestConfigDirNamesAnotherInstance(t *testing.T) {
	t.Parallel()
	e, lab, pfB := observedLab(t, postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}})
	l := e.Config.Lineages["ecdsa"]
	pfA := postfixlab.Start(t, postfixlab.Options{Main: []string{"smtpd_tls_chain_files = " + l.ChainFile}})
	e.Config.Postfix.ConfigDir = pfA.ConfigDir
	old := verifiedLab(t, e)

	d, next := newKeyRenewal(t, "ecdsa")
	if res, err := e.Deploy(t.Context(), d); err != nil || res.Installed {
		t.Fatalf("Deploy of a new key: %+v, %v; want a pending switch", res, err)
	}
	waitAged(t, e)
	r, err := e.Reload(t.Context())
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("Reload with config_dir naming another instance: %+v, %v; want ErrVerify", r, err)
	}
	for _, s := range []string{pfB.Addr, old[:16], next[:16], "config_dir " + pfA.ConfigDir} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the error does not name %s: %v", s, err)
		}
	}
	if len(r.Removed) > 0 || strings.Contains(strings.Join(r.Verified, "\n"), next) {
		t.Fatalf("Reload: removed %v, verified %v; want nothing removed, the renewal not verified", r.Removed, r.Verified)
	}
	if got := tlsa.SPKIDigestHex(presentedLeaf(t, pfB, postfix.ECDSA)); got != old {
		t.Fatalf("the endpoint presents %s, want still the previous key %s", short(got), short(old))
	}
	if recs := servedRecords(t, e); !has(recs, old) {
		t.Fatalf("the previous key's record was removed: %v", recs)
	}

	e.Config.Postfix.ConfigDir = pfB.ConfigDir
	r, err = e.Reload(t.Context())
	if err != nil || !r.Reloaded || !strings.Contains(strings.Join(r.Verified, "\n"), next) {
		t.Fatalf("Reload with config_dir naming the endpoint's instance: %+v, %v; want reloaded and the renewal verified", r, err)
	}
	if len(r.Removed) != 1 || !strings.Contains(r.Removed[0], old) {
		t.Errorf("removed %v, want the previous record", r.Removed)
	}
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10e9)
	for _, srv := range []string{lab.Primary, lab.Secondary} {
		if got := serverTLSA(t, srv, owner); len(got) != 1 || !strings.Contains(got[0], next) {
			t.Errorf("%s serves %v, want only the renewal's record", srv, got)
		}
	}
}
