package rotate

import (
	"crypto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
)

const owner = fixture.Owner

// labEngine builds an engine for the configuration at cfgPath, publishing
// through the lab's provider built directly (the binaries build it through
// cmd/internal/cliapp, the only code that reads credentials).
func labEngine(t testing.TB, cfgPath string) *deploy.Engine {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	p := cfg.Providers["lab"]
	key, err := dnsupdate.LoadTSIGKeyFile(p.KeyFile)
	if err != nil {
		t.Fatalf("lab TSIG key: %v", err)
	}
	pub := &dnsupdate.RFC2136{Server: p.Server, Zone: p.Zone, Key: key, Timeout: time.Duration(p.Timeout) * time.Second}
	return &deploy.Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]deploy.Publisher{"lab": pub}, LockWait: 5 * time.Second}
}

// bindEngine starts a BIND lab and returns an engine for one lineage
// "mail" publishing into it (fixture.LabConfig; extra is added to the
// lineage's table).
func bindEngine(t *testing.T, extra string) *deploy.Engine {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	cfgPath, _ := fixture.LabConfig(t, lab, extra)
	return labEngine(t, cfgPath)
}

// legoLab writes lego's files for a fresh key (extra is added to the
// lineage's table), serves and publishes that chain, and returns the
// engine, the CA and lego's certificate and key files.
func legoLab(t *testing.T, extra string) (e *deploy.Engine, ca *fixture.CA, crt, key string) {
	t.Helper()
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "mail.example.test.crt"), filepath.Join(dir, "mail.example.test.key")
	e = bindEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"
`+extra)
	ca = fixture.NewCA(t)
	k, c, _ := ca.Issue(t, nil)
	fixture.WriteFile(t, key, k)
	fixture.WriteFile(t, crt, c)
	fixture.WriteFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, ca, crt, key
}

// servedRecords returns the records the primary serves at owner.
func servedRecords(t *testing.T, e *deploy.Engine) []string {
	t.Helper()
	rrs, err := e.Publishers["lab"].Records(t.Context(), owner)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Record.String())
	}
	return out
}

func has(list []string, sub string) bool {
	for _, x := range list {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// keyFileSPKI is the 3 1 1 data of the key in path ("" when unreadable).
func keyFileSPKI(t *testing.T, path string) string {
	t.Helper()
	k, err := chain.ReadKey(path)
	if err != nil {
		return ""
	}
	return fixture.KeySPKI(t, k)
}

// mustKey reads the key in path.
func mustKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	k, err := chain.ReadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lineageState reads the lineage's state.
func lineageState(t *testing.T, e *deploy.Engine, name string) *deploy.LineageState {
	t.Helper()
	st, err := e.LineageState(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitServedEverywhere waits until both lab servers serve the staged record.
func waitServedEverywhere(t *testing.T, e *deploy.Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rs, err := Observe(t.Context(), e, "mail")
		if err == nil && len(rs[0].Owners) == 1 && len(rs[0].Owners[0].Serving) == 2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("staged record not served by both servers within 10 s")
}

// backdateSightings makes every record seen at owner an hour ago, so that
// what every server serves is aged.
func backdateSightings(t *testing.T, e *deploy.Engine) {
	t.Helper()
	dns := &deploy.DNSState{Seen: &propagate.Seen{}}
	if _, err := e.Store.Load("dns", dns); err != nil {
		t.Fatal(err)
	}
	for rec, servers := range dns.Seen.Owners[owner] {
		for addr := range servers {
			dns.Seen.Owners[owner][rec][addr] = time.Now().Add(-time.Hour)
		}
	}
	if err := e.Store.Save("dns", dns); err != nil {
		t.Fatal(err)
	}
}
