package chain_test

import (
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/chain"
)

// permutations returns certs reversed plus n shuffles from a fixed seed, so
// failures reproduce.
func permutations(certs []*x509.Certificate, n int) [][]*x509.Certificate {
	r := rand.New(rand.NewPCG(7, uint64(len(certs))))
	out := [][]*x509.Certificate{slices.Clone(certs)}
	rev := slices.Clone(certs)
	slices.Reverse(rev)
	out = append(out, rev)
	for range n {
		p := slices.Clone(certs)
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		out = append(out, p)
	}
	return out
}

func TestOrder(t *testing.T) {
	h := newHierarchy("p256")
	// A deeper RSA hierarchy: root -> int1 -> int2 -> int3 -> leaf.
	rsaRoot := newRoot("Test RSA Root", "rsa")
	int1 := rsaRoot.issueCA("Test RSA Int 1", "rsa")
	int2 := int1.issueCA("Test RSA Int 2", "rsa")
	int3 := int2.issueCA("Test RSA Int 3", "p384")
	rsaLeaf := int3.issueLeaf("mx.example.test", "rsa")
	// Ed25519 throughout.
	edRoot := newRoot("Test Ed Root", "ed25519")
	edInt := edRoot.issueCA("Test Ed Int", "ed25519")
	edLeaf := edInt.issueLeaf("ed.example.test", "ed25519")
	// A leaf issued through the cross-signed path: old root -> cross(new root) -> YE2 -> leaf.
	ye2 := h.cross.issueCA("Test YE2", "p256")
	crossLeaf := ye2.issueLeaf("cross.example.test", "p384")
	selfLeaf := newRoot("self.example.test", "p256")

	tests := []struct {
		name string
		want []*x509.Certificate // leaf first
	}{
		{"self-signed leaf alone", []*x509.Certificate{selfLeaf.Cert}},
		{"leaf alone", []*x509.Certificate{h.leaf.Cert}},
		{"leaf and intermediate", []*x509.Certificate{h.leaf.Cert, h.inter.Cert}},
		{"leaf, intermediate, self-signed root", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.newRoot.Cert}},
		{"4 certificates with a cross-sign (Generation Y shape)", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert, h.oldRoot.Cert}},
		{"3 certificates ending in a cross-sign", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert}},
		{"leaf under the cross-signed certificate", []*x509.Certificate{crossLeaf.Cert, ye2.Cert, h.cross.Cert, h.oldRoot.Cert}},
		{"5 certificates, 3 intermediates", []*x509.Certificate{rsaLeaf.Cert, int3.Cert, int2.Cert, int1.Cert, rsaRoot.Cert}},
		{"4 certificates, no root", []*x509.Certificate{rsaLeaf.Cert, int3.Cert, int2.Cert, int1.Cert}},
		{"ed25519", []*x509.Certificate{edLeaf.Cert, edInt.Cert, edRoot.Cert}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, in := range permutations(tt.want, 8) {
				leaf, issuers, err := chain.Order(in)
				if err != nil {
					t.Fatalf("permutation %d %v: Order: %v", i, names(in), err)
				}
				got := append([]*x509.Certificate{leaf}, issuers...)
				if !sameCerts(got, tt.want) {
					t.Fatalf("permutation %d %v: got %v, want %v", i, names(in), names(got), names(tt.want))
				}
			}
		})
	}
}

func TestOrderDuplicates(t *testing.T) {
	h := newHierarchy("p256")
	leaf, issuers, err := chain.Order([]*x509.Certificate{h.inter.Cert, h.leaf.Cert, h.inter.Cert, h.leaf.Cert})
	if err != nil {
		t.Fatal(err)
	}
	if got := append([]*x509.Certificate{leaf}, issuers...); !sameCerts(got, []*x509.Certificate{h.leaf.Cert, h.inter.Cert}) {
		t.Errorf("got %v, want [leaf, intermediate] once each", names(got))
	}
}

func TestOrderErrors(t *testing.T) {
	h := newHierarchy("p256")
	other := newRoot("Test Other Root", "p256")
	otherLeaf := other.issueLeaf("other.example.test", "p256")
	// Same name as the intermediate, another key, signed by the same root:
	// the leaf's AKI rules it out.
	sameName := h.newRoot.imposter(h.inter, false)
	// Same name and key identifier, another key: only the signature tells.
	sameKID := h.newRoot.imposter(h.inter, true)
	sibling := h.inter.issueLeaf("sibling.example.test", "p256")

	tests := []struct {
		name   string
		certs  []*x509.Certificate
		wantIs error
		wantIn []string
	}{
		{"none", nil, chain.ErrNoCertificate, nil},
		{"unrelated root", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, other.Cert}, chain.ErrUnrelated,
			[]string{other.Cert.Subject.String(), h.leaf.Cert.Subject.String()}},
		{"another lineage's leaf", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.newRoot.Cert, otherLeaf.Cert}, chain.ErrUnrelated,
			[]string{otherLeaf.Cert.Subject.String()}},
		{"intermediate with the same name, other key", []*x509.Certificate{h.leaf.Cert, sameName.Cert, h.inter.Cert, h.newRoot.Cert}, chain.ErrUnrelated,
			[]string{"Test YE1"}},
		{"intermediate with the same name and key id, other key", []*x509.Certificate{sameKID.Cert, h.leaf.Cert, h.inter.Cert}, chain.ErrUnrelated,
			[]string{"Test YE1"}},
		{"two leaves of one intermediate", []*x509.Certificate{h.leaf.Cert, sibling.Cert, h.inter.Cert}, chain.ErrUnrelated,
			[]string{"sibling.example.test"}},
		// Both forms of the new root: a path can hold only one of them.
		{"self-signed and cross-signed root together", []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.newRoot.Cert, h.cross.Cert}, chain.ErrUnrelated,
			[]string{"Test Root YE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, issuers, err := chain.Order(tt.certs)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("got %v, %v, error %v; want an error matching %q", leaf, issuers, err, tt.wantIs)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("got error %q, want it to contain %q", err, s)
				}
			}
		})
	}
}

func BenchmarkOrder(b *testing.B) {
	h := newHierarchy("p256")
	in := []*x509.Certificate{h.oldRoot.Cert, h.cross.Cert, h.leaf.Cert, h.inter.Cert}
	for b.Loop() {
		if _, _, err := chain.Order(in); err != nil {
			b.Fatal(err)
		}
	}
}
