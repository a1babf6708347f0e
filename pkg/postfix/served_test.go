package postfix_test

// Tests of Instance.Served, Config.Reads, FixLine and Check against a real
// Postfix (postconf reads the lab's main.cf and master.cf).

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/postfix"
)

func TestServed(t *testing.T) {
	const le = "/etc/letsencrypt/live/mx.example.test/"
	type svc struct {
		chain  []string
		pairs  [][2]string
		source string // Source[smtpd_tls_chain_files]
		level  string
	}
	tests := []struct {
		desc   string
		main   []string                                // appended to main.cf; "@" is replaced by the lab's directory
		master func(port int) []string                 // extra master.cf lines, "@" replaced too
		want   func(l *postfixlab.Lab, port int) []svc // services after the lab's own
		reads  bool                                    // Reads(l.ChainFiles)
		fix    func(l *postfixlab.Lab, port int) string
	}{
		{desc: "chain_files at the chain file",
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{chain: l.ChainFiles, source: "main.cf", level: "may"}}
			},
			reads: true,
		},
		{desc: "certbot live files as legacy cert and key",
			main: []string{"smtpd_tls_chain_files =", "smtpd_tls_cert_file = " + le + "fullchain.pem", "smtpd_tls_key_file = " + le + "privkey.pem"},
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{pairs: [][2]string{{le + "fullchain.pem", le + "privkey.pem"}}, source: "main.cf", level: "may"}}
			},
			fix: func(l *postfixlab.Lab, _ int) string {
				return "postconf -c " + l.ConfigDir + " -e 'smtpd_tls_chain_files = " + l.ChainFiles[0] + "'"
			},
		},
		{desc: "legacy RSA and ECDSA with keys defaulting to the cert files",
			main: []string{"smtpd_tls_chain_files =", "smtpd_tls_cert_file = /rsa.pem", "smtpd_tls_eccert_file = /ec.pem"},
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{pairs: [][2]string{{"/rsa.pem", "/rsa.pem"}, {"/ec.pem", "/ec.pem"}}, source: "main.cf", level: "may"}}
			},
			fix: func(l *postfixlab.Lab, _ int) string {
				return "postconf -c " + l.ConfigDir + " -e 'smtpd_tls_chain_files = " + l.ChainFiles[0] + "'"
			},
		},
		{desc: "chain_files takes precedence over legacy parameters",
			main: []string{"smtpd_tls_cert_file = " + le + "fullchain.pem", "smtpd_tls_key_file = " + le + "privkey.pem"},
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{chain: l.ChainFiles, source: "main.cf", level: "may"}}
			},
			reads: true,
		},
		{desc: "parameters expanded",
			main: []string{"danehook_dir = @/tls", "smtpd_tls_chain_files = ${danehook_dir}/ecdsa.pem"},
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{chain: l.ChainFiles, source: "main.cf", level: "may"}}
			},
			reads: true,
		},
		{desc: "master.cf override on a second smtpd",
			master: func(port int) []string {
				return []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_chain_files=$config_directory/../tls/other.pem -o smtpd_tls_security_level=encrypt", port)}
			},
			want: func(l *postfixlab.Lab, port int) []svc {
				return []svc{
					{chain: l.ChainFiles, source: "main.cf", level: "may"},
					{chain: []string{l.ConfigDir + "/../tls/other.pem"}, source: fmt.Sprintf("master.cf service 127.0.0.1:%d/inet", port), level: "encrypt"},
				}
			},
			fix: func(l *postfixlab.Lab, port int) string {
				return fmt.Sprintf("postconf -c %s -P 127.0.0.1:%d/inet/smtpd_tls_chain_files=%s", l.ConfigDir, port, l.ChainFiles[0])
			},
		},
		{desc: "master.cf override of a parameter that main.cf uses",
			main: []string{"danehook_dir = @/tls", "smtpd_tls_chain_files = $danehook_dir/ecdsa.pem"},
			master: func(port int) []string {
				return []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd", port), "  -o danehook_dir=/elsewhere"}
			},
			want: func(l *postfixlab.Lab, port int) []svc {
				return []svc{
					{chain: l.ChainFiles, source: "main.cf", level: "may"},
					{chain: []string{"/elsewhere/ecdsa.pem"}, source: fmt.Sprintf("main.cf, expanded with master.cf service 127.0.0.1:%d/inet overrides", port), level: "may"},
				}
			},
			fix: func(l *postfixlab.Lab, _ int) string {
				return "postconf -c " + l.ConfigDir + " -e 'smtpd_tls_chain_files = " + l.ChainFiles[0] + "'"
			},
		},
		{desc: "legacy cert override in master.cf with the key following it",
			main: []string{"smtpd_tls_chain_files =", "smtpd_tls_cert_file = @/tls/ecdsa.pem"},
			master: func(port int) []string {
				return []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_cert_file=/other.pem", port)}
			},
			want: func(l *postfixlab.Lab, port int) []svc {
				return []svc{
					{pairs: [][2]string{{"@/tls/ecdsa.pem", "@/tls/ecdsa.pem"}}, source: "main.cf", level: "may"},
					{pairs: [][2]string{{"/other.pem", "/other.pem"}}, source: "main.cf", level: "may"},
				}
			},
			fix: func(l *postfixlab.Lab, _ int) string {
				return "postconf -c " + l.ConfigDir + " -e 'smtpd_tls_chain_files = " + l.ChainFiles[0] + "'"
			},
		},
		{desc: "a service without TLS is not judged",
			master: func(port int) []string {
				return []string{fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=none -o smtpd_tls_chain_files=", port)}
			},
			want: func(l *postfixlab.Lab, port int) []svc {
				return []svc{
					{chain: l.ChainFiles, source: "main.cf", level: "may"},
					{source: fmt.Sprintf("master.cf service 127.0.0.1:%d/inet", port), level: "none"},
				}
			},
			reads: true,
		},
		{desc: "legacy smtpd_use_tls",
			main: []string{"smtpd_tls_security_level =", "smtpd_use_tls = yes"},
			want: func(l *postfixlab.Lab, _ int) []svc {
				return []svc{{chain: l.ChainFiles, source: "main.cf", level: "may"}}
			},
			reads: true,
		},
	}
	// One stopped lab for every case (postconf only reads the files): each
	// case starts from the lab's own main.cf and master.cf.
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true, OtherChainFiles: []string{"other.pem"}})
	mainCF, masterCF := filepath.Join(l.ConfigDir, "main.cf"), filepath.Join(l.ConfigDir, "master.cf")
	origMain, origMaster := readFile(t, mainCF), readFile(t, masterCF)
	at := func(s string) string { return strings.ReplaceAll(s, "@", l.Dir) }
	port := postfixlab.FreePort(t)
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			main := slices.Clone(origMain)
			for _, m := range tt.main {
				main = append(main, at(m)+"\n"...)
			}
			master := slices.Clone(origMaster)
			if tt.master != nil {
				master = append(master, strings.Join(tt.master(port), "\n")+"\n"...)
			}
			writeFile(t, mainCF, main)
			writeFile(t, masterCF, master)
			backdate(t, mainCF, masterCF)
			cfg, err := l.Instance.Served(t.Context())
			if err != nil {
				t.Fatalf("Served: %v", err)
			}
			want := tt.want(l, port)
			for i := range want {
				for j := range want[i].pairs {
					want[i].pairs[j] = [2]string{at(want[i].pairs[j][0]), at(want[i].pairs[j][1])}
				}
			}
			if len(cfg.Services) != len(want) {
				t.Fatalf("Served got %d services %+v want %d", len(cfg.Services), cfg.Services, len(want))
			}
			wantNames := []string{fmt.Sprintf("127.0.0.1:%d/inet", l.Port), fmt.Sprintf("127.0.0.1:%d/inet", port)}
			for i, s := range cfg.Services {
				w := want[i]
				if s.Service != wantNames[i] {
					t.Errorf("service %d: Service got %q want %q", i, s.Service, wantNames[i])
				}
				if !reflect.DeepEqual(s.ChainFiles, w.chain) {
					t.Errorf("%s: ChainFiles got %q want %q", s.Service, s.ChainFiles, w.chain)
				}
				if !reflect.DeepEqual(s.CertKeyPairs, w.pairs) {
					t.Errorf("%s: CertKeyPairs got %q want %q", s.Service, s.CertKeyPairs, w.pairs)
				}
				if got := s.Source[postfix.ParamChainFiles]; got != w.source {
					t.Errorf("%s: Source[%s] got %q want %q", s.Service, postfix.ParamChainFiles, got, w.source)
				}
				if s.SecurityLevel != w.level {
					t.Errorf("%s: SecurityLevel got %q want %q", s.Service, s.SecurityLevel, w.level)
				}
			}

			ok, wrong := cfg.Reads(l.ChainFiles)
			if ok != tt.reads {
				t.Errorf("Reads got %v (wrong %+v) want %v", ok, wrong, tt.reads)
			}
			wantFix := ""
			if tt.fix != nil {
				wantFix = tt.fix(l, port)
			}
			if got := cfg.FixLine(l.ConfigDir, l.ChainFiles); got != wantFix {
				t.Errorf("FixLine got\n  %s\nwant\n  %s", got, wantFix)
			}
			err = cfg.Check(l.ChainFiles)
			if tt.reads {
				if err != nil {
					t.Errorf("Check got %v want nil", err)
				}
				return
			}
			var ns *postfix.NotServedError
			if !errors.As(err, &ns) {
				t.Fatalf("Check got %v want a *NotServedError", err)
			}
			t.Logf("Check: %v\nhint: %s", err, ns.Hint())
			for _, w := range wrong {
				if !strings.Contains(err.Error(), w.Service) {
					t.Errorf("Check error %q does not name service %s", err, w.Service)
				}
			}
			if !strings.Contains(ns.Hint(), wantFix) || !strings.HasSuffix(ns.Hint(), "postfix -c "+l.ConfigDir+" reload") {
				t.Errorf("Hint %q does not hold the fix line and the reload", ns.Hint())
			}

			// The fix line does what it says: run it (through a shell, as
			// an operator would paste it), then every service reads the
			// chain file.
			out, err := exec.CommandContext(t.Context(), "sh", "-c", wantFix).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v: %s", wantFix, err, out)
			}
			backdate(t, mainCF, masterCF)
			cfg, err = l.Instance.Served(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if ok, wrong := cfg.Reads(l.ChainFiles); !ok {
				t.Errorf("after %s: Reads got false, wrong %+v", wantFix, wrong)
			}
		})
	}
}

// TestServedFixThenPresent is the certbot adoption path end to end: Postfix
// serves certbot's live/ files (legacy cert/key) on the lab's smtpd and a
// second smtpd overrides smtpd_tls_chain_files in master.cf; after the
// FixLine and a reload both present the chain file's leaf.
func TestServedFixThenPresent(t *testing.T) {
	t.Parallel()
	port := postfixlab.FreePort(t)
	l := postfixlab.Start(t, postfixlab.Options{Stopped: true, OtherChainFiles: []string{"other.pem"}, Master: []string{
		fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_chain_files=$config_directory/../tls/other.pem", port),
	}})
	// certbot's layout: live/ holds symbolic links into archive/.
	le := filepath.Join(l.Dir, "letsencrypt")
	archive, live := filepath.Join(le, "archive", "mx"), filepath.Join(le, "live", "mx")
	for _, d := range []string{archive, live} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	leKey, leCert := postfixlab.SelfSigned(t, postfixlab.Hostname, false)
	writeFile(t, filepath.Join(archive, "privkey1.pem"), leKey)
	writeFile(t, filepath.Join(archive, "fullchain1.pem"), leCert)
	for _, n := range []string{"privkey", "fullchain"} {
		if err := os.Symlink("../../archive/mx/"+n+"1.pem", filepath.Join(live, n+".pem")); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, filepath.Join(l.ConfigDir, "main.cf"), "smtpd_tls_chain_files =\nsmtpd_tls_cert_file = "+live+"/fullchain.pem\nsmtpd_tls_key_file = "+live+"/privkey.pem\n")
	l.Start(t)
	second := fmt.Sprintf("127.0.0.1:%d", port)

	presented := func(addr string) string {
		t.Helper()
		chain, err := postfix.Present(t.Context(), addr, postfixlab.Hostname, postfix.ECDSA)
		if err != nil {
			t.Fatal(err)
		}
		return spki(chain[0])
	}
	if got, want := presented(l.Addr), spki(parseCertsPEM(t, leCert)[0]); got != want {
		t.Fatalf("before the fix %s presents %s want certbot's %s", l.Addr, got, want)
	}
	if got, want := presented(second), spki(leafOf(t, l.OtherChainFiles[0])); got != want {
		t.Fatalf("before the fix %s presents %s want other.pem's %s", second, got, want)
	}

	cfg, err := l.Instance.Served(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	fix := cfg.FixLine(l.ConfigDir, l.ChainFiles)
	wantFix := fmt.Sprintf("postconf -c %s -e 'smtpd_tls_chain_files = %s' && postconf -c %s -P 127.0.0.1:%d/inet/smtpd_tls_chain_files=%s",
		l.ConfigDir, l.ChainFiles[0], l.ConfigDir, port, l.ChainFiles[0])
	if fix != wantFix {
		t.Fatalf("FixLine got\n  %s\nwant\n  %s", fix, wantFix)
	}
	if out, err := exec.CommandContext(t.Context(), "sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", fix, err, out)
	}
	if err := l.Instance.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Instance.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	cfg, err = l.Instance.Served(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(l.ChainFiles); err != nil {
		t.Fatalf("Check after the fix: %v", err)
	}
	want := parseCertsPEM(t, readFile(t, l.ChainFiles[0]))[0]
	for _, addr := range []string{l.Addr, second} {
		if _, err := postfix.WaitPresented(t.Context(), addr, postfixlab.Hostname, want, 10*time.Second); err != nil {
			t.Errorf("after the fix and reload: %v", err)
		}
	}
}

// backdate sets the files' modification time 10 s back: Postfix waits
// (polling for up to 2 s) before it reads a configuration file modified
// within the current second, in case it is still being written.
func backdate(t *testing.T, files ...string) {
	t.Helper()
	past := time.Now().Add(-10 * time.Second)
	for _, f := range files {
		if err := os.Chtimes(f, past, past); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
