package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/postfixlab"
	"github.com/danehook/danehook/internal/testenv"
)

// TestBenchHooksSetup is scripts/bench-hooks.sh: it starts BIND and Postfix,
// makes a certbot-like live directory whose key the TLSA record pins, writes
// an env file for the script's commands and runs hyperfine on
// "bench-hooks.sh danehook" (dane-deploy + dane-reload) and "bench-hooks.sh
// shell" (the hand-written pipeline), each after "bench-hooks.sh renew"
// (a new leaf for the same key, untimed). It runs only with
// DANEHOOK_BENCH=1; DANEHOOK_BENCH_RUNS sets hyperfine's --runs (default 20).
func TestBenchHooksSetup(t *testing.T) {
	if os.Getenv("DANEHOOK_BENCH") != "1" {
		t.Skip("a benchmark: run scripts/bench-hooks.sh (DANEHOOK_BENCH=1)")
	}
	testenv.Require(t, "hyperfine", "openssl", "nsupdate")
	runs := 20
	if s := os.Getenv("DANEHOOK_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			t.Fatalf("DANEHOOK_BENCH_RUNS=%q: want a number of runs >= 2", s)
		}
		runs = n
	}
	script := filepath.Join(repoRoot, "scripts", "bench-hooks.sh")
	b := bindlab.Start(t, bindlab.Options{})
	pf := postfixlab.Start(t, postfixlab.Options{})
	dir := t.TempDir()
	live := filepath.Join(dir, "live", "mail")
	if err := os.MkdirAll(live, 0o700); err != nil {
		t.Fatal(err)
	}

	// A CA, the lineage's key and a CSR for it: "renew" signs a new leaf.
	caKey, caPEM := benchCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}}, key)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"ca.pem":      caPEM,
		"ca-key.pem":  pemKey(t, caKey),
		"mail.csr":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
		"privkey.pem": pemKey(t, key),
		"chain.pem":   caPEM,
	}
	for name, data := range files {
		d := dir
		if name == "privkey.pem" || name == "chain.pem" {
			d = live
		}
		if err := os.WriteFile(filepath.Join(d, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	w := &world{t: t, c: clients[0], bind: b, pf: pf, dir: dir, chain: pf.ChainFiles[0], state: filepath.Join(dir, "state"),
		config: filepath.Join(dir, "danehook.toml")}
	// The lineage has no certbot_lineage: the live directory is not certbot's.
	w.c.Name = "bench"
	w.writeConfig(b.KeyFile)
	// The same configuration without the watch after an UPDATE, for the
	// new-key round's third command.
	cfgText, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	noWait := filepath.Join(dir, "danehook-nowait.toml")
	if err := os.WriteFile(noWait, []byte(strings.Replace(string(cfgText), `publish_wait = "5s"`, `publish_wait = "0s"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(dir, "bench.env")
	vars := [][2]string{
		{"BIN", binDir}, {"DANEHOOK_CONFIG", w.config}, {"CONFIG_NOWAIT", noWait}, {"LIVE", live}, {"HOST", host},
		{"CSR", filepath.Join(dir, "mail.csr")}, {"CA", filepath.Join(dir, "ca.pem")}, {"CAKEY", filepath.Join(dir, "ca-key.pem")},
		{"DNS_IP", bindlab.PrimaryIP}, {"DNS_PORT", strconv.Itoa(b.Port)}, {"ZONE", zone}, {"OWNER", w.owner()},
		{"TTL", strconv.Itoa(int(b.TTL))}, {"KEYFILE", b.KeyFile}, {"CHAIN", w.chain}, {"PFDIR", pf.ConfigDir},
	}
	var sb strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&sb, "%s='%s'\n", v[0], v[1])
	}
	if err := os.WriteFile(env, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	sh := func(args ...string) {
		t.Helper()
		out, err := exec.Command(script, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
		}
	}
	// Serve the lineage's key and publish its record once, so that every
	// timed run is a same-key renewal.
	sh("renew", env)
	keyPEM, _ := os.ReadFile(filepath.Join(live, "privkey.pem"))
	certs, _ := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	postfixlab.WriteChain(t, w.chain, keyPEM, certs)
	if err := pf.Instance.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	sh("danehook", env)
	sh("shell", env)
	sh("danehook", env)
	spki := w.served().Record
	w.waitRecords(spki)
	w.verifyLive()
	// The record must be aged (2 x TTL after both servers serve it, as
	// danehook observed) for a same-key renewal to be installed at once:
	// there is no same-key shortcut. Observe, wait, and check that a
	// renewal is installed, not left pending, so that every timed run
	// installs, checks, reloads and verifies.
	w.danectl("status")
	time.Sleep(time.Duration(3*b.TTL)*time.Second + 500*time.Millisecond)
	sh("renew", env)
	sh("danehook", env)
	if st := w.lineageState(); st.Pending != nil {
		t.Fatalf("a same-key renewal with an aged record is pending: %+v", st.Pending)
	}
	installedBefore := w.lineageState().Installed

	hyperfine := func(kind, prepare string, extra ...string) {
		t.Helper()
		export := filepath.Join(dir, "hyperfine-"+prepare+".json")
		q := func(args ...string) string { return "'" + strings.Join(args, "' '") + "'" }
		args := []string{"--warmup", "3", "--runs", strconv.Itoa(runs), "--export-json", export,
			"--prepare", q(script, prepare, env),
			"--command-name", "danehook: dane-deploy + dane-reload", q(script, "danehook", env)}
		for _, x := range extra {
			args = append(args, "--command-name", "danehook, publish_wait = 0s", q(script, x, env))
		}
		// The shell last: it swaps record and chain at once, which the
		// hooks then find as a served chain they did not install.
		args = append(args, "--command-name", "shell: openssl + nsupdate + cp + postfix reload", q(script, "shell", env))
		cmd := exec.Command("hyperfine", args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("\nbench-hooks: %s; BIND %s + %s, Postfix %s; env file %s\n\n", kind, b.Primary, b.Secondary, pf.Addr, env)
		if err := cmd.Run(); err != nil {
			t.Fatalf("hyperfine: %v", err)
		}
		benchReport(t, kind, export)
	}
	if d, err := time.ParseDuration(os.Getenv("DANEHOOK_BENCH_HOLD")); err == nil {
		// Keep the lab up for commands by hand (env file above).
		fmt.Printf("bench-hooks: holding the lab for %v; env file %s\n", d, env)
		time.Sleep(d)
	}
	hyperfine("same-key renewal", "renew")
	// The benchmark must not have broken anything, and every danehook run
	// installed its renewal.
	w.waitRecords(spki)
	w.verifyLive()
	if st := w.lineageState(); st.Pending != nil || !st.Installed.After(installedBefore) {
		t.Fatalf("the timed danehook runs did not install their renewals: pending %+v, installed %s (before %s)", st.Pending, st.Installed, installedBefore)
	}
	benchStrace(t, script, env, dir, sh)

	// New-key renewals: each is published and left pending (nothing aged).
	hyperfine("new-key renewal", "renew-newkey", "danehook-nowait")
	st := w.lineageState()
	if st.Pending == nil {
		t.Fatalf("after new-key renewals nothing is pending: %+v", st)
	}
	// (The shell round then swapped record and chain at once: what Postfix
	// serves afterwards is the shell's, so nothing more is asserted.)
}

// benchReport prints the means and the ratio of a hyperfine export.
func benchReport(t *testing.T, kind, export string) {
	t.Helper()
	var res struct {
		Results []struct {
			Command string  `json:"command"`
			Mean    float64 `json:"mean"`
			Stddev  float64 `json:"stddev"`
			Median  float64 `json:"median"`
		} `json:"results"`
	}
	b2, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b2, &res); err != nil || len(res.Results) < 2 {
		t.Fatalf("%s: %v (%d results)", export, err, len(res.Results))
	}
	s := res.Results[len(res.Results)-1] // the shell
	fmt.Println()
	for _, r := range res.Results {
		fmt.Printf("bench-hooks: %-50s mean %6.1f ms ± %.1f (median %.1f)\n", r.Command, r.Mean*1e3, r.Stddev*1e3, r.Median*1e3)
	}
	for i, r := range res.Results {
		if i != len(res.Results)-1 {
			fmt.Printf("bench-hooks: %s: ratio %s / shell = %.2f (medians %.2f)\n", kind, r.Command, r.Mean/s.Mean, r.Median/s.Median)
		}
	}
}

// benchStrace runs one more same-key renewal under strace and prints which
// files under the lab directory it opened and renamed (issue 10: read once,
// saved once).
func benchStrace(t *testing.T, script, env, dir string, sh func(...string)) {
	t.Helper()
	// Where one renewal's data is read and written (issue 10: read once,
	// saved once): one more renewal under strace, when it is installed.
	if _, err := exec.LookPath("strace"); err == nil {
		sh("renew", env)
		trace := filepath.Join(dir, "strace.txt")
		out, err := exec.Command("strace", "-f", "-qq", "-e", "trace=openat,rename,renameat,renameat2", "-o", trace, script, "danehook", env).CombinedOutput()
		if err != nil {
			t.Fatalf("strace: %v\n%s", err, out)
		}
		data, _ := os.ReadFile(trace)
		counts := map[string]int{}
		for _, line := range strings.Split(string(data), "\n") {
			i := strings.Index(line, "\"")
			if i < 0 || strings.Contains(line, "ENOENT") {
				continue
			}
			rest := line[i+1:]
			j := strings.Index(rest, "\"")
			if j < 0 {
				continue
			}
			path := rest[:j]
			if !strings.HasPrefix(path, dir) {
				continue
			}
			op := "open"
			if strings.Contains(line, "rename") {
				op = "rename"
			}
			counts[op+" "+strings.TrimPrefix(path, dir+"/")]++
		}
		keys := make([]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if tl := os.Getenv("DANEHOOK_BENCH_TIMELINE"); tl != "" {
			sh("renew", env)
			out, err := exec.Command("strace", "-f", "-qq", "-ttt", "-e", "trace=execve,connect,exit_group,wait4", "-o", tl, script, "danehook", env).CombinedOutput()
			if err != nil {
				t.Fatalf("strace: %v\n%s", err, out)
			}
		}
		fmt.Printf("\nbench-hooks: strace of one same-key renewal (dane-deploy + dane-reload), files under the lab directory:\n")
		for _, k := range keys {
			fmt.Printf("bench-hooks:   %2d × %s\n", counts[k], k)
		}
	}
}

// benchCA makes a self-signed ECDSA CA and returns its key and PEM.
func benchCA(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "danehook bench CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
