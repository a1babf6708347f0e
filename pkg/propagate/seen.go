package propagate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Seen remembers when each server was first seen serving each record, so
// that the wait before a record is aged is measured rather than guessed. It
// is plain data for JSON; the zero value is ready to use.
type Seen struct {
	// Owners maps a TLSA owner (absolute, lower case,
	// "_25._tcp.mail.example.com.") to a record in presentation form
	// ("3 1 1 <lower-case hex>") to a server address ("ip:port") to the
	// time that server was first seen serving that record.
	Owners map[string]map[string]map[string]time.Time `json:"owners"`
	// TTLs maps a TLSA owner to an RRset TTL in seconds (decimal text) to
	// the last time any server was seen serving the owner's RRset with that
	// TTL. A resolver may hold an RRset it fetched at time t for its TTL,
	// so a TTL seen at t still bounds caches until t + TTL, also after the
	// servers lowered it (DESIGN §2 "aged": the largest TTL observed at the
	// owner since the change began, before and after it).
	TTLs map[string]map[string]time.Time `json:"ttls,omitempty"`
}

// recordKey is the key of rec in Seen: its presentation form, lower case.
func recordKey(rec tlsa.Record) string { return strings.ToLower(rec.String()) }

// Update folds obs into s at time now:
//
//   - a server that answers with a record it was not known to serve is
//     recorded as first seen serving it at now;
//   - a server that answers without a record it was known to serve is
//     forgotten for that record, so that a record that disappears and comes
//     back ages again from its return;
//   - a server that answers without authority (Err set, Reachable true: for
//     example REFUSED or SERVFAIL once a secondary's copy expired) has
//     stopped serving, and all its sightings at the owner are forgotten;
//   - a server that does not answer at all keeps its sightings: there is
//     no evidence it stopped serving (it blocks ageing while unreachable
//     anyway);
//   - sightings by addresses that are no longer among obs.Servers are
//     dropped.
//
// Sightings at other owners are not touched. Update never reads the clock:
// take now after Observe returned, never before it started, so that no
// sighting is dated earlier than the answer that showed it.
func (s *Seen) Update(obs *Observation, now time.Time) {
	if obs == nil {
		return
	}
	s.noteTTLs(obs, now)
	if s.Owners == nil {
		s.Owners = map[string]map[string]map[string]time.Time{}
	}
	owner := canonical(obs.Owner)
	recs := s.Owners[owner]
	if recs == nil {
		recs = map[string]map[string]time.Time{}
	}
	known := map[string]bool{}
	for _, st := range obs.Servers {
		if st.Addr != "" {
			known[st.Addr] = true
		}
	}
	for _, by := range recs {
		for addr := range by {
			if !known[addr] {
				delete(by, addr)
			}
		}
	}
	for _, st := range obs.Servers {
		if st.Addr == "" || !st.Reachable {
			continue
		}
		serving := map[string]bool{}
		if st.Err == "" {
			for _, r := range st.Records {
				k := recordKey(r)
				serving[k] = true
				if recs[k] == nil {
					recs[k] = map[string]time.Time{}
				}
				if _, ok := recs[k][st.Addr]; !ok {
					recs[k][st.Addr] = now
				}
			}
		}
		for k, by := range recs {
			if !serving[k] {
				delete(by, st.Addr)
			}
		}
	}
	for k, by := range recs {
		if len(by) == 0 {
			delete(recs, k)
		}
	}
	if len(recs) == 0 {
		delete(s.Owners, owner)
		return
	}
	s.Owners[owner] = recs
}

// noteTTLs records the RRset TTL of every server that serves records at
// obs's owner as last seen at now.
func (s *Seen) noteTTLs(obs *Observation, now time.Time) {
	owner := canonical(obs.Owner)
	for _, st := range obs.Servers {
		if !st.OK() || len(st.Records) == 0 || st.TTL == 0 {
			continue
		}
		if s.TTLs == nil {
			s.TTLs = map[string]map[string]time.Time{}
		}
		if s.TTLs[owner] == nil {
			s.TTLs[owner] = map[string]time.Time{}
		}
		k := strconv.FormatUint(uint64(st.TTL), 10)
		if now.After(s.TTLs[owner][k]) {
			s.TTLs[owner][k] = now
		}
	}
	// Forget a TTL once it can no longer matter: a record first served by
	// every server at L < t + TTL is aged at L + 2 × TTL < t + 3 × TTL.
	for k, t := range s.TTLs[owner] {
		ttl, _ := strconv.ParseUint(k, 10, 32)
		if now.Sub(t) > 3*time.Duration(ttl)*time.Second {
			delete(s.TTLs[owner], k)
		}
	}
	if len(s.TTLs[owner]) == 0 {
		delete(s.TTLs, owner)
	}
}

// CachedTTL returns the largest RRset TTL, in seconds, that a resolver may
// still hold from an answer for owner given at or before at: the largest
// TTL T last seen at t with t + T after at. 0 when none.
func (s *Seen) CachedTTL(owner string, at time.Time) uint32 {
	if s == nil {
		return 0
	}
	var out uint32
	for k, t := range s.TTLs[canonical(owner)] {
		v, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			continue
		}
		if t.Add(time.Duration(v)*time.Second).After(at) && uint32(v) > out {
			out = uint32(v)
		}
	}
	return out
}

// CachedUntil returns until when a resolver may hold an RRset of owner it
// fetched from these servers, with the 2 × TTL margin of RFC 7671 §8.1:
// the latest t + 2 × TTL over the TTLs seen (zero when none is known).
func (s *Seen) CachedUntil(owner string) time.Time {
	var out time.Time
	if s == nil {
		return out
	}
	for k, t := range s.TTLs[canonical(owner)] {
		v, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			continue
		}
		if u := t.Add(2 * time.Duration(v) * time.Second); u.After(out) {
			out = u
		}
	}
	return out
}

// FirstSeen returns when the server at addr was first seen serving rec at
// owner, and false when it has not been seen serving it.
func (s *Seen) FirstSeen(owner string, rec tlsa.Record, addr string) (time.Time, bool) {
	if s == nil {
		return time.Time{}, false
	}
	t, ok := s.Owners[canonical(owner)][recordKey(rec)][addr]
	return t, ok
}

// WaitTTL returns the TTL, in seconds, that this one observation of o's
// owner asks ageing to wait twice for: the largest of the TLSA RRset TTLs
// the servers report now, the configured TTL and the zone's
// negative-caching TTL (RFC 2308). The RRset TTL bounds how long a
// resolver keeps the RRset it fetched; the negative TTL bounds how long it
// remembers that there was no such RRset; the configured TTL is taken too
// because it may be larger than what the servers serve yet (a TTL being
// raised). A TTL that was lowered by the change itself (BIND gives the
// whole RRset the TTL of an UPDATE that adds a record with a smaller one)
// is not in this observation but in the sightings: Age waits for the
// larger of WaitTTL and Seen.CachedTTL at the last server's first
// sighting, the largest RRset TTL noted by Seen.Update at the owner that a
// resolver may still hold then (DESIGN §2 "aged"). Use Age, or its
// Status.TTL, for the wait; WaitTTL alone is a lower bound.
func (o *Observation) WaitTTL() uint32 {
	ttl := max(o.ConfiguredTTL, o.NegativeTTL)
	for _, s := range o.Servers {
		ttl = max(ttl, s.TTL)
	}
	return ttl
}

// Status tells whether one record at one owner is aged (DESIGN §2): served
// by every authoritative server of the zone, and 2 × WaitTTL past the time
// the last of them was first seen serving it (RFC 7671 §8.1).
type Status struct {
	// Owner is the TLSA owner and Record the record in presentation form.
	Owner  string `json:"owner"`
	Record string `json:"record"`
	// Aged is true once AgedAt is not after now and nothing blocks.
	Aged bool `json:"aged"`
	// AgedAt is LastSeen + 2 × TTL seconds; zero while some server does
	// not serve the record (Blocking is then non-empty).
	AgedAt time.Time `json:"aged_at,omitzero"`
	// LastSeen is the latest first-seen time among the servers that serve
	// the record; zero when none does.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// TTL is the TTL the wait is based on, in seconds: the larger of
	// Observation.WaitTTL and Seen.CachedTTL at LastSeen.
	TTL uint32 `json:"ttl"`
	// Serving lists the addresses that serve the record.
	Serving []string `json:"serving"`
	// Blocking names each server that keeps the record from being aged and
	// why: unreachable, answering without authority, lagging behind the
	// primary's serial, or not serving the record.
	Blocking []string `json:"blocking,omitempty"`
}

// String returns a one-line summary such as
// "3 1 1 0b9fa5a5… at _25._tcp.mail.example.com.: aged since 2026-01-02T03:04:05Z".
func (s Status) String() string {
	head := short(s.Record) + " at " + s.Owner + ": "
	switch {
	case s.Aged:
		return head + "aged since " + s.AgedAt.UTC().Format(time.RFC3339)
	case len(s.Blocking) > 0:
		return head + "not aged: " + strings.Join(s.Blocking, "; ")
	}
	return head + "aged at " + s.AgedAt.UTC().Format(time.RFC3339)
}

// short abbreviates a presentation-form record to its first 8 hex digits.
func short(rec string) string {
	f := strings.Fields(rec)
	if len(f) == 4 && len(f[3]) > 8 {
		return strings.Join(f[:3], " ") + " " + f[3][:8] + "…"
	}
	return rec
}

// Age tells whether rec is aged at obs's owner at time now, from obs (what
// the servers serve now) and seen (when each was first seen serving it;
// call seen.Update(obs, now) first). Every server of obs must serve rec,
// answer authoritatively and not lag behind the primary's serial; each one
// that does not is named in Blocking and the record is not aged. Otherwise
// AgedAt = the latest first-seen time + 2 × max(obs.WaitTTL(),
// seen.CachedTTL(owner, that time)) seconds. A server
// that serves rec but has no sighting in seen counts as first seen at now.
// Age never reads the clock.
func Age(obs *Observation, seen *Seen, rec tlsa.Record, now time.Time) Status {
	st := Status{Owner: obs.Owner, Record: recordKey(rec), TTL: obs.WaitTTL(), Serving: []string{}}
	if len(obs.Servers) == 0 {
		st.Blocking = append(st.Blocking, "no authoritative servers found")
	}
	for _, s := range obs.Servers {
		if s.OK() && s.Serves(rec) {
			st.Serving = append(st.Serving, s.Addr)
			t, ok := seen.FirstSeen(obs.Owner, rec, s.Addr)
			if !ok || t.After(now) {
				t = now
			}
			if t.After(st.LastSeen) {
				st.LastSeen = t
			}
		}
		if why := blocking(obs, s, rec); why != "" {
			st.Blocking = append(st.Blocking, s.label()+": "+why)
		}
	}
	if len(st.Blocking) > 0 {
		return st
	}
	// An RRset fetched before the record reached the last server may be
	// cached with a larger TTL than the servers serve now (a TTL lowered by
	// the change itself, as BIND does when an UPDATE adds a record with a
	// smaller TTL to an RRset).
	st.TTL = max(st.TTL, seen.CachedTTL(obs.Owner, st.LastSeen))
	st.AgedAt = st.LastSeen.Add(2 * time.Duration(st.TTL) * time.Second)
	st.Aged = !now.Before(st.AgedAt)
	return st
}

// blocking says why s keeps rec from being aged, or "" when it does not.
func blocking(obs *Observation, s ServerState, rec tlsa.Record) string {
	switch {
	case s.Addr == "":
		return "no address: " + s.Err
	case !s.Reachable:
		return "unreachable: " + s.Err
	case s.Err != "":
		return s.Err
	case s.Lagging:
		return fmt.Sprintf("lagging: serial %d, primary %s has %d", s.Serial, obs.Primary, obs.PrimarySerial)
	case !s.Serves(rec):
		return fmt.Sprintf("does not serve it (serial %d)", s.Serial)
	}
	return ""
}

// SetStatus tells whether a set of records (a desired RRset) is aged at one
// owner.
type SetStatus struct {
	Owner string `json:"owner"`
	// Aged is true when the set is not empty and every record is aged.
	Aged bool `json:"aged"`
	// AgedAt is the latest AgedAt of the records; zero while any record's
	// AgedAt is unknown (blocked).
	AgedAt time.Time `json:"aged_at,omitzero"`
	// Records holds one Status per record, in the order given.
	Records []Status `json:"records"`
}

// AgeSet applies Age to each record of recs at obs's owner. An empty set is
// never aged: there is nothing a chain could match.
func AgeSet(obs *Observation, seen *Seen, recs []tlsa.Record, now time.Time) SetStatus {
	set := SetStatus{Owner: obs.Owner, Aged: len(recs) > 0, Records: []Status{}}
	known := true
	for _, r := range recs {
		st := Age(obs, seen, r, now)
		set.Records = append(set.Records, st)
		set.Aged = set.Aged && st.Aged
		if st.AgedAt.IsZero() {
			known = false
		} else if st.AgedAt.After(set.AgedAt) {
			set.AgedAt = st.AgedAt
		}
	}
	if !known {
		set.AgedAt = time.Time{}
	}
	return set
}
