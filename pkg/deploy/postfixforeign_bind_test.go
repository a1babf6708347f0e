package deploy

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Issue 9 item 5 ("Postfix may not read chain_file at all"), against real
// BIND (primary + secondary) and a real Postfix: whatever the run — a
// deploy hook with a pending new-key renewal, a same-key renewal whose
// record is aged, dane-reload or tick with nothing to switch, status —
// while some smtpd service reads TLS files that exist and are not the
// lineage's chain file, the run installs, reloads and removes nothing,
// and fails with ErrPostfixNotReading naming the service, the parameter
// and where it is set, with the postconf line as hint. Running that line
// converges. It publishes what is needed, except an owner's first records
// while the service of the owner's port serves a chain they would not
// match (certbot's live/ files of another key: firstRecordsHeld), which
// would make every DANE sender defer mail until the line is run; then the
// hint says to run the line at once, and the run after it publishes.

// certbotLive writes a certbot-like lineage (live/ symbolic links into
// archive/) holding a self-signed ECDSA certificate for the lab's host and
// returns the live/ privkey.pem and fullchain.pem.
func certbotLive(t *testing.T) (key, fullchain string) {
	t.Helper()
	dir := t.TempDir()
	k, c := postfixlab.SelfSigned(t, postfixlab.Hostname, false)
	archive, live := filepath.Join(dir, "archive", "mail"), filepath.Join(dir, "live", "mail")
	writeFile(t, filepath.Join(archive, "privkey1.pem"), k)
	writeFile(t, filepath.Join(archive, "fullchain1.pem"), c)
	if err := os.MkdirAll(live, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"privkey", "fullchain"} {
		if err := os.Symlink(filepath.Join("..", "..", "archive", "mail", f+"1.pem"), filepath.Join(live, f+".pem")); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(live, "privkey.pem"), filepath.Join(live, "fullchain.pem")
}

// foreignShape is one way an existing setup makes Postfix read other
// files than the lineage's chain file (the lab's ecdsa.pem).
type foreignShape struct {
	name string
	// opts returns the lab's options, given certbot's live/ files.
	opts func(t *testing.T, key, crt string) postfixlab.Options
	// want are strings the error must hold: the service, the parameter
	// and its source, and the file.
	want func(key, crt string) []string
	// fix is the start of the postconf line in the hint.
	fix string
	// held: the service of the owner's port reads the other files, so
	// the owner's first records are held, not published.
	held bool
}

var foreignShapes = []foreignShape{
	{
		name: "smtpd_tls_chain_files at certbot's live files",
		opts: func(t *testing.T, key, crt string) postfixlab.Options {
			return postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}, Main: []string{"smtpd_tls_chain_files = " + key + ", " + crt}}
		},
		want: func(key, crt string) []string {
			return []string{`/inet" reads smtpd_tls_chain_files`, key, crt, "(main.cf)"}
		},
		fix:  "-e 'smtpd_tls_chain_files = ",
		held: true,
	},
	{
		name: "legacy smtpd_tls_cert_file and smtpd_tls_key_file",
		opts: func(t *testing.T, key, crt string) postfixlab.Options {
			return postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}, Main: []string{"smtpd_tls_chain_files =", "smtpd_tls_cert_file = " + crt, "smtpd_tls_key_file = " + key}}
		},
		want: func(key, crt string) []string {
			return []string{`/inet" reads smtpd_tls_cert_file`, "smtpd_tls_key_file", crt, "(main.cf)"}
		},
		fix:  "-e 'smtpd_tls_chain_files = ",
		held: true,
	},
	{
		name: "a master.cf -o override on submission only",
		opts: func(t *testing.T, key, crt string) postfixlab.Options {
			port := postfixlab.FreePort(t)
			return postfixlab.Options{ChainFiles: []string{"ecdsa.pem"}, Master: []string{
				"127.0.0.1:" + itoa(port) + " inet n - n - - smtpd",
				"  -o smtpd_tls_chain_files=" + key + "," + crt}}
		},
		want: func(key, crt string) []string {
			return []string{"/inet\" reads smtpd_tls_chain_files", crt, "(master.cf service 127.0.0.1:"}
		},
		fix: "-P ",
	},
}

func TestPostfixReadingOtherFilesRefusesEveryRun(t *testing.T) {
	for _, sh := range foreignShapes {
		t.Run(sh.name, func(t *testing.T) {
			key, crt := certbotLive(t)
			e, _, pf := observedLab(t, sh.opts(t, key, crt))
			l := e.Config.Lineages["ecdsa"]
			before, err := os.ReadFile(l.ChainFile)
			if err != nil {
				t.Fatal(err)
			}
			refused := func(what string, err error) string {
				t.Helper()
				if !errors.Is(err, ErrPostfixNotReading) {
					t.Fatalf("%s while Postfix reads %s: %v; want ErrPostfixNotReading", what, crt, err)
				}
				for _, w := range sh.want(key, crt) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: the error lacks %q: %v", what, w, err)
					}
				}
				var h interface{ Hint() string }
				if !errors.As(err, &h) || !strings.Contains(h.Hint(), "postconf -c "+pf.ConfigDir+" "+sh.fix) || !strings.Contains(h.Hint(), l.ChainFile) {
					t.Errorf("%s: hint %v; want the postconf line (%s…) naming %s", what, err, sh.fix, l.ChainFile)
				}
				if after, _ := os.ReadFile(l.ChainFile); string(after) != string(before) {
					t.Fatalf("%s replaced the chain file although Postfix does not read it", what)
				}
				return h.Hint()
			}

			// tick / dane-reload with nothing to switch: the installed
			// chain's record is published, nothing is reloaded.
			r, err := e.Reload(t.Context())
			refused("Reload with nothing to switch", err)
			if r.Reloaded || len(r.Removed) > 0 || len(r.Switched) > 0 {
				t.Errorf("Reload reloaded (%v), switched %v or removed %v", r.Reloaded, r.Switched, r.Removed)
			}
			installed, _, _ := readChainFile(l.ChainFile)
			if got := has(servedRecords(t, e), tlsa.SPKIDigestHex(installed.Leaf)); got == sh.held {
				t.Errorf("the refusing Reload published the installed chain's record: %v, want %v (held: %v): %v", got, !sh.held, r.HeldFirst, servedRecords(t, e))
			}
			if sh.held && (len(r.HeldFirst) != 1 || !strings.Contains(r.HeldFirst[0], "would not match")) {
				t.Errorf("Reload's held first records: %q; want one owner, saying what Postfix serves", r.HeldFirst)
			}

			// dane-deploy with a new key: its record is published (safe),
			// the renewal is kept pending, and the hook fails.
			ca := newCA(t)
			dir := t.TempDir()
			nk, nc, _ := ca.issue(t, nil)
			rk, rc := filepath.Join(dir, "new.key"), filepath.Join(dir, "new.crt")
			writeFile(t, rk, nk)
			writeFile(t, rc, nc)
			newKey := &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: rk, CertFile: rc}
			res, err := e.Deploy(t.Context(), newKey)
			refused("Deploy of a new-key renewal (switch pending)", err)
			if res == nil || res.Installed || res.Pending == nil || res.Pending.SPKI != res.SPKI {
				t.Fatalf("Deploy result %+v; want the renewal pending, not installed", res)
			}
			if got := has(servedRecords(t, e), res.SPKI); got == sh.held {
				t.Errorf("the refusing Deploy published the new key's record %s: %v, want %v: %v", short(res.SPKI), got, !sh.held, servedRecords(t, e))
			}

			// status and check: the same refusal.
			st, err := e.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			refused("Status", st.Refusal)
			if st.OK() || len(st.Lineages) != 1 || !strings.Contains(st.Lineages[0].Err, "postconf -c") {
				t.Errorf("status OK %v, lineages %+v; want the lineage's error with the postconf line", st.OK(), st.Lineages)
			}

			if sh.held {
				// Nothing was published, so nothing ages: the hint says to
				// run the line now; after it, the next run publishes, and
				// the pending renewal switches once its record aged.
				hint := refused("Status", st.Refusal)
				i := strings.Index(hint, " && danectl tick")
				if !strings.HasPrefix(hint, "run: ") || i < 0 {
					t.Fatalf("hint %q: want the line to run at once, ending in danectl tick", hint)
				}
				line := strings.TrimPrefix(hint[:i], "run: ")
				if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
					t.Fatalf("the hint's line %q: %v: %s", line, err, out)
				}
				r, err = e.Reload(t.Context())
				if err != nil || len(r.HeldFirst) > 0 || len(r.Published) == 0 {
					t.Fatalf("Reload after the hint's line: %+v, %v; want the records published", r, err)
				}
				if got := presentedLeaf(t, pf, postfix.ECDSA); !got.Equal(installed.Leaf) {
					t.Errorf("after the hint's line Postfix presents %s, want the installed chain", got.Subject)
				}
				waitAged(t, e)
				r, err = e.Reload(t.Context())
				if err != nil || len(r.Switched) != 1 {
					t.Fatalf("Reload once the records aged: %+v, %v; want the pending renewal switched", r, err)
				}
				if got := presentedLeaf(t, pf, postfix.ECDSA); tlsa.SPKIDigestHex(got) != res.SPKI {
					t.Errorf("Postfix presents 3 1 1 %s, want the renewal's %s", short(tlsa.SPKIDigestHex(got)), short(res.SPKI))
				}
				return
			}
			waitAged(t, e)
			// A same-key renewal whose key's record is aged: safe, but
			// refused.
			sk, sc := sameKeyRenewal(t, ca, l.ChainFile, dir)
			res, err = e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "ecdsa", KeyFile: sk, CertFile: sc})
			refused("Deploy of a same-key renewal (safe)", err)
			if res.Installed || res.KeyChanged {
				t.Errorf("same-key Deploy: %+v", res)
			}
			// The new-key renewal is aged now (the same-key one, issued
			// later, is the newest chain and safe): still refused.
			_, err = e.Deploy(t.Context(), newKey)
			refused("Deploy of the aged new-key renewal", err)
			newest, err := chain.Load(sk, sc)
			if err != nil {
				t.Fatal(err)
			}
			r, err = e.Reload(t.Context())
			hint := refused("Reload with a safe pending switch", err)
			if r.Reloaded || len(r.Removed) > 0 || len(r.Switched) > 0 {
				t.Errorf("Reload reloaded (%v), switched %v or removed %v", r.Reloaded, r.Switched, r.Removed)
			}
			if got := presentedLeaf(t, pf, postfix.ECDSA); got.Equal(newest.Leaf) {
				t.Errorf("Postfix presents the renewal although every run refused")
			}

			// The operator runs the hint's line: the next run converges
			// onto the newest chain (the same-key renewal, aged).
			line := strings.TrimPrefix(hint, "run: ")
			if out, err := exec.Command("sh", "-c", line).CombinedOutput(); err != nil {
				t.Fatalf("the hint's line %q: %v: %s", line, err, out)
			}
			r, err = e.Reload(t.Context())
			if err != nil || len(r.Switched) != 1 || len(r.Verified) == 0 {
				t.Fatalf("Reload after the hint's line: %+v, %v; want the pending switch done and verified", r, err)
			}
			if got := presentedLeaf(t, pf, postfix.ECDSA); !got.Equal(newest.Leaf) {
				t.Errorf("Postfix presents %s, want the newest renewal %s", got.Subject, describeLeaf(newest))
			}
		})
	}
}

// sameKeyRenewal writes, in dir, a certificate of ca for the key of the
// chain file at path, and returns the key and certificate files.
func sameKeyRenewal(t *testing.T, ca *testCA, path, dir string) (key, crt string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k *ecdsa.PrivateKey
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		if strings.Contains(blk.Type, "PRIVATE KEY") {
			if p, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
				k, _ = p.(*ecdsa.PrivateKey)
			} else if p, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
				k = p
			}
		}
	}
	if k == nil {
		t.Fatalf("no ECDSA key in %s", path)
	}
	kp, cp, _ := ca.issue(t, k)
	key, crt = filepath.Join(dir, "same.key"), filepath.Join(dir, "same.crt")
	writeFile(t, key, kp)
	writeFile(t, crt, cp)
	return key, crt
}
