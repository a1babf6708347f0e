package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/schedule"
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
	// NewPublisher builds the provider of a [provider.NAME] table, reading
	// its credentials; it is called at most once per provider and Engine.
	// cmd/internal/cliapp sets it. Nil means only Publishers are known.
	NewPublisher func(*config.Provider) (Publisher, error)
	// Publishers overrides the provider built from the configuration, by
	// provider name (tests and fault injection); NewPublisher's results
	// are kept here.
	Publishers map[string]Publisher
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LockWait bounds the wait for the lock; 0 means DefaultLockWait.
	LockWait time.Duration
	// PublishWait overrides [schedule] publish_wait (tests); nil means the
	// configuration's.
	PublishWait *time.Duration
	// Scheduler schedules the run that completes a switch at the moment it
	// becomes safe (cmd/internal/cliapp sets it from [schedule] via); nil
	// schedules nothing.
	Scheduler schedule.Scheduler
	// TickCommand is the completing run's argv; nil means danectl beside
	// the running program, "tick --config <this configuration>".
	TickCommand []string
	// Debug, when set, receives what a run decided about how to observe
	// (for example that a zone's owners were read signed because unsigned
	// queries see another view of it): a message and slog-style key/value
	// pairs, never a secret. cmd/internal/cliapp sends it to --verbose.
	Debug func(msg string, args ...any)

	mu sync.Mutex // guards Publishers: owners are observed concurrently
}

// New returns an Engine for cfg with its state under cfg.State().
func New(cfg *config.Config) *Engine {
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}}
}

func (e *Engine) debug(msg string, args ...any) {
	if e.Debug != nil {
		e.Debug(msg, args...)
	}
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

// publisher returns the provider named name: from Publishers, else built
// by NewPublisher from the configuration and kept. Safe for concurrent use.
func (e *Engine) publisher(name string) (Publisher, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.Publishers[name]; ok {
		return p, nil
	}
	pc, ok := e.Config.Providers[name]
	if !ok {
		return nil, fmt.Errorf("no [provider.%s] in %s", name, e.Config.Path)
	}
	if e.NewPublisher == nil {
		return nil, fmt.Errorf("provider %q: the engine was given no way to build providers (Engine.NewPublisher is nil)", name)
	}
	p, err := e.NewPublisher(pc)
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
	// Held lists owned records that are no longer wanted but whose
	// removal waits (a chain Postfix may serve relies on them, or what
	// Postfix presents was not verified); HeldReasons says why, in order.
	Held        []dnsupdate.RR
	HeldReasons []string
	// HeldAdditions are the first records of an owner no server serves a
	// TLSA record at yet, not published while what Postfix is configured
	// to serve would not match them (HeldAdditionsReason says what).
	HeldAdditions       []dnsupdate.RR
	HeldAdditionsReason string
	// keepClaims leaves this host's claims at the owner as they are (a
	// plan whose Desired is not the owner's desired RRset: Prune).
	keepClaims bool
	// ZoneMessages is how many UPDATE messages the changes of the run in
	// the owner's zone take (all owners of the zone share the number): for
	// Publish the additions it sent, for Plan its additions and removals
	// as one run would send them. More than 1 when they do not fit in one
	// DNS message and are split, additions first (dnsupdate.RFC2136.Apply);
	// 0 when nothing changes there or the provider does not count messages
	// (MessageCounter).
	ZoneMessages int
}

// MessageCounter is implemented by a Publisher that sends a zone's changes
// as DNS messages and can say how many a set of changes takes, per zone
// (*dnsupdate.RFC2136.Messages).
type MessageCounter interface {
	Messages(ctx context.Context, changes []dnsupdate.Change) (map[string]int, error)
}

var (
	_ MessageCounter = (*dnsupdate.RFC2136)(nil)
	_ MessageCounter = (*dnsupdate.Libdns)(nil) // libdns/rfc2136 only: ErrNotMessages for an API provider
)

// countMessages sets ZoneMessages on plans: the changes of each provider
// that counts messages (only the additions when addsOnly), per zone. A
// provider that cannot count leaves 0.
func (e *Engine) countMessages(ctx context.Context, plans []*OwnerPlan, addsOnly bool) {
	byProvider := map[string][]dnsupdate.Change{}
	for _, p := range plans {
		for _, c := range p.Changes {
			if !addsOnly || c.Op == dnsupdate.Add {
				byProvider[p.Provider] = append(byProvider[p.Provider], c)
			}
		}
	}
	for name, cs := range byProvider {
		pub, err := e.publisher(name)
		if err != nil {
			continue
		}
		mc, ok := pub.(MessageCounter)
		if !ok {
			continue
		}
		n, err := mc.Messages(ctx, cs)
		if err != nil {
			continue
		}
		for _, p := range plans {
			if p.Provider == name {
				p.ZoneMessages = n[dnsName(p.Zone)]
			}
		}
	}
}

// dnsName is a zone name as providers key it: absolute, lower case.
func dnsName(z string) string {
	z = strings.ToLower(z)
	if !strings.HasSuffix(z, ".") {
		z += "."
	}
	return z
}

// Plan returns the changes a run would make at every owner of the named
// lineages (all when names is empty), without changing anything: the
// additions Publish, dane-deploy and tick send, and the removals tick would
// send once it has verified what Postfix presents (Held lists those that
// must wait, with the reason in HeldReasons). Errors name the lineage,
// file, provider or server at fault; an untrusted chain of the ACME
// client's files is left out of the plans and reported (ErrUntrusted),
// as Publish does.
//
// Plan holds the lock like every run that saves: it records this run's
// sightings of records in dns.json (aging counts from them), and a save
// outside the lock could overwrite what a concurrent tick recorded (the
// records it published or removed, which would then be owned by nobody).
func (e *Engine) Plan(ctx context.Context, names ...string) ([]*OwnerPlan, error) {
	ls, s, unlock, err := e.observeLocked(ctx, names, observeOpts{Present: true, Postfix: true})
	if err != nil {
		return nil, err
	}
	defer unlock()
	// As Publish: an untrusted chain of the ACME client's files is not
	// planned (publish would refuse it); the error says why.
	untrusted := joinByName(e.dropUntrusted(s))
	next := e.candidates(s)
	want, err := e.wanted(s, next)
	if err != nil {
		return nil, err
	}
	var rs []ownerRef
	for _, l := range ls {
		lv := s.lineage(l.Name)
		if lv.Err != nil {
			return nil, lv.Err
		}
		rs = append(rs, lv.Refs...)
	}
	if len(names) == 0 {
		rs = nil
	}
	verified := map[string]string{}
	for _, lv := range s.Lineages {
		if why := e.notPresenting(lv); why != "" {
			verified[lv.L.Name] = why + " (a tick reloads and verifies first)"
		}
	}
	plans, err := e.addPlans(s, want, rs)
	if err != nil {
		return plans, err
	}
	for _, op := range plans {
		remove, held := decideRemovals(s, s.owner(op.Owner), want[op.Owner], next, verified, nil)
		for _, rr := range remove {
			op.Changes = append(op.Changes, dnsupdate.Change{Op: dnsupdate.Remove, RR: rr})
		}
		for _, h := range held {
			op.Held = append(op.Held, h.RR)
			op.HeldReasons = append(op.HeldReasons, h.Reason)
		}
		for _, rr := range s.owner(op.Owner).Current {
			if !hasChange(op.Changes, rr.Record) {
				op.Changes = append(op.Changes, dnsupdate.Change{Op: dnsupdate.Keep, RR: rr})
			}
		}
	}
	e.countMessages(ctx, plans, false)
	return plans, errors.Join(untrusted, e.saveDNS(s))
}

func hasChange(cs []dnsupdate.Change, rec tlsa.Record) bool {
	for _, c := range cs {
		if c.Record.Equal(rec) {
			return true
		}
	}
	return false
}

// Publish sends, under the lock, the additions of the named lineages'
// owners (all when empty) and records them as owned. It never removes a
// record: removal waits for tick, which first verifies what Postfix
// presents. It is idempotent: a second run finds nothing to add and sends
// nothing. Changes go per provider, one UPDATE per zone for RFC 2136 (as
// few as hold them when they do not fit in one DNS message). On
// error the records already sent stay owned, so the next run repairs the
// difference. The records of an ACME client's files whose issuer is not
// trusted (a lineage without allow_untrusted) are not published: the
// error wraps ErrUntrusted, after the other records went out.
func (e *Engine) Publish(ctx context.Context, names ...string) ([]*OwnerPlan, error) {
	ls, s, unlock, err := e.observeLocked(ctx, names, observeOpts{})
	if err != nil {
		return nil, err
	}
	defer unlock()
	// The ACME client's files are published only from a trusted issuer
	// (allow_untrusted aside); the others' records go out all the same.
	untrusted := joinByName(e.dropUntrusted(s))
	want, err := e.wanted(s, e.candidates(s))
	if err != nil {
		return nil, err
	}
	var rs []ownerRef
	for _, l := range ls {
		if lv := s.lineage(l.Name); lv.Err != nil {
			return nil, lv.Err
		} else {
			rs = append(rs, lv.Refs...)
		}
	}
	plans, err := e.addPlans(s, want, rs)
	if err != nil {
		return plans, errors.Join(untrusted, err, e.save(s))
	}
	// The plan's message counts (for what publish prints) are packed while
	// apply saves the ownership it sends (an fsynced write of dns.json,
	// 20 ms at 5,000 owners): RFC2136 remembers the packing, so apply's
	// own packing reuses it. countMessages only reads the plans' changes
	// and writes their ZoneMessages, which apply does not touch.
	counted := make(chan struct{})
	go func() { defer close(counted); e.countMessages(ctx, plans, true) }()
	err = e.apply(ctx, s, plans)
	<-counted
	if err != nil {
		return plans, errors.Join(untrusted, err, e.save(s))
	}
	return plans, errors.Join(untrusted, e.save(s))
}
