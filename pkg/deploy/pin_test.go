package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/state"
)

func pinEngine(t *testing.T, lineage string) *Engine {
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
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, LockWait: time.Second}
}

func TestPinCertbot(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "mail")
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, filepath.Join(live, "privkey.pem"), k)
	writeFile(t, filepath.Join(live, "fullchain.pem"), c)
	conf := filepath.Join(dir, "renewal", "mail.conf")
	writeFile(t, conf, []byte("version = 2.1.0\n[renewalparams]\nkey_type = ecdsa\nreuse_key = False\n"))
	e := pinEngine(t, `certbot_lineage = "`+live+`"`)

	res, err := e.Pin(true)
	if err != nil {
		t.Fatalf("Pin(check): %v", err)
	}
	if len(res) != 1 || res[0].OK || res[0].File != conf {
		t.Fatalf("Pin(check) = %+v, want not OK for %s", res, conf)
	}
	if ok, _ := certbot.ReuseKey(conf); ok {
		t.Fatal("--check changed the renewal configuration")
	}
	res, err = e.Pin(false)
	if err != nil || !res[0].OK || !res[0].Changed {
		t.Fatalf("Pin = %+v, %v; want repaired", res, err)
	}
	if ok, _ := certbot.ReuseKey(conf); !ok {
		t.Error("reuse_key not repaired")
	}
	st, _ := e.loadLineage("mail")
	if st.KeySPKI != spkiOf(t, c) {
		t.Errorf("state KeySPKI = %q, want the current key's", st.KeySPKI)
	}
}

func TestPinLegoCSR(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	key, crt, csr := filepath.Join(dir, "mail.key"), filepath.Join(dir, "mail.crt"), filepath.Join(dir, "mail.csr")
	writeFile(t, key, k)
	writeFile(t, crt, c)
	e := pinEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"
lego_csr = "`+csr+`"`)
	if res, err := e.Pin(true); err != nil || res[0].OK {
		t.Fatalf("Pin(check) without a CSR = %+v, %v; want not OK", res, err)
	}
	res, err := e.Pin(false)
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
	if res, _ := e.Pin(false); res[0].Changed || !strings.Contains(res[0].Message, "matches") {
		t.Errorf("second Pin = %+v, want unchanged", res[0])
	}
	// A new key makes the CSR stale.
	k2, _, _ := ca.issue(t, nil)
	writeFile(t, key, k2)
	if res, _ := e.Pin(true); res[0].OK {
		t.Error("stale CSR reported OK")
	}
	if _, err := os.Stat(csr); err != nil {
		t.Fatal(err)
	}
}
