package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/propagate"
)

// OwnerStatus is what every authoritative server serves at one owner and
// whether the records danehook wants there are aged.
type OwnerStatus struct {
	Owner    string `json:"owner"`
	Zone     string `json:"zone"`
	Provider string `json:"provider"`
	// Lineages that have records at the owner.
	Lineages []string `json:"lineages"`
	// Observation holds each server's serial and records.
	Observation *propagate.Observation `json:"observation,omitempty"`
	// Records tells, per desired record, whether it is aged or when it
	// will be, and which servers block it.
	Records propagate.SetStatus `json:"records"`
	// DNSSEC tells whether the zone is signed.
	DNSSEC *propagate.DNSSECStatus `json:"dnssec,omitempty"`
	// Owned lists the records danehook published at the owner.
	Owned []string `json:"owned"`
	// Err is set when the owner could not be observed.
	Err string `json:"error,omitempty"`
}

// LineageStatus is the state of one lineage.
type LineageStatus struct {
	Name      string `json:"name"`
	ChainFile string `json:"chain_file"`
	// Served is the 3 1 1 data of the key in the served chain file ("" when
	// the file does not exist yet).
	Served string `json:"served_spki,omitempty"`
	// Pending is a switch waiting for its records to age.
	Pending *Pending `json:"pending,omitempty"`
	// Reload is true when the served chain changed and Postfix has not yet
	// been reloaded and verified on it.
	Reload bool `json:"reload_pending,omitempty"`
	// Verified is when a STARTTLS handshake last matched the records.
	Verified string `json:"verified,omitempty"`
	// Next is a staged key of a rotation (see `danectl rotate status`).
	Next *NextKey `json:"next,omitempty"`
	// Err is set when the lineage's chains could not be read.
	Err string `json:"error,omitempty"`
}

// Status is the report of `danectl status`.
type Status struct {
	Lineages []LineageStatus `json:"lineages"`
	Owners   []OwnerStatus   `json:"owners"`
}

// OK reports whether every owner was observed and every desired record is
// aged and nothing waits.
func (s *Status) OK() bool {
	for _, o := range s.Owners {
		if o.Err != "" || !o.Records.Aged {
			return false
		}
	}
	for _, l := range s.Lineages {
		if l.Err != "" || l.Pending != nil || l.Reload {
			return false
		}
	}
	return true
}

// Status asks every authoritative server of every owner of the named
// lineages (all when empty) what it serves, updates the first-seen times in
// the state, and reports per owner and per server whether the desired
// records are aged or when they will be. Problems at one owner are reported
// in its Err; the error return is for configuration, state and lock errors.
func (e *Engine) Status(ctx context.Context, names ...string) (*Status, error) {
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	st := &Status{}
	for _, l := range ls {
		st.Lineages = append(st.Lineages, e.lineageStatus(l))
	}
	d, err := e.desired(nil)
	if err != nil {
		return nil, err
	}
	os, err := e.ownersOf(names)
	if err != nil {
		return nil, err
	}
	now := e.now()
	for _, o := range os {
		st.Owners = append(st.Owners, e.ownerStatus(ctx, o, d, dns, now))
	}
	// A pending switch's safe time and blockers as of now, not as of the
	// hook run that recorded it.
	for i, ls := range st.Lineages {
		if ls.Pending == nil {
			continue
		}
		l := e.Config.Lineages[ls.Name]
		c, err := e.loadChain(l, ls.Pending.File)
		if err != nil || c == nil {
			continue
		}
		if sf, err := e.safety(ctx, l, c, dns); err == nil {
			p := *ls.Pending
			p.SafeAt, p.Blocking = sf.SafeAt, sf.Blocking
			if sf.Safe {
				p.SafeAt, p.Blocking = now, []string{"none: 'danectl tick' (or the next hook run) switches"}
			}
			st.Lineages[i].Pending = &p
		}
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		return nil, err
	}
	return st, nil
}

func (e *Engine) lineageStatus(l *config.Lineage) LineageStatus {
	ls := LineageStatus{Name: l.Name, ChainFile: l.ChainFile}
	s, err := e.loadLineage(l.Name)
	if err != nil {
		ls.Err = err.Error()
		return ls
	}
	ls.Pending, ls.Reload, ls.Next = s.Pending, e.needsReload(l, s), s.Next
	if !s.Verified.IsZero() {
		ls.Verified = s.Verified.UTC().Format("2006-01-02T15:04:05Z")
	}
	c, err := e.loadChain(l, l.ChainFile)
	if err != nil {
		ls.Err = err.Error()
	}
	ls.Served = spkiHex(c)
	return ls
}

// observe asks every authoritative server of zone what it serves at owner
// and records first sightings in dns.Seen.
func (e *Engine) observe(ctx context.Context, provider, zone, owner string, ttl uint32, requireDNSSEC bool, dns *DNSState) (*propagate.Observation, *propagate.Checker, error) {
	pc, ok := e.Config.Providers[provider]
	if !ok {
		return nil, nil, fmt.Errorf("no [provider.%s] in %s", provider, e.Config.Path)
	}
	ck := newChecker(pc, ttl, requireDNSSEC)
	obs, err := ck.Observe(ctx, zone, owner)
	if err != nil {
		return nil, ck, err
	}
	dns.Seen.Update(obs, e.now())
	return obs, ck, nil
}

func (e *Engine) ownerStatus(ctx context.Context, o string, d *desiredSet, dns *DNSState, now time.Time) OwnerStatus {
	os := OwnerStatus{Owner: o, Provider: d.provider[o], Lineages: d.lineages[o], Owned: dns.Owned[o]}
	os.Records.Owner = o
	pub, err := e.publisher(d.provider[o])
	if err != nil {
		os.Err = err.Error()
		return os
	}
	zone, err := pub.FindZone(ctx, o)
	if err != nil {
		os.Err = err.Error()
		return os
	}
	os.Zone = zone
	obs, ck, err := e.observe(ctx, d.provider[o], zone, o, d.ttl[o], d.dnssec[o], dns)
	if err != nil {
		os.Err = err.Error()
		return os
	}
	os.Observation = obs
	os.Records = propagate.AgeSet(obs, dns.Seen, d.desired[o], now)
	sec, err := ck.DNSSEC(ctx, zone)
	if err != nil {
		os.Err = err.Error()
	}
	os.DNSSEC = &sec
	return os
}

// Waiting says in one line what keeps s from being OK: pending switches,
// reloads, records not aged, owners that could not be observed.
func (s *Status) Waiting() string {
	var parts []string
	for _, l := range s.Lineages {
		switch {
		case l.Err != "":
			parts = append(parts, fmt.Sprintf("lineage %s: %s", l.Name, l.Err))
		case l.Pending != nil:
			parts = append(parts, fmt.Sprintf("lineage %s: switch pending", l.Name))
		case l.Reload:
			parts = append(parts, fmt.Sprintf("lineage %s: reload and verification pending", l.Name))
		}
	}
	for _, o := range s.Owners {
		switch {
		case o.Err != "":
			parts = append(parts, fmt.Sprintf("%s: %s", o.Owner, o.Err))
		case !o.Records.Aged:
			parts = append(parts, fmt.Sprintf("%s: records not aged yet", o.Owner))
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, "; ")
}
