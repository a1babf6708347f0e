package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/hookenv"
	"github.com/danehook/danehook/pkg/state"
	"github.com/danehook/danehook/pkg/tlsa"
)

const owner = "_25._tcp.mail.example.test."

// served returns the records the primary serves at owner.
func servedRecords(t *testing.T, e *Engine) []string {
	t.Helper()
	pub, _ := e.publisher("lab")
	rrs, err := pub.Records(t.Context(), owner)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Record.String())
	}
	return out
}

func has(list []string, sub string) bool {
	for _, x := range list {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// legoLineage writes lego's files for a fresh key and returns the engine
// configured with lego_cert and lego_key, and the CA.
func legoRotationLab(t *testing.T) (*Engine, *testCA, string, string) {
	t.Helper()
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "mail.example.test.crt"), filepath.Join(dir, "mail.example.test.key")
	e, lab, _ := bindEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"`)
	_ = lab
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, key, k)
	writeFile(t, crt, c)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e, ca, crt, key
}

func TestRotationStageCommitDeploy(t *testing.T) {
	e, ca, crt, key := legoRotationLab(t)
	old := servedRecords(t, e)
	t0 := time.Now()
	e.Now = func() time.Time { return t0 }

	n, _, err := e.Stage(t.Context(), "mail", KeySpec{})
	if err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if fi, err := os.Stat(n.File); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("staged key file %s: %v %v, want mode 0600", n.File, fi, err)
	}
	if n.Algorithm != "ecdsa-p256" {
		t.Errorf("algorithm = %q, want the current key's (ecdsa-p256)", n.Algorithm)
	}
	got := servedRecords(t, e)
	if !has(got, n.SPKI) || !has(got, old[0]) {
		t.Fatalf("after stage the primary serves %v, want the current and the next key", got)
	}
	// danectl status shows the staged key offline, from the state.
	if st, err := e.Status(t.Context(), "mail"); err != nil || st.Lineages[0].Next == nil || st.Lineages[0].Next.SPKI != n.SPKI {
		t.Errorf("Status after stage: %v, want the staged key listed", err)
	}
	// Staging again keeps the key.
	n2, _, err := e.Stage(t.Context(), "mail", KeySpec{Type: "rsa"})
	if err != nil || n2.SPKI != n.SPKI {
		t.Fatalf("second Stage = %v, %v; want the same staged key", n2, err)
	}

	// Not aged yet: commit refused with the time it becomes safe.
	_, err = e.Commit(t.Context(), "mail", false)
	if !errors.Is(err, ErrNotAged) || !strings.Contains(err.Error(), "safe at") {
		t.Fatalf("early Commit = %v, want ErrNotAged with the time", err)
	}
	// Both servers serve it (bounded wait), then 2 x TTL later it is aged.
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs, err := e.RotationStatus(t.Context(), "mail")
		if err != nil {
			t.Fatal(err)
		}
		if len(rs[0].Blocking) == 1 && strings.Contains(rs[0].Blocking[0], "aged at") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.Now = func() time.Time { return t0.Add(time.Minute) }
	if _, err := e.Commit(t.Context(), "mail", false); err != nil {
		t.Fatalf("Commit once aged: %v", err)
	}
	// lego reads its key before the pre hook: the key file is swapped now.
	k, err := readKey(key)
	if err != nil || spkiOrEmpty(k) != n.SPKI {
		t.Fatalf("lego key file after commit: %v; want the staged key", err)
	}
	// Until the renewal lego's key file holds the staged key and its
	// certificate the old one: the timer's plan must not fail on that.
	if _, err := e.Plan(t.Context()); err != nil {
		t.Errorf("Plan between commit and renewal: %v", err)
	}
	if _, err := e.Abort(t.Context(), "mail"); !errors.Is(err, ErrCommitted) {
		t.Errorf("Abort after commit = %v, want ErrCommitted", err)
	}

	// The renewal certifies the staged key; dane-deploy installs it at once
	// (its record is aged) and the old record stays until verification.
	kpem, cpem := pemKey(t, k), mustIssue(t, ca, k)
	writeFile(t, crt, cpem)
	res, err := e.Deploy(t.Context(), &hookenv.Deploy{Client: hookenv.LegoV5, Lineage: "mail", KeyFile: key, CertFile: crt})
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if !res.Installed || !res.KeyChanged {
		t.Fatalf("Deploy = %+v, want the new key installed", res)
	}
	_ = kpem
	st, _ := e.loadLineage("mail")
	if st.Next != nil {
		t.Errorf("rotation not completed in state: %+v", st.Next)
	}
	if got := servedRecords(t, e); !has(got, old[0]) || !has(got, n.SPKI) {
		t.Errorf("before verification the primary serves %v, want both keys", got)
	}
}

// TestRotationCommitLegoCSR: lego --csr reads the pinned CSR before its
// pre hook, like the key, so commit makes lego_csr from the staged key.
func TestRotationCommitLegoCSR(t *testing.T) {
	dir := t.TempDir()
	crt, key, csr := filepath.Join(dir, "mail.crt"), filepath.Join(dir, "mail.key"), filepath.Join(dir, "mail.csr")
	e, _, _ := bindEngine(t, `lego_cert = "`+crt+`"
lego_key = "`+key+`"
lego_csr = "`+csr+`"`)
	k, c, _ := newCA(t).issue(t, nil)
	writeFile(t, key, k)
	writeFile(t, crt, c)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Pin(false); err != nil {
		t.Fatal(err)
	}
	n, _, err := e.Stage(t.Context(), "mail", KeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	waitServedEverywhere(t, e)
	e.Now = func() time.Time { return time.Now().Add(time.Minute) }
	if _, err := e.Commit(t.Context(), "mail", false); err != nil {
		t.Fatalf("Commit once aged: %v", err)
	}
	b, err := chain.ReadFile(csr)
	if err != nil || len(b.CSRs) != 1 {
		t.Fatalf("%s after commit: %v, %d CSRs; want one", csr, err, len(b.CSRs))
	}
	der, err := x509.MarshalPKIXPublicKey(b.CSRs[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sha256Sum(der)); got != n.SPKI {
		t.Errorf("lego_csr after commit is made from key %s; want the staged key %s", got, n.SPKI)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func pemKey(t *testing.T, k interface{}) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// mustIssue issues a leaf for an existing ECDSA key.
func mustIssue(t *testing.T, ca *testCA, k interface{}) []byte {
	t.Helper()
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("key %T, want ECDSA", k)
	}
	_, c, _ := ca.issue(t, ek)
	return c
}

func TestRotationAbortWithdrawsRecord(t *testing.T) {
	e, _, _, _ := legoRotationLab(t)
	n, _, err := e.Stage(t.Context(), "mail", KeySpec{Type: "rsa", Bits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	if n.Algorithm != "rsa-2048" || !has(servedRecords(t, e), n.SPKI) {
		t.Fatalf("staged %+v not published", n)
	}
	if _, err := e.Abort(t.Context(), "mail"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if has(servedRecords(t, e), n.SPKI) {
		t.Error("aborted key's record still served")
	}
	if _, err := os.Stat(n.File); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("aborted key file still exists: %v", err)
	}
	if _, err := e.Commit(t.Context(), "mail", false); !errors.Is(err, ErrNoStagedKey) {
		t.Errorf("Commit without a staged key = %v", err)
	}
}

// TestRotationDualAlgorithms: an RSA and an ECDSA lineage share the owner;
// rotating the ECDSA one leaves the RSA record alone.
func TestRotationDualAlgorithms(t *testing.T) {
	dir := t.TempDir()
	e, _, _ := bindEngine(t, `
[lineage.mail-rsa]
hosts = ["mail.example.test"]
ttl = 1
provider = "lab"
allow_untrusted = true
chain_file = "`+filepath.Join(dir, "mail-rsa.pem")+`"
`)
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rc := issueRSA(t, ca, rk)
	writeFile(t, filepath.Join(dir, "mail-rsa.pem"), pemKey(t, rk), rc)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := servedRecords(t, e)
	if len(before) != 2 {
		t.Fatalf("served %v, want the ECDSA and the RSA record", before)
	}
	n, _, err := e.Stage(t.Context(), "mail", KeySpec{})
	if err != nil {
		t.Fatal(err)
	}
	after := servedRecords(t, e)
	if len(after) != 3 || !has(after, before[0]) || !has(after, before[1]) || !has(after, n.SPKI) {
		t.Fatalf("after staging the ECDSA lineage: %v", after)
	}
	if _, err := e.Abort(t.Context(), "mail"); err != nil {
		t.Fatal(err)
	}
	if got := servedRecords(t, e); len(got) != 2 || !has(got, before[0]) || !has(got, before[1]) {
		t.Errorf("after abort: %v, want the two original records", got)
	}
}

func issueRSA(t *testing.T, ca *testCA, k *rsa.PrivateKey) []byte {
	t.Helper()
	// Reuse the ECDSA issuing path by temporarily wrapping: issue with a
	// template signed by the CA for the RSA public key.
	tmplKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, c, _ := ca.issue(t, tmplKey)
	leaf := mustLeaf(t, c)
	leaf.PublicKey = k.Public()
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
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
	e := &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, LockWait: 5 * time.Second}
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
	case "stage":
		_, _, err = e.Stage(t.Context(), "mail", KeySpec{})
	case "commit":
		_, err = e.Commit(t.Context(), "mail", true)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// crashEnv names the crash point for the helper process.
const crashEnv = "DANEHOOK_TEST_CRASH"

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

// TestRotationCrashRecovery kills the process at each step boundary of
// stage and commit and checks that running the step again converges, and
// that at every point the served chain's record is still published.
func TestRotationCrashRecovery(t *testing.T) {
	for _, tc := range []struct{ step, point string }{
		{"stage", "stage:key-written"},
		{"stage", "stage:recorded"},
		{"commit", "commit:recorded"},
		{"commit", "commit:swapped"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			e, _, _, key := legoRotationLab(t)
			cfgPath := e.Config.Path
			current := servedRecords(t, e)[0]
			if tc.step == "commit" {
				if _, _, err := e.Stage(t.Context(), "mail", KeySpec{}); err != nil {
					t.Fatal(err)
				}
				waitServedEverywhere(t, e)
				// Age the record by backdating its sightings.
				dns, _ := e.loadDNS()
				for rec, servers := range dns.Seen.Owners[owner] {
					for addr := range servers {
						dns.Seen.Owners[owner][rec][addr] = time.Now().Add(-time.Hour)
					}
				}
				e.Store.Save(dnsDoc, dns)
			}
			crashChild(t, cfgPath, tc.step, tc.point)
			if !has(servedRecords(t, e), strings.Fields(current)[3]) {
				t.Fatal("the served chain's record disappeared after the crash")
			}
			// Run the step again: it converges.
			switch tc.step {
			case "stage":
				n, _, err := e.Stage(t.Context(), "mail", KeySpec{})
				if err != nil {
					t.Fatalf("Stage after crash: %v", err)
				}
				if !has(servedRecords(t, e), n.SPKI) {
					t.Error("staged record not published after rerun")
				}
				if k, err := readKey(n.File); err != nil || spkiOrEmpty(k) != n.SPKI {
					t.Errorf("staged key file does not hold the recorded key: %v", err)
				}
			case "commit":
				if _, err := e.Commit(t.Context(), "mail", true); err != nil {
					t.Fatalf("Commit after crash: %v", err)
				}
				st, _ := e.loadLineage("mail")
				k, _ := readKey(key)
				if st.Next == nil || !st.Next.Swapped || spkiOrEmpty(k) != st.Next.SPKI {
					t.Errorf("after rerun: state %+v, lego key swapped %v", st.Next, k != nil && spkiOrEmpty(k) == st.Next.SPKI)
				}
			}
		})
	}
}

func waitServedEverywhere(t *testing.T, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rs, err := e.RotationStatus(t.Context(), "mail")
		if err == nil && len(rs[0].Owners) == 1 && len(rs[0].Owners[0].Serving) == 2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("staged record not served by both servers within 10 s")
}

var _ = tlsa.UsageDANEEE
