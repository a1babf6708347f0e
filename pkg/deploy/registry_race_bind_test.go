package deploy

import (
	"context"
	"crypto"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
)

// hooked is a host's provider with test hooks between that host's
// observation and its act: beforeRemove runs once, right before the first
// change set carrying a removal is handed to the provider; beforeClaim
// once, right before the first claims are written. unguarded makes
// ApplyClaimed ignore the registry (the control: what the run's own
// observation alone would do).
type hooked struct {
	*dnsupdate.RFC2136
	beforeRemove, beforeClaim func()
	unguarded                 bool
}

func (h *hooked) fireRemove(changes []dnsupdate.Change) {
	if f := h.beforeRemove; f != nil && hasRemove(changes) {
		h.beforeRemove = nil
		f()
	}
}

func (h *hooked) Apply(ctx context.Context, changes []dnsupdate.Change) error {
	h.fireRemove(changes)
	return h.RFC2136.Apply(ctx, changes)
}

func (h *hooked) ApplyClaimed(ctx context.Context, host string, changes []dnsupdate.Change) ([]dnsupdate.Conflict, error) {
	h.fireRemove(changes)
	if h.unguarded {
		return nil, h.RFC2136.Apply(ctx, changes)
	}
	return h.RFC2136.ApplyClaimed(ctx, host, changes)
}

func (h *hooked) ApplyClaims(ctx context.Context, ttl uint32, add, remove []dnsupdate.Claim) error {
	if f := h.beforeClaim; f != nil && len(add) > 0 {
		h.beforeClaim = nil
		f()
	}
	return h.RFC2136.ApplyClaims(ctx, ttl, add, remove)
}

// raceHost is one installation with a hooked provider, publish_wait off.
func raceHost(t *testing.T, lab *bindlab.Lab, id string, prereq bool) (*Engine, *hooked) {
	t.Helper()
	e := hostEngine(t, lab, id)
	rp := e.Publishers["lab"].(*dnsupdate.RFC2136)
	rp.Prerequisites = prereq
	h := &hooked{RFC2136: rp}
	e.Publishers["lab"] = h
	zero := time.Duration(0)
	e.PublishWait = &zero
	return e, h
}

// deployKey runs e's deploy hook for a fresh certificate of key k, as lego
// would after a renewal, and returns the result.
func deployKey(t *testing.T, e *Engine, ca *testCA, k crypto.Signer) *DeployResult {
	t.Helper()
	keyPEM, certsPEM, _ := ca.CA.Issue(t, k)
	dir := t.TempDir()
	kf, cf := filepath.Join(dir, "r.key"), filepath.Join(dir, "r.crt")
	writeFile(t, kf, keyPEM)
	writeFile(t, cf, certsPEM)
	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: kf, CertFile: cf})
	if err != nil {
		t.Fatalf("Deploy: %v (a conflict must not fail the hook)", err)
	}
	return res
}

// installedRecord returns the 3 1 1 record of e's installed chain file.
func installedRecord(t *testing.T, e *Engine) string {
	t.Helper()
	c, _, err := readChainFile(e.Config.Lineages["mail"].ChainFile)
	if err != nil || c == nil {
		t.Fatalf("chain file: %v", err)
	}
	return "3 1 1 " + spkiHex(c)
}

// everyServedPresent fails unless the record of every host's installed
// chain is at the owner (the invariant, read at the primary).
func everyServedPresent(t *testing.T, step string, hosts ...*Engine) {
	t.Helper()
	got := servedRecords(t, hosts[0])
	for i, h := range hosts {
		if r := installedRecord(t, h); !has(got, r) {
			t.Fatalf("%s: host %d serves %s, missing at the owner (served %v)", step, i+1, short(r), got)
		}
	}
}

// inSync waits until the lab's secondary serves the primary's serial: an
// observation while it lags forgets that server's sightings.
func inSync(t *testing.T, lab *bindlab.Lab) {
	t.Helper()
	lab.WaitSerial(t, lab.Secondary, "example.test.", lab.Serial(t, lab.Primary, "example.test."), 10*time.Second)
}

// observeAged lets e observe the owner with both servers in step and waits
// until what it saw is aged for it (TTL 1: 2 s after both serve it).
func observeAged(t *testing.T, lab *bindlab.Lab, e *Engine) {
	t.Helper()
	inSync(t, lab)
	if _, err := e.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
}

// markVerified records e's installed chain as what Postfix was reloaded
// with and verified (what the post hook does; the lab runs no Postfix).
func markVerified(t *testing.T, e *Engine) {
	t.Helper()
	digest, _ := fileDigest(e.Config.Lineages["mail"].ChainFile)
	st, err := e.loadLineage("mail")
	if err != nil {
		t.Fatal(err)
	}
	st.VerifiedChain = digest
	if err := e.Store.Save("mail", st); err != nil {
		t.Fatal(err)
	}
}

// switchTo is one host's renewal onto key k between another host's
// observation and its act: the secondary in step first (so the
// renewing host's observation keeps its sightings), then the deploy hook,
// then Postfix reloaded and verified when it installed.
func switchTo(t *testing.T, lab *bindlab.Lab, e *Engine, ca *testCA, k crypto.Signer) *DeployResult {
	t.Helper()
	inSync(t, lab)
	res := deployKey(t, e, ca, k)
	if res.Installed {
		markVerified(t, e)
	}
	return res
}

// TestRegistryRaceClaimBetweenObserveAndAct: host A decided to remove r1
// (it rotated away from k1 and nobody claimed r1 when A observed); host B
// renews onto k1, claims r1 and switches to it between A's observation and
// A's act. A's removal is conditional on the registry, so r1 stays, the
// hook does not fail, and the reason is reported; with the guard off (the
// control) the same interleaving removes the record B serves. With and
// without prerequisites = true.
func TestRegistryRaceClaimBetweenObserveAndAct(t *testing.T) {
	t.Parallel() // mostly waits for records to age
	for _, tc := range []struct {
		name              string
		prereq, unguarded bool
	}{{"registry guard", false, false}, {"registry guard with prerequisites", true, false}, {"control: no guard at act time", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			lab := bindlab.Start(t, bindlab.Options{TTL: 1})
			a, ha := raceHost(t, lab, "mx1", tc.prereq)
			b, _ := raceHost(t, lab, "mx2", tc.prereq)
			ha.unguarded = tc.unguarded
			ca := newCA(t)
			_, _, k1 := ca.CA.Issue(t, nil)
			_, _, k2 := ca.CA.Issue(t, nil)
			_, _, kb := ca.CA.Issue(t, nil)
			r1 := serve(t, a, ca, k1)
			serve(t, b, ca, kb)
			serve(t, a, ca, k2)
			observeAged(t, lab, b)
			everyServedPresent(t, "before", a, b)

			var bres *DeployResult
			ha.beforeRemove = func() {
				bres = switchTo(t, lab, b, ca, k1)
			}
			res, err := a.Reload(t.Context())
			if bres == nil || !bres.Installed {
				t.Fatalf("B's deploy between A's observation and act: %+v, want k1 installed (r1 aged)", bres)
			}
			got := servedRecords(t, a)
			if tc.unguarded {
				if has(got, r1) {
					t.Fatalf("control: served %v, the unguarded removal no longer reproduces the race", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("A's Reload: %v, want no error (the conflict is held, not a failure)", err)
			}
			everyServedPresent(t, "after A's conditional removal", a, b)
			held := strings.Join(res.Held, "\n")
			if has(res.Removed, r1) || !strings.Contains(held, "host mx2") || !strings.Contains(held, "_danehook.") {
				t.Fatalf("A's result removed %v, held %q: want r1 held naming mx2 and the registry", res.Removed, held)
			}
			t.Logf("held: %s", held)
			// A still owns r1: once B moves on, A's next run removes it.
			if _, err := a.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !has(servedRecords(t, a), r1) {
				t.Fatal("A removed r1 on its next run while B still claims it")
			}
			serve(t, b, ca, k2)
			cleanup(t, b)
			cleanup(t, a)
			if got := servedRecords(t, a); has(got, r1) || len(got) != 1 {
				t.Fatalf("converged to %v, want k2's record only", got)
			}
		})
	}
}

// TestRegistryRaceRemoveBetweenObserveAndClaim: the other order. B
// observes r1 served and aged, then A removes r1 before B's claim lands.
// B's read after its claim sees r1 gone: B does not switch in that run
// (and its hook does not fail), publishes r1 again in the next, and
// switches once it is aged. The chain B serves always has its record.
func TestRegistryRaceRemoveBetweenObserveAndClaim(t *testing.T) {
	t.Parallel() // mostly waits for records to age
	for _, prereq := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "prerequisites"}[prereq], func(t *testing.T) {
			lab := bindlab.Start(t, bindlab.Options{TTL: 1})
			a, _ := raceHost(t, lab, "mx1", prereq)
			b, hb := raceHost(t, lab, "mx2", prereq)
			ca := newCA(t)
			_, _, k1 := ca.CA.Issue(t, nil)
			_, _, k2 := ca.CA.Issue(t, nil)
			_, _, kb := ca.CA.Issue(t, nil)
			r1 := serve(t, a, ca, k1)
			rb := serve(t, b, ca, kb)
			serve(t, a, ca, k2)
			observeAged(t, lab, b)

			hb.beforeClaim = func() {
				cleanup(t, a)
				if has(servedRecords(t, a), r1) {
					t.Fatal("A's cleanup did not remove r1 (nobody claimed it yet)")
				}
			}
			res := deployKey(t, b, ca, k1)
			if res.Installed {
				t.Fatalf("B switched to k1 although r1 was removed before its claim landed: %+v", res)
			}
			if r := installedRecord(t, b); r != rb {
				t.Fatalf("B serves %s, want still %s", short(r), short(rb))
			}
			if res.Pending == nil || !strings.Contains(strings.Join(res.Pending.Blocking, " ")+res.Reason, "removed by another host") {
				t.Errorf("B's pending switch says %q / %v, want the reason (removed by another host while claiming)", res.Reason, res.Pending)
			}
			t.Logf("B's deploy: %s", res.Reason)
			everyServedPresent(t, "after the interleaving", a, b)
			// The next run publishes r1 again; once aged, B switches.
			if _, err := b.Publish(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !has(servedRecords(t, b), r1) {
				t.Fatal("B's next run did not publish r1 again")
			}
			cleanup(t, a)
			if !has(servedRecords(t, a), r1) {
				t.Fatal("A removed r1 again although B claims it now")
			}
			observeAged(t, lab, b)
			if res := switchTo(t, lab, b, ca, k1); !res.Installed {
				t.Fatalf("B's deploy after r1 aged again: %+v; want the switch", res)
			}
			everyServedPresent(t, "after B's switch", a, b)
		})
	}
}

// TestRegistryRaceThreeHosts: three hosts, one owner, two interleavings:
// h1 cleans up k1's record while h2 renews onto k1; later h2 cleans up
// k2's record while h1 renews onto k2 (and h3 moves from k2 to k1 in
// between). After every step each host's served record is at the owner,
// and all converge on exactly the records they serve.
func TestRegistryRaceThreeHosts(t *testing.T) {
	t.Parallel() // mostly waits for records to age
	for _, prereq := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "prerequisites"}[prereq], func(t *testing.T) {
			lab := bindlab.Start(t, bindlab.Options{TTL: 1})
			h1, p1 := raceHost(t, lab, "h1", prereq)
			h2, p2 := raceHost(t, lab, "h2", prereq)
			h3, _ := raceHost(t, lab, "h3", prereq)
			ca := newCA(t)
			_, _, k1 := ca.CA.Issue(t, nil)
			_, _, k2 := ca.CA.Issue(t, nil)
			_, _, k3 := ca.CA.Issue(t, nil)
			r1 := serve(t, h1, ca, k1)
			r2 := serve(t, h2, ca, k2)
			serve(t, h3, ca, k2)
			serve(t, h1, ca, k3) // h1 rotates away from k1
			observeAged(t, lab, h2)
			reload := func(name string, h *Engine) *ReloadResult {
				t.Helper()
				res, err := h.Reload(t.Context())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				everyServedPresent(t, name, h1, h2, h3)
				return res
			}

			// h1 cleans up r1 while h2 renews onto k1.
			p1.beforeRemove = func() {
				if !switchTo(t, lab, h2, ca, k1).Installed {
					t.Fatal("h2 did not switch to k1")
				}
			}
			res := reload("h1's cleanup during h2's switch to k1", h1)
			if p1.beforeRemove != nil || has(res.Removed, r1) || !strings.Contains(strings.Join(res.Held, " "), "host h2") {
				t.Fatalf("h1: hook fired %v, removed %v, held %v; want r1 held for h2", p1.beforeRemove == nil, res.Removed, res.Held)
			}
			// h3 moves from k2 to k1 too.
			observeAged(t, lab, h3)
			if !switchTo(t, lab, h3, ca, k1).Installed {
				t.Fatal("h3 did not switch to k1")
			}
			reload("h3's next run", h3)
			// h2 cleans up r2 (nobody claims it any more) while h1 renews onto k2.
			observeAged(t, lab, h1)
			p2.beforeRemove = func() {
				if !switchTo(t, lab, h1, ca, k2).Installed {
					t.Fatal("h1 did not switch to k2")
				}
			}
			res = reload("h2's cleanup during h1's switch to k2", h2)
			if p2.beforeRemove != nil || has(res.Removed, r2) || !strings.Contains(strings.Join(res.Held, " "), "host h1") {
				t.Fatalf("h2: hook fired %v, removed %v, held %v; want r2 held for h1", p2.beforeRemove == nil, res.Removed, res.Held)
			}
			for _, h := range []*Engine{h1, h2, h3, h1, h2} {
				reload("cleanup", h)
			}
			if got := servedRecords(t, h1); len(got) != 2 || !has(got, r1) || !has(got, r2) {
				t.Fatalf("converged to %v, want exactly %s and %s", got, short(r1), short(r2))
			}
		})
	}
}
