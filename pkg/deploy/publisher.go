package deploy

import (
	"context"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
)

// Publisher reads and changes the TLSA records at owners; the engine
// consumes it and never builds one itself (Engine.NewPublisher, set by
// cmd/internal/cliapp, does: it is the only code that reads credentials).
// *dnsupdate.RFC2136, *dnsupdate.Cloudflare and *dnsupdate.Libdns (any
// libdns provider, read by direct query) satisfy it.
//
//   - FindZone returns the zone (absolute name) owner belongs to.
//   - Records returns what the provider serves at owner (for RFC 2136 the
//     primary's RRset), every record type the engine is given being TLSA.
//   - Apply sends the Add and Remove changes. Keep entries name what a
//     removal at the same owner relies on: with RFC 2136 prerequisites
//     the UPDATE is refused when one of them is gone (other providers
//     ignore them). On error any
//     subset of the changes may have been applied (one RFC 2136 UPDATE
//     message is atomic, but several zones, a zone split over several
//     messages — additions first — or a Cloudflare batch are not): the
//     engine records additions as owned before calling Apply and forgets
//     removals only after it returns nil, so the next run observes what
//     was applied and repairs the rest.
//
// Concurrency: while it observes, the engine calls FindZone and Records
// (or ZoneRecords, when the Publisher is a ZoneReader)
// for several owners at once (one Publisher per provider is shared by all
// its owners); Apply is never called concurrently with another method of
// the same Publisher. An implementation must allow that.
type Publisher interface {
	FindZone(ctx context.Context, owner string) (string, error)
	Records(ctx context.Context, owner string) ([]dnsupdate.RR, error)
	Apply(ctx context.Context, changes []dnsupdate.Change) error
}

var (
	_ Publisher = (*dnsupdate.RFC2136)(nil)
	_ Publisher = (*dnsupdate.Cloudflare)(nil)
	_ Publisher = (*dnsupdate.Libdns)(nil)
)

// newChecker builds the propagation checker of provider p for records of
// ttl seconds.
func newChecker(p *config.Provider, ttl uint32, requireDNSSEC bool) *propagate.Checker {
	return &propagate.Checker{
		Primary:       p.QueryServer,
		Port:          p.NameserverPort,
		Hidden:        p.HiddenSecondaries,
		Resolver:      p.Resolver,
		Timeout:       time.Duration(p.Timeout) * time.Second,
		TTL:           ttl,
		RequireDNSSEC: requireDNSSEC,
	}
}
