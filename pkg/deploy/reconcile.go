package deploy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// This file holds the steps the binaries run, each one locked run of
// observe (snapshot.go) → decide (decide.go) → act → save once.

// DeployResult reports what Deploy did for one renewed certificate.
type DeployResult struct {
	Lineage string
	Client  hookenv.Client
	// SPKI is the 3 1 1 data of the renewed certificate's key.
	SPKI string
	// KeyChanged is true when the key differs from the installed chain's.
	KeyChanged bool
	// Plans are the DNS changes made.
	Plans []*OwnerPlan
	// Installed is true when the chain file was written: the switch was
	// safe (DESIGN §2).
	Installed bool
	// Reason says why the chain was installed or left pending.
	Reason string
	// Pending is set when the switch waits for records to age.
	Pending *Pending
	// Pinned is the ACME client's configuration that Deploy repaired so
	// that the next renewal keeps the key: certbot's renewal configuration
	// set to reuse_key = True, acme.sh's domain configuration cleared of
	// Le_ForceNewDomainKey, dehydrated's per-certificate configuration set
	// to PRIVATE_KEY_RENEW="no"; "" when nothing needed repair (or the
	// client is lego).
	Pinned string
	// Notice is set when the chain file was installed for the first time
	// while Postfix serves no chain and does not read it yet: the
	// operator's next step (the postconf line). Not an error.
	Notice string
}

// FindLineage returns the configured lineage of a hook run: the one whose
// name is d.Lineage, else the one whose certbot_lineage directory or lego
// files are the ones the client named.
func (e *Engine) FindLineage(d *hookenv.Deploy) (*config.Lineage, error) {
	if l, ok := e.Config.Lineages[d.Lineage]; ok {
		return l, nil
	}
	for _, name := range e.Config.LineageNames() {
		l := e.Config.Lineages[name]
		dir := strings.TrimSuffix(dirOf(d.KeyFile), "/")
		if (l.CertbotLineage != "" && strings.TrimSuffix(l.CertbotLineage, "/") == dir) ||
			(l.LegoKey != "" && l.LegoKey == d.KeyFile) ||
			(l.DehydratedCert != "" && filepath.Clean(l.DehydratedCert) == filepath.Clean(dir)) ||
			(l.AcmeShDir != "" && filepath.Clean(l.AcmeShDir) == filepath.Clean(dir)) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%s renewed %q, which is %w in %s (configured: %s): add a [lineage.%q] table or check the certificate name",
		d.Client, d.Lineage, ErrNotConfigured, e.Config.Path, strings.Join(e.Config.LineageNames(), ", "), d.Lineage)
}

// ErrNotConfigured is wrapped by FindLineage's error: the ACME client
// renewed a certificate that no [lineage] of the configuration manages (a
// web server's certificate renewed by the same certbot). The deploy hook
// reports it and succeeds: danehook has nothing to do for it.
var ErrNotConfigured = errors.New("not a configured lineage")

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}

// Deploy is dane-deploy's step for one renewed certificate (DESIGN §4). It
// assembles the chain from the client's files (key checked against the
// leaf, issuer checked against the trust store unless allow_untrusted),
// observes DNS, the lineage's files and what Postfix reads, publishes the
// records every chain that may be served needs, and installs the newest
// chain only when it is safe to switch (it matches an aged record at every
// owner); otherwise it
// records a pending switch that Reload or tick completes. Deploy never
// removes a record. Errors leave the served chain untouched; records
// already sent stay owned.
func (e *Engine) Deploy(ctx context.Context, d *hookenv.Deploy) (*DeployResult, error) {
	l, err := e.FindLineage(d)
	if err != nil {
		return nil, err
	}
	c, err := chain.Load(d.KeyFile, append([]string{d.CertFile}, d.IssuerFiles...)...)
	if err != nil {
		return nil, fmt.Errorf("lineage %q: %w", l.Name, err)
	}
	if err := e.setTA(l, c); err != nil {
		return nil, err
	}
	if err := trusted(l, c); err != nil {
		return nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	s, err := e.observe(ctx, observeOpts{Renewal: c, RenewalOf: l.Name, Postfix: true})
	if err != nil {
		return nil, err
	}
	lv := s.lineage(l.Name)
	if lv.Err != nil {
		return nil, lv.Err
	}
	// The renewal was checked above; what the lineage's files hold and a
	// pending switch are checked here (a refusal does not block the
	// renewal, it is returned at the end).
	untrusted := joinByName(e.dropUntrusted(s))
	res := &DeployResult{Lineage: l.Name, Client: d.Client, SPKI: spkiHex(c)}
	res.KeyChanged = lv.Installed != nil && spkiHex(lv.Installed) != res.SPKI
	lv.State.KeySPKI = res.SPKI
	if err := e.requireDNSSEC(ctx, s, l.Name); err != nil {
		return res, err
	}
	next := e.candidates(s)
	want, err := e.wanted(s, next)
	if err != nil {
		return res, err
	}
	var oerr error
	res.Plans, oerr = e.addPlans(s, want, lv.Refs)
	perr := errors.Join(oerr, e.apply(ctx, s, res.Plans))
	crashpoint("deploy:published")

	cand := next[l.Name]
	dec := decideSwitch(s, lv, cand, want)
	// Postfix reads files danehook does not protect (certbot's live/
	// files, a snakeoil certificate): the records above are published
	// (harmless, and they shorten the wait once Postfix is fixed), the
	// renewal is kept as a pending switch, and nothing is installed —
	// whether the switch is safe, pending or not needed. Except a first
	// chain whose owners' first records were held (firstRecordsHeld): no
	// service of its owners reads the chain file, so installing it changes
	// nothing a sender sees, and it must exist before Postfix is pointed
	// at it (the hint: the postconf line, a reload, then danectl tick).
	ferr := e.postfixForeign(s)
	held := ferr != nil && heldFirstAt(res.Plans, lv)
	if ferr != nil && cand != nil && dec.Safe {
		ferr = switchesSafe(ferr)
	}
	if held {
		ferr = heldFirstRefusal(ferr)
	}
	switch {
	case perr != nil:
		// Nothing is installed on a failed publication; the next run repeats it.
	case held && cand != nil && lv.Installed == nil:
		if err := e.install(lv, cand); err != nil {
			return res, errors.Join(ferr, err)
		}
		crashpoint("deploy:installed")
		res.Installed, res.Reason = true, "the first chain file, which Postfix does not read yet (its first TLSA records wait for it)"
	case ferr != nil:
		res.Reason = dec.Reason
	case cand == nil:
		res.Reason = "the installed chain file already sends this chain"
	case !dec.Safe:
		if err := e.recordPending(lv, cand, dec); err != nil {
			return res, errors.Join(perr, err)
		}
		res.Pending, res.Reason = lv.State.Pending, dec.Reason
	default:
		if s.PostfixErr != nil {
			perr = fmt.Errorf("lineage %q: not installed: read what Postfix serves: %w", l.Name, s.PostfixErr)
			break
		}
		if err := e.postfixReads(s, l); err != nil {
			notice, ok := postfixNotYet(s, l, err)
			if !ok || lv.Installed != nil {
				perr = refuseFirst(lv, err)
				break
			}
			// The first chain file, while Postfix serves nothing:
			// installing it changes nothing a sender sees, and the
			// postconf line can then point Postfix at a file that exists.
			res.Notice = notice
		}
		if err := e.install(lv, cand); err != nil {
			return res, err
		}
		crashpoint("deploy:installed")
		res.Installed, res.Reason = true, dec.Reason
	}
	if (perr != nil || ferr != nil) && cand != nil && !res.Installed {
		// Keep the renewal as a pending switch, so that the next run (tick,
		// dane-reload) carries it on even when the ACME client's files are
		// not configured as the lineage's source.
		if dec.Safe {
			dec.Blocking = append(dec.Blocking, "not installed by the deploy hook: "+errors.Join(perr, ferr).Error())
		}
		if err := e.recordPending(lv, cand, dec); err != nil {
			perr = errors.Join(perr, err)
		}
		res.Pending = lv.State.Pending
	}
	perr = errors.Join(perr, untrusted)
	if err := e.save(s); err != nil {
		return res, errors.Join(perr, ferr, err)
	}
	if perr != nil {
		return res, errors.Join(perr, ferr)
	}
	// Keeping the key for the next renewal is safe work too: it runs
	// before a refusal (ferr) is returned.
	pinned, err := e.keepKey(ctx, l, d)
	if err != nil {
		return res, errors.Join(ferr, fmt.Errorf("lineage %q: keep the key for the next renewal: %w", l.Name, err))
	}
	res.Pinned = pinned
	return res, ferr
}

// keepKey repairs, after a renewal, the client setting that makes the
// next renewal keep the key (DESIGN §5), and returns the file it changed
// ("" for none).
//
// certbot and acme.sh write their configuration back after each renewal,
// before this hook, from the settings they read before their pre hook ran,
// so a repair made by dane-prerenew does not survive the renewal: certbot
// rewrites renewal/<name>.conf without reuse_key, acme.sh saves
// Le_ForceNewDomainKey again (acme.sh issue(), before _installcert). It is
// repeated here. dehydrated never writes its per-certificate configuration;
// it is checked here too, for a hook chained without startup_hook.
func (e *Engine) keepKey(ctx context.Context, l *config.Lineage, d *hookenv.Deploy) (string, error) {
	switch d.Client {
	case hookenv.Certbot:
		conf := certbot.RenewalConf(dirOf(d.KeyFile))
		if _, err := os.Stat(conf); err != nil {
			return "", nil
		}
		changed, err := certbot.EnsureReuseKey(conf)
		if err != nil || !changed {
			return "", err
		}
		return conf, nil
	case hookenv.AcmeSh:
		conf := acmesh.LayoutOf(dirOf(d.KeyFile)).Conf
		if _, err := os.Stat(conf); err != nil {
			return "", nil
		}
		changed, err := acmesh.EnsureKeyKept(conf)
		if err != nil || !changed {
			return "", err
		}
		return conf, nil
	case hookenv.Dehydrated:
		s, changed, err := dehydrated.EnsureKeyKept(ctx, dehydrated.MainConfig(l.DehydratedConfig), dirOf(d.KeyFile))
		if err != nil || !changed {
			return "", err
		}
		return s.CertConfig, nil
	}
	return "", nil
}

// candidates returns the chain each lineage should serve next (candidate),
// by lineage name; lineages already serving the newest chain are absent.
func (e *Engine) candidates(s *snapshot) map[string]*chain.Chain {
	out := map[string]*chain.Chain{}
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			continue
		}
		if c := candidate(lv, e.withTA(lv.L, lv.Installed)); c != nil {
			out[lv.L.Name] = c
		}
	}
	return out
}

// withTA returns a copy of c with the trust anchor l asks for, or c itself
// when l has none or it cannot be found (nil for nil).
func (e *Engine) withTA(l *config.Lineage, c *chain.Chain) *chain.Chain {
	if c == nil || l.TA == "" {
		return c
	}
	cp := *c
	cp.Issuers = append([]*x509.Certificate(nil), c.Issuers...)
	cp.TA = nil
	if err := e.setTA(l, &cp); err != nil {
		return c
	}
	return &cp
}

// recordPending keeps cand as lv's pending switch (its file in the state
// directory, mode 0600) with the decision's safe time and blockers.
func (e *Engine) recordPending(lv *lineageView, cand *chain.Chain, dec SwitchDecision) error {
	path := e.pendingPath(lv.L.Name)
	if lv.Pending == nil || !sameChain(lv.Pending.Served(), cand.Served()) {
		if err := cand.WriteFile(path); err != nil {
			return err
		}
		lv.State.Pending = &Pending{File: path, Since: e.now()}
		lv.Pending = cand
	}
	p := lv.State.Pending
	p.SPKI, p.Leaf, p.SafeAt, p.Blocking = spkiHex(cand), describeLeaf(cand), dec.SafeAt, dec.Blocking
	lv.Decided = true
	return nil
}

// install writes c as lv's served chain file (atomically, 0600) and clears
// a pending switch and a completed rotation it supersedes.
func (e *Engine) install(lv *lineageView, c *chain.Chain) error {
	st := lv.State
	if lv.Installed == nil || spkiHex(lv.Installed) != spkiHex(c) || st.KeySince.IsZero() {
		st.KeySince = e.now()
	}
	if err := c.WriteFile(lv.L.ChainFile); err != nil {
		return fmt.Errorf("lineage %q: %w", lv.L.Name, err)
	}
	if st.Pending != nil {
		os.Remove(st.Pending.File)
		st.Pending = nil
		lv.Pending = nil
	}
	if st.Next != nil && st.Next.SPKI == spkiHex(c) {
		// The rotation is complete: the ACME client holds the key now.
		os.Remove(st.Next.File)
		st.Next = nil
	}
	st.Installed = e.now()
	var err error
	lv.Installed, lv.InstalledDigest, err = readChainFile(lv.L.ChainFile)
	return err
}

// addPlans returns, per owner of refs (every owner when refs is nil), the
// additions that make the provider serve the wanted records.
// Owners that could not be observed get no plan; their errors are
// returned.
func (e *Engine) addPlans(s *snapshot, want map[string][]tlsa.Record, refs []ownerRef) ([]*OwnerPlan, error) {
	only := map[string]bool{}
	for _, r := range refs {
		only[r.Owner] = true
	}
	var out []*OwnerPlan
	var errs []error
	for _, ov := range s.Owners {
		if refs != nil && !only[ov.Owner] {
			continue
		}
		if ov.Err != nil {
			errs = append(errs, fmt.Errorf("owner %s: %w", ov.Owner, ov.Err))
			continue
		}
		op := ov.plan(want[ov.Owner])
		add := additions(ov, want[ov.Owner])
		if err := capOwner(s, ov, want[ov.Owner], add); err != nil {
			// Refused: nothing is added at this owner (removals still go).
			errs = append(errs, err)
			add = nil
		}
		if why := e.firstRecordsHeld(s, ov, add); why != "" {
			for _, c := range add {
				op.HeldAdditions = append(op.HeldAdditions, c.RR)
			}
			op.HeldAdditionsReason = why
			add = nil
		}
		op.Changes = append(op.Changes, add...)
		out = append(out, op)
	}
	return out, errors.Join(errs...)
}

func (ov *ownerView) plan(want []tlsa.Record) *OwnerPlan {
	return &OwnerPlan{Owner: ov.Owner, Zone: ov.Zone, Provider: ov.Provider, TTL: ov.TTL, Lineages: ov.Lineages, Desired: want}
}

// apply sends the plans' changes, provider by provider, keeping the owned
// records in step: adds are recorded as owned (and saved) before they are
// sent, so a crash after sending never leaves an unowned record of ours;
// removals are forgotten only once sent, and saved by the caller's save. A
// Remove of a record no server serves is only forgotten.
//
// With host_id set, it first brings this host's claims in the ownership
// registry in step with each plan's desired records (syncClaims), even
// when no record changes — claim first, then publish and rely —, and
// every removal is then conditional on the registry (Registry.ApplyClaimed):
// one another host claims is kept, owned, and noted in s.Conflicts and the
// plan's Held with the reason. A removal-only batch refused by an UPDATE
// prerequisite (prerequisites = true: a kept record is gone) is no error
// either: its removals are noted the same way and the next run decides
// again.
func (e *Engine) apply(ctx context.Context, s *snapshot, plans []*OwnerPlan) error {
	if err := e.syncClaims(ctx, s, plans); err != nil {
		return err
	}
	return e.applyRecords(ctx, s, plans)
}

func (e *Engine) applyRecords(ctx context.Context, s *snapshot, plans []*OwnerPlan) error {
	dns := s.DNS
	byProvider := map[string][]dnsupdate.Change{}
	var providers []string
	dns.reserve(plans)
	for _, p := range plans {
		ov := s.owner(p.Owner)
		for _, c := range p.Changes {
			switch c.Op {
			case dnsupdate.Keep:
				if !hasRemove(p.Changes) {
					continue
				}
			case dnsupdate.Add:
				dns.own(c.Owner, c.Record, p.Provider)
				dns.noteLineages(c.Owner, p.Lineages)
			case dnsupdate.Remove:
				if ov != nil && !containsRecord(ov.observed(), c.Record) {
					dns.disown(c.Owner, c.Record)
					continue
				}
			}
			if _, ok := byProvider[p.Provider]; !ok {
				providers = append(providers, p.Provider)
			}
			byProvider[p.Provider] = append(byProvider[p.Provider], c)
		}
	}
	if len(providers) == 0 {
		return nil
	}
	// Owned before sent: a crash after the UPDATE leaves no record of ours
	// unowned (saveDNS writes unless nothing changed since the last save).
	if err := e.saveDNS(s); err != nil {
		return err
	}
	var errs []error
	for _, name := range providers {
		pub, err := e.publisher(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changes := byProvider[name]
		var conflicts []dnsupdate.Conflict
		if reg := e.registry(name); reg != nil {
			conflicts, err = reg.ApplyClaimed(ctx, s.HostID, changes)
		} else {
			err = pub.Apply(ctx, changes)
		}
		if err != nil && !slices.ContainsFunc(changes, func(c dnsupdate.Change) bool { return c.Op == dnsupdate.Add }) && errors.Is(err, dnsupdate.ErrPrerequisite) {
			// A conditional removal refused: what it relied on changed
			// under it. Nothing is lost (the records stay, owned); the
			// next run observes again and decides again.
			for _, c := range changes {
				if c.Op == dnsupdate.Remove && !isConflict(conflicts, c) {
					conflicts = append(conflicts, dnsupdate.Conflict{Change: c,
						Reason: "not removed: the UPDATE's prerequisite failed (another writer changed the owner since this run read it): kept, decided again next run: " + err.Error()})
				}
			}
			err = nil
		}
		s.Conflicts = append(s.Conflicts, conflicts...)
		for _, c := range conflicts {
			for _, p := range plans {
				if p.Provider == name && strings.EqualFold(p.Owner, c.Change.Owner) {
					p.Held = append(p.Held, c.Change.RR)
					p.HeldReasons = append(p.HeldReasons, c.Reason)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("provider %q: %w", name, err))
			continue
		}
		defer e.watchPublished(ctx, s, changes)
		for _, c := range changes {
			switch c.Op {
			case dnsupdate.Remove:
				if isConflict(conflicts, c) {
					continue
				}
				dns.disown(c.Owner, c.Record)
			case dnsupdate.Add:
				// The provider serves it now: later decisions of this run
				// (removals) must see it, or it would be "forgotten" as a
				// record no server serves.
				if ov := s.owner(c.Owner); ov != nil {
					ov.Current = append(ov.Current, c.RR)
				}
			}
		}
	}
	// The caller saves the state once at the end of its run (save): a
	// crash before that leaves a removed record owned, which the next run
	// only forgets (apply of a Remove no server serves).
	return errors.Join(errs...)
}

// isConflict reports whether the removal c is one of conflicts.
func isConflict(conflicts []dnsupdate.Conflict, c dnsupdate.Change) bool {
	return slices.ContainsFunc(conflicts, func(x dnsupdate.Conflict) bool {
		return strings.EqualFold(x.Change.Owner, c.Owner) && x.Change.Record.Equal(c.Record)
	})
}

// save writes every lineage's state and the DNS state, once per run.
func (e *Engine) save(s *snapshot) error {
	e.scheduleRuns(s)
	// The documents are independent files, each written atomically and
	// fsynced (twice: the file, then its directory), so they are written
	// up to saveWorkers at a time: 50 new lineage documents took 13-20 ms
	// one after the other on an ext4 VM disk, 7-10 ms so. Errors are
	// reported in lineage order, dns.json's last, as before.
	errs := make([]error, len(s.Lineages)+1)
	sem := make(chan struct{}, saveWorkers)
	var wg sync.WaitGroup
	for i, lv := range s.Lineages {
		if lv.Err == nil {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				errs[i] = e.Store.Save(lv.L.Name, lv.State)
			})
		}
	}
	errs[len(s.Lineages)] = e.saveDNS(s)
	wg.Wait()
	return errors.Join(errs...)
}

// saveWorkers bounds the state documents save writes at a time.
const saveWorkers = 8

func describeLeaf(c *chain.Chain) string {
	return fmt.Sprintf("%s serial %s, expires %s", c.Leaf.Subject, c.Leaf.SerialNumber.Text(16), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// ReloadResult reports what Reload did.
type ReloadResult struct {
	// Switched lists lineages whose pending switch was completed.
	Switched []string
	// Pending lists lineages still waiting, with when and why.
	Pending map[string]*Pending
	// Published lists the records added in this run.
	Published []string
	// HeldFirst lists, one "owner: reason" each, the owners whose first
	// TLSA records were not published (OwnerPlan.HeldAdditions).
	HeldFirst []string
	// Reloaded is true when Postfix was reloaded.
	Reloaded bool
	// Verified lists each endpoint check that matched.
	Verified []string
	// Removed lists the owned records removed after verification.
	Removed []string
	// Held lists removals that wait, with the reason.
	Held []string
	// Notices are lineages whose chain file is installed while Postfix
	// serves no chain and does not read it yet, each with the postconf
	// line: the operator's next step, not an error (postfixNotYet).
	Notices []string
	// NotIssued lists the lineages not issued yet (see lineageView), each
	// with what is missing: nothing was done for them.
	NotIssued []string
}

// postfixInstance returns the configured Postfix instance.
func (e *Engine) postfixInstance() *postfix.Instance {
	in := &postfix.Instance{ConfigDir: e.Config.Postfix.ConfigDir, Postfix: e.Config.Postfix.Command}
	if e.Store != nil && e.Store.Dir != "" {
		// What postconf prints is kept beside the state, keyed by main.cf,
		// master.cf and the postconf program (postfix.Instance.Served):
		// the hooks of one renewal then run postconf once, not per process.
		in.ServedCache = filepath.Join(e.Store.Dir, servedCacheName)
	}
	return in
}

// servedCacheName is the file in the state directory where
// postfix.Instance.Served keeps what postconf printed.
const servedCacheName = "postfix-served.json"

// Reload is dane-reload's and `danectl tick`'s step (DESIGN §4), one
// locked run over every lineage: observe everything once; publish what any
// chain that may be served needs (so a renewal whose deploy hook failed, or
// that ran without hooks, is carried on); install each newest chain that
// is safe to switch; when any installed chain is not what Postfix presents,
// run `postfix check` and one `postfix reload`; verify that each endpoint
// presents the installed chain for the lineage's key algorithm and that it
// matches an aged record; and only then remove owned records that no chain
// Postfix may serve relies on. Any failure returns an error and removes
// nothing.
func (e *Engine) Reload(ctx context.Context) (*ReloadResult, error) {
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	return e.reload(ctx)
}

func (e *Engine) reload(ctx context.Context) (*ReloadResult, error) {
	res := &ReloadResult{Pending: map[string]*Pending{}}
	s, err := e.observe(ctx, observeOpts{Present: true, Postfix: true})
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			errs = append(errs, lv.Err)
		}
		if lv.NotIssued {
			res.NotIssued = append(res.NotIssued, fmt.Sprintf("lineage %s: %s", lv.L.Name, notIssuedReason(lv.L)))
		}
	}
	if err := e.requireDNSSEC(ctx, s); err != nil {
		return res, err
	}
	if s.PostfixErr != nil {
		// Without knowing what Postfix reads, nothing may be removed.
		errs = append(errs, fmt.Errorf("read what Postfix serves: %w", s.PostfixErr))
	}
	// Untrusted chains (the ACME client's files, a pending switch) are
	// neither published nor installed: dropped from the views before
	// anything is wanted.
	if err := joinByName(e.dropUntrusted(s)); err != nil {
		errs = append(errs, err)
	}
	next := e.candidates(s)
	for name, c := range next {
		if err := trusted(s.lineage(name).L, c); err != nil {
			errs = append(errs, err)
			delete(next, name)
		}
	}
	want, err := e.wanted(s, next)
	if err != nil {
		return res, err
	}
	// An owner that could not be observed, or whose additions the record
	// cap refused, fails the run but blocks nothing else: no switch relies
	// on records not published, and removals (decideRemovals) are decided
	// per owner — at a capped owner they are what makes room.
	plans, planErr := e.addPlans(s, want, nil)
	for _, p := range plans {
		for _, c := range p.Changes {
			res.Published = append(res.Published, c.RR.String())
		}
		if len(p.HeldAdditions) > 0 {
			res.HeldFirst = append(res.HeldFirst, p.Owner+": "+p.HeldAdditionsReason)
		}
	}
	if err := e.apply(ctx, s, plans); err != nil {
		// Nothing is switched or removed on a failed publication.
		return res, errors.Join(append(errs, planErr, err, e.save(s))...)
	}
	if ferr := e.postfixForeign(s); ferr != nil {
		// Postfix reads files danehook does not protect: the records are
		// published (above), each newest chain is kept as a pending
		// switch, and nothing is installed, reloaded or removed.
		safe := true
		held := anyHeldFirst(plans)
		for _, lv := range s.Lineages {
			cand := next[lv.L.Name]
			if lv.Err != nil || cand == nil {
				safe = safe && (lv.NotIssued || lv.Installed != nil)
				continue
			}
			if lv.Installed == nil && heldFirstAt(plans, lv) {
				// A first chain whose owners' first records are held:
				// installed, as Deploy does (nothing reads it yet).
				if err := e.install(lv, cand); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			dec := decideSwitch(s, lv, cand, want)
			safe = safe && (dec.Safe || lv.Installed != nil)
			if dec.Safe {
				dec.Blocking = append(dec.Blocking, "not installed: Postfix reads files danehook does not protect (see the error)")
			}
			if err := e.recordPending(lv, cand, dec); err != nil {
				errs = append(errs, err)
			}
			res.Pending[lv.L.Name] = lv.State.Pending
		}
		if safe {
			ferr = switchesSafe(ferr)
		}
		if held {
			ferr = heldFirstRefusal(ferr)
		}
		return res, errors.Join(append(errs, ferr, planErr, e.save(s))...)
	}

	// Switch what is safe.
	for _, lv := range s.Lineages {
		cand := next[lv.L.Name]
		if lv.Err != nil || cand == nil {
			continue
		}
		dec := decideSwitch(s, lv, cand, want)
		if !dec.Safe {
			if err := e.recordPending(lv, cand, dec); err != nil {
				errs = append(errs, err)
			}
			res.Pending[lv.L.Name] = lv.State.Pending
			continue
		}
		if err := e.postfixReads(s, lv.L); err != nil {
			if _, ok := postfixNotYet(s, lv.L, err); !ok || lv.Installed != nil {
				errs = append(errs, refuseFirst(lv, err))
				continue
			}
			// The first chain file while Postfix serves nothing (see
			// Deploy); the notice is added below.
		}
		if err := e.install(lv, cand); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Switched = append(res.Switched, lv.L.Name)
		delete(next, lv.L.Name)
	}
	// No save here: a crash before the run's one save leaves the installed
	// chain file, which the next run observes (and a pending entry whose
	// file install removed, which readLineage clears).
	if len(res.Switched) > 0 && s.PostfixRead {
		// The files Postfix reads changed under the snapshot: read them again.
		s.Postfix, s.PostfixChains, s.PostfixErr = e.postfixChains(ctx)
	}

	// Reload when any installed chain is not yet what Postfix presents.
	verified := map[string]string{}
	var stale []*lineageView
	notYet := map[string]bool{}
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			continue
		}
		if lv.Installed != nil && lv.State.VerifiedChain == "" {
			// Never verified: the first chain file, not yet read.
			if notice, ok := postfixNotYet(s, lv.L, e.postfixReads(s, lv.L)); ok {
				// Nothing to reload into and nothing to verify until
				// Postfix reads the file; nothing is removed either.
				notYet[lv.L.Name] = true
				verified[lv.L.Name] = "Postfix does not read its chain file yet"
				res.Notices = append(res.Notices, notice)
				continue
			}
		}
		if why := e.notPresenting(lv); why != "" {
			stale = append(stale, lv)
		}
	}
	if len(stale) > 0 {
		if err := e.postfixReloadOnce(ctx, s, notYet); err != nil {
			return res, errors.Join(append(errs, planErr, err)...)
		}
		res.Reloaded = true
		crashpoint("reload:reloaded")
	}
	for _, lv := range s.Lineages {
		if lv.Err != nil || notYet[lv.L.Name] {
			continue
		}
		v, why, err := e.verifyLineage(ctx, s, lv, res.Reloaded)
		res.Verified = append(res.Verified, v...)
		verified[lv.L.Name] = why
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if why == "" {
			lv.State.VerifiedChain = lv.InstalledDigest
			lv.State.VerifiedRecords = nil
			if recs, err := records(lv.L, e.withTA(lv.L, lv.Installed)); err == nil {
				for _, r := range recs {
					lv.State.VerifiedRecords = append(lv.State.VerifiedRecords, r.String())
				}
			}
			lv.State.Verified = e.now()
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(append(errs, planErr, e.save(s))...)
	}

	// Every served chain is verified: remove owned records nobody needs,
	// as wanted now that the switches of this run are done.
	if want, err = e.wanted(s, next); err != nil {
		return res, errors.Join(err, e.save(s))
	}
	rplans := e.removals(s, want, next, verified, nil, res)
	err = e.apply(ctx, s, rplans)
	settleConflicts(s, &res.Removed, &res.Held)
	e.retire(s)
	return res, errors.Join(planErr, err, e.save(s))
}

// removals returns, per owner, the removals decideRemovals allows, and
// notes them (and the held ones) in res.
func (e *Engine) removals(s *snapshot, want map[string][]tlsa.Record, next map[string]*chain.Chain, verified map[string]string, withdrawn []tlsa.Record, res *ReloadResult) []*OwnerPlan {
	var rplans []*OwnerPlan
	for _, ov := range s.Owners {
		remove, held := decideRemovals(s, ov, want[ov.Owner], next, verified, withdrawn)
		op := ov.plan(want[ov.Owner])
		for _, rr := range remove {
			op.Changes = append(op.Changes, dnsupdate.Change{Op: dnsupdate.Remove, RR: rr})
			if containsRecord(ov.observed(), rr.Record) {
				res.Removed = append(res.Removed, rr.String())
			}
		}
		for _, h := range held {
			op.Held = append(op.Held, h.RR)
			res.Held = append(res.Held, fmt.Sprintf("%s: %s", h.RR, h.Reason))
		}
		if len(remove) > 0 {
			// What the removals rely on staying: the wanted and the held
			// records. With prerequisites = true the provider refuses the
			// UPDATE when another writer removed one of them meanwhile.
			for _, rr := range ov.Current {
				if containsRecord(want[ov.Owner], rr.Record) || containsHeld(held, rr.Record) {
					op.Changes = append(op.Changes, dnsupdate.Change{Op: dnsupdate.Keep, RR: rr})
				}
			}
		}
		rplans = append(rplans, op)
	}
	return rplans
}

// removeUnneeded observes, verifies without reloading, and removes the
// owned records no chain Postfix may serve relies on (rotate abort; callers
// hold the lock). withdrawn are records of keys that were never in any
// chain (an aborted staged key): they go even when what Postfix presents
// cannot be verified.
func (e *Engine) removeUnneeded(ctx context.Context, withdrawn ...tlsa.Record) ([]*OwnerPlan, error) {
	s, err := e.observe(ctx, observeOpts{Present: true, Postfix: true})
	if err != nil {
		return nil, err
	}
	next := e.candidates(s)
	want, err := e.wanted(s, next)
	if err != nil {
		return nil, err
	}
	verified := map[string]string{}
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			continue
		}
		if why := e.notPresenting(lv); why != "" {
			verified[lv.L.Name] = why
			continue
		}
		_, why, err := e.verifyLineage(ctx, s, lv, false)
		if err != nil {
			why = err.Error()
		}
		verified[lv.L.Name] = why
	}
	plans := e.removals(s, want, next, verified, withdrawn, &ReloadResult{})
	if err := e.apply(ctx, s, plans); err != nil {
		return plans, errors.Join(err, e.save(s))
	}
	return plans, e.save(s)
}

// notPresenting says why Postfix may not be serving lv's installed chain:
// an endpoint presented another chain (or could not be asked), or the
// installed file changed since it was last verified. "" when what every
// endpoint presented is the installed chain.
func (e *Engine) notPresenting(lv *lineageView) string {
	if lv.Installed == nil {
		return ""
	}
	if len(lv.L.Endpoints) == 0 {
		if lv.InstalledDigest != lv.State.VerifiedChain {
			return "the chain file changed since Postfix was last reloaded"
		}
		return ""
	}
	for _, ep := range lv.L.Endpoints {
		certs, ok := lv.Presented[ep]
		if !ok || !sameChain(certs, lv.Installed.Served()) {
			return fmt.Sprintf("%s does not present the installed chain", ep)
		}
	}
	return ""
}

// postfixReloadOnce runs `postfix check` and `postfix reload`, after making
// sure Postfix reads every lineage's chain file (except those of notYet:
// installed while Postfix serves nothing, see postfixNotYet).
func (e *Engine) postfixReloadOnce(ctx context.Context, s *snapshot, notYet map[string]bool) error {
	for _, lv := range s.Lineages {
		if notYet[lv.L.Name] {
			continue
		}
		if err := e.postfixReads(s, lv.L); err != nil {
			return err
		}
	}
	pf := e.postfixInstance()
	if s.Postfix != nil {
		pf.SetMaillog(s.Postfix.Maillog)
		pf.SetQueueDirectory(s.Postfix.QueueDirectory)
	}
	// `postfix check` (postfix-script: about 100 ms) runs when main.cf or
	// master.cf changed since it last passed; the chain files, which it
	// does not look at, are checked in process every time.
	digest, derr := pf.ConfigDigest()
	if derr != nil || digest != s.DNS.PostfixChecked {
		if err := pf.Check(ctx); err != nil {
			return fmt.Errorf("postfix check failed, not reloading (Postfix keeps serving the previous chain): %w", err)
		}
		if derr == nil {
			s.DNS.PostfixChecked = digest
		}
	} else if s.Postfix != nil {
		if err := pf.CheckChainFiles(s.Postfix); err != nil {
			return fmt.Errorf("postfix check failed, not reloading (Postfix keeps serving the previous chain): %w", err)
		}
	}
	return pf.Reload(ctx)
}

// ErrVerify is wrapped by every failure of the live STARTTLS check: no
// handshake, a chain that is not the installed one, or a chain that matches
// no aged record.
var ErrVerify = errors.New("live chain verification failed")

// presentTimeout bounds the wait, after a reload, for every smtpd to
// present the installed chain: `postfix reload` returns once master has
// been signalled, before every smtpd has restarted.
const presentTimeout = 15 * time.Second

// verifyLineage checks every endpoint of lv: the chain presented for the
// lineage's key algorithm must be the installed chain (waiting up to
// presentTimeout after a reload), and match an aged record at every owner.
// It returns one line per
// match, and why removal must wait ("" when verified). A mismatch is an
// error wrapping ErrVerify.
func (e *Engine) verifyLineage(ctx context.Context, s *snapshot, lv *lineageView, reloaded bool) ([]string, string, error) {
	l := lv.L
	if lv.Installed == nil {
		return nil, "its chain file " + l.ChainFile + " does not exist", nil
	}
	if len(l.Endpoints) == 0 {
		// Without endpoints what Postfix presents cannot be observed: the
		// chain file counts once Postfix was reloaded after it last changed.
		line := []string{fmt.Sprintf("lineage %s: no endpoints configured; the live chain was not verified", l.Name)}
		if !reloaded && lv.InstalledDigest != lv.State.VerifiedChain {
			return line, "the chain file changed and Postfix was not reloaded since", nil
		}
		return line, "", nil
	}
	want := lv.Installed.Served()
	var done []string
	for _, ep := range l.Endpoints {
		certs, ok := lv.Presented[ep]
		if !ok || !sameChain(certs, want) {
			wait := time.Duration(0)
			if reloaded {
				wait = presentTimeout
			}
			got, err := waitPresented(ctx, ep, l.Hosts[0], lv.Installed, wait)
			if got != nil {
				lv.Presented[ep] = got
				delete(lv.PresentErr, ep)
			}
			if err != nil {
				if reloaded {
					// The instance reloaded may not be the one listening
					// at the endpoint ([postfix] config_dir): say which.
					dir := e.Config.Postfix.ConfigDir
					if dir == "" {
						dir = "the default (postconf's config_directory)"
					}
					err = fmt.Errorf("%w; the Postfix instance reloaded is config_dir %s: check that it is the one listening at %s", err, dir, ep)
				}
				return done, "", fmt.Errorf("lineage %q: %s: %w: %w", l.Name, ep, ErrVerify, err)
			}
			certs = got
		}
		for _, r := range lv.Refs {
			ov := s.owner(r.Owner)
			if ov == nil || ov.Err != nil {
				return done, fmt.Sprintf("owner %s not observed", r.Owner), nil
			}
			aged, _ := agedAt(ov, s.DNS.Seen, s.Now)
			v := postfix.Evaluate(certs, r.Host, aged, s.Now)
			if !v.OK() {
				all := ov.observed()
				if covered(certs, r.Host, all, s.Now) && len(aged) == 0 {
					// Served, and no record at the owner is aged yet (a
					// first issuance): no RRset a resolver may hold lacks
					// it for long, but removal waits. With an aged RRset
					// that does not match, senders fail now: an error.
					done = append(done, fmt.Sprintf("%s for %s: presents the installed chain; its record is not aged yet", ep, r.Owner))
					return done, fmt.Sprintf("the live chain at %s matches a record at %s that is not aged yet", ep, r.Owner), nil
				}
				return done, "", fmt.Errorf("lineage %q: live chain at %s matches no aged record at %s (records %s), so no record is removed: %w",
					l.Name, ep, r.Owner, listRecords(all), ErrVerify)
			}
			done = append(done, fmt.Sprintf("%s for %s: %s", ep, r.Owner, v.Matches[0]))
		}
	}
	sort.Strings(done)
	return done, "", nil
}

// listRecords abbreviates recs for a message ("none" when empty).
func listRecords(recs []tlsa.Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, short(r.String()))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// present makes one STARTTLS handshake to every endpoint of lv for the
// lineage's key algorithm and records what it presented.
func (e *Engine) present(ctx context.Context, lv *lineageView) {
	lv.Presented = map[string][]*x509.Certificate{}
	lv.PresentErr = map[string]error{}
	if len(lv.L.Hosts) == 0 {
		return
	}
	alg := algorithmOf(lv)
	for _, ep := range lv.L.Endpoints {
		certs, err := presentAlg(ctx, ep, lv.L.Hosts[0], alg)
		if err != nil {
			lv.PresentErr[ep] = err
			continue
		}
		lv.Presented[ep] = certs
	}
}

// algorithmOf returns the key algorithm of lv's chains (installed first).
func algorithmOf(lv *lineageView) string {
	for _, c := range []*chain.Chain{lv.Installed, lv.Renewal, lv.Source, lv.Pending} {
		if c != nil {
			return c.Algorithm()
		}
	}
	return ""
}

// waitPresented retries the handshake until addr presents want's chain or
// timeout passes (one try when timeout is 0).
func waitPresented(ctx context.Context, addr, host string, want *chain.Chain, timeout time.Duration) ([]*x509.Certificate, error) {
	deadline := time.Now().Add(timeout)
	// After `postfix reload` an old smtpd may still take a connection or
	// two before it exits: ask again soon, then less often.
	delay := 50 * time.Millisecond
	var last []*x509.Certificate
	for {
		certs, err := presentAlg(ctx, addr, host, want.Algorithm())
		if err == nil {
			last = certs
			if sameChain(certs, want.Served()) {
				return certs, nil
			}
		}
		if time.Now().Add(delay).After(deadline) {
			if err != nil {
				return last, fmt.Errorf("STARTTLS check: %w", err)
			}
			return last, fmt.Errorf("it presents %s, not the installed chain's leaf %s (Postfix was reloaded; some smtpd still serves the previous chain, or Postfix reads another file)",
				describeCert(certs), describeCert(want.Served()))
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*3/2, 500*time.Millisecond)
	}
}

func describeCert(certs []*x509.Certificate) string {
	if len(certs) == 0 {
		return "no certificate"
	}
	d := tlsa.SPKIDigestHex(certs[0])
	return fmt.Sprintf("%s (3 1 1 %s…)", certs[0].Subject, d[:16])
}

// Verify checks the endpoints of the named lineages (all when empty), as
// Reload does after a reload, changing nothing: each must present the
// installed chain for the lineage's algorithm, and the chain must match an
// aged record at every owner. It returns one line per match.
func (e *Engine) Verify(ctx context.Context, names ...string) ([]string, error) {
	ls, s, unlock, err := e.observeLocked(ctx, names, observeOpts{Present: true})
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []string
	for _, l := range ls {
		lv := s.lineage(l.Name)
		if lv.Err != nil {
			return out, lv.Err
		}
		if lv.NotIssued {
			out = append(out, fmt.Sprintf("lineage %s: %s", l.Name, notIssuedReason(l)))
			continue
		}
		v, why, err := e.verifyLineage(ctx, s, lv, false)
		out = append(out, v...)
		if err != nil {
			return out, err
		}
		if why != "" && lv.Installed == nil {
			return out, fmt.Errorf("lineage %q: %w: %s", l.Name, ErrVerify, why)
		}
	}
	return out, e.saveDNS(s)
}

// PruneResult reports what Prune did: the records removed, and those kept
// with the reason.
type PruneResult struct {
	Removed []string
	Kept    []string
}

// Prune is `danectl prune`: it removes, at the owners of the named
// lineages (all when empty), the records danehook does not own that no
// chain Postfix may serve relies on — a control panel's 3 0 1, a stale
// key, a retired CA's 2 1 1 — once this run verified that every lineage at
// the owner presents its installed chain and that chain matches an aged
// record. Records some chain relies on, and every record at an owner whose
// lineages could not be verified, are kept and listed with the reason.
// Errors are those of observation and of the provider.
func (e *Engine) Prune(ctx context.Context, names ...string) (*PruneResult, error) {
	_, s, unlock, err := e.observeLocked(ctx, names, observeOpts{Present: true, Postfix: true})
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &PruneResult{}
	why := map[string]string{}
	for _, lv := range s.Lineages {
		switch {
		case lv.Err != nil:
			why[lv.L.Name] = lv.Err.Error()
		case e.notPresenting(lv) != "":
			why[lv.L.Name] = e.notPresenting(lv)
		default:
			if _, w, err := e.verifyLineage(ctx, s, lv, false); err != nil {
				why[lv.L.Name] = err.Error()
			} else {
				why[lv.L.Name] = w
			}
		}
	}
	var plans []*OwnerPlan
	for _, ov := range s.Owners {
		if len(ov.Lineages) == 0 || (len(names) > 0 && !anyIn(ov.Lineages, names)) || ov.Err != nil {
			continue
		}
		var blocked []string
		for _, name := range ov.Lineages {
			if why[name] != "" {
				blocked = append(blocked, fmt.Sprintf("lineage %s: %s", name, why[name]))
			}
		}
		op := ov.plan(nil)
		op.keepClaims = true
		for _, rec := range unmatched(s, ov) {
			rr := dnsupdate.RR{Owner: ov.Owner, TTL: ov.TTL, Record: rec}
			if len(blocked) > 0 {
				res.Kept = append(res.Kept, fmt.Sprintf("%s: %s", rr, strings.Join(blocked, "; ")))
				continue
			}
			op.Changes = append(op.Changes, dnsupdate.Change{Op: dnsupdate.Remove, RR: rr})
			res.Removed = append(res.Removed, rr.String())
		}
		plans = append(plans, op)
	}
	err = e.apply(ctx, s, plans)
	settleConflicts(s, &res.Removed, &res.Kept)
	return res, errors.Join(err, e.save(s))
}

func containsHeld(held []Held, r tlsa.Record) bool {
	for _, h := range held {
		if h.RR.Record.Equal(r) {
			return true
		}
	}
	return false
}

func hasRemove(cs []dnsupdate.Change) bool {
	for _, c := range cs {
		if c.Op == dnsupdate.Remove {
			return true
		}
	}
	return false
}

// retire keeps the bookkeeping of owners that are no longer configured: an
// owner whose owned records are all withdrawn becomes retiring, and a
// retiring owner whose RRset no resolver can hold any more is forgotten.
func (e *Engine) retire(s *snapshot) {
	dns := s.DNS
	for _, ov := range s.Owners {
		if len(ov.Lineages) > 0 {
			delete(dns.Retiring, ov.Owner)
			continue
		}
		if _, owned := dns.Owned[ov.Owner]; owned {
			continue
		}
		if _, ok := dns.Retiring[ov.Owner]; !ok {
			if dns.Retiring == nil {
				dns.Retiring = map[string]time.Time{}
			}
			dns.Retiring[ov.Owner] = s.Now
			continue
		}
		if ov.Err == nil && rrsetGone(ov, dns.Seen, s.Now) {
			delete(dns.Retiring, ov.Owner)
			delete(dns.Providers, ov.Owner)
			delete(dns.OwnerLineages, ov.Owner)
		}
	}
}
