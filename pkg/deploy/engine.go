package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

// DefaultLockWait is how long a run waits for another danehook run to
// release the lock: less than lego's 2-minute hook timeout.
const DefaultLockWait = 90 * time.Second

// Engine runs danehook's steps for a configuration. Its exported fields
// may be set before the first call; the zero values are usable.
type Engine struct {
	Config *config.Config
	Store  *state.Store
	// Publishers overrides the provider built from the configuration, by
	// provider name (fault injection in tests).
	Publishers map[string]Publisher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LockWait bounds the wait for the lock; 0 means DefaultLockWait.
	LockWait time.Duration
}

// New returns an Engine for cfg with its state under cfg.State().
func New(cfg *config.Config) *Engine {
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}}
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// lock takes the one lock every danehook run holds while it reads and
// changes state, DNS or the served chain.
func (e *Engine) lock() (*state.Lock, error) {
	wait := e.LockWait
	if wait == 0 {
		wait = DefaultLockWait
	}
	return e.Store.Acquire(lockName, wait)
}

func (e *Engine) publisher(name string) (Publisher, error) {
	if p, ok := e.Publishers[name]; ok {
		return p, nil
	}
	pc, ok := e.Config.Providers[name]
	if !ok {
		return nil, fmt.Errorf("no [provider.%s] in %s", name, e.Config.Path)
	}
	p, err := NewPublisher(pc)
	if err != nil {
		return nil, err
	}
	if e.Publishers == nil {
		e.Publishers = map[string]Publisher{}
	}
	e.Publishers[name] = p
	return p, nil
}

func (e *Engine) loadDNS() (*DNSState, error) {
	s := &DNSState{}
	if _, err := e.Store.Load(dnsDoc, s); err != nil {
		return nil, err
	}
	if s.Owned == nil {
		s.Owned = map[string][]string{}
	}
	if s.Seen == nil {
		s.Seen = &propagate.Seen{}
	}
	return s, nil
}

func (e *Engine) loadLineage(name string) (*LineageState, error) {
	s := &LineageState{}
	_, err := e.Store.Load(name, s)
	return s, err
}

// OwnerPlan is the plan at one TLSA owner.
type OwnerPlan struct {
	Owner    string
	Zone     string
	Provider string
	// TTL of added records, seconds: the largest TTL of the lineages that
	// share the owner.
	TTL uint32
	// Lineages that have records at the owner.
	Lineages []string
	// Desired is the union of what those lineages' chains need.
	Desired []tlsa.Record
	// Changes turns what the provider serves into Desired: adds, removals
	// of owned records nobody needs, and keeps.
	Changes dnsupdate.Plan
	// Held lists removals postponed because the chain Postfix was last
	// verified on needs them and a newer chain file waits for its reload
	// and verification.
	Held []dnsupdate.RR
}

// desiredSet is the desired RRset of every owner, computed over every
// configured lineage (lineages may share owners).
type desiredSet struct {
	owners   []string
	desired  map[string][]tlsa.Record
	ttl      map[string]uint32
	provider map[string]string
	lineages map[string][]string
	// held are records that must not be removed yet, by owner: those of
	// the chain Postfix was last verified on, while a newer chain file
	// waits for its reload and verification.
	held   map[string][]tlsa.Record
	dnssec map[string]bool
}

// desired computes the desired RRset of every owner of every lineage.
// extra adds chains by lineage name (the chain dane-deploy is deploying).
func (e *Engine) desired(extra map[string][]*chain.Chain) (*desiredSet, error) {
	d := &desiredSet{desired: map[string][]tlsa.Record{}, ttl: map[string]uint32{}, provider: map[string]string{},
		lineages: map[string][]string{}, held: map[string][]tlsa.Record{}, dnssec: map[string]bool{}}
	for _, name := range e.Config.LineageNames() {
		l := e.Config.Lineages[name]
		st, err := e.loadLineage(name)
		if err != nil {
			return nil, err
		}
		cs, err := e.loadChains(l, st)
		if err != nil {
			return nil, err
		}
		cs.Extra = append(cs.Extra, extra[name]...)
		var recs []tlsa.Record
		if st.Next != nil && containsUsage(l, "3 1 1") {
			r, err := nextRecord(st.Next)
			if err != nil {
				return nil, fmt.Errorf("lineage %q: staged key: %w", name, err)
			}
			recs = append(recs, r)
		}
		for _, c := range cs.all() {
			r, err := records(l, c)
			if err != nil {
				return nil, err
			}
			recs = appendUnique(recs, r...)
		}
		os, err := owners(l)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			if p, ok := d.provider[o]; ok && p != l.Provider {
				return nil, fmt.Errorf("owner %s: lineages %s use different providers (%q, %q): an owner must be published by one provider",
					o, strings.Join(append(d.lineages[o], name), ", "), p, l.Provider)
			}
			if _, ok := d.provider[o]; !ok {
				d.owners = append(d.owners, o)
			}
			d.provider[o] = l.Provider
			d.desired[o] = appendUnique(d.desired[o], recs...)
			d.ttl[o] = max(d.ttl[o], uint32(l.TTL))
			d.lineages[o] = append(d.lineages[o], name)
			if e.needsReload(l, st) {
				for _, p := range st.VerifiedRecords {
					if r, err := tlsa.Parse(p); err == nil {
						d.held[o] = appendUnique(d.held[o], r)
					}
				}
			}
			d.dnssec[o] = d.dnssec[o] || l.RequireDNSSEC
		}
	}
	sort.Strings(d.owners)
	return d, nil
}

// ownersOf returns the owners of the named lineages (all when empty).
func (e *Engine) ownersOf(names []string) ([]string, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, l := range ls {
		os, err := owners(l)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			if !seen[o] {
				seen[o] = true
				out = append(out, o)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// plan computes the plan at each owner of the named lineages.
func (e *Engine) plan(ctx context.Context, names []string, extra map[string][]*chain.Chain, dns *DNSState) ([]*OwnerPlan, error) {
	d, err := e.desired(extra)
	if err != nil {
		return nil, err
	}
	os, err := e.ownersOf(names)
	if err != nil {
		return nil, err
	}
	var out []*OwnerPlan
	for _, o := range os {
		pub, err := e.publisher(d.provider[o])
		if err != nil {
			return nil, err
		}
		zone, err := pub.FindZone(ctx, o)
		if err != nil {
			return nil, err
		}
		current, err := pub.Records(ctx, o)
		if err != nil {
			return nil, err
		}
		op := &OwnerPlan{Owner: o, Zone: zone, Provider: d.provider[o], TTL: d.ttl[o], Lineages: d.lineages[o], Desired: d.desired[o]}
		for _, c := range dnsupdate.Diff(o, d.ttl[o], current, d.desired[o], dns.owned(o)) {
			if c.Op == dnsupdate.Remove && containsRecord(d.held[o], c.Record) {
				op.Held = append(op.Held, c.RR)
				c.Op = dnsupdate.Keep
			}
			op.Changes = append(op.Changes, c)
		}
		out = append(out, op)
	}
	return out, nil
}

// Plan returns the changes Publish would make at every owner of the named
// lineages (all when names is empty), without changing anything. Errors
// name the lineage, file, provider or server at fault.
func (e *Engine) Plan(ctx context.Context, names ...string) ([]*OwnerPlan, error) {
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	return e.plan(ctx, names, nil, dns)
}

// Publish applies the plan of the named lineages (all when empty) under the
// lock and records the records it added as owned. It is idempotent: a second
// run finds nothing to change and sends nothing. Changes go per provider, one
// UPDATE per zone for RFC 2136. On error the records already sent stay owned,
// so the next run repairs the difference.
func (e *Engine) Publish(ctx context.Context, names ...string) ([]*OwnerPlan, error) {
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	plans, err := e.plan(ctx, names, nil, dns)
	if err != nil {
		return nil, err
	}
	return plans, e.apply(ctx, plans, dns)
}

// apply sends the plans' changes, provider by provider, keeping dns's owned
// records in step: adds are recorded as owned before they are sent (a crash
// after sending never leaves an unowned record of ours), removals are
// forgotten only once sent.
func (e *Engine) apply(ctx context.Context, plans []*OwnerPlan, dns *DNSState) error {
	byProvider := map[string][]dnsupdate.Change{}
	var providers []string
	for _, p := range plans {
		for _, c := range p.Changes {
			if c.Op == dnsupdate.Keep {
				continue
			}
			if _, ok := byProvider[p.Provider]; !ok {
				providers = append(providers, p.Provider)
			}
			byProvider[p.Provider] = append(byProvider[p.Provider], c)
			if c.Op == dnsupdate.Add {
				dns.own(c.Owner, c.Record)
			}
		}
	}
	if len(providers) == 0 {
		return nil
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		return err
	}
	var errs []error
	for _, name := range providers {
		pub, err := e.publisher(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := pub.Apply(ctx, byProvider[name]); err != nil {
			errs = append(errs, fmt.Errorf("provider %q: %w", name, err))
			continue
		}
		for _, c := range byProvider[name] {
			if c.Op == dnsupdate.Remove {
				dns.disown(c.Owner, c.Record)
			}
		}
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
