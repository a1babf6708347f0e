package dnsupdate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/libdns/libdns"
)

// The ownership registry (registry.go) through a libdns provider: each
// claim is one TXT record at RegistryName(owner), added with
// AppendRecords and removed with DeleteRecords as libdns.TXT{Name, TTL,
// Text} (libdns v1.1.1 rrtypes.go: Text unquoted, the provider quotes and
// splits it as its API needs). Claims are read like the TLSA records, by a
// direct TXT query to Reader (query_server), never through the provider.
//
// libdns has no prerequisites, so a removal cannot be conditional on the
// registry in the same request (RFC 2136's R1). ApplyClaimed narrows the
// race: claims go before the records (the engine claims first), and the
// claims are read again after the additions, right before the first
// DeleteRecords. Two windows stay open, and README says so: a claim written
// between that read and the DeleteRecords call, and a claim the provider
// accepted that query_server does not serve yet (a secondary, or an API
// whose name servers lag behind it).

var _ interface {
	Claims(ctx context.Context, owner string) ([]Claim, error)
	ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error
	ApplyClaimed(ctx context.Context, host string, changes []Change) ([]Conflict, error)
} = (*Libdns)(nil)

// claimReader is a Reader that also reads the registry (*RFC2136 does).
type claimReader interface {
	Claims(ctx context.Context, owner string) ([]Claim, error)
}

// Claims returns the claims at owner's registry, read by Reader (a direct
// TXT query to query_server). It is an error when Reader cannot read TXT
// records.
func (l *Libdns) Claims(ctx context.Context, owner string) ([]Claim, error) {
	r, ok := l.Reader.(claimReader)
	if !ok {
		return nil, fmt.Errorf("libdns %s: the reader %T cannot read the ownership registry %s", l.Name, l.Reader, RegistryName(owner))
	}
	return r.Claims(ctx, owner)
}

// claimRecord is the libdns form of a claim in zone.
func claimRecord(c Claim, zone string, ttl uint32) libdns.Record {
	name := libdns.RelativeName(RegistryName(c.Owner), zone)
	return libdns.TXT{Name: name, TTL: time.Duration(ttl) * time.Second, Text: c.Text()}
}

// ApplyClaims adds and removes claims, one TXT record of ttl seconds each
// at RegistryName(owner): it reads each owner's claims (Reader) and sends
// each zone's claims not served yet with AppendRecords, then each zone's
// claims to remove that are still served with DeleteRecords, in as few
// calls per zone as Limit allows (L8), so a rerun sends nothing. Errors
// are the Reader's or *LibdnsError; calls before a failing one stay
// applied.
func (l *Libdns) ApplyClaims(ctx context.Context, ttl uint32, add, remove []Claim) error {
	have := map[string][]Claim{}
	zones := map[string]string{}
	var order []string
	read := func(owner string) error {
		k := strings.ToLower(owner)
		if _, ok := zones[k]; ok {
			return nil
		}
		z, err := l.Reader.FindZone(ctx, owner)
		if err != nil {
			return err
		}
		cs, err := l.Claims(ctx, owner)
		if err != nil {
			return err
		}
		zones[k], have[k] = z, cs
		if !containsString(order, z) {
			order = append(order, z)
		}
		return nil
	}
	has := func(c Claim) bool {
		for _, x := range have[strings.ToLower(c.Owner)] {
			if x.Host == c.Host && x.Record.Equal(c.Record) {
				return true
			}
		}
		return false
	}
	for _, c := range append(append([]Claim(nil), add...), remove...) {
		if err := read(c.Owner); err != nil {
			return err
		}
	}
	for _, step := range []struct {
		op   Op
		list []Claim
	}{{Add, add}, {Remove, remove}} {
		for _, z := range order {
			var recs []libdns.Record
			var names []string
			for _, c := range step.list {
				if zones[strings.ToLower(c.Owner)] != z || has(c) == (step.op == Add) {
					continue
				}
				recs = append(recs, claimRecord(c, z, ttl))
				names = append(names, RegistryName(c.Owner))
			}
			if len(recs) == 0 {
				continue
			}
			if _, _, err := l.send(ctx, step.op, z, names, recs); err != nil {
				return err
			}
		}
	}
	return nil
}

// ApplyClaimed is Apply with every removal checked against the ownership
// registry: after the additions, right before the first DeleteRecords, the
// claims at every owner with a removal are read again (Reader), and a
// removal that a host other than host claims is not sent but returned as a
// Conflict (not an error). See the top of this file for what stays open.
// Errors are Apply's; conflicts found before an error are returned with it.
func (l *Libdns) ApplyClaimed(ctx context.Context, host string, changes []Change) ([]Conflict, error) {
	return l.apply(ctx, changes, &registryGuard{host: host})
}

// dropClaimed reads the claims of every owner with a removal in batches
// and removes from them the changes another host claims, returned as
// Conflicts.
func (l *Libdns) dropClaimed(ctx context.Context, reg *registryGuard, batches []libdnsBatch) ([]Conflict, error) {
	claims := map[string][]Claim{}
	var conflicts []Conflict
	for i := range batches {
		b := &batches[i]
		if b.op != Remove {
			continue
		}
		var kept []Change
		for _, ch := range b.changes {
			k := strings.ToLower(ch.Owner)
			cs, ok := claims[k]
			if !ok {
				var err error
				if cs, err = l.Claims(ctx, ch.Owner); err != nil {
					return nil, err
				}
				claims[k] = cs
			}
			if hosts := othersClaiming(cs, reg.host, ch.Record); len(hosts) > 0 {
				conflicts = append(conflicts, Conflict{Change: ch, Hosts: hosts,
					Reason: fmt.Sprintf("host %s claimed it in the ownership registry %s since this run decided (read right before the removal): kept, decided again next run",
						strings.Join(hosts, ", "), RegistryName(ch.Owner))})
				continue
			}
			kept = append(kept, ch)
		}
		b.changes = kept
	}
	return conflicts, nil
}
