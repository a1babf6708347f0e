package dnsupdate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/libdns/rfc2136"
	"github.com/miekg/dns"
)

// How danehook drives a libdns provider (github.com/libdns/libdns v1.1.1),
// and why (each point has a test in libdns_test.go):
//
//  L1. Only RecordAppender and RecordDeleter are used. SetRecords replaces
//      the whole RRset of a name and type in most providers (it would drop
//      records of other writers and a current+next pair); GetRecords lists
//      the whole zone (AXFR for rfc2136, every RRset for the APIs).
//  L2. Reads never go through the provider: FindZone and Records are a
//      direct, non-recursive query to an authoritative server of the zone
//      (Libdns.Reader, an *RFC2136 pointed at query_server), the same
//      observation the propagation check makes anyway.
//  L3. TLSA is an opaque libdns.RR{Type: "TLSA", Name: <relative to the
//      zone>, Data: "3 1 1 <lower-case hex>", TTL}: libdns v1.1.1 has no
//      TLSA struct, and RR.Parse returns unknown types as the RR itself.
//  L4. Apply reads every owner first and sends only what is missing (adds
//      not served, removes still served), so a rerun sends nothing and an
//      append is never a duplicate (Hetzner's API would store one).
//  L5. Adds before removes, across every zone: all AppendRecords calls,
//      then all DeleteRecords calls. A failure returns *LibdnsApplyError
//      listing what was applied, like the Cloudflare path.
//  L6. libdns errors are strings. Classify (set per provider) maps them to
//      the classes below; an error no rule knows is ErrProviderRequest
//      (exit 4) when it carries an HTTP 4xx, else ErrProviderUnavailable.
//      A panic in a provider is recovered and returned as an error.
//  L7. Secrets are redacted from every error (Secrets), and the provider
//      value is never printed (String hides it).
//  L8. A call never carries more than the provider can take: a zone's
//      additions (and its removals) go out as consecutive calls, each as
//      full as Limit allows (LibdnsLimitOf: libdns/rfc2136 makes one call
//      one DNS UPDATE message, at most 65,535 bytes; the API modules reach
//      no documented per-request limit). The order of L5 holds across the
//      calls: every call with additions, of every zone, before the first
//      with removals.

// Error classes of libdns providers, provider-neutral. A *LibdnsError
// matches exactly one with errors.Is; the CLI maps them to exit codes (auth
// 3, request 4, zone 5, unavailable 6).
var (
	// ErrProviderAuth: the provider refused the credentials (HTTP 401/403,
	// a TSIG failure).
	ErrProviderAuth = errors.New("provider authentication failed")
	// ErrProviderRequest: the provider rejected the change itself (a
	// validation error, HTTP 400/422, REFUSED).
	ErrProviderRequest = errors.New("provider rejected the request")
	// ErrProviderZone: the zone is unknown to the account (HTTP 404 on the
	// zone, NOTAUTH/NOTZONE).
	ErrProviderZone = errors.New("zone not found at the provider")
	// ErrProviderUnavailable: rate limited (HTTP 429), 5xx, a timeout or a
	// transport failure.
	ErrProviderUnavailable = errors.New("provider unavailable")
)

// LibdnsProvider is what danehook needs of a libdns provider: add and
// delete exact records (libdns.RecordAppender, libdns.RecordDeleter).
type LibdnsProvider interface {
	libdns.RecordAppender
	libdns.RecordDeleter
}

// TLSAReader reads the TLSA RRset at an owner and finds its zone, by
// direct query (an *RFC2136 pointed at an authoritative server does).
type TLSAReader interface {
	FindZone(ctx context.Context, owner string) (string, error)
	Records(ctx context.Context, owner string) ([]RR, error)
}

// Libdns publishes TLSA records through any libdns provider and reads them
// by direct query (decisions L1–L7 above). Configure it with exported
// fields; Provider and Reader are required. It is safe for concurrent use
// when Provider and Reader are.
type Libdns struct {
	// Name is the libdns provider's name ("desec", "hetzner", "rfc2136"),
	// used in errors.
	Name string
	// Provider appends and deletes records.
	Provider LibdnsProvider
	// Reader finds zones and reads owners (never through Provider); it
	// must be safe for concurrent use (Apply reads up to readWorkers
	// owners at once), as an *RFC2136 is.
	Reader TLSAReader
	// Limit bounds one provider call (L8); the zero value means
	// LibdnsLimitOf(Provider).
	Limit LibdnsLimit
	// Timeout bounds one provider call per record it carries: a call with
	// n records gets n × Timeout + Timeout; 0 means 30 s. libdns providers
	// take no timeout of their own, only the context.
	Timeout time.Duration
	// Classify maps a provider error to one of the ErrProvider* classes,
	// or nil when it cannot tell (then the default rules of L6 apply).
	Classify func(error) error
	// Diagnose, when set, is asked to explain an ErrProviderZone or
	// ErrProviderAuth failure that the provider's text cannot tell apart
	// (libdns/rfc2136 reports every TSIG failure as "dns: bad
	// authentication"): it returns a classified error of its own, or nil;
	// its message and hint are added.
	Diagnose func(ctx context.Context, zone string) error
	// Secrets are removed from every error message (API tokens, TSIG
	// secrets), whatever the provider put in its errors.
	Secrets []string
}

var _ interface {
	FindZone(ctx context.Context, owner string) (string, error)
	Records(ctx context.Context, owner string) ([]RR, error)
	Apply(ctx context.Context, changes []Change) error
} = (*Libdns)(nil)

// String names the provider without its credentials: `libdns{name="desec"}`.
func (l *Libdns) String() string {
	if l == nil {
		return "libdns<nil>"
	}
	return fmt.Sprintf("libdns{name=%q}", l.Name)
}

// GoString is String, so %#v does not print the provider's fields.
func (l *Libdns) GoString() string { return l.String() }

// Format prints String for every verb.
func (l *Libdns) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(l.String())) }

// LogValue makes slog print String.
func (l *Libdns) LogValue() slog.Value { return slog.StringValue(l.String()) }

// FindZone returns the zone of owner ("example.com.") through Reader.
func (l *Libdns) FindZone(ctx context.Context, owner string) (string, error) {
	return l.Reader.FindZone(ctx, owner)
}

// Records returns the TLSA RRset served at owner through Reader: a direct
// query to an authoritative server, never the provider's API (L2).
func (l *Libdns) Records(ctx context.Context, owner string) ([]RR, error) {
	return l.Reader.Records(ctx, owner)
}

// viewReader is what an *RFC2136 Reader offers beyond TLSAReader: the
// zone and RRset in one query, unsigned reads and the view check
// (decision V1, view.go).
type viewReader interface {
	ZoneRecords(ctx context.Context, owner string) (string, []RR, error)
	UnsignedZoneRecords(ctx context.Context, owner string) (string, []RR, error)
	SameView(ctx context.Context, zone string) (bool, string)
	ReadServer() string
}

var _ viewReader = (*RFC2136)(nil)

// ZoneRecords returns owner's zone and TLSA RRset through Reader: with one
// query when Reader is an *RFC2136 (RFC2136.ZoneRecords), else FindZone
// then Records. Errors are Reader's.
func (l *Libdns) ZoneRecords(ctx context.Context, owner string) (string, []RR, error) {
	if vr, ok := l.Reader.(viewReader); ok {
		return vr.ZoneRecords(ctx, owner)
	}
	zone, err := l.Reader.FindZone(ctx, owner)
	if err != nil {
		return "", nil, err
	}
	rrs, err := l.Reader.Records(ctx, owner)
	return zone, rrs, err
}

// UnsignedZoneRecords is ZoneRecords without TSIG (RFC2136's, when Reader
// is one; other Readers sign nothing anyway): the engine shares the answer
// with the propagation check (sharedread.go in pkg/deploy), so an owner
// costs one query at query_server instead of three.
func (l *Libdns) UnsignedZoneRecords(ctx context.Context, owner string) (string, []RR, error) {
	if vr, ok := l.Reader.(viewReader); ok {
		return vr.UnsignedZoneRecords(ctx, owner)
	}
	return l.ZoneRecords(ctx, owner)
}

// SameView is Reader's view check (RFC2136.SameView): true at no cost
// when Reader has no key or is no *RFC2136.
func (l *Libdns) SameView(ctx context.Context, zone string) (bool, string) {
	if vr, ok := l.Reader.(viewReader); ok {
		return vr.SameView(ctx, zone)
	}
	return true, ""
}

// ReadServer is the "host:port" Reader queries (query_server), or "" when
// Reader is no *RFC2136: then no answer is shared.
func (l *Libdns) ReadServer() string {
	if vr, ok := l.Reader.(viewReader); ok {
		return vr.ReadServer()
	}
	return ""
}

// LibdnsError is a failed libdns provider call: which provider, what was
// being done (Op: "append records", "delete records"), in which zone, for
// which owners, and the provider's error (Err, secrets removed). Status is
// the HTTP status the message carried, 0 if none. errors.Is with the
// ErrProvider* classes tells the class.
type LibdnsError struct {
	Provider string
	Op       string
	Zone     string
	Owners   []string
	Status   int
	Err      error
	class    error
	msg      string // Err's text with secrets removed
	hint     string
}

// Error returns `libdns desec: append records in zone "example.com." at
// "_25._tcp.mail.example.com.": <provider's message>` (the first 10 owners,
// then "and N more").
func (e *LibdnsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "libdns %s: %s", e.Provider, e.Op)
	if e.Zone != "" {
		fmt.Fprintf(&b, " in zone %q", e.Zone)
	}
	if len(e.Owners) > 0 {
		b.WriteString(" at ")
		for i, o := range e.Owners[:min(len(e.Owners), libdnsListed)] {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", o)
		}
		if n := len(e.Owners) - libdnsListed; n > 0 {
			fmt.Fprintf(&b, " and %d more", n)
		}
	}
	b.WriteString(": ")
	b.WriteString(e.msg)
	return b.String()
}

// Is reports whether target is e's class.
func (e *LibdnsError) Is(target error) bool { return target != nil && target == e.class }

// Class returns the ErrProvider* class of e.
func (e *LibdnsError) Class() error { return e.class }

// Unwrap returns the class, so context errors are not mistaken for the
// provider's (the provider's own error is kept as text only: it may quote a
// secret that redaction removed from msg).
func (e *LibdnsError) Unwrap() error { return e.class }

// Hint says what the operator should do.
func (e *LibdnsError) Hint() string {
	if e.hint != "" {
		return e.hint
	}
	switch e.class {
	case ErrProviderAuth:
		return "check the provider's credentials (api_token_file / api_token_env, or the TSIG key) and their permissions on the zone"
	case ErrProviderZone:
		return "check that the zone exists in the provider account, or set the provider's zone"
	case ErrProviderRequest:
		return "the provider refused the record; see its message"
	case ErrProviderUnavailable:
		return "the provider is rate limiting or unavailable; the next run (danectl tick) retries"
	}
	return ""
}

// LibdnsApplyError reports an Apply that failed after it began changing
// records. Applied lists the changes in effect (sent now or found already
// done), Failed those of the call that failed (applied or not: read again),
// Pending those not attempted. Err is the *LibdnsError (or the context's
// error). Running the same Diff and Apply again repairs the rest.
type LibdnsApplyError struct {
	Provider string
	Applied  []Change
	Failed   []Change
	Pending  []Change
	Err      error
}

// Error returns "libdns desec: applied N of M changes (…); failed at …: cause",
// each list cut after 10 changes ("; and N more"); the fields hold them all.
func (e *LibdnsApplyError) Error() string {
	var b strings.Builder
	total := len(e.Applied) + len(e.Failed) + len(e.Pending)
	fmt.Fprintf(&b, "libdns %s: applied %d of %d changes", e.Provider, len(e.Applied), total)
	if len(e.Applied) > 0 {
		b.WriteString(" (")
		writeChanges(&b, e.Applied)
		b.WriteString(")")
	}
	b.WriteString("; failed at ")
	writeChanges(&b, e.Failed)
	if len(e.Pending) > 0 {
		fmt.Fprintf(&b, "; %d not attempted", len(e.Pending))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *LibdnsApplyError) Unwrap() error { return e.Err }

// libdnsListed is how many changes (or owners) an error message names
// before "and N more": a split Apply of 1,000 owners would otherwise print
// them all.
const libdnsListed = 10

func writeChanges(b *strings.Builder, chs []Change) {
	for i, ch := range chs[:min(len(chs), libdnsListed)] {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ch.String())
	}
	if n := len(chs) - libdnsListed; n > 0 {
		fmt.Fprintf(b, "; and %d more", n)
	}
}

// libdnsRR is the opaque libdns form of one TLSA change (L3): the name
// relative to zone ("@" at the apex), "u s m <lower-case hex>".
func libdnsRR(ch Change, zone string) libdns.RR {
	name := libdns.RelativeName(ch.Owner, zone)
	if name == "" {
		name = "@"
	}
	return libdns.RR{
		Name: name,
		Type: "TLSA",
		TTL:  time.Duration(ch.TTL) * time.Second,
		Data: fmt.Sprintf("%d %d %d %s", ch.Record.Usage, ch.Record.Selector, ch.Record.MatchingType, hex.EncodeToString(ch.Record.Data)),
	}
}

func (l *Libdns) timeout(n int) time.Duration {
	t := l.Timeout
	if t <= 0 {
		t = 30 * time.Second
	}
	return t * time.Duration(n+1)
}

// Apply makes the Add and Remove changes (Keep is ignored: libdns has no
// prerequisites) through the provider: it finds each owner's zone and reads
// each owner once (Reader), then sends each zone's adds not served yet, then
// each zone's removes still served, in as few consecutive AppendRecords
// (then DeleteRecords) calls per zone as Limit allows (L4, L5, L8). Records
// not named by a change are never touched. It is idempotent: a rerun of the
// same plan makes no provider call.
//
// What a failure leaves behind: before any provider call, the Reader's
// error and nothing changed; after, a *LibdnsApplyError: Applied were sent
// (every earlier call's records and the prefix the failing call reports
// done) or already done, Failed is the rest of the call that failed (some
// of it may be applied: providers differ, read again), Pending were not
// tried (every later call's). Because adds go
// first, a removal is never applied while an add of the same plan is
// missing.
func (l *Libdns) Apply(ctx context.Context, changes []Change) error {
	_, err := l.apply(ctx, changes, nil)
	return err
}

// apply is Apply; with reg set, after the additions and right before the
// first DeleteRecords, the claims at every owner with a removal are read
// again (Reader) and a removal another host claims is not sent but returned
// as a Conflict (ApplyClaimed).
func (l *Libdns) apply(ctx context.Context, changes []Change, reg *registryGuard) ([]Conflict, error) {
	var work []Change
	for _, ch := range changes {
		if ch.Op != Add && ch.Op != Remove {
			continue
		}
		if strings.TrimSuffix(ch.Owner, ".") == "" {
			return nil, fmt.Errorf("libdns %s: change %q has no owner: %w", l.Name, ch.String(), ErrProviderRequest)
		}
		if len(ch.Record.Data) == 0 {
			return nil, fmt.Errorf("libdns %s: change %q has no certificate association data: %w", l.Name, ch.String(), ErrProviderRequest)
		}
		work = append(work, ch)
	}
	if len(work) == 0 {
		return nil, nil
	}
	zones := map[string]string{}
	served := map[string][]RR{}
	var zoneOrder []string
	// Each owner once, up to readWorkers at a time (an *RFC2136 Reader
	// pipelines them on one TCP connection): one after the other, 1,000
	// owners took seconds.
	var owners []string
	first := map[string]string{}
	for _, ch := range work {
		key := strings.ToLower(ch.Owner)
		if _, ok := first[key]; !ok {
			first[key] = ch.Owner
			owners = append(owners, key)
		}
	}
	ozones := make([]string, len(owners))
	orrs := make([][]RR, len(owners))
	errs := make([]error, len(owners))
	forEach(len(owners), readWorkers, func(i int) {
		o := first[owners[i]]
		if ozones[i], errs[i] = l.Reader.FindZone(ctx, o); errs[i] == nil {
			orrs[i], errs[i] = l.Reader.Records(ctx, o)
		}
	})
	for i, key := range owners {
		if errs[i] != nil {
			return nil, errs[i]
		}
		zones[key], served[key] = ozones[i], orrs[i]
		if !containsString(zoneOrder, ozones[i]) {
			zoneOrder = append(zoneOrder, ozones[i])
		}
	}
	has := func(ch Change) bool {
		for _, rr := range served[strings.ToLower(ch.Owner)] {
			if rr.Record.Equal(ch.Record) {
				return true
			}
		}
		return false
	}
	var batches []libdnsBatch
	var applied []Change
	for _, op := range []Op{Add, Remove} {
		for _, z := range zoneOrder {
			b := libdnsBatch{op: op, zone: z}
			for _, ch := range work {
				if ch.Op != op || zones[strings.ToLower(ch.Owner)] != z {
					continue
				}
				if (op == Add) == has(ch) {
					applied = append(applied, ch) // already done
					continue
				}
				b.changes = append(b.changes, ch)
			}
			if len(b.changes) > 0 {
				batches = append(batches, b)
			}
		}
	}
	later := func(i int) []Change {
		var pending []Change
		for _, rest := range batches[i+1:] {
			pending = append(pending, rest.changes...)
		}
		return pending
	}
	var conflicts []Conflict
	checked := false
	for i := 0; i < len(batches); i++ {
		if batches[i].op == Remove && reg != nil && !checked {
			// Right before the first removal: the claims as they are now.
			checked = true
			var err error
			failed, pending := batches[i].changes, later(i) // as planned: dropClaimed replaces the slices
			if conflicts, err = l.dropClaimed(ctx, reg, batches[i:]); err != nil {
				return nil, &LibdnsApplyError{Provider: l.Name, Applied: applied, Failed: failed, Pending: pending,
					Err: fmt.Errorf("read the ownership registry before removing: %w", err)}
			}
		}
		b := batches[i]
		if len(b.changes) == 0 {
			continue // every removal of the zone is claimed by another host
		}
		recs := make([]libdns.Record, len(b.changes))
		names := make([]string, len(b.changes))
		for j, ch := range b.changes {
			recs[j], names[j] = libdnsRR(ch, b.zone), ch.Owner
		}
		done, end, err := l.send(ctx, b.op, b.zone, names, recs)
		if err != nil {
			pending := append(append([]Change(nil), b.changes[end:]...), later(i)...)
			return conflicts, &LibdnsApplyError{Provider: l.Name, Applied: append(applied, b.changes[:done]...), Failed: b.changes[done:end], Pending: pending, Err: err}
		}
		applied = append(applied, b.changes...)
	}
	return conflicts, nil
}

// libdnsBatch is what Apply sends for one zone and op: additions or
// removals in one zone, in one or more provider calls (L8).
type libdnsBatch struct {
	op      Op
	zone    string
	changes []Change
}

// send sends recs, all in zone, as consecutive AppendRecords (op Add) or
// DeleteRecords calls, each within l's Limit (L8); names[i] is recs[i]'s
// owner, for errors. On error, done is how many leading records are
// applied (every earlier call's and the prefix the failing call reports
// done) and end is where the failing call's records end: recs[done:end]
// failed, recs[end:] were not sent.
func (l *Libdns) send(ctx context.Context, op Op, zone string, names []string, recs []libdns.Record) (done, end int, err error) {
	start := 0
	for _, end := range libdnsCalls(l.limit(), zone, recs) {
		var owners []string
		seen := map[string]bool{}
		for _, o := range names[start:end] {
			if !seen[o] {
				seen[o] = true
				owners = append(owners, o)
			}
		}
		d, err := l.callRecords(ctx, op, zone, owners, recs[start:end])
		if err != nil {
			return start + d, end, err
		}
		start = end
	}
	return len(recs), len(recs), nil
}

// callRecords sends one AppendRecords (op Add) or DeleteRecords with recs,
// all in zone, at owners (for the error). It returns how many leading
// records the provider reports done when it fails (libdns providers return
// the records handled so far).
func (l *Libdns) callRecords(ctx context.Context, op Op, zone string, owners []string, recs []libdns.Record) (done int, err error) {
	name := "append records"
	if op == Remove {
		name = "delete records"
	}
	cctx, cancel := context.WithTimeout(ctx, l.timeout(len(recs)))
	defer cancel()
	var got []libdns.Record
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("the provider panicked: %v", p)
			}
		}()
		if op == Add {
			got, err = l.Provider.AppendRecords(cctx, zone, recs)
		} else {
			got, err = l.Provider.DeleteRecords(cctx, zone, recs)
		}
	}()
	if err == nil {
		return len(recs), nil
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("libdns %s: %s in zone %q: %w", l.Name, name, zone, ctx.Err())
	}
	done = min(len(got), len(recs))
	return done, l.wrap(ctx, cctx, name, zone, owners, len(recs), err)
}

// LibdnsLimit bounds what one AppendRecords or DeleteRecords call may carry
// (L8). A zero field is no bound.
type LibdnsLimit struct {
	// Records is the most records in one call, for an API that documents
	// a count per request (no compiled-in provider needs one: see
	// LibdnsLimitOf).
	Records int
	// MessageBytes is the most bytes of the one DNS message a call
	// becomes (an RFC 2136 UPDATE), estimated from above: a 12-byte
	// header, the zone section, every record uncompressed (owner name, 10
	// bytes of type, class, TTL and length, the RDATA; RFC 1035 §3.2.1,
	// §4.1) and libdnsTSIGReserve bytes for the TSIG record.
	MessageBytes int
}

// LibdnsRFC2136MessageBytes is the MessageBytes bound of libdns/rfc2136:
// 60,000 estimated bytes, 5,535 below the largest DNS message (65,535
// bytes: the two-byte length of DNS over TCP, RFC 1035 §4.2.2, RFC 7766
// §8), a margin for what the estimate may miss.
const LibdnsRFC2136MessageBytes = 60000

// libdnsTSIGReserve is what MessageBytes keeps for the TSIG record (RFC
// 8945 §4.2) of a signed message: key name (at most 255 bytes), 10 bytes
// of type, class, TTL and length, algorithm name (at most 255), 16 bytes of
// time, fudge, MAC size, original ID, error and other length, and a MAC of
// up to 64 bytes (HMAC-SHA512).
const libdnsTSIGReserve = 255 + 10 + 255 + 16 + 64

// LibdnsLimitOf returns the bound of one call to provider p, by what each
// compiled-in module makes of one call:
//
//   - *rfc2136.Provider (github.com/libdns/rfc2136 v1.0.1): one UPDATE
//     message over TCP, built with miekg/dns Insert or Remove, one record
//     each, uncompressed (Msg.Compress is never set), no prerequisite,
//     signed with TSIG; miekg/dns refuses a message over 65,535 bytes
//     ("dns: message too large", 1,000 owners in one zone): MessageBytes
//     LibdnsRFC2136MessageBytes.
//   - libdns/desec v1.1.1: one GET per RRset, then one bulk PUT
//     /domains/{name}/rrsets/ of the RRsets. deSEC documents limits per
//     RRset (4,091 records, 64,000 bytes of records after JSON encoding)
//     and 500 items per page for reads, none on the RRsets of one bulk
//     request (desec.readthedocs.io "Retrieving and Creating DNS Records",
//     "Bulk Operations"); more calls would only spend more of its write
//     rate limit. No bound.
//   - libdns/hetzner v1.0.0 (with pkg/libdnsprov's adapter): one POST
//     /records, or one DELETE, per record; a call has no size of its own.
//     No bound.
//   - libdns/route53 v1.6.2 (build tag libdns_route53): one
//     ChangeResourceRecordSets per RRset (name and type) of the call;
//     Route 53 bounds a request at 1,000 ResourceRecord elements and
//     32,000 characters of values (docs.aws.amazon.com,
//     ChangeResourceRecordSets), which one owner's TLSA RRset does not
//     reach whatever the number of owners in the call. No bound.
//
// Any other provider gets no bound: one call per zone and op.
func LibdnsLimitOf(p LibdnsProvider) LibdnsLimit {
	if _, ok := p.(*rfc2136.Provider); ok {
		return LibdnsLimit{MessageBytes: LibdnsRFC2136MessageBytes}
	}
	return LibdnsLimit{}
}

func (l *Libdns) limit() LibdnsLimit {
	if l.Limit != (LibdnsLimit{}) {
		return l.Limit
	}
	return LibdnsLimitOf(l.Provider)
}

// ErrNotMessages is returned by Libdns.Messages for a provider whose calls
// are API requests, not DNS messages: there is nothing to count in UPDATE
// messages.
var ErrNotMessages = errors.New("the provider's calls are API requests, not DNS messages")

// Messages returns, per zone (absolute, lower case), how many DNS UPDATE
// messages Apply would send for changes through a provider whose every
// call is one (libdns/rfc2136: its Limit has MessageBytes): the calls its
// additions take plus those of its removals (L8), as Apply splits them.
// Changes Apply finds already done when it reads again are counted too.
// Zones come from Reader.FindZone (cached after the plan's reads). It
// returns ErrNotMessages for an API provider, and FindZone's errors.
func (l *Libdns) Messages(ctx context.Context, changes []Change) (map[string]int, error) {
	limit := l.limit()
	if limit.MessageBytes == 0 {
		return nil, ErrNotMessages
	}
	type key struct {
		zone string
		op   Op
	}
	recs := map[key][]libdns.Record{}
	var order []key
	zones := map[string]string{}
	for _, ch := range changes {
		if ch.Op != Add && ch.Op != Remove {
			continue
		}
		o := strings.ToLower(ch.Owner)
		z, ok := zones[o]
		if !ok {
			var err error
			if z, err = l.Reader.FindZone(ctx, ch.Owner); err != nil {
				return nil, err
			}
			zones[o] = z
		}
		k := key{z, ch.Op}
		if _, ok := recs[k]; !ok {
			order = append(order, k)
		}
		recs[k] = append(recs[k], libdnsRR(ch, z))
	}
	out := map[string]int{}
	for _, k := range order {
		out[dns.CanonicalName(k.zone)] += len(libdnsCalls(limit, k.zone, recs[k]))
	}
	return out, nil
}

// libdnsCalls splits recs, all in zone, into consecutive runs that each fit
// limit, every run as long as it can be (so their number is the least the
// bound allows), and returns the end index of each run. A record that alone
// exceeds the bound is a run of its own: the provider then refuses it.
func libdnsCalls(limit LibdnsLimit, zone string, recs []libdns.Record) []int {
	budget := 0
	if limit.MessageBytes > 0 {
		budget = max(limit.MessageBytes-libdnsMessageOverhead(zone), 1)
	}
	var ends []int
	n, size := 0, 0
	for i, r := range recs {
		b := 0
		if budget > 0 {
			b = libdnsWireBytes(r, zone)
		}
		if n > 0 && ((limit.Records > 0 && n >= limit.Records) || (budget > 0 && size+b > budget)) {
			ends = append(ends, i)
			n, size = 0, 0
		}
		n++
		size += b
	}
	if n > 0 {
		ends = append(ends, len(recs))
	}
	return ends
}

// libdnsMessageOverhead is what an UPDATE for zone carries besides its
// records (MessageBytes): the header, the zone section (the zone's name,
// type SOA, class) and the TSIG reserve.
func libdnsMessageOverhead(zone string) int {
	return 12 + nameWireBytes(zone) + 4 + libdnsTSIGReserve
}

// libdnsWireBytes is the bytes rec takes in a message, uncompressed, as
// libdns/rfc2136 builds it (recordToRR: the record's zone-file line
// parsed by miekg/dns), estimated from above: the owner name, 10 bytes of
// type, class, TTL and RDLENGTH, and the RDATA: for TLSA 3 bytes and half
// a byte per hex digit (RFC 6698 §2.1), for TXT the text with one length
// byte per string of up to 255 characters (libdns/rfc2136 splits it so;
// RFC 1035 §3.3.14), for any other type its presentation form plus 16.
func libdnsWireBytes(rec libdns.Record, zone string) int {
	rr := rec.RR()
	n := nameWireBytes(libdns.AbsoluteName(rr.Name, zone)) + 10
	switch strings.ToUpper(rr.Type) {
	case "TLSA":
		if f := strings.Fields(rr.Data); len(f) >= 4 {
			digits := 0
			for _, h := range f[3:] {
				digits += len(h)
			}
			return n + 3 + (digits+1)/2
		}
	case "TXT":
		return n + len(rr.Data) + len(rr.Data)/255 + 1
	}
	return n + len(rr.Data) + 16
}

// nameWireBytes is the uncompressed wire length of an absolute name in
// presentation form ("example.com." → 13; RFC 1035 §3.1), from above (an
// escape such as "\." counts its presentation bytes).
func nameWireBytes(name string) int {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return 1
	}
	return len(name) + 2
}

// libdnsStatus finds the HTTP status in a provider's error text: desec's
// "unexpected status code 401: …", hetzner's "Unauthorized (401)",
// "HTTP 429", "status 503".
var libdnsStatus = regexp.MustCompile(`(?i)(?:status(?: code)?|http)[ :]+([1-5][0-9][0-9])\b|\(([1-5][0-9][0-9])\)`)

func (l *Libdns) wrap(ctx, cctx context.Context, op, zone string, owners []string, n int, err error) error {
	e := &LibdnsError{Provider: l.Name, Op: op, Zone: zone, Owners: owners, Err: err, msg: l.redact(err.Error())}
	if m := libdnsStatus.FindStringSubmatch(err.Error()); m != nil {
		s := m[1]
		if s == "" {
			s = m[2]
		}
		e.Status, _ = strconv.Atoi(s)
	}
	if l.Classify != nil {
		e.class = l.Classify(err)
	}
	switch {
	case e.class != nil:
	case errors.Is(err, context.DeadlineExceeded) || cctx.Err() != nil:
		e.class = ErrProviderUnavailable
		e.msg += fmt.Sprintf(" (no answer within %s, the provider's timeout setting per record)", l.timeout(n))
	case e.Status == 401 || e.Status == 403:
		e.class = ErrProviderAuth
	case e.Status == 404:
		e.class = ErrProviderZone
	case e.Status == 429:
		e.class = ErrProviderUnavailable
	case e.Status >= 400 && e.Status < 500:
		e.class = ErrProviderRequest
	default:
		e.class = ErrProviderUnavailable
	}
	if e.Status == 429 {
		e.hint = "the provider rate-limits this account; the next run (danectl tick) retries"
	}
	if l.Diagnose != nil && (e.class == ErrProviderZone || e.class == ErrProviderAuth) {
		if d := l.Diagnose(ctx, zone); d != nil {
			e.msg += "; danehook's own query explains: " + l.redact(d.Error())
			var h interface{ Hint() string }
			if errors.As(d, &h) {
				e.hint = h.Hint()
			}
			switch {
			case errors.Is(d, ErrTSIG):
				e.class = ErrProviderAuth
			case errors.Is(d, ErrRefused):
				e.class = ErrProviderRequest
			case errors.Is(d, ErrServer):
				e.class = ErrProviderUnavailable
			}
		}
	}
	return e
}

// redact removes the configured secrets (and their base64 padding-less
// form) from s.
func (l *Libdns) redact(s string) string {
	for _, t := range l.Secrets {
		if len(t) >= 4 {
			s = strings.ReplaceAll(s, t, "[redacted]")
			if u := strings.TrimRight(t, "="); len(u) >= 4 && u != t {
				s = strings.ReplaceAll(s, u, "[redacted]")
			}
		}
	}
	return s
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
