package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/internal/desecfake"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/libdnsprov"
	"github.com/danehook/danehook/pkg/state"
)

// The engine through libdns/desec against the deSEC fake, the owner
// observed on the fake's name servers (apidns) by the propagation check as
// in production: Publish adds the record, a second Publish sends no write,
// and the TTL deSEC serves (3600, its minimum) is the one observed.
// Not parallel: the fake is reached through http.DefaultTransport.
func TestPublishThroughLibdnsDesec(t *testing.T) {
	const token = "desecTok-SECRET-engine-77"
	f := desecfake.New(t, token)
	f.AddDomain("example.test")
	f.Intercept(t)
	addr := apidns.Serve(t, f.DNS)
	_, port, _ := strings.Cut(addr, ":")

	dir := t.TempDir()
	chainFile := filepath.Join(dir, "postfix", "mail-ecdsa.pem")
	pfDir := filepath.Join(dir, "postfix-etc")
	fixture.WritePostfixConfig(t, pfDir, chainFile)
	text := `
state_dir = "` + filepath.Join(dir, "state") + `"
[postfix]
config_dir = "` + pfDir + `"
[provider.desec]
type = "libdns"
name = "desec"
api_token_env = "DANEHOOK_TEST_DESEC"
query_server = "` + addr + `"
nameserver_port = ` + port + `
timeout = 5

[lineage.mail]
hosts = ["mail.example.test"]
ttl = 300
provider = "desec"
allow_untrusted = true
chain_file = "` + chainFile + `"
`
	cfg, err := config.Parse(filepath.Join(dir, "danehook.toml"), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatal(err)
	}
	spec, _ := libdnsprov.Lookup("desec")
	prov, err := spec.New(libdnsprov.Settings{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	pub := &dnsupdate.Libdns{Name: "desec", Provider: prov, Classify: spec.Classify, Timeout: 5 * time.Second, Secrets: []string{token},
		Reader: &dnsupdate.RFC2136{Server: addr, Timeout: 2 * time.Second}}
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"desec": pub}, LockWait: time.Second}

	ca := newCA(t)
	k1, c1, _ := ca.issue(t, nil)
	if err := os.MkdirAll(filepath.Dir(chainFile), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, chainFile, k1, c1)
	spki := spkiOf(t, c1)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := f.RRset("example.test", "_25._tcp.mail", "TLSA")
	if got == nil || len(got.Records) != 1 || got.Records[0] != "3 1 1 "+spki || got.TTL != 3600 {
		t.Fatalf("deSEC holds %+v, want 3 1 1 %s at TTL 3600", got, spki)
	}
	puts := f.Requests("PUT")
	plans, err := e.Publish(t.Context())
	if err != nil {
		t.Fatalf("second Publish: %v", err)
	}
	for _, p := range plans {
		if !p.Changes.Empty() {
			t.Errorf("second Publish planned:\n%s", p.Changes)
		}
	}
	if n := f.Requests("PUT") - puts; n != 0 {
		t.Errorf("second Publish sent %d PUT, want 0", n)
	}
	rrs, err := pub.Records(t.Context(), "_25._tcp.mail.example.test.")
	if err != nil || len(rrs) != 1 || rrs[0].TTL != 3600 {
		t.Errorf("served %v, %v; want one record at TTL 3600", rrs, err)
	}
}
