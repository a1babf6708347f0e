package deploy

import (
	"crypto"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
)

// hostEngine is one danehook installation (its own configuration and
// state directory) publishing at the lab's one owner, with host_id id
// ("" for none).
func hostEngine(t *testing.T, lab *bindlab.Lab, id string) *Engine {
	t.Helper()
	path, text := fixture.LabConfig(t, lab, "")
	if id != "" {
		text = "host_id = \"" + id + "\"\n" + text
	}
	cfg, err := config.Parse(path, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": labPublisher(t, cfg)}, LockWait: time.Second}
}

// serve installs a chain of key k (issued by ca) as e's served chain,
// verified (what Postfix was last reloaded with), and publishes its record.
func serve(t *testing.T, e *Engine, ca *testCA, k crypto.Signer) string {
	t.Helper()
	keyPEM, certsPEM, _ := ca.CA.Issue(t, k)
	f := e.Config.Lineages["mail"].ChainFile
	writeFile(t, f, keyPEM, certsPEM)
	digest, _ := fileDigest(f)
	st, err := e.loadLineage("mail")
	if err != nil {
		t.Fatal(err)
	}
	st.VerifiedChain = digest
	if err := e.Store.Save("mail", st); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return "3 1 1 " + spkiOf(t, certsPEM)
}

func cleanup(t *testing.T, e *Engine) {
	t.Helper()
	if _, err := e.removeUnneeded(t.Context()); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
}

// TestSharedOwnerTwoHosts: two hosts serve one key at one owner; the host
// that published first rotates and cleans up. Without the registry its
// cleanup deletes the record the other host still serves (what was
// measured); with host_id set the record stays until the other host has
// moved on too, and both converge on the new key's record alone.
func TestSharedOwnerTwoHosts(t *testing.T) {
	for _, registry := range []bool{false, true} {
		name := "without registry (the measured outage)"
		if registry {
			name = "with registry"
		}
		t.Run(name, func(t *testing.T) {
			lab := bindlab.Start(t, bindlab.Options{TTL: 1})
			ids := []string{"", ""}
			if registry {
				ids = []string{"mx1", "mx2"}
			}
			a, b := hostEngine(t, lab, ids[0]), hostEngine(t, lab, ids[1])
			ca := newCA(t)
			_, _, k1 := ca.CA.Issue(t, nil)
			_, _, k2 := ca.CA.Issue(t, nil)
			r1 := serve(t, a, ca, k1)
			if got := serve(t, b, ca, k1); got != r1 {
				t.Fatal("the two hosts do not serve one key")
			}
			// a rotates to k2 and cleans up; b still serves k1.
			r2 := serve(t, a, ca, k2)
			cleanup(t, a)
			got := servedRecords(t, a)
			if !registry {
				if has(got, r1) {
					t.Fatalf("served %v: the control no longer reproduces the outage (record of the key b serves removed)", got)
				}
				return
			}
			if !has(got, r1) || !has(got, r2) {
				t.Fatalf("after a's cleanup the owner serves %v, want b's %s kept beside %s", got, r1, r2)
			}
			claims, err := a.Publishers["lab"].(*dnsupdate.RFC2136).Claims(t.Context(), owner)
			if err != nil || len(claims) != 2 {
				t.Fatalf("claims = %v, %v; want mx1 on the new key and mx2 on the old", claims, err)
			}
			st, err := a.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if held := strings.Join(st.Owners[0].Held, "\n"); !strings.Contains(held, "host mx2 still serves") {
				t.Errorf("status held = %q, want the reason naming mx2", held)
			}
			// b moves to k2: it drops its claim; a's next cleanup removes k1's record.
			serve(t, b, ca, k2)
			cleanup(t, b)
			if got := servedRecords(t, b); !has(got, r1) {
				t.Fatalf("b removed a record it does not own: %v", got)
			}
			cleanup(t, a)
			got = servedRecords(t, a)
			if len(got) != 1 || !has(got, r2) {
				t.Fatalf("converged to %v, want only %s", got, r2)
			}
			claims, _ = a.Publishers["lab"].(*dnsupdate.RFC2136).Claims(t.Context(), owner)
			if len(claims) != 2 || !claims[0].Record.Equal(claims[1].Record) {
				t.Errorf("claims = %v, want mx1 and mx2 on the new key only", claims)
			}
		})
	}
}

// TestSharedOwnerThreeHostsInterleaved: three hosts, two keys, one owner,
// prerequisites on and off; rotations and cleanups interleaved. After
// every step each host's served key has its record at the owner, and at
// the end only the new key's record is left.
func TestSharedOwnerThreeHostsInterleaved(t *testing.T) {
	for _, prereq := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "prerequisites"}[prereq], func(t *testing.T) {
			lab := bindlab.Start(t, bindlab.Options{TTL: 1})
			hosts := []*Engine{hostEngine(t, lab, "h1"), hostEngine(t, lab, "h2"), hostEngine(t, lab, "h3")}
			for _, h := range hosts {
				h.Publishers["lab"].(*dnsupdate.RFC2136).Prerequisites = prereq
			}
			ca := newCA(t)
			_, _, k1 := ca.CA.Issue(t, nil)
			_, _, k2 := ca.CA.Issue(t, nil)
			_, _, k3 := ca.CA.Issue(t, nil)
			serves := make([]string, 3)
			check := func(step string) {
				t.Helper()
				got := servedRecords(t, hosts[0])
				for i, r := range serves {
					if r != "" && !has(got, r) {
						t.Fatalf("%s: host h%d serves %s, missing at the owner (served %v)", step, i+1, r, got)
					}
				}
			}
			serves[0] = serve(t, hosts[0], ca, k1)
			serves[1] = serve(t, hosts[1], ca, k2)
			serves[2] = serve(t, hosts[2], ca, k1)
			check("initial")
			for _, step := range []struct {
				host   int
				rotate bool
			}{{0, true}, {0, false}, {1, true}, {2, false}, {1, false}, {2, true}, {0, false}, {2, false}, {1, false}} {
				if step.rotate {
					serves[step.host] = serve(t, hosts[step.host], ca, k3)
					check("rotate")
					continue
				}
				cleanup(t, hosts[step.host])
				check("cleanup")
			}
			if got := servedRecords(t, hosts[0]); len(got) != 1 || !has(got, serves[0]) {
				t.Fatalf("converged to %v, want only %s", got, serves[0])
			}
		})
	}
}

// TestPublishClaimsBatched: with host_id, a publish sends every owner's
// claims in one UPDATE per zone (as few as hold them), beside the records'
// own UPDATE per zone, instead of one UPDATE per owner (80 owners took 81
// UPDATEs). 80 owners in two zones: 4 UPDATEs; 600 owners in one zone:
// their claims (about 140 bytes each) take two messages, the records one.
// Every owner ends with its record and exactly this host's claim of it, at
// both servers, and a rerun sends nothing.
func TestPublishClaimsBatched(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		zones   []string
		owners  int
		updates uint64
	}{
		{"80 owners in 2 zones", []string{"example.test.", "other.test."}, 80, 4},
		{"600 owners in 1 zone", []string{"example.test."}, 600, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := bindlab.Start(t, bindlab.Options{TTL: 1, Zones: tc.zones})
			var hosts []string
			for i := range tc.owners {
				hosts = append(hosts, fmt.Sprintf("h%04d.%s", i, strings.TrimSuffix(tc.zones[i%len(tc.zones)], ".")))
			}
			e, rp, _ := transferEngine(t, lab, hosts, "", "mx1")
			before := lab.Counters(t, "primary").Requests["UPDATE"]
			if _, err := e.Publish(t.Context()); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if got := lab.Counters(t, "primary").Requests["UPDATE"] - before; got != tc.updates {
				t.Errorf("Publish: server counted %d UPDATEs, want %d (claims and records, per zone)", got, tc.updates)
			}
			for _, z := range tc.zones {
				lab.WaitSerial(t, lab.Secondary, z, lab.Serial(t, lab.Primary, z), 5*time.Second)
			}
			sec := &dnsupdate.RFC2136{Server: lab.Secondary, Key: rp.Key, Timeout: 5 * time.Second}
			for i, h := range hosts {
				if i%37 != 0 && i != len(hosts)-1 {
					continue // a sample of the owners, first and last included
				}
				owner := "_25._tcp." + h + "."
				for _, p := range []*dnsupdate.RFC2136{rp, sec} {
					rrs, err := p.Records(t.Context(), owner)
					if err != nil || len(rrs) != 1 {
						t.Fatalf("%s at %s: %v, %v; want one record", owner, p.Server, rrs, err)
					}
					claims, err := p.Claims(t.Context(), owner)
					if err != nil || len(claims) != 1 || claims[0].Host != "mx1" || !claims[0].Record.Equal(rrs[0].Record) {
						t.Fatalf("%s at %s: claims %v, %v; want mx1's claim of %s", owner, p.Server, claims, err, rrs[0].Record)
					}
				}
			}
			rerunSendsNothing(t, e, lab)
		})
	}
}
