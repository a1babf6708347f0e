package libdnsprov

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/libdns/hetzner"
	"github.com/libdns/libdns"
)

// libdns/hetzner v1.0.0 (the Hetzner DNS Console API, dns.hetzner.com/api/v1;
// see internal/hetznerfake/README.md). It speaks the classic DNS Console
// API only, not the Hetzner Cloud API's zones/rrsets. Its gaps and what the
// small adapter below does about them, each shown by a test in
// hetzner_test.go against internal/hetznerfake:
//
//	H1. DeleteRecords deletes the first record with the same name and type,
//	    whatever its value (findRecordID compares name and type only): with
//	    a current+next pair at one owner it removes the wrong one
//	    (TestHetznerUpstreamDeletesWrongRecord). The adapter deletes by id
//	    the record whose name, type and TLSA value match (value compared
//	    case- and space-insensitively).
//	H2. DeleteRecords fails "record ID not found" when the record is gone; a
//	    removal already done is the goal state, so the adapter skips it.
//	H3. GetZoneID indexes zones[0] without a check: a zone list answered
//	    empty panics. The adapter recovers and reports the zone as not in
//	    the account (ErrProviderZone).
//	H4. Errors are "Unauthorized (401)": status only, no body, no
//	    Retry-After; a 429 is not retried (ErrProviderUnavailable; the next
//	    run retries).
//	H5. Each created record costs a zone lookup (GET /zones?name=) and a
//	    POST; the delete path lists the whole zone (GET /records?zone_id=):
//	    the API has no owner filter.
//	H6. The base URL is fixed and the client is a fresh http.Client with the
//	    default transport: tests redirect http.DefaultTransport to the fake.
func init() {
	register(Spec{
		Name:     "hetzner",
		Module:   "github.com/libdns/hetzner v1.0.0",
		Status:   "default build; tested against internal/hetznerfake (no live Hetzner account here); classic DNS Console API only",
		TokenEnv: "HETZNER_DNS_API_TOKEN",
		New: func(s Settings) (dnsupdate.LibdnsProvider, error) {
			return &hetznerAdapter{p: hetzner.New(s.Token), c: hetzner.NewClient(s.Token)}, nil
		},
		Classify: classifyHetzner,
	})
}

// hetznerAdapter is libdns/hetzner with H1–H3 repaired.
type hetznerAdapter struct {
	p *hetzner.Provider
	c *hetzner.Client
}

// errHetznerNoZone is returned for H3.
type errHetznerNoZone struct{ zone string }

func (e errHetznerNoZone) Error() string {
	return fmt.Sprintf("zone %q is not in the Hetzner DNS account the token belongs to (Not Found (404))", e.zone)
}

func noZonePanic(zone string, err *error) {
	if p := recover(); p != nil {
		if strings.Contains(fmt.Sprint(p), "index out of range") {
			*err = errHetznerNoZone{zone}
			return
		}
		panic(p)
	}
}

// AppendRecords is upstream's: one POST /records per record, the records
// created so far returned on error.
func (a *hetznerAdapter) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) (out []libdns.Record, err error) {
	defer noZonePanic(zone, &err)
	return a.p.AppendRecords(ctx, zone, recs)
}

// DeleteRecords deletes, by id, each record whose name, type and value
// match (H1), skipping those already gone (H2). It returns the records
// handled so far.
func (a *hetznerAdapter) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) (out []libdns.Record, err error) {
	defer noZonePanic(zone, &err)
	all, err := a.c.GetAllRecords(ctx, strings.TrimSuffix(zone, "."))
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		rr := r.RR()
		for _, h := range all {
			if !strings.EqualFold(h.Type, rr.Type) || !sameHetznerName(h.Name, rr.Name, zone) || !sameRData(rr.Type, h.Value, rr.Data) {
				continue
			}
			if err := a.c.DeleteRecord(ctx, h.ID); err != nil {
				return out, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func sameHetznerName(served, want, zone string) bool {
	n := func(s string) string {
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		z := strings.ToLower(strings.TrimSuffix(zone, "."))
		if s == z || s == "" {
			return "@"
		}
		return strings.TrimSuffix(s, "."+z)
	}
	return n(served) == n(want)
}

// sameRData compares values of type typ: TLSA "3 1 1 ABCD…" forms with
// numbers as numbers and the hex field without spaces and case; other
// types (the ownership registry's TXT claims) exactly, but for the quotes
// the API may keep around a TXT value.
func sameRData(typ, a, b string) bool {
	if !strings.EqualFold(typ, "TLSA") {
		unq := func(s string) string { return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), `"`), `"`) }
		return unq(a) == unq(b)
	}
	fa, fb := strings.Fields(a), strings.Fields(b)
	if len(fa) < 4 || len(fb) < 4 {
		return strings.EqualFold(strings.Join(fa, " "), strings.Join(fb, " "))
	}
	for i := range 3 {
		x, e1 := strconv.Atoi(fa[i])
		y, e2 := strconv.Atoi(fb[i])
		if e1 != nil || e2 != nil || x != y {
			return false
		}
	}
	return strings.EqualFold(strings.Join(fa[3:], ""), strings.Join(fb[3:], ""))
}

var hetznerStatus = regexp.MustCompile(`\(([0-9]{3})\)`)

func classifyHetzner(err error) error {
	if _, ok := err.(errHetznerNoZone); ok {
		return dnsupdate.ErrProviderZone
	}
	if m := hetznerStatus.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n == 422 {
			return dnsupdate.ErrProviderRequest
		}
		return statusClass(n)
	}
	if strings.Contains(err.Error(), "record ID not found") {
		return dnsupdate.ErrProviderRequest
	}
	return nil
}
