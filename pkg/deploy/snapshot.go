package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// This file takes the one observed snapshot of a run (DESIGN §3, "decide
// from what is observed"): every lineage's chains on disk, what Postfix is
// configured to read and what it presents, and what every authoritative
// server serves at every owner with its TTL. The decision functions in
// decide.go read only the snapshot.

// ownerRef is one TLSA owner of a lineage and the host it is derived from
// (the TLSA base domain: DANE-TA's reference identifier, RFC 7672 §3.2.3).
type ownerRef struct {
	Owner string // "_25._tcp.mail.example.com."
	Host  string // "mail.example.com"
}

// lineageView is what one run saw of one lineage.
type lineageView struct {
	L     *config.Lineage
	State *LineageState
	Refs  []ownerRef
	// Decided is set when this run decided the pending switch again
	// (recordPending): only then is State.Pending.SafeAt this run's, and a
	// completing run may be scheduled from it.
	Decided bool
	// Installed is the chain file as it is on disk (l.ChainFile), without a
	// trust anchor added: what Postfix loads at its next smtpd start. Nil
	// when the file does not exist.
	Installed *chain.Chain
	// InstalledDigest is the hex SHA-256 of the chain file ("" when missing).
	InstalledDigest string
	// Pending is the chain of a recorded pending switch, Source what the ACME
	// client holds now, Renewal the chain this hook run was handed; each with
	// the trust anchor the lineage asks for. Nil when absent.
	Pending, Source, Renewal *chain.Chain
	// Presented maps an endpoint to the chain it presented for the
	// lineage's key algorithm in this run; PresentErr the endpoints that
	// could not be observed. Both empty when the run did not look.
	Presented  map[string][]*x509.Certificate
	PresentErr map[string]error
	// IssuerSet is the lineage's issuer set (ta = "issuer-set"), read from
	// its issuer_set file or directory; nil for other ta settings.
	IssuerSet *chain.IssuerSet
	// Err is set when the lineage's files could not be read; the lineage
	// is then left alone by this run.
	Err error
	// NotIssued is set when the ACME client holds no certificate for the
	// lineage yet (certbot_lineage, or lego_cert and lego_key, do not
	// exist), and there is no chain file and no pending switch: a lineage
	// configured before its first issuance. It is a state, not an error:
	// nothing is published or installed for it and other lineages run as
	// usual.
	NotIssued bool
}

// ownerView is what one run saw at one TLSA owner.
type ownerView struct {
	Owner, Host, Zone, Provider string
	// Lineages that have the owner in the current configuration; empty for
	// an owner that only the state remembers (a renamed host's old owner).
	Lineages []string
	// Former are, for an owner only the state remembers, the lineages that
	// had it when danehook published there (empty when not known: then
	// every lineage counts).
	Former []string
	// Aliases are the configured TLSA owners that are CNAMEs leading to
	// Owner (RFC 7671 §7: resolvers follow them): the records are read and
	// changed at Owner, never beside a CNAME. Empty when Owner is itself
	// the configured name.
	Aliases []string
	// TTL of records danehook adds, seconds.
	TTL           uint32
	RequireDNSSEC bool
	// Obs is what every authoritative server serves; Current what the
	// provider reads (the primary's RRset for RFC 2136).
	Obs     *propagate.Observation
	Current []dnsupdate.RR
	// Claims are the ownership registry's claims at the owner (host_id
	// set and the provider keeps a registry), this host's included.
	Claims []dnsupdate.Claim
	// Err is set when the owner could not be observed: nothing is decided
	// on it in this run.
	Err error
	// unsigned is set while Current comes from an unsigned read that no
	// view check confirmed yet (sharedread.go).
	unsigned bool
	// transferred is set while Current comes from the zone's transfer
	// from the provider's server (signed: the data UPDATEs change) and was
	// not yet handed to the propagation check (sharedread.go).
	transferred bool
}

// snapshot is everything one run observed, once.
type snapshot struct {
	Now time.Time
	// HostID is this installation's name in the ownership registry ("" when
	// it keeps none).
	HostID string
	DNS    *DNSState
	// savedDNS is a copy of DNS as this run last wrote it to dns.json
	// (saveDNS); nil before the run's first save.
	savedDNS *DNSState
	// ownedOnDisk is DNS.Owned as dns.json holds it (loaded, then as last
	// saved): saveDNS keeps dns.json.prev in step when ownership changes.
	ownedOnDisk map[string][]string
	Lineages    []*lineageView
	Owners      []*ownerView
	byOwner     map[string]*ownerView // index of Owners (owner)
	// served is what firstRecordsHeld reads once per run: the lineages'
	// chain files (canonical) and the certificates of the other files
	// Postfix's services read (nil for a file that does not exist).
	served *servedFiles
	// Postfix is what every smtpd service is configured to read;
	// PostfixChains the chains in those files.
	Postfix       *postfix.Config
	PostfixChains []*chain.Chain
	PostfixErr    error
	// PostfixRead is true when the run read Postfix's configuration.
	PostfixRead bool
	// Conflicts are the removals of this run that the provider did not
	// send (another host claims the record, or an UPDATE's prerequisite
	// failed): the records stay owned and the next run decides again.
	Conflicts []dnsupdate.Conflict
}

func (s *snapshot) lineage(name string) *lineageView {
	for _, lv := range s.Lineages {
		if lv.L.Name == name {
			return lv
		}
	}
	return nil
}

func (s *snapshot) owner(o string) *ownerView {
	if len(s.byOwner) != len(s.Owners) { // built on first use, rebuilt when Owners grew
		s.byOwner = make(map[string]*ownerView, len(s.Owners))
		for _, ov := range s.Owners {
			if _, ok := s.byOwner[ov.Owner]; !ok {
				s.byOwner[ov.Owner] = ov
			}
		}
	}
	return s.byOwner[o]
}

// observeOpts says what a run observes beyond DNS and files.
type observeOpts struct {
	// Renewal is the chain a deploy hook was handed, for lineage RenewalOf.
	Renewal   *chain.Chain
	RenewalOf string
	// Present makes a STARTTLS handshake to every endpoint of every lineage.
	Present bool
	// Postfix reads what Postfix is configured to serve.
	Postfix bool
}

// observe takes the run's snapshot. Errors are returned only for state
// that cannot be read (the run must not act on a guess); what cannot be
// observed at an owner or a lineage is kept in its Err.
func (e *Engine) observe(ctx context.Context, opts observeOpts) (*snapshot, error) {
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	s := &snapshot{DNS: dns, HostID: e.Config.HostID, ownedOnDisk: cloneStrings(dns.Owned)}
	owners := map[string]*ownerView{}
	// Each lineage's state and files (chains verified, ACME client files)
	// are read independently of the others: up to GOMAXPROCS at a time (a
	// 50-lineage configuration spent about 30 ms verifying chains one by
	// one). The first error in lineage order is returned, as before.
	names := e.Config.LineageNames()
	lvs := make([]*lineageView, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var reads sync.WaitGroup
	for i, name := range names {
		sem <- struct{}{}
		reads.Go(func() {
			defer func() { <-sem }()
			l := e.Config.Lineages[name]
			st, err := e.loadLineage(name)
			if err != nil {
				errs[i] = err
				return
			}
			lv := &lineageView{L: l, State: st}
			if lv.Refs, err = refs(l); err != nil {
				errs[i] = err
				return
			}
			if opts.RenewalOf == name {
				lv.Renewal = opts.Renewal
			}
			e.readLineage(lv)
			lvs[i] = lv
		})
	}
	reads.Wait()
	for i, name := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		lv, l := lvs[i], lvs[i].L
		s.Lineages = append(s.Lineages, lv)
		for _, r := range lv.Refs {
			ov := owners[r.Owner]
			if ov == nil {
				ov = &ownerView{Owner: r.Owner, Host: r.Host, Provider: l.Provider}
				owners[r.Owner] = ov
			}
			if ov.Provider != l.Provider {
				return nil, fmt.Errorf("owner %s: lineages %s use different providers (%q, %q): an owner must be published by one provider",
					r.Owner, strings.Join(append(ov.Lineages, name), ", "), ov.Provider, l.Provider)
			}
			ov.Lineages = append(ov.Lineages, name)
			ov.TTL = max(ov.TTL, uint32(l.TTL))
			ov.RequireDNSSEC = ov.RequireDNSSEC || l.RequireDNSSEC
		}
	}
	// Owners only the state remembers: records danehook published under an
	// earlier configuration. They are observed so that their removal is
	// decided like any other.
	// Owners whose records danehook withdrew stay observed ("retiring")
	// until no resolver can hold their RRset: until then a switch must not
	// leave them behind (a sender may still use the old MX name).
	var remembered []string
	for o := range dns.Owned {
		remembered = append(remembered, o)
	}
	for o := range dns.Retiring {
		if _, ok := dns.Owned[o]; !ok {
			remembered = append(remembered, o)
		}
	}
	for _, o := range remembered {
		if owners[o] == nil && len(s.Lineages) > 0 {
			p := s.Lineages[0].L.Provider
			if prov, ok := dns.Providers[o]; ok {
				p = prov
			}
			if _, ok := e.Config.Providers[p]; !ok {
				continue
			}
			owners[o] = &ownerView{Owner: o, Host: hostOf(o), Provider: p, TTL: config.DefaultTTL, Former: dns.OwnerLineages[o]}
		}
	}
	for _, ov := range owners {
		s.Owners = append(s.Owners, ov)
	}
	sort.Slice(s.Owners, func(i, j int) bool { return s.Owners[i].Owner < s.Owners[j].Owner })

	// DNS of every owner, the Postfix configuration and the handshakes are
	// independent: observe them concurrently.
	var wg sync.WaitGroup
	if opts.Postfix {
		s.PostfixRead = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Postfix, s.PostfixChains, s.PostfixErr = e.postfixChains(ctx)
		}()
	}
	if opts.Present {
		for _, lv := range s.Lineages {
			if lv.Err == nil {
				wg.Add(1)
				go func() { defer wg.Done(); e.present(ctx, lv) }()
			}
		}
	}
	e.observeOwners(ctx, s.Owners)
	wg.Wait()
	s.resolveAliases()
	s.Now = e.now()
	for _, ov := range s.Owners {
		if ov.Obs != nil {
			dns.Seen.Update(ov.Obs, s.Now)
		}
	}
	return s, nil
}

// observeLocked checks the named lineages (all when empty), takes the lock
// and observes. The caller must call unlock when the run ends.
func (e *Engine) observeLocked(ctx context.Context, names []string, opts observeOpts) ([]*config.Lineage, *snapshot, func(), error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, nil, nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := e.observe(ctx, opts)
	if err != nil {
		lk.Unlock()
		return nil, nil, nil, err
	}
	return ls, s, func() { lk.Unlock() }, nil
}

// ownerWorkers bounds the owners read from their providers at once.
const ownerWorkers = 32

// observeBatch is how many owners of one zone are observed together: the
// observation of a batch starts as soon as its owners are read, while the
// reads of the others go on.
const observeBatch = 200

// observeOwners reads every owner from its provider (zone and RRset, up to
// ownerWorkers owners at a time) and, batch by batch as their zones become
// known, what every authoritative server serves: what a zone's owners have
// in common (its SOA, NS RRset, each server's serial) is asked once per
// batch of up to observeBatch owners, not per owner
// (propagate.Checker.ObserveOwners), and batches are observed while the
// provider reads go on.
//
// Zones read whole (decision X1 in pkg/dnsupdate/transfer.go): the
// propagation check reads the TLSA RRsets of dnsupdate.TransferMinOwners or
// more owners of one zone at one server from that server's zone transfer
// where it allows one (zoneChecker), the zone being known from the
// provider's reads. The provider's own reads are direct queries, which
// place each owner in its zone, except where the operator named the zone
// (the provider's zone setting): then that zone's owners are read from one
// transfer from the provider's server, each where the copy can tell
// (dnsupdate.Zone.Lookup: not below a delegation, not a CNAME, no
// wildcard), the others directly. A refused or failed transfer is said at
// --verbose and costs one request; zone_transfers = false turns all this
// off.
func (e *Engine) observeOwners(ctx context.Context, ovs []*ownerView) {
	type zoneKey struct{ provider, zone string }
	var (
		mu      sync.Mutex
		groups  = map[zoneKey][]*ownerView{}
		observe sync.WaitGroup
		zsem    = make(chan struct{}, 4)
	)
	views := &viewChecks{}
	launch := func(k zoneKey, group []*ownerView) {
		observe.Go(func() {
			zsem <- struct{}{}
			defer func() { <-zsem }()
			known := e.shareReads(ctx, views, k.provider, k.zone, group)
			group = slices.DeleteFunc(group, func(ov *ownerView) bool { return ov.Err != nil })
			owners := make([]string, len(group))
			for i, ov := range group {
				owners[i] = ov.Owner
			}
			ck := e.zoneChecker(k.provider, 0, false)
			obs, err := ck.ObserveOwnersKnown(ctx, k.zone, owners, known)
			for i, ov := range group {
				if err != nil {
					ov.Err = err
					continue
				}
				ov.Obs = obs[i]
				ov.Obs.ConfiguredTTL = ov.TTL
			}
		})
	}
	// read reads owners from their providers directly, up to ownerWorkers
	// at a time, filing each in its zone's group; a group of observeBatch
	// is observed at once while the reads go on, except for a provider
	// that can transfer zones: its zones are observed whole at the end,
	// one transfer per zone and server.
	read := func(owners []*ownerView) {
		forEachOwner(owners, func(ov *ownerView) {
			e.readOwner(ctx, ov)
			if ov.Err != nil {
				return
			}
			k := zoneKey{ov.Provider, ov.Zone}
			mu.Lock()
			groups[k] = append(groups[k], ov)
			var full []*ownerView
			if len(groups[k]) >= observeBatch && e.transferer(ov.Provider) == nil {
				full, groups[k] = groups[k], nil
			}
			mu.Unlock()
			if full != nil {
				launch(k, full)
			}
		})
	}
	// Owners wait for their zone's transfer at the provider's server only
	// where the operator named the zone (the provider's zone or zones
	// setting, which zone discovery trusts too): a direct answer is the
	// only other proof of an owner's zone (a zone on the same server below
	// another one without a delegation answers for its names; its parent's
	// copy says nothing of it).
	waiting := map[zoneKey][]*ownerView{}
	var direct []*ownerView
	named := map[string]dnsupdate.ZoneSet{} // per provider: its zone or zones
	for _, ov := range ovs {
		pc := e.Config.Providers[ov.Provider]
		if pc == nil || len(pc.NamedZones()) == 0 || e.transferer(ov.Provider) == nil {
			direct = append(direct, ov)
			continue
		}
		zs, ok := named[ov.Provider]
		if !ok {
			zs = dnsupdate.NewZoneSet(pc.NamedZones()...)
			named[ov.Provider] = zs
		}
		zone := zs.Enclosing(ov.Owner)
		if zone == "" {
			direct = append(direct, ov)
			continue
		}
		k := zoneKey{ov.Provider, zone}
		waiting[k] = append(waiting[k], ov)
	}
	for k, ws := range waiting {
		if len(ws) < dnsupdate.TransferMinOwners {
			direct = append(direct, ws...)
			delete(waiting, k)
		}
	}
	read(direct)
	direct = nil
	// The zones' transfers, up to 4 at a time (as the observations).
	transferred := map[zoneKey]bool{}
	var xmu sync.Mutex
	var xfers sync.WaitGroup
	for k, ws := range waiting {
		xfers.Go(func() {
			zsem <- struct{}{}
			defer func() { <-zsem }()
			ok := e.readTransferred(ctx, k.provider, k.zone, ws)
			xmu.Lock()
			transferred[k] = ok
			xmu.Unlock()
		})
	}
	xfers.Wait()
	for k, ws := range waiting {
		if !transferred[k] {
			direct = append(direct, ws...)
			continue
		}
		for _, ov := range ws {
			switch {
			case ov.transferred:
				groups[k] = append(groups[k], ov)
			case ov.Err == nil:
				direct = append(direct, ov) // the copy cannot tell
			}
		}
	}
	read(direct)
	for k, group := range groups {
		if len(group) > 0 {
			launch(k, group)
		}
	}
	observe.Wait()
}

// readTransferred reads zone of provider by one transfer from the
// provider's server and gives each of ovs whose RRset the copy tells
// (dnsupdate.Zone.Lookup) its zone, RRset and registry claims, marking it
// transferred. It returns false, having changed nothing, when the transfer
// failed (said at --verbose); ovs the copy cannot tell are left unread.
func (e *Engine) readTransferred(ctx context.Context, provider, zone string, ovs []*ownerView) bool {
	zt := e.transferer(provider)
	if zt == nil {
		return false
	}
	z, err := zt.TransferZone(ctx, "", zone, dnsupdate.TransferLimit(len(ovs)))
	if err != nil {
		e.debug("reading owner by owner: no zone transfer from the provider's server", "provider", provider, "zone", zone, "owners", len(ovs), "error", err)
		return false
	}
	from := 0
	var claims []*ownerView
	for _, ov := range ovs {
		rrs, ok := z.Lookup(ov.Owner)
		if !ok {
			continue
		}
		ov.Zone, ov.Current, ov.transferred = zone, rrs, true
		claims = append(claims, ov)
		from++
	}
	if reg := e.registry(provider); reg != nil {
		// The registry of an RFC 2136 provider is the provider itself, in
		// the same zone on the same server: its claims come from the copy
		// too, where the copy can tell.
		own, _ := zt.(Registry)
		var ask []*ownerView
		for _, ov := range claims {
			if cs, ok := z.Claims(ov.Owner); ok && own == reg {
				ov.Claims = cs
			} else {
				ask = append(ask, ov)
			}
		}
		forEachOwner(ask, func(ov *ownerView) { e.readClaims(ctx, reg, ov) })
	}
	e.debug("owners read from the zone transfer", "provider", provider, "zone", zone, "server", z.Server,
		"records", z.Records, "owners", from, "read_directly", len(ovs)-from)
	return true
}

// ZoneReader is implemented by a Publisher that can return an owner's zone
// and RRset with one read (*dnsupdate.RFC2136: the zone comes from the
// authoritative TLSA answer); the engine then uses it instead of FindZone
// followed by Records. The same contract as those two applies.
type ZoneReader interface {
	ZoneRecords(ctx context.Context, owner string) (zone string, rrs []dnsupdate.RR, err error)
}

var _ ZoneReader = (*dnsupdate.RFC2136)(nil)

// readOwner reads ov's zone and RRset from its provider. The provider's
// read comes first: its errors are typed (TSIG, NOTAUTH, …) and name the
// server.
func (e *Engine) readOwner(ctx context.Context, ov *ownerView) {
	e.readOwnerAs(ctx, ov, false)
}

// readOwnerAs is readOwner; signed forces the provider's signed reads
// where it would read unsigned (a ViewReader).
func (e *Engine) readOwnerAs(ctx context.Context, ov *ownerView, signed bool) {
	pub, err := e.publisher(ov.Provider)
	if err != nil {
		ov.Err = err
		return
	}
	vr, shared := pub.(ViewReader)
	ov.unsigned = false
	for hops := 0; ; hops++ {
		if shared && !signed {
			// One unsigned read shared with the propagation check
			// (sharedread.go); any failure is read again signed, whose
			// errors are typed.
			if ov.Zone, ov.Current, err = vr.UnsignedZoneRecords(ctx, ov.Owner); err == nil {
				ov.unsigned = true
			} else if !errors.As(err, new(*dnsupdate.AliasError)) {
				ov.unsigned = false
				ov.Zone, ov.Current, err = vr.ZoneRecords(ctx, ov.Owner)
			}
		} else if zr, ok := pub.(ZoneReader); ok {
			ov.Zone, ov.Current, err = zr.ZoneRecords(ctx, ov.Owner)
		} else if ov.Zone, err = pub.FindZone(ctx, ov.Owner); err == nil {
			ov.Current, err = pub.Records(ctx, ov.Owner)
		}
		var alias *dnsupdate.AliasError
		if err != nil && len(ov.Aliases) > 0 && !errors.As(err, &alias) {
			err = fmt.Errorf("owner %s is a CNAME to %s, which provider %q does not manage: %w (publish the TLSA records at %s with the provider of its zone, or remove the CNAME)",
				ov.Aliases[0], ov.Owner, ov.Provider, err, ov.Owner)
		}
		if errors.As(err, &alias) && hops < maxAliasHops {
			// Follow the CNAME: the records live at its target, and an
			// addition beside the CNAME would be ignored or refused.
			ov.Aliases = append(ov.Aliases, ov.Owner)
			ov.Owner = strings.ToLower(alias.Target)
			continue
		}
		if err != nil {
			ov.Err = err
			return
		}
		break
	}
	if reg := e.registry(ov.Provider); reg != nil {
		e.readClaims(ctx, reg, ov)
	}
}

// readClaims reads the ownership registry's claims at ov's owner.
func (e *Engine) readClaims(ctx context.Context, reg Registry, ov *ownerView) {
	var err error
	if ov.Claims, err = reg.Claims(ctx, ov.Owner); err != nil {
		ov.Err = fmt.Errorf("ownership registry %s: %w", dnsupdate.RegistryName(ov.Owner), err)
	}
}

// maxAliasHops bounds the CNAME chain followed from a TLSA owner.
const maxAliasHops = 8

// resolveAliases moves every lineage's refs from an owner that is a CNAME
// to the owner its chain leads to, and merges owner views that lead to the
// same owner (two MX hosts whose TLSA owners are CNAMEs to one RRset):
// one view per owner whose records are read and changed, with every
// configured name in Aliases.
func (s *snapshot) resolveAliases() {
	target := map[string]string{}
	for _, ov := range s.Owners {
		for _, a := range ov.Aliases {
			target[a] = ov.Owner
		}
	}
	if len(target) == 0 {
		return
	}
	for _, lv := range s.Lineages {
		for i, r := range lv.Refs {
			if t, ok := target[r.Owner]; ok {
				lv.Refs[i].Owner = t
			}
		}
	}
	by := map[string]*ownerView{}
	var out []*ownerView
	for _, ov := range s.Owners {
		m := by[ov.Owner]
		if m == nil {
			by[ov.Owner] = ov
			out = append(out, ov)
			continue
		}
		// The TTL is the largest of the lineages' ttl at the owner. A view
		// only the state remembers (the target itself, once records were
		// published there) has no lineage and config.DefaultTTL: it must not
		// raise the TTL of what the lineages publish through their CNAMEs.
		switch {
		case len(m.Lineages) == 0:
			m.TTL = ov.TTL
		case len(ov.Lineages) > 0:
			m.TTL = max(m.TTL, ov.TTL)
		}
		for _, l := range ov.Lineages {
			if !slices.Contains(m.Lineages, l) {
				m.Lineages = append(m.Lineages, l)
			}
		}
		m.Aliases = append(m.Aliases, ov.Aliases...)
		m.RequireDNSSEC = m.RequireDNSSEC || ov.RequireDNSSEC
		if m.Err == nil {
			m.Err = ov.Err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Owner < out[j].Owner })
	s.Owners = out
}

// readLineage reads the lineage's chains from disk into lv.
func (e *Engine) readLineage(lv *lineageView) {
	l := lv.L
	var err error
	if l.TA == chain.TAIssuerSet {
		if lv.IssuerSet, err = chain.LoadIssuerSet(l.IssuerSet); err != nil {
			lv.Err = fmt.Errorf("lineage %q: %w (issuer_set)", l.Name, err)
			return
		}
	}
	if lv.Installed, lv.InstalledDigest, err = readChainFile(l.ChainFile); err != nil {
		lv.Err = fmt.Errorf("lineage %q: served chain file: %w", l.Name, err)
		return
	}
	if lv.State.Pending != nil {
		if lv.Pending, _, err = readChainFile(lv.State.Pending.File); err != nil {
			lv.Err = fmt.Errorf("lineage %q: pending chain: %w", l.Name, err)
			return
		}
		if lv.Pending != nil {
			if err := e.setTA(l, lv.Pending); err != nil {
				lv.Err = err
				return
			}
		} else {
			// Its file is gone (installed by a run that crashed before
			// saving, or removed by hand): nothing is pending.
			lv.State.Pending = nil
		}
	}
	if r, src := lv.Renewal, sourceKeyFile(l); r != nil && src != "" && filepath.Clean(r.KeyFile) == filepath.Clean(src) {
		// The hook's renewal is what the ACME client holds: read once.
		lv.Source = r
		return
	}
	if lv.Source, err = e.loadSource(l, lv.State); err != nil {
		if lv.Installed == nil && lv.Pending == nil && lv.Renewal == nil && notIssued(l) {
			lv.NotIssued = true
			return
		}
		lv.Err = err
	}
}

// sourceKeyFile returns the key file of l's ACME client files ("" when none
// are configured).
func sourceKeyFile(l *config.Lineage) string {
	switch {
	case l.CertbotLineage != "":
		return filepath.Join(l.CertbotLineage, "privkey.pem")
	case l.LegoKey != "":
		return l.LegoKey
	case l.DehydratedCert != "":
		return filepath.Join(l.DehydratedCert, dehydrated.KeyFile)
	case l.AcmeShDir != "":
		return acmesh.LayoutOf(l.AcmeShDir).Key
	}
	return ""
}

// notIssued reports whether the ACME client's files of l do not exist at
// all: certbot's live/<name> directory, both lego_cert and lego_key,
// dehydrated's certificate directory or acme.sh's domain directory.
func notIssued(l *config.Lineage) bool {
	missing := func(p string) bool {
		_, err := os.Stat(p)
		return p == "" || errors.Is(err, fs.ErrNotExist)
	}
	switch {
	case l.CertbotLineage != "":
		return missing(l.CertbotLineage)
	case l.LegoCert != "" || l.LegoKey != "":
		return missing(l.LegoCert) && missing(l.LegoKey)
	case l.DehydratedCert != "":
		return missing(l.DehydratedCert)
	case l.AcmeShDir != "":
		return missing(l.AcmeShDir)
	}
	return false
}

// NotIssuedReason says what a lineage that is not issued yet waits for.
func notIssuedReason(l *config.Lineage) string {
	src := l.CertbotLineage
	for _, p := range []string{l.LegoCert, l.DehydratedCert, l.AcmeShDir} {
		if src == "" {
			src = p
		}
	}
	return fmt.Sprintf("not issued yet: %s does not exist; the first issuance with danehook's hooks publishes its records", src)
}

// readChainFile reads a chain file (key and certificates in one file) as
// it is, with its digest. A missing file is (nil, "", nil).
func readChainFile(path string) (*chain.Chain, string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	c, err := chain.Load(path)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return c, hex.EncodeToString(sum[:]), nil
}

// postfixChains reads what Postfix is configured to serve (every smtpd
// service, main.cf and master.cf overrides) and the chains in those files.
func (e *Engine) postfixChains(ctx context.Context) (*postfix.Config, []*chain.Chain, error) {
	cfg, err := e.postfixInstance().Served(ctx)
	if err != nil {
		return nil, nil, err
	}
	var cs []*chain.Chain
	seen := map[string]bool{}
	for _, svc := range cfg.Services {
		if !svc.Offers() {
			continue
		}
		var loads [][]string
		// Postfix reads smtpd_tls_chain_files as one sequence of PEM
		// objects, a key followed by its chain, so a key alone in one file
		// goes with the certificates of the next (the common
		// "live/privkey.pem, live/fullchain.pem" of certbot users).
		keyOnly := ""
		for _, f := range svc.ChainFiles {
			switch b, err := chain.ReadFile(f); {
			case keyOnly != "":
				loads = append(loads, []string{keyOnly, f})
				keyOnly = ""
			case err == nil && len(b.Certificates) == 0 && len(b.PrivateKeys) > 0:
				keyOnly = f
			default:
				loads = append(loads, []string{f})
			}
		}
		if keyOnly != "" {
			loads = append(loads, []string{keyOnly})
		}
		if len(svc.ChainFiles) == 0 {
			for _, p := range svc.CertKeyPairs {
				if p[0] != "" {
					loads = append(loads, []string{p[1], p[0]})
				}
			}
		}
		for _, files := range loads {
			k := strings.Join(files, "\x00")
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, err := os.Stat(files[0]); errors.Is(err, fs.ErrNotExist) {
				continue
			}
			key := files[0]
			if key == "" {
				key = files[1]
			}
			c, err := chain.Load(key, files...)
			if err != nil {
				return cfg, cs, fmt.Errorf("postfix service %s reads %s: %w", svc.Service, strings.Join(files, ", "), err)
			}
			cs = append(cs, c)
		}
	}
	return cfg, cs, nil
}

// refs returns the TLSA owners of l: one per host and port.
func refs(l *config.Lineage) ([]ownerRef, error) {
	var out []ownerRef
	for _, h := range l.Hosts {
		for _, p := range l.Ports {
			o, err := tlsa.Owner(uint16(p), h)
			if err != nil {
				return nil, fmt.Errorf("lineage %q: %w", l.Name, err)
			}
			out = append(out, ownerRef{Owner: o, Host: strings.TrimSuffix(strings.ToLower(h), ".")})
		}
	}
	return out, nil
}

// hostOf returns the host of a TLSA owner "_25._tcp.mail.example.com.".
func hostOf(owner string) string {
	labels := strings.SplitN(strings.TrimSuffix(owner, "."), ".", 3)
	if len(labels) == 3 {
		return labels[2]
	}
	return strings.TrimSuffix(owner, ".")
}

// sameChain reports whether a and b send the same certificates.
func sameChain(a, b []*x509.Certificate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

// observed returns every record any server (or the provider) serves at ov.
func (ov *ownerView) observed() []tlsa.Record {
	var out []tlsa.Record
	if ov.Obs != nil {
		for _, s := range ov.Obs.Servers {
			if s.OK() {
				out = appendUnique(out, s.Records...)
			}
		}
	}
	for _, rr := range ov.Current {
		out = appendUnique(out, rr.Record)
	}
	return out
}

// formerOf reports whether ov is an owner only the state remembers that
// lineage may have used.
func (ov *ownerView) formerOf(lineage string) bool {
	if len(ov.Lineages) > 0 {
		return false
	}
	return len(ov.Former) == 0 || slices.Contains(ov.Former, lineage)
}
