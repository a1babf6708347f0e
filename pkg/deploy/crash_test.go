package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/state"
)

// servedSPKI is the 3 1 1 data of the key Postfix presents at addr.
func servedSPKI(t *testing.T, addr string) string {
	t.Helper()
	chain, _, err := postfix.Handshake(t.Context(), addr, postfixlab.Hostname)
	if err != nil {
		t.Fatalf("STARTTLS to %s: %v", addr, err)
	}
	sum := sha256.Sum256(chain[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// TestDeployCrashRecovery kills dane-deploy's step after publishing and
// after installing, and checks that the served chain's record is published
// at the crash and that running the step again converges.
func TestDeployCrashRecovery(t *testing.T) {
	for _, point := range []string{"deploy:published", "deploy:installed"} {
		t.Run(point, func(t *testing.T) {
			e, ca, crt, key := legoLab(t)
			cfgPath := e.Config.Path
			served := spkiOf(t, mustRead(t, e.Config.Lineages["mail"].ChainFile))
			// deploy:published: a renewal with a new key (not safe yet);
			// deploy:installed: a renewal with the same key (installed at once).
			k, _ := chain.ReadKey(key)
			if point == "deploy:published" {
				nk, nc, _ := ca.issue(t, nil)
				writeFile(t, key, nk)
				writeFile(t, crt, nc)
			} else {
				writeFile(t, crt, mustIssue(t, ca, k))
				// The same key: installed at once once its record is aged
				// (seen by both servers, then 2 x TTL of 1 s).
				waitAged(t, e)
			}
			crashChild(t, cfgPath, "deploy", point)
			if !has(servedRecords(t, e), served) && !has(servedRecords(t, e), spkiOf(t, mustRead(t, e.Config.Lineages["mail"].ChainFile))) {
				t.Fatal("after the crash no published record matches the served chain file")
			}
			res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: key, CertFile: crt})
			if err != nil {
				t.Fatalf("Deploy after crash: %v", err)
			}
			if point == "deploy:published" && (res.Installed || res.Pending == nil) {
				t.Errorf("new key after crash: %+v, want a pending switch", res)
			}
			if point == "deploy:installed" && !res.Installed && !strings.Contains(res.Reason, "already sends this chain") {
				t.Errorf("same key after crash: %+v, want installed", res)
			}
			if now := spkiOf(t, mustRead(t, e.Config.Lineages["mail"].ChainFile)); !has(servedRecords(t, e), now) {
				t.Errorf("served chain's record %s not published after rerun", now)
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// spkiOf reads the first certificate: skip the key block.
	if i := strings.Index(string(b), "-----BEGIN CERTIFICATE-----"); i >= 0 {
		return b[i:]
	}
	return b
}

// TestReloadCrashRecovery kills dane-reload's step right after the Postfix
// reload, before verification and cleanup: Postfix serves the new chain,
// whose record is published, the old record is still there, and running
// the step again verifies and removes it.
func TestReloadCrashRecovery(t *testing.T) {
	pf := postfixlab.Start(t, postfixlab.Options{})
	e, ca, crt, key := legoLab(t)
	l := e.Config.Lineages["mail"]
	// Serve through the Postfix lab: its chain file, its endpoint.
	oldChain := l.ChainFile
	l.ChainFile = pf.ChainFiles[0]
	l.Endpoints = []string{pf.Addr}
	oldPostfix := e.Config.Postfix.ConfigDir
	e.Config.Postfix.ConfigDir = pf.ConfigDir
	cfgPath := e.Config.Path
	cfg, _ := os.ReadFile(cfgPath)
	cfg = []byte(strings.Replace(string(cfg), oldChain, pf.ChainFiles[0], 1))
	cfg = []byte(strings.Replace(string(cfg), oldPostfix, pf.ConfigDir, 1))
	cfg = append(cfg, []byte("\nendpoints = [\""+pf.Addr+"\"]\n")...)
	os.WriteFile(cfgPath, cfg, 0o600)

	old := servedSPKI(t, pf.Addr)
	if _, err := e.Publish(t.Context()); err != nil { // the lab's self-signed key
		t.Fatal(err)
	}
	k, _ := chain.ReadKey(key)
	writeFile(t, crt, mustIssue(t, ca, k))
	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: key, CertFile: crt})
	if err != nil || res.Installed {
		t.Fatalf("Deploy = %+v, %v; want a pending switch", res, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.Status(t.Context())
		if err == nil && len(st.Owners) == 1 && allServedTwice(st.Owners[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired records not served by both servers within 10 s: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond) // 2 x TTL (1 s) after both servers serve it
	crashChild(t, cfgPath, "reload", "reload:reloaded")
	// postfix reload returns before every smtpd restarted: wait (bounded)
	// for the installed chain rather than reading whichever smtpd answers.
	installed, _, _ := readChainFile(l.ChainFile)
	if _, err := postfix.WaitPresented(t.Context(), pf.Addr, postfixlab.Hostname, installed.Leaf, 10*time.Second); err != nil {
		t.Fatalf("after the crash: %v", err)
	}
	now := servedSPKI(t, pf.Addr)
	if now == old || !has(servedRecords(t, e), now) || !has(servedRecords(t, e), old) {
		t.Fatalf("after the crash Postfix serves %s; published %v: want the new key, both records", now, servedRecords(t, e))
	}
	r, err := e.Reload(t.Context())
	if err != nil {
		t.Fatalf("Reload after crash: %v", err)
	}
	// Postfix already presents the new chain (the crashed run reloaded
	// it): the rerun sees that, need not reload again, verifies and removes.
	if len(r.Verified) == 0 || len(r.Removed) != 1 || !strings.Contains(r.Removed[0], old) {
		t.Errorf("Reload after crash = %+v, want verified and the old record removed", r)
	}
	if got := servedRecords(t, e); has(got, old) || !has(got, now) {
		t.Errorf("published after rerun: %v", got)
	}
}

func allServedTwice(o OwnerStatus) bool {
	for _, r := range o.Records.Records {
		if len(r.Serving) != 2 {
			return false
		}
	}
	return len(o.Records.Records) > 0
}

// waitAged observes until both servers serve every desired record, then
// waits 2 x TTL (1 s) so that they are aged.
func waitAged(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := e.Status(t.Context())
		if err == nil && len(st.Owners) == 1 && allServedTwice(st.Owners[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("desired records not served by both servers within 10 s: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2500 * time.Millisecond)
}

// TestCrashHelper is not a test: the crash tests run the test binary again
// with it selected to perform one step in a child process that kills itself
// at the crash point named by crashEnv.
func TestCrashHelper(t *testing.T) {
	cfgPath := os.Getenv("DANEHOOK_TEST_HELPER_CONFIG")
	if cfgPath == "" {
		t.Skip("helper process for the crash tests")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": labPublisher(t, cfg)}, LockWait: 5 * time.Second}
	point := os.Getenv(crashEnv)
	crashHook = func(p string) {
		if p == point {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL cannot be caught; wait for it to land
		}
	}
	switch os.Getenv("DANEHOOK_TEST_HELPER_STEP") {
	case "deploy":
		l := cfg.Lineages["mail"]
		_, err = e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: l.LegoKey, CertFile: l.LegoCert})
	case "reload":
		_, err = e.Reload(t.Context())
	default:
		t.Fatalf("unknown step %q", os.Getenv("DANEHOOK_TEST_HELPER_STEP"))
	}
	if err != nil {
		t.Fatal(err)
	}
}

// crashEnv names the crash point for the helper process.
const crashEnv = "DANEHOOK_TEST_CRASH"

// crashChild runs step in a child test process that kills itself at point.
func crashChild(t *testing.T, cfgPath, step, point string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DANEHOOK_TEST_HELPER_CONFIG="+cfgPath, "DANEHOOK_TEST_HELPER_STEP="+step, crashEnv+"="+point)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 {
		t.Fatalf("child %s at %s: %v (want killed by SIGKILL)\n%s", step, point, err, out)
	}
}
