package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/internal/judgelab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
	"github.com/miekg/dns"
)

// Issue 14, "Every MX of a domain": hosts that share a TLSA owner
// coordinate through the host_id ownership registry, judged from outside.
//
// The lab: one signed BIND zone (primary and secondary, TTL 1 s), unbound
// validating and caching over it, and two or three danehook installations,
// each with its own configuration, state_dir, host_id and its own real
// Postfix (internal/postfixlab) on its own port. Each host's TLSA owner
// _<its port>._tcp.mxN.example.test. is a CNAME to the one shared name
// sharedTarget, so the hosts share one TLSA RRset (README, "CNAME owners
// and hosts that share an owner") and posttls-finger, asking
// "[mxN.example.test]:<port>", follows the CNAME through the resolver.
//
// The certificates come from a test CA (fixture.CA) and reach danehook by
// direct runs of its lego v5 hooks (dane-prerenew, dane-deploy,
// dane-reload with LEGO_HOOK_* set, the files in lego's layout), so a
// renewal takes milliseconds and every interleaving is the test's choice;
// `danectl rotate stage/commit` and a `danectl tick` timer every second on
// every host run beside them. The judge samples every host every 0.5 s
// from the moment every host's first run is aged (see scenario) to the
// end, must never fail, and must have Verified every host (not only seen
// no TLSA); at the end every host converges: `danectl status` exits 0 on
// each, the RRset at both servers is exactly the union of the served keys'
// records, each host claims its served record and nothing else no host
// serves, and a last judge run per host matches its served key.
//
// The negative control runs the same-key scenario with no host_id: the
// host that published the shared record first removes it when it moves to
// a new key while the other host still serves it, and the judge must see
// that outage (the test fails if it does not: the judge can fail). With
// different keys and no host_id nothing is shared and the judge sees no
// outage (measured: 0 failures in 69 samples, three hosts), so that case
// is no control.

// sharedTarget is the one TLSA owner every host's owner is a CNAME to.
const sharedTarget = "_dane." + zone

// mxHost is one danehook installation with its own Postfix.
type mxHost struct {
	id     string // host_id and label: "mx1"
	name   string // "mx1.example.test"
	dir    string
	config string
	state  string
	pf     *postfixlab.Lab
	ticks  atomic.Int64
	failed atomic.Int64 // ticks that exited non-zero
	// heldServed counts removals this host kept because another host's
	// claim says it still serves the record; heldRace the removals kept or
	// runs stopped by a claim or removal that landed meanwhile.
	heldServed, heldRace atomic.Int64
	// paused stops the host's timer (its ticks are skipped) while set.
	paused   atomic.Bool
	mu       sync.Mutex
	tickErrs []string
}

func (h *mxHost) owner() string { return fmt.Sprintf("_%d._tcp.%s.", h.pf.Port, h.name) }

// lego's files for the host (lego v5 layout: <path>/certificates/<name>.*).
func (h *mxHost) certFile() string {
	return filepath.Join(h.dir, "lego", "certificates", h.name+".crt")
}
func (h *mxHost) keyFile() string { return filepath.Join(h.dir, "lego", "certificates", h.name+".key") }
func (h *mxHost) issuerFile() string {
	return filepath.Join(h.dir, "lego", "certificates", h.name+".issuer.crt")
}

// sharedLab is the lab of one scenario.
type sharedLab struct {
	t        *testing.T
	bind     *bindlab.Lab
	resolver *judgelab.Resolver
	judge    *judgelab.Judge
	ca       *fixture.CA
	hosts    []*mxHost
	registry bool
	// stopTimers stops the hosts' tick timers (startTimers); idempotent.
	stopTimers func()
}

// sharedScenario is one row of the matrix.
type sharedScenario struct {
	name     string
	hosts    int
	sameKey  bool
	prereq   bool // prerequisites = true on every host
	registry bool // host_id set on every host
}

// TestSharedOwner runs the matrix of issue 14's last test list: two and
// three hosts, the same key and different keys, with and without
// prerequisites = true, renewals and rotations interleaved; and the
// negative control without host_id, where the judge must catch the outage.
func TestSharedOwner(t *testing.T) {
	t.Parallel()
	for _, sc := range []sharedScenario{
		{name: "2-hosts-same-key", hosts: 2, sameKey: true, registry: true},
		{name: "2-hosts-different-keys-prerequisites", hosts: 2, prereq: true, registry: true},
		{name: "3-hosts-same-key-prerequisites", hosts: 3, sameKey: true, prereq: true, registry: true},
		{name: "3-hosts-different-keys", hosts: 3, registry: true},
		{name: "negative-control-no-host-id-same-key", hosts: 2, sameKey: true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			l := newSharedLab(t, sc)
			l.run(sc)
		})
	}
}

func newSharedLab(t *testing.T, sc sharedScenario) *sharedLab {
	t.Helper()
	testenv.Require(t, "posttls-finger")
	var names []string
	for i := 1; i <= sc.hosts; i++ {
		names = append(names, fmt.Sprintf("mx%d", i))
	}
	l := &sharedLab{t: t, ca: fixture.NewCA(t), registry: sc.registry}
	l.bind = bindlab.Start(t, bindlab.Options{Signed: true, TTL: 1, Hosts: names})
	l.resolver = judgelab.StartResolver(t, judgelab.ResolverOptions{
		Zone:        zone,
		Servers:     []string{l.bind.Primary, l.bind.Secondary},
		TrustAnchor: judgelab.TrustAnchorFrom(t, l.bind.Primary, zone),
	})
	l.judge = judgelab.NewJudge(t, l.resolver)
	var upd strings.Builder
	for _, n := range names {
		h := &mxHost{id: n, name: n + "." + strings.TrimSuffix(zone, "."), dir: t.TempDir()}
		h.pf = postfixlab.Start(t, postfixlab.Options{})
		h.state = filepath.Join(h.dir, "state")
		h.config = filepath.Join(h.dir, "danehook.toml")
		if err := os.MkdirAll(filepath.Dir(h.certFile()), 0o700); err != nil {
			t.Fatal(err)
		}
		l.writeConfig(h, sc)
		l.hosts = append(l.hosts, h)
		fmt.Fprintf(&upd, "update add %s 1 IN CNAME %s\n", h.owner(), sharedTarget)
	}
	l.bind.Nsupdate(t, upd.String()+"send\n")
	return l
}

func (l *sharedLab) writeConfig(h *mxHost, sc sharedScenario) {
	var b strings.Builder
	if sc.registry {
		fmt.Fprintf(&b, "host_id = %q\n", h.id)
	}
	fmt.Fprintf(&b, "state_dir = %q\n\n[postfix]\nconfig_dir = %q\n\n", h.state, h.pf.ConfigDir)
	b.WriteString("[schedule]\npublish_wait = \"5s\"\nvia = \"none\"\n\n")
	fmt.Fprintf(&b, "[provider.lab]\ntype = \"rfc2136\"\nserver = %q\nkey_file = %q\nnameserver_port = %d\ntimeout = 2\n",
		l.bind.Primary, l.bind.KeyFile, l.bind.Port)
	if sc.prereq {
		b.WriteString("prerequisites = true\n")
	}
	fmt.Fprintf(&b, "\n[lineage.%q]\nhosts = [%q]\nports = [%d]\nttl = 1\nprovider = \"lab\"\nallow_untrusted = true\n",
		h.name, h.name, h.pf.Port)
	fmt.Fprintf(&b, "chain_file = %q\nendpoints = [%q]\nlego_cert = %q\nlego_key = %q\n",
		h.pf.ChainFiles[0], h.pf.Addr, h.certFile(), h.keyFile())
	if err := os.WriteFile(h.config, []byte(b.String()), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// cmd runs a danehook binary for h; it never calls t.Fatal, so the tick
// goroutines may use it.
func (l *sharedLab) cmd(ctx context.Context, h *mxHost, extraEnv []string, name string, args ...string) result {
	env := append(os.Environ(), "DANEHOOK_CONFIG="+h.config, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	env = append(env, extraEnv...)
	r, err := runIn(ctx, h.dir, env, bin(name), args...)
	if err != nil {
		r.code = -1
		r.out += err.Error()
	}
	// What the registry did, as the commands log it (pkg/deploy decide.go
	// and registry.go, pkg/dnsupdate registry.go).
	h.heldServed.Add(int64(strings.Count(r.out, "still serves a chain that relies on it")))
	h.heldRace.Add(int64(strings.Count(r.out, "claimed it in the ownership registry") +
		strings.Count(r.out, "changed between reading it and the UPDATE") +
		strings.Count(r.out, "was removed by another host while this host claimed it")))
	return r
}

// danectl runs danectl for h in the test's goroutine.
func (l *sharedLab) danectl(h *mxHost, args ...string) result {
	return l.cmd(l.t.Context(), h, nil, "danectl", args...)
}

// issueFor issues a leaf for h's name and key (a new ECDSA P-256 key when
// nil) from the lab CA and returns the key and the certificate's record.
func (l *sharedLab) issueFor(h *mxHost, key crypto.Signer) (crypto.Signer, cert, []byte, []byte) {
	t := l.t
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn, Subject: pkix.Name{CommonName: h.name}, DNSNames: []string{h.name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: l.ca.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca.Cert, key.Public(), l.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.ca.Cert.Raw})
	return key, certOf(leaf), leafPEM, caPEM
}

// renew is one lego v5 renewal of h with key (nil: a new key) run by hand
// as lego runs its hooks: dane-prerenew, the new files, dane-deploy,
// dane-reload. It returns the certified key and its record.
func (l *sharedLab) renew(h *mxHost, key crypto.Signer) (crypto.Signer, cert) {
	t := l.t
	t.Helper()
	env := []string{"LEGO_HOOK_CERT_NAME=" + h.name, "LEGO_HOOK_CERT_DOMAINS=" + h.name,
		"LEGO_HOOK_CERT_PATH=" + h.certFile(), "LEGO_HOOK_CERT_KEY_PATH=" + h.keyFile(),
		"LEGO_HOOK_ISSUER_CERT_PATH=" + h.issuerFile()}
	if _, err := os.Stat(h.certFile()); err == nil {
		if r := l.cmd(t.Context(), h, env, "dane-prerenew"); r.code != 0 {
			t.Fatalf("%s: %v", h.id, r)
		}
	}
	key, c, leafPEM, caPEM := l.issueFor(h, key)
	fixture.WriteFile(t, h.keyFile(), fixture.KeyPEM(t, key))
	fixture.WriteFile(t, h.certFile(), leafPEM, caPEM)
	fixture.WriteFile(t, h.issuerFile(), caPEM)
	for _, hook := range []string{"dane-deploy", "dane-reload"} {
		if r := l.cmd(t.Context(), h, env, hook); r.code != 0 {
			if l.registry {
				t.Fatalf("%s: %v", h.id, r)
			}
			// Without host_id the other host's cleanup may have removed the
			// record this host serves: the hook says so (exit 8, the live
			// chain matches no aged record); the judge is what must see it.
			t.Logf("%s %s (no host_id): %v", clock(time.Now()), h.id, r)
		}
	}
	t.Logf("%s %s: renewed with key %s", clock(time.Now()), h.id, short(c.Digest))
	return key, c
}

// keyOf reads h's lego key file (after `rotate commit` it holds the staged
// key).
func (l *sharedLab) keyOf(h *mxHost) crypto.Signer {
	t := l.t
	t.Helper()
	b, err := os.ReadFile(h.keyFile())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", h.keyFile())
	}
	var k any
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		t.Fatalf("%s: %v", h.keyFile(), err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		t.Fatalf("%s: %T is not a signer", h.keyFile(), k)
	}
	return s
}

// startTimers runs `danectl tick` on every host every second (a fast
// timer) until the returned function is called.
func (l *sharedLab) startTimers() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, h := range l.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the hosts' ticks over the second.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * 300 * time.Millisecond):
			}
			for ctx.Err() == nil {
				if h.paused.Load() {
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				r := l.cmd(ctx, h, nil, "danectl", "tick")
				if ctx.Err() != nil {
					return
				}
				h.ticks.Add(1)
				if r.code != 0 {
					h.failed.Add(1)
					h.mu.Lock()
					h.tickErrs = append(h.tickErrs, clock(time.Now())+" "+r.String())
					h.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }
}

// rotate stages a new key on h, waits until `rotate status` reports it
// aged, and commits it (lego: the staged key is in h's key file at once);
// the renewal that certifies it is the caller's.
func (l *sharedLab) rotate(h *mxHost) {
	t := l.t
	t.Helper()
	if r := l.danectl(h, "rotate", "stage", h.name); r.code != 0 {
		t.Fatalf("%s: %v", h.id, r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := l.danectl(h, "rotate", "commit", h.name)
		if r.code == 0 {
			break
		}
		if r.code != 7 || time.Now().After(deadline) {
			t.Fatalf("%s: rotate commit: %v\n%v\n%s", h.id, r, l.danectl(h, "rotate", "status", "--json", h.name), l.dig(sharedTarget, dns.TypeTLSA))
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("%s %s: rotate stage + commit done", clock(time.Now()), h.id)
}

// waitServed waits until h's Postfix serves c's key (the timer switches
// once the record is aged).
func (l *sharedLab) waitServed(h *mxHost, c cert) {
	t := l.t
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := servedAt(t.Context(), h.pf.Addr)
		if err == nil && got.Digest == c.Digest {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s serves key %s (%v); want %s after 20 s of ticks\n%s", h.id, short(got.Digest), err, short(c.Digest), h.lastTickErrs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (h *mxHost) lastTickErrs() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := len(h.tickErrs); n > 3 {
		return strings.Join(h.tickErrs[n-3:], "\n")
	}
	return strings.Join(h.tickErrs, "\n")
}

func (l *sharedLab) startJudge() *judgelab.Sampler {
	var targets []judgelab.Target
	owners := []string{sharedTarget}
	for _, h := range l.hosts {
		targets = append(targets, judgelab.Target{Host: h.name, Port: h.pf.Port, Alg: judgelab.Default})
		owners = append(owners, h.owner())
	}
	return l.judge.StartSampler(context.Background(), judgelab.SamplerOptions{
		Targets: targets, Servers: []string{l.bind.Primary, l.bind.Secondary}, Owners: owners,
	})
}

func (l *sharedLab) run(sc sharedScenario) {
	t := l.t
	var js *judgelab.Sampler
	final := l.scenario(sc, func() { js = l.startJudge() })
	l.stopTimers()
	rep := js.Stop()
	var ticks, failedTicks []string
	for _, h := range l.hosts {
		ticks = append(ticks, fmt.Sprintf("%s %d", h.id, h.ticks.Load()))
		failedTicks = append(failedTicks, fmt.Sprintf("%s %d", h.id, h.failed.Load()))
	}
	t.Logf("%s; ticks %s (non-zero exits: %s)", rep.Summary(), strings.Join(ticks, ", "), strings.Join(failedTicks, ", "))
	for _, h := range l.hosts {
		if e := h.lastTickErrs(); e != "" {
			t.Logf("%s: last ticks that exited non-zero:\n%s", h.id, e)
		}
	}
	if rep.Samples == 0 {
		t.Fatalf("the judge took no sample; timeline:\n%s", rep.Timeline)
	}
	// The samples must have verified through the CNAME, not only seen no
	// TLSA at all: count each host's Verified samples.
	var verified []string
	for _, h := range l.hosts {
		n := strings.Count(rep.Timeline, fmt.Sprintf("judge [%s]:%d default: Verified", h.name, h.pf.Port))
		verified = append(verified, fmt.Sprintf("%s %d", h.id, n))
		if n < 5 {
			t.Errorf("the judge verified %s only %d times; want most samples Verified through the CNAME; timeline:\n%s", h.id, n, rep.Timeline)
		}
	}
	t.Logf("judge samples Verified per host: %s", strings.Join(verified, ", "))
	var held []string
	for _, h := range l.hosts {
		held = append(held, fmt.Sprintf("%s %d (races %d)", h.id, h.heldServed.Load(), h.heldRace.Load()))
	}
	t.Logf("removals held by another host's claim: %s", strings.Join(held, ", "))
	if sc.registry && sc.sameKey && l.hosts[0].heldServed.Load() == 0 {
		t.Errorf("mx1 never held the old shared record for the hosts that still serve it: the scenario did not exercise the registry")
	}
	if !sc.registry {
		// The negative control: the judge must have seen the outage.
		if !rep.Failed() {
			t.Fatalf("without host_id the judge saw no failure in %d samples; want the outage the registry prevents (can the judge fail?); timeline:\n%s", rep.Samples, rep.Timeline)
		}
		t.Logf("negative control: without host_id the judge failed %d of %d samples, first: %v", len(rep.Failures), rep.Samples, rep.Failures[0])
		return
	}
	if rep.Failed() {
		t.Errorf("the judge (posttls-finger -l dane-only through %s) failed %d of %d samples; timeline:\n%s",
			l.resolver.Addr, len(rep.Failures), rep.Samples, rep.Timeline)
	}
	l.converge(final)
	// One more judge run per host once converged: Verified, matching the
	// served key's record at the shared target.
	for _, h := range l.hosts {
		v := l.judge.Check(t.Context(), h.name, h.pf.Port, judgelab.Default)
		if !v.Verified || !strings.EqualFold(v.Matched, final[h].Record.String()) || v.Key != final[h].Digest {
			t.Errorf("%s converged: the judge says %v (matched %q); want Verified by %s\n%s", h.id, v, v.Matched, final[h].Record, v.Output)
		}
	}
}

// scenario runs the interleaved renewals and rotations and returns the key
// every host serves at the end.
//
// The judge starts (judge) once every host's first danehook run published
// the record of the chain its Postfix serves at the shared target and that
// record is aged (2 x TTL): from then on danehook's invariant holds for
// every host. Before, a host whose owner is already a CNAME to the target
// but whose danehook has not run yet serves a key the target's RRset does
// not hold as soon as another host publishes there — joining a host is the
// operator's step (README), not something danehook can guard.
func (l *sharedLab) scenario(sc sharedScenario, judge func()) map[*mxHost]cert {
	t := l.t
	hs := l.hosts
	served := map[*mxHost]cert{}
	// 1. First issuance on every host: one key for all, or one each.
	var shared crypto.Signer
	for _, h := range hs {
		k, c := l.renew(h, shared)
		if sc.sameKey {
			shared = k
		}
		served[h] = c
	}
	time.Sleep(2 * time.Second)
	judge()
	// The timers start once the hosts have their first files (as the
	// operator enables the timer after the first issuance).
	l.stopTimers = l.startTimers()
	l.t.Cleanup(l.stopTimers)
	for _, h := range hs {
		l.waitServed(h, served[h])
	}
	t.Logf("%s every host serves its first issued key", clock(time.Now()))

	if sc.sameKey {
		// 2. mx1 rotates the shared key (stage, commit, renewal) while mx2
		// renews with the old key; mx1 then wants the old record gone, which
		// every other host still serves.
		l.rotate(hs[0])
		k2 := l.keyOf(hs[0])
		// The other hosts' timers pause meanwhile (a production timer runs
		// every few hours, not every second): nothing but the registry keeps
		// the old record that they serve. Without host_id mx1's cleanup
		// removes it and it stays gone until mx2's next run — the outage the
		// judge must see.
		for _, h := range hs[1:] {
			h.paused.Store(true)
		}
		_, served[hs[0]] = l.renew(hs[0], k2)
		l.waitServed(hs[0], served[hs[0]])
		// mx1's hooks and timer try to clean up the old record for a few
		// TTLs while the other hosts still serve it; then mx2 renews with
		// the old key while mx1's cleanup is held.
		time.Sleep(3 * time.Second)
		for _, h := range hs[1:] {
			h.paused.Store(false)
		}
		_, served[hs[1]] = l.renew(hs[1], l.keyOf(hs[1]))
		time.Sleep(2 * time.Second)
		// 3. The new key reaches the other hosts one after the other.
		for _, h := range hs[1:] {
			_, served[h] = l.renew(h, k2)
			l.waitServed(h, served[h])
			time.Sleep(2 * time.Second)
		}
		return served
	}
	// 2. Different keys: mx1 renews with a new key while mx2 stages a
	// rotation; mx3 (if any) renews with its key meanwhile.
	_, served[hs[0]] = l.renew(hs[0], nil)
	if r := l.danectl(hs[1], "rotate", "stage", hs[1].name); r.code != 0 {
		t.Fatalf("mx2: %v", r)
	}
	if len(hs) > 2 {
		_, served[hs[2]] = l.renew(hs[2], l.keyOf(hs[2]))
	}
	l.waitServed(hs[0], served[hs[0]])
	l.rotate(hs[1]) // stage again is a no-op on a staged key; commit once aged
	_, served[hs[1]] = l.renew(hs[1], l.keyOf(hs[1]))
	if len(hs) > 2 {
		// mx3 moves to a new key while mx2's switch is pending.
		_, served[hs[2]] = l.renew(hs[2], nil)
	}
	// mx1 renews once more with a new key, interleaved with the others.
	_, served[hs[0]] = l.renew(hs[0], nil)
	for _, h := range hs {
		l.waitServed(h, served[h])
	}
	time.Sleep(3 * time.Second)
	return served
}

// converge ticks every host until `danectl status` exits 0 on all (no
// pending switch or removal), then checks that the RRset at both servers
// is exactly the union of the served keys' records and that every host
// claims its served record in the registry.
func (l *sharedLab) converge(served map[*mxHost]cert) {
	t := l.t
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pending []string
		for _, h := range l.hosts {
			if r := l.danectl(h, "tick"); r.code != 0 {
				pending = append(pending, h.id+" tick: "+r.String())
				continue
			}
			if r := l.danectl(h, "status"); r.code != 0 {
				pending = append(pending, h.id+" status: "+r.String())
			}
		}
		want := []tlsa.Record{}
		for _, h := range l.hosts {
			want = append(want, served[h].Record)
		}
		exp := slices.Compact(present(want))
		var got []string
		same := true
		for _, s := range []string{l.bind.Primary, l.bind.Secondary} {
			recs, err := tlsaAt(t.Context(), s, sharedTarget)
			if err != nil {
				t.Fatal(err)
			}
			p := present(recs)
			got = append(got, fmt.Sprintf("%s %q", s, p))
			same = same && slices.Equal(p, exp)
		}
		if len(pending) == 0 && same {
			t.Logf("converged: %s serves %q at both servers", sharedTarget, exp)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged after 30 s: RRset %s, want %q; pending:\n%s", strings.Join(got, ", "), exp, strings.Join(pending, "\n"))
		}
		time.Sleep(time.Second)
	}
	claims := l.claims()
	for _, h := range l.hosts {
		if !slices.Contains(claims[h.id], served[h].Record.String()) {
			t.Errorf("%s claims %q in %s; want its served record %s", h.id, claims[h.id], dnsupdate.RegistryName(sharedTarget), served[h].Record)
		}
		for _, c := range claims[h.id] {
			ok := false
			for _, o := range l.hosts {
				ok = ok || served[o].Record.String() == c
			}
			if !ok {
				t.Errorf("%s still claims %s, which no host serves (claims %q)", h.id, c, claims[h.id])
			}
		}
	}
	t.Logf("registry %s: %v", dnsupdate.RegistryName(sharedTarget), claims)
}

// claims reads the registry at the primary: host id -> claimed records.
func (l *sharedLab) claims() map[string][]string {
	t := l.t
	m := new(dns.Msg)
	m.SetQuestion(dnsupdate.RegistryName(sharedTarget), dns.TypeTXT)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(t.Context(), m, l.bind.Primary)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			if cl, ok := dnsupdate.ParseClaim(sharedTarget, strings.Join(txt.Txt, "")); ok {
				out[cl.Host] = append(out[cl.Host], cl.Record.String())
			}
		}
	}
	return out
}

// dig is the answer of the primary for name and qtype, for failure messages.
func (l *sharedLab) dig(name string, qtype uint16) string {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(l.t.Context(), m, l.bind.Primary)
	if err != nil {
		return err.Error()
	}
	return r.String()
}
