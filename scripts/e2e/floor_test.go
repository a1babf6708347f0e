package e2e

// Issue 15: a switch at the physical floor. The hooks watch both servers
// after publishing, then schedule the completing run (an at(1) job here:
// the lab has no systemd) at safe_at; the test itself never ticks. An
// independent poller of both authoritative servers measures the floor:
// the last server's first serving of the new record + 2 × the largest TTL
// a cache may hold for the owner.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// floorPoller asks every server for the owner's TLSA RRset every
// pollInterval and keeps, per record, when each server first served it,
// and the largest TTL any server answered with.
type floorPoller struct {
	servers []string
	owner   string
	cancel  context.CancelFunc
	done    chan struct{}

	mu     sync.Mutex
	first  map[string]map[string]time.Time // record → server → first served
	maxTTL uint32
}

// pollInterval is the poller's resolution: its floor is late by at most
// this plus one query.
const pollInterval = 50 * time.Millisecond

func startFloorPoller(servers []string, owner string) *floorPoller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &floorPoller{servers: servers, owner: owner, cancel: cancel, done: make(chan struct{}), first: map[string]map[string]time.Time{}}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			for _, s := range servers {
				recs, ttl, err := tlsaTTLAt(ctx, s, owner)
				now := time.Now()
				if err != nil {
					continue
				}
				p.mu.Lock()
				p.maxTTL = max(p.maxTTL, ttl)
				for _, r := range recs {
					k := r.String()
					if p.first[k] == nil {
						p.first[k] = map[string]time.Time{}
					}
					if _, ok := p.first[k][s]; !ok {
						p.first[k][s] = now
					}
				}
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(pollInterval):
			}
		}
	}()
	return p
}

func (p *floorPoller) stop() { p.cancel(); <-p.done }

// floor returns the physical floor of a switch onto rec: when the last
// server first served it + 2 × the largest TTL seen, and whether every
// server served it.
func (p *floorPoller) floor(rec tlsa.Record) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, s := range p.servers {
		at, ok := p.first[rec.String()][s]
		if !ok {
			return time.Time{}, false
		}
		last = later(last, at)
	}
	return last.Add(2 * time.Duration(p.maxTTL) * time.Second), true
}

// tlsaTTLAt is tlsaAt with the RRset's TTL.
func tlsaTTLAt(ctx context.Context, server, owner string) ([]tlsa.Record, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(owner, dns.TypeTLSA)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, 0, err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return nil, 0, fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	var out []tlsa.Record
	var ttl uint32
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			rec, err := tlsa.Parse(fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Certificate))
			if err != nil {
				return nil, 0, err
			}
			out = append(out, rec)
			ttl = max(ttl, t.Hdr.Ttl)
		}
	}
	return out, ttl, nil
}

// switchWatch starts a handshake with Postfix every 100 ms from its start
// and records when one first presented a key other than old, and which.
// Each handshake runs on its own (at most 16 at once): one that reaches an
// smtpd of the generation before a reload can stall about 1 s (Postfix's
// attr_clnt retry to the tlsmgr the reload replaced, see
// postfix.ReloadSettle) and would otherwise delay the watch's sighting of
// the switch by that second.
type switchWatch struct {
	mu     sync.Mutex
	at     time.Time
	digest string
	cancel context.CancelFunc
	done   chan struct{}
}

func startSwitchWatch(ctx context.Context, addr, old string) *switchWatch {
	ctx, cancel := context.WithCancel(ctx)
	sw := &switchWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sw.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		inflight := make(chan struct{}, 16)
		for ctx.Err() == nil {
			if at, _ := sw.first(); !at.IsZero() {
				return
			}
			select {
			case inflight <- struct{}{}:
				wg.Go(func() {
					defer func() { <-inflight }()
					if c, err := servedAt(ctx, addr); err == nil && c.Digest != old {
						now := time.Now()
						sw.mu.Lock()
						if sw.at.IsZero() || now.Before(sw.at) {
							sw.at, sw.digest = now, c.Digest
						}
						sw.mu.Unlock()
					}
				})
			default:
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return sw
}

// first returns when Postfix first presented another key than the old
// one, and that key's SPKI digest; "" while it still presents the old.
func (sw *switchWatch) first() (time.Time, string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.at, sw.digest
}

func (sw *switchWatch) stop() { sw.cancel(); <-sw.done }

// floorResult is one measured switch.
type floorResult struct {
	start, floor, switched time.Time
	safeAt                 time.Time // what danehook computed (zero when not known)
}

// ratio is the switch latency over the floor, both from the renewal's start.
func (r floorResult) ratio() float64 {
	return float64(r.switched.Sub(r.start)) / float64(r.floor.Sub(r.start))
}

// TestSwitchAtFloor: with [schedule] via = "at", a new-key renewal is
// switched by the scheduled run alone, never before the floor the
// independent poller measured, with the judge sampling throughout.
func TestSwitchAtFloor(t *testing.T) {
	t.Parallel()
	testenv.Atd(t)
	w := newWorld(t, clients[0])
	w.scheduleVia = "at"
	w.writeConfig(w.bind.KeyFile)
	w.run(t, []step{
		{"first-issuance", (*world).firstIssuance, ""},
		{"new-key-at-floor", func(w *world) {
			r := w.switchAtFloor()
			w.t.Logf("switch at the floor (%s, TTL %d s): latency %v, floor %v, ratio %.3f",
				w.c.Name, w.bind.TTL, r.switched.Sub(r.start).Round(time.Millisecond), r.floor.Sub(r.start).Round(time.Millisecond), r.ratio())
		}, ""},
		{"rotation-commit-at-floor", func(w *world) {
			r := w.rotationAtFloor()
			w.t.Logf("rotation commit at the floor (%s, TTL %d s): latency %v, floor %v, ratio %.3f",
				w.c.Name, w.bind.TTL, r.switched.Sub(r.start).Round(time.Millisecond), r.floor.Sub(r.start).Round(time.Millisecond), r.ratio())
		}, ""},
	})
}

// switchAtFloor renews with a new key and waits, without ticking, until
// Postfix presents it and both servers no longer serve the previous key's
// record; it fails when the switch came before the floor, no run was
// scheduled, or the record stayed.
func (w *world) switchAtFloor() floorResult {
	t := w.t
	old := w.served()
	p := startFloorPoller(w.servers(), w.owner())
	defer p.stop()
	sw := startSwitchWatch(t.Context(), w.pf.Addr, old.Digest)
	defer sw.stop()
	time.Sleep(2 * pollInterval) // the old RRset's TTL is seen first
	start := time.Now()
	w.client(w.renewArgs(true)...)
	fresh := w.current()
	if fresh.Digest == old.Digest {
		t.Fatalf("new-key renewal kept key %s", short(old.Digest))
	}
	st := w.lineageState()
	var safeAt time.Time
	switch {
	case st.Pending != nil:
		if st.Scheduled == nil || st.Scheduled.Via != "at" || st.Scheduled.ID == "" {
			t.Fatalf("no at job scheduled for the pending switch: scheduled %+v, error %q", st.Scheduled, st.ScheduleErr)
		}
		safeAt = st.Pending.SafeAt
		w.say("   %s renewed with a new key; the hooks scheduled at job %s for %s: %s", w.c.Name, st.Scheduled.ID, clock(st.Scheduled.At), st.Scheduled.Command)
	default:
		// Nothing pending: either the hooks switched (only allowed once
		// the floor passed, checked below) or the at job they scheduled
		// for safe_at ran before the client exited (TTL 2 s puts safe_at
		// a few seconds after the hook's watch; a loaded machine can take
		// longer to end the client). Both leave Postfix on fresh.
		if _, digest := sw.first(); digest != fresh.Digest {
			t.Fatalf("right after the renewal nothing is pending and Postfix does not serve the new key %s: %+v", short(fresh.Digest), st)
		}
		log, _ := os.ReadFile(w.state + "/scheduled-tick.log")
		w.say("   %s renewed with a new key; Postfix already serves it (scheduled-tick.log: %d bytes)", w.c.Name, len(log))
	}
	// Wait for what Postfix presents; the test never ticks.
	deadline := time.Now().Add(time.Duration(2*w.bind.TTL)*time.Second + 90*time.Second)
	var switched time.Time
	for {
		at, digest := sw.first()
		if digest == fresh.Digest {
			switched = at
			break
		}
		if digest != "" {
			t.Fatalf("after the renewal Postfix served key %s, neither the previous %s nor the new %s", short(digest), short(old.Digest), short(fresh.Digest))
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(w.state + "/scheduled-tick.log")
			t.Fatalf("the scheduled run did not switch to %s; status:\n%v\nscheduled-tick.log:\n%s", short(fresh.Digest), w.danectl("status"), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	floor, ok := p.floor(fresh.Record)
	if !ok {
		t.Fatalf("the poller never saw %s at every server", fresh.Record)
	}
	// The poller sees a record up to one poll (and a query) late, so its
	// floor is an upper bound of the real one: a switch earlier than that
	// by more than the poll's resolution broke the invariant.
	if switched.Before(floor.Add(-2 * pollInterval)) {
		t.Fatalf("switched at %s, before the floor %s (last server's first serving + 2 × TTL %d s)", clock(switched), clock(floor), p.maxTTL)
	}
	// Removal after a switch has no schedule of its own: the run that
	// switched verifies the new chain and then removes the previous key's
	// record, so both servers stop serving it without any tick here
	// (NOTIFY and IXFR take milliseconds; 10 s bounds a loaded machine).
	if err := w.recordsWithin(10*time.Second, fresh.Record); err != nil {
		log, _ := os.ReadFile(w.state + "/scheduled-tick.log")
		t.Fatalf("after the scheduled switch the previous key's record %s was not removed: %v\nstatus:\n%v\nscheduled-tick.log:\n%s", old.Record, err, w.danectl("status"), log)
	}
	removed := time.Now()
	r := floorResult{start: start, floor: floor, switched: switched, safeAt: safeAt}
	if log, err := os.ReadFile(w.state + "/scheduled-tick.log"); err == nil {
		t.Logf("scheduled-tick.log:\n%s", log)
	}
	t.Logf("floor %s, danehook's safe_at %s (+%v), switched %s (+%v after safe_at)", clock(floor), clock(r.safeAt),
		r.safeAt.Sub(floor).Round(time.Millisecond), clock(switched), switched.Sub(r.safeAt).Round(time.Millisecond))
	w.say("   switched at %s by the scheduled run; floor %s; latency ÷ floor = %.3f", clock(switched), clock(floor), r.ratio())
	t.Logf("the previous key's %s gone from both servers %v after the switch (no tick)", old.Record, removed.Sub(switched).Round(time.Millisecond))
	return r
}

// rotationAtFloor sets rotate_every so that one `danectl tick` stages a
// new key, and waits, without ticking again, until the scheduled run
// commits it; it fails when the commit came before the floor of the staged
// key's record or no run was scheduled. A lego lineage gets lego_cert and
// lego_key for the step (the commit hands lego the staged key through its
// key file; TestRotate does the same), so lego's key file then holds the
// staged key: the rotation is the last step of a lego world. It leaves
// rotate_every (and lego_cert, lego_key) unset.
func (w *world) rotationAtFloor() floorResult {
	t := w.t
	w.rotateEvery = "1s"
	legoFiles := w.legoFiles
	w.legoFiles = legoFiles || w.c.Name != "certbot"
	w.writeConfig(w.bind.KeyFile)
	defer func() { w.rotateEvery, w.legoFiles = "", legoFiles; w.writeConfig(w.bind.KeyFile) }()
	p := startFloorPoller(w.servers(), w.owner())
	defer p.stop()
	time.Sleep(time.Second + 2*pollInterval) // the served key is older than 1 s; the RRset's TTL is seen
	start := time.Now()
	if r := w.danectl("tick"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	st := w.lineageState()
	if st.Next == nil {
		t.Fatalf("after the tick: no next key staged")
	}
	rec, err := tlsa.Parse("3 1 1 " + st.Next.SPKI)
	if err != nil {
		t.Fatal(err)
	}
	if st.Next.Committed.IsZero() {
		if st.Scheduled == nil || st.Scheduled.Via != "at" {
			t.Fatalf("no at job scheduled for the staged key's commit: scheduled %+v, error %q", st.Scheduled, st.ScheduleErr)
		}
		w.say("   tick staged 3 1 1 %s and scheduled at job %s for %s", st.Next.SPKI, st.Scheduled.ID, clock(st.Scheduled.At))
	} else {
		// The at job ran between the tick's exit and this read (a
		// loaded machine); the floor check below still judges it.
		w.say("   tick staged 3 1 1 %s; the at job it scheduled committed it before the state was read", st.Next.SPKI)
	}
	deadline := time.Now().Add(time.Duration(2*w.bind.TTL)*time.Second + 90*time.Second)
	for {
		st = w.lineageState()
		if st.Next != nil && !st.Next.Committed.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(w.state + "/scheduled-tick.log")
			t.Fatalf("the scheduled run did not commit the staged key; status:\n%v\nscheduled-tick.log:\n%s", w.danectl("status"), log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	committed := st.Next.Committed
	floor, ok := p.floor(rec)
	if !ok {
		t.Fatalf("the poller never saw %s at every server", rec)
	}
	if committed.Before(floor.Add(-2 * pollInterval)) {
		t.Fatalf("committed at %s, before the floor %s", clock(committed), clock(floor))
	}
	r := floorResult{start: start, floor: floor, switched: committed}
	w.say("   committed at %s by the scheduled run; floor %s; latency ÷ floor = %.3f", clock(committed), clock(floor), r.ratio())
	return r
}

// TestBenchSwitchFloor is scripts/bench-switch.sh: switch latency ÷ floor
// for certbot and lego v5 new-key renewals and rotate_every commits at
// several TTLs, with the at(1) job as the only completing run. DANEHOOK_BENCH=1 runs it;
// DANEHOOK_BENCH_TTLS (default "5,15") and DANEHOOK_BENCH_RUNS (renewals
// per world, default 3) tune it.
func TestBenchSwitchFloor(t *testing.T) {
	if os.Getenv("DANEHOOK_BENCH") != "1" {
		t.Skip("a benchmark: run scripts/bench-switch.sh (DANEHOOK_BENCH=1)")
	}
	testenv.Atd(t)
	ttls := []uint32{5, 15}
	if s := os.Getenv("DANEHOOK_BENCH_TTLS"); s != "" {
		ttls = nil
		for _, f := range splitComma(s) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				t.Fatalf("DANEHOOK_BENCH_TTLS=%q: want seconds like 5,15", s)
			}
			ttls = append(ttls, uint32(n))
		}
	}
	runs := 3
	if s := os.Getenv("DANEHOOK_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DANEHOOK_BENCH_RUNS=%q", s)
		}
		runs = n
	}
	type row struct {
		client string
		kind   string
		ttl    uint32
		res    []floorResult
	}
	var rows []row
	var mu sync.Mutex
	t.Run("worlds", func(t *testing.T) {
		for _, c := range clients[:2] {
			for _, ttl := range ttls {
				t.Run(fmt.Sprintf("%s-ttl%d", c.Name, ttl), func(t *testing.T) {
					t.Parallel()
					w := newWorldTTL(t, c, ttl)
					w.scheduleVia = "at"
					w.writeConfig(w.bind.KeyFile)
					var res []floorResult
					steps := []step{{"first-issuance", (*world).firstIssuance, ""}}
					for i := range runs {
						steps = append(steps, step{fmt.Sprintf("new-key-%d", i+1), func(w *world) { res = append(res, w.switchAtFloor()) }, ""})
					}
					// The rotation commit last: for lego it leaves lego's key
					// file holding the committed key (rotationAtFloor).
					var rot []floorResult
					steps = append(steps, step{"rotation", func(w *world) { rot = append(rot, w.rotationAtFloor()) }, ""})
					w.run(t, steps)
					mu.Lock()
					rows = append(rows, row{c.Name, "new-key renewal", ttl, res})
					if len(rot) > 0 {
						rows = append(rows, row{c.Name, "rotation commit", ttl, rot})
					}
					mu.Unlock()
				})
			}
		}
	})
	fmt.Printf("\nbench-switch: switch latency ÷ floor (floor = last authoritative server's first serving + 2 × TTL, measured by an independent poller every %v; latency from the renewal's start; completing run: an at job, no timer)\n", pollInterval)
	for _, r := range rows {
		for i, x := range r.res {
			fmt.Printf("bench-switch: %-8s %-16s TTL %3d s  #%d: latency %7.2f s  floor %7.2f s  ratio %.3f\n",
				r.client, r.kind, r.ttl, i+1, x.switched.Sub(x.start).Seconds(), x.floor.Sub(x.start).Seconds(), x.ratio())
		}
	}
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
