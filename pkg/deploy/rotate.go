package deploy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/propagate"
)

// Errors of the rotation steps; callers branch on them for exit codes.
var (
	// ErrNotAged: the staged key's records are not aged yet, so committing
	// could make Postfix serve a key senders cannot match.
	ErrNotAged = errors.New("staged key's records are not aged")
	// ErrNoStagedKey: the lineage has no staged key.
	ErrNoStagedKey = errors.New("no staged key")
	// ErrCommitted: the rotation is committed and can no longer be aborted.
	ErrCommitted = errors.New("rotation already committed")
)

// KeySpec says which key `rotate stage` makes.
type KeySpec struct {
	// Type is "ecdsa" or "rsa"; empty means the current key's type.
	Type string
	// Bits is the RSA modulus size in bits (default 2048, or the current
	// key's size).
	Bits int
	// Curve is "P-256" or "P-384" for ECDSA (default the current key's, or
	// P-256).
	Curve string
}

// generate makes a key as spec says, defaulting to the shape of cur.
func (spec KeySpec) generate(cur crypto.PublicKey) (crypto.Signer, string, error) {
	typ := spec.Type
	if typ == "" {
		switch cur.(type) {
		case *rsa.PublicKey:
			typ = "rsa"
		default:
			typ = "ecdsa"
		}
	}
	switch typ {
	case "rsa":
		bits := spec.Bits
		if bits == 0 {
			bits = 2048
			if k, ok := cur.(*rsa.PublicKey); ok {
				bits = k.N.BitLen()
			}
		}
		if bits < 2048 || bits > 8192 {
			return nil, "", fmt.Errorf("RSA key size %d bits: use 2048 to 8192", bits)
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		return k, fmt.Sprintf("rsa-%d", bits), err
	case "ecdsa":
		curve := spec.Curve
		if curve == "" {
			curve = "P-256"
			if k, ok := cur.(*ecdsa.PublicKey); ok {
				curve = k.Curve.Params().Name
			}
		}
		var c elliptic.Curve
		switch curve {
		case "P-256":
			c = elliptic.P256()
		case "P-384":
			c = elliptic.P384()
		default:
			return nil, "", fmt.Errorf("curve %q: use P-256 or P-384", curve)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		return k, "ecdsa-" + strings.ToLower(strings.ReplaceAll(curve, "-", "")), err
	}
	return nil, "", fmt.Errorf("key type %q: use ecdsa or rsa", typ)
}

// nextKeyPath is where the staged key of lineage is kept.
func (e *Engine) nextKeyPath(lineage string) string {
	return filepath.Join(e.Store.Dir, lineage+".next.key")
}

// readKey reads the single private key in path.
func readKey(path string) (crypto.Signer, error) {
	b, err := chain.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b.PrivateKeys) != 1 {
		return nil, fmt.Errorf("key file %q: want one private key, found %d", path, len(b.PrivateKeys))
	}
	return b.PrivateKeys[0], nil
}

func keySPKI(k crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// Stage is `danectl rotate stage`: it makes the lineage's next key (mode
// 0600, in the state directory), records it, and publishes its 3 1 1
// record beside the current key's at every owner of the lineage. A key
// already staged is kept, never overwritten: running Stage again only
// publishes what is missing (after a crash, for example).
func (e *Engine) Stage(ctx context.Context, lineage string, spec KeySpec) (*NextKey, []*OwnerPlan, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, nil, err
	}
	defer lk.Unlock()
	return e.stage(ctx, l, spec)
}

// stage is Stage for a caller that holds the lock.
func (e *Engine) stage(ctx context.Context, l *config.Lineage, spec KeySpec) (*NextKey, []*OwnerPlan, error) {
	st, err := e.loadLineage(l.Name)
	if err != nil {
		return nil, nil, err
	}
	if st.Next == nil {
		if st.Next, err = e.makeNextKey(l, spec); err != nil {
			return nil, nil, err
		}
		if err := e.Store.Save(l.Name, st); err != nil {
			return nil, nil, err
		}
	}
	crashpoint("stage:recorded")
	plans, err := e.publishFor(ctx, l)
	return st.Next, plans, err
}

// publishFor observes and sends the additions at l's owners (callers hold
// the lock).
func (e *Engine) publishFor(ctx context.Context, l *config.Lineage) ([]*OwnerPlan, error) {
	s, err := e.observe(ctx, observeOpts{})
	if err != nil {
		return nil, err
	}
	lv := s.lineage(l.Name)
	if lv.Err != nil {
		return nil, lv.Err
	}
	want, err := e.wanted(s, e.candidates(s))
	if err != nil {
		return nil, err
	}
	plans, err := e.addPlans(s, want, lv.Refs)
	if err != nil {
		return plans, errors.Join(err, e.save(s))
	}
	if err := e.apply(ctx, s, plans); err != nil {
		return plans, errors.Join(err, e.save(s))
	}
	return plans, e.save(s)
}

// makeNextKey writes a new key for l (or adopts one a crashed Stage wrote
// before recording it) and returns its record.
func (e *Engine) makeNextKey(l *config.Lineage, spec KeySpec) (*NextKey, error) {
	path := e.nextKeyPath(l.Name)
	k, err := readKey(path)
	alg := ""
	switch {
	case err == nil:
		// Written by a Stage that crashed before recording it: adopt it.
		alg = "adopted"
	case errors.Is(err, fs.ErrNotExist):
		var cur crypto.PublicKey
		if served, _ := e.loadChain(l, l.ChainFile); served != nil {
			cur = served.Leaf.PublicKey
		}
		if k, alg, err = spec.generate(cur); err != nil {
			return nil, fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
		crashpoint("stage:key-written")
	default:
		return nil, fmt.Errorf("lineage %q: staged key: %w (move it aside to stage a new one)", l.Name, err)
	}
	spki, err := keySPKI(k)
	if err != nil {
		return nil, err
	}
	return &NextKey{File: path, SPKI: spki, Algorithm: alg, Staged: e.now()}, nil
}

// RotationStatus tells, for one lineage, whether its staged key's record is
// served everywhere and aged.
type RotationStatus struct {
	Lineage string   `json:"lineage"`
	Next    *NextKey `json:"next,omitempty"`
	// Owners holds, per owner, the staged record's status: which servers
	// serve it, first sightings, when it is aged, what blocks it.
	Owners []propagate.Status `json:"owners,omitempty"`
	// Observations are what every server of each owner serves.
	Observations []*propagate.Observation `json:"observations,omitempty"`
	// Aged is true when the record is aged at every owner.
	Aged bool `json:"aged"`
	// AgedAt is when the last owner becomes aged; zero while blocked.
	AgedAt time.Time `json:"aged_at,omitzero"`
	// Blocking names what keeps the commit from being allowed.
	Blocking []string `json:"blocking,omitempty"`
}

// RotationStatus observes every owner of the named lineages (all when
// empty) and reports their staged keys. It records first sightings.
func (e *Engine) RotationStatus(ctx context.Context, names ...string) ([]*RotationStatus, error) {
	ls, err := e.Config.Select(names...)
	if err != nil {
		return nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	var out []*RotationStatus
	for _, l := range ls {
		st, err := e.loadLineage(l.Name)
		if err != nil {
			return nil, err
		}
		rs, err := e.rotationStatus(ctx, l, st, dns)
		if err != nil {
			return out, err
		}
		out = append(out, rs)
	}
	return out, e.Store.Save(dnsDoc, dns)
}

func (e *Engine) rotationStatus(ctx context.Context, l *config.Lineage, st *LineageState, dns *DNSState) (*RotationStatus, error) {
	rs := &RotationStatus{Lineage: l.Name, Next: st.Next}
	if st.Next == nil {
		return rs, nil
	}
	rec, err := nextRecord(st.Next)
	if err != nil {
		return nil, err
	}
	s, err := e.observe(ctx, observeOpts{})
	if err != nil {
		return nil, err
	}
	*dns = *s.DNS
	lv := s.lineage(l.Name)
	rs.Aged = true
	known := true
	for _, r := range lv.Refs {
		ov := s.owner(r.Owner)
		if ov.Err != nil {
			rs.Aged, known = false, false
			rs.Blocking = append(rs.Blocking, fmt.Sprintf("%s: %v", r.Owner, ov.Err))
			continue
		}
		a := propagate.Age(ov.Obs, s.DNS.Seen, rec, s.Now)
		rs.Observations = append(rs.Observations, ov.Obs)
		rs.Owners = append(rs.Owners, a)
		if !a.Aged {
			rs.Aged = false
			for _, b := range a.Blocking {
				rs.Blocking = append(rs.Blocking, r.Owner+": "+b)
			}
			if a.AgedAt.IsZero() {
				known = false
			} else {
				rs.Blocking = append(rs.Blocking, fmt.Sprintf("%s: aged at %s", r.Owner, a.AgedAt.UTC().Format(time.RFC3339)))
			}
		}
		rs.AgedAt = later(rs.AgedAt, a.AgedAt)
	}
	if !known {
		rs.AgedAt = time.Time{}
	}
	return rs, nil
}

// Commit is `danectl rotate commit`: refused (ErrNotAged, naming what
// blocks or when it becomes safe) unless the staged key's record is aged
// at every owner. It then records the commitment and makes the next
// renewal use the staged key: lego's key file (lego_key) is replaced now,
// because lego reads it before its pre hook; certbot's key is swapped by
// dane-prerenew right before the renewal (or now with swapNow, for
// `--now`), so the live directory never holds a key without its
// certificate for long. The deploy and reload steps then install, verify,
// and remove the old record.
func (e *Engine) Commit(ctx context.Context, lineage string, swapNow bool) (*RotationStatus, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	return e.commit(ctx, l, swapNow)
}

// commit is Commit for a caller that holds the lock.
func (e *Engine) commit(ctx context.Context, l *config.Lineage, swapNow bool) (*RotationStatus, error) {
	st, err := e.loadLineage(l.Name)
	if err != nil {
		return nil, err
	}
	if st.Next == nil {
		return nil, fmt.Errorf("lineage %q: %w: run 'danectl rotate stage %s' first", l.Name, ErrNoStagedKey, l.Name)
	}
	dns, err := e.loadDNS()
	if err != nil {
		return nil, err
	}
	rs, err := e.rotationStatus(ctx, l, st, dns)
	if err != nil {
		return nil, err
	}
	if err := e.Store.Save(dnsDoc, dns); err != nil {
		return rs, err
	}
	if !rs.Aged && st.Next.Committed.IsZero() {
		when := "unknown until every server serves it"
		if !rs.AgedAt.IsZero() {
			when = rs.AgedAt.UTC().Format(time.RFC3339)
		}
		return rs, fmt.Errorf("lineage %q: %w (safe at %s): %s", l.Name, ErrNotAged, when, strings.Join(rs.Blocking, "; "))
	}
	if st.Next.Committed.IsZero() {
		st.Next.Committed = e.now()
		if err := e.Store.Save(l.Name, st); err != nil {
			return rs, err
		}
	}
	crashpoint("commit:recorded")
	if swapNow || l.CertbotLineage == "" {
		if err := e.swapKey(l, st); err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// rotatePolicy applies rotate_every on tick (callers hold the lock): a
// lineage whose served key is older than rotate_every gets a staged key;
// a staged key whose records are aged is committed, so the next scheduled
// renewal uses it. It returns one line per action.
func (e *Engine) rotatePolicy(ctx context.Context) ([]string, error) {
	var done []string
	for _, name := range e.Config.LineageNames() {
		l := e.Config.Lineages[name]
		if l.RotateEvery <= 0 {
			continue
		}
		st, err := e.loadLineage(name)
		if err != nil {
			return done, err
		}
		switch {
		case st.Next == nil && !st.KeySince.IsZero() && e.now().Sub(st.KeySince) >= time.Duration(l.RotateEvery):
			n, _, err := e.stage(ctx, l, KeySpec{})
			if err != nil {
				return done, err
			}
			done = append(done, fmt.Sprintf("lineage %s: key older than rotate_every %s: staged 3 1 1 %s", name, l.RotateEvery, n.SPKI))
		case st.Next != nil && st.Next.Committed.IsZero():
			if _, err := e.commit(ctx, l, false); err != nil {
				if errors.Is(err, ErrNotAged) {
					continue
				}
				return done, err
			}
			done = append(done, fmt.Sprintf("lineage %s: staged key aged: committed; the next renewal uses it", name))
		}
	}
	return done, nil
}

// Abort is `danectl rotate abort`: it withdraws a staged key that is not
// committed, removing its records.
func (e *Engine) Abort(ctx context.Context, lineage string) ([]*OwnerPlan, error) {
	l, err := e.Config.Lineage(lineage)
	if err != nil {
		return nil, err
	}
	lk, err := e.lock()
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	st, err := e.loadLineage(l.Name)
	if err != nil {
		return nil, err
	}
	if st.Next == nil {
		return nil, fmt.Errorf("lineage %q: %w", l.Name, ErrNoStagedKey)
	}
	if !st.Next.Committed.IsZero() {
		return nil, fmt.Errorf("lineage %q: %w at %s: the next renewal uses the staged key; let it complete", l.Name, ErrCommitted, st.Next.Committed.UTC().Format(time.RFC3339))
	}
	file := st.Next.File
	withdrawn, _ := nextRecord(st.Next)
	st.Next = nil
	if err := e.Store.Save(l.Name, st); err != nil {
		return nil, err
	}
	os.Remove(file)
	// The staged key's records are removed like any other: once no chain
	// Postfix may serve relies on them and what it presents is verified.
	return e.removeUnneeded(ctx, withdrawn)
}

// swapKeys puts committed staged keys in place for the renewal about to
// run (dane-prerenew). Callers hold the lock.
func (e *Engine) swapKeys(ls []*config.Lineage) error {
	for _, l := range ls {
		st, err := e.loadLineage(l.Name)
		if err != nil {
			return err
		}
		if st.Next != nil && !st.Next.Committed.IsZero() && !st.Next.Swapped {
			if err := e.swapKey(l, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// swapKey makes the ACME client's key the staged key: certbot — a new
// archive/<name>/privkeyN.pem (N one past the highest version) and the
// live privkey.pem link repointed to it, as danebot does; lego — lego_key
// replaced atomically, and lego_csr, when set, made from it. Idempotent: a key file that already holds the staged
// key is left alone. It records Swapped in st.
func (e *Engine) swapKey(l *config.Lineage, st *LineageState) error {
	key, err := readKey(st.Next.File)
	if err != nil {
		return fmt.Errorf("lineage %q: staged key: %w", l.Name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	switch {
	case l.CertbotLineage != "":
		if err := swapCertbotKey(l.CertbotLineage, st.Next.SPKI, data); err != nil {
			return fmt.Errorf("lineage %q: %w", l.Name, err)
		}
	case l.LegoKey != "":
		if cur, err := readKey(l.LegoKey); err != nil || spkiOrEmpty(cur) != st.Next.SPKI {
			if err := atomicfile.Write(l.LegoKey, data, 0o600); err != nil {
				return fmt.Errorf("lineage %q: %w", l.Name, err)
			}
		}
		if l.LegoCSR != "" {
			// lego --csr reads the CSR before its pre hook too: make it
			// from the staged key now, or the renewal certifies the old key.
			if _, err := e.pinCSR(l, false, PinResult{Lineage: l.Name, File: l.LegoCSR}); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("lineage %q: neither certbot_lineage nor lego_key is set, so danehook cannot hand the staged key %s to the ACME client", l.Name, st.Next.File)
	}
	crashpoint("commit:swapped")
	st.Next.Swapped = true
	return e.Store.Save(l.Name, st)
}

func spkiOrEmpty(k crypto.Signer) string {
	s, _ := keySPKI(k)
	return s
}

var archiveName = regexp.MustCompile(`^(cert|chain|fullchain|privkey)(\d+)\.pem$`)

// swapCertbotKey writes data as the next privkey version of the certbot
// lineage at live and repoints live/privkey.pem to it.
func swapCertbotKey(live, spki string, data []byte) error {
	link := filepath.Join(live, "privkey.pem")
	if cur, err := readKey(link); err == nil && spkiOrEmpty(cur) == spki {
		return nil
	}
	target, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("certbot %s is not a symbolic link into the archive: %w", link, err)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(live, target)
	}
	archive := filepath.Dir(target)
	entries, err := os.ReadDir(archive)
	if err != nil {
		return fmt.Errorf("certbot archive: %w", err)
	}
	high := 0
	for _, en := range entries {
		if m := archiveName.FindStringSubmatch(en.Name()); m != nil {
			if n, _ := strconv.Atoi(m[2]); n > high {
				high = n
			}
		}
	}
	next := filepath.Join(archive, fmt.Sprintf("privkey%d.pem", high+1))
	if err := atomicfile.Write(next, data, 0o600); err != nil {
		return err
	}
	rel, err := filepath.Rel(live, next)
	if err != nil {
		rel = next
	}
	tmp := link + ".danehook-tmp"
	os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("certbot key link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certbot key link: %w", err)
	}
	return nil
}
