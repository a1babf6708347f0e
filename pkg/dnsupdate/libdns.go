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
// "_25._tcp.mail.example.com.": <provider's message>`.
func (e *LibdnsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "libdns %s: %s", e.Provider, e.Op)
	if e.Zone != "" {
		fmt.Fprintf(&b, " in zone %q", e.Zone)
	}
	if len(e.Owners) > 0 {
		b.WriteString(" at ")
		for i, o := range e.Owners {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", o)
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

// Error returns "libdns desec: applied N of M changes (…); failed at …: cause".
func (e *LibdnsApplyError) Error() string {
	var b strings.Builder
	total := len(e.Applied) + len(e.Failed) + len(e.Pending)
	fmt.Fprintf(&b, "libdns %s: applied %d of %d changes", e.Provider, len(e.Applied), total)
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
	b.WriteString("; failed at ")
	for i, ch := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(ch.String())
	}
	if len(e.Pending) > 0 {
		fmt.Fprintf(&b, "; %d not attempted", len(e.Pending))
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

// Unwrap returns the cause.
func (e *LibdnsApplyError) Unwrap() error { return e.Err }

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
// each owner once (Reader), then sends one AppendRecords per zone with the
// adds not served yet, then one DeleteRecords per zone with the removes
// still served (L4, L5). Records not named by a change are never touched.
// It is idempotent: a rerun of the same plan makes no provider call.
//
// What a failure leaves behind: before any provider call, the Reader's
// error and nothing changed; after, a *LibdnsApplyError: Applied were sent
// (or already done), Failed is the call that failed (some of its records
// may be applied: providers differ, read again), Pending were not tried.
// Because adds go first, a removal is never applied while an add of the
// same plan is missing.
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
	var conflicts []Conflict
	checked := false
	for i := 0; i < len(batches); i++ {
		b := batches[i]
		if b.op == Remove && reg != nil && !checked {
			// Right before the first removal: the claims as they are now.
			checked = true
			var err error
			if conflicts, err = l.dropClaimed(ctx, reg, batches[i:]); err != nil {
				var pending []Change
				for _, rest := range batches[i+1:] {
					pending = append(pending, rest.changes...)
				}
				return nil, &LibdnsApplyError{Provider: l.Name, Applied: applied, Failed: b.changes, Pending: pending,
					Err: fmt.Errorf("read the ownership registry before removing: %w", err)}
			}
			b = batches[i]
			if len(b.changes) == 0 {
				continue
			}
		}
		done, err := l.call(ctx, b.op, b.zone, b.changes)
		if err != nil {
			var pending []Change
			for _, rest := range batches[i+1:] {
				pending = append(pending, rest.changes...)
			}
			failed := b.changes[done:]
			return conflicts, &LibdnsApplyError{Provider: l.Name, Applied: append(applied, b.changes[:done]...), Failed: failed, Pending: pending, Err: err}
		}
		applied = append(applied, b.changes...)
	}
	return conflicts, nil
}

// libdnsBatch is one provider call of Apply: additions or removals in one
// zone.
type libdnsBatch struct {
	op      Op
	zone    string
	changes []Change
}

// call sends one AppendRecords or DeleteRecords with changes, all in zone.
// It returns how many leading changes the provider reports done when it
// fails (libdns providers return the records handled so far).
func (l *Libdns) call(ctx context.Context, op Op, zone string, changes []Change) (done int, err error) {
	recs := make([]libdns.Record, len(changes))
	owners := make([]string, 0, len(changes))
	for i, ch := range changes {
		recs[i] = libdnsRR(ch, zone)
		if !containsString(owners, ch.Owner) {
			owners = append(owners, ch.Owner)
		}
	}
	return l.callRecords(ctx, op, zone, owners, recs)
}

// callRecords sends one AppendRecords (op Add) or DeleteRecords with recs,
// all in zone, at owners (for the error).
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
