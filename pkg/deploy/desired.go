package deploy

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/danehook/danehook/pkg/acmesh"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dehydrated"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// spkiHex returns the hex SHA-256 of the chain's key SubjectPublicKeyInfo
// (the 3 1 1 association data).
func spkiHex(c *chain.Chain) string {
	if c == nil || c.Leaf == nil {
		return ""
	}
	return tlsa.SPKIDigestHex(c.Leaf)
}

// setTA sets the chain's trust anchor as l's ta setting asks.
func (e *Engine) setTA(l *config.Lineage, c *chain.Chain) error {
	if l.TA == "" {
		return nil
	}
	var roots *chain.RootStore
	if l.TA == chain.TARoot {
		var err error
		var files []string
		if l.CAFile != "" {
			files = append(files, l.CAFile)
		}
		if roots, err = chain.LoadRootStore(files...); err != nil {
			return fmt.Errorf("lineage %q: %w", l.Name, err)
		}
	}
	if err := c.AppendTA(l.TA, roots); err != nil {
		return fmt.Errorf("lineage %q: trust anchor: %w (set ca_file to a file holding it)", l.Name, err)
	}
	return nil
}

// loadSource reads the ACME client's current files for l, or returns nil
// when none are configured.
func (e *Engine) loadSource(l *config.Lineage, st *LineageState) (*chain.Chain, error) {
	var (
		c   *chain.Chain
		err error
	)
	switch {
	case l.CertbotLineage != "":
		c, err = chain.FromCertbotLineage(l.CertbotLineage)
	case l.LegoCert != "" || l.LegoKey != "":
		c, err = chain.FromLego(l.LegoCert, l.LegoKey, "")
	case l.DehydratedCert != "":
		d := l.DehydratedCert
		c, err = chain.Load(filepath.Join(d, dehydrated.KeyFile), filepath.Join(d, dehydrated.CertFile), filepath.Join(d, dehydrated.ChainFile))
	case l.AcmeShDir != "":
		a := acmesh.LayoutOf(l.AcmeShDir)
		c, err = chain.Load(a.Key, a.Cert, a.CACert)
	default:
		return nil, nil
	}
	if km := (*chain.KeyMismatchError)(nil); errors.As(err, &km) {
		// A committed rotation put the staged key in the client's key file
		// ahead of the renewal that will certify it — certbot's at
		// dane-prerenew or commit --now, lego's at commit, which may be days
		// before the renewal: the staged key's record covers that key, the
		// served chain the old certificate.
		if st != nil && st.Next != nil && hex.EncodeToString(km.KeySPKI[:]) == st.Next.SPKI {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lineage %q: ACME client files: %w", l.Name, err)
	}
	return c, e.setTA(l, c)
}

// containsUsage reports whether l wants records of usage u ("3 1 1").
func containsUsage(l *config.Lineage, u string) bool {
	for _, x := range l.Usages {
		if x == u {
			return true
		}
	}
	return false
}

// eeRecord returns the DANE-EE 3 1 1 record of c's key (RFC 7671 §5.1).
func eeRecord(c *chain.Chain) (tlsa.Record, error) {
	return tlsa.FromSPKI(c.Leaf.RawSubjectPublicKeyInfo, tlsa.UsageDANEEE, tlsa.MatchSHA256)
}

// nextRecord returns the 3 1 1 record of a staged key.
func nextRecord(n *NextKey) (tlsa.Record, error) {
	return n.Record()
}

// pendingPath is where the pending chain of lineage is kept.
func (e *Engine) pendingPath(lineage string) string {
	return filepath.Join(e.Store.Dir, lineage+".pending.pem")
}

// records returns the records l wants for chain c: 3 1 1 of its key and,
// when configured and c carries one, 2 1 1 of its trust anchor.
func records(l *config.Lineage, c *chain.Chain) ([]tlsa.Record, error) {
	var out []tlsa.Record
	for _, u := range l.Usages {
		var (
			r   tlsa.Record
			err error
		)
		switch u {
		case "3 1 1":
			r, err = eeRecord(c)
		case "2 1 1":
			if c.TA == nil {
				// A chain without its trust anchor (an installed file from
				// before ta was set) needs no 2 1 1; a chain about to be
				// installed always has one (setTA fails otherwise).
				continue
			}
			r, err = tlsa.FromCertificate(c.TA, tlsa.UsageDANETA, tlsa.SelectorSPKI, tlsa.MatchSHA256)
		default:
			return nil, fmt.Errorf("lineage %q: unsupported usage %q", l.Name, u)
		}
		if err != nil {
			return nil, fmt.Errorf("lineage %q: %w", l.Name, err)
		}
		out = appendUnique(out, r)
	}
	return out, nil
}

func appendUnique(set []tlsa.Record, recs ...tlsa.Record) []tlsa.Record {
	for _, r := range recs {
		if !containsRecord(set, r) {
			set = append(set, r)
		}
	}
	return set
}

func containsRecord(set []tlsa.Record, r tlsa.Record) bool {
	for _, s := range set {
		if s.Equal(r) {
			return true
		}
	}
	return false
}

// presentAlg makes a STARTTLS handshake to addr for host and returns the
// chain presented (leaf first).
// presentAlg makes a STARTTLS handshake to addr for host that only a
// certificate of alg (chain.AlgorithmRSA, chain.AlgorithmECDSA) can answer
// (postfix.Present), and returns the chain presented, leaf first. Another
// algorithm (Ed25519) or "" is asked with an unrestricted handshake.
func presentAlg(ctx context.Context, addr, host, alg string) ([]*x509.Certificate, error) {
	switch alg {
	case chain.AlgorithmRSA:
		return postfix.Present(ctx, addr, host, postfix.RSA)
	case chain.AlgorithmECDSA:
		return postfix.Present(ctx, addr, host, postfix.ECDSA)
	}
	certs, _, err := postfix.Handshake(ctx, addr, host)
	return certs, err
}
