package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/tlsa"
)

// newKeyFlags describes each client's new-key renewal for the narrative.
var newKeyFlags = map[string]string{
	"certbot":    "renew --force-renewal --new-key",
	"lego-v5":    "run --renew-force (without --reuse-key)",
	"lego-v4":    "renew --days 999 (without --reuse-key)",
	"dehydrated": "--cron --force after privkey.pem was lost",
	"acme.sh":    "--renew --force --always-force-new-domain-key (stand-in)",
}

// switchTimeout bounds the wait for a pending switch: the lab's TTL is 2 s,
// so a record is aged 4 s after the last server was first seen serving it;
// ticks come every second.
const switchTimeout = 20 * time.Second

// switchWait bounds the ticks of a switch in this world: switchTimeout plus
// 3 × the zone's TTL (the record ages 2 × TTL after the last server serves it).
func (w *world) switchWait() time.Duration {
	return switchTimeout + 3*time.Duration(w.bind.TTL)*time.Second
}

// TestClients runs every scenario against each ACME client, the clients in
// parallel (each has its own BIND, Postfix, Pebble and state), the steps of
// one client in order: first issuance, same-key renewal, new-key renewal,
// then the faults, one client each: a lagging secondary and a renewal
// configuration that lost reuse_key (certbot), a refused UPDATE (lego v5),
// a broken Postfix configuration (lego v4), a per-certificate
// configuration that asks for a new key (dehydrated, whose hook is an
// operator's hook with danehook chained in).
func TestClients(t *testing.T) {
	t.Parallel()
	extra := map[string][]step{
		"certbot": {{"secondary-lagging", (*world).secondaryLagging, ""}, {"reuse-key-lost", (*world).reuseKeyLost, ""}},
		"lego-v5": {{"dns-update-refused", (*world).updateRefused, ""}},
		// With a broken main.cf every new smtpd dies (see postfixBroken):
		// a sender cannot connect at all, which no hook can prevent.
		"lego-v4":    {{"postfix-config-broken", (*world).postfixBroken, "a broken main.cf stops Postfix from answering"}},
		"dehydrated": {{"key-renew-repaired", (*world).dehydratedKeyRenew, ""}},
		"acme.sh":    {{"always-force-new-domain-key", (*world).acmeShForceNewKey, ""}},
	}
	for _, c := range clients {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, c)
			steps := append([]step{
				{"first-issuance", (*world).firstIssuance, ""},
				{"renew-same-key", (*world).renewSameKey, ""},
				{"renew-new-key", func(w *world) { w.renewNewKey(c.Name == "certbot") }, ""},
			}, extra[c.Name]...)
			w.run(t, steps)
		})
	}
}

// step is one scenario step of a world.
type step struct {
	name string
	fn   func(*world)
	// unjudged, when set, says why the step runs without the judge
	// sampler (judge_test.go); every other step fails on a judge failure.
	unjudged string
}

// run runs steps as subtests of t in order, stopping at the first that
// fails: later steps build on the earlier ones.
func (w *world) run(t *testing.T, steps []step) {
	for _, s := range steps {
		if !w.runStep(t, s) {
			return
		}
	}
}

// runStep runs s as a subtest of t with the judge sampling throughout,
// unless s is unjudged, and reports whether it passed.
func (w *world) runStep(t *testing.T, s step) bool {
	return t.Run(s.name, func(t *testing.T) {
		w.t = t
		if s.unjudged == "" {
			js := w.startJudge()
			defer func() {
				if rep := w.finishJudge(t, js); !rep.Failed() {
					w.say("   judge: %d posttls-finger samples (every 0.5 s, default and ECDSA handshakes) during this step, all Verified or no TLSA yet", rep.Samples)
				}
			}()
		} else {
			t.Logf("no judge sampler in this step: %s", s.unjudged)
		}
		s.fn(w)
	})
}

// beforeSwitch runs check, which returns what is wrong while the first
// switch is still pending, and reports whether the switch was still
// pending. In a world with [schedule] (TestSwitchAtFloor), the job the
// hooks scheduled for safe_at may switch before check runs: TTL 2 s puts
// safe_at a few seconds after the hook's watch, and a loaded machine can
// take longer than that to end the client or run danectl status. A check
// that fails because Postfix meanwhile serves issued is then no failure
// (the judge samples the whole step; the next step measures the
// scheduled switch against the floor). Any other failure fails the step.
func (w *world) beforeSwitch(issued cert, check func() error) bool {
	w.t.Helper()
	err := check()
	if err == nil {
		return true
	}
	if w.scheduleVia != "" && w.served().Digest == issued.Digest {
		w.say("   the %s job the hooks scheduled switched before the pending state was looked at (%v)", w.scheduleVia, err)
		return false
	}
	w.t.Fatal(err)
	return false
}

// firstIssuance: the client issues with the hooks wired in. Postfix serves
// the lab's self-signed chain from chain_file, so dane-deploy publishes the
// new key's 3 1 1 beside the served key's, keeps Postfix on the served
// chain, and `danectl tick` switches once the new record is aged at both
// servers; then the served key's record is removed.
func (w *world) firstIssuance() {
	t := w.t
	before := w.served()
	w.wireHooks()
	args := w.issueArgs()
	w.client(args...)
	issued := w.current()
	w.say("1. %s %s issued %s: serial %s, key 3 1 1 %s", w.c.Name, verb(args), host, issued.Serial, issued.Digest)

	pending := w.beforeSwitch(issued, func() error { return w.recordsWithin(10*time.Second, before.Record, issued.Record) }) &&
		w.beforeSwitch(issued, func() error {
			if got := w.served(); got.Digest != before.Digest {
				return fmt.Errorf("right after issuance Postfix serves key %s; want the previous key %s until the new record is aged", short(got.Digest), short(before.Digest))
			}
			return nil
		}) &&
		w.beforeSwitch(issued, func() error {
			st := w.danectl("status")
			if st.code == 0 || !strings.Contains(st.out, "PENDING SWITCH to key 3 1 1 "+issued.Digest) {
				return fmt.Errorf("want a pending switch to %s and a non-zero exit; got %v", short(issued.Digest), st)
			}
			return nil
		})
	if pending {
		w.say("   dane-deploy published %s TLSA %s", w.owner(), issued.Record)
		w.say("   both name servers serve it (asked directly): primary %s, secondary %s", w.bind.Primary, w.bind.Secondary)
		w.say("   Postfix still serves the self-signed key 3 1 1 %s;", before.Digest)
		w.say("   dane-deploy published its record too, so whatever RRset a sender sees matches what Postfix serves")
	}

	ticks := w.tickUntilServed(issued, w.switchWait())
	switched := time.Now()
	w.explainSafe(issued.Record)
	w.say("   danectl tick (%d runs, one a second) switched at %s: Postfix now serves the issued key 3 1 1 %s", ticks, clock(switched), issued.Digest)
	w.waitRecords(issued.Record)
	w.say("   and removed the self-signed key's record %s from both servers", short(before.Record.String()))
	w.checkServedChain()
	w.verifyLive()
	w.opensslDANE(before.Record, false) // the cross-check can fail: the removed record no longer matches
	w.say("   verified: the live chain matches the RRset at both servers (pkg/postfix and openssl s_client -dane_tlsa_rrdata)")
	if st := w.danectl("status"); st.code != 0 {
		t.Errorf("danectl status after the switch: want exit 0; got %v", st)
	}
}

// renewSameKey: a forced renewal with the same key changes nothing in DNS
// (the primary's SOA serial stays) and Postfix is reloaded onto the new leaf.
func (w *world) renewSameKey() {
	t := w.t
	before := w.current()
	serial := w.serial()
	reloads := w.reloads()
	w.client(w.renewArgs(false)...)
	renewed := w.current()
	if renewed.Digest != before.Digest || renewed.Serial == before.Serial {
		t.Fatalf("same-key renewal: got serial %s key %s; want a new serial and key %s", renewed.Serial, short(renewed.Digest), short(before.Digest))
	}
	if got := w.serial(); got != serial {
		t.Errorf("same-key renewal changed DNS: primary SOA serial %d, want %d", got, serial)
	}
	w.waitRecords(renewed.Record)
	w.waitServed(renewed)
	if got := w.reloads(); got <= reloads {
		t.Errorf("Postfix was not reloaded: %d reload lines in the maillog, want more than %d", got, reloads)
	}
	w.checkServedChain()
	w.verifyLive()
}

// renewNewKey: a forced renewal with a new key publishes the new record at
// both servers while Postfix keeps the old chain (`danectl status` shows
// the pending switch); once the record is aged, `danectl tick` switches,
// verifies, and removes the old record from both servers. With sample, a
// goroutine checks the invariant every 300 ms throughout.
func (w *world) renewNewKey(sample bool) {
	t := w.t
	old := w.served()
	var s *sampler
	if sample {
		s = w.startSampler()
	}
	w.client(w.renewArgs(true)...)
	fresh := w.current()
	if fresh.Digest == old.Digest {
		t.Fatalf("new-key renewal kept key %s", short(old.Digest))
	}
	w.say("2. %s %s: serial %s, NEW key 3 1 1 %s", w.c.Name, newKeyFlags[w.c.Name], fresh.Serial, fresh.Digest)
	w.waitRecords(old.Record, fresh.Record)
	w.say("   dane-deploy published %s TLSA %s", w.owner(), fresh.Record)
	w.say("   beside the old %s; both servers serve both", short(old.Record.String()))
	if got := w.served(); got.Digest != old.Digest {
		t.Fatalf("right after the new-key renewal Postfix serves key %s; want the old key %s until the new record is aged", short(got.Digest), short(old.Digest))
	}
	w.say("   Postfix still serves the old key 3 1 1 %s (the new record is not aged yet)", old.Digest)
	w.verifyLive()
	st := w.danectl("status")
	if st.code == 0 || !strings.Contains(st.out, "PENDING SWITCH to key 3 1 1 "+fresh.Digest) {
		t.Fatalf("want a pending switch to %s and a non-zero exit; got %v", short(fresh.Digest), st)
	}
	w.say("   danectl status at this moment (exit %d):\n%s", st.code, indent(st.out, "     | "))

	ticks := w.tickUntilServed(fresh, w.switchWait())
	switched := time.Now()
	w.explainSafe(fresh.Record)
	w.say("   danectl tick (%d runs, one a second) switched at %s: Postfix now serves the new key 3 1 1 %s", ticks, clock(switched), fresh.Digest)
	w.waitRecords(fresh.Record)
	w.say("   and removed the old record %s from both servers", old.Record)
	w.checkServedChain()
	w.verifyLive()
	w.say("   verified: the live chain matches the RRset at both servers (pkg/postfix and openssl s_client -dane_tlsa_rrdata)")
	if st := w.danectl("status"); st.code != 0 {
		t.Errorf("danectl status after the switch: want exit 0; got %v", st)
	}
	if s != nil {
		n := s.finish(t, old, fresh)
		w.say("   invariant sampler: %d STARTTLS handshakes every 300 ms during the rotation; each presented key matched a record served by both servers", n)
	}
}

// secondaryLagging: with zone transfers blocked, the new record reaches only
// the primary; the switch waits well past 2 × TTL and `danectl status`
// names the secondary; once transfers resume, tick completes the switch no
// earlier than 2 × TTL after the secondary was first seen serving it.
func (w *world) secondaryLagging() {
	t := w.t
	old := w.served()
	w.bind.BlockTransfers(t)
	w.client(w.renewArgs(true)...)
	fresh := w.current()
	renewed := time.Now()
	if got := w.records(w.bind.Primary); !has(got, fresh.Record) {
		t.Fatalf("primary does not serve the new record %s: %q", short(fresh.Digest), got)
	}
	if got := w.records(w.bind.Secondary); has(got, fresh.Record) || !has(got, old.Record) {
		t.Fatalf("secondary with transfers blocked serves %q; want the old record only", got)
	}
	// Well past 2 × TTL: the record would be aged if only the primary counted.
	for time.Since(renewed) < time.Duration(2*w.bind.TTL+2)*time.Second {
		if r := w.danectl("tick"); r.code != 0 {
			t.Fatalf("%v", r)
		}
		if got := w.served(); got.Digest != old.Digest {
			t.Fatalf("Postfix switched to %s while the secondary does not serve its record", short(got.Digest))
		}
		time.Sleep(time.Second)
	}
	st := w.danectl("status")
	if st.code == 0 || !strings.Contains(st.out, "127.0.0.2") || !strings.Contains(st.out, "PENDING SWITCH") {
		t.Fatalf("danectl status with a lagging secondary: want a non-zero exit naming 127.0.0.2; got %v", st)
	}
	t.Logf("danectl status while the secondary lags:\n%s", st.out)

	w.bind.UnblockTransfers(t)
	unblocked := time.Now()
	w.bind.WaitSerial(t, w.bind.Secondary, zone, w.serial(), 10*time.Second)
	w.tickUntilServed(fresh, w.switchWait())
	if seen, ok := w.dnsState().Seen.FirstSeen(w.owner(), fresh.Record, w.bind.Secondary); !ok {
		t.Errorf("no first-seen time of %s at the secondary in the state", short(fresh.Digest))
	} else if installed := w.lineageState().Installed; installed.Before(seen.Add(time.Duration(2*w.bind.TTL) * time.Second)) {
		t.Errorf("switched at %s, earlier than 2 x TTL after the secondary was first seen serving the record (%s)", clock(installed), clock(seen))
	} else if seen.Before(unblocked) {
		t.Errorf("secondary first seen serving the record at %s, before transfers were unblocked at %s", clock(seen), clock(unblocked))
	}
	w.waitRecords(fresh.Record)
	w.verifyLive()
}

// updateRefused: the provider's key may not change the owner, so the UPDATE
// of a new-key renewal is REFUSED: the hook exits 4, Postfix keeps the old
// chain (which still matches both servers) and no record changed. With the
// right key the next dane-deploy run repairs everything.
func (w *world) updateRefused() {
	t := w.t
	old := w.served()
	serial := w.serial()
	w.writeConfig(w.bind.Keys[narrowKey].File)
	r := w.exec(nil, w.tool, w.renewArgs(true)...)
	t.Logf("%s with a refused UPDATE: exit %d; it reported:\n%s", w.c.Name, r.code, lines(r.out, "error", "hint:"))
	if !strings.Contains(r.out, "REFUSED") {
		t.Errorf("client output does not report the hook's REFUSED error:\n%s", r.out)
	}
	fresh := w.current()
	hook := w.exec(w.env(w.hookEnv()...), bin("dane-deploy"))
	if hook.code != 4 {
		t.Errorf("dane-deploy with a refused UPDATE: want exit 4 (refused); got %v", hook)
	}
	if got := w.served(); got.Digest != old.Digest {
		t.Fatalf("after a refused UPDATE Postfix serves %s; want the old key %s", short(got.Digest), short(old.Digest))
	}
	w.verifyLive()
	w.waitRecords(old.Record)
	if got := w.serial(); got != serial {
		t.Errorf("refused UPDATE: primary serial %d, want unchanged %d", got, serial)
	}

	w.writeConfig(w.bind.KeyFile)
	if r := w.exec(w.env(w.hookEnv()...), bin("dane-deploy")); r.code != 0 {
		t.Fatalf("dane-deploy with the right key: %v", r)
	}
	w.waitRecords(old.Record, fresh.Record)
	w.tickUntilServed(fresh, w.switchWait())
	w.waitRecords(fresh.Record)
	w.verifyLive()
}

// postfixBroken: a new key is pending and aged when main.cf breaks. The
// next renewal's hook (lego v4 dane-deploy, which also reloads) installs
// the chain, but `postfix check` fails: the hook exits 8, as do dane-reload
// and danectl tick, Postfix is not reloaded, no record is deleted and the
// chain Postfix serves matches both servers. Once main.cf is repaired, tick
// completes the switch and removes the old record.
//
// main.cf is repaired before the served chain is checked: with a broken
// main.cf every smtpd the master starts for a new connection dies, and the
// master then starts none for service_throttle_time (60 s), reload or not.
// That is Postfix's own behaviour, which no hook can change; what this test
// checks is that danehook's failed step left a good chain and good records.
func (w *world) postfixBroken() {
	t := w.t
	old := w.served()
	w.client(w.renewArgs(true)...)
	fresh := w.current()
	w.waitRecords(old.Record, fresh.Record)
	deadline := time.Now().Add(switchTimeout)
	for {
		st := w.danectl("status")
		if strings.Contains(st.out, fresh.Digest+" (owned): aged") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new record did not age: %v", st)
		}
		time.Sleep(500 * time.Millisecond)
	}

	mainCF := w.pf.ConfigDir + "/main.cf"
	good, err := os.ReadFile(mainCF)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mainCF, append(bytes.Clone(good), "this line is not a parameter setting\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	serial, reloads := w.serial(), w.reloads()
	r := w.exec(nil, w.tool, w.renewArgs(false)...)
	t.Logf("%s renewal with a broken main.cf: exit %d; it reported:\n%s", w.c.Name, r.code, lines(r.out, "error", "hint:"))
	if !strings.Contains(r.out, "postfix check failed") && !strings.Contains(r.out, "read what Postfix serves") {
		t.Errorf("client output does not report the hook's postfix check failure:\n%s", r.out)
	}
	for _, cmd := range [][]string{{bin("dane-deploy")}, {bin("dane-reload")}, {bin("danectl"), "tick"}} {
		if r := w.exec(w.env(w.hookEnv()...), cmd[0], cmd[1:]...); r.code != 8 {
			t.Errorf("with a broken main.cf: want exit 8 (Postfix failure); got %v", r)
		}
	}
	if err := os.WriteFile(mainCF, good, 0o644); err != nil {
		t.Fatal(err)
	}

	if got := w.reloads(); got != reloads {
		t.Errorf("Postfix was reloaded %d time(s) while main.cf was broken", got-reloads)
	}
	// Both records are aged: Postfix may serve the old chain (the running
	// smtpd) or the installed one (an smtpd started since); both match.
	if got := w.served(); got.Digest != old.Digest && got.Digest != fresh.Digest {
		t.Fatalf("Postfix serves key %s; want the old %s or the new %s", short(got.Digest), short(old.Digest), short(fresh.Digest))
	}
	w.verifyLive()
	w.waitRecords(old.Record, fresh.Record)
	if got := w.serial(); got != serial {
		t.Errorf("DNS changed while Postfix could not be reloaded: serial %d, want %d", got, serial)
	}

	if r := w.danectl("tick"); r.code != 0 {
		t.Fatalf("tick after repairing main.cf: %v", r)
	}
	w.waitServed(w.current())
	w.waitRecords(fresh.Record)
	w.verifyLive()
}

// reuseKeyLost: the certbot lineage's renewal configuration lost
// reuse_key (issued without --reuse-key, or edited by hand). certbot reads
// the file before its pre hook repairs it, so this renewal makes a new key
// anyway: danehook notices by SPKI and makes it a pending switch. certbot
// then writes the file back without reuse_key; dane-deploy, which runs
// after that, repairs it again, so the next renewal keeps the key.
func (w *world) reuseKeyLost() {
	t := w.t
	conf := filepath.Join(w.certbotDir(), "renewal", "mail.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "reuse_key") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(conf, []byte(strings.Join(kept, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	old := w.served()
	r := w.client(w.renewArgs(false)...)
	k1 := w.current()
	if k1.Digest == old.Digest {
		t.Fatalf("certbot kept key %s without reuse_key; want a new key (certbot reads reuse_key before its pre hook runs)", short(old.Digest))
	}
	if ok, err := certbot.ReuseKey(conf); err != nil || !ok {
		t.Fatalf("after the renewal %s has reuse_key %v (%v); want True, repaired by dane-deploy after certbot rewrote the file:\n%s", conf, ok, err, r.out)
	}
	if got := w.served(); got.Digest != old.Digest {
		t.Fatalf("Postfix switched to the unexpected new key %s at once; want a pending switch", short(got.Digest))
	}
	w.waitRecords(old.Record, k1.Record)

	w.client(w.renewArgs(false)...)
	k2 := w.current()
	if k2.Digest != k1.Digest {
		t.Fatalf("the renewal after the repair made key %s; want the key %s kept", short(k2.Digest), short(k1.Digest))
	}
	w.tickUntilServed(k2, switchTimeout)
	w.waitServed(k2)
	w.waitRecords(k2.Record)
	w.verifyLive()
}

// checkServedChain checks that Postfix presents the client's current leaf
// followed by its issuer.
func (w *world) checkServedChain() {
	w.t.Helper()
	chain, _, err := handshake(w.t, w.pf.Addr)
	if err != nil {
		w.t.Fatal(err)
	}
	cur := w.current()
	if got := certOf(chain[0]); got.Serial != cur.Serial {
		w.t.Fatalf("Postfix presents leaf serial %s; want the client's current %s", got.Serial, cur.Serial)
	}
	_, _, issuerFile := w.files()
	b, err := os.ReadFile(issuerFile)
	if err != nil {
		w.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		w.t.Fatalf("%s: no certificate", issuerFile)
	}
	issuer, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(chain) < 2 || !chain[1].Equal(issuer) {
		w.t.Fatalf("Postfix presents %d certificates; want the leaf then the issuer from %s", len(chain), issuerFile)
	}
}

// reloads counts the master's "reload" lines in the maillog.
func (w *world) reloads() int {
	b, err := os.ReadFile(w.pf.Maillog)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "reload -- version")
}

// explainSafe tells when the switch to rec became safe and why, from the
// first-seen times danehook recorded.
func (w *world) explainSafe(rec tlsa.Record) {
	seen := w.dnsState().Seen
	var last time.Time
	var lastServer string
	var parts []string
	for _, s := range w.servers() {
		at, ok := seen.FirstSeen(w.owner(), rec, s)
		if !ok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s at %s", s, clock(at)))
		if !at.Before(last) {
			last, lastServer = at, s
		}
	}
	if last.IsZero() {
		return
	}
	ttl := time.Duration(w.bind.TTL) * time.Second
	w.say("   first seen serving the new record: %s", strings.Join(parts, ", "))
	w.say("   safe to switch at %s = when the last server (%s) was first seen + 2 x TTL (%v): until then a resolver may still hold the old RRset (RFC 7671 §8.1)",
		clock(last.Add(2*ttl)), lastServer, ttl)
}

// say writes one line of the walkthrough narrative.
func (w *world) say(format string, args ...any) {
	fmt.Fprintf(w.story, format+"\n", args...)
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// lines returns the lines of s that contain any of words.
func lines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// dehydratedKeyRenew: the per-certificate configuration asks for a new key
// at every renewal (PRIVATE_KEY_RENEW="yes", dehydrated's default);
// `dane-prerenew --check` exits 1 naming the file. The next
// `dehydrated --cron --force` keeps the key anyway: danehook's startup_hook
// repairs the file, which dehydrated reads after that hook. The operator's
// own hook saw every handler danehook acted on.
func (w *world) dehydratedKeyRenew() {
	t := w.t
	cc := filepath.Join(w.dehydratedCert(), "config")
	if err := os.WriteFile(cc, []byte("PRIVATE_KEY_RENEW=\"yes\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	chk := w.exec(nil, bin("dane-prerenew"), "--check")
	if chk.code != 1 || !strings.Contains(chk.out, cc) || !strings.Contains(chk.out, "PRIVATE_KEY_RENEW") {
		t.Fatalf("dane-prerenew --check with PRIVATE_KEY_RENEW=\"yes\": want exit 1 naming %s; got %v", cc, chk)
	}
	before := w.current()
	serial := w.serial()
	if err := os.WriteFile(w.dehydratedHookLog(), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.client(w.renewArgs(false)...)
	after := w.current()
	if after.Digest != before.Digest || after.Serial == before.Serial {
		t.Fatalf("dehydrated renewal: serial %s key %s; want a new serial and the key %s kept", after.Serial, short(after.Digest), short(before.Digest))
	}
	if b, _ := os.ReadFile(cc); !strings.Contains(string(b), `PRIVATE_KEY_RENEW="no"`) || strings.Contains(string(b), `"yes"`) {
		t.Errorf("%s after the renewal:\n%s\nwant PRIVATE_KEY_RENEW=\"no\" only", cc, b)
	}
	if got := w.serial(); got != serial {
		t.Errorf("same-key renewal changed DNS: serial %d, want %d", got, serial)
	}
	w.waitServed(after)
	w.waitRecords(after.Record)
	w.verifyLive()
	log, _ := os.ReadFile(w.dehydratedHookLog())
	for _, h := range []string{"startup_hook", "deploy_cert " + host, "exit_hook"} {
		if !strings.Contains(string(log), h) {
			t.Errorf("the operator's chained hook did not run %q; its log:\n%s", h, log)
		}
	}
	if chk := w.exec(nil, bin("dane-prerenew"), "--check"); chk.code != 0 {
		t.Errorf("dane-prerenew --check after the repair: %v", chk)
	}
}
