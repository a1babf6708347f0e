package chain_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/chain"
)

func TestAppendTA(t *testing.T) {
	h := newHierarchy("p256")
	other := newRoot("Test Other Root", "rsa")
	dir := t.TempDir()
	// A trust-store file as a distribution ships it: many roots, ours among them.
	storeFile := writeFile(dir, "ca-certificates.crt", pemCerts(other.Cert, h.newRoot.Cert, h.oldRoot.Cert))
	store, err := chain.LoadRootStore(storeFile)
	if err != nil {
		t.Fatal(err)
	}
	// An OpenSSL-style hashed directory holding only the old root.
	hashDir := filepath.Join(dir, "certs")
	writeFile(hashDir, "4042bcee.0", pemCerts(h.oldRoot.Cert))
	dirStore, err := chain.LoadRootStore(hashDir)
	if err != nil {
		t.Fatal(err)
	}
	// Roots that look like the old root but are not it.
	sameName := newRoot("Test Old Root X1", "rsa") // same subject, other key and key id
	sameKID := selfImposter(h.oldRoot)             // same subject and key id, other key

	base := []*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.cross.Cert}
	withRoot := append(append([]*x509.Certificate{}, base...), h.oldRoot.Cert)
	tests := []struct {
		name       string
		chain      []*x509.Certificate // leaf first
		mode       string
		roots      *chain.RootStore
		wantTA     *x509.Certificate
		wantServed []*x509.Certificate
		wantIs     error
		wantIn     []string
	}{
		{"none", base, chain.TANone, nil, nil, base, nil, nil},
		{"issuer", base, chain.TAIssuer, nil, h.inter.Cert, base, nil, nil},
		{"root from a trust-store file", base, chain.TARoot, store, h.oldRoot.Cert, withRoot, nil, nil},
		{"root from a hashed directory", base, chain.TARoot, dirStore, h.oldRoot.Cert, withRoot, nil, nil},
		{"root already at the end of the chain", withRoot, chain.TARoot, chain.NewRootStore(), h.oldRoot.Cert, withRoot, nil, nil},
		{"root above a 2-certificate chain", base[:2], chain.TARoot, store, h.newRoot.Cert,
			[]*x509.Certificate{h.leaf.Cert, h.inter.Cert, h.newRoot.Cert}, nil, nil},
		{"issuer missing", base[:1], chain.TAIssuer, nil, nil, base[:1], chain.ErrTANotFound,
			[]string{"Test YE1", "mail.example.test"}},
		{"root not in the store", base, chain.TARoot, chain.NewRootStore(other.Cert), nil, base, chain.ErrTANotFound,
			[]string{"Test Old Root X1", "ca_file", "Test Root YE"}},
		{"root with the same name, other key", base, chain.TARoot, chain.NewRootStore(sameName.Cert), nil, base, chain.ErrTANotFound,
			[]string{"Test Old Root X1"}},
		{"root with the same name and key id, other key", base, chain.TARoot, chain.NewRootStore(sameKID.Cert), nil, base, chain.ErrTANotFound,
			[]string{"Test Old Root X1"}},
		{"unknown mode", base, "leaf", nil, nil, base, nil, []string{`"leaf"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &chain.Chain{Key: h.leaf.Key, Leaf: tt.chain[0], Issuers: tt.chain[1:]}
			err := c.AppendTA(tt.mode, tt.roots)
			if wantErr := tt.wantIs != nil || len(tt.wantIn) > 0; wantErr {
				if err == nil || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
					t.Fatalf("got error %v, want one matching %v", err, tt.wantIs)
				}
				for _, s := range tt.wantIn {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("got error %q, want it to contain %q", err, s)
					}
				}
			} else if err != nil {
				t.Fatalf("AppendTA: %v", err)
			}
			if (c.TA == nil) != (tt.wantTA == nil) || c.TA != nil && !bytes.Equal(c.TA.Raw, tt.wantTA.Raw) {
				t.Errorf("got TA %v, want %v", c.TA, tt.wantTA)
			}
			if !sameCerts(c.Served(), tt.wantServed) {
				t.Errorf("got served %v, want %v", names(c.Served()), names(tt.wantServed))
			}
		})
	}
}

func TestAppendTAKeepsTAOnError(t *testing.T) {
	h := newHierarchy("p256")
	c := &chain.Chain{Key: h.leaf.Key, Leaf: h.leaf.Cert, Issuers: []*x509.Certificate{h.inter.Cert, h.cross.Cert}}
	if err := c.AppendTA(chain.TAIssuer, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendTA(chain.TARoot, chain.NewRootStore()); !errors.Is(err, chain.ErrTANotFound) {
		t.Fatalf("got %v, want ErrTANotFound", err)
	}
	if c.TA != h.inter.Cert {
		t.Errorf("got TA %v after a failed AppendTA, want the previous one", c.TA.Subject)
	}
}

func TestFindRootPrefersSelfSignedValid(t *testing.T) {
	h := newHierarchy("p256")
	// The new root also exists cross-signed: both verify the intermediate.
	got, err := chain.FindRoot(h.inter.Cert, chain.NewRootStore(h.cross.Cert, h.newRoot.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Raw, h.newRoot.Cert.Raw) {
		t.Errorf("got %q issued by %q, want the self-signed root", got.Subject, got.Issuer)
	}
	if got, err := chain.FindRoot(h.oldRoot.Cert, nil); err != nil || got != h.oldRoot.Cert {
		t.Errorf("FindRoot of a self-signed certificate: got %v, %v, want itself", got, err)
	}
}

func TestLoadRootStore(t *testing.T) {
	dir := t.TempDir()
	a, b := newRoot("Test Root A", "p256"), newRoot("Test Root B", "rsa")
	both := writeFile(dir, "both.pem", join([]byte("# a comment\n"), pemCerts(a.Cert, b.Cert, a.Cert)))
	trusted := writeFile(dir, "trusted.pem", bytes.ReplaceAll(pemCerts(b.Cert), []byte("CERTIFICATE"), []byte("TRUSTED CERTIFICATE")))
	empty := writeFile(dir, "empty.pem", []byte("nothing here\n"))
	broken := writeFile(dir, "broken.pem", []byte("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"))
	certDir := filepath.Join(dir, "certs")
	writeFile(certDir, "a.pem", pemCerts(a.Cert))
	writeFile(certDir, "README", []byte("not a certificate"))
	writeFile(certDir, "junk.crt", []byte("junk"))
	if err := os.Symlink("a.pem", filepath.Join(certDir, "0123abcd.0")); err != nil {
		t.Fatal(err)
	}
	emptyDir := filepath.Join(dir, "empty")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		files  []string
		want   int
		wantIs error
		wantIn string
	}{
		{"bundle with a duplicate", []string{both}, 2, nil, ""},
		{"TRUSTED CERTIFICATE block", []string{trusted}, 1, nil, ""},
		{"directory with links and junk", []string{certDir}, 1, nil, ""},
		{"file and directory", []string{both, certDir}, 2, nil, ""},
		{"missing file", []string{filepath.Join(dir, "nope.pem")}, 0, fs.ErrNotExist, "nope.pem"},
		{"file without certificates", []string{empty}, 0, chain.ErrNoCertificate, empty},
		{"broken certificate", []string{broken}, 0, nil, broken},
		{"empty directory", []string{emptyDir}, 0, chain.ErrNoCertificate, emptyDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := chain.LoadRootStore(tt.files...)
			if tt.wantIn != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantIn) || (tt.wantIs != nil && !errors.Is(err, tt.wantIs)) {
					t.Fatalf("got error %v, want one containing %q and matching %v", err, tt.wantIn, tt.wantIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != tt.want || len(s.Certificates()) != tt.want {
				t.Errorf("got %d certificates, want %d", s.Len(), tt.want)
			}
		})
	}
}

func TestLoadRootStoreEnvironment(t *testing.T) {
	dir := t.TempDir()
	h := newHierarchy("p256")
	file := writeFile(dir, "bundle.pem", pemCerts(h.oldRoot.Cert))
	certDir := filepath.Join(dir, "certs")
	writeFile(certDir, "new.pem", pemCerts(h.newRoot.Cert))

	t.Run("SSL_CERT_FILE", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", file)
		t.Setenv("SSL_CERT_DIR", "")
		s, err := chain.LoadRootStore()
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != 1 {
			t.Fatalf("got %d certificates, want 1 from %q", s.Len(), file)
		}
		c := &chain.Chain{Key: h.leaf.Key, Leaf: h.leaf.Cert, Issuers: []*x509.Certificate{h.inter.Cert, h.cross.Cert}}
		if err := c.AppendTA(chain.TARoot, nil); err != nil {
			t.Fatalf("AppendTA with the system store from SSL_CERT_FILE: %v", err)
		}
		if c.TA == nil || !bytes.Equal(c.TA.Raw, h.oldRoot.Cert.Raw) {
			t.Errorf("got TA %v, want the old root", c.TA)
		}
	})
	t.Run("SSL_CERT_FILE and SSL_CERT_DIR", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", file)
		t.Setenv("SSL_CERT_DIR", certDir)
		s, err := chain.LoadRootStore()
		if err != nil || s.Len() != 2 {
			t.Fatalf("got %v, %v; want 2 certificates", s, err)
		}
	})
	t.Run("nothing found", func(t *testing.T) {
		t.Setenv("SSL_CERT_FILE", filepath.Join(dir, "missing.pem"))
		t.Setenv("SSL_CERT_DIR", filepath.Join(dir, "missing"))
		_, err := chain.LoadRootStore()
		if !errors.Is(err, chain.ErrNoRoots) || !strings.Contains(err.Error(), "missing.pem") {
			t.Fatalf("got %v, want ErrNoRoots naming the places looked at", err)
		}
	})
}

// TestSystemRootStore reads the machine's real trust store. It must exist
// under CI=true (ca-certificates is installed with openssl).
func TestSystemRootStore(t *testing.T) {
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	s, err := chain.LoadRootStore()
	if err != nil {
		testenv.Missing(t, "system trust store: "+err.Error())
	}
	if s.Len() == 0 {
		t.Fatalf("got an empty system trust store from %v", s.Sources)
	}
	t.Logf("%d certificates from %v", s.Len(), s.Sources)

	// A private test CA is not in it.
	h := newHierarchy("p256")
	_, err = chain.FindRoot(h.cross.Cert, s)
	if !errors.Is(err, chain.ErrTANotFound) {
		t.Fatalf("FindRoot of a private CA in the system store: got %v, want ErrTANotFound", err)
	}
	if !strings.Contains(err.Error(), s.Sources[0]) {
		t.Errorf("got error %q, want it to name the store %q", err, s.Sources[0])
	}
}

func BenchmarkLoadRootStoreSystem(b *testing.B) {
	b.Setenv("SSL_CERT_FILE", "")
	b.Setenv("SSL_CERT_DIR", "")
	if _, err := chain.LoadRootStore(); err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := chain.LoadRootStore(); err != nil {
			b.Fatal(err)
		}
	}
}
