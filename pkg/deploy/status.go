package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/schedule"
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
	// NextAgedAt is when the staged key's record is aged at every owner of
	// the lineage, from which `danectl rotate commit` is allowed (the time
	// `danectl rotate status` reports; in the past once allowed); zero
	// while a server blocks it, and when no key is staged or it is
	// committed.
	NextAgedAt time.Time `json:"next_aged_at,omitzero"`
	// Scheduled is the run scheduled to complete the pending switch (or,
	// with rotate_every, the rotation commit) when it becomes safe; nil
	// when none is (ScheduleErr says why when scheduling failed; else the
	// timer's next `danectl tick` completes it).
	Scheduled   *schedule.Entry `json:"scheduled,omitempty"`
	ScheduleErr string          `json:"schedule_error,omitempty"`
	// NotIssued is true for a lineage configured before its first
	// issuance (the ACME client holds no certificate for it yet);
	// NotIssuedReason says which file is missing. Such a lineage does not
	// make the report fail.
	NotIssued       bool   `json:"not_issued,omitempty"`
	NotIssuedReason string `json:"not_issued_reason,omitempty"`
	// Warnings are problems that do not break mail now but will: an issuer
	// set that no longer covers what the CA issues from; a chain of the
	// ACME client's files (or a pending switch) whose issuer is not
	// trusted, which no run publishes or installs (allow_untrusted).
	Warnings []string `json:"warnings,omitempty"`
	// Err is set when the lineage's chains could not be read.
	Err string `json:"error,omitempty"`

	// ServedNotBefore and ServedNotAfter are the validity of the served
	// chain file's leaf (RFC 5280 §4.1.2.5), UTC; zero when the file does
	// not exist.
	ServedNotBefore time.Time `json:"served_not_before,omitzero"`
	ServedNotAfter  time.Time `json:"served_not_after,omitzero"`
	// VerifiedAt is Verified as a time (zero when never verified).
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// Unprotected names, per TLSA owner, why the served chain file matches
	// no aged record there (the invariant of DESIGN §3 does not hold): one
	// "<owner>: <reason>" each. An owner at which no record is aged yet but
	// the chain matches one (a first issuance), or at which no RRset is
	// served or may still be cached, is not listed: no sender can fail there
	// because of danehook. Owners that could not be observed are not listed
	// (their OwnerStatus.Err says so).
	Unprotected []string `json:"unprotected,omitempty"`
	// ExpiryErr is set when a pending switch cannot become safe before the
	// served certificate expires (ServedNotAfter): the reason, with both
	// times. Senders that check dates (DANE-TA, RFC 7672 §3.1.2; PKIX) reject
	// the served chain from then until the switch.
	ExpiryErr string `json:"expiry_error,omitempty"`
}

// Status is the report of `danectl status`.
type Status struct {
	Lineages []LineageStatus `json:"lineages"`
	Owners   []OwnerStatus   `json:"owners"`
	// Refusal is set when every hook run and tick refuses to act: Postfix
	// reads TLS files that are not the lineages' chain files (certbot's
	// live/ files, a snakeoil certificate), so it serves a chain danehook
	// does not protect. It wraps ErrPostfixNotReading and has a Hint
	// (the postconf line); each issued lineage's Err says the same.
	Refusal error `json:"-"`
}

// taNameWarnings returns one warning per TLSA owner of lv at which the
// DANE-TA (2 x x) records — served there or wanted — name a certificate of
// the served chain file, or of the candidate chain cand, but do not apply
// because its leaf lacks the MX host among its names (RFC 7672 §3.2.3).
// With a 3 1 1 beside them the switch goes ahead on the 3 1 1 alone, and
// senders can use only that; the warning names the host, the owner, the
// records and the leaf's names (the lineage is the LineageStatus's, which
// every report prints it under: status's heading, --json, the plugin's
// "lineage NAME:" prefix).
func taNameWarnings(s *snapshot, lv *lineageView, cand *chain.Chain, want map[string][]tlsa.Record) []string {
	var out []string
	for _, c := range []struct {
		what  string
		chain *chain.Chain
	}{{"served chain", lv.Installed}, {"next chain", cand}} {
		if c.chain == nil || c.chain.Leaf == nil {
			continue
		}
		for _, r := range lv.Refs {
			ov := s.owner(r.Owner)
			if ov == nil || ov.Err != nil {
				continue
			}
			recs := appendUnique(append([]tlsa.Record(nil), ov.observed()...), want[r.Owner]...)
			if why := taNameMissing(c.chain.Served(), r.Host, recs); why != "" {
				out = append(out, fmt.Sprintf("host %s (%s): the %s's %s; senders can authenticate it only by the other records there: add %s to the certificate's names, or drop the 2 x x usage for this host",
					r.Host, r.Owner, c.what, why, r.Host))
			}
		}
	}
	return out
}

// withHint is err's message followed by its hint (the postconf line), for
// the Err of a report.
func withHint(err error) string {
	var h interface{ Hint() string }
	if errors.As(err, &h) && h.Hint() != "" {
		return err.Error() + "; " + h.Hint()
	}
	return err.Error()
}

// notYetWarning is Status's warning for a lineage whose chain file Postfix
// does not read while it serves no chain at all (postfixNotYet): the file
// and the postconf line.
func notYetWarning(lv *lineageView, err error) string {
	var nse *postfix.NotServedError
	fix := ""
	if errors.As(err, &nse) && nse.Fix != "" {
		fix = nse.Fix
	}
	if lv.Installed == nil {
		return fmt.Sprintf("Postfix serves no TLS chain and does not read the chain file %s, which does not exist yet: once the switch is safe, run: %s && danectl tick", lv.L.ChainFile, fix)
	}
	return fmt.Sprintf("the chain file %s is installed, and Postfix does not read it yet (it serves no TLS chain now): run: %s && danectl tick", lv.L.ChainFile, fix)
}

// unprotected returns, for each owner of lv at which the installed chain
// file matches no aged record, "<owner>: <reason>" (see
// LineageStatus.Unprotected). It follows verifyLineage's rule: with no
// record aged yet, a chain that matches a served record is a first issuance,
// not a failure.
func unprotected(s *snapshot, lv *lineageView) []string {
	var out []string
	certs := lv.Installed.Served()
	for _, r := range lv.Refs {
		ov := s.owner(r.Owner)
		if ov == nil || ov.Err != nil || ov.Obs == nil {
			continue
		}
		all := ov.observed()
		aged, _ := agedAt(ov, s.DNS.Seen, s.Now)
		switch {
		case covered(certs, r.Host, aged, s.Now):
			continue
		case len(aged) == 0 && covered(certs, r.Host, all, s.Now):
			continue
		case len(all) == 0 && !s.Now.Before(s.DNS.Seen.CachedUntil(r.Owner)):
			continue
		}
		out = append(out, fmt.Sprintf("%s: the served chain (key 3 1 1 %s) matches no aged record (records %s)",
			r.Owner, short("3 1 1 "+spkiHex(lv.Installed)), listRecords(all)))
	}
	return out
}

// expiryRisk says why a pending switch that is not safe yet cannot become
// safe before notAfter, the served leaf's expiry; "" when it can, or when
// either time is unknown (no served chain; a server blocks the switch).
func expiryRisk(notAfter, safeAt, now time.Time) string {
	switch {
	case notAfter.IsZero():
		return ""
	case !now.Before(notAfter):
		return fmt.Sprintf("the served certificate expired at %s and the pending switch is not safe yet",
			notAfter.UTC().Format(time.RFC3339))
	case !safeAt.IsZero() && !safeAt.Before(notAfter):
		return fmt.Sprintf("the pending switch becomes safe at %s, not before the served certificate expires at %s: lower the TTL or fix what delays the new records",
			safeAt.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339))
	}
	return ""
}

// OK reports whether every owner was observed and every desired record is
// aged and nothing waits.
func (s *Status) OK() bool {
	for _, o := range s.Owners {
		if s.onlyNotIssued(o) {
			continue
		}
		if o.Err != "" || !o.Records.Aged {
			return false
		}
	}
	for _, l := range s.Lineages {
		if l.Err != "" || l.Pending != nil || l.Reload || len(l.Unprotected) > 0 {
			return false
		}
	}
	return true
}

// onlyNotIssued reports whether every lineage at o is not issued yet: an
// owner with nothing to publish, which is not "not aged".
func (s *Status) onlyNotIssued(o OwnerStatus) bool {
	if o.Err != "" || len(o.Lineages) == 0 {
		return false
	}
	for _, name := range o.Lineages {
		found := false
		for _, l := range s.Lineages {
			if l.Name == name {
				if !l.NotIssued {
					return false
				}
				found = true
			}
		}
		if !found {
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
	// What a run would refuse to publish or install is not desired here
	// either; the refusal is the lineage's warning.
	untrusted := e.dropUntrusted(s)
	next := e.candidates(s)
	want, err := e.wanted(s, next)
	if err != nil {
		return nil, err
	}
	st := &Status{}
	selected := map[string]bool{}
	for _, l := range ls {
		selected[l.Name] = true
		ls := e.lineageStatus(st, s, s.lineage(l.Name), next, want)
		if err := untrusted[l.Name]; err != nil {
			ls.Warnings = append(ls.Warnings, "not published or installed: "+err.Error())
		}
		st.Lineages = append(st.Lineages, ls)
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
	if err := e.saveDNS(s); err != nil {
		return nil, err
	}
	return st, nil
}

func (e *Engine) lineageStatus(st *Status, s *snapshot, lv *lineageView, next map[string]*chain.Chain, want map[string][]tlsa.Record) LineageStatus {
	l := lv.L
	ls := LineageStatus{Name: l.Name, ChainFile: l.ChainFile}
	if lv.Err != nil {
		ls.Err = lv.Err.Error()
		return ls
	}
	if lv.NotIssued {
		ls.NotIssued, ls.NotIssuedReason = true, notIssuedReason(l)
		return ls
	}
	ls.Next = lv.State.Next
	if n := ls.Next; n != nil && n.Committed.IsZero() {
		ls.NextAgedAt = e.nextAgedAt(s, lv, n)
	}
	if sc := lv.State.Scheduled; sc != nil && !sc.At.Before(s.Now.Add(-time.Minute)) {
		ls.Scheduled = sc
	}
	ls.ScheduleErr = lv.State.ScheduleErr
	if !lv.State.Verified.IsZero() {
		ls.Verified = lv.State.Verified.UTC().Format(time.RFC3339)
		ls.VerifiedAt = lv.State.Verified.UTC()
	}
	ls.Served = spkiHex(lv.Installed)
	if lv.Installed != nil && lv.Installed.Leaf != nil {
		ls.ServedNotBefore = lv.Installed.Leaf.NotBefore.UTC()
		ls.ServedNotAfter = lv.Installed.Leaf.NotAfter.UTC()
		ls.Unprotected = unprotected(s, lv)
	}
	ls.Warnings = issuerSetWarnings(lv, next[l.Name], s.Now)
	ls.Warnings = append(ls.Warnings, taNameWarnings(s, lv, next[l.Name], want)...)
	if why := e.notPresenting(lv); why != "" {
		ls.Reload = true
		ls.ReloadReason = why
	}
	if err := e.postfixForeign(s); err != nil {
		// Every run refuses (exit 8 in the binaries): Status says so.
		held := false
		for _, r := range lv.Refs {
			if ov := s.owner(r.Owner); ov != nil && ov.Err == nil && e.firstRecordsHeld(s, ov, additions(ov, want[ov.Owner])) != "" {
				held = true
			}
		}
		if c := next[l.Name]; c != nil && lv.Installed == nil && decideSwitch(s, lv, c, want).Safe {
			err = switchesSafe(err)
		}
		if held {
			err = heldFirstRefusal(err)
		}
		ls.Err = withHint(err)
		st.Refusal = err
	} else if err := e.postfixReads(s, l); err != nil {
		if _, ok := postfixNotYet(s, l, err); ok && (lv.Installed == nil || lv.State.VerifiedChain == "") {
			// Postfix serves no chain at all (a first issuance): the
			// postconf line is the operator's next step, not an error.
			ls.Warnings = append(ls.Warnings, notYetWarning(lv, err))
		} else {
			ls.Err = withHint(refuseFirst(lv, err))
		}
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
		} else {
			ls.ExpiryErr = expiryRisk(ls.ServedNotAfter, d.SafeAt, s.Now)
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
		case l.ExpiryErr != "":
			parts = append(parts, fmt.Sprintf("lineage %s: %s", l.Name, l.ExpiryErr))
		case len(l.Unprotected) > 0:
			parts = append(parts, fmt.Sprintf("lineage %s: %s", l.Name, strings.Join(l.Unprotected, "; ")))
		case l.Pending != nil:
			parts = append(parts, fmt.Sprintf("lineage %s: switch pending", l.Name))
		case l.Reload:
			parts = append(parts, fmt.Sprintf("lineage %s: reload and verification pending (%s)", l.Name, l.ReloadReason))
		}
	}
	for _, o := range s.Owners {
		switch {
		case s.onlyNotIssued(o):
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
