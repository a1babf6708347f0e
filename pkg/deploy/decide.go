package deploy

import (
	"crypto/x509"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// The decision functions of the invariant (DESIGN §2–§3). They read a
// snapshot and return what to do with the reasons, and change nothing, so
// that `danectl plan` and `status` print the reasons the hooks act on and
// tests can enumerate states without servers.

// candidate returns the chain lv should serve next: the newest of the
// renewal a hook was handed, what the ACME client holds, a recorded
// pending chain, and the installed chain with the trust anchor the
// configuration asks for — by the leaf's notBefore, ties to the earlier in
// that order. It returns nil when the installed file already sends that
// chain. A hook that failed or was killed, or a renewal made without
// hooks, is carried on by the next run this way (issue: "never resumed").
func candidate(lv *lineageView, installedTA *chain.Chain) *chain.Chain {
	var best *chain.Chain
	for _, c := range []*chain.Chain{lv.Renewal, lv.Source, lv.Pending, installedTA} {
		if c == nil || c.Leaf == nil {
			continue
		}
		if best == nil || c.Leaf.NotBefore.After(best.Leaf.NotBefore) {
			best = c
		}
	}
	if best == nil {
		return nil
	}
	if lv.Installed != nil && sameChain(lv.Installed.Served(), best.Served()) {
		return nil
	}
	return best
}

// covered tells whether certs, sent by the server for host, match at least
// one of recs with a sender's full DANE semantics (postfix.Evaluate).
func covered(certs []*x509.Certificate, host string, recs []tlsa.Record, now time.Time) bool {
	if len(certs) == 0 || len(recs) == 0 {
		return false
	}
	return postfix.Evaluate(certs, host, recs, now).OK()
}

// coveredAt tells whether certs match one of recs for every host whose
// TLSA owner is ov (ov.Host and the hosts of its aliases): DANE-TA
// records also need the name (RFC 7672 §3.2.3).
func coveredAt(ov *ownerView, certs []*x509.Certificate, recs []tlsa.Record, now time.Time) bool {
	if !covered(certs, ov.Host, recs, now) {
		return false
	}
	for _, a := range ov.Aliases {
		if !covered(certs, hostOf(a), recs, now) {
			return false
		}
	}
	return true
}

// taNameMissing says why the DANE-TA (2 x x) records among recs that name
// a certificate of certs do not apply at host: the leaf does not carry
// host among its names (RFC 7672 §3.2.3, postfix.CheckName). "" when no
// such record names a certificate of certs, or the name is there.
func taNameMissing(certs []*x509.Certificate, host string, recs []tlsa.Record) string {
	if len(certs) == 0 {
		return ""
	}
	var ta []string
	for _, r := range recs {
		if r.Usage == tlsa.UsageDANETA && touches(r, certs) {
			ta = append(ta, short(r.String()))
		}
	}
	if len(ta) == 0 {
		return ""
	}
	err := postfix.CheckName(certs[0], host)
	if err == nil {
		return ""
	}
	return fmt.Sprintf("DANE-TA %s does not apply to host %s: %v", strings.Join(ta, ", "), host, err)
}

// touches reports whether rec's data names any certificate (or key) of
// certs, whatever its usage: a record a chain may rely on.
func touches(rec tlsa.Record, certs []*x509.Certificate) bool {
	res := tlsa.Match(certs, []tlsa.Record{rec})
	return len(res.Matches) > 0 || len(res.Rejected) > 0
}

// agedAt returns the records of ov that are aged at now, and the status of
// every observed record.
func agedAt(ov *ownerView, seen *propagate.Seen, now time.Time) ([]tlsa.Record, map[string]propagate.Status) {
	var aged []tlsa.Record
	st := map[string]propagate.Status{}
	if ov.Obs == nil {
		return nil, st
	}
	for _, r := range ov.observed() {
		s := propagate.Age(ov.Obs, seen, r, now)
		st[strings.ToLower(r.String())] = s
		if s.Aged {
			aged = append(aged, r)
		}
	}
	return aged, st
}

// SwitchDecision says whether one lineage switches to a new chain in this
// run, and why.
type SwitchDecision struct {
	Lineage string `json:"lineage"`
	// Chain is the chain to serve next; nil when the installed file is
	// already the newest.
	Chain *chain.Chain `json:"-"`
	// Leaf describes Chain's leaf.
	Leaf string `json:"leaf,omitempty"`
	// Safe is true when Chain may be installed now.
	Safe bool `json:"safe"`
	// Reason says why it is safe, or what it waits for.
	Reason string `json:"reason"`
	// SafeAt is when it is expected to become safe; zero while a server
	// blocks it or the time cannot be known.
	SafeAt time.Time `json:"safe_at,omitzero"`
	// Blocking names, per owner, what keeps it from being safe.
	Blocking []string `json:"blocking,omitempty"`
}

// decideSwitch applies "safe to switch" (DESIGN §2) to c for lv: at every
// owner of the lineage, c matches, with full DANE semantics, at least one
// record that is aged — whatever danehook published or remembers. There is
// no "first chain" or "same key" shortcut: an owner without any record (a
// first issuance) waits for the new chain's record to age like any other,
// so that verification can always ask for an aged match. want are the records
// danehook wants at each owner (to say when c's own records age).
func decideSwitch(s *snapshot, lv *lineageView, c *chain.Chain, want map[string][]tlsa.Record) SwitchDecision {
	d := SwitchDecision{Lineage: lv.L.Name, Chain: c, Safe: true}
	if c == nil {
		d.Reason = "the installed chain file is the newest chain"
		return d
	}
	d.Leaf = describeLeaf(c)
	unknown := false
	var why, names []string
	for _, r := range lv.Refs {
		ov := s.owner(r.Owner)
		if ov == nil || ov.Err != nil {
			d.Safe, unknown = false, true
			msg := "not observed"
			if ov != nil {
				msg = ov.Err.Error()
			}
			d.Blocking = append(d.Blocking, fmt.Sprintf("%s: %s", r.Owner, msg))
			continue
		}
		aged, st := agedAt(ov, s.DNS.Seen, s.Now)
		if covered(c.Served(), r.Host, aged, s.Now) {
			why = append(why, r.Owner+": matches an aged record")
			continue
		}
		d.Safe = false
		nameWhy := taNameMissing(c.Served(), r.Host, appendUnique(append([]tlsa.Record(nil), ov.observed()...), want[r.Owner]...))
		if nameWhy != "" {
			names = append(names, r.Owner+": "+nameWhy)
		}
		// When will a record of c be aged? The earliest among the observed
		// and wanted records that c matches.
		var best propagate.Status
		var blocking []string
		for _, rec := range appendUnique(append([]tlsa.Record(nil), ov.observed()...), want[r.Owner]...) {
			if !covered(c.Served(), r.Host, []tlsa.Record{rec}, s.Now) {
				continue
			}
			a, ok := st[strings.ToLower(rec.String())]
			if !ok {
				a = propagate.Age(ov.Obs, s.DNS.Seen, rec, s.Now)
			}
			if !a.AgedAt.IsZero() && (best.AgedAt.IsZero() || a.AgedAt.Before(best.AgedAt)) {
				best = a
			}
			blocking = append(blocking, a.Blocking...)
		}
		if best.AgedAt.IsZero() {
			unknown = true
			if len(blocking) == 0 {
				blocking = []string{"no record at the owner matches the new chain yet"}
				if nameWhy != "" {
					blocking = []string{nameWhy}
				}
			}
			d.Blocking = append(d.Blocking, fmt.Sprintf("%s: %s", r.Owner, strings.Join(dedupe(blocking), "; ")))
			continue
		}
		d.SafeAt = later(d.SafeAt, best.AgedAt)
		d.Blocking = append(d.Blocking, fmt.Sprintf("%s: %s not aged until %s (2 x %ds after the last server was first seen serving it)",
			r.Owner, short(best.Record), best.AgedAt.UTC().Format(time.RFC3339), best.TTL))
	}
	// Owners no longer configured that still have an RRset a resolver may
	// hold (a removed or renamed host whose MX may still be used): the new
	// chain must match there too, or wait until they are withdrawn.
	for _, ov := range s.Owners {
		if !ov.formerOf(lv.L.Name) {
			continue
		}
		if ov.Err != nil {
			d.Safe, unknown = false, true
			d.Blocking = append(d.Blocking, fmt.Sprintf("%s (no longer configured): %v", ov.Owner, ov.Err))
			continue
		}
		if rrsetGone(ov, s.DNS.Seen, s.Now) {
			continue
		}
		aged, _ := agedAt(ov, s.DNS.Seen, s.Now)
		if covered(c.Served(), ov.Host, aged, s.Now) {
			why = append(why, ov.Owner+" (no longer configured): matches an aged record")
			continue
		}
		d.Safe, unknown = false, true
		d.Blocking = append(d.Blocking, fmt.Sprintf("%s: no longer configured, but resolvers may still hold its TLSA records, which the new chain does not match: the switch waits until they are withdrawn and expired (danehook removes its own; remove the others, or configure the host again)", ov.Owner))
	}
	if unknown {
		d.SafeAt = time.Time{}
	}
	if d.Safe {
		d.Reason = strings.Join(why, "; ")
	} else {
		d.Reason = "the new chain matches no aged record at every owner yet"
		if len(names) > 0 {
			d.Reason += " (" + strings.Join(names, "; ") + ")"
		}
	}
	return d
}

// mayServe returns every chain that Postfix may send for lv: the installed
// file, what each endpoint presented, the chain about to be installed or
// pending, and what the ACME client holds.
func mayServe(lv *lineageView, next *chain.Chain) [][]*x509.Certificate {
	var out [][]*x509.Certificate
	add := func(certs []*x509.Certificate) {
		if len(certs) == 0 {
			return
		}
		for _, x := range out {
			if sameChain(x, certs) {
				return
			}
		}
		out = append(out, certs)
	}
	for _, c := range []*chain.Chain{lv.Installed, next, lv.Pending, lv.Source, lv.Renewal} {
		if c != nil {
			add(c.Served())
		}
	}
	eps := make([]string, 0, len(lv.Presented))
	for ep := range lv.Presented {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	for _, ep := range eps {
		add(lv.Presented[ep])
	}
	return out
}

// rrsetGone reports whether every authoritative server answers that ov
// has no TLSA RRset and no resolver can still hold one it fetched before
// (2 × the TTLs seen at the owner have passed).
func rrsetGone(ov *ownerView, seen *propagate.Seen, now time.Time) bool {
	if ov.Obs == nil || len(ov.Obs.Servers) == 0 || len(ov.Current) > 0 {
		return false
	}
	for _, s := range ov.Obs.Servers {
		if !s.OK() || len(s.Records) > 0 {
			return false
		}
	}
	return !now.Before(seen.CachedUntil(ov.Owner))
}

// Held is a removal that waits, and why.
type Held struct {
	RR     dnsupdate.RR `json:"record"`
	Reason string       `json:"reason"`
}

// decideRemovals applies "safe to remove" (DESIGN §2) to the records
// danehook owns at ov that it no longer wants: a record is removed only
// when every chain that Postfix may serve (for any lineage at the owner,
// or for every lineage at an owner only the state remembers) and that it
// matches still matches an aged record that stays (a wanted one), and
// what every such lineage's endpoints present was observed in this run.
// So removing a record never uncovers a chain that matched an aged record
// before, and a record dropped from the usages goes even while the key it
// names is reused. A record another host claims
// in the ownership registry (ov.Claims) stays too: that host still serves
// a chain that relies on it. verified says, per lineage,
// whether this run saw its endpoints present the installed chain (and why
// not).
//
// withdrawn are records of keys that were never in any chain (an aborted
// staged key): they need no verification.
func decideRemovals(s *snapshot, ov *ownerView, want []tlsa.Record, next map[string]*chain.Chain, verified map[string]string, withdrawn []tlsa.Record) (remove []dnsupdate.RR, held []Held) {
	if ov.Err != nil {
		return nil, nil
	}
	lineages := ov.Lineages
	if len(lineages) == 0 {
		for _, lv := range s.Lineages {
			lineages = append(lineages, lv.L.Name)
		}
	}
	var chains [][]*x509.Certificate
	var blockedBy []string
	for _, name := range lineages {
		lv := s.lineage(name)
		if lv == nil {
			continue
		}
		if lv.Err != nil {
			blockedBy = append(blockedBy, fmt.Sprintf("lineage %s could not be read: %v", name, lv.Err))
			continue
		}
		if why, ok := verified[name]; ok && why != "" {
			blockedBy = append(blockedBy, fmt.Sprintf("lineage %s: %s", name, why))
		}
		chains = append(chains, mayServe(lv, next[name])...)
	}
	for _, c := range s.PostfixChains {
		chains = append(chains, c.Served())
	}
	if len(ov.Lineages) == 0 {
		return decideRetire(s, ov, chains, blockedBy)
	}
	// What stays and is aged: a chain that a record to remove matches may
	// lose it when these still cover it.
	aged, _ := agedAt(ov, s.DNS.Seen, s.Now)
	var keep []tlsa.Record
	for _, r := range aged {
		if containsRecord(want, r) {
			keep = append(keep, r)
		}
	}
	for _, rec := range s.DNS.owned(ov.Owner) {
		if containsRecord(want, rec) {
			continue
		}
		served := false
		for _, rr := range ov.observed() {
			if rr.Equal(rec) {
				served = true
			}
		}
		rr := dnsupdate.RR{Owner: ov.Owner, TTL: ov.TTL, Record: rec}
		if !served {
			// Nothing to remove: forget it (see apply).
			remove = append(remove, rr)
			continue
		}
		reason := ""
		for _, certs := range chains {
			if touches(rec, certs) && !coveredAt(ov, certs, keep, s.Now) {
				reason = fmt.Sprintf("a chain Postfix may serve relies on it (leaf %s)", certs[0].Subject)
				break
			}
		}
		if hosts := claimedByOthers(ov, s.HostID, rec); reason == "" && len(hosts) > 0 {
			reason = othersClaim(ov, hosts)
		}
		if reason == "" && len(blockedBy) > 0 && !containsRecord(withdrawn, rec) {
			reason = strings.Join(blockedBy, "; ")
		}
		if reason != "" {
			held = append(held, Held{RR: rr, Reason: reason})
			continue
		}
		remove = append(remove, rr)
	}
	return remove, held
}

// othersClaim is the reason a record stays that other hosts claim.
func othersClaim(ov *ownerView, hosts []string) string {
	return fmt.Sprintf("host %s still serves a chain that relies on it (ownership registry %s)", strings.Join(hosts, ", "), dnsupdate.RegistryName(ov.Owner))
}

// decideRetire decides the removals at an owner that is no longer
// configured: every owned record goes at once, provided that what remains
// (records danehook does not own) is empty — senders then stop using DANE
// there once the cached RRset expires, and switches wait for that — or
// still matches, aged, every chain Postfix may serve. Until then the
// records stay and the reason is given.
func decideRetire(s *snapshot, ov *ownerView, chains [][]*x509.Certificate, blockedBy []string) (remove []dnsupdate.RR, held []Held) {
	owned := s.DNS.owned(ov.Owner)
	var rest []tlsa.Record
	for _, r := range ov.observed() {
		if !containsRecord(owned, r) {
			rest = append(rest, r)
		}
	}
	aged, _ := agedAt(ov, s.DNS.Seen, s.Now)
	var agedRest []tlsa.Record
	for _, r := range aged {
		if containsRecord(rest, r) {
			agedRest = append(agedRest, r)
		}
	}
	reason := ""
	if len(rest) > 0 {
		for _, certs := range chains {
			if !covered(certs, ov.Host, agedRest, s.Now) {
				reason = fmt.Sprintf("no longer configured, but removing danehook's records would leave records that do not match the chain with leaf %s: remove those first ('danectl prune' after configuring the host again) or configure the host again", certs[0].Subject)
				break
			}
		}
	}
	if reason == "" && len(blockedBy) > 0 {
		reason = strings.Join(blockedBy, "; ")
	}
	for _, rec := range owned {
		rr := dnsupdate.RR{Owner: ov.Owner, TTL: ov.TTL, Record: rec}
		if hosts := claimedByOthers(ov, s.HostID, rec); len(hosts) > 0 && containsRecord(ov.observed(), rec) {
			held = append(held, Held{RR: rr, Reason: othersClaim(ov, hosts)})
			continue
		}
		if reason != "" && containsRecord(ov.observed(), rec) {
			held = append(held, Held{RR: rr, Reason: reason})
			continue
		}
		remove = append(remove, rr)
	}
	return remove, held
}

// unmatched returns the records at ov that no chain any lineage may serve
// relies on and that danehook does not own: a panel's 3 0 1, a stale key,
// a retired CA (`danectl prune` removes them once safe). Records an issuer
// set pins ahead and records another host claims in the ownership registry
// are not unmatched.
func unmatched(s *snapshot, ov *ownerView) []tlsa.Record {
	var chains [][]*x509.Certificate
	var pinned []tlsa.Record
	for _, lv := range s.Lineages {
		chains = append(chains, mayServe(lv, nil)...)
		for _, c := range []*chain.Chain{lv.Installed, lv.Pending, lv.Source, lv.Renewal} {
			if recs, err := issuerSetRecords(lv.L, lv.IssuerSet, c, s.Now); err == nil {
				pinned = appendUnique(pinned, recs...)
			}
		}
	}
	owned := s.DNS.owned(ov.Owner)
	var out []tlsa.Record
	for _, rec := range ov.observed() {
		if containsRecord(owned, rec) || containsRecord(pinned, rec) || len(claimedByOthers(ov, s.HostID, rec)) > 0 {
			continue
		}
		used := false
		for _, c := range chains {
			if touches(rec, c) {
				used = true
				break
			}
		}
		if !used {
			out = append(out, rec)
		}
	}
	return out
}

// wanted returns the records danehook wants at every owner (the desired
// RRset, DESIGN §2): for each lineage at the owner, the records of the
// installed chain, of the chain it switches to or waits for, of what the
// ACME client holds, of what Postfix presented, and the staged next key's
// 3 1 1; for ta = "issuer-set", the 2 1 1 of every member of the set
// pinned for those chains' key algorithm (issuerSetRecords).
func (e *Engine) wanted(s *snapshot, next map[string]*chain.Chain) (map[string][]tlsa.Record, error) {
	out := map[string][]tlsa.Record{}
	for _, lv := range s.Lineages {
		if lv.Err != nil {
			continue
		}
		l := lv.L
		var recs []tlsa.Record
		if lv.State.Next != nil && containsUsage(l, "3 1 1") {
			r, err := nextRecord(lv.State.Next)
			if err != nil {
				return nil, fmt.Errorf("lineage %q: staged key: %w", l.Name, err)
			}
			recs = append(recs, r)
		}
		for i, c := range []*chain.Chain{e.withTA(l, lv.Installed), next[l.Name], lv.Pending, lv.Source, lv.Renewal} {
			if c == nil {
				continue
			}
			r, err := records(l, c)
			if err != nil {
				return nil, err
			}
			set, err := issuerSetRecords(l, lv.IssuerSet, c, s.Now)
			if err != nil {
				return nil, err
			}
			r = append(r, set...)
			if i == 0 {
				// The installed chain is what Postfix serves now. When the
				// usages give no record that matches it (a self-signed or
				// foreign chain with usages = ["2 1 1"]), publishing the
				// others alone would make DANE senders fail on it: its
				// DANE-EE 3 1 1 (RFC 7671 §5.1) covers it until the switch.
				if ee, ok := bridgeRecord(l, c, r, s.Now); ok {
					r = append(r, ee)
				}
			}
			recs = appendUnique(recs, r...)
		}
		for _, r := range lv.Refs {
			out[r.Owner] = appendUnique(out[r.Owner], recs...)
		}
	}
	return out, nil
}

// bridgeRecord returns the 3 1 1 record of c's key when c, served for any
// of l's hosts, matches none of recs (postfix.Evaluate, a sender's DANE
// semantics), and false when recs cover it or c has no leaf.
func bridgeRecord(l *config.Lineage, c *chain.Chain, recs []tlsa.Record, now time.Time) (tlsa.Record, bool) {
	if c == nil || c.Leaf == nil {
		return tlsa.Record{}, false
	}
	served := c.Served() // a new slice each call: once, not once per host
	for _, h := range l.Hosts {
		if !covered(served, h, recs, now) {
			ee, err := eeRecord(c)
			return ee, err == nil
		}
	}
	return tlsa.Record{}, false
}

// issuerSetRecords returns the DANE-TA 2 1 1 records (RFC 7671 §5.2.2) of
// the members of set that are pinned for c's key algorithm at now
// (chain.IssuerSet.Members: the member's own key algorithm is the leaf's),
// for a lineage with ta = "issuer-set" and usage "2 1 1"; nil otherwise.
// They are published ahead, so a renewal onto any member is covered by an
// aged record and needs no DNS change.
func issuerSetRecords(l *config.Lineage, set *chain.IssuerSet, c *chain.Chain, now time.Time) ([]tlsa.Record, error) {
	if set == nil || c == nil || c.Leaf == nil || l.TA != chain.TAIssuerSet || !containsUsage(l, "2 1 1") {
		return nil, nil
	}
	var out []tlsa.Record
	for _, m := range set.Members(chain.KeyAlgorithm(c.Leaf.PublicKey), now) {
		r, err := tlsa.FromCertificate(m, tlsa.UsageDANETA, tlsa.SelectorSPKI, tlsa.MatchSHA256)
		if err != nil {
			return nil, fmt.Errorf("lineage %q: issuer set %q: %q: %w", l.Name, set.Source, m.Subject.String(), err)
		}
		out = appendUnique(out, r)
	}
	return out, nil
}

// issuerSetWarnings returns why lv's issuer set is stale for a chain it
// serves or may switch to (chain.IssuerSet.Stale of the installed chain, of
// next, of a pending chain and of what the ACME client holds), without
// repeats: shown by status and config check before a renewal onto a
// non-member turns into a delayed switch.
func issuerSetWarnings(lv *lineageView, next *chain.Chain, now time.Time) []string {
	if lv.IssuerSet == nil {
		return nil
	}
	var out []string
	for _, c := range []*chain.Chain{lv.Installed, next, lv.Pending, lv.Source, lv.Renewal} {
		out = append(out, lv.IssuerSet.Stale(c, now)...)
	}
	return dedupe(out)
}

// MaxRecordsPerOwner is the most TLSA records danehook lets an owner hold:
// large senders give up on an RRset beyond that (issue 14), and a sender
// tries each record against the chain, so more records only add cost.
const MaxRecordsPerOwner = 12

// TooManyRecordsError is returned when the additions at an owner would
// leave more than MaxRecordsPerOwner TLSA records there. Nothing is added
// at that owner; Drop names the records that could go instead.
type TooManyRecordsError struct {
	Owner string
	// Served is how many records the primary serves now, Adding how many
	// danehook would add, Wanted how many it wants in all.
	Served, Adding, Wanted int
	// Drop lists the records at the owner that danehook does not want,
	// each with how it goes away.
	Drop []string
}

func (e *TooManyRecordsError) Error() string {
	total := e.Served + e.Adding
	msg := fmt.Sprintf("owner %s: refusing to add %d TLSA record(s): the owner would hold %d records (%d served now), more than %d (large senders give up beyond)",
		e.Owner, e.Adding, total, e.Served, MaxRecordsPerOwner)
	if e.Wanted > MaxRecordsPerOwner {
		return msg + fmt.Sprintf("; danehook alone wants %d there: pin fewer issuer set members (issuer_set), fewer usages, or fewer lineages on this owner", e.Wanted)
	}
	return msg + fmt.Sprintf("; drop at least %d of: %s", total-MaxRecordsPerOwner, strings.Join(e.Drop, "; "))
}

// Hint says what the operator does next (cliapp prints it as "hint:").
func (e *TooManyRecordsError) Hint() string {
	return "drop the records named (or pin fewer), then run 'danectl plan' again; nothing was added at " + e.Owner
}

// capOwner returns a *TooManyRecordsError when adding add at ov would leave
// more than MaxRecordsPerOwner records there (served now, counted once,
// plus the additions), naming the records not in want that could be
// dropped: danehook's own (removed by a tick once no chain needs them),
// others that no chain relies on (`danectl prune`), and others a chain
// still matches (remove by hand once they are not needed). Nil when add is
// empty or the count stays within the limit.
func capOwner(s *snapshot, ov *ownerView, want []tlsa.Record, add []dnsupdate.Change) error {
	if len(add) == 0 {
		return nil
	}
	current := make([]tlsa.Record, 0, len(ov.Current))
	for _, rr := range ov.Current {
		current = appendUnique(current, rr.Record)
	}
	if len(current)+len(add) <= MaxRecordsPerOwner {
		return nil
	}
	e := &TooManyRecordsError{Owner: ov.Owner, Served: len(current), Adding: len(add), Wanted: len(want)}
	owned := s.DNS.owned(ov.Owner)
	unused := unmatched(s, ov)
	for _, r := range current {
		switch {
		case containsRecord(want, r):
		case containsRecord(owned, r):
			e.Drop = append(e.Drop, fmt.Sprintf("%s (danehook's, no longer wanted: 'danectl tick' removes it once no chain Postfix may serve relies on it)", r))
		case containsRecord(unused, r):
			e.Drop = append(e.Drop, fmt.Sprintf("%s (not danehook's, matches no chain: 'danectl prune' removes it)", r))
		default:
			e.Drop = append(e.Drop, fmt.Sprintf("%s (not danehook's, a chain Postfix may serve matches it: remove it by hand once that chain is gone)", r))
		}
	}
	if len(e.Drop) == 0 {
		e.Drop = []string{"nothing but records danehook wants: pin fewer issuer set members or usages"}
	}
	return e
}

// additions returns the wanted records no server serves yet at ov.
func additions(ov *ownerView, want []tlsa.Record) []dnsupdate.Change {
	var out []dnsupdate.Change
	var current []tlsa.Record
	for _, rr := range ov.Current {
		current = append(current, rr.Record)
	}
	for _, r := range want {
		if containsRecord(current, r) {
			continue
		}
		out = append(out, dnsupdate.Change{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: ov.Owner, TTL: ov.TTL, Record: r}})
	}
	return out
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
