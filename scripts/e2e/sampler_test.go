package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/postfix"
)

// handshake does one STARTTLS handshake with a 10 s bound.
func handshake(t *testing.T, addr string) ([]*x509.Certificate, tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return postfix.Handshake(ctx, addr, host)
}

// sampler checks DESIGN §3's invariant from the outside while a rotation
// runs: every ~300 ms it does a STARTTLS handshake and checks that the
// presented leaf matches a record served by BOTH name servers.
//
// A handshake and two DNS queries cannot happen at one instant, so each
// server's RRset is read just before and just after the handshake and the
// leaf's record must be in one of the two answers of every server: a record
// that appeared or vanished during the handshake is given the benefit of
// the doubt, a record a server served neither before nor after is a
// violation. A failed handshake is a violation too: Postfix must keep
// offering STARTTLS with a chain while it reloads.
type sampler struct {
	w      *world
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	samples    int
	keys       map[string]int // leaf SPKI -> samples presenting it
	violations []string
}

func (w *world) startSampler() *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sampler{w: w, cancel: cancel, done: make(chan struct{}), keys: map[string]int{}}
	go s.run(ctx)
	return s
}

func (s *sampler) run(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) sample(ctx context.Context) {
	servers := s.w.servers()
	read := func() (map[string][]string, error) {
		m := map[string][]string{}
		for _, srv := range servers {
			recs, err := tlsaAt(ctx, srv, s.w.owner())
			if err != nil {
				return nil, err
			}
			m[srv] = present(recs)
		}
		return m, nil
	}
	before, err := read()
	if err != nil {
		s.note(ctx, "DNS before the handshake: %v", err)
		return
	}
	leaf, err := servedAt(ctx, s.w.pf.Addr)
	if err != nil {
		s.note(ctx, "handshake: %v", err)
		return
	}
	after, err := read()
	if err != nil {
		s.note(ctx, "DNS after the handshake: %v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples++
	s.keys[leaf.SPKI]++
	for _, srv := range servers {
		if !slices.Contains(before[srv], leaf.Record.String()) && !slices.Contains(after[srv], leaf.Record.String()) {
			s.violations = append(s.violations, fmt.Sprintf("%s: Postfix presented key %s but %s served %q before and %q after",
				clock(time.Now()), short(leaf.SPKI), srv, before[srv], after[srv]))
		}
	}
}

// note records a failed sample unless the sampler is being stopped.
func (s *sampler) note(ctx context.Context, format string, args ...any) {
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, clock(time.Now())+": "+fmt.Sprintf(format, args...))
}

// finish stops the sampler and fails t on any violation, or when the
// samples did not see Postfix present the old key and then the new one.
func (s *sampler) finish(t *testing.T, old, fresh cert) (samples int) {
	t.Helper()
	// Keep sampling the new state for a few rounds.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		s.mu.Lock()
		n := s.keys[fresh.SPKI]
		s.mu.Unlock()
		if n >= 3 {
			break
		}
	}
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("invariant sampler: %d samples, old key %s in %d, new key %s in %d", s.samples,
		short(old.SPKI), s.keys[old.SPKI], short(fresh.SPKI), s.keys[fresh.SPKI])
	if len(s.violations) > 0 {
		t.Errorf("invariant violated in %d of %d samples:\n%s", len(s.violations), s.samples, strings.Join(s.violations, "\n"))
	}
	if s.keys[old.SPKI] == 0 || s.keys[fresh.SPKI] == 0 {
		t.Errorf("invariant sampler saw keys %v; want both the old %s and the new %s", s.keys, short(old.SPKI), short(fresh.SPKI))
	}
	return s.samples
}
