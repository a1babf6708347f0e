package rotate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/state"
)

func pinEngine(t *testing.T, lineage string) *deploy.Engine {
	t.Helper()
	dir := t.TempDir()
	text := `state_dir = "` + filepath.Join(dir, "state") + `"
[provider.p]
type = "rfc2136"
server = "127.0.0.1:1"
key_file = "/nonexistent"
[lineage.mail]
hosts = ["mail.example.test"]
provider = "p"
chain_file = "` + filepath.Join(dir, "served.pem") + `"
` + lineage
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return &deploy.Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, LockWait: time.Second}
}

func TestPinCertbot(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "mail")
	ca := fixture.NewCA(t)
	k, c, _ := ca.Issue(t, nil)
	fixture.WriteFile(t, filepath.Join(live, "privkey.pem"), k)
	fixture.WriteFile(t, filepath.Join(live, "fullchain.pem"), c)
	conf := filepath.Join(dir, "renewal", "mail.conf")
	fixture.WriteFile(t, conf, []byte("version = 2.1.0\n[renewalparams]\nkey_type = ecdsa\nreuse_key = False\n"))
	e := pinEngine(t, `certbot_lineage = "`+live+`"`)

	res, err := Pin(e, true)
	if err != nil {
		t.Fatalf("Pin(check): %v", err)
	}
	if len(res) != 1 || res[0].OK || res[0].File != conf {
		t.Fatalf("Pin(check) = %+v, want not OK for %s", res, conf)
	}
	if ok, _ := certbot.ReuseKey(conf); ok {
		t.Fatal("--check changed the renewal configuration")
	}
	res, err = Pin(e, false)
	if err != nil || !res[0].OK || !res[0].Changed {
		t.Fatalf("Pin = %+v, %v; want repaired", res, err)
	}
	if ok, _ := certbot.ReuseKey(conf); !ok {
		t.Error("reuse_key not repaired")
	}
	st := lineageState(t, e, "mail")
	if st.KeySPKI != fixture.SPKI(t, c) {
		t.Errorf("state KeySPKI = %q, want the current key's", st.KeySPKI)
	}
}

func TestPinLegoCSR(t *testing.T) {
	dir := t.TempDir()
	ca := fixture.NewCA(t)
	k, c, _ := ca.Issue(t, nil)
	key, crt, csr := filepath.Join(dir, "mail.key"), filepath.Join(dir, "mail.crt"), filepath.Join(dir, "mail.csr")
	fixture.WriteFile(t, key, k)
	fixture.WriteFile(t, crt, c)
	e := pinEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"
lego_csr = "`+csr+`"`)
	if res, err := Pin(e, true); err != nil || res[0].OK {
		t.Fatalf("Pin(check) without a CSR = %+v, %v; want not OK", res, err)
	}
	res, err := Pin(e, false)
	if err != nil || !res[0].Changed {
		t.Fatalf("Pin = %+v, %v; want the CSR written", res, err)
	}
	b, err := chain.ReadFile(csr)
	if err != nil || len(b.CSRs) != 1 {
		t.Fatalf("CSR file: %v", err)
	}
	if got := b.CSRs[0].DNSNames; len(got) != 1 || got[0] != "mail.example.test" {
		t.Errorf("CSR names = %v", got)
	}
	if res, _ := Pin(e, false); res[0].Changed || !strings.Contains(res[0].Message, "matches") {
		t.Errorf("second Pin = %+v, want unchanged", res[0])
	}
	// A new key makes the CSR stale.
	k2, _, _ := ca.Issue(t, nil)
	fixture.WriteFile(t, key, k2)
	if res, _ := Pin(e, true); res[0].OK {
		t.Error("stale CSR reported OK")
	}
	if _, err := os.Stat(csr); err != nil {
		t.Fatal(err)
	}
}

// TestPinSwapsCommittedCertbotKey: dane-prerenew hands a committed staged
// key to certbot (a new archive version, the live link repointed) before
// pinning, and only once.
func TestPinSwapsCommittedCertbotKey(t *testing.T) {
	dir := t.TempDir()
	live, archive := filepath.Join(dir, "live", "mail"), filepath.Join(dir, "archive", "mail")
	ca := fixture.NewCA(t)
	k, c, _ := ca.Issue(t, nil)
	fixture.WriteFile(t, filepath.Join(archive, "privkey1.pem"), k)
	fixture.WriteFile(t, filepath.Join(archive, "fullchain1.pem"), c)
	if err := os.MkdirAll(live, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"privkey", "fullchain"} {
		if err := os.Symlink(filepath.Join("..", "..", "archive", "mail", f+"1.pem"), filepath.Join(live, f+".pem")); err != nil {
			t.Fatal(err)
		}
	}
	fixture.WriteFile(t, filepath.Join(dir, "renewal", "mail.conf"), []byte("[renewalparams]\nreuse_key = True\n"))
	e := pinEngine(t, `certbot_lineage = "`+live+`"`)

	next, _, _ := ca.Issue(t, nil)
	nextFile := filepath.Join(dir, "next.key")
	fixture.WriteFile(t, nextFile, next)
	nextSPKI := keyFileSPKI(t, nextFile)
	st := &deploy.LineageState{Next: &deploy.NextKey{File: nextFile, SPKI: nextSPKI, Algorithm: "ecdsa-p256", Staged: time.Now()}}
	if err := e.SaveLineageState("mail", st); err != nil {
		t.Fatal(err)
	}
	// Staged, not committed: the key stays.
	if _, err := Pin(e, false); err != nil {
		t.Fatal(err)
	}
	if got := keyFileSPKI(t, filepath.Join(live, "privkey.pem")); got == nextSPKI {
		t.Fatal("Pin handed an uncommitted staged key to certbot")
	}
	st.Next.Committed = time.Now()
	if err := e.SaveLineageState("mail", st); err != nil {
		t.Fatal(err)
	}
	// --check never swaps.
	if _, err := Pin(e, true); err != nil {
		t.Fatal(err)
	}
	if got := keyFileSPKI(t, filepath.Join(live, "privkey.pem")); got == nextSPKI {
		t.Fatal("Pin --check handed the staged key to certbot")
	}
	if _, err := Pin(e, false); err != nil {
		t.Fatal(err)
	}
	if got := keyFileSPKI(t, filepath.Join(live, "privkey.pem")); got != nextSPKI {
		t.Fatalf("certbot's key after Pin: %s, want the committed staged key %s", got, nextSPKI)
	}
	if target, _ := os.Readlink(filepath.Join(live, "privkey.pem")); filepath.Base(target) != "privkey2.pem" {
		t.Errorf("live privkey.pem -> %s, want the next archive version privkey2.pem", target)
	}
	got := lineageState(t, e, "mail")
	if !got.Next.Swapped || got.KeySPKI != nextSPKI {
		t.Errorf("state after the swap: next %+v, key %s; want swapped and the staged key recorded", got.Next, got.KeySPKI)
	}
	// Running again changes nothing.
	if _, err := Pin(e, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(archive, "privkey3.pem")); !os.IsNotExist(err) {
		t.Errorf("second Pin wrote another archive version: %v", err)
	}
}

// TestPinDehydrated: dehydrated's default PRIVATE_KEY_RENEW="yes" is
// reported by --check and repaired in the per-certificate configuration;
// the key's digest is recorded.
func TestPinDehydrated(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config")
	fixture.WriteFile(t, main, []byte("BASEDIR="+dir+"\nKEY_ALGO=prime256v1\n"))
	cert := filepath.Join(dir, "certs", "mail")
	k, c, _ := fixture.NewCA(t).Issue(t, nil)
	fixture.WriteFile(t, filepath.Join(cert, "privkey.pem"), k)
	e := pinEngine(t, `dehydrated_cert = "`+cert+`"`+"\n"+`dehydrated_config = "`+main+`"`)

	res, err := Pin(e, true)
	cc := filepath.Join(cert, "config")
	if err != nil || len(res) != 1 || res[0].OK || res[0].File != cc || !strings.Contains(res[0].Message, `"yes"`) {
		t.Fatalf("Pin(check) = %+v, %v; want not OK naming %s", res, err, cc)
	}
	if _, err := os.Stat(cc); err == nil {
		t.Fatal("--check wrote the per-certificate configuration")
	}
	res, err = Pin(e, false)
	if err != nil || !res[0].OK || !res[0].Changed {
		t.Fatalf("Pin = %+v, %v; want repaired", res, err)
	}
	if res, _ := Pin(e, true); !res[0].OK {
		t.Errorf("Pin(check) after the repair = %+v", res)
	}
	if st := lineageState(t, e, "mail"); st.KeySPKI != fixture.SPKI(t, c) {
		t.Errorf("state KeySPKI = %q, want the current key's", st.KeySPKI)
	}
}

// TestPinAcmeSh: Le_ForceNewDomainKey='1' (--always-force-new-domain-key)
// is reported by --check and removed; without a domain configuration yet
// there is nothing to pin.
func TestPinAcmeSh(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail.example.test_ecc")
	e := pinEngine(t, `acmesh_dir = "`+dir+`"`)
	if res, err := Pin(e, true); err != nil || !res[0].OK {
		t.Fatalf("Pin(check) before the first issuance = %+v, %v; want OK", res, err)
	}
	conf := filepath.Join(dir, "mail.example.test.conf")
	fixture.WriteFile(t, conf, []byte("Le_Domain='mail.example.test'\nLe_ForceNewDomainKey='1'\nLe_Keylength='ec-256'\n"))
	res, err := Pin(e, true)
	if err != nil || res[0].OK || res[0].File != conf || !strings.Contains(res[0].Message, "Le_ForceNewDomainKey") {
		t.Fatalf("Pin(check) = %+v, %v; want not OK naming %s", res, err, conf)
	}
	res, err = Pin(e, false)
	if err != nil || !res[0].OK || !res[0].Changed {
		t.Fatalf("Pin = %+v, %v; want repaired", res, err)
	}
	if b, _ := os.ReadFile(conf); strings.Contains(string(b), "Le_ForceNewDomainKey") || !strings.Contains(string(b), "Le_Keylength='ec-256'") {
		t.Errorf("%s after the repair:\n%s", conf, b)
	}
}
