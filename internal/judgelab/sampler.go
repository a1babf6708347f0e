package judgelab

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultInterval is the Sampler's default period: issue 11 asks for a judge
// sample at least every 0.5 s during a switch.
const DefaultInterval = 500 * time.Millisecond

// SamplerOptions configure Judge.StartSampler.
type SamplerOptions struct {
	// Targets are judged every Interval, each with its own Algorithm.
	Targets []Target
	// Interval is the period at which a judge run of every target starts;
	// default DefaultInterval. A run takes 0.05–1.5 s on 2 cores, so runs
	// of one target may overlap (at most PerTarget at once).
	Interval time.Duration
	// Servers are the authoritative servers ("ip:port") asked directly,
	// without recursion, every Interval for each owner's TLSA RRset (with
	// its TTL) and the zone's SOA serial; the timeline shows each change.
	Servers []string
	// Owners are the TLSA owners asked of Servers; default the owner of
	// every target (_<port>._tcp.<host>.).
	Owners []string
	// Concurrency bounds the judge runs in flight over all targets; default
	// 4. PerTarget bounds them per target; default 2.
	Concurrency, PerTarget int
}

// Sampler runs the judge every Interval for its targets and asks each
// authoritative server directly, until Stop.
type Sampler struct {
	j      *Judge
	opts   SamplerOptions
	ctx    context.Context
	stop   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
	sem    chan struct{}
	once   sync.Once
	report Report

	mu        sync.Mutex
	entries   []entry
	samples   int
	dnsProbes int
	failures  []Verdict
	inflight  map[Target]int
	lastStart map[Target]time.Time
	maxGap    map[Target]time.Duration
	skipped   int
	dnsBusy   bool
	lastDNS   map[string]string // server -> last state line
}

// entry is one timeline line.
type entry struct {
	at   time.Time
	text string
}

// Report is what a Sampler saw.
type Report struct {
	// Samples is the number of completed judge runs.
	Samples int
	// DNSSamples is the number of rounds of direct queries of the servers.
	DNSSamples int
	// Failures are the runs where the judge did not say Verified while a
	// TLSA RRset existed (a run that reported "no TLSA records found" is
	// not a failure), and runs that could not complete (Err set) while the
	// sampler was running.
	Failures []Verdict
	// MaxGap is the largest time between the starts of two consecutive
	// runs of one target (the sampling period actually achieved).
	MaxGap time.Duration
	// Timeline holds every judge run and every change the servers showed,
	// in time order, and for each failure the resolver's cached answer and
	// posttls-finger's output.
	Timeline string
}

// Failed reports whether any sample failed.
func (r Report) Failed() bool { return len(r.Failures) > 0 }

// Summary is a one-line account: samples, failures, per-target counts.
func (r Report) Summary() string {
	return fmt.Sprintf("judge: %d samples, %d failures, %d DNS rounds, largest gap between samples of a target %.1f s",
		r.Samples, len(r.Failures), r.DNSSamples, r.MaxGap.Seconds())
}

// StartSampler starts sampling at once and returns the running Sampler;
// it stops when Stop is called (or ctx is done: runs cut short then are not
// failures).
func (j *Judge) StartSampler(ctx context.Context, opts SamplerOptions) *Sampler {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.PerTarget <= 0 {
		opts.PerTarget = 2
	}
	if len(opts.Owners) == 0 {
		for _, t := range opts.Targets {
			o := ownerOf(t.Port, t.Host)
			if !slices.Contains(opts.Owners, o) {
				opts.Owners = append(opts.Owners, o)
			}
		}
	}
	s := &Sampler{
		j: j, opts: opts, ctx: ctx,
		stop: make(chan struct{}), done: make(chan struct{}),
		sem:       make(chan struct{}, opts.Concurrency),
		inflight:  map[Target]int{},
		lastStart: map[Target]time.Time{},
		maxGap:    map[Target]time.Duration{},
		lastDNS:   map[string]string{},
	}
	s.note(time.Now(), fmt.Sprintf("sampler start: %d targets every %v, resolver %s, servers %s, owners %s",
		len(opts.Targets), opts.Interval, j.Resolver.Addr, strings.Join(opts.Servers, " "), strings.Join(opts.Owners, " ")))
	go s.loop()
	return s
}

func ownerOf(port int, host string) string {
	return "_" + strconv.Itoa(port) + "._tcp." + dns.Fqdn(strings.ToLower(host))
}

func (s *Sampler) loop() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		s.round()
		select {
		case <-s.stop:
			return
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round starts a judge run for every target that has fewer than PerTarget
// in flight (when the global bound allows) and one DNS round.
func (s *Sampler) round() {
	now := time.Now()
	for _, t := range s.opts.Targets {
		s.mu.Lock()
		busy := s.inflight[t] >= s.opts.PerTarget
		s.mu.Unlock()
		if busy {
			s.mu.Lock()
			s.skipped++
			s.mu.Unlock()
			continue
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.mu.Lock()
			s.skipped++
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		s.inflight[t]++
		if last, ok := s.lastStart[t]; ok && now.Sub(last) > s.maxGap[t] {
			s.maxGap[t] = now.Sub(last)
		}
		s.lastStart[t] = now
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			v := s.j.Check(s.ctx, t.Host, t.Port, t.Alg)
			s.record(v)
			s.mu.Lock()
			s.inflight[t]--
			s.mu.Unlock()
		}()
	}
	if len(s.opts.Servers) > 0 {
		s.mu.Lock()
		busy := s.dnsBusy
		s.dnsBusy = true
		s.mu.Unlock()
		if !busy {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.probeDNS()
				s.mu.Lock()
				s.dnsBusy = false
				s.mu.Unlock()
			}()
		}
	}
}

// record adds a finished run to the timeline and, when it failed, the
// resolver's cached view and posttls-finger's output.
func (s *Sampler) record(v Verdict) {
	if v.Err != nil && s.ctx.Err() != nil {
		s.note(v.At, "judge "+v.String()+" (cut short: the sampler's context ended; not counted)")
		return
	}
	if v.OK() {
		s.mu.Lock()
		s.samples++
		s.entries = append(s.entries, entry{v.At, "judge " + v.String()})
		s.mu.Unlock()
		return
	}
	var b strings.Builder
	b.WriteString("judge " + v.String() + "\n")
	for _, l := range strings.Split(strings.TrimSpace(v.Output), "\n") {
		b.WriteString("      | " + l + "\n")
	}
	b.WriteString(s.resolverView())
	s.mu.Lock()
	s.samples++
	s.failures = append(s.failures, v)
	s.entries = append(s.entries, entry{v.At, strings.TrimRight(b.String(), "\n")})
	s.mu.Unlock()
}

// resolverView is what the lab resolver answers now for each owner: rcode,
// AD flag, the records with the TTL left in its cache.
func (s *Sampler) resolverView() string {
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, o := range s.opts.Owners {
		m, err := s.j.Resolver.Query(ctx, o, dns.TypeTLSA)
		if err != nil {
			fmt.Fprintf(&b, "      resolver %s: %v\n", s.j.Resolver.Addr, err)
			continue
		}
		fmt.Fprintf(&b, "      resolver %s now: TLSA %s rcode %s ad=%v %s\n", s.j.Resolver.Addr, o,
			dns.RcodeToString[m.Rcode], m.AuthenticatedData, rrsetText(m.Answer))
	}
	return b.String()
}

// probeDNS asks every server directly for the SOA serial and each owner's
// TLSA RRset, and notes each server whose answer changed.
func (s *Sampler) probeDNS() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	type result struct {
		at    time.Time
		state string
	}
	res := make([]result, len(s.opts.Servers))
	var wg sync.WaitGroup
	for i, srv := range s.opts.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = result{time.Now(), serverState(ctx, srv, s.opts.Owners)}
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dnsProbes++
	for i, srv := range s.opts.Servers {
		if s.lastDNS[srv] == res[i].state {
			continue
		}
		s.lastDNS[srv] = res[i].state
		s.entries = append(s.entries, entry{res[i].at, "dns   " + srv + " " + res[i].state})
	}
}

// serverState is one line: "serial N; OWNER TTL t {records}; …".
func serverState(ctx context.Context, server string, owners []string) string {
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	var parts []string
	ask := func(name string, qtype uint16) (*dns.Msg, error) {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.RecursionDesired = false
		m, _, err := c.ExchangeContext(ctx, q, server)
		return m, err
	}
	if len(owners) > 0 {
		zone := ""
		if m, err := ask(owners[0], dns.TypeSOA); err == nil {
			for _, rr := range append(m.Answer, m.Ns...) {
				if soa, ok := rr.(*dns.SOA); ok {
					zone = soa.Hdr.Name
					parts = append(parts, fmt.Sprintf("serial %d", soa.Serial))
				}
			}
			if zone == "" {
				parts = append(parts, "SOA: rcode "+dns.RcodeToString[m.Rcode])
			}
		} else {
			return "unreachable: " + err.Error()
		}
	}
	for _, o := range owners {
		m, err := ask(o, dns.TypeTLSA)
		if err != nil {
			parts = append(parts, o+" "+err.Error())
			continue
		}
		if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
			parts = append(parts, fmt.Sprintf("%s rcode %s aa=%v", o, dns.RcodeToString[m.Rcode], m.Authoritative))
			continue
		}
		parts = append(parts, o+" "+rrsetText(m.Answer))
	}
	return strings.Join(parts, "; ")
}

// rrsetText renders the TLSA records of rrs as "TTL t {u s m data…, …}"
// ("{}" when none).
func rrsetText(rrs []dns.RR) string {
	var recs []string
	ttl := -1
	for _, rr := range rrs {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		if ttl < 0 || int(t.Hdr.Ttl) < ttl {
			ttl = int(t.Hdr.Ttl)
		}
		recs = append(recs, shortRecord(fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Certificate)))
	}
	sort.Strings(recs)
	if ttl < 0 {
		return "{}"
	}
	return fmt.Sprintf("TTL %d {%s}", ttl, strings.Join(recs, ", "))
}

// note adds a line to the timeline.
func (s *Sampler) note(at time.Time, text string) {
	s.mu.Lock()
	s.entries = append(s.entries, entry{at, text})
	s.mu.Unlock()
}

// Stop stops starting runs, waits for the runs in flight and returns the
// report. It is idempotent: later calls return the same report.
func (s *Sampler) Stop() Report {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		var gaps []string
		var maxGap time.Duration
		for _, t := range s.opts.Targets {
			gaps = append(gaps, fmt.Sprintf("%s %.1f s", t, s.maxGap[t].Seconds()))
			maxGap = max(maxGap, s.maxGap[t])
		}
		s.entries = append(s.entries, entry{time.Now(), fmt.Sprintf(
			"sampler stop: %d judge samples, %d failures, %d DNS rounds; %d runs skipped (target or bound busy); largest gap between starts: %s",
			s.samples, len(s.failures), s.dnsProbes, s.skipped, strings.Join(gaps, ", "))})
		sort.SliceStable(s.entries, func(a, b int) bool { return s.entries[a].at.Before(s.entries[b].at) })
		var b strings.Builder
		for _, e := range s.entries {
			b.WriteString(e.at.Format("15:04:05.000") + " " + e.text + "\n")
		}
		s.report = Report{Samples: s.samples, DNSSamples: s.dnsProbes, MaxGap: maxGap, Failures: slices.Clone(s.failures), Timeline: b.String()}
	})
	return s.report
}
