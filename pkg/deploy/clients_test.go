package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/hookenv"
)

// TestClientFiles: a lineage's ACME client files are read where dehydrated
// (certs/<alias>/{privkey,cert,chain}.pem) and acme.sh
// (<domain>_ecc/{<domain>.key,<domain>.cer,ca.cer}) keep them, and a hook
// run finds its lineage by those directories when the names differ.
func TestClientFiles(t *testing.T) {
	dir := t.TempDir()
	ca := fixture.NewCA(t)
	keyPEM, certs, _ := ca.Issue(t, nil)
	leaf, issuer := certs[:bytes.Index(certs, []byte("-----END CERTIFICATE-----"))+26], certs[bytes.Index(certs, []byte("-----END CERTIFICATE-----"))+26:]

	dh := filepath.Join(dir, "dehydrated", "certs", "mx1")
	fixture.WriteFile(t, filepath.Join(dh, "privkey.pem"), keyPEM)
	fixture.WriteFile(t, filepath.Join(dh, "cert.pem"), leaf)
	fixture.WriteFile(t, filepath.Join(dh, "chain.pem"), issuer)
	ash := filepath.Join(dir, "acme.sh", "mail.example.test_ecc")
	fixture.WriteFile(t, filepath.Join(ash, "mail.example.test.key"), keyPEM)
	fixture.WriteFile(t, filepath.Join(ash, "mail.example.test.cer"), leaf)
	fixture.WriteFile(t, filepath.Join(ash, "ca.cer"), issuer)

	text := fmt.Sprintf(`state_dir = %q
[provider.p]
type = "rfc2136"
server = "127.0.0.1:53"
key_file = "/nonexistent"
[lineage.a]
hosts = ["mail.example.test"]
provider = "p"
chain_file = %q
dehydrated_cert = %q
[lineage.b]
hosts = ["mail.example.test"]
provider = "p"
chain_file = %q
acmesh_dir = %q
`, filepath.Join(dir, "state"), filepath.Join(dir, "a.pem"), dh, filepath.Join(dir, "b.pem"), ash)
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg)
	want := fixture.SPKI(t, certs)
	for _, name := range []string{"a", "b"} {
		c, err := e.loadSource(cfg.Lineages[name], nil)
		if err != nil || c == nil {
			t.Fatalf("lineage %s: loadSource = %v, %v", name, c, err)
		}
		if got := spkiHex(c); got != want || len(c.Issuers) != 1 {
			t.Errorf("lineage %s: key %s with %d issuers; want %s with 1", name, got, len(c.Issuers), want)
		}
	}
	for _, tt := range []struct {
		r    hookenv.Renewal
		want string
	}{
		{hookenv.Renewal{Client: hookenv.Dehydrated, Lineage: "mx1", KeyFile: filepath.Join(dh, "privkey.pem")}, "a"},
		{hookenv.Renewal{Client: hookenv.AcmeSh, Lineage: "mail.example.test", KeyFile: filepath.Join(ash, "mail.example.test.key")}, "b"},
	} {
		l, err := e.FindLineage(&tt.r)
		if err != nil || l.Name != tt.want {
			t.Errorf("FindLineage(%s %s) = %v, %v; want lineage %s", tt.r.Client, tt.r.Lineage, l, err, tt.want)
		}
	}
	if _, err := e.FindLineage(&hookenv.Renewal{Client: hookenv.Dehydrated, Lineage: "mx9", KeyFile: filepath.Join(dir, "other", "privkey.pem")}); err == nil {
		t.Error("FindLineage of an unknown dehydrated directory: no error")
	}
	if err := os.Remove(filepath.Join(ash, "ca.cer")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.loadSource(cfg.Lineages["b"], nil); err == nil {
		t.Error("acme.sh lineage without ca.cer: no error")
	}
}
