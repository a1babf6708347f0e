package propagate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/tlsa"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	addr1 = "127.0.0.1:53"
	addr2 = "127.0.0.2:53"
	addr3 = "[::1]:53"
)

// srv is a healthy server at addr with serial 5 serving recs with ttl.
func srv(addr string, ttl uint32, recs ...tlsa.Record) ServerState {
	return ServerState{Server: Server{Name: "ns.example.test.", Addr: addr}, Reachable: true, Serial: 5, Records: recs, TTL: ttl}
}

func obsOf(servers ...ServerState) *Observation {
	return &Observation{Zone: "example.test.", Owner: owner, Primary: addr1, PrimarySerial: 5, NegativeTTL: 60, Servers: servers}
}

func TestSeenUpdate(t *testing.T) {
	a, b := rec(t, hexA), rec(t, hexB)
	type sighting struct {
		rec  tlsa.Record
		addr string
		at   time.Time // zero: not seen
	}
	steps := []struct {
		name string
		obs  *Observation
		now  time.Time
		want []sighting
	}{
		{
			name: "first sightings",
			obs:  obsOf(srv(addr1, 300, a), srv(addr2, 300)),
			now:  t0,
			want: []sighting{{a, addr1, t0}, {a, addr2, time.Time{}}},
		},
		{
			name: "second server catches up, first keeps its time",
			obs:  obsOf(srv(addr1, 300, a, b), srv(addr2, 300, a)),
			now:  t0.Add(time.Minute),
			want: []sighting{{a, addr1, t0}, {a, addr2, t0.Add(time.Minute)}, {b, addr1, t0.Add(time.Minute)}, {b, addr2, time.Time{}}},
		},
		{
			name: "unreachable server keeps its sightings",
			obs:  obsOf(srv(addr1, 300, a, b), ServerState{Server: Server{Name: "ns2", Addr: addr2, Err: "timeout"}}),
			now:  t0.Add(2 * time.Minute),
			want: []sighting{{a, addr1, t0}, {a, addr2, t0.Add(time.Minute)}},
		},
		{
			name: "record disappears from one server: forgotten there",
			obs:  obsOf(srv(addr1, 300, b), srv(addr2, 300, a)),
			now:  t0.Add(3 * time.Minute),
			want: []sighting{{a, addr1, time.Time{}}, {a, addr2, t0.Add(time.Minute)}, {b, addr1, t0.Add(time.Minute)}},
		},
		{
			name: "record comes back: ages again",
			obs:  obsOf(srv(addr1, 300, a, b), srv(addr2, 300, a)),
			now:  t0.Add(4 * time.Minute),
			want: []sighting{{a, addr1, t0.Add(4 * time.Minute)}, {a, addr2, t0.Add(time.Minute)}},
		},
		{
			name: "server answering without authority is forgotten",
			obs:  obsOf(srv(addr1, 300, a, b), ServerState{Server: Server{Name: "ns2", Addr: addr2, Err: "REFUSED"}, Reachable: true}),
			now:  t0.Add(5 * time.Minute),
			want: []sighting{{a, addr1, t0.Add(4 * time.Minute)}, {a, addr2, time.Time{}}},
		},
		{
			name: "server dropped from the NS set is forgotten",
			obs:  obsOf(srv(addr3, 300, a)),
			now:  t0.Add(6 * time.Minute),
			want: []sighting{{a, addr1, time.Time{}}, {b, addr1, time.Time{}}, {a, addr3, t0.Add(6 * time.Minute)}},
		},
	}
	seen := &Seen{}
	for _, st := range steps {
		seen.Update(st.obs, st.now)
		for _, w := range st.want {
			got, ok := seen.FirstSeen(owner, w.rec, w.addr)
			if w.at.IsZero() && ok {
				t.Errorf("%s: %.12s at %s: got first seen %v, want not seen", st.name, w.rec, w.addr, got)
			}
			if !w.at.IsZero() && (!ok || !got.Equal(w.at)) {
				t.Errorf("%s: %.12s at %s: got first seen %v (%v), want %v", st.name, w.rec, w.addr, got, ok, w.at)
			}
		}
	}

	// Nothing served any more: the owner disappears from the state.
	seen.Update(obsOf(srv(addr3, 0)), t0.Add(time.Hour))
	if _, ok := seen.Owners[owner]; ok {
		t.Errorf("owner with no sightings left: got %v, want it removed", seen.Owners[owner])
	}
}

func TestSeenKeepsOtherOwnersAndJSON(t *testing.T) {
	a := rec(t, hexA)
	seen := &Seen{}
	o1 := obsOf(srv(addr1, 300, a))
	o2 := obsOf(srv(addr1, 300, a))
	o2.Owner = "_25._tcp.mx2.example.test."
	seen.Update(o1, t0)
	seen.Update(o2, t0.Add(time.Second))
	seen.Update(obsOf(srv(addr1, 300)), t0.Add(2*time.Second)) // o1's owner loses the record
	if _, ok := seen.FirstSeen(o2.Owner, a, addr1); !ok {
		t.Error("sighting at another owner was forgotten")
	}
	b, err := json.Marshal(seen)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"owners":{"_25._tcp.mx2.example.test.":{"3 1 1 ` + hexA + `":{"127.0.0.1:53":"2026-03-01T12:00:01Z"}}},` +
		`"ttls":{"_25._tcp.mail.example.test.":{"300":"2026-03-01T12:00:00Z"},"_25._tcp.mx2.example.test.":{"300":"2026-03-01T12:00:01Z"}}}`
	if string(b) != want {
		t.Errorf("JSON: got %s, want %s", b, want)
	}
	var back Seen
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, seen) {
		t.Errorf("round trip: got %+v, want %+v", back, seen)
	}
}

func TestAge(t *testing.T) {
	a := rec(t, hexA)
	lagging := srv(addr2, 300, a)
	lagging.Serial, lagging.Lagging = 4, true
	type sighting struct {
		addr string
		at   time.Time
	}
	for _, tc := range []struct {
		name       string
		obs        *Observation
		configured uint32
		seen       []sighting
		now        time.Time
		aged       bool
		agedAt     time.Time // zero: unknown
		ttl        uint32
		blocking   []string
	}{
		{
			name:   "last first-seen plus two TTLs, one second early",
			obs:    obsOf(srv(addr1, 300, a), srv(addr2, 300, a)),
			seen:   []sighting{{addr1, t0}, {addr2, t0.Add(10 * time.Second)}},
			now:    t0.Add(10*time.Second + 599*time.Second),
			agedAt: t0.Add(610 * time.Second), ttl: 300,
		},
		{
			name:   "exactly at AgedAt",
			obs:    obsOf(srv(addr1, 300, a), srv(addr2, 300, a)),
			seen:   []sighting{{addr1, t0}, {addr2, t0.Add(10 * time.Second)}},
			now:    t0.Add(610 * time.Second),
			aged:   true,
			agedAt: t0.Add(610 * time.Second), ttl: 300,
		},
		{
			name:       "configured TTL larger than served",
			obs:        obsOf(srv(addr1, 300, a), srv(addr2, 300, a)),
			configured: 3600,
			seen:       []sighting{{addr1, t0}, {addr2, t0}},
			now:        t0.Add(time.Hour),
			agedAt:     t0.Add(2 * time.Hour), ttl: 3600,
		},
		{
			name:       "served TTL larger than configured",
			obs:        obsOf(srv(addr1, 300, a), srv(addr2, 900, a)),
			configured: 60,
			seen:       []sighting{{addr1, t0}, {addr2, t0}},
			now:        t0.Add(time.Hour),
			aged:       true,
			agedAt:     t0.Add(30 * time.Minute), ttl: 900,
		},
		{
			name:   "negative TTL larger than the RRset TTL",
			obs:    func() *Observation { o := obsOf(srv(addr1, 30, a)); o.NegativeTTL = 900; return o }(),
			seen:   []sighting{{addr1, t0}},
			now:    t0.Add(29 * time.Minute),
			agedAt: t0.Add(30 * time.Minute), ttl: 900,
		},
		{
			name:   "no sighting recorded yet: counts from now",
			obs:    obsOf(srv(addr1, 300, a)),
			now:    t0,
			agedAt: t0.Add(10 * time.Minute), ttl: 300,
		},
		{
			name:   "sighting in the future: counts from now",
			obs:    obsOf(srv(addr1, 300, a)),
			seen:   []sighting{{addr1, t0.Add(time.Hour)}},
			now:    t0,
			agedAt: t0.Add(10 * time.Minute), ttl: 300,
		},
		{
			name:     "one server does not serve it",
			obs:      obsOf(srv(addr1, 300, a), srv(addr2, 0)),
			seen:     []sighting{{addr1, t0}},
			now:      t0.Add(24 * time.Hour),
			ttl:      300,
			blocking: []string{"ns.example.test. (127.0.0.2:53): does not serve it (serial 5)"},
		},
		{
			name:     "lagging server blocks even though it serves it",
			obs:      obsOf(srv(addr1, 300, a), lagging),
			seen:     []sighting{{addr1, t0}, {addr2, t0}},
			now:      t0.Add(24 * time.Hour),
			ttl:      300,
			blocking: []string{"ns.example.test. (127.0.0.2:53): lagging: serial 4, primary 127.0.0.1:53 has 5"},
		},
		{
			name:     "unreachable server",
			obs:      obsOf(srv(addr1, 300, a), ServerState{Server: Server{Name: "ns2.example.test.", Addr: addr2, Err: "i/o timeout"}}),
			seen:     []sighting{{addr1, t0}, {addr2, t0}},
			now:      t0.Add(24 * time.Hour),
			ttl:      300,
			blocking: []string{"ns2.example.test. (127.0.0.2:53): unreachable: i/o timeout"},
		},
		{
			name:     "no servers",
			obs:      obsOf(),
			now:      t0,
			ttl:      60,
			blocking: []string{"no authoritative servers found"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.ConfiguredTTL = tc.configured
			seen := &Seen{Owners: map[string]map[string]map[string]time.Time{owner: {recordKey(a): {}}}}
			for _, s := range tc.seen {
				seen.Owners[owner][recordKey(a)][s.addr] = s.at
			}
			got := Age(tc.obs, seen, a, tc.now)
			if got.Aged != tc.aged || !got.AgedAt.Equal(tc.agedAt) || got.TTL != tc.ttl || !slices.Equal(got.Blocking, tc.blocking) {
				t.Errorf("got aged=%v at %v ttl=%d blocking=%q\nwant aged=%v at %v ttl=%d blocking=%q",
					got.Aged, got.AgedAt, got.TTL, got.Blocking, tc.aged, tc.agedAt, tc.ttl, tc.blocking)
			}
			if got.Owner != owner || got.Record != "3 1 1 "+hexA {
				t.Errorf("owner, record: got %q %q", got.Owner, got.Record)
			}
		})
	}
}

func TestAgeSet(t *testing.T) {
	a, b, c := rec(t, hexA), rec(t, hexB), rec(t, hexC)
	obs := obsOf(srv(addr1, 300, a, b, c), srv(addr2, 300, a, b, c))
	seen := &Seen{}
	seen.Update(obs, t0)
	seen.Update(obsOf(srv(addr1, 300, a, b), srv(addr2, 300, a, b)), t0) // c goes away
	seen.Update(obs, t0.Add(time.Minute))                                // and returns a minute later
	obs1 := obsOf(srv(addr1, 300, a), srv(addr2, 300, a, b, c))

	for _, tc := range []struct {
		name   string
		obs    *Observation
		recs   []tlsa.Record
		now    time.Time
		aged   bool
		agedAt time.Time
	}{
		{"all aged", obs, []tlsa.Record{a, b}, t0.Add(10 * time.Minute), true, t0.Add(10 * time.Minute)},
		{"latest record decides", obs, []tlsa.Record{a, c}, t0.Add(10 * time.Minute), false, t0.Add(11 * time.Minute)},
		{"latest record aged too", obs, []tlsa.Record{a, c}, t0.Add(11 * time.Minute), true, t0.Add(11 * time.Minute)},
		{"one record blocked", obs1, []tlsa.Record{a, b}, t0.Add(time.Hour), false, time.Time{}},
		{"empty set", obs, nil, t0.Add(time.Hour), false, time.Time{}},
	} {
		got := AgeSet(tc.obs, seen, tc.recs, tc.now)
		if got.Aged != tc.aged || !got.AgedAt.Equal(tc.agedAt) || len(got.Records) != len(tc.recs) {
			t.Errorf("%s: got aged=%v at %v (%d statuses), want aged=%v at %v (%d)", tc.name, got.Aged, got.AgedAt, len(got.Records), tc.aged, tc.agedAt, len(tc.recs))
		}
	}
}

func TestStatusString(t *testing.T) {
	for _, tc := range []struct {
		st   Status
		want string
	}{
		{Status{Owner: owner, Record: "3 1 1 " + hexA, Aged: true, AgedAt: t0}, "3 1 1 0b9fa5a5… at " + owner + ": aged since 2026-03-01T12:00:00Z"},
		{Status{Owner: owner, Record: "3 1 1 " + hexA, AgedAt: t0}, "3 1 1 0b9fa5a5… at " + owner + ": aged at 2026-03-01T12:00:00Z"},
		{Status{Owner: owner, Record: "3 1 1 " + hexA, Blocking: []string{"x: lagging", "y: unreachable"}}, "3 1 1 0b9fa5a5… at " + owner + ": not aged: x: lagging; y: unreachable"},
	} {
		if got := tc.st.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// The wait is measured from the moment the last server was first seen
// serving the record, and lasts two TTLs (RFC 7671 §8.1).
func ExampleAge() {
	rec := tlsa.Record{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 32)}
	rec.Data[0] = 1
	serving := func(addr string) ServerState {
		return ServerState{Server: Server{Name: "ns.example.com.", Addr: addr}, Reachable: true, Serial: 7,
			Records: []tlsa.Record{rec}, TTL: 300}
	}
	obs := &Observation{Owner: "_25._tcp.mail.example.com.", PrimarySerial: 7, NegativeTTL: 60,
		Servers: []ServerState{serving("192.0.2.1:53")}}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

	var seen Seen
	seen.Update(obs, t0) // the primary serves it; the secondary does not yet
	obs.Servers = append(obs.Servers, serving("192.0.2.2:53"))
	seen.Update(obs, t0.Add(30*time.Second)) // now both do

	fmt.Println(Age(obs, &seen, rec, t0.Add(5*time.Minute)))
	fmt.Println(Age(obs, &seen, rec, t0.Add(11*time.Minute)))
	// Output:
	// 3 1 1 01000000… at _25._tcp.mail.example.com.: aged at 2026-01-01T10:10:30Z
	// 3 1 1 01000000… at _25._tcp.mail.example.com.: aged since 2026-01-01T10:10:30Z
}

// TestAgeUsesLargestCachedTTL: a record added at TTL 300 to an RRset served
// at TTL 3600 lowers the RRset's TTL (BIND), but resolvers keep the old
// RRset for up to an hour: ageing waits 2 x 3600 s, not 2 x 300 s. Raised
// TTLs and TTLs seen long ago are covered too.
func TestAgeUsesLargestCachedTTL(t *testing.T) {
	a, b := rec(t, hexA), rec(t, hexB)
	for _, tc := range []struct {
		name     string
		before   uint32        // TTL of the RRset served before the change (0: none)
		beforeAt time.Duration // when it was last seen, relative to t0
		after    uint32        // TTL served once b is added
		wantTTL  uint32
	}{
		{"lowered", 3600, 0, 300, 3600},
		{"raised", 300, 0, 3600, 3600},
		{"same", 300, 0, 300, 300},
		{"no RRset before", 0, 0, 300, 300},
		{"large TTL expired long before the change", 3600, -2 * time.Hour, 300, 300},
		{"large TTL still cacheable at the change", 3600, -30 * time.Minute, 300, 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := &Seen{}
			if tc.before > 0 {
				seen.Update(obsOf(srv(addr1, tc.before, a), srv(addr2, tc.before, a)), t0.Add(tc.beforeAt))
			}
			after := obsOf(srv(addr1, tc.after, a, b), srv(addr2, tc.after, a, b))
			after.ConfiguredTTL = tc.after
			seen.Update(after, t0.Add(time.Second))
			st := Age(after, seen, b, t0.Add(time.Second))
			if st.TTL != tc.wantTTL {
				t.Errorf("TTL = %d, want %d", st.TTL, tc.wantTTL)
			}
			if want := t0.Add(time.Second + 2*time.Duration(tc.wantTTL)*time.Second); !st.AgedAt.Equal(want) {
				t.Errorf("AgedAt = %s, want %s", st.AgedAt, want)
			}
		})
	}
}
