package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/certbot"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// fileDigest returns the hex SHA-256 of the file at path, "" when it does
// not exist.
func fileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read served chain: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// needsReload reports whether l's served chain file differs from the one
// Postfix was last reloaded and verified on.
func (e *Engine) needsReload(l *config.Lineage, st *LineageState) bool {
	d, err := fileDigest(l.ChainFile)
	return err != nil || (d != "" && d != st.VerifiedChain)
}

// Safety tells whether serving a chain is safe to switch to (DESIGN §2): at
// every owner of its lineage the chain matches at least one aged record.
type Safety struct {
	Safe bool
	// SafeAt is when the switch becomes safe; zero while a server blocks it.
	SafeAt time.Time
	// Blocking names what keeps it from being safe, per owner.
	Blocking []string
}

// safety observes every owner of l and decides whether serving c is safe:
// each owner must serve, on every authoritative server, at least one record
// of c that has aged. It records first sightings in dns.Seen.
func (e *Engine) safety(ctx context.Context, l *config.Lineage, c *chain.Chain, dns *DNSState) (Safety, error) {
	recs, err := records(l, c)
	if err != nil {
		return Safety{}, err
	}
	os, err := owners(l)
	if err != nil {
		return Safety{}, err
	}
	pub, err := e.publisher(l.Provider)
	if err != nil {
		return Safety{}, err
	}
	now := e.now()
	s := Safety{Safe: true}
	unknown := false // some owner's aged time cannot be known yet
	for _, o := range os {
		zone, err := pub.FindZone(ctx, o)
		if err != nil {
			return Safety{}, err
		}
		obs, _, err := e.observe(ctx, l.Provider, zone, o, uint32(l.TTL), false, dns)
		if err != nil {
			s.Safe, unknown = false, true
			s.Blocking = append(s.Blocking, fmt.Sprintf("%s: %v", o, err))
			continue
		}
		// The owner is safe once any one record of the chain is aged; until
		// then it waits for the record that ages first.
		var best propagate.Status
		var why []string
		for _, r := range recs {
			st := propagate.Age(obs, dns.Seen, r, now)
			if st.Aged {
				best = st
				break
			}
			if !st.AgedAt.IsZero() && (best.AgedAt.IsZero() || st.AgedAt.Before(best.AgedAt)) {
				best = st
			}
			why = append(why, st.Blocking...)
		}
		switch {
		case best.Aged:
		case !best.AgedAt.IsZero():
			s.Safe = false
			s.SafeAt = later(s.SafeAt, best.AgedAt)
			s.Blocking = append(s.Blocking, fmt.Sprintf("%s: %s not aged until %s (2 x %ds after the last server was first seen serving it)",
				o, short(best.Record), best.AgedAt.UTC().Format(time.RFC3339), best.TTL))
		default:
			s.Safe, unknown = false, true
			s.Blocking = append(s.Blocking, fmt.Sprintf("%s: %s", o, strings.Join(dedupe(why), "; ")))
		}
	}
	if unknown {
		s.SafeAt = time.Time{}
	}
	return s, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func short(rec string) string {
	f := strings.Fields(rec)
	if len(f) == 4 && len(f[3]) > 16 {
		return strings.Join(f[:3], " ") + " " + f[3][:16] + "…"
	}
	return rec
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sameRecords reports whether a and b need the same records under l: the
// same key and the same trust anchor. Switching between them changes
// nothing a sender matches.
func sameRecords(l *config.Lineage, a, b *chain.Chain) bool {
	ra, err1 := records(l, a)
	rb, err2 := records(l, b)
	if err1 != nil || err2 != nil || len(ra) != len(rb) {
		return false
	}
	for _, r := range ra {
		if !containsRecord(rb, r) {
			return false
		}
	}
	return true
}

// DeployResult reports what Deploy did for one renewed certificate.
type DeployResult struct {
	Lineage string
	Client  hookenv.Client
	// SPKI is the 3 1 1 data of the renewed certificate's key.
	SPKI string
	// KeyChanged is true when the key differs from the served chain's.
	KeyChanged bool
	// Plans are the DNS changes made.
	Plans []*OwnerPlan
	// Installed is true when the chain file was written: the switch was
	// safe, or this is the lineage's first chain, or the renewal needs the
	// same records as the served chain.
	Installed bool
	// Reason says why the chain was installed or left pending.
	Reason string
	// Pending is set when the switch waits for records to age.
	Pending *Pending
	// Pinned is the certbot renewal configuration that Deploy set to
	// reuse_key = True, "" when it already was (or the client is lego).
	Pinned string
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
		if (l.CertbotLineage != "" && strings.TrimSuffix(l.CertbotLineage, "/") == strings.TrimSuffix(dirOf(d.KeyFile), "/")) ||
			(l.LegoKey != "" && l.LegoKey == d.KeyFile) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("%s renewed %q, which is not a lineage in %s (configured: %s): add a [lineage.%q] table or check the certificate name",
		d.Client, d.Lineage, e.Config.Path, strings.Join(e.Config.LineageNames(), ", "), d.Lineage)
}

func dirOf(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i]
	}
	return "."
}

// Deploy is dane-deploy's step for one renewed certificate (DESIGN §4): it
// assembles the served chain from the client's files (checking the key
// against the leaf), publishes the records it needs beside the ones the
// served chain needs, and then either installs the chain file (safe to
// switch) or records a pending switch that Reload completes once the
// records are aged. A renewal with the same key and trust anchor makes no
// DNS change. Errors leave the served chain untouched.
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
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	res := &DeployResult{Lineage: l.Name, Client: d.Client, SPKI: spkiHex(c)}
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	st, err := e.loadLineage(l.Name)
	if err != nil {
		return nil, err
	}
	st.KeySPKI = res.SPKI
	served, err := e.loadChain(l, l.ChainFile)
	if err != nil {
		return nil, err
	}
	res.KeyChanged = served != nil && spkiHex(served) != res.SPKI

	// Publish first: the new chain's records beside everything still needed.
	plans, err := e.plan(ctx, []string{l.Name}, map[string][]*chain.Chain{l.Name: {c}}, dns)
	if err != nil {
		return nil, err
	}
	res.Plans = plans
	if err := e.apply(ctx, plans, dns); err != nil {
		return res, err
	}
	crashpoint("deploy:published")

	switch {
	case served == nil:
		res.Installed, res.Reason = true, "first chain of this lineage: nothing served yet to protect"
	case sameRecords(l, served, c):
		res.Installed, res.Reason = true, "same key and trust anchor as the served chain: the published records match it already"
	default:
		sf, err := e.safety(ctx, l, c, dns)
		if err != nil {
			return res, err
		}
		if sf.Safe {
			res.Installed, res.Reason = true, "the new chain's records are aged at every owner"
		} else {
			if err := c.WriteFile(e.pendingPath(l.Name)); err != nil {
				return res, err
			}
			st.Pending = &Pending{File: e.pendingPath(l.Name), SPKI: res.SPKI, Leaf: describeLeaf(c), Since: e.now(), SafeAt: sf.SafeAt, Blocking: sf.Blocking}
			res.Pending = st.Pending
			res.Reason = "the new chain's records are not aged yet"
		}
	}
	if res.Installed {
		if err := e.install(l, st, c); err != nil {
			return res, err
		}
		crashpoint("deploy:installed")
	}
	if err := e.Store.Save(l.Name, st); err != nil {
		return res, err
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		return res, err
	}
	if d.Client == hookenv.Certbot {
		// certbot writes renewal/<name>.conf back after each renewal, before
		// this hook, from the settings it read before its pre hook ran, so a
		// reuse_key repair made by dane-prerenew does not survive the
		// renewal. Repeat it now, so the next renewal keeps this key (§5).
		conf := certbot.RenewalConf(dirOf(d.KeyFile))
		if _, err := os.Stat(conf); err == nil {
			changed, err := certbot.EnsureReuseKey(conf)
			if err != nil {
				return res, fmt.Errorf("lineage %q: keep the key for the next renewal: %w", l.Name, err)
			}
			if changed {
				res.Pinned = conf
			}
		}
	}
	return res, nil
}

// install writes c as l's served chain file (atomically, 0600) and clears a
// pending switch it supersedes.
func (e *Engine) install(l *config.Lineage, st *LineageState, c *chain.Chain) error {
	if served, _ := e.loadChain(l, l.ChainFile); served == nil || spkiHex(served) != spkiHex(c) || st.KeySince.IsZero() {
		st.KeySince = e.now()
	}
	if err := c.WriteFile(l.ChainFile); err != nil {
		return fmt.Errorf("lineage %q: %w", l.Name, err)
	}
	if st.Pending != nil {
		os.Remove(st.Pending.File)
		st.Pending = nil
	}
	if st.Next != nil && st.Next.SPKI == spkiHex(c) {
		// The rotation is complete: the ACME client holds the key now.
		os.Remove(st.Next.File)
		st.Next = nil
	}
	st.Installed = e.now()
	return nil
}

func describeLeaf(c *chain.Chain) string {
	return fmt.Sprintf("%s serial %s, expires %s", c.Leaf.Subject, c.Leaf.SerialNumber.Text(16), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
}

// ReloadResult reports what Reload did.
type ReloadResult struct {
	// Switched lists lineages whose pending switch was completed.
	Switched []string
	// Pending lists lineages still waiting, with when and why.
	Pending map[string]*Pending
	// Reloaded is true when Postfix was reloaded.
	Reloaded bool
	// Verified lists each endpoint check that matched.
	Verified []string
	// Removed lists the owned records removed after verification.
	Removed []string
	// Rotations lists what the rotate_every policy did.
	Rotations []string
}

// postfixInstance returns the configured Postfix instance.
func (e *Engine) postfixInstance() *postfix.Instance {
	return &postfix.Instance{ConfigDir: e.Config.Postfix.ConfigDir, Postfix: e.Config.Postfix.Command}
}

// Reload is dane-reload's and `danectl tick`'s step (DESIGN §4): complete
// pending switches that became safe, then — when any served chain file
// changed — run `postfix check` and one `postfix reload`, verify every
// configured endpoint by a STARTTLS handshake against the records
// published at each owner, and only then remove owned records that no
// served or pending chain needs. Any failure returns an error and removes
// nothing.
func (e *Engine) Reload(ctx context.Context) (*ReloadResult, error) {
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	res := &ReloadResult{Pending: map[string]*Pending{}}
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	states := map[string]*LineageState{}
	for _, name := range e.Config.LineageNames() {
		l := e.Config.Lineages[name]
		st, err := e.loadLineage(name)
		if err != nil {
			return nil, err
		}
		states[name] = st
		if st.Pending == nil {
			continue
		}
		c, err := e.loadChain(l, st.Pending.File)
		if err != nil {
			return res, err
		}
		if c == nil {
			// The pending file vanished (removed by hand): forget the switch.
			st.Pending = nil
			if err := e.Store.Save(name, st); err != nil {
				return res, err
			}
			continue
		}
		sf, err := e.safety(ctx, l, c, dns)
		if err != nil {
			return res, err
		}
		if !sf.Safe {
			st.Pending.SafeAt, st.Pending.Blocking = sf.SafeAt, sf.Blocking
			res.Pending[name] = st.Pending
			if err := e.Store.Save(name, st); err != nil {
				return res, err
			}
			continue
		}
		if err := e.install(l, st, c); err != nil {
			return res, err
		}
		if err := e.Store.Save(name, st); err != nil {
			return res, err
		}
		res.Switched = append(res.Switched, name)
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		return res, err
	}
	if res.Rotations, err = e.rotatePolicy(ctx); err != nil {
		return res, err
	}

	var changed []*config.Lineage
	for _, name := range e.Config.LineageNames() {
		if l := e.Config.Lineages[name]; e.needsReload(l, states[name]) {
			changed = append(changed, l)
		}
	}
	if len(changed) > 0 {
		pf := e.postfixInstance()
		if err := pf.Check(ctx); err != nil {
			return res, fmt.Errorf("postfix check failed, not reloading (Postfix keeps serving the previous chain): %w", err)
		}
		if err := pf.Reload(ctx); err != nil {
			return res, err
		}
		res.Reloaded = true
		crashpoint("reload:reloaded")
		for _, l := range changed {
			v, err := e.verify(ctx, l)
			res.Verified = append(res.Verified, v...)
			if err != nil {
				return res, err
			}
			st := states[l.Name]
			st.VerifiedChain, _ = fileDigest(l.ChainFile)
			st.VerifiedRecords = nil
			if c, err := e.loadChain(l, l.ChainFile); err == nil && c != nil {
				if recs, err := records(l, c); err == nil {
					for _, r := range recs {
						st.VerifiedRecords = append(st.VerifiedRecords, r.String())
					}
				}
			}
			st.Verified = e.now()
			if err := e.Store.Save(l.Name, st); err != nil {
				return res, err
			}
		}
	}

	// Every served chain is verified: remove owned records nobody needs.
	plans, err := e.plan(ctx, nil, nil, dns)
	if err != nil {
		return res, err
	}
	for _, p := range plans {
		for _, c := range p.Changes {
			if c.Op == dnsupdate.Remove {
				res.Removed = append(res.Removed, c.RR.String())
			}
		}
	}
	return res, e.apply(ctx, plans, dns)
}

// ErrVerify is wrapped by every failure of the live STARTTLS check after a
// reload: no handshake, or a chain that matches no published record.
var ErrVerify = errors.New("live chain verification failed")

// verifyAttempts bounds the STARTTLS retries after a reload: postfix
// reload returns once master has been signalled, before every smtpd has
// restarted.
const verifyAttempts = 5

// verify checks every endpoint of l by a STARTTLS handshake against the
// RRset the provider serves at each owner of l.
func (e *Engine) verify(ctx context.Context, l *config.Lineage) ([]string, error) {
	if len(l.Endpoints) == 0 {
		return []string{fmt.Sprintf("lineage %s: no endpoints configured; the live chain was not verified", l.Name)}, nil
	}
	pub, err := e.publisher(l.Provider)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, h := range l.Hosts {
		for _, p := range l.Ports {
			owner, err := tlsa.Owner(uint16(p), h)
			if err != nil {
				return done, err
			}
			rrs, err := pub.Records(ctx, owner)
			if err != nil {
				return done, err
			}
			var rrset []tlsa.Record
			for _, rr := range rrs {
				rrset = append(rrset, rr.Record)
			}
			for _, ep := range l.Endpoints {
				var verr error
				for i := 0; i < verifyAttempts; i++ {
					var v *postfix.Verification
					v, verr = postfix.Verify(ctx, ep, h, rrset)
					if verr == nil {
						done = append(done, fmt.Sprintf("%s for %s: %s", ep, owner, v.Matches[0]))
						break
					}
					if !errors.Is(verr, postfix.ErrNoMatch) {
						break
					}
					select {
					case <-ctx.Done():
						return done, ctx.Err()
					case <-time.After(time.Second):
					}
				}
				if errors.Is(verr, postfix.ErrNoMatch) {
					return done, fmt.Errorf("lineage %q: live chain at %s does not match the records at %s, so no record is removed: %w: %w", l.Name, ep, owner, ErrVerify, verr)
				}
				if verr != nil {
					return done, fmt.Errorf("lineage %q: STARTTLS check of %s for %s failed, so no record is removed: %w: %w", l.Name, ep, owner, ErrVerify, verr)
				}
			}
		}
	}
	sort.Strings(done)
	return done, nil
}

// Verify checks the endpoints of the named lineages (all when empty) by a
// STARTTLS handshake against the records the provider serves at each
// owner, changing nothing. It returns one line per match.
func (e *Engine) Verify(ctx context.Context, names ...string) ([]string, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range ls {
		v, err := e.verify(ctx, l)
		out = append(out, v...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
