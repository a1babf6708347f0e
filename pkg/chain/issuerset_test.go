package chain_test

import (
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
)

// leChain is a Let's Encrypt-like hierarchy: one root, two RSA and two
// ECDSA intermediates.
type leSet struct {
	root            *ca
	r10, r11        *ca
	e5, e6          *ca
	dir             string
	rsaLeaf, ecLeaf *ca
}

func newLESet(t *testing.T) *leSet {
	t.Helper()
	s := &leSet{root: newRoot("ISRG Root X1", "rsa")}
	s.r10, s.r11 = s.root.issueCA("R10", "rsa"), s.root.issueCA("R11", "rsa")
	s.e5, s.e6 = s.root.issueCA("E5", "p384"), s.root.issueCA("E6", "p384")
	s.rsaLeaf = s.r10.issueLeaf("mail.example.test", "rsa")
	s.ecLeaf = s.e5.issueLeaf("mail.example.test", "p256")
	s.dir = t.TempDir()
	for name, c := range map[string]*ca{"r10.pem": s.r10, "r11.pem": s.r11, "e5.pem": s.e5, "e6.crt": s.e6} {
		writeFile(s.dir, name, pemCerts(c.Cert))
	}
	return s
}

func subjects(certs []*x509.Certificate) string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.CommonName)
	}
	return strings.Join(out, ",")
}

func TestIssuerSetMembersByKeyType(t *testing.T) {
	s := newLESet(t)
	// A directory and a single bundle file read the same set.
	bundle := writeFile(t.TempDir(), "le.pem", pemCerts(s.r10.Cert, s.r11.Cert, s.e5.Cert, s.e6.Cert))
	for _, src := range []string{s.dir, bundle} {
		set, err := chain.LoadIssuerSet(src)
		if err != nil {
			t.Fatalf("LoadIssuerSet(%s): %v", src, err)
		}
		now := time.Now()
		rsa := subjects(set.Members(chain.AlgorithmRSA, now))
		ec := subjects(set.Members(chain.AlgorithmECDSA, now))
		if !(strings.Contains(rsa, "R10") && strings.Contains(rsa, "R11") && !strings.Contains(rsa, "E5") && len(strings.Split(rsa, ",")) == 2) {
			t.Errorf("%s: RSA members = %s, want R10,R11", src, rsa)
		}
		if !(strings.Contains(ec, "E5") && strings.Contains(ec, "E6") && len(strings.Split(ec, ",")) == 2) {
			t.Errorf("%s: ECDSA members = %s, want E5,E6", src, ec)
		}
		if got := set.Members(chain.AlgorithmRSA, now.Add(200*24*time.Hour)); len(got) != 0 {
			t.Errorf("members after notAfter = %s, want none", subjects(got))
		}
		if !set.Contains(s.r11.Cert, chain.AlgorithmRSA, now) || set.Contains(s.r11.Cert, chain.AlgorithmECDSA, now) {
			t.Errorf("Contains(R11) wrong for RSA/ECDSA")
		}
	}
}

func TestIssuerSetRefusesLeavesRootsAndEmpty(t *testing.T) {
	s := newLESet(t)
	dir := t.TempDir()
	tests := []struct {
		name, file string
		want       string
	}{
		{"leaf", writeFile(dir, "leaf.pem", pemCerts(s.rsaLeaf.Cert)), "is not a CA certificate"},
		{"root", writeFile(dir, "root.pem", pemCerts(s.r10.Cert, s.root.Cert)), "is a root (self-signed)"},
		{"empty", writeFile(dir, "empty.pem", []byte("not a certificate\n")), "empty.pem"},
		{"missing", filepath.Join(dir, "nope"), "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chain.LoadIssuerSet(tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadIssuerSet = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestIssuerSetStale(t *testing.T) {
	s := newLESet(t)
	now := time.Now()
	onlyR10 := writeFile(t.TempDir(), "r10.pem", pemCerts(s.r10.Cert))
	full, err := chain.LoadIssuerSet(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	small, err := chain.LoadIssuerSet(onlyR10)
	if err != nil {
		t.Fatal(err)
	}
	onR11 := &chain.Chain{Leaf: s.r11.issueLeaf("mail.example.test", "rsa").Cert, Issuers: []*x509.Certificate{s.r11.Cert}}
	onR10 := &chain.Chain{Leaf: s.rsaLeaf.Cert, Issuers: []*x509.Certificate{s.r10.Cert}}
	onE5 := &chain.Chain{Leaf: s.ecLeaf.Cert, Issuers: []*x509.Certificate{s.e5.Cert}}
	// An ECDSA leaf from an RSA intermediate (Pebble, R3 before 2024).
	crossType := &chain.Chain{Leaf: s.r10.issueLeaf("mail.example.test", "p256").Cert, Issuers: []*x509.Certificate{s.r10.Cert}}
	tests := []struct {
		name string
		set  *chain.IssuerSet
		c    *chain.Chain
		now  time.Time
		want []string // substrings, one per warning; nil = no warning
	}{
		{"member", full, onR11, now, nil},
		{"ecdsa member", full, onE5, now, nil},
		{"issuer not a member", small, onR11, now, []string{`issued by "CN=R11`}},
		{"no member of the key type", small, onE5, now, []string{"no ECDSA intermediate", `issued by "CN=E5`}},
		{"issuer of another key type", full, crossType, now, []string{"has a key of type RSA"}},
		{"member expires soon", small, onR10, now.Add(75 * 24 * time.Hour), []string{"expires on"}},
		{"member expired", small, onR10, now.Add(100 * 24 * time.Hour), []string{"no RSA intermediate", "issued by", "expired on"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.set.Stale(tt.c, tt.now)
			if len(got) != len(tt.want) {
				t.Fatalf("Stale = %q, want %d warning(s) containing %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestAppendTAIssuerSetTakesTheIssuer(t *testing.T) {
	s := newLESet(t)
	c := &chain.Chain{Leaf: s.rsaLeaf.Cert, Issuers: []*x509.Certificate{s.r10.Cert}}
	if err := c.AppendTA(chain.TAIssuerSet, nil); err != nil || c.TA != s.r10.Cert {
		t.Fatalf("AppendTA(issuer-set) = %v, TA %v; want R10", err, c.TA)
	}
}
