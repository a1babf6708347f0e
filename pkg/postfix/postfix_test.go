package postfix_test

// Tests against a real Postfix (internal/postfixlab): they need root and the
// postfix package, and skip without them unless CI=true.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/internal/testenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

func TestCheckPassesOnLab(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	if err := l.Instance.Check(t.Context()); err != nil {
		t.Fatalf("Check got %v want nil", err)
	}
}

func TestCheckReportsTheCause(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		break_ func(t *testing.T, l *postfixlab.Lab)
		want   []string // substrings of the error
		inLog  string   // a substring the maillog lines (CommandError.Log) must hold; "" when not checked
	}{
		{"malformed master.cf", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "master.cf"), "this line has too few fields\n")
		}, []string{"master.cf", "bad field count"}, "fatal: cannot execute"},
		{"main.cf syntax error", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "this is not a parameter\n")
		}, []string{"main.cf", "missing '=' after attribute name"}, ""},
		{"queue directory missing", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "queue_directory = "+filepath.Join(l.Dir, "no-such-queue")+"\n")
		}, []string{"chdir(", "no-such-queue", "No such file or directory"}, "No such file or directory"},
		{"maillog_file outside its prefixes", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "maillog_file = /var/log/postfixlab-not-allowed.log\n")
		}, []string{"does not match any prefix in maillog_file_prefixes"}, ""},
		{"chain file missing", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "smtpd_tls_chain_files = "+filepath.Join(l.Dir, "tls", "missing.pem")+"\n")
		}, []string{"smtpd_tls_chain_files", "missing.pem", "no such file or directory", "postfix config"}, ""},
		{"chain file of a master.cf override missing", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "master.cf"), "127.0.0.1:1 inet n - n - - smtpd -o smtpd_tls_chain_files=$config_directory/missing.pem\n")
		}, []string{"service 127.0.0.1:1/inet: smtpd_tls_chain_files", "missing.pem", "no such file or directory"}, ""},
		{"legacy key file missing", func(t *testing.T, l *postfixlab.Lab) {
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "smtpd_tls_chain_files =\nsmtpd_tls_cert_file = "+l.ChainFiles[0]+"\nsmtpd_tls_key_file = "+filepath.Join(l.Dir, "tls", "nokey.pem")+"\n")
		}, []string{"smtpd_tls_cert_file/smtpd_tls_key_file", "nokey.pem", "no such file or directory"}, ""},
		{"chain file without a key", func(t *testing.T, l *postfixlab.Lab) {
			_, cert := postfixlab.SelfSigned(t, postfixlab.Hostname, false)
			f := filepath.Join(l.Dir, "tls", "nokey.pem")
			if err := os.WriteFile(f, cert, 0o600); err != nil {
				t.Fatal(err)
			}
			appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "smtpd_tls_chain_files = "+f+"\n")
		}, []string{"nokey.pem", "0 private keys and 1 certificates"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
			tt.break_(t, l)
			err := l.Instance.Check(t.Context())
			if err == nil {
				t.Fatal("Check got nil want an error")
			}
			t.Logf("Check error: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check error %q does not contain %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), l.ConfigDir) {
				t.Errorf("Check error %q does not name the config directory %s", err, l.ConfigDir)
			}
			if tt.inLog != "" {
				var ce *postfix.CommandError
				if !errors.As(err, &ce) {
					t.Fatalf("Check error %v is not a *CommandError", err)
				}
				if !strings.Contains(strings.Join(ce.Log, "\n"), tt.inLog) {
					t.Errorf("maillog lines %q do not contain %q", ce.Log, tt.inLog)
				}
			}
		})
	}
}

// TestCheckReportsTheCauseFromMaillog runs postfix without a terminal, as
// on a system where none can be opened: Postfix then prints nothing and the
// cause comes from maillog_file alone.
func TestCheckReportsTheCauseFromMaillog(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "queue_directory = "+filepath.Join(l.Dir, "no-such-queue")+"\n")
	in := postfix.WithoutTerminal(l.Instance)
	err := in.Check(t.Context())
	t.Logf("Check error: %v", err)
	var ce *postfix.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Check got %v want a *CommandError", err)
	}
	if strings.Contains(ce.Output, "chdir") {
		t.Errorf("output %q holds the cause: the test does not exercise the maillog path", ce.Output)
	}
	for _, want := range []string{"maillog " + l.Maillog, "fatal: chdir(" + filepath.Join(l.Dir, "no-such-queue") + "): No such file or directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not contain %q", err, want)
		}
	}
	up, err := in.Running(t.Context())
	if err == nil || up {
		t.Errorf("Running got %v, %v want false and the chdir error", up, err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func TestRunningAndReloadWhenStopped(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	for _, in := range []postfix.Instance{postfix.WithoutTerminal(l.Instance), l.Instance} {
		up, err := in.Running(t.Context())
		if err != nil || up {
			t.Fatalf("Running got %v, %v want false, nil", up, err)
		}
	}
	err := l.Instance.Reload(t.Context())
	if !errors.Is(err, postfix.ErrNotRunning) {
		t.Fatalf("Reload got %v want ErrNotRunning", err)
	}
	var nr *postfix.NotRunningError
	if !errors.As(err, &nr) {
		t.Fatalf("Reload got %T want *NotRunningError", err)
	}
	if got, want := nr.Hint(), "postfix -c "+l.ConfigDir+" start"; got != want {
		t.Errorf("Hint got %q want %q", got, want)
	}

	l.Start(t)
	up, err := l.Instance.Running(t.Context())
	if err != nil || !up {
		t.Fatalf("Running after start got %v, %v want true, nil", up, err)
	}
	if err := l.Instance.Reload(t.Context()); err != nil {
		t.Fatalf("Reload got %v want nil", err)
	}
}

func TestRunningBrokenConfig(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "this is not a parameter\n")
	up, err := l.Instance.Running(t.Context())
	if err == nil || up {
		t.Fatalf("Running with a broken main.cf got %v, %v want false and an error", up, err)
	}
	if errors.Is(err, postfix.ErrNotRunning) || !strings.Contains(err.Error(), "missing '='") {
		t.Errorf("Running got %v want the main.cf error, not ErrNotRunning", err)
	}
	if err := l.Instance.Reload(t.Context()); err == nil || errors.Is(err, postfix.ErrNotRunning) {
		t.Errorf("Reload with a broken main.cf got %v want the main.cf error, not ErrNotRunning", err)
	}
}

func TestChainFiles(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true, ChainFiles: []string{"ecdsa.pem", "rsa.pem"}})
	got, err := l.Instance.ChainFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, l.ChainFiles) {
		t.Errorf("ChainFiles got %q want %q", got, l.ChainFiles)
	}
	// $parameters are expanded.
	appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "smtpd_tls_chain_files = ${config_directory}/a.pem,\n  $config_directory/b.pem\n")
	got, err = l.Instance.ChainFiles(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{l.ConfigDir + "/a.pem", l.ConfigDir + "/b.pem"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ChainFiles got %q want %q", got, want)
	}
}

// served starts a lab serving key + certs from its one chain file.
func served(t *testing.T, keyPEM, certs []byte) *postfixlab.Lab {
	t.Helper()
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true})
	postfixlab.WriteChain(t, l.ChainFiles[0], keyPEM, certs)
	l.Start(t)
	return l
}

func TestHandshakeReturnsServedChain(t *testing.T) {
	t.Parallel()
	p := newPKI(t, pkiOptions{})
	l := served(t, keyPEM(t, p.leafKey), certsPEM(p.leaf, p.inter))
	chain, state, err := postfix.Handshake(t.Context(), l.Addr, postfixlab.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !chain[0].Equal(p.leaf) || !chain[1].Equal(p.inter) {
		t.Fatalf("chain got %d certificates want leaf then intermediate", len(chain))
	}
	if !state.HandshakeComplete || state.Version == 0 {
		t.Errorf("state got HandshakeComplete %v want true", state.HandshakeComplete)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	p := newPKI(t, pkiOptions{})
	other := newPKI(t, pkiOptions{})
	l := served(t, keyPEM(t, p.leafKey), certsPEM(p.leaf, p.inter))

	type match struct{ index, depth int }
	tests := []struct {
		desc    string
		host    string
		rrset   []tlsa.Record
		matches []match
	}{
		{"3 1 1 of the key", "mail.example.test", []tlsa.Record{record(t, p.leaf, 3, 1, 1)}, []match{{0, 0}}},
		{"3 1 1 of another key", "mail.example.test", []tlsa.Record{record(t, other.leaf, 3, 1, 1)}, nil},
		{"current and next key", "mail.example.test", []tlsa.Record{record(t, other.leaf, 3, 1, 1), record(t, p.leaf, 3, 1, 1)}, []match{{1, 0}}},
		{"2 1 1 of the intermediate sent", "mail.example.test", []tlsa.Record{record(t, p.inter, 2, 1, 1)}, []match{{0, 1}}},
		{"2 1 1 of the root, not sent", "mail.example.test", []tlsa.Record{record(t, p.root, 2, 1, 1)}, nil},
		{"2 1 1 of the intermediate, wrong host", "other.example.test", []tlsa.Record{record(t, p.inter, 2, 1, 1)}, nil},
		{"3 1 1, wrong host", "other.example.test", []tlsa.Record{record(t, p.leaf, 3, 1, 1)}, []match{{0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			v, err := postfix.Verify(t.Context(), l.Addr, tt.host, tt.rrset)
			if v == nil {
				t.Fatalf("Verify got nil Verification, %v", err)
			}
			var got []match
			for _, m := range v.Matches {
				got = append(got, match{m.Index, m.Depth})
			}
			if !reflect.DeepEqual(got, tt.matches) {
				t.Errorf("matches (index, depth) got %v want %v", got, tt.matches)
			}
			if len(tt.matches) > 0 {
				if err != nil {
					t.Errorf("Verify got %v want nil", err)
				}
				return
			}
			if !errors.Is(err, postfix.ErrNoMatch) {
				t.Fatalf("Verify got %v want ErrNoMatch", err)
			}
			for _, want := range []string{l.Addr, spki(p.leaf), tt.rrset[0].String()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestReloadPicksUpSwappedChain(t *testing.T) {
	t.Parallel()
	l := postfixlab.Start(t, postfixlab.Options{SMTPDProcessLimit: 1})
	before := leafSPKI(t, l.Addr)
	if want := spki(parseCertsPEM(t, readFile(t, l.ChainFiles[0]))[0]); before != want {
		t.Fatalf("served SPKI got %s want the lab's initial key %s", before, want)
	}

	p := newPKI(t, pkiOptions{})
	postfixlab.WriteChain(t, l.ChainFiles[0], keyPEM(t, p.leafKey), certsPEM(p.leaf, p.inter))
	next := spki(p.leaf)
	// Without a reload the running smtpd keeps the key it loaded (LAB-NOTES
	// §3). The lab allows a single smtpd process, so that process, not a
	// freshly forked one that would read the new file, takes every
	// connection.
	for i := 0; i < 3; i++ {
		if got := leafSPKI(t, l.Addr); got != before {
			t.Fatalf("connection %d after the swap, before reload: SPKI got %s want the old %s", i+1, got, before)
		}
	}
	if err := l.Instance.Check(t.Context()); err != nil {
		t.Fatalf("Check got %v", err)
	}
	if err := l.Instance.Reload(t.Context()); err != nil {
		t.Fatalf("Reload got %v", err)
	}
	// postfix reload returns once master is signalled; the old smtpd may
	// still take a connection or two under load (bounded wait, not timed).
	deadline := time.Now().Add(10 * time.Second)
	for got := leafSPKI(t, l.Addr); got != next; got = leafSPKI(t, l.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after reload: SPKI got %s want the new %s", got, next)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := postfix.Verify(t.Context(), l.Addr, postfixlab.Hostname, []tlsa.Record{record(t, p.leaf, 3, 1, 1)}); err != nil {
		t.Errorf("Verify after reload got %v want nil", err)
	}
}

func leafSPKI(t *testing.T, addr string) string {
	t.Helper()
	chain, _, err := postfix.Handshake(t.Context(), addr, postfixlab.Hostname)
	if err != nil {
		t.Fatal(err)
	}
	return spki(chain[0])
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyAgreesWithOpenSSL checks Verify against OpenSSL's own DANE
// implementation (openssl s_client -dane_tlsa_rrdata, no DNS involved) for
// the same endpoint, host and single record.
func TestVerifyAgreesWithOpenSSL(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "openssl")
	now := time.Now()
	p := newPKI(t, pkiOptions{})
	other := newPKI(t, pkiOptions{})
	expiredInter := newPKI(t, pkiOptions{interNotBefore: now.Add(-48 * time.Hour), interNotAfter: now.Add(-time.Hour)})
	good := served(t, keyPEM(t, p.leafKey), certsPEM(p.leaf, p.inter, p.root))
	stale := served(t, keyPEM(t, expiredInter.leafKey), certsPEM(expiredInter.leaf, expiredInter.inter, expiredInter.root))

	tests := []struct {
		desc   string
		lab    *postfixlab.Lab
		host   string
		record tlsa.Record
		want   bool
	}{
		{"3 1 1 of the key", good, "mail.example.test", record(t, p.leaf, 3, 1, 1), true},
		{"3 0 1 of the leaf", good, "mail.example.test", record(t, p.leaf, 3, 0, 1), true},
		{"3 1 2 of the key", good, "mail.example.test", record(t, p.leaf, 3, 1, 2), true},
		{"3 1 1 of another key", good, "mail.example.test", record(t, other.leaf, 3, 1, 1), false},
		{"3 1 1, wrong host", good, "other.example.test", record(t, p.leaf, 3, 1, 1), true},
		{"3 1 1 of the intermediate", good, "mail.example.test", record(t, p.inter, 3, 1, 1), false},
		{"2 1 1 of the intermediate", good, "mail.example.test", record(t, p.inter, 2, 1, 1), true},
		{"2 0 1 of the root, sent", good, "mail.example.test", record(t, p.root, 2, 0, 1), true},
		{"2 1 1 of another CA", good, "mail.example.test", record(t, other.root, 2, 1, 1), false},
		{"2 1 1 of the intermediate, wrong host", good, "other.example.test", record(t, p.inter, 2, 1, 1), false},
		{"2 1 1 of the leaf", good, "mail.example.test", record(t, p.leaf, 2, 1, 1), false},
		// OpenSSL ignores the validity dates of the trust anchor itself...
		{"2 1 1 of an expired intermediate", stale, "mail.example.test", record(t, expiredInter.inter, 2, 1, 1), true},
		// ...but not those of the certificates below it.
		{"2 1 1 of a root above an expired intermediate", stale, "mail.example.test", record(t, expiredInter.root, 2, 1, 1), false},
		{"3 1 1 under an expired intermediate", stale, "mail.example.test", record(t, expiredInter.leaf, 3, 1, 1), true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			_, err := postfix.Verify(t.Context(), tt.lab.Addr, tt.host, []tlsa.Record{tt.record})
			if got := err == nil; got != tt.want {
				t.Errorf("Verify %s got %v want ok=%v", tt.record, err, tt.want)
			}
			if err != nil && !errors.Is(err, postfix.ErrNoMatch) {
				t.Errorf("Verify got %v want nil or ErrNoMatch", err)
			}
			ok, out := opensslDANE(t, tt.lab.Addr, tt.host, tt.record)
			if ok != tt.want {
				t.Errorf("openssl s_client -dane_tlsa_rrdata %q got ok=%v want %v:\n%s", tt.record, ok, tt.want, out)
			}
		})
	}
}

// opensslDANE runs openssl s_client with STARTTLS and one TLSA record and
// reports whether OpenSSL's DANE verification succeeded: exit status 0 and
// "Verification: OK" (with -verify_return_error a failure exits 1).
// -dane_ee_no_namechecks makes OpenSSL ignore names for DANE-EE(3) as
// RFC 7672 §3.1.1 and Postfix do (without it s_client checks them).
func opensslDANE(t *testing.T, addr, host string, rec tlsa.Record) (bool, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "openssl", "s_client", "-starttls", "smtp", "-connect", addr,
		"-dane_tlsa_domain", host, "-dane_tlsa_rrdata", rec.String(), "-dane_ee_no_namechecks", "-verify_return_error", "-brief")
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("openssl: %v", err)
	}
	return err == nil && strings.Contains(out.String(), "Verification: OK"), out.String()
}
