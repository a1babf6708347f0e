package chain_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/postfix"
)

// TestPostfixServesChain writes served chains with (*Chain).WriteFile over
// the chain file of a real Postfix (internal/postfixlab) and starts it: over
// STARTTLS, smtpd must present exactly Served() (key accepted in every
// encoding, Ed25519 included, TA appended) and log no warning or error.
func TestPostfixServesChain(t *testing.T) {
	tests := []struct {
		alg, enc string
		pkcs8    bool // write the key as PKCS #8 instead of its original encoding
	}{
		{"p256", "sec1params", false},
		{"p256", "sec1", true},
		{"rsa", "pkcs1", false},
		{"rsa", "pkcs8", false},
		{"p384", "pkcs8", false},
		{"ed25519", "pkcs8", false},
	}
	for _, tt := range tests {
		name := tt.alg + "/" + tt.enc
		if tt.pkcs8 {
			name += "/as PKCS8"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			h := newHierarchy(tt.alg)
			c, err := chain.Load(writeFile(dir, "privkey.pem", pemKey(h.leaf.Key, tt.enc)),
				writeFile(dir, "fullchain.pem", pemCerts(h.cross.Cert, h.leaf.Cert, h.inter.Cert)))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AppendTA(chain.TARoot, chain.NewRootStore(h.oldRoot.Cert)); err != nil {
				t.Fatal(err)
			}
			if tt.pkcs8 {
				c.KeyBlock = nil
			}

			// Stopped: smtpd loads nothing before the chain under test
			// replaces the lab's self-signed one.
			lab := postfixlab.Start(t, postfixlab.Options{
				ChainFiles: []string{"served-" + c.Algorithm() + ".pem"},
				Stopped:    true,
			})
			if err := c.WriteFile(lab.ChainFiles[0]); err != nil {
				t.Fatal(err)
			}
			if err := lab.Instance.Check(t.Context()); err != nil {
				t.Fatalf("postfix check of the written chain: %v", err)
			}
			lab.Start(t)

			got, _, err := postfix.Handshake(t.Context(), lab.Addr, postfixlab.Hostname)
			if err != nil {
				t.Fatalf("STARTTLS to Postfix: %v", err)
			}
			if want := c.Served(); !sameCerts(got, want) {
				t.Errorf("Postfix presented %v, want %v", names(got), names(want))
			}
			// The session's own summary line, after the readiness probe's.
			log := waitForLog(t, lab.Maillog, "starttls=1")
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "warning") || strings.Contains(l, "error") {
					t.Errorf("Postfix complained: %s", l)
				}
			}
		})
	}
}

// waitForLog returns the maillog at path once it holds want, such as a
// part of smtpd's "disconnect from" line that ends a session (postlogd
// writes asynchronously); after 10 s it fails t.
func waitForLog(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("maillog %s: no %q after 10 s (read error: %v)", path, want, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
