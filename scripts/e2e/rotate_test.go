package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/rotate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// agedTimeout bounds the wait until a staged record is aged: served by both
// servers within milliseconds, aged 2 × TTL (4 s in the lab) later.
const agedTimeout = 20 * time.Second

// TestRotate runs `danectl rotate` end to end against the clients with a
// pre hook, certbot and lego v5, in parallel (each has its own BIND,
// Postfix, Pebble and state), the steps of one client in order: the first
// issuance, a rotation committed with --now (renew_command), then one more
// rotation per client — certbot at its scheduled renewal (dane-prerenew
// swaps the key), lego v5 with a lagging secondary — and last a same-key
// renewal, which must keep the rotated key. The invariant sampler runs
// through every rotation.
func TestRotate(t *testing.T) {
	t.Parallel()
	extra := map[string][]step{
		"certbot": {{"rotate-at-renewal", (*world).rotateAtRenewal, ""}},
		"lego-v5": {{"rotate-secondary-lagging", (*world).rotateSecondaryLagging, ""}},
	}
	for _, c := range clients {
		if _, ok := extra[c.Name]; !ok {
			continue // lego v4 has no pre hook; rotation is tested with v5
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, c)
			// lego: danehook reads lego's files, so commit can swap the key.
			w.legoFiles = c.Name != "certbot"
			// The client's forced renewal, hooks and lab flags included.
			w.renewCommand = append([]string{w.tool}, w.renewArgs(false)...)
			w.writeConfig(w.bind.KeyFile)
			steps := append([]step{
				{"first-issuance", (*world).firstIssuance, ""},
				{"rotate-commit-now", (*world).rotateCommitNow, ""},
			}, extra[c.Name]...)
			steps = append(steps, step{"renew-same-key", (*world).renewSameKey, ""})
			w.run(t, steps)
		})
	}
}

// rotateCommitNow: `rotate stage` publishes the next key's 3 1 1 beside the
// current one at both servers (the key file 0600 in the state directory);
// `rotate commit` right away is refused (exit 7) naming when it becomes
// safe; once `rotate status` reports the record aged, `rotate commit
// --now` runs renew_command, after which Postfix serves the staged key and
// the old record goes. lego's rotation is committed first without --now,
// which hands lego the staged key at once, and the timer runs in between.
// The rotation latency (stage until commit is allowed) is compared with
// its floor: the last server first seen serving the staged record, plus
// 2 × TTL.
func (w *world) rotateCommitNow() {
	t := w.t
	old := w.served()
	s := w.startSampler()
	watch := w.watchRecords()
	next, staged := w.stage()
	w.waitRecords(old.Record, next.Record)

	w.commitRefused(staged)
	allowed, rs := w.waitCommitAllowed(agedTimeout)
	watch.stop()
	w.reportLatency("stage", staged, allowed, rs, watch, next)
	if w.c.Name != "certbot" {
		w.commitBeforeRenewal(old, next)
	}
	w.commitNow(old, next)
	s.finish(t, old, next)
}

// commitBeforeRenewal: `rotate commit` (without --now) once aged records
// the commitment and hands the staged key to the client — lego's key file
// at once (lego reads it before its pre hook), certbot's later (by
// dane-prerenew) — and until the renewal the timer runs cleanly and
// Postfix keeps the old key.
func (w *world) commitBeforeRenewal(old, next cert) {
	t := w.t
	t.Helper()
	r := w.danectl("rotate", "commit", w.c.Lineage)
	if r.code != 0 || !strings.Contains(r.out, "committed the rotation of "+w.c.Lineage) {
		t.Fatalf("rotate commit once aged: want exit 0; got %v", r)
	}
	if st := w.lineageState(); st.Next == nil || st.Next.Committed.IsZero() {
		t.Fatalf("after rotate commit the state holds %+v; want the staged key committed", st.Next)
	}
	wantKey := old.Digest
	if w.c.Name != "certbot" {
		wantKey = next.Digest
	}
	if got := w.clientKey(); got != wantKey {
		t.Fatalf("after rotate commit the client's key file holds key %s; want %s", short(got), short(wantKey))
	}
	// lego's key file and certificate disagree now, as expected: the timer
	// must not fail on it.
	if r := w.danectl("tick"); r.code != 0 {
		t.Fatalf("tick between commit and renewal: %v", r)
	}
	if got := w.served(); got.Digest != old.Digest {
		t.Fatalf("after commit and tick Postfix serves %s; want the old key %s until the renewal", short(got.Digest), short(old.Digest))
	}
	w.waitRecords(old.Record, next.Record)
}

// rotateAtRenewal (certbot): a committed rotation waits for the next
// scheduled renewal; dane-prerenew swaps certbot's key right before it, so
// that renewal certifies the staged key, dane-deploy installs the chain at
// once (its record is aged) and dane-reload verifies it and removes the old
// record — no tick needed.
func (w *world) rotateAtRenewal() {
	t := w.t
	old := w.served()
	s := w.startSampler()
	watch := w.watchRecords()
	next, staged := w.stage()
	w.waitRecords(old.Record, next.Record)
	allowed, rs := w.waitCommitAllowed(agedTimeout)
	watch.stop()
	w.reportLatency("stage", staged, allowed, rs, watch, next)
	w.commitBeforeRenewal(old, next)

	w.client(w.renewArgs(false)...)
	renewed := w.current()
	if renewed.Digest != next.Digest {
		t.Fatalf("the renewal after the commit certified key %s; want the staged key %s", short(renewed.Digest), short(next.Digest))
	}
	w.waitServed(renewed)
	w.waitRecords(next.Record)
	w.checkServedChain()
	w.verifyLive()
	w.checkRotationDone(next)
	s.finish(t, old, next)
}

// rotateSecondaryLagging (one client is enough): with zone transfers
// blocked, the staged record reaches only the primary, and commit is
// refused well past 2 × TTL while `rotate status` names the secondary
// 127.0.0.2. Once transfers resume, commit is allowed no earlier than 2 ×
// TTL after the secondary was first seen serving the record; `commit --now`
// then completes the rotation.
func (w *world) rotateSecondaryLagging() {
	t := w.t
	old := w.served()
	s := w.startSampler()
	w.bind.BlockTransfers(t)
	next, staged := w.stage()
	if got := w.records(w.bind.Primary); !has(got, next.Record) || !has(got, old.Record) {
		t.Fatalf("primary serves %q; want the current and the staged record", got)
	}
	var last result
	ttl := time.Duration(w.bind.TTL) * time.Second
	for time.Since(staged) < 2*ttl+2*time.Second {
		if got := w.records(w.bind.Secondary); has(got, next.Record) {
			t.Fatalf("secondary with transfers blocked serves the staged record: %q", got)
		}
		last = w.danectl("rotate", "commit", w.c.Lineage)
		if last.code != 7 {
			t.Fatalf("rotate commit with a lagging secondary: want exit 7 (pending); got %v", last)
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(last.out, "127.0.0.2") {
		t.Errorf("rotate commit refused without naming the secondary 127.0.0.2:\n%v", last)
	}
	st := w.danectl("rotate", "status", w.c.Lineage)
	if st.code != 0 || !strings.Contains(st.out, "127.0.0.2") || !strings.Contains(st.out, "NOT AGED") ||
		!strings.Contains(st.out, "commit refused until aged") {
		t.Fatalf("rotate status with a lagging secondary: want it NOT AGED, naming 127.0.0.2; got %v", st)
	}
	t.Logf("rotate status while the secondary lags:\n%s", st.out)
	if got := w.clientKey(); got != old.Digest {
		t.Fatalf("a refused commit changed the client's key to %s", short(got))
	}

	watch := w.watchRecords()
	w.bind.UnblockTransfers(t)
	unblocked := time.Now()
	w.bind.WaitSerial(t, w.bind.Secondary, zone, w.serial(), 10*time.Second)
	allowed, rs := w.waitCommitAllowed(agedTimeout)
	watch.stop()
	w.reportLatency("transfers resumed", unblocked, allowed, rs, watch, next)
	if seen, ok := w.dnsState().Seen.FirstSeen(w.owner(), next.Record, w.bind.Secondary); !ok {
		t.Errorf("no first-seen time of the staged record at the secondary in the state")
	} else if seen.Before(unblocked) {
		t.Errorf("secondary first seen serving the staged record at %s, before transfers resumed at %s", clock(seen), clock(unblocked))
	} else if allowed.Before(seen.Add(2 * ttl)) {
		t.Errorf("commit allowed at %s, earlier than 2 x TTL after the secondary was first seen serving the record (%s)", clock(allowed), clock(seen))
	}

	w.commitNow(old, next)
	s.finish(t, old, next)
}

// stage runs `rotate stage`, checks the staged key in the state and its
// file (0600 in the state directory, holding the recorded key) and returns
// the staged key's record and the time just before the command ran.
func (w *world) stage() (next cert, staged time.Time) {
	t := w.t
	t.Helper()
	staged = time.Now()
	r := w.danectl("rotate", "stage", w.c.Lineage)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	st := w.lineageState()
	if st.Next == nil {
		t.Fatalf("after rotate stage the state of %s has no staged key:\n%v", w.c.Lineage, r)
	}
	next = spkiCert(t, st.Next.SPKI)
	if !strings.Contains(r.out, "3 1 1 "+next.Digest) {
		t.Errorf("rotate stage output does not name the staged record 3 1 1 %s:\n%s", next.Digest, r.out)
	}
	file := filepath.Join(w.state, w.c.Lineage+".next.key")
	if st.Next.File != file {
		t.Errorf("staged key file %s; want %s in the state directory", st.Next.File, file)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("staged key file %s: mode %v, want 0600", file, got)
	}
	if got := keyFileSPKI(t, file); got != next.Digest {
		t.Errorf("staged key file %s holds key %s; the state records %s", file, short(got), short(next.Digest))
	}
	t.Logf("staged %s key 3 1 1 %s", st.Next.Algorithm, short(next.Digest))
	return next, staged
}

// safeAt finds the time `rotate commit` names when it refuses.
var safeAt = regexp.MustCompile(`safe at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)`)

// commitRefused: `rotate commit` before the staged record is aged exits 7
// and names the time it becomes safe: 2 × TTL after the last server was
// first seen serving the record, so between the stage plus 2 × TTL and now
// plus 2 × TTL. It commits nothing.
func (w *world) commitRefused(staged time.Time) {
	t := w.t
	t.Helper()
	r := w.danectl("rotate", "commit", w.c.Lineage)
	if r.code != 7 {
		t.Fatalf("rotate commit right after stage: want exit 7 (pending); got %v", r)
	}
	m := safeAt.FindStringSubmatch(r.out)
	if m == nil {
		t.Fatalf("rotate commit refused without naming the time it becomes safe:\n%v", r)
	}
	at, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	ttl := time.Duration(w.bind.TTL) * time.Second
	// RFC 3339 in whole seconds: the named time may be up to 1 s early.
	if at.Before(staged.Add(2*ttl-time.Second)) || at.After(time.Now().Add(2*ttl)) {
		t.Errorf("rotate commit names %s as safe; want 2 x TTL (%v) after the record reached both servers (staged at %s)", m[1], 2*ttl, clock(staged))
	}
	t.Logf("rotate commit right after stage, exit %d:\n%s", r.code, r.out)
	if st := w.lineageState(); st.Next == nil || !st.Next.Committed.IsZero() {
		t.Fatalf("a refused commit recorded %+v", st.Next)
	}
}

// waitCommitAllowed polls `rotate status --json` until it reports the
// staged record aged, and returns when that answer came and the status.
func (w *world) waitCommitAllowed(timeout time.Duration) (time.Time, *rotate.Status) {
	t := w.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := w.danectl("rotate", "status", "--json", w.c.Lineage)
		answered := time.Now()
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		var rs []*rotate.Status
		if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil || len(rs) != 1 {
			t.Fatalf("rotate status --json: %v; want one lineage:\n%s", err, r.out)
		}
		if rs[0].Aged {
			return answered, rs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the staged record was not aged after %v: %v", timeout, w.danectl("rotate", "status", w.c.Lineage))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// commitNow runs `rotate commit --now` (renew_command: the client's forced
// renewal with the hooks) and checks the end of the rotation: Postfix
// serves the staged key, the old key's record goes from both servers
// (`danectl tick` until it does, bounded), the live chain matches both
// servers, and the staged key is gone from the state.
func (w *world) commitNow(old, next cert) {
	t := w.t
	t.Helper()
	r := w.danectl("rotate", "commit", "--now", w.c.Lineage)
	if r.code != 0 || !strings.Contains(r.out, "committed; renewing now: "+w.tool) {
		t.Fatalf("rotate commit --now: want exit 0 after running renew_command; got %v", r)
	}
	t.Logf("rotate commit --now (renew_command included) took %.1f s; the hooks said:\n%s", r.took.Seconds(), lines(r.out, "level=INFO msg=\"", "level=WARN", "level=ERROR"))
	renewed := w.current()
	if renewed.Digest != next.Digest {
		t.Fatalf("renew_command certified key %s; want the staged key %s", short(renewed.Digest), short(next.Digest))
	}
	w.waitServed(renewed)
	deadline := time.Now().Add(switchTimeout)
	ticks := 0
	for {
		gone := true
		for _, s := range w.servers() {
			gone = gone && !has(w.records(s), old.Record)
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d ticks the old record %s is still served: primary %q, secondary %q",
				ticks, short(old.Digest), w.records(w.bind.Primary), w.records(w.bind.Secondary))
		}
		if r := w.danectl("tick"); r.code != 0 {
			t.Fatalf("%v", r)
		}
		ticks++
		time.Sleep(time.Second)
	}
	t.Logf("old record removed from both servers after %d ticks", ticks)
	w.waitRecords(next.Record)
	if got := w.served(); got.Digest != next.Digest {
		t.Fatalf("Postfix serves key %s; want the staged key %s", short(got.Digest), short(next.Digest))
	}
	w.checkServedChain()
	w.verifyLive()
	w.checkRotationDone(next)
}

// checkRotationDone checks that the state no longer holds a staged key or
// its file, and that status reports everything in place.
func (w *world) checkRotationDone(next cert) {
	t := w.t
	t.Helper()
	if st := w.lineageState(); st.Next != nil || st.KeySPKI != next.Digest {
		t.Errorf("after the rotation the state holds next %+v, key %s; want no staged key and key %s", st.Next, short(st.KeySPKI), short(next.Digest))
	}
	if _, err := os.Stat(filepath.Join(w.state, w.c.Lineage+".next.key")); !os.IsNotExist(err) {
		t.Errorf("the staged key file is still in the state directory: %v", err)
	}
	if r := w.danectl("rotate", "status", w.c.Lineage); r.code != 0 || !strings.Contains(r.out, "no staged key") {
		t.Errorf("rotate status after the rotation: want \"no staged key\"; got %v", r)
	}
	if r := w.danectl("status"); r.code != 0 {
		t.Errorf("danectl status after the rotation: want exit 0; got %v", r)
	}
}

// reportLatency logs how long commit took to be allowed after from (the
// stage, or the end of a transfer block) against its floor: the time the
// last server was first seen serving the staged record, plus 2 × TTL. It
// fails t when danehook called the record aged before 2 × TTL after the
// last server can have begun serving it (the watch's last answer without
// it), a bound that the watch's polling interval cannot make wrong.
func (w *world) reportLatency(what string, from, allowed time.Time, rs *rotate.Status, watch *recordWatch, next cert) {
	t := w.t
	t.Helper()
	ttl := time.Duration(w.bind.TTL) * time.Second
	first, without := watch.seen(next.Record)
	var last, began time.Time
	for _, s := range w.servers() {
		at, ok := first[s]
		if !ok {
			t.Errorf("the watch never saw %s serve the staged record", s)
			return
		}
		last, began = later(last, at), later(began, without[s])
	}
	latency := allowed.Sub(from).Seconds()
	floor := last.Add(2 * ttl).Sub(from).Seconds()
	t.Logf("rotation latency (%s, from %s): commit allowed after %.2f s; floor %.2f s (staged record first seen at the primary %.3f s, the secondary %.3f s after, + 2 x TTL %v); ratio %.2f; danehook's aged_at %.2f s after",
		w.c.Name, what, latency, floor, first[w.bind.Primary].Sub(from).Seconds(), first[w.bind.Secondary].Sub(from).Seconds(),
		2*ttl, latency/floor, rs.AgedAt.Sub(from).Seconds())
	fmt.Printf("rotation latency: %.2f s, floor %.2f s, ratio %.2f (%s, from %s)\n", latency, floor, latency/floor, w.c.Name, what)
	if bound := began.Add(2 * ttl); !rs.AgedAt.After(bound) || !allowed.After(bound) {
		t.Errorf("danehook called the staged record aged at %s (status answered at %s), not after %s: 2 x TTL after the last server can have begun serving it",
			clock(rs.AgedAt), clock(allowed), clock(bound))
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// clientKey returns the SPKI (hex SHA-256) of the key the ACME client will
// use at its next renewal: certbot's live privkey.pem, lego's <name>.key.
func (w *world) clientKey() string {
	_, key, _ := w.files()
	return keyFileSPKI(w.t, key)
}

// keyFileSPKI returns the hex SHA-256 of the public key of the PKCS #8,
// SEC 1 or PKCS #1 private key in path.
func keyFileSPKI(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	pub, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("%s: key %T has no public key", path, key)
	}
	h, err := tlsa.KeyDigestHex(pub)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return h
}

// spkiCert is the cert of a key known only by its SPKI digest (hex).
func spkiCert(t *testing.T, spki string) cert {
	t.Helper()
	rec, err := tlsa.Parse("3 1 1 " + spki)
	if err != nil {
		t.Fatalf("staged SPKI %q: %v", spki, err)
	}
	return cert{Digest: spki, Record: rec}
}

// recordWatch asks both servers for the TLSA RRset every 25 ms, keeping
// every answer: the test's own measurement of propagation, independent of
// danehook's.
type recordWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	answers map[string][]watchAnswer // server -> answers in order
}

// watchAnswer is one answer of one server.
type watchAnswer struct {
	sent, received time.Time
	records        []string // presentation form
}

func (w *world) watchRecords() *recordWatch {
	ctx, cancel := context.WithCancel(context.Background())
	rw := &recordWatch{cancel: cancel, done: make(chan struct{}), answers: map[string][]watchAnswer{}}
	servers := w.servers()
	go func() {
		defer close(rw.done)
		for {
			for _, s := range servers {
				sent := time.Now()
				recs, err := tlsaAt(ctx, s, w.owner())
				if err != nil {
					continue // a stopped watch, or a server restarting: ask again
				}
				rw.mu.Lock()
				rw.answers[s] = append(rw.answers[s], watchAnswer{sent: sent, received: time.Now(), records: present(recs)})
				rw.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(25 * time.Millisecond):
			}
		}
	}()
	return rw
}

func (rw *recordWatch) stop() {
	rw.cancel()
	<-rw.done
}

// seen returns, per server that served rec, when the watch first received
// an answer with it and when it last asked and got an answer without it
// before that (zero when it never did): the server began serving rec in
// between.
func (rw *recordWatch) seen(rec tlsa.Record) (first, lastWithout map[string]time.Time) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	first, lastWithout = map[string]time.Time{}, map[string]time.Time{}
	for s, as := range rw.answers {
		for _, a := range as {
			if has(a.records, rec) {
				first[s] = a.received
				break
			}
			lastWithout[s] = a.sent
		}
	}
	return first, lastWithout
}
