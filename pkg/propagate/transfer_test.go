package propagate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// copyOf is a ZoneCopy for fault injection: it tells the owners in tells
// (with one record each) and nothing else, under the given SOA.
type copyOf struct {
	soa   *dns.SOA
	tells map[string]tlsa.Record
}

func (c copyOf) SOA() *dns.SOA { return c.soa }

func (c copyOf) TLSA(owner string) ([]tlsa.Record, uint32, bool) {
	r, ok := c.tells[canonical(owner)]
	if !ok {
		return nil, 0, false
	}
	return []tlsa.Record{r}, 900, true
}

// TestObserveFromTransfer: ObserveOwners takes an owner's RRset from the
// server's zone copy only where the copy tells and its SOA is exactly the
// server's unsigned one; the other owners, and every owner when the SOA
// differs or the transfer fails, are asked directly; below TransferMin no
// transfer is tried. The copy says hexB where the servers serve hexA, so
// each owner shows where its answer came from.
func TestObserveFromTransfer(t *testing.T) {
	tl := " 600 IN TLSA 3 1 1 " + hexA
	owners := []string{"_25._tcp.a.example.test.", "_25._tcp.b.example.test.", "_25._tcp.c.example.test."}
	var recs []string
	for _, o := range owners {
		recs = append(recs, o+tl)
	}
	p := newFake(t, twoNS(7, recs...)...)
	s := newFake(t, twoNS(7, recs...)...)
	port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
	soaOf := func(serial uint32) *dns.SOA {
		rr, err := dns.NewRR(zone(serial)[0])
		if err != nil {
			t.Fatal(err)
		}
		return rr.(*dns.SOA)
	}
	tells := map[string]tlsa.Record{owners[0]: rec(t, hexB), owners[1]: rec(t, hexB)}
	for _, tc := range []struct {
		name     string
		min      int
		copy     ZoneCopy
		err      error
		fromCopy []bool // per owner, at the secondary
		calls    int32
		debug    string
	}{
		{"copy used", 2, copyOf{soaOf(7), tells}, nil, []bool{true, true, false}, 2, "owners read from the zone transfer"},
		{"another SOA", 2, copyOf{soaOf(8), tells}, nil, []bool{false, false, false}, 2, "not what unsigned queries see"},
		{"transfer refused", 2, nil, errors.New("the server answered REFUSED"), []bool{false, false, false}, 2, "REFUSED"},
		{"too few owners", 4, copyOf{soaOf(7), tells}, nil, []bool{false, false, false}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			var (
				dmu   sync.Mutex
				debug strings.Builder
			)
			c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second, TransferMin: tc.min,
				Transfer: func(ctx context.Context, server, zone string, n int) (ZoneCopy, error) {
					calls.Add(1)
					if zone != "example.test." || n != len(owners) {
						t.Errorf("Transfer(%s, %s, %d): want zone example.test. and %d owners", server, zone, n, len(owners))
					}
					return tc.copy, tc.err
				},
				Debug: func(msg string, args ...any) {
					dmu.Lock()
					defer dmu.Unlock()
					debug.WriteString(msg + " " + fmt.Sprint(args...) + "\n")
				},
			}
			obs, err := c.ObserveOwners(t.Context(), "example.test.", owners)
			if err != nil {
				t.Fatal(err)
			}
			if got := calls.Load(); got != tc.calls {
				t.Errorf("Transfer called %d times, want %d (once per server)", got, tc.calls)
			}
			for i, o := range obs {
				for _, a := range []string{addr("127.0.0.1", port), addr("127.0.0.2", port)} {
					st := state(t, o, a)
					fromCopy := st.Serves(rec(t, hexB))
					if fromCopy != tc.fromCopy[i] || (!fromCopy && !st.Serves(rec(t, hexA))) || !st.OK() || st.Serial != 7 {
						t.Errorf("%s at %s: %+v; want the copy's answer: %t", owners[i], a, st, tc.fromCopy[i])
					}
				}
			}
			if !strings.Contains(debug.String(), tc.debug) {
				t.Errorf("debug lines %q, want one saying %q", debug.String(), tc.debug)
			}
		})
	}
}

// TestObserveTransferDuringChange: the secondary's zone changes while its
// transfer runs (serial 7 when its SOA is asked, 8 in the copy, as a
// secondary applying an IXFR would): the SOA is asked again after the
// transfer, is now the copy's, and the copy is used; a copy whose SOA the
// server still does not serve afterwards is not.
func TestObserveTransferDuringChange(t *testing.T) {
	tl := " 600 IN TLSA 3 1 1 " + hexA
	owners := []string{"_25._tcp.a.example.test.", "_25._tcp.b.example.test.", "_25._tcp.c.example.test."}
	var recs []string
	for _, o := range owners {
		recs = append(recs, o+tl)
	}
	soa8, err := dns.NewRR(zone(8)[0])
	if err != nil {
		t.Fatal(err)
	}
	tells := map[string]tlsa.Record{owners[0]: rec(t, hexB), owners[1]: rec(t, hexB), owners[2]: rec(t, hexB)}
	for _, change := range []bool{true, false} {
		t.Run(fmt.Sprintf("zone changed %t", change), func(t *testing.T) {
			p := newFake(t, twoNS(7, recs...)...)
			s := newFake(t, twoNS(7, recs...)...)
			port := serve(t, map[string]dns.Handler{"127.0.0.1": p, "127.0.0.2": s})
			var (
				dmu   sync.Mutex
				debug strings.Builder
			)
			c := &Checker{Primary: addr("127.0.0.1", port), Port: port, Timeout: time.Second, TransferMin: 2,
				Transfer: func(ctx context.Context, server, zone string, n int) (ZoneCopy, error) {
					if server != addr("127.0.0.2", port) {
						return nil, errors.New("the server answered REFUSED")
					}
					// The SOA query sent beside the transfer is answered
					// (serial 7) well before this.
					time.Sleep(100 * time.Millisecond)
					if change {
						s.set(t, twoNS(8, recs...)...)
					}
					return copyOf{soa8.(*dns.SOA), tells}, nil
				},
				Debug: func(msg string, args ...any) {
					dmu.Lock()
					defer dmu.Unlock()
					debug.WriteString(msg + " " + fmt.Sprint(args...) + "\n")
				},
			}
			obs, err := c.ObserveOwners(t.Context(), "example.test.", owners)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range obs {
				st := state(t, o, addr("127.0.0.2", port))
				if fromCopy := st.Serves(rec(t, hexB)); fromCopy != change || !st.OK() {
					t.Errorf("%s at the secondary: %+v; want the copy's answer: %t", owners[i], st, change)
				}
			}
			want := "owners read from the zone transfer"
			if !change {
				want = "not what unsigned queries see"
			}
			if !strings.Contains(debug.String(), want) {
				t.Errorf("debug lines %q, want one saying %q", debug.String(), want)
			}
		})
	}
}
