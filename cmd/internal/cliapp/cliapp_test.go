package cliapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/rotate"
	"github.com/danehook/danehook/pkg/state"
	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"
)

func updateErr(class error, wrapped error) error {
	return &dnsupdate.UpdateError{Class: class, Op: "update", Server: "127.0.0.1:53", Zone: "example.test.",
		Owner: "_25._tcp.mail.example.test.", Type: "TLSA", KeyName: "k.", Rcode: dns.RcodeServerFailure, Err: wrapped}
}

func pathErr(op string, errno syscall.Errno) error {
	return fmt.Errorf("save dns.json: %w", &fs.PathError{Op: op, Path: "/var/lib/danehook/dns.json.tmp", Err: errno})
}

// classifyCases covers every exit code Classify produces, with the errors
// the libraries return for each README row.
var classifyCases = []struct {
	name string
	err  error
	code int
	hint string // in the hint, when not empty
}{
	{"nil", nil, ExitOK, ""},
	{"mismatch from a command", Fail(ExitMismatch, errors.New("changes pending"), "run 'danectl publish'"), ExitMismatch, "publish"},
	{"config error", &config.Error{File: "/etc/danehook/danehook.toml", Line: 2, Setting: "hostz", Problem: "unknown setting"}, ExitUsage, "config check"},
	{"config not found", fmt.Errorf("config x: %w", config.ErrNotFound), ExitUsage, "config check"},
	{"key mismatch", &chain.KeyMismatchError{Subject: "CN=mail"}, ExitUsage, "different renewals"},
	{"no hook environment", fmt.Errorf("%w", hookenv.ErrNoClient), ExitUsage, ""},
	{"unknown error", errors.New("chain.pem: no certificate"), ExitUsage, ""},
	{"context cancelled without a signal", context.Canceled, ExitUsage, ""},
	{"tsig", &dnsupdate.UpdateError{Class: dnsupdate.ErrTSIG, Op: "update", Server: "s", KeyName: "k.", Rcode: dns.RcodeNotAuth, TSIGError: dns.RcodeBadSig}, ExitTSIG, "secret"},
	{"cloudflare auth", fmt.Errorf("x: %w", dnsupdate.ErrCloudflareAuth), ExitTSIG, ""},
	{"refused", &dnsupdate.UpdateError{Class: dnsupdate.ErrRefused, Op: "update", Server: "s", KeyName: "k.", Owner: "o.", Rcode: dns.RcodeRefused}, ExitRefused, "update-policy"},
	{"cloudflare request", fmt.Errorf("x: %w", dnsupdate.ErrCloudflareRequest), ExitRefused, ""},
	{"not authoritative", &dnsupdate.UpdateError{Class: dnsupdate.ErrNotAuth, Op: "update", Server: "s", Rcode: dns.RcodeNotAuth}, ExitNotAuth, "zone"},
	{"cloudflare zone", fmt.Errorf("x: %w", dnsupdate.ErrCloudflareZone), ExitNotAuth, ""},
	{"servfail", updateErr(dnsupdate.ErrServer, nil), ExitServer, "server's log"},
	{"truncated answer", updateErr(dnsupdate.ErrServer, dnsupdate.ErrTruncated), ExitServer, ""},
	{"prerequisite", updateErr(dnsupdate.ErrPrerequisite, nil), ExitServer, "re-run"},
	{"cloudflare unavailable", fmt.Errorf("x: %w", dnsupdate.ErrCloudflareUnavailable), ExitServer, ""},
	{"libdns auth", fmt.Errorf("x: %w", dnsupdate.ErrProviderAuth), ExitTSIG, ""},
	{"libdns request", fmt.Errorf("x: %w", dnsupdate.ErrProviderRequest), ExitRefused, ""},
	{"libdns zone", fmt.Errorf("x: %w", dnsupdate.ErrProviderZone), ExitNotAuth, ""},
	{"libdns unavailable", fmt.Errorf("x: %w", dnsupdate.ErrProviderUnavailable), ExitServer, ""},
	{"deadline", fmt.Errorf("observe: %w", context.DeadlineExceeded), ExitServer, ""},
	// A DNS error wrapping an errno is the server's failure, not the disk's.
	{"connect EACCES", updateErr(dnsupdate.ErrServer, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EACCES)}), ExitServer, ""},
	{"not aged", Fail(ExitPending, fmt.Errorf("lineage %q: %w", "mail", rotate.ErrNotAged), "wait"), ExitPending, "wait"},
	{"verify", fmt.Errorf("x: %w", deploy.ErrVerify), ExitPostfix, "no record was removed"},
	{"postfix reads another file", fmt.Errorf("x: %w: %w", deploy.ErrPostfixNotReading, &postfix.NotServedError{Want: []string{"/c.pem"}, Fix: "postconf -e 'smtpd_tls_chain_files = /c.pem'"}), ExitPostfix, "postconf -e"},
	{"untrusted issuer", fmt.Errorf("x: %w", deploy.ErrUntrusted), ExitUsage, ""},
	{"unsigned zone", fmt.Errorf("x: %w", deploy.ErrUnsigned), ExitUsage, ""},
	{"no match", fmt.Errorf("x: %w", postfix.ErrNoMatch), ExitPostfix, "smtpd_tls_chain_files"},
	{"no starttls", fmt.Errorf("x: %w", postfix.ErrNoSTARTTLS), ExitPostfix, ""},
	{"postfix not running", fmt.Errorf("x: %w", postfix.ErrNotRunning), ExitPostfix, "dane-reload"},
	{"postfix command", &postfix.CommandError{Args: []string{"postfix", "check"}, Err: errors.New("exit status 1")}, ExitPostfix, "dane-reload"},
	// A Postfix command that could not start because of an errno stays a Postfix failure.
	{"postfix command EACCES", &postfix.CommandError{Args: []string{"postfix", "check"}, Err: &fs.PathError{Op: "fork/exec", Path: "/usr/sbin/postfix", Err: syscall.EACCES}}, ExitPostfix, ""},
	{"locked", fmt.Errorf("lock /var/lib/danehook/danehook.lock: %w", state.ErrLocked), ExitLocked, "try again"},
	{"disk full", pathErr("write", syscall.ENOSPC), ExitSystem, "df -h"},
	{"quota", pathErr("write", syscall.EDQUOT), ExitSystem, "quota"},
	{"I/O error", pathErr("read", syscall.EIO), ExitSystem, "dmesg"},
	{"read-only", pathErr("open", syscall.EROFS), ExitSystem, "read-only"},
	{"permission denied on state", fmt.Errorf("lock /var/lib/danehook/danehook.lock: %w", &fs.PathError{Op: "open", Path: "/var/lib/danehook/danehook.lock", Err: syscall.EACCES}), ExitSystem, "permissions"},
	{"not permitted", pathErr("rename", syscall.EPERM), ExitSystem, "lsattr"},
	{"config unreadable", fmt.Errorf("config /etc/danehook/danehook.toml: %w", &fs.PathError{Op: "open", Path: "/etc/danehook/danehook.toml", Err: syscall.EACCES}), ExitSystem, "permission denied"},
	{"too many files", pathErr("open", syscall.EMFILE), ExitSystem, "ulimit"},
	{"file table full", pathErr("open", syscall.ENFILE), ExitSystem, ""},
	{"out of memory", pathErr("open", syscall.ENOMEM), ExitSystem, "memory"},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err)
			if tc.err == nil {
				if got != nil {
					t.Fatalf("Classify(nil): got %v, want nil", got)
				}
				return
			}
			var ee *Error
			if !errors.As(got, &ee) {
				t.Fatalf("Classify(%v): got %T, want *Error", tc.err, got)
			}
			if ee.Code != tc.code {
				t.Errorf("Classify(%v): got exit %d, want %d", tc.err, ee.Code, tc.code)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("Classify(%v) does not wrap the error", tc.err)
			}
			if tc.hint != "" && !strings.Contains(ee.Hint, tc.hint) && !strings.Contains(got.Error(), tc.hint) {
				t.Errorf("Classify(%v): hint %q, want it to contain %q", tc.err, ee.Hint, tc.hint)
			}
		})
	}
}

// readmeCodes returns the exit codes of README.md's "Exit codes" table.
func readmeCodes(t *testing.T) []int {
	t.Helper()
	data, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no \"## Exit codes\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	return codes
}

// TestEveryDocumentedExitCodeIsTested: every code of the README table is
// produced by a case of TestClassify or TestRunExitCodes or by a signal in
// TestRunSignals, and every Exit constant is documented.
func TestEveryDocumentedExitCodeIsTested(t *testing.T) {
	documented := readmeCodes(t)
	tested := []int{ExitSIGINT, ExitSIGTERM} // TestRunSignals
	for _, tc := range classifyCases {
		tested = append(tested, tc.code)
	}
	for _, c := range documented {
		if !slices.Contains(tested, c) {
			t.Errorf("exit code %d is in README.md but no test produces it", c)
		}
	}
	for _, c := range []int{ExitOK, ExitMismatch, ExitUsage, ExitTSIG, ExitRefused, ExitNotAuth, ExitServer,
		ExitPending, ExitPostfix, ExitLocked, ExitSystem, ExitSIGINT, ExitSIGTERM} {
		if !slices.Contains(documented, c) {
			t.Errorf("exit code %d is not in README.md's table", c)
		}
	}
	if len(documented) < 13 {
		t.Errorf("README.md documents %d exit codes (%v), want at least 13", len(documented), documented)
	}
}

// TestRunExitCodes runs a binary whose action fails with each case's error
// through Run: the exit code, "NAME: error:" and the hint line.
func TestRunExitCodes(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			app := &cli.App{Name: "dane-test", Writer: &stdout, ErrWriter: &stderr,
				Action: func(*cli.Context) error { return Classify(tc.err) }}
			code := Run(app, []string{"dane-test"}, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if tc.err == nil {
				if stderr.Len() != 0 {
					t.Errorf("stderr %q, want nothing", stderr.String())
				}
				return
			}
			if !strings.HasPrefix(stderr.String(), "dane-test: error: ") {
				t.Errorf("stderr %q, want it to start with \"dane-test: error: \"", stderr.String())
			}
			if tc.hint != "" && !strings.Contains(stderr.String(), tc.hint) {
				t.Errorf("stderr %q, want the hint %q", stderr.String(), tc.hint)
			}
		})
	}
	// A usage error is 2 with a --help hint.
	var stderr bytes.Buffer
	app := &cli.App{Name: "dane-test", Writer: &bytes.Buffer{}, ErrWriter: &stderr, Flags: []cli.Flag{ConfigFlag}, Action: func(*cli.Context) error { return nil }}
	if code := Run(app, []string{"dane-test", "--nosuchflag"}, &stderr); code != ExitUsage || !strings.Contains(stderr.String(), "hint: run 'dane-test --help'") {
		t.Errorf("unknown flag: exit %d, stderr %q; want 2 with a --help hint", code, stderr.String())
	}
}

// TestRunSignals sends SIGINT and SIGTERM to this process while a command
// waits on its context (as a hook waits on a DNS answer): the context is
// cancelled with ErrInterrupted, Run exits 130 or 143 and says why, and a
// command that ignores the cancellation still exits with the signal's code.
// Not parallel: a signal reaches every Run of the process.
func TestRunSignals(t *testing.T) {
	// Keep the signals from killing the test binary should one arrive
	// while no Run listens.
	guard := make(chan os.Signal, 4)
	signal.Notify(guard, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(guard)

	for _, tc := range []struct {
		sig    syscall.Signal
		code   int
		name   string
		ignore bool // the action returns nil after the cancellation
	}{
		{syscall.SIGTERM, ExitSIGTERM, "SIGTERM", false},
		{syscall.SIGINT, ExitSIGINT, "SIGINT", false},
		{syscall.SIGTERM, ExitSIGTERM, "SIGTERM", true},
	} {
		t.Run(fmt.Sprintf("%s ignore=%v", tc.name, tc.ignore), func(t *testing.T) {
			var stderr bytes.Buffer
			waiting := make(chan struct{})
			var cause error
			app := &cli.App{Name: "dane-test", Writer: &bytes.Buffer{}, ErrWriter: &stderr,
				Action: func(c *cli.Context) error {
					ctx, cancel := Context(c, 10*time.Second)
					defer cancel()
					close(waiting)
					<-ctx.Done()
					cause = context.Cause(ctx)
					if tc.ignore {
						return nil
					}
					return Classify(fmt.Errorf("query TLSA: %w", ctx.Err()))
				}}
			go func() {
				<-waiting
				_ = syscall.Kill(os.Getpid(), tc.sig)
			}()
			start := time.Now()
			code := Run(app, []string{"dane-test"}, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v: the signal did not cancel the context", time.Since(start))
			}
			if !errors.Is(cause, ErrInterrupted) || !strings.Contains(cause.Error(), tc.name) {
				t.Errorf("context cause: got %v, want ErrInterrupted naming %s", cause, tc.name)
			}
			for _, want := range []string{"dane-test: error: interrupted by " + tc.name, "hint: ", "run it again"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), want)
				}
			}
		})
	}
	// After Run, the signals are no longer caught by it: a run that ends
	// normally exits 0 and leaves no handler behind (the guard gets them).
	var stderr bytes.Buffer
	app := &cli.App{Name: "dane-test", Writer: &bytes.Buffer{}, ErrWriter: &stderr, Action: func(*cli.Context) error { return nil }}
	if code := Run(app, []string{"dane-test"}, &stderr); code != ExitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
}
