package deploy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Guardrails a mail operator expects before a chain is published or
// installed.
var (
	// ErrUntrusted: the chain's issuer is in neither the system trust
	// store nor ca_file (a staging or test CA) and the lineage does not
	// say allow_untrusted = true.
	ErrUntrusted = errors.New("certificate issuer is not trusted")
	// ErrPostfixNotReading: Postfix is not configured to read the lineage's
	// chain_file, so installing it would change nothing Postfix serves (and
	// whatever Postfix reads instead is not protected by danehook).
	ErrPostfixNotReading = errors.New("postfix does not read the lineage's chain file")
	// ErrUnsigned: require_dnssec is set and the zone is not signed (or,
	// with a provider resolver configured, not validated: no DS, no AD
	// bit), so senders would ignore its TLSA records.
	ErrUnsigned = errors.New("zone is not DNSSEC-signed")
)

// trusted checks that c's leaf chains, through c's issuers, to a root of
// the system trust store or of l's ca_file, unless l.AllowUntrusted.
// Errors wrap ErrUntrusted and name the leaf and the fix.
func trusted(l *config.Lineage, c *chain.Chain) error {
	if l.AllowUntrusted {
		return nil
	}
	pool := x509.NewCertPool()
	if sys, err := chain.LoadRootStore(); err == nil {
		for _, r := range sys.Certificates() {
			pool.AddCert(r)
		}
	}
	if l.CAFile != "" {
		extra, err := chain.LoadRootStore(l.CAFile)
		if err != nil {
			return fmt.Errorf("lineage %q: ca_file: %w", l.Name, err)
		}
		for _, r := range extra.Certificates() {
			pool.AddCert(r)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range c.Issuers {
		inter.AddCert(c)
	}
	if c.TA != nil {
		inter.AddCert(c.TA)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("lineage %q: %w: %s (issuer %s) does not chain to the system trust store or ca_file: %v; a staging or test CA? set allow_untrusted = true in [lineage.%s], or ca_file to its root",
			l.Name, ErrUntrusted, describeLeaf(c), c.Leaf.Issuer, err, l.Name)
	}
	return nil
}

// dropUntrusted applies trusted to the chains of every lineage's view
// that are not served yet and that no hook checked: what the ACME client
// holds on disk (Source, read by the timer, dane-reload and publish from
// certbot_lineage, lego_cert, …) and a recorded pending switch (checked
// when it was recorded, but allow_untrusted or ca_file may have changed
// since). A chain refused is dropped from the view, so that this run
// neither wants, publishes nor installs its records; a chain whose leaf is
// the installed one is served already and stays. It returns the refusals
// by lineage name (each wrapping ErrUntrusted, see trusted), empty when
// none.
func (e *Engine) dropUntrusted(s *snapshot) map[string]error {
	out := map[string]error{}
	for _, lv := range s.Lineages {
		if lv.Err != nil || lv.L.AllowUntrusted {
			continue
		}
		var refused []*chain.Chain
		for _, p := range []**chain.Chain{&lv.Source, &lv.Pending} {
			c := *p
			if c == nil || c.Leaf == nil || (lv.Installed != nil && lv.Installed.Leaf != nil && lv.Installed.Leaf.Equal(c.Leaf)) {
				continue
			}
			err := trusted(lv.L, c)
			if err == nil {
				continue
			}
			*p = nil
			if !slices.ContainsFunc(refused, func(x *chain.Chain) bool { return x.Leaf.Equal(c.Leaf) }) {
				out[lv.L.Name] = errors.Join(out[lv.L.Name], err)
				refused = append(refused, c)
			}
		}
	}
	return out
}

// joinByName joins errs in the order of their names.
func joinByName(errs map[string]error) error {
	names := slices.Sorted(maps.Keys(errs))
	all := make([]error, 0, len(names))
	for _, n := range names {
		all = append(all, errs[n])
	}
	return errors.Join(all...)
}

// postfixReads checks that every smtpd service of Postfix that offers TLS
// reads exactly the lineages' chain files (postfix.Config.Check: main.cf,
// master.cf -o overrides, legacy cert/key parameters). It returns nil when
// the configuration could not be read (the run reports that separately)
// and otherwise an error wrapping ErrPostfixNotReading and the
// *postfix.NotServedError, whose hint is the exact postconf line.
func (e *Engine) postfixReads(s *snapshot, l *config.Lineage) error {
	if !s.PostfixRead || s.PostfixErr != nil || s.Postfix == nil {
		return nil
	}
	var want []string
	for _, name := range e.Config.LineageNames() {
		if lv := s.lineage(name); lv != nil && lv.NotIssued {
			continue // no chain file to read before the first issuance
		}
		if f := e.Config.Lineages[name].ChainFile; !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	if err := s.Postfix.Check(want); err != nil {
		return fmt.Errorf("lineage %q: %w (Postfix would serve a chain danehook does not protect): %w", l.Name, ErrPostfixNotReading, err)
	}
	return nil
}

// postfixForeign checks, on every run (issue 9 item 5), that no smtpd
// service of Postfix that offers TLS reads a file that exists and is not a
// configured lineage's chain_file: certbot's live/ files, Debian's
// ssl-cert-snakeoil, a copy of an old chain. Postfix then serves a chain
// danehook does not protect: the ACME client replaces those files at a
// renewal, and the next smtpd start presents a key no aged record
// matches. Files that do not exist are not judged here (Postfix serves no
// chain from them: the first issuance, postfixNotYet), nor are lineages
// not issued yet.
//
// It returns nil when Postfix's configuration was not read, when it names
// no such file, or when every lineage is not issued yet; otherwise the
// error of postfixReads for the issued lineages (wrapping
// ErrPostfixNotReading and the *postfix.NotServedError that names each
// service, the parameter and where it is set, with the postconf line as
// its hint), wrapped in notYetInstalled when a lineage's chain file does
// not exist yet (its hint then ends in `danectl tick`, not in a reload).
func (e *Engine) postfixForeign(s *snapshot) error {
	if !s.PostfixRead || s.Postfix == nil {
		return nil
	}
	var ours []string
	for _, name := range e.Config.LineageNames() {
		ours = append(ours, canonFile(e.Config.Lineages[name].ChainFile))
	}
	var foreign []string
	for _, svc := range s.Postfix.Services {
		if !svc.Offers() {
			continue
		}
		for _, f := range svc.Files() {
			if _, err := os.Stat(f); err != nil || slices.Contains(ours, canonFile(f)) || slices.Contains(foreign, f) {
				continue
			}
			foreign = append(foreign, f)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	var names, want []string
	installed := true
	for _, name := range e.Config.LineageNames() {
		lv := s.lineage(name)
		if lv == nil || lv.NotIssued {
			continue
		}
		names = append(names, fmt.Sprintf("%q", name))
		if f := lv.L.ChainFile; !slices.Contains(want, f) {
			want = append(want, f)
		}
		installed = installed && lv.Installed != nil
	}
	if len(want) == 0 {
		return nil
	}
	err := s.Postfix.Check(want)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("lineage %s: %w: Postfix serves %s, which danehook does not protect (the ACME client replaces such files at a renewal, and the next smtpd start would present a key no aged TLSA record matches); nothing is installed, switched or removed until every smtpd service reads the chain file: %w",
		strings.Join(names, ", "), ErrPostfixNotReading, strings.Join(foreign, ", "), err)
	if !installed {
		return &notYetInstalled{err: err, waiting: true}
	}
	return err
}

// switchesSafe sets the hint of err (postfixForeign's) for runs in which
// every switch onto a first chain file is safe now, or in which first
// records are held (firstRecordsHeld: they would never age while Postfix
// reads the other files): the postconf line and `danectl tick` may run at
// once.
func switchesSafe(err error) error {
	var n *notYetInstalled
	if errors.As(err, &n) {
		n.waiting = false
	}
	return err
}

// canonFile is path cleaned, with symbolic links resolved when it exists.
func canonFile(path string) string {
	path = filepath.Clean(path)
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// postfixNotYet says, for a lineage whose chain file Postfix does not read
// (err from postfixReads), whether that is the state of a first issuance
// that needs no refusal: Postfix serves no chain at all (no smtpd service
// offers TLS, or the files it names do not exist), so installing the
// lineage's chain file changes nothing any sender sees and no chain that
// danehook does not protect is served. It returns the notice to print
// (the file and the postconf line that makes Postfix read it). When
// Postfix serves some other chain it returns false: ErrPostfixNotReading
// stands.
func postfixNotYet(s *snapshot, l *config.Lineage, err error) (string, bool) {
	if err == nil || !s.PostfixRead || s.PostfixErr != nil || len(s.PostfixChains) > 0 {
		return "", false
	}
	hint := ""
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		hint = h.Hint()
	}
	return fmt.Sprintf("lineage %q: the chain file %s is installed, and Postfix does not read it yet (it serves no TLS chain now): %s", l.Name, l.ChainFile, hint), true
}

// notYetInstalled wraps the ErrPostfixNotReading of a lineage whose chain
// file does not exist yet (its first switch) while Postfix serves another
// chain: its hint is the postconf line followed by `danectl tick`, not by
// `postfix reload`, which would make Postfix read a file that is not there
// yet.
//
// With waiting set (the refusal of a run that does not switch, whose
// switch may not be safe yet) the hint says to run the line once `danectl
// status` shows the switch safe.
type notYetInstalled struct {
	err     error
	waiting bool
}

func (e *notYetInstalled) Error() string { return e.err.Error() }
func (e *notYetInstalled) Unwrap() error { return e.err }

// Hint returns "run: postconf -e '…' && danectl tick (…)", or with waiting
// "once 'danectl status' shows the switch safe, run: …".
func (e *notYetInstalled) Hint() string {
	var nse *postfix.NotServedError
	if !errors.As(e.err, &nse) || nse.Fix == "" {
		return ""
	}
	if e.waiting {
		return "once 'danectl status' shows the switch safe (its records aged), run: " + nse.Fix + " && danectl tick (tick installs the chain file and reloads Postfix; Postfix pointed at a chain file that does not exist yet would offer no STARTTLS)"
	}
	return "run: " + nse.Fix + " && danectl tick (tick installs the chain file, whose records are aged, and reloads Postfix; a reload before the file exists would leave Postfix without STARTTLS)"
}

// refuseFirst returns err (from postfixReads) for a lineage that has no
// chain file yet, with notYetInstalled's hint.
func refuseFirst(lv *lineageView, err error) error {
	if lv.Installed != nil {
		return err
	}
	return &notYetInstalled{err: err}
}

// requireDNSSEC checks the zones of lineages with require_dnssec = true.
func (e *Engine) requireDNSSEC(ctx context.Context, s *snapshot, names ...string) error {
	checked := map[string]bool{}
	for _, ov := range s.Owners {
		if !ov.RequireDNSSEC || ov.Err != nil || checked[ov.Zone] {
			continue
		}
		if len(names) > 0 && !anyIn(ov.Lineages, names) {
			continue
		}
		checked[ov.Zone] = true
		ck := newChecker(e.Config.Providers[ov.Provider], ov.TTL, true)
		// With RequireDNSSEC the checker itself refuses an unsigned (or,
		// with a resolver, unvalidated) zone: that answer is the
		// guardrail's refusal, not a DNS failure.
		sec, err := ck.DNSSEC(ctx, ov.Zone)
		switch {
		case errors.Is(err, propagate.ErrUnsigned) || (err == nil && !sec.Signed):
			return fmt.Errorf("zone %q (lineages %s): %w: require_dnssec = true, and senders ignore TLSA records in unsigned zones (RFC 7672 §2.2): %s",
				ov.Zone, strings.Join(ov.Lineages, ", "), ErrUnsigned, sec.Explanation)
		case errors.Is(err, propagate.ErrInsecure):
			return fmt.Errorf("zone %q (lineages %s): %w: require_dnssec = true: %s",
				ov.Zone, strings.Join(ov.Lineages, ", "), ErrUnsigned, sec.Warning)
		case err != nil:
			return fmt.Errorf("zone %q: %w", ov.Zone, err)
		}
	}
	return nil
}

func anyIn(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// firstRecordsHeld says why the additions at ov must wait, or "" when they
// may go. It only ever holds the first records at an owner: one at which no
// server (and not the provider) serves a TLSA record. A DANE sender (RFC
// 7672 §2.2) that finds an owner's first TLSA RRset requires STARTTLS and a
// chain that matches it, where before, with no TLSA RRset at all, it
// delivered with opportunistic TLS; so publishing them while Postfix
// offers no STARTTLS, or serves another chain (Debian's snakeoil), defers
// every DANE sender's mail until Postfix is changed. The first records go
// once what Postfix is configured to serve would match them: every smtpd
// service that offers TLS reads a lineage's chain file (installed in this
// run or later), or files whose chain they match (certbot's live/ files of
// the same key), or files that do not exist yet. "" also when Postfix's
// configuration was not read (danectl publish): nothing tells.
func (e *Engine) firstRecordsHeld(s *snapshot, ov *ownerView, add []dnsupdate.Change) string {
	if len(add) == 0 || !s.PostfixRead || s.PostfixErr != nil || s.Postfix == nil || len(ov.observed()) > 0 {
		return ""
	}
	var recs []tlsa.Record
	for _, c := range add {
		recs = append(recs, c.Record)
	}
	sf := e.servedFiles(s)
	// The services that answer at this owner: those listening on its port,
	// or on the port of an endpoint of its lineages (the address danehook
	// checks, which may differ from the port published, as behind NAT),
	// or whose port cannot be told.
	port, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(ov.Owner, ".", 2)[0], "_"))
	ports := []int{port}
	for _, name := range ov.Lineages {
		if l := e.Config.Lineages[name]; l != nil {
			for _, ep := range l.Endpoints {
				if _, ps, err := net.SplitHostPort(ep); err == nil {
					if n, err := strconv.Atoi(ps); err == nil {
						ports = append(ports, n)
					}
				}
			}
		}
	}
	offers := false
	for i := range s.Postfix.Services {
		svc := &s.Postfix.Services[i]
		if p, known := servicePort(svc.Service); known && !slices.Contains(ports, p) || !svc.Offers() {
			continue // another port's service, or one without TLS
		}
		offers = true
		for _, f := range svc.Files() {
			certs, foreign := sf.certs(f)
			if !foreign || len(certs) == 0 {
				continue // ours, missing, or a key file (smtpd_tls_chain_files = key, cert, …)
			}
			if !coveredAt(ov, certs, recs, s.Now) {
				return fmt.Sprintf("Postfix service %s serves %s (%s), which the first TLSA records at %s would not match: a DANE sender would defer mail to %s until Postfix serves the lineage's chain file (they are published by the first run after that)",
					svc.Service, f, certs[0].Subject, ov.Owner, ov.Host)
			}
		}
	}
	if !offers {
		return fmt.Sprintf("no smtpd service of Postfix on port %d offers STARTTLS: with its first TLSA records published, a DANE sender would defer mail to %s (RFC 7672 §2.2); they are published by the first run once Postfix offers TLS with the lineage's chain file", port, ov.Host)
	}
	return ""
}

// servedFiles caches, for one run, what firstRecordsHeld needs of the
// files Postfix reads: it is asked once per owner without records.
type servedFiles struct {
	ours  map[string]bool                // the lineages' chain files, canonical
	files map[string][]*x509.Certificate // other files read: their certificates
}

func (e *Engine) servedFiles(s *snapshot) *servedFiles {
	if s.served == nil {
		sf := &servedFiles{ours: map[string]bool{}, files: map[string][]*x509.Certificate{}}
		for _, name := range e.Config.LineageNames() {
			sf.ours[canonFile(e.Config.Lineages[name].ChainFile)] = true
		}
		s.served = sf
	}
	return s.served
}

// certs returns the certificates of f, read once, and whether f is a file
// that exists and is not a lineage's chain file.
func (sf *servedFiles) certs(f string) ([]*x509.Certificate, bool) {
	if certs, ok := sf.files[f]; ok {
		return certs, certs != nil
	}
	var certs []*x509.Certificate
	if !sf.ours[canonFile(f)] {
		if b, err := os.ReadFile(f); err == nil {
			certs = certsOf(b)
			if certs == nil {
				certs = []*x509.Certificate{} // exists: a key file
			}
		}
	}
	sf.files[f] = certs
	return certs, certs != nil
}

// servicePort returns the TCP port of a master.cf service ("smtp/inet",
// "127.0.0.1:2525/inet", "submission/inet"), known false for a service
// whose port this cannot tell: not inet (smtpd/pass behind postscreen
// serves whatever port postscreen listens on), or a service name other
// than smtp (25), submission (587), smtps and submissions (465, RFC 8314).
func servicePort(service string) (int, bool) {
	name, typ, _ := strings.Cut(service, "/")
	if typ != "inet" {
		return 0, false
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, true
	}
	switch name {
	case "smtp":
		return 25, true
	case "submission":
		return 587, true
	case "smtps", "submissions":
		return 465, true
	}
	return 0, false
}

// heldFirstRefusal wraps postfixForeign's refusal of a run that held an
// owner's first TLSA records (firstRecordsHeld): they never age while
// Postfix serves the other chain, so the operator need not wait for
// anything; the first chain file is installed (nothing reads it yet), and
// the hint is the postconf line, a reload (Postfix then serves the chain
// file, with no TLSA record yet: senders deliver without DANE), then
// danectl tick, which publishes the first records.
func heldFirstRefusal(err error) error {
	var n *notYetInstalled
	if errors.As(err, &n) {
		err = n.err
	}
	return &heldFirst{err: err}
}

type heldFirst struct{ err error }

func (e *heldFirst) Error() string { return e.err.Error() }
func (e *heldFirst) Unwrap() error { return e.err }

// Hint returns "run: postconf … && postfix reload && danectl tick (…)".
func (e *heldFirst) Hint() string {
	var nse *postfix.NotServedError
	if !errors.As(e.err, &nse) {
		return ""
	}
	if nse.Fix == "" {
		return nse.Hint() + "; then run danectl tick (it publishes the first TLSA records once Postfix serves the chain file)"
	}
	return nse.Hint() + " && danectl tick (the chain file is installed; the first TLSA records are not published while Postfix serves a chain they would not match, and tick publishes them once it serves the chain file)"
}

// anyHeldFirst reports whether a plan of plans holds its first records
// (OwnerPlan.HeldAdditions).
func anyHeldFirst(plans []*OwnerPlan) bool {
	for _, p := range plans {
		if len(p.HeldAdditions) > 0 {
			return true
		}
	}
	return false
}

// heldFirstAt reports whether a plan of plans at one of lv's owners holds
// its first records: only then is lv's first chain file installed while
// Postfix reads other files (a lineage whose owners have records keeps its
// first chain pending: a service reading its missing chain file would
// serve it at once, unaged).
func heldFirstAt(plans []*OwnerPlan, lv *lineageView) bool {
	for _, p := range plans {
		if len(p.HeldAdditions) == 0 {
			continue
		}
		for _, r := range lv.Refs {
			if r.Owner == p.Owner {
				return true
			}
		}
	}
	return false
}

// certsOf returns the certificates of a PEM file's content, in order
// (other blocks skipped).
func certsOf(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
