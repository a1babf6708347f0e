package deploy

import (
	"maps"
	"slices"
	"time"

	"github.com/danehook/danehook/pkg/propagate"
)

// saveDNS writes s.DNS as dns.json unless it equals what this run last
// wrote there (s.savedDNS): encoding the document is most of a save's cost
// (about 60 ms at 5,000 owners), and a run saves it before sending its
// additions (they are owned before they are sent) and again at its end,
// usually with nothing changed in between. Every save of dns.json during a
// run goes through here, so s.savedDNS is what the file holds. dns.json is
// compact JSON (state.Store.SaveCompact): it holds every owner, and
// indenting it was about half of the encoding's cost; a dns.json saved
// indented by an earlier version loads the same.
//
// A save that changes which records danehook owns also writes
// dns.json.prev (state.Store.SaveCompactCopy): the copy dns.json is
// restored from when it is damaged (state.Load's hint) is otherwise one
// write behind, and a restore after the run that owned a record before
// sending it would disown that record for ever (measured: with
// publish_wait = 0 the deploy hook's one write was the owning one).
func (e *Engine) saveDNS(s *snapshot) error {
	if s.savedDNS != nil && s.DNS.equal(s.savedDNS) {
		return nil
	}
	save := e.Store.SaveCompact
	if !equalStrings(s.DNS.Owned, s.ownedOnDisk) {
		save = e.Store.SaveCompactCopy
	}
	if err := save(dnsDoc, s.DNS); err != nil {
		s.savedDNS = nil
		return err
	}
	s.savedDNS = s.DNS.clone()
	s.ownedOnDisk = cloneStrings(s.DNS.Owned)
	return nil
}

// clone returns a deep copy of d (nil maps and slices stay nil: they
// encode as null, empty ones as {} or []).
func (d *DNSState) clone() *DNSState {
	if d == nil {
		return nil
	}
	c := *d
	c.Owned = cloneStrings(d.Owned)
	c.OwnerLineages = cloneStrings(d.OwnerLineages)
	c.Providers = maps.Clone(d.Providers)
	c.Retiring = maps.Clone(d.Retiring)
	if d.Seen != nil {
		c.Seen = &propagate.Seen{TTLs: cloneTimes(d.Seen.TTLs)}
		if d.Seen.Owners != nil {
			c.Seen.Owners = make(map[string]map[string]map[string]time.Time, len(d.Seen.Owners))
			for o, recs := range d.Seen.Owners {
				c.Seen.Owners[o] = cloneTimes(recs)
			}
		}
	}
	return &c
}

// equal reports whether d and o hold exactly the same values (times equal
// with ==, so the same instant in another location differs; nil differs
// from empty): then they encode as the same JSON.
func (d *DNSState) equal(o *DNSState) bool {
	if d == nil || o == nil {
		return d == o
	}
	if d.PostfixChecked != o.PostfixChecked ||
		!equalStrings(d.Owned, o.Owned) || !equalStrings(d.OwnerLineages, o.OwnerLineages) ||
		!nilEqual(d.Providers, o.Providers) || !maps.Equal(d.Providers, o.Providers) ||
		!nilEqual(d.Retiring, o.Retiring) || !maps.Equal(d.Retiring, o.Retiring) {
		return false
	}
	if d.Seen == nil || o.Seen == nil {
		return d.Seen == o.Seen
	}
	if !equalTimes(d.Seen.TTLs, o.Seen.TTLs) || !nilEqual(d.Seen.Owners, o.Seen.Owners) {
		return false
	}
	return maps.EqualFunc(d.Seen.Owners, o.Seen.Owners, equalTimes)
}

func nilEqual[M ~map[K]V, K comparable, V any](a, b M) bool { return (a == nil) == (b == nil) }

func cloneStrings(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}

func equalStrings(a, b map[string][]string) bool {
	return nilEqual(a, b) && maps.EqualFunc(a, b, func(x, y []string) bool {
		return (x == nil) == (y == nil) && slices.Equal(x, y)
	})
}

// cloneTimes deep-copies a map of maps of times.
func cloneTimes[V any](m map[string]map[string]V) map[string]map[string]V {
	if m == nil {
		return nil
	}
	c := make(map[string]map[string]V, len(m))
	for k, v := range m {
		c[k] = maps.Clone(v)
	}
	return c
}

func equalTimes[V comparable](a, b map[string]map[string]V) bool {
	return nilEqual(a, b) && maps.EqualFunc(a, b, func(x, y map[string]V) bool {
		return nilEqual(x, y) && maps.Equal(x, y)
	})
}
