package deploy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
)

// One read of the primary per owner and run (DESIGN §3: observe once).
// The plan needs the primary's RRset at each owner; the propagation check
// asks every authoritative server, the primary among them, the same
// question. With a ViewReader (RFC 2136) the engine reads each owner once,
// unsigned — what a resolver asking the primary sees, and 5× cheaper for
// BIND than a TSIG-signed read —, hands that answer to the propagation check
// for the primary's address (propagate.Known), and confirms per zone, with
// one signed and one unsigned SOA query (dnsupdate.RFC2136.SameView), that
// unsigned clients see the version of the zone that the signed UPDATEs
// change. Where they do not (a BIND view chosen by the key, `match-clients
// { key …; }`, that differs from the unsigned one), that zone's owners are
// read again signed before anything is planned — the plan then comes from
// the data the UPDATE changes, as without sharing — and the run says so
// through Engine.Debug (--verbose). The propagation check keeps asking
// unsigned, as resolvers do.

// ViewReader is implemented by a Publisher that reads owners by direct
// query at one server (ReadServer, "ip:port") and can read them unsigned
// (*dnsupdate.RFC2136, decision V1 in pkg/dnsupdate/view.go). SameView
// reports whether unsigned queries see, for zone, what its signed requests
// change; when false it says why. The ZoneReader contract applies to both
// reads.
type ViewReader interface {
	ZoneReader
	ReadServer() string
	UnsignedZoneRecords(ctx context.Context, owner string) (zone string, rrs []dnsupdate.RR, err error)
	SameView(ctx context.Context, zone string) (same bool, why string)
}

var (
	_ ViewReader = (*dnsupdate.RFC2136)(nil)
	_ ViewReader = (*dnsupdate.Libdns)(nil)
)

// viewChecks remembers, for one run, the view check of each provider's zone.
type viewChecks struct {
	mu    sync.Mutex
	zones map[[2]string]*viewCheck
}

type viewCheck struct {
	once sync.Once
	same bool
}

// shareReads returns, for the owners of group (one provider's, in zone),
// what the propagation check may take from the provider's reads (unsigned
// owner reads, or the zone's signed transfer) instead of asking the
// primary again, or nil. It runs the zone's view check once per
// run (views); when the check fails it reads the group's unsigned owners
// again signed (setting Err on an owner whose zone or CNAME target differs
// in the signed view: that owner is left alone by this run).
func (e *Engine) shareReads(ctx context.Context, views *viewChecks, provider, zone string, group []*ownerView) *propagate.Known {
	var unsigned []*ownerView
	shareable := 0
	for _, ov := range group {
		if ov.unsigned {
			unsigned = append(unsigned, ov)
		}
		if ov.unsigned || ov.transferred {
			shareable++
		}
	}
	if shareable == 0 {
		return nil
	}
	pub, err := e.publisher(provider)
	if err != nil {
		return nil
	}
	vr, ok := pub.(ViewReader)
	if !ok {
		return nil
	}
	views.mu.Lock()
	if views.zones == nil {
		views.zones = map[[2]string]*viewCheck{}
	}
	vc := views.zones[[2]string{provider, zone}]
	if vc == nil {
		vc = &viewCheck{}
		views.zones[[2]string{provider, zone}] = vc
	}
	views.mu.Unlock()
	vc.once.Do(func() {
		var why string
		vc.same, why = vr.SameView(ctx, zone)
		if !vc.same {
			e.debug("unsigned queries see another view of the zone than signed ones: reading its owners signed",
				"zone", zone, "provider", provider, "server", vr.ReadServer(), "why", why)
		}
	})
	if !vc.same {
		// Owners read from the signed zone transfer hold the data the
		// UPDATEs change already: only sharing them is wrong.
		for _, ov := range group {
			ov.transferred = false
		}
		forEachOwner(unsigned, func(ov *ownerView) {
			owner, aliases := ov.Owner, ov.Aliases
			if len(aliases) > 0 {
				ov.Owner, ov.Aliases = aliases[0], nil
			}
			e.readOwnerAs(ctx, ov, true)
			if ov.Err == nil && (ov.Owner != owner || ov.Zone != zone) {
				ov.Err = fmt.Errorf("owner %s: the signed view of %s places its TLSA records at %s in zone %s, the unsigned view at %s in zone %s: the propagation check (unsigned, as resolvers ask) cannot observe what danehook would change; serve one version of the zone to both",
					firstName(ov), vr.ReadServer(), ov.Owner, ov.Zone, owner, zone)
			}
		})
		return nil
	}
	answers := make([]*propagate.Answer, len(group))
	for i, ov := range group {
		if !ov.unsigned && !ov.transferred {
			continue
		}
		ov.unsigned, ov.transferred = false, false
		answers[i] = answerOf(ov.Current)
	}
	return &propagate.Known{Addr: vr.ReadServer(), Answers: answers}
}

// firstName is the name the configuration gives ov (its first alias when
// the owner is a CNAME target).
func firstName(ov *ownerView) string {
	if len(ov.Aliases) > 0 {
		return ov.Aliases[0]
	}
	return ov.Owner
}

// forEachOwner runs f on every ov, up to ownerWorkers at a time.
func forEachOwner(ovs []*ownerView, f func(*ownerView)) {
	// ownerWorkers goroutines take the owners in turn: one goroutine per
	// owner grew a new stack through the read's call chain each time
	// (runtime.newstack: about 10 % of a 5,000-owner publish's CPU).
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(ownerWorkers, len(ovs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ovs) {
					return
				}
				f(ovs[i])
			}
		})
	}
	wg.Wait()
}
