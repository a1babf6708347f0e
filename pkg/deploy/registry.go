package deploy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Registry is a provider's ownership registry: the claims of every host at
// an owner, one TXT record each at dnsupdate.RegistryName(owner). Hosts
// that share an owner coordinate through it: each claims the records its
// chains rely on, and a host never removes a record another host claims
// (like external-dns's TXT registry). *dnsupdate.RFC2136,
// *dnsupdate.Cloudflare and *dnsupdate.Libdns keep one.
//
//   - Claims returns the claims at owner (none when the name is absent).
//   - ApplyClaims adds and removes claims (TXT records of ttl seconds).
//   - ApplyClaimed is Publisher.Apply with every removal conditional on
//     the registry: a removal another host claims when it is sent is not
//     sent and comes back as a Conflict (no error). RFC 2136 makes the
//     condition part of the UPDATE (a prerequisite on the registry's TXT
//     RRset, dnsupdate decisions R1–R4); providers without prerequisites
//     read the claims again right before each removal, which narrows the
//     race to that read and the removal (README).
type Registry interface {
	Claims(ctx context.Context, owner string) ([]dnsupdate.Claim, error)
	ApplyClaims(ctx context.Context, ttl uint32, add, remove []dnsupdate.Claim) error
	ApplyClaimed(ctx context.Context, host string, changes []dnsupdate.Change) ([]dnsupdate.Conflict, error)
}

var _ Registry = (*dnsupdate.RFC2136)(nil)

// registry returns the registry of provider, or nil when host_id is not
// set or the provider keeps none.
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
// it claims exactly the desired records: a desired record is claimed
// before it is published or relied on (claim first, then rely: another
// host's removal decided meanwhile is then refused, dnsupdate R4); a claim
// of a record no longer desired goes, whoever still serves it.
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
	for _, rec := range desired {
		if !containsRecord(mine, rec) {
			add = append(add, dnsupdate.Claim{Owner: ov.Owner, Host: me, Record: rec})
			mine = append(mine, rec)
		}
	}
	return add, remove
}

// syncClaims brings this host's claims at every plan's owner in step with
// the plan's desired records (claimChanges), and ov.Claims with them; the
// engine calls it before it sends the plans' records. A newly claimed
// record this run observed served, and so may rely on, is then read again
// at the provider: when another host removed it before the claim landed,
// the owner is marked not observed for the rest of the run (nothing is
// switched or removed there; the next run publishes the record again). It
// does nothing without a registry or for a plan that keeps claims as they
// are (Prune).
func (e *Engine) syncClaims(ctx context.Context, s *snapshot, plans []*OwnerPlan) error {
	// The claims of every owner go in one ApplyClaims call per provider
	// and TTL (one UPDATE per zone for RFC 2136, as few as hold them),
	// not one per owner: 80 owners took 81 UPDATEs.
	type batchKey struct {
		provider string
		ttl      uint32
	}
	type owned struct {
		ov          *ownerView
		add, remove []dnsupdate.Claim
	}
	batches := map[batchKey][]owned{}
	var keys []batchKey
	for _, p := range plans {
		ov := s.owner(p.Owner)
		if ov == nil || ov.Err != nil || e.registry(p.Provider) == nil || p.keepClaims {
			continue
		}
		add, remove := claimChanges(ov, s.HostID, p.Desired)
		if len(add)+len(remove) == 0 {
			continue
		}
		k := batchKey{p.Provider, ov.TTL}
		if _, ok := batches[k]; !ok {
			keys = append(keys, k)
		}
		batches[k] = append(batches[k], owned{ov, add, remove})
	}
	var errs []error
	for _, k := range keys {
		b := batches[k]
		var add, remove []dnsupdate.Claim
		for _, o := range b {
			add, remove = append(add, o.add...), append(remove, o.remove...)
		}
		if err := e.registry(k.provider).ApplyClaims(ctx, k.ttl, add, remove); err != nil {
			what := dnsupdate.RegistryName(b[0].ov.Owner)
			if len(b) > 1 {
				what = fmt.Sprintf("%s and %d more owners' registries", what, len(b)-1)
			}
			errs = append(errs, fmt.Errorf("ownership registry %s (provider %s): %w", what, k.provider, err))
			continue
		}
		for _, o := range b {
			ov := o.ov
			var kept []dnsupdate.Claim
			for _, c := range ov.Claims {
				gone := false
				for _, r := range o.remove {
					gone = gone || (r.Host == c.Host && r.Record.Equal(c.Record))
				}
				if !gone {
					kept = append(kept, c)
				}
			}
			ov.Claims = append(kept, o.add...)
			if err := e.confirmClaimed(ctx, ov, o.add); err != nil {
				ov.Err = err
			}
		}
	}
	return errors.Join(errs...)
}

// confirmClaimed reads ov's RRset at its provider again after this host
// claimed add, and returns an error naming the claimed records this run
// observed served that are gone now (removed by another host before the
// claim was visible), or the read's error; nil when all are still served.
func (e *Engine) confirmClaimed(ctx context.Context, ov *ownerView, add []dnsupdate.Claim) error {
	var relied []tlsa.Record
	for _, c := range add {
		if containsRecord(ov.observed(), c.Record) {
			relied = append(relied, c.Record)
		}
	}
	if len(relied) == 0 {
		return nil
	}
	pub, err := e.publisher(ov.Provider)
	if err != nil {
		return err
	}
	now, err := pub.Records(ctx, ov.Owner)
	if err != nil {
		return fmt.Errorf("read %s again after claiming its records in the ownership registry: %w", ov.Owner, err)
	}
	var gone []string
	for _, r := range relied {
		if !slices.ContainsFunc(now, func(rr dnsupdate.RR) bool { return rr.Record.Equal(r) }) {
			gone = append(gone, short(r.String()))
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return fmt.Errorf("%s was removed by another host while this host claimed it in the ownership registry %s: nothing is switched or removed at %s in this run; the next run publishes it again",
		strings.Join(gone, ", "), dnsupdate.RegistryName(ov.Owner), ov.Owner)
}

// settleConflicts moves the removals the provider did not send (s.Conflicts)
// from removed to held ("record: reason").
func settleConflicts(s *snapshot, removed, held *[]string) {
	for _, c := range s.Conflicts {
		line := c.Change.RR.String()
		*removed = slices.DeleteFunc(*removed, func(r string) bool { return r == line })
		*held = append(*held, line+": "+c.Reason)
	}
}
