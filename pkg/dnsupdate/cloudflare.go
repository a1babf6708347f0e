package dnsupdate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

// Why this provider speaks the Cloudflare v4 API itself instead of calling
// github.com/libdns/cloudflare v0.2.2 (read from the module cache; each gap is
// demonstrated against the fake in cloudflare_libdns_test.go):
//
//  1. TLSA is sent wrong. cloudflareRecord (models.go) turns a libdns.RR
//     into {"content": "3 1 1 …"} and never fills data.usage/selector/
//     matching_type/certificate; the API answers 400 "usage is a required
//     data field." (TestLibdnsCloudflareGapContentOnlyTLSA).
//  2. Zero values are dropped. Its data struct tags usage, selector and
//     matching_type with omitempty, so even a filled-in 3 0 0 or 2 0 1
//     would lose "selector": 0 and "matching_type": 0. cloudflareTLSAData
//     below has no omitempty (TestCloudflareZeroValuesRoundTrip).
//  3. SetRecords keeps one record per name and type: it looks the name and
//     type up and PATCHes the single match, or fails with "unexpectedly found
//     more than 1 record". A current+next pair at one owner needs append and
//     delete (TestLibdnsCloudflareGapSetRecords).
//  4. DeleteRecords first searches with content.exact built from the
//     lower-case hex we publish, while the API stores and returns upper case
//     (whether that filter ignores case is not documented), then deletes
//     every match. We already hold the record id from the listing, compare
//     the decoded bytes, and DELETE that one id.
//  5. GetRecords lists the whole zone (no type/name filter) and dereferences
//     result_info before checking it for nil; we list TLSA at one owner.
//  6. No retries: 429 and 5xx are returned at once ("TODO: Support retries
//     and handle rate limits" in provider.go) (TestLibdnsCloudflareGapNoRetry).
//  7. Errors are fmt strings without the HTTP status or API code, so a
//     caller cannot tell an auth failure from a missing zone from a 503.
//  8. The base URL is a constant (client.go baseURL) and the zone id that
//     getZoneInfo looks up by name is unexported, so neither the zone lookup
//     nor the HTTP plumbing can be reused on its own; only its HTTPClient
//     interface could be, and the tests use exactly that to point it at the
//     fake.
//
// What we keep from it: the same endpoints and query shapes (GET
// /zones?name=, GET/POST /zones/{id}/dns_records, DELETE …/{record_id}), the
// Bearer token, and its dual-token model (ZoneToken, when set, is used for
// the zone lookup only).

// CloudflareBaseURL is the default Cloudflare API v4 endpoint.
const CloudflareBaseURL = "https://api.cloudflare.com/client/v4"

// cfAutoTTL is what Cloudflare serves for a record whose ttl is 1
// ("automatic"): 300 seconds (developers.cloudflare.com/dns/manage-dns-records/reference/ttl).
const cfAutoTTL = 300

// cfPerPage is the page size asked for when listing records (the API default
// is also 100).
const cfPerPage = 100

// cfMaxPages bounds a listing so a misbehaving server cannot loop us forever.
const cfMaxPages = 1000

// Cloudflare reads and changes TLSA records through the Cloudflare API v4.
// Configure it with exported fields, as libdns providers are; the zero value
// of every optional field is a sensible default. A *Cloudflare is safe for
// concurrent use once configured; it caches zone ids.
//
// Records and Apply implement the provider side of danehook's publish and
// remove steps. Cloudflare has no atomic multi-record change: Apply adds
// before it removes, and on a failure after partial progress returns a
// *CloudflareApplyError naming what was applied.
//
// The API token never appears in errors, String, GoString, %v or slog output.
type Cloudflare struct {
	// APIToken is a scoped API token with Zone.DNS:Edit (and Zone:Read
	// unless ZoneToken is set). Load it with CloudflareTokenFromFile or
	// CloudflareTokenFromEnv.
	APIToken string
	// ZoneToken is an optional token with Zone:Read used only for zone
	// lookup, so APIToken can be limited to the zones it edits (the same
	// model as libdns/cloudflare).
	ZoneToken string
	// Zone is the optional zone name ("example.com" or "example.com.").
	// When set, every owner must be inside it and no suffix search is done.
	Zone string
	// BaseURL defaults to CloudflareBaseURL; tests point it at
	// internal/cloudflarefake.
	BaseURL string
	// HTTPClient defaults to a client with a 30 second timeout.
	HTTPClient *http.Client
	// Timeout bounds each HTTP request (connect, send, answer read), retries
	// counted one by one; 0 means 30 seconds. It applies whatever the
	// HTTPClient's own timeout is (the config's timeout setting, seconds).
	// A request that times out is retried like a transport failure and
	// counts as ErrCloudflareUnavailable.
	Timeout time.Duration
	// MaxRetries is how many times a 429, 5xx or transport failure is
	// retried: 0 means 4, negative means never.
	MaxRetries int
	// MaxRetryWait bounds the total time spent waiting between retries of
	// one call (Retry-After included); 0 means one minute. A Retry-After
	// beyond it fails the call at once.
	MaxRetryWait time.Duration

	sleep func(context.Context, time.Duration) error // test hook for pause

	mu    sync.Mutex
	zones map[string]cfZone // by zone name (lower case, no trailing dot); ID "" = absent
}

type cfZone struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// String describes the provider without its tokens:
// `cloudflare{zone="example.com" base="https://…" token=set zone_token=unset}`.
func (c *Cloudflare) String() string {
	if c == nil {
		return "cloudflare<nil>"
	}
	set := func(s string) string {
		if s == "" {
			return "unset"
		}
		return "set"
	}
	return fmt.Sprintf("cloudflare{zone=%q base=%q token=%s zone_token=%s}", c.Zone, c.baseURL(), set(c.APIToken), set(c.ZoneToken))
}

// GoString is String, so %#v does not print the token either.
func (c *Cloudflare) GoString() string { return c.String() }

// Format prints String for every verb (%v, %+v, %#v, %s, %q).
func (c *Cloudflare) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue makes slog print String.
func (c *Cloudflare) LogValue() slog.Value { return slog.StringValue(c.String()) }

// cfName turns an owner or zone name into the API's form: lower case, no
// trailing dot.
func cfName(s string) string { return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")) }

// cfAbs returns the absolute form "name." of an API name.
func cfAbs(s string) string { return cfName(s) + "." }

// FindZone returns the absolute name ("example.com.") of the zone that holds
// owner: the configured Zone, or else the longest suffix of owner that the
// token can see (GET /zones?name=<suffix> for each suffix, longest first,
// results cached). Errors match ErrCloudflareZone when no zone holds owner,
// or another class when the API fails.
func (c *Cloudflare) FindZone(ctx context.Context, owner string) (string, error) {
	z, err := c.findZone(ctx, owner)
	if err != nil {
		return "", err
	}
	return cfAbs(z.Name), nil
}

func (c *Cloudflare) findZone(ctx context.Context, owner string) (cfZone, error) {
	name := cfName(owner)
	if name == "" {
		return cfZone{}, fmt.Errorf("cloudflare: empty owner name: %w", ErrCloudflareRequest)
	}
	notFound := func(msg string) error {
		return &CloudflareError{Op: "look up zone", Owner: cfAbs(owner), Message: msg, class: ErrCloudflareZone}
	}
	if c.Zone != "" {
		zn := cfName(c.Zone)
		if name != zn && !strings.HasSuffix(name, "."+zn) {
			return cfZone{}, notFound(fmt.Sprintf("owner is outside the configured zone %q", cfAbs(zn)))
		}
		z, ok, err := c.lookupZone(ctx, zn, owner)
		if err != nil {
			return cfZone{}, err
		}
		if !ok {
			return cfZone{}, notFound(fmt.Sprintf("the token cannot see the configured zone %q", cfAbs(zn)))
		}
		return z, nil
	}
	labels := strings.Split(name, ".")
	// A zone has at least two labels: a Cloudflare zone is never a TLD.
	for i := 0; i+2 <= len(labels); i++ {
		z, ok, err := c.lookupZone(ctx, strings.Join(labels[i:], "."), owner)
		if err != nil {
			return cfZone{}, err
		}
		if ok {
			return z, nil
		}
	}
	return cfZone{}, notFound("no zone visible to the token contains the owner")
}

// lookupZone asks GET /zones?name=<name> (with ZoneToken when set) and caches
// the answer, absent zones included.
func (c *Cloudflare) lookupZone(ctx context.Context, name, owner string) (cfZone, bool, error) {
	c.mu.Lock()
	z, cached := c.zones[name]
	c.mu.Unlock()
	if cached {
		return z, z.ID != "", nil
	}
	var zones []cfZone
	q := url.Values{"name": {name}}
	if _, err := c.do(ctx, cfRequest{op: "look up zone", method: http.MethodGet, path: "/zones", query: q, token: c.ZoneToken, owner: cfAbs(owner)}, &zones); err != nil {
		return cfZone{}, false, err
	}
	var match []cfZone
	for _, z := range zones {
		if cfName(z.Name) == name && z.ID != "" {
			match = append(match, z)
		}
	}
	if len(match) > 1 {
		// The same name in two accounts (one usually pending or moved): prefer
		// the active one.
		var active []cfZone
		for _, z := range match {
			if z.Status == "" || z.Status == "active" {
				active = append(active, z)
			}
		}
		if len(active) != 1 {
			return cfZone{}, false, &CloudflareError{Op: "look up zone", Zone: cfAbs(name), Owner: cfAbs(owner),
				Message: fmt.Sprintf("%d zones with this name are visible to the token; set the zone explicitly or narrow the token", len(match)), class: ErrCloudflareZone}
		}
		match = active
	}
	z = cfZone{}
	if len(match) == 1 {
		z = match[0]
		z.Name = name
	}
	c.mu.Lock()
	if c.zones == nil {
		c.zones = make(map[string]cfZone)
	}
	c.zones[name] = z
	c.mu.Unlock()
	return z, z.ID != "", nil
}

// cloudflareRecord is one DNS record as the API returns it. Data is kept
// loose (pointers) so a missing field is told apart from a zero.
type cloudflareRecord struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	Content string `json:"content"`
	TTL     int    `json:"ttl"`
	Data    *struct {
		Usage        *int    `json:"usage"`
		Selector     *int    `json:"selector"`
		MatchingType *int    `json:"matching_type"`
		Certificate  *string `json:"certificate"`
	} `json:"data"`
}

// cloudflareTLSAData is the data object the API requires for TLSA. No
// omitempty: selector 0 and matching type 0 are values, not absences.
type cloudflareTLSAData struct {
	Usage        uint8  `json:"usage"`
	Selector     uint8  `json:"selector"`
	MatchingType uint8  `json:"matching_type"`
	Certificate  string `json:"certificate"` // lower-case hex
}

// cloudflareNewRecord is the body of POST /zones/{id}/dns_records for TLSA.
type cloudflareNewRecord struct {
	Type string             `json:"type"`
	Name string             `json:"name"`
	TTL  int                `json:"ttl"`
	Data cloudflareTLSAData `json:"data"`
}

// cfServed is a TLSA record served at an owner with its API id.
type cfServed struct {
	ID string
	RR RR
}

// Records returns the TLSA records Cloudflare serves at owner (an absolute
// name such as "_25._tcp.mail.example.com."), records published by others
// included, via GET /zones/{id}/dns_records?type=TLSA&name=<owner> with
// pagination. Certificate data arrives in upper-case hex and is returned as
// bytes, so comparisons are case-insensitive. A TTL of 1 ("automatic") is
// reported as 300 seconds, what Cloudflare serves. Errors are
// *CloudflareError (classes ErrCloudflareZone, ErrCloudflareAuth, …).
func (c *Cloudflare) Records(ctx context.Context, owner string) ([]RR, error) {
	z, err := c.findZone(ctx, owner)
	if err != nil {
		return nil, err
	}
	served, err := c.listTLSA(ctx, z, owner)
	if err != nil {
		return nil, err
	}
	rrs := make([]RR, 0, len(served))
	for _, s := range served {
		rrs = append(rrs, s.RR)
	}
	return rrs, nil
}

// listTLSA lists the TLSA records at owner. It asks for every record at
// the name (GET …/dns_records?name=<owner>, one listing), so that a CNAME
// there is seen too: then the error wraps an *AliasError naming the target
// (TLSA records beside a CNAME are not served, RFC 2181 §10.1, and
// Cloudflare refuses them, code 81054: internal/cloudflarefake/README.md).
func (c *Cloudflare) listTLSA(ctx context.Context, z cfZone, owner string) ([]cfServed, error) {
	recs, err := c.listRecords(ctx, z, owner, "")
	if err != nil {
		return nil, err
	}
	var served []cfServed
	for _, r := range recs {
		switch {
		case strings.EqualFold(r.Type, "CNAME"):
			return nil, &CloudflareError{Op: "list records", Zone: cfAbs(z.Name), Owner: cfAbs(owner),
				Message: "the owner is a CNAME", class: ErrCloudflareRequest,
				Err: &AliasError{Owner: cfAbs(owner), Target: cfAbs(r.Content)}}
		case !strings.EqualFold(r.Type, "TLSA"):
			continue
		}
		rec, err := r.tlsa()
		if err != nil {
			return nil, &CloudflareError{Op: "list records", Zone: cfAbs(z.Name), Owner: cfAbs(owner),
				Message: fmt.Sprintf("record %q: %v", r.ID, err), class: ErrCloudflareRequest}
		}
		served = append(served, cfServed{ID: r.ID, RR: RR{Owner: cfAbs(r.Name), TTL: cfTTL(r.TTL), Record: rec}})
	}
	return served, nil
}

// listRecords lists the records named name in zone z, of type typ (every
// type when ""), following pagination.
func (c *Cloudflare) listRecords(ctx context.Context, z cfZone, name, typ string) ([]cloudflareRecord, error) {
	n := cfName(name)
	var out []cloudflareRecord
	for page := 1; page <= cfMaxPages; page++ {
		q := url.Values{
			"name":     {n},
			"page":     {strconv.Itoa(page)},
			"per_page": {strconv.Itoa(cfPerPage)},
		}
		if typ != "" {
			q.Set("type", typ)
		}
		var recs []cloudflareRecord
		env, err := c.do(ctx, cfRequest{op: "list records", method: http.MethodGet, path: "/zones/" + url.PathEscape(z.ID) + "/dns_records",
			query: q, zone: cfAbs(z.Name), owner: cfAbs(name)}, &recs)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			// Defensive: keep only what was asked for, whatever the filter did.
			if cfName(r.Name) == n && (typ == "" || strings.EqualFold(r.Type, typ)) {
				out = append(out, r)
			}
		}
		ri := env.ResultInfo
		if ri == nil || len(recs) == 0 || page >= ri.TotalPages {
			break
		}
	}
	return out, nil
}

func cfTTL(ttl int) uint32 {
	switch {
	case ttl == 1:
		return cfAutoTTL
	case ttl <= 0:
		return 0
	default:
		return uint32(min(ttl, 1<<31-1))
	}
}

// tlsa returns the record's RDATA from its data object, or from content
// ("3 1 1 ABCD…") when data is missing or incomplete.
func (r cloudflareRecord) tlsa() (tlsa.Record, error) {
	if d := r.Data; d != nil && d.Usage != nil && d.Selector != nil && d.MatchingType != nil && d.Certificate != nil {
		var rec tlsa.Record
		for _, f := range []struct {
			name string
			v    int
			dst  *uint8
		}{{"usage", *d.Usage, &rec.Usage}, {"selector", *d.Selector, &rec.Selector}, {"matching_type", *d.MatchingType, &rec.MatchingType}} {
			if f.v < 0 || f.v > 255 {
				return tlsa.Record{}, fmt.Errorf("data.%s %d is out of range 0-255", f.name, f.v)
			}
			*f.dst = uint8(f.v)
		}
		b, err := cfDecodeHex(*d.Certificate)
		if err != nil {
			return tlsa.Record{}, fmt.Errorf("data.certificate: %w", err)
		}
		rec.Data = b
		return rec, nil
	}
	return parseCloudflareTLSA(r.Content)
}

// parseCloudflareTLSA parses the content Cloudflare returns for a TLSA
// record: "<usage> <selector> <matching type> <hex>" with decimal fields
// (0-255) and hex in either case, possibly split by white space (RFC 6698
// §2.2).
func parseCloudflareTLSA(content string) (tlsa.Record, error) {
	f := strings.Fields(content)
	if len(f) < 4 {
		return tlsa.Record{}, fmt.Errorf("TLSA content %q: want \"<usage> <selector> <matching type> <hex>\"", cfSnippet([]byte(content)))
	}
	var v [3]uint8
	for i, name := range []string{"usage", "selector", "matching type"} {
		n, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return tlsa.Record{}, fmt.Errorf("TLSA content: %s %q is not a number 0-255", name, cfSnippet([]byte(f[i])))
		}
		v[i] = uint8(n)
	}
	b, err := cfDecodeHex(strings.Join(f[3:], ""))
	if err != nil {
		return tlsa.Record{}, fmt.Errorf("TLSA content: %w", err)
	}
	return tlsa.Record{Usage: v[0], Selector: v[1], MatchingType: v[2], Data: b}, nil
}

// cfDecodeHex decodes certificate association data as the API returns it:
// hex digits in either case, possibly split by white space (the zone-file
// presentation of RFC 6698 §2.2 allows it, and a record created in the
// dashboard from pasted "3 1 1 AB CD …" text keeps its spaces), so that a
// record compares equal to the bytes we publish.
func cfDecodeHex(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if s == "" {
		return nil, errors.New("certificate association data is empty")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("certificate association data is not hex: %w", err)
	}
	return b, nil
}

// CloudflareApplyError reports an Apply that failed after starting to change
// records. Applied lists the changes in effect at Cloudflare (sent now, or
// found already done), Failed the change that failed, Pending those not
// attempted. Err is the cause (a *CloudflareError or the context's error), so
// errors.Is with the ErrCloudflare* classes sees through it. Running the same
// Diff and Apply again repairs the rest.
type CloudflareApplyError struct {
	Applied []Change
	Failed  Change
	Pending []Change
	Err     error
}

// Error returns "cloudflare: applied N of M changes (…); failed at <change>:
// <cause>".
func (e *CloudflareApplyError) Error() string {
	var b strings.Builder
	total := len(e.Applied) + 1 + len(e.Pending)
	fmt.Fprintf(&b, "cloudflare: applied %d of %d changes", len(e.Applied), total)
	if len(e.Applied) > 0 {
		b.WriteString(" (")
		for i, ch := range e.Applied {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(ch.String())
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "; failed at %s", e.Failed)
	if len(e.Pending) > 0 {
		fmt.Fprintf(&b, "; %d not attempted", len(e.Pending))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *CloudflareApplyError) Unwrap() error { return e.Err }

// Apply makes the Add and Remove changes (Keep is ignored) at Cloudflare:
// adds with POST /zones/{id}/dns_records carrying the TLSA data object,
// removes with DELETE /zones/{id}/dns_records/{record_id} of exactly the
// served record whose RDATA equals the change (hex compared
// case-insensitively). Records not named by a change are never touched.
//
// Cloudflare has no atomic multi-record change, so Apply first reads every
// owner, then sends all adds, then all removes: a new record is published
// before an old one goes, whatever fails. It is idempotent: an add already
// served and a remove already gone send nothing, so a rerun of the same plan
// makes no POST or DELETE.
//
// What a failure leaves behind: a failure before any change returns the
// *CloudflareError and nothing changed; after that, a *CloudflareApplyError
// lists what was applied (Applied), the change that failed (Failed: applied
// or not, read again to know when the answer was lost) and what was not
// attempted (Pending). Because adds go first, a failure never leaves an owner
// with a removal applied and an addition of the same plan missing. Sending
// the same plan again is safe.
//
// Concurrency: Apply may be called from several goroutines on one
// *Cloudflare. Cloudflare offers no prerequisite (no compare-and-swap on a
// record set), so Keep entries are ignored and a concurrent writer's change
// between Apply's read and its requests is not detected: a removal whose
// record is already gone is a no-op; a record someone else added meanwhile
// is never deleted (deletes name a record id read just before).
func (c *Cloudflare) Apply(ctx context.Context, changes []Change) error {
	_, err := c.apply(ctx, changes, nil)
	return err
}

// apply is Apply; with reg set, the claims at each owner with removals are
// read again after the additions, right before the removals, and a removal
// another host claims is not sent but returned as a Conflict
// (ApplyClaimed).
func (c *Cloudflare) apply(ctx context.Context, changes []Change, reg *registryGuard) ([]Conflict, error) {
	var work []Change
	for _, ch := range changes {
		if ch.Op != Add && ch.Op != Remove {
			continue
		}
		if cfName(ch.Owner) == "" {
			return nil, fmt.Errorf("cloudflare: change %q has no owner: %w", ch.String(), ErrCloudflareRequest)
		}
		if len(ch.Record.Data) == 0 {
			return nil, fmt.Errorf("cloudflare: change %q has no certificate association data: %w", ch.String(), ErrCloudflareRequest)
		}
		work = append(work, ch)
	}
	if len(work) == 0 {
		return nil, nil
	}

	// Read every owner once.
	type ownerState struct {
		zone   cfZone
		served []cfServed
	}
	owners := map[string]*ownerState{}
	for _, ch := range work {
		name := cfName(ch.Owner)
		if owners[name] != nil {
			continue
		}
		z, err := c.findZone(ctx, ch.Owner)
		if err != nil {
			return nil, err
		}
		served, err := c.listTLSA(ctx, z, ch.Owner)
		if err != nil {
			return nil, err
		}
		owners[name] = &ownerState{zone: z, served: served}
	}

	// Adds first, then removes, each in plan order.
	var ordered []Change
	for _, op := range []Op{Add, Remove} {
		for _, ch := range work {
			if ch.Op == op {
				ordered = append(ordered, ch)
			}
		}
	}
	var applied []Change
	var conflicts []Conflict
	claims := map[string][]Claim{} // owner -> claims read right before its first removal
	for i, ch := range ordered {
		st := owners[cfName(ch.Owner)]
		var err error
		if ch.Op == Add {
			err = c.add(ctx, st.zone, st.served, ch)
		} else {
			if reg != nil {
				key := cfName(ch.Owner)
				cs, ok := claims[key]
				if !ok {
					if cs, err = c.Claims(ctx, ch.Owner); err == nil {
						claims[key] = cs
					}
				}
				if hosts := othersClaiming(cs, reg.host, ch.Record); err == nil && len(hosts) > 0 {
					conflicts = append(conflicts, Conflict{Change: ch, Hosts: hosts,
						Reason: fmt.Sprintf("host %s claimed it in the ownership registry %s since this run decided (read right before the removal): kept, decided again next run",
							strings.Join(hosts, ", "), RegistryName(ch.Owner))})
					continue
				}
			}
			if err == nil {
				err = c.remove(ctx, st.zone, st.served, ch)
			}
		}
		if err != nil {
			return conflicts, &CloudflareApplyError{Applied: applied, Failed: ch, Pending: append([]Change(nil), ordered[i+1:]...), Err: err}
		}
		applied = append(applied, ch)
	}
	return conflicts, nil
}

func (c *Cloudflare) add(ctx context.Context, z cfZone, served []cfServed, ch Change) error {
	for _, s := range served {
		if s.RR.Record.Equal(ch.Record) {
			return nil // already published
		}
	}
	ttl := int(min(ch.TTL, 1<<31-1))
	if ttl == 0 {
		ttl = 1 // automatic
	}
	body := cloudflareNewRecord{
		Type: "TLSA",
		Name: cfName(ch.Owner),
		TTL:  ttl,
		Data: cloudflareTLSAData{
			Usage:        ch.Record.Usage,
			Selector:     ch.Record.Selector,
			MatchingType: ch.Record.MatchingType,
			Certificate:  hex.EncodeToString(ch.Record.Data),
		},
	}
	_, err := c.do(ctx, cfRequest{op: "add record", method: http.MethodPost, path: "/zones/" + url.PathEscape(z.ID) + "/dns_records",
		body: body, zone: cfAbs(z.Name), owner: cfAbs(ch.Owner)}, nil)
	var ce *CloudflareError
	if errors.As(err, &ce) && ce.Code == cfCodeIdenticalRecord {
		// Published by an earlier attempt whose answer was lost (a retried
		// POST), or by someone else: the record is there, which is the goal.
		return nil
	}
	return err
}

func (c *Cloudflare) remove(ctx context.Context, z cfZone, served []cfServed, ch Change) error {
	for _, s := range served {
		if !s.RR.Record.Equal(ch.Record) {
			continue
		}
		_, err := c.do(ctx, cfRequest{op: "delete record", method: http.MethodDelete,
			path: "/zones/" + url.PathEscape(z.ID) + "/dns_records/" + url.PathEscape(s.ID), zone: cfAbs(z.Name), owner: cfAbs(ch.Owner)}, nil)
		var ce *CloudflareError
		if errors.As(err, &ce) && ce.Code == cfCodeRecordNotFound {
			continue // already gone (a retried DELETE, or removed by hand)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
