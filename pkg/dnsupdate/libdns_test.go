package dnsupdate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/libdns/libdns"
)

// memDNS is a provider and its authoritative view in memory, for fault
// injection into the adapter (the real providers are tested against their
// API fakes in pkg/libdnsprov and against BIND in cmd/internal/cliapp).
type memDNS struct {
	mu    sync.Mutex
	zones []string
	rrs   map[string][]RR // owner → served
	calls []string        // "append example.com. _25._tcp.mail 3 1 1 …"
	fail  func(op, zone string) error
	block bool
	panic bool
}

func (m *memDNS) FindZone(_ context.Context, owner string) (string, error) {
	for _, z := range m.zones {
		if strings.HasSuffix(owner, "."+z) || owner == z {
			return z, nil
		}
	}
	return "", fmt.Errorf("no zone for %s: %w", owner, ErrNotAuth)
}

func (m *memDNS) Records(_ context.Context, owner string) ([]RR, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]RR(nil), m.rrs[owner]...), nil
}

func (m *memDNS) do(ctx context.Context, op, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	if m.panic {
		panic("boom")
	}
	if m.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var done []libdns.Record
	for _, r := range recs {
		rr := r.RR()
		m.mu.Lock()
		m.calls = append(m.calls, fmt.Sprintf("%s %s %s %s %d", op, zone, rr.Name, rr.Data, int(rr.TTL.Seconds())))
		m.mu.Unlock()
		if m.fail != nil {
			if err := m.fail(op, zone); err != nil {
				return done, err
			}
		}
		done = append(done, r)
	}
	return done, nil
}

func (m *memDNS) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return m.do(ctx, "append", zone, recs)
}

func (m *memDNS) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return m.do(ctx, "delete", zone, recs)
}

func ldRec(b byte) tlsa.Record {
	return tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: bytes.Repeat([]byte{b}, 32)}
}

func ldAdd(o string, r tlsa.Record) Change {
	return Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: r}}
}
func ldRemove(o string, r tlsa.Record) Change { return Change{Op: Remove, RR: RR{Owner: o, Record: r}} }

func newMem() (*memDNS, *Libdns) {
	m := &memDNS{zones: []string{"example.com.", "example.org."}, rrs: map[string][]RR{}}
	return m, &Libdns{Name: "mem", Provider: m, Reader: m, Timeout: time.Second}
}

// Opaque TLSA, names relative to the zone ("@" at the apex), lower-case
// hex; adds of every zone before any remove; served adds and gone removes
// skipped; Keep ignored.
func TestLibdnsApplyOrderAndForm(t *testing.T) {
	m, l := newMem()
	old := ldRec(0x01)
	m.rrs["_25._tcp.mail.example.com."] = []RR{{Owner: "_25._tcp.mail.example.com.", TTL: 300, Record: old}}
	m.rrs["_25._tcp.mail.example.org."] = []RR{{Owner: "_25._tcp.mail.example.org.", TTL: 300, Record: ldRec(0x09)}}
	err := l.Apply(t.Context(), []Change{
		ldRemove("_25._tcp.mail.example.com.", old),
		ldAdd("_25._tcp.mail.example.com.", ldRec(0xAB)),
		{Op: Keep, RR: RR{Owner: "_25._tcp.mail.example.com.", Record: ldRec(0x02)}},
		ldAdd("example.org.", ldRec(0xCD)),
		ldAdd("_25._tcp.mail.example.org.", ldRec(0x09)),    // served: skipped
		ldRemove("_25._tcp.mail.example.org.", ldRec(0x0A)), // gone: skipped
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"append example.com. _25._tcp.mail 3 1 1 " + strings.Repeat("ab", 32) + " 300",
		"append example.org. @ 3 1 1 " + strings.Repeat("cd", 32) + " 300",
		"delete example.com. _25._tcp.mail 3 1 1 " + strings.Repeat("01", 32) + " 0",
	}
	if strings.Join(m.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(m.calls, "\n"), strings.Join(want, "\n"))
	}
	m.calls = nil
	if err := l.Apply(t.Context(), []Change{{Op: Keep, RR: RR{Owner: "x.example.com.", Record: old}}}); err != nil || len(m.calls) != 0 {
		t.Errorf("Keep only: %v, calls %v; want nothing sent", err, m.calls)
	}
}

// A failure in the middle of a batch: the records the provider reports
// done count as applied, the rest of the batch failed, later batches pending.
func TestLibdnsPartialBatch(t *testing.T) {
	m, l := newMem()
	n := 0
	m.fail = func(op, zone string) error {
		n++
		if n == 2 {
			return errors.New("Too Many Requests (429)")
		}
		return nil
	}
	a, b, c := ldRec(1), ldRec(2), ldRec(3)
	o := "_25._tcp.mail.example.com."
	m.rrs[o] = []RR{{Owner: o, Record: c}}
	err := l.Apply(t.Context(), []Change{ldAdd(o, a), ldAdd(o, b), ldRemove(o, c)})
	var ae *LibdnsApplyError
	if !errors.As(err, &ae) || len(ae.Applied) != 1 || !ae.Applied[0].Record.Equal(a) || len(ae.Failed) != 1 || !ae.Failed[0].Record.Equal(b) || len(ae.Pending) != 1 {
		t.Fatalf("got %v", err)
	}
	if !errors.Is(err, ErrProviderUnavailable) {
		t.Errorf("got %v, want unavailable", err)
	}
	var le *LibdnsError
	if !errors.As(err, &le) || le.Status != 429 || le.Hint() == "" {
		t.Errorf("got %#v, want status 429 with a hint", le)
	}
}

func TestLibdnsFaults(t *testing.T) {
	o := "_25._tcp.mail.example.com."
	t.Run("panic", func(t *testing.T) {
		m, l := newMem()
		m.panic = true
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderUnavailable) || !strings.Contains(err.Error(), "panicked: boom") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		m, l := newMem()
		m.block = true
		l.Timeout = 100 * time.Millisecond
		start := time.Now()
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderUnavailable) || !strings.Contains(err.Error(), "200ms") {
			t.Fatalf("got %v, want unavailable naming the 200ms budget", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %s", d)
		}
	})
	t.Run("caller cancelled", func(t *testing.T) {
		m, l := newMem()
		m.block = true
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		err := l.Apply(ctx, []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("secret redacted", func(t *testing.T) {
		const secret = "tok-SECRET-abcdef=="
		m, l := newMem()
		l.Secrets = []string{secret}
		m.fail = func(string, string) error {
			return errors.New("unexpected status code 401: token tok-SECRET-abcdef== and tok-SECRET-abcdef refused")
		}
		err := l.Apply(t.Context(), []Change{ldAdd(o, ldRec(1))})
		if !errors.Is(err, ErrProviderAuth) || strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("got %v, want auth without the secret", err)
		}
	})
	t.Run("no data", func(t *testing.T) {
		_, l := newMem()
		err := l.Apply(t.Context(), []Change{{Op: Add, RR: RR{Owner: o}}})
		if !errors.Is(err, ErrProviderRequest) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("reader error before any call", func(t *testing.T) {
		m, l := newMem()
		err := l.Apply(t.Context(), []Change{ldAdd("_25._tcp.mail.example.net.", ldRec(1))})
		if !errors.Is(err, ErrNotAuth) || len(m.calls) != 0 {
			t.Fatalf("got %v, calls %v", err, m.calls)
		}
	})
}

func TestLibdnsStringHidesProvider(t *testing.T) {
	type secretProvider struct {
		memDNS
		Token string
	}
	l := &Libdns{Name: "x", Provider: &secretProvider{Token: "tok-SECRET"}}
	for _, s := range []string{fmt.Sprint(l), fmt.Sprintf("%+v", l), fmt.Sprintf("%#v", l), l.String()} {
		if strings.Contains(s, "SECRET") || s != `libdns{name="x"}` {
			t.Errorf("got %q", s)
		}
	}
}

// L3: libdns v1.1.1 has no TLSA type; RR.Parse returns a TLSA RR as the
// opaque RR itself. If a later libdns parses TLSA, revisit libdnsRR.
func TestLibdnsTLSAIsOpaque(t *testing.T) {
	rr := libdnsRR(ldAdd("_25._tcp.mail.example.com.", ldRec(0xAB)), "example.com.")
	want := libdns.RR{Name: "_25._tcp.mail", Type: "TLSA", TTL: 300 * time.Second, Data: "3 1 1 " + strings.Repeat("ab", 32)}
	if rr != want {
		t.Fatalf("got %+v, want %+v", rr, want)
	}
	got, err := rr.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(libdns.RR); !ok {
		t.Fatalf("libdns parses TLSA into %T now: revisit decision L3", got)
	}
}
