package deploy

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Registry is a provider's ownership registry (dnsupdate.RFC2136): the
// claims of every host at an owner, one TXT record each at
// dnsupdate.RegistryName(owner). Hosts that share an owner coordinate
// through it: each claims the records its chains rely on, and a host never
// removes a record another host claims (like external-dns's TXT registry).
//
//   - Claims returns the claims at owner (none when the name is absent).
//   - ApplyClaims adds and removes claims (TXT records of ttl seconds).
type Registry interface {
	Claims(ctx context.Context, owner string) ([]dnsupdate.Claim, error)
	ApplyClaims(ctx context.Context, ttl uint32, add, remove []dnsupdate.Claim) error
}

var _ Registry = (*dnsupdate.RFC2136)(nil)

// registry returns the registry of provider, or nil when host_id is not
// set or the provider keeps none (Cloudflare, libdns).
func (e *Engine) registry(provider string) Registry {
	if e.Config.HostID == "" {
		return nil
	}
	pub, err := e.publisher(provider)
	if err != nil {
		return nil
	}
	r, _ := pub.(Registry)
	return r
}

// claimedByOthers returns, sorted, the hosts other than me that claim rec
// at ov.
func claimedByOthers(ov *ownerView, me string, rec tlsa.Record) []string {
	var out []string
	for _, c := range ov.Claims {
		if c.Host != me && c.Record.Equal(rec) {
			out = append(out, c.Host)
		}
	}
	sort.Strings(out)
	return dedupe(out)
}

// claimChanges returns the claims host me adds and removes at ov so that
// it claims exactly the desired records that the owner serves (ov.Current):
// a desired record not served yet is claimed once it is; a claim of a
// record no longer desired goes, whoever still serves it.
func claimChanges(ov *ownerView, me string, desired []tlsa.Record) (add, remove []dnsupdate.Claim) {
	var mine []tlsa.Record
	for _, c := range ov.Claims {
		if c.Host == me {
			mine = append(mine, c.Record)
			if !containsRecord(desired, c.Record) {
				remove = append(remove, c)
			}
		}
	}
	for _, rr := range ov.Current {
		if containsRecord(desired, rr.Record) && !containsRecord(mine, rr.Record) {
			add = append(add, dnsupdate.Claim{Owner: ov.Owner, Host: me, Record: rr.Record})
			mine = append(mine, rr.Record)
		}
	}
	return add, remove
}

// syncClaims brings this host's claims at every plan's owner in step with
// the plan's desired records (claimChanges), and ov.Claims with them. It
// does nothing without a registry.
func (e *Engine) syncClaims(ctx context.Context, s *snapshot, plans []*OwnerPlan) error {
	var errs []error
	for _, p := range plans {
		ov := s.owner(p.Owner)
		reg := e.registry(p.Provider)
		if ov == nil || ov.Err != nil || reg == nil {
			continue
		}
		add, remove := claimChanges(ov, s.HostID, p.Desired)
		if len(add)+len(remove) == 0 {
			continue
		}
		if err := reg.ApplyClaims(ctx, ov.TTL, add, remove); err != nil {
			errs = append(errs, fmt.Errorf("ownership registry %s: %w", dnsupdate.RegistryName(ov.Owner), err))
			continue
		}
		var kept []dnsupdate.Claim
		for _, c := range ov.Claims {
			gone := false
			for _, r := range remove {
				gone = gone || (r.Host == c.Host && r.Record.Equal(c.Record))
			}
			if !gone {
				kept = append(kept, c)
			}
		}
		ov.Claims = append(kept, add...)
	}
	return errors.Join(errs...)
}
