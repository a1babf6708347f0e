package deploy

import (
	"context"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
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

// ZoneTransferer is implemented by a Publisher that can read a whole zone
// from one of its authoritative servers by zone transfer
// (*dnsupdate.RFC2136.TransferZone, decision X1 in
// pkg/dnsupdate/transfer.go): server "" is the provider's own server.
// The engine uses it, where the provider's zone_transfers allows, when it
// reads dnsupdate.TransferMinOwners or more owners of one zone in a run.
type ZoneTransferer interface {
	TransferZone(ctx context.Context, server, zone string, maxRecords int) (*dnsupdate.Zone, error)
}

var _ ZoneTransferer = (*dnsupdate.RFC2136)(nil)

// transferer returns provider's ZoneTransferer, or nil when it has none or
// its configuration forbids transfers.
func (e *Engine) transferer(provider string) ZoneTransferer {
	pc := e.Config.Providers[provider]
	if pc == nil || !pc.TransfersAllowed() {
		return nil
	}
	pub, err := e.publisher(provider)
	if err != nil {
		return nil
	}
	zt, _ := pub.(ZoneTransferer)
	return zt
}

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

// zoneChecker is newChecker for observing many owners of a zone of
// provider at once: where the provider can transfer zones and allows it,
// the checker reads the TLSA RRsets of dnsupdate.TransferMinOwners or more
// owners at one server from that server's zone transfer
// (propagate.Checker.Transfer), and says at --verbose what it did.
func (e *Engine) zoneChecker(provider string, ttl uint32, requireDNSSEC bool) *propagate.Checker {
	ck := newChecker(e.Config.Providers[provider], ttl, requireDNSSEC)
	ck.Debug = e.Debug
	if zt := e.transferer(provider); zt != nil {
		ck.TransferMin = dnsupdate.TransferMinOwners
		ck.Transfer = func(ctx context.Context, server, zone string, owners int) (propagate.ZoneCopy, error) {
			z, err := zt.TransferZone(ctx, server, zone, dnsupdate.TransferLimit(owners))
			if err != nil {
				return nil, err
			}
			return zoneCopy{z}, nil
		}
	}
	return ck
}

// zoneCopy adapts a *dnsupdate.Zone to propagate.ZoneCopy.
type zoneCopy struct{ z *dnsupdate.Zone }

func (c zoneCopy) SOA() *dns.SOA { return c.z.SOA }

func (c zoneCopy) TLSA(owner string) ([]tlsa.Record, uint32, bool) {
	rrs, ok := c.z.Lookup(owner)
	if !ok {
		return nil, 0, false
	}
	a := answerOf(rrs)
	return a.Records, a.TTL, true
}

// answerOf is the propagate.Answer an RRset read from the provider gives:
// its records, and the smallest of their TTLs (0 when there are none).
func answerOf(rrs []dnsupdate.RR) *propagate.Answer {
	a := &propagate.Answer{}
	for _, rr := range rrs {
		a.Records = append(a.Records, rr.Record)
		if a.TTL == 0 || rr.TTL < a.TTL {
			a.TTL = rr.TTL
		}
	}
	return a
}
