package chaos

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/tlsa"
)

// convergeTimeout bounds the ticks after the faults cleared: records age
// in 2 × the largest TTL at the owner (foreign records have up to 10 s).
const convergeTimeout = 90 * time.Second

// failure is one broken promise found by a sequence.
type failure struct {
	Step  int    // 0: setup, len(ops)+1: convergence
	Op    string // the operation that ran last
	Class string // "judge" (a sender failed), "converge" (the state did not converge)
	Text  string
}

func (f failure) String() string {
	return fmt.Sprintf("%s failure after step %d (%s): %s", f.Class, f.Step, f.Op, f.Text)
}

// outcome is what one sequence found.
type outcome struct {
	Seed     uint64        `json:"seed"`
	Client   string        `json:"client"`
	Start    string        `json:"start"`
	Steps    int           `json:"steps"`
	Samples  int           `json:"judge_samples"`
	Checks   int           `json:"judge_checks"`
	Failures []failure     `json:"failures"`
	Took     time.Duration `json:"took_ns"`
	Plan     string        `json:"plan"`
	Timeline string        `json:"-"`
}

func (o outcome) line() string {
	status := "PASS"
	if len(o.Failures) > 0 {
		status = "FAIL"
	}
	s := fmt.Sprintf("chaos: seed %d (%s, %s): %s, %d steps, %d judge samples + %d checks, %d failures, %.1f s",
		o.Seed, o.Client, o.Start, status, o.Steps, o.Samples, o.Checks, len(o.Failures), o.Took.Seconds())
	if len(o.Failures) > 0 {
		s += "; first: " + o.Failures[0].String()
	}
	return s
}

// sequence runs one plan in its own lab.
type sequence struct {
	w        *world
	p        plan
	step     int
	last     string
	failures []failure
	checks   int
	// faults that are on
	stopped, blocked bool
	pendingChain     string
	moves            int
}

func (s *sequence) fail(class, format string, args ...any) {
	f := failure{Step: s.step, Op: s.last, Class: class, Text: fmt.Sprintf(format, args...)}
	s.failures = append(s.failures, f)
	s.w.logf("!!! %s", f)
}

// run runs the plan: setup, every operation with a judge check after it,
// then the convergence check, all while the judge samples.
func runPlan(w *world, p plan) outcome {
	start := time.Now()
	s := &sequence{w: w, p: p, last: "setup"}
	ctx := w.t.Context()
	var targets []target
	for _, h := range allHosts {
		targets = append(targets, target{Host: h, Port: w.pf.Port, Alg: algDefault})
	}
	smp := w.judge.startSampler(ctx, targets, 500*time.Millisecond, w.servers(), w.owners())
	w.logf("=== %s", strings.TrimSpace(p.String()))
	s.setup()
	s.checkJudge(algECDSA)
	for i, o := range p.Ops {
		s.step, s.last = i+1, o.String()
		w.logf("--- step %d: %s", s.step, o)
		s.apply(o)
		s.checkJudge(algECDSA)
	}
	s.step, s.last = len(p.Ops)+1, "convergence"
	s.converge()
	samples, fails, timeline := smp.stop()
	for _, v := range fails {
		s.failures = append(s.failures, failure{Step: s.stepAt(v.At), Op: "sampler", Class: "judge", Text: v.Text})
	}
	sort.SliceStable(s.failures, func(a, b int) bool { return s.failures[a].Step < s.failures[b].Step })
	return outcome{
		Seed: p.Seed, Client: p.Client, Start: p.Start, Steps: len(p.Ops), Samples: samples, Checks: s.checks,
		Failures: s.failures, Took: time.Since(start), Plan: p.String(), Timeline: mergeTimelines(w.log.String(), timeline),
	}
}

// stepAt finds the step that was running at instant at from the log.
func (s *sequence) stepAt(at time.Time) int {
	step := 0
	for _, l := range strings.Split(s.w.log.String(), "\n") {
		var n int
		if len(l) < 13 {
			continue
		}
		ts, err := time.ParseInLocation("15:04:05.000", l[:12], time.Local)
		if err != nil {
			continue
		}
		ts = time.Date(at.Year(), at.Month(), at.Day(), ts.Hour(), ts.Minute(), ts.Second(), ts.Nanosecond(), time.Local)
		if ts.After(at) {
			break
		}
		if _, err := fmt.Sscanf(l[13:], "--- step %d:", &n); err == nil {
			step = n
		}
		if strings.HasPrefix(l[13:], "--- convergence") {
			step = len(s.p.Ops) + 1
		}
	}
	return step
}

// mergeTimelines interleaves two logs whose lines start with "15:04:05.000".
func mergeTimelines(a, b string) string {
	var lines []string
	for _, l := range append(strings.Split(a, "\n"), strings.Split(b, "\n")...) {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	// A stable sort on the time prefix keeps continuation lines (which have
	// no prefix) after their line only within one log: give them the time
	// of the line before.
	type tl struct{ at, text string }
	var ts []tl
	cur := ""
	for _, l := range lines {
		if len(l) >= 12 && l[2] == ':' && l[5] == ':' && l[8] == '.' {
			cur = l[:12]
		}
		ts = append(ts, tl{cur, l})
	}
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].at < ts[j].at })
	var out strings.Builder
	for _, t := range ts {
		out.WriteString(t.text + "\n")
	}
	return out.String()
}

// setup brings the lab to the plan's start.
func (s *sequence) setup() {
	w := s.w
	if s.p.Start == "fresh" {
		w.logf("--- setup: first issuance with the hooks (Postfix serves a self-signed chain)")
		if r := w.exec(nil, 0, w.tool, w.clientArgs(true, true, false)...); r.code != 0 {
			w.t.Fatalf("first issuance: %v", r)
		}
		return
	}
	// adopt: the lineage exists and Postfix serves it, pinned by a
	// hand-made record, before danehook is installed.
	w.logf("--- setup: %s: issue without hooks, install by hand, publish a hand-made record", s.p.Start)
	if r := w.exec(nil, 0, w.tool, w.clientArgs(true, false, false)...); r.code != 0 {
		w.t.Fatalf("first issuance: %v", r)
	}
	cert, key, issuer := w.files()
	kb, err := os.ReadFile(key)
	if err != nil {
		w.t.Fatal(err)
	}
	var certs []byte
	for _, f := range []string{cert, issuer} {
		b, err := os.ReadFile(f)
		if err != nil {
			w.t.Fatal(err)
		}
		certs = append(certs, b...)
		if w.client == "lego" {
			break // lego's .crt is the bundle: leaf then issuer
		}
	}
	postfixlab.WriteChain(w.t, w.pfChain, kb, certs)
	w.exec(nil, 0, "postfix", "-c", w.pf.ConfigDir, "reload")
	cur, _ := w.current()
	var rec string
	if s.p.Start == "adopt-3-0-1" {
		sum := sha256.Sum256(cur.X509.Raw)
		rec = "3 0 1 " + hex.EncodeToString(sum[:])
	} else {
		rec = "3 1 1 " + cur.SPKI
	}
	s.nsupdate(w.owner(mailHost), 8, rec)
	// Senders have this RRset in their caches: wait until the judge's
	// resolver holds it and verifies with it.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v := w.judge.check(w.t.Context(), mailHost, w.pf.Port, algECDSA)
		s.checks++
		if v.Verified {
			w.logf("    judge %s", v.Text)
			break
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the judge does not verify the hand-made record %s: %s", rec, v.Text)
		}
	}
}

// nsupdate adds a foreign record at owner.
func (s *sequence) nsupdate(owner string, ttl int, rec string) {
	w := s.w
	if _, err := w.bind.NsupdateKey(w.bind.KeyFile, fmt.Sprintf("update add %s %d IN TLSA %s\n", owner, ttl, rec)); err != nil {
		w.t.Fatalf("nsupdate: %v", err)
	}
	w.foreign = append(w.foreign, owner+" "+normRecord(rec))
	w.logf("    nsupdate: added %s %d TLSA %s", owner, ttl, rec)
}

// normRecord is a record's presentation as tlsa.Record.String gives it.
func normRecord(rec string) string {
	r, err := tlsa.Parse(rec)
	if err != nil {
		return strings.ToLower(rec)
	}
	return r.String()
}

// apply runs one operation.
func (s *sequence) apply(o op) {
	w := s.w
	t := w.t
	switch o.Kind {
	case kRenew:
		s.renew(true, false)
	case kRenewNewKey:
		s.renew(true, true)
	case kRenewNoHooks:
		s.renew(false, o.NewKey)
	case kRotateStage:
		w.danectl("rotate", "stage", w.lineage())
	case kRotateCommit:
		w.danectl("rotate", "commit", w.lineage())
	case kRotateAbort:
		w.danectl("rotate", "abort", w.lineage())
	case kTTL:
		w.set.ttl = o.N
		w.writeConfig()
	case kTAAdd, kTARemove:
		w.set.ta = o.Kind == kTAAdd
		w.writeConfig()
	case kHostAdd:
		w.set.hosts = []string{mailHost, mx2Host}
		w.writeConfig()
	case kHostRemove:
		w.set.hosts = []string{mailHost}
		w.writeConfig()
	case kChainMove:
		s.moveChain(o.N == 1)
	case kChainConfig:
		if s.pendingChain != "" {
			w.set.chain, s.pendingChain = s.pendingChain, ""
			w.writeConfig()
		}
	case kForeign301:
		chain, err := w.served(t.Context())
		if err != nil {
			s.fail("judge", "STARTTLS: %v", err)
			return
		}
		sum := sha256.Sum256(chain[0].Raw)
		s.nsupdate(w.owner(mailHost), o.N, "3 0 1 "+hex.EncodeToString(sum[:]))
	case kForeign311:
		b := make([]byte, 32)
		rand.Read(b)
		s.nsupdate(w.owner(mailHost), o.N, "3 1 1 "+hex.EncodeToString(b))
	case kForeign211:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(k.Public())
		sum := sha256.Sum256(der)
		s.nsupdate(w.owner(mailHost), o.N, "2 1 1 "+hex.EncodeToString(sum[:]))
	case kSecondaryStop:
		w.bind.StopSecondary(t)
		s.stopped = true
	case kSecondaryUp:
		w.bind.StartSecondary(t)
		s.stopped = false
	case kBlock:
		w.bind.BlockTransfers(t)
		s.blocked = true
	case kUnblock:
		w.bind.UnblockTransfers(t)
		s.blocked = false
	case kRefused:
		w.set.narrow = true
		w.writeConfig()
		s.apply(op{Kind: o.Inner})
		w.set.narrow = false
		w.writeConfig()
	case kKill:
		delay := time.Duration(o.N)*time.Millisecond + time.Millisecond
		switch o.Inner {
		case "danectl tick":
			w.exec(nil, delay, bin("danectl"), "tick")
		case "dane-reload":
			w.exec(nil, delay, bin("dane-reload"))
		case "dane-deploy":
			s.renew(false, o.NewKey)
			w.exec(w.hookEnv(), delay, bin("dane-deploy"))
		}
	case kPostfixBroken:
		master := filepath.Join(w.pf.ConfigDir, "master.cf")
		good, err := os.ReadFile(master)
		if err != nil {
			t.Fatal(err)
		}
		// `postfix check` fails (bad field count) while the running master
		// and its smtpd keep serving: only a reload would read it.
		if err := os.WriteFile(master, append(slices.Clone(good), "chaos broken line\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		s.apply(op{Kind: o.Inner})
		if err := os.WriteFile(master, good, 0o644); err != nil {
			t.Fatal(err)
		}
		w.logf("    master.cf repaired")
	case kRotateEvery:
		w.set.rotateEv = ""
		if o.N == 1 {
			w.set.rotateEv = "20s"
		}
		w.writeConfig()
	case kTick:
		w.danectl("tick")
	case kWait:
		time.Sleep(time.Duration(o.N) * time.Millisecond)
	default:
		t.Fatalf("unknown operation %q", o.Kind)
	}
}

// renew runs a forced renewal and checks that the client renewed: a new
// leaf serial, and a new key exactly when asked for one unless a committed
// rotation handed the client the staged key. A renewal that did not happen
// fails the test: the sequence would not test what it says.
func (s *sequence) renew(hooks, newKey bool) {
	w := s.w
	before, _ := w.current()
	r := w.exec(nil, 0, w.tool, w.clientArgs(false, hooks, newKey)...)
	after, ok := w.current()
	if !ok || after.Serial == before.Serial {
		w.t.Fatalf("the renewal did not renew (leaf serial %s before and after):\n%v", short(before.Serial), r)
	}
	if newKey && after.SPKI == before.SPKI {
		w.t.Fatalf("the new-key renewal kept key %s:\n%v", short(before.SPKI), r)
	}
	w.logf("    renewed: leaf serial %s key %s (was serial %s key %s)", short(after.Serial), short(after.SPKI), short(before.Serial), short(before.SPKI))
}

// moveChain copies the chain file Postfix reads to a new path, points
// main.cf at it, reloads Postfix and removes the old file, as an operator
// moving files does; danehook's chain_file follows at once or later.
func (s *sequence) moveChain(configNow bool) {
	w := s.w
	s.moves++
	dst := filepath.Join(w.pf.Dir, "tls", fmt.Sprintf("moved-%d-ecdsa.pem", s.moves))
	b, err := os.ReadFile(w.pfChain)
	if err != nil {
		w.t.Fatal(err)
	}
	postfixlab.WriteChain(w.t, dst, nil, b)
	w.exec(nil, 0, "postconf", "-c", w.pf.ConfigDir, "-e", "smtpd_tls_chain_files = "+dst)
	w.exec(nil, 0, "postfix", "-c", w.pf.ConfigDir, "reload")
	time.Sleep(time.Second) // the reload is asynchronous; new smtpd read dst
	old := w.pfChain
	w.pfChain = dst
	if err := os.Remove(old); err != nil {
		w.t.Fatal(err)
	}
	w.logf("    moved %s to %s (main.cf and reload)", old, dst)
	if configNow {
		w.set.chain = dst
		w.writeConfig()
	} else {
		s.pendingChain = dst
	}
}

// checkJudge asks the judge about every host with alg and records every
// failure while a TLSA RRset exists.
func (s *sequence) checkJudge(algs ...algorithm) {
	for _, h := range allHosts {
		for _, a := range algs {
			v := s.w.judge.check(s.w.t.Context(), h, s.w.pf.Port, a)
			s.checks++
			s.w.logf("    judge %s", v.Text)
			if v.failed() {
				s.fail("judge", "%s [%s]", v.Text, s.diagnose(h))
			}
		}
	}
}

// diagnose says, after a failed judge run for host, whether the
// authoritative servers serve a record that matches the chain Postfix
// presents now: if they do, the resolver still holds an older RRset (the
// chain was switched to before a matching record was aged: a TTL or
// adoption failure); if they do not, no sender can verify (a needed
// record was removed or never published, or the chain is not the one
// danehook installed).
func (s *sequence) diagnose(host string) string {
	w := s.w
	ctx, cancel := context.WithTimeout(w.t.Context(), 10*time.Second)
	defer cancel()
	chain, err := w.served(ctx)
	if err != nil {
		return "STARTTLS: " + err.Error()
	}
	var parts []string
	all, reachable := true, 0
	for _, srv := range w.servers() {
		recs, ttl, err := w.records(ctx, srv, w.owner(host))
		if err != nil {
			parts = append(parts, err.Error()) // a stopped secondary: judge by the others
			continue
		}
		reachable++
		ok := len(recs) > 0 && tlsa.Match(chain, recs).OK()
		all = all && ok
		parts = append(parts, fmt.Sprintf("%s serves %d records at TTL %d, matching the presented chain: %v", srv, len(recs), ttl, ok))
	}
	class := "UNPINNED: no authoritative server serves a record that matches the presented chain"
	if all && reachable > 0 {
		class = "UNAGED: the servers serve a matching record, the resolver's cached RRset has none (switched before a matching record was aged)"
	}
	return class + "; " + strings.Join(parts, "; ")
}

// converge clears the faults that are still on, runs `danectl tick` once a
// second until the state converged (bounded by convergeTimeout) and checks
// it: Postfix serves the lineage's newest chain, both servers serve the
// same RRsets, every record not added by the runner matches the served
// chain or the staged next key, no record is left at an owner that is no
// longer configured, and the judge verifies.
func (s *sequence) converge() {
	w := s.w
	t := w.t
	w.logf("--- convergence: clear faults, tick until converged (at most %v)", convergeTimeout)
	if s.stopped {
		w.bind.StartSecondary(t)
		s.stopped = false
	}
	if s.blocked {
		w.bind.UnblockTransfers(t)
		s.blocked = false
	}
	if s.pendingChain != "" {
		s.apply(op{Kind: kChainConfig})
	}
	if w.set.narrow {
		w.set.narrow = false
		w.writeConfig()
	}
	w.bind.WaitSerial(t, w.bind.Secondary, zone, w.bind.Serial(t, w.bind.Primary, zone), 20*time.Second)
	deadline := time.Now().Add(convergeTimeout)
	var why []string
	ticks := 0
	for {
		w.danectl("tick")
		ticks++
		why = s.unconverged()
		if len(why) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(why) > 0 {
		// What danehook itself says, for the timeline.
		r := w.danectl("tick")
		w.logf("    last tick (exit %d):\n%s", r.code, r.out)
		st := w.danectl("status")
		w.logf("    danectl status (exit %d):\n%s", st.code, st.stdout+st.out)
		if b, err := os.ReadFile(filepath.Join(w.state, "dns.json")); err == nil {
			w.logf("    %s:\n%s", filepath.Join(w.state, "dns.json"), b)
		}
		s.fail("converge", "not converged after %d ticks in %v: %s", ticks, convergeTimeout, strings.Join(why, "; "))
	} else {
		w.logf("    converged after %d ticks", ticks)
	}
	s.checkJudge(algECDSA, algDefault)
}

// unconverged returns why the state has not converged ("" when it has).
func (s *sequence) unconverged() []string {
	w := s.w
	ctx, cancel := context.WithTimeout(w.t.Context(), 20*time.Second)
	defer cancel()
	var why []string
	chain, err := w.served(ctx)
	if err != nil {
		return []string{"STARTTLS: " + err.Error()}
	}
	cur, ok := w.current()
	var newest []*x509.Certificate // the lineage's newest chain: leaf and issuer
	if !ok {
		why = append(why, "the client holds no certificate")
	} else {
		newest = []*x509.Certificate{cur.X509, w.issuer()}
	}
	if got := certOf(chain[0]); ok && got.Serial != cur.Serial {
		why = append(why, fmt.Sprintf("Postfix serves leaf serial %s key %s; the lineage's newest is serial %s key %s",
			short(got.Serial), short(got.SPKI), short(cur.Serial), short(cur.SPKI)))
	}
	staged := s.stagedSPKI()
	for _, h := range allHosts {
		owner := w.owner(h)
		configured := slices.Contains(w.set.hosts, h)
		var sets [][]string
		matched := false
		for _, srv := range w.servers() {
			recs, _, err := w.records(ctx, srv, owner)
			if err != nil {
				why = append(why, err.Error())
				continue
			}
			sets = append(sets, present(recs))
			for _, r := range recs {
				foreign := slices.Contains(w.foreign, owner+" "+r.String())
				ok := tlsa.Match(chain, []tlsa.Record{r}).OK()
				matched = matched || ok
				// The newest chain's record is needed while it is pending.
				ok = ok || (newest != nil && tlsa.Match(newest, []tlsa.Record{r}).OK())
				isStaged := r.Usage == 3 && r.Selector == 1 && r.MatchingType == 1 && hex.EncodeToString(r.Data) == staged
				switch {
				case foreign:
				case !configured:
					why = append(why, fmt.Sprintf("%s at %s: %s left at an owner that is no longer configured", owner, srv, r))
				case !ok && !isStaged:
					why = append(why, fmt.Sprintf("%s at %s: %s matches no chain (not the served one, not the lineage's newest, not a staged key)", owner, srv, r))
				}
			}
		}
		if len(sets) == 2 && !slices.Equal(sets[0], sets[1]) {
			why = append(why, fmt.Sprintf("%s: the servers disagree: %q vs %q", owner, sets[0], sets[1]))
		}
		if configured && !matched {
			why = append(why, fmt.Sprintf("%s: no record matches the served chain", owner))
		}
	}
	return why
}

// stagedSPKI returns the staged next key's 3 1 1 data from `danectl rotate
// status --json`, "" when none is staged.
func (s *sequence) stagedSPKI() string {
	r := s.w.danectl("rotate", "status", "--json", s.w.lineage())
	var rs []struct {
		Next *struct {
			SPKI string `json:"spki"`
		} `json:"next"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil {
		return ""
	}
	for _, x := range rs {
		if x.Next != nil {
			return strings.ToLower(x.Next.SPKI)
		}
	}
	return ""
}
