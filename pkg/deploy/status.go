package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// OwnerStatus is what every authoritative server serves at one owner and
// whether the records danehook wants there are aged.
type OwnerStatus struct {
	Owner    string `json:"owner"`
	Zone     string `json:"zone"`
	Provider string `json:"provider"`
	// Aliases are the configured TLSA owners that are CNAMEs to Owner,
	// where the records are read and changed.
	Aliases []string `json:"aliases,omitempty"`
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
	// Unmatched lists records at the owner that danehook does not own and
	// that no chain Postfix may serve relies on (a panel's 3 0 1, a stale
	// key, a retired CA): `danectl prune` removes them once that is safe.
	Unmatched []string `json:"unmatched,omitempty"`
	// Claims lists the ownership registry's claims at the owner, as
	// "HOST: RECORD" (host_id set).
	Claims []string `json:"claims,omitempty"`
	// Held lists owned records no longer wanted whose removal waits, and why.
	Held []string `json:"held,omitempty"`
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
	// Reload is true when what Postfix presents is not the installed chain
	// (or, without endpoints, the file changed since the last reload);
	// ReloadReason says which.
	Reload       bool   `json:"reload_pending,omitempty"`
	ReloadReason string `json:"reload_reason,omitempty"`
	// Switch is what a tick would decide about the newest chain, when it
	// is not the installed one.
	Switch *SwitchDecision `json:"switch,omitempty"`
	// Presented says, per endpoint, what it presented for the lineage's
	// key algorithm in this run.
	Presented []string `json:"presented,omitempty"`
	// Verified is when a STARTTLS handshake last matched the records.
	Verified string `json:"verified,omitempty"`
	// Next is a staged key of a rotation (see `danectl rotate status`).
	Next *NextKey `json:"next,omitempty"`
	// Warnings are problems that do not break mail now but will: an issuer
	// set that no longer covers what the CA issues from.
	Warnings []string `json:"warnings,omitempty"`
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

// Status observes everything a run observes (every authoritative server
// of every owner, the lineages' files, what Postfix reads and presents),
// updates the first-seen times in the state, and reports per lineage what
// a tick would decide (switch or wait, and why) and per owner whether the
// desired records are aged, which records match no chain, and which
// removals wait. Problems at one owner or lineage are reported in its Err;
// the error return is for configuration, state and lock errors.
func (e *Engine) Status(ctx context.Context, names ...string) (*Status, error) {
	ls, s, unlock, err := e.observeLocked(ctx, names, observeOpts{Present: true, Postfix: true})
	if err != nil {
		return nil, err
	}
	defer unlock()
	next := e.candidates(s)
	want, err := e.wanted(s, next)
	if err != nil {
		return nil, err
	}
	st := &Status{}
	selected := map[string]bool{}
	for _, l := range ls {
		selected[l.Name] = true
		st.Lineages = append(st.Lineages, e.lineageStatus(s, s.lineage(l.Name), next, want))
	}
	verified := map[string]string{}
	for _, lv := range s.Lineages {
		if why := e.notPresenting(lv); why != "" {
			verified[lv.L.Name] = why
		}
	}
	for _, ov := range s.Owners {
		if len(names) > 0 && !anyIn(ov.Lineages, names) {
			continue
		}
		st.Owners = append(st.Owners, e.ownerStatus(ctx, s, ov, want[ov.Owner], next, verified))
	}
	if err := e.Store.Save(dnsDoc, s.DNS); err != nil {
		return nil, err
	}
	return st, nil
}

func (e *Engine) lineageStatus(s *snapshot, lv *lineageView, next map[string]*chain.Chain, want map[string][]tlsa.Record) LineageStatus {
	l := lv.L
	ls := LineageStatus{Name: l.Name, ChainFile: l.ChainFile}
	if lv.Err != nil {
		ls.Err = lv.Err.Error()
		return ls
	}
	ls.Next = lv.State.Next
	if !lv.State.Verified.IsZero() {
		ls.Verified = lv.State.Verified.UTC().Format("2006-01-02T15:04:05Z")
	}
	ls.Served = spkiHex(lv.Installed)
	ls.Warnings = issuerSetWarnings(lv, next[l.Name], s.Now)
	if why := e.notPresenting(lv); why != "" {
		ls.Reload = true
		ls.ReloadReason = why
	}
	if err := e.postfixReads(s, l); err != nil {
		ls.Err = err.Error()
	}
	if c := next[l.Name]; c != nil {
		d := decideSwitch(s, lv, c, want)
		ls.Switch = &d
		p := &Pending{SPKI: spkiHex(c), Leaf: describeLeaf(c), SafeAt: d.SafeAt, Blocking: d.Blocking}
		if lv.State.Pending != nil {
			p.File, p.Since = lv.State.Pending.File, lv.State.Pending.Since
		}
		if d.Safe {
			p.SafeAt, p.Blocking = s.Now, []string{"none: 'danectl tick' (or the next hook run) switches"}
		}
		ls.Pending = p
	}
	for ep, err := range lv.PresentErr {
		ls.Presented = append(ls.Presented, fmt.Sprintf("%s: %v", ep, err))
	}
	for ep, certs := range lv.Presented {
		state := "the installed chain"
		if lv.Installed == nil || !sameChain(certs, lv.Installed.Served()) {
			state = "NOT the installed chain"
		}
		ls.Presented = append(ls.Presented, fmt.Sprintf("%s: %s (%s)", ep, describeCert(certs), state))
	}
	sort.Strings(ls.Presented)
	return ls
}

func (e *Engine) ownerStatus(ctx context.Context, s *snapshot, ov *ownerView, want []tlsa.Record, next map[string]*chain.Chain, verified map[string]string) OwnerStatus {
	os := OwnerStatus{Owner: ov.Owner, Aliases: ov.Aliases, Zone: ov.Zone, Provider: ov.Provider, Lineages: ov.Lineages, Owned: s.DNS.Owned[ov.Owner]}
	os.Records.Owner = ov.Owner
	if ov.Err != nil {
		os.Err = ov.Err.Error()
		return os
	}
	os.Observation = ov.Obs
	os.Records = propagate.AgeSet(ov.Obs, s.DNS.Seen, want, s.Now)
	for _, r := range unmatched(s, ov) {
		os.Unmatched = append(os.Unmatched, r.String())
	}
	for _, c := range ov.Claims {
		os.Claims = append(os.Claims, c.Host+": "+c.Record.String())
	}
	_, held := decideRemovals(s, ov, want, next, verified, nil)
	for _, h := range held {
		os.Held = append(os.Held, fmt.Sprintf("%s: %s", h.RR.Record, h.Reason))
	}
	ck := newChecker(e.Config.Providers[ov.Provider], ov.TTL, ov.RequireDNSSEC)
	sec, err := ck.DNSSEC(ctx, ov.Zone)
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
			parts = append(parts, fmt.Sprintf("lineage %s: reload and verification pending (%s)", l.Name, l.ReloadReason))
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
