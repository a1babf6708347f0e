package acmelab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/danehook/danehook/pkg/tlsa"
)

const domain = "mail.example.test"

func TestCheckDNSServer(t *testing.T) {
	tests := []struct {
		in Options
		ok bool
	}{
		{Options{DNSServer: "127.0.0.1:5353"}, true},
		{Options{DNSServer: "127.0.0.2:53"}, true},
		{Options{DNSServer: "[::1]:5353"}, true},
		{Options{DNSServer: ""}, false},
		{Options{DNSServer: "127.0.0.1"}, false},
		{Options{DNSServer: "10.255.255.53:53"}, false},
		{Options{DNSServer: "localhost:53"}, false},
		{Options{DNSServer: "127.0.0.1:0"}, false},
		{Options{DNSServer: "127.0.0.1:http"}, false},
	}
	for _, tt := range tests {
		err := checkDNSServer(tt.in.DNSServer)
		if got := err == nil; got != tt.ok {
			t.Errorf("checkDNSServer(%q) = %v, want ok=%v", tt.in.DNSServer, err, tt.ok)
		}
	}
}

func TestHTTPSCerts(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool, err := writeHTTPSCerts(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode: got %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatalf("load key pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	filePool := x509.NewCertPool()
	if !filePool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", ca)
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		for _, p := range []*x509.CertPool{pool, filePool} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: p}); err != nil {
				t.Errorf("verify server certificate for %q: %v", name, err)
			}
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.test", Roots: pool}); err == nil {
		t.Errorf("server certificate verified for example.test, want an error")
	}
}

func TestLoopbackDNS(t *testing.T) {
	addr := LoopbackDNS(t)
	tests := []struct {
		net   string
		qtype uint16
		want  int // answers
	}{
		{"udp", dns.TypeA, 1},
		{"tcp", dns.TypeA, 1},
		{"tcp", dns.TypeAAAA, 0},
		{"udp", dns.TypeTXT, 0},
	}
	for _, tt := range tests {
		c := &dns.Client{Net: tt.net, Timeout: 2 * time.Second}
		q := new(dns.Msg)
		q.SetQuestion("Mail.Example.Test.", tt.qtype)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.net, dns.TypeToString[tt.qtype], err)
		}
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != tt.want {
			t.Errorf("%s %s: got rcode %s aa=%v %d answers, want NOERROR aa=true %d answers",
				tt.net, dns.TypeToString[tt.qtype], dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer), tt.want)
		}
		if tt.want == 1 {
			if a, ok := r.Answer[0].(*dns.A); !ok || !a.A.Equal(net.IPv4(127, 0, 0, 1)) || a.Hdr.Name != "Mail.Example.Test." {
				t.Errorf("%s A: got %v, want Mail.Example.Test. A 127.0.0.1", tt.net, r.Answer[0])
			}
		}
	}
}

func TestTool(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "lego")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sh"), []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DANEHOOK_TOOLS", dir)
	shPath, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh on PATH: %v", err)
	}
	tests := []struct {
		name, want string
		notFound   bool
	}{
		{"lego", exe, false},                // the tools directory comes first
		{"sh", shPath, false},               // not executable there: PATH
		{"danehook-no-such-tool", "", true}, // neither
	}
	for _, tt := range tests {
		got, err := Tool(tt.name)
		if got != tt.want || errors.Is(err, exec.ErrNotFound) != tt.notFound {
			t.Errorf("Tool(%q) = %q, %v; want %q, not found %v", tt.name, got, err, tt.want, tt.notFound)
		}
	}
}

func TestPebbleEnv(t *testing.T) {
	got := pebbleEnv([]string{"PATH=/bin", "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_AUTHZREUSE=100"}, false)
	want := []string{"PATH=/bin", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	if !slices.Equal(got, want) {
		t.Errorf("pebbleEnv(alwaysValid=false) = %q, want %q", got, want)
	}
	got = pebbleEnv(nil, true)
	if !slices.Contains(got, "PEBBLE_VA_ALWAYS_VALID=1") {
		t.Errorf("pebbleEnv(alwaysValid=true) = %q, want PEBBLE_VA_ALWAYS_VALID=1", got)
	}
}

func TestStart(t *testing.T) {
	lab := Start(t, Options{DNSServer: LoopbackDNS(t)})

	if !strings.HasPrefix(lab.DirectoryURL, "https://127.0.0.1:") || !strings.HasSuffix(lab.DirectoryURL, "/dir") {
		t.Errorf("DirectoryURL = %q, want https://127.0.0.1:PORT/dir", lab.DirectoryURL)
	}
	ports := []int{lab.HTTPPort, lab.TLSPort}
	for _, u := range []string{lab.DirectoryURL, lab.ManagementURL} {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(pu.Port())
		if err != nil || pu.Hostname() != "127.0.0.1" {
			t.Fatalf("URL %q: want https://127.0.0.1:PORT", u)
		}
		ports = append(ports, n)
	}
	slices.Sort(ports)
	if len(slices.Compact(ports)) != 4 {
		t.Errorf("ports %v: want 4 distinct ports", ports)
	}

	// The directory is served with the lab's CA, and only that CA.
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(lab.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	c := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(lab.DirectoryURL)
	if err != nil {
		t.Fatalf("GET directory with CACertFile: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET directory: got %s, want 200", resp.Status)
	}

	root := parseCerts(t, lab.Root(t))
	inter := parseCerts(t, lab.Intermediate(t))
	if len(root) != 1 || len(inter) != 1 {
		t.Fatalf("got %d root and %d intermediate certificates, want 1 and 1", len(root), len(inter))
	}
	if !root[0].IsCA || !inter[0].IsCA {
		t.Errorf("root IsCA=%v, intermediate IsCA=%v, want both true", root[0].IsCA, inter[0].IsCA)
	}
	if err := inter[0].CheckSignatureFrom(root[0]); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	if got := parseCerts(t, lab.Roots(t)); len(got) != 2 || !got[0].Equal(root[0]) || !got[1].Equal(inter[0]) {
		t.Errorf("Roots: got %d certificates, want root then intermediate", len(got))
	}

	env := lab.Env()
	for _, want := range []string{"REQUESTS_CA_BUNDLE=" + lab.CACertFile, "LEGO_CA_CERTIFICATES=" + lab.CACertFile} {
		if !slices.Contains(env, want) {
			t.Errorf("Env() = %q, missing %q", env, want)
		}
	}
}

func TestCertbot(t *testing.T) {
	t.Parallel()
	certbot := RequireTool(t, Certbot)
	// Real HTTP-01: Pebble resolves mail.example.test at LoopbackDNS and
	// fetches the token from certbot's standalone server on HTTPPort.
	lab := Start(t, Options{DNSServer: LoopbackDNS(t)})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "certbot")
	dump := filepath.Join(dir, "hook.env")
	hook := "env > " + dump // certbot runs hooks with sh -c

	run(t, dir, lab, certbot, append(append([]string{"certonly"}, lab.CertbotArgs(cfg)...),
		"--key-type", "ecdsa", "--reuse-key", "--cert-name", "mail", "-d", domain, "--deploy-hook", hook)...)
	live := filepath.Join(cfg, "live", "mail")
	spki1 := checkLineage(t, lab, filepath.Join(live, "privkey.pem"), filepath.Join(live, "fullchain.pem"))
	env := readEnv(t, dump)
	if env["RENEWED_LINEAGE"] != live || env["RENEWED_DOMAINS"] != domain {
		t.Errorf("deploy hook env: RENEWED_LINEAGE=%q RENEWED_DOMAINS=%q, want %q and %q",
			env["RENEWED_LINEAGE"], env["RENEWED_DOMAINS"], live, domain)
	}
	os.Remove(dump)

	// renew must not sleep (CertbotArgs has --no-random-sleep-on-renew); the
	// stored deploy hook runs again and the key is reused.
	run(t, dir, lab, certbot, append(append([]string{"renew"}, lab.CertbotArgs(cfg)...), "--force-renewal")...)
	if _, err := os.Stat(filepath.Join(cfg, "archive", "mail", "cert2.pem")); err != nil {
		t.Errorf("after renew: %v", err)
	}
	if spki2 := checkLineage(t, lab, filepath.Join(live, "privkey.pem"), filepath.Join(live, "fullchain.pem")); spki2 != spki1 {
		t.Errorf("renew with reuse_key: key SPKI %s, want unchanged %s", spki2, spki1)
	}
	if env := readEnv(t, dump); env["RENEWED_LINEAGE"] != live {
		t.Errorf("stored deploy hook on renew: RENEWED_LINEAGE=%q, want %q", env["RENEWED_LINEAGE"], live)
	}
}

func TestLegoV5(t *testing.T) {
	t.Parallel()
	lego := RequireTool(t, LegoV5)
	lab := Start(t, Options{DNSServer: LoopbackDNS(t)})
	dir := t.TempDir()
	path := filepath.Join(dir, "lego")
	hooks := map[string]string{}
	var hookFlags []string
	for _, h := range []string{"pre", "deploy", "post"} {
		hooks[h] = filepath.Join(dir, h+".env")
		hookFlags = append(hookFlags, "--"+h+"-hook", envDumper(t, dir, h, hooks[h]))
	}
	args := append(lab.LegoV5Args(path), "--domains", domain, "--key-type", "EC256")
	args = append(args, hookFlags...)

	run(t, dir, lab, lego, args...)
	certs := filepath.Join(path, "certificates")
	crt, key, issuer := filepath.Join(certs, domain+".crt"), filepath.Join(certs, domain+".key"), filepath.Join(certs, domain+".issuer.crt")
	spki1 := checkLineage(t, lab, key, crt)
	checkIssuer(t, lab, issuer)
	if b, _ := os.ReadFile(key); !bytes.Contains(b, []byte("BEGIN PRIVATE KEY")) {
		t.Errorf("lego v5 key file: want PKCS#8 (BEGIN PRIVATE KEY), got %.40q", b)
	}
	deploy := readEnv(t, hooks["deploy"])
	for k, want := range map[string]string{
		"LEGO_HOOK_CERT_PATH":        crt,
		"LEGO_HOOK_CERT_KEY_PATH":    key,
		"LEGO_HOOK_ISSUER_CERT_PATH": issuer,
		"LEGO_HOOK_CERT_NAME":        domain,
		"LEGO_HOOK_CERT_DOMAINS":     domain,
		"LEGO_HOOK_ACCOUNT_EMAIL":    Email,
	} {
		if deploy[k] != want {
			t.Errorf("deploy hook: %s=%q, want %q", k, deploy[k], want)
		}
	}
	pre := readEnv(t, hooks["pre"])
	if pre["LEGO_HOOK_CERT_NAME"] != domain || pre["LEGO_HOOK_CERT_PATH"] != "" {
		t.Errorf("pre hook: LEGO_HOOK_CERT_NAME=%q LEGO_HOOK_CERT_PATH=%q, want %q and unset",
			pre["LEGO_HOOK_CERT_NAME"], pre["LEGO_HOOK_CERT_PATH"], domain)
	}
	readEnv(t, hooks["post"])
	for _, f := range hooks {
		os.Remove(f)
	}

	// Not due: no hook runs. Forced with --reuse-key: same key, hooks run.
	run(t, dir, lab, lego, append(args, "--reuse-key")...)
	if _, err := os.Stat(hooks["deploy"]); err == nil {
		t.Errorf("lego run on a fresh certificate ran the deploy hook; want no renewal")
	}
	run(t, dir, lab, lego, append(args, "--reuse-key", "--renew-force")...)
	if spki2 := checkLineage(t, lab, key, crt); spki2 != spki1 {
		t.Errorf("--renew-force --reuse-key: key SPKI %s, want unchanged %s", spki2, spki1)
	}
	readEnv(t, hooks["deploy"])
}

func TestLegoV4(t *testing.T) {
	t.Parallel()
	lego := RequireTool(t, LegoV4)
	lab := Start(t, Options{DNSServer: LoopbackDNS(t)})
	dir := t.TempDir()
	path := filepath.Join(dir, "lego")
	runEnv, renewEnv := filepath.Join(dir, "run.env"), filepath.Join(dir, "renew.env")

	run(t, dir, lab, lego, append(lab.LegoV4Args(path, "run", "--domains", domain, "--key-type", "ec256"),
		"--run-hook", envDumper(t, dir, "run", runEnv))...)
	certs := filepath.Join(path, "certificates")
	crt, key, issuer := filepath.Join(certs, domain+".crt"), filepath.Join(certs, domain+".key"), filepath.Join(certs, domain+".issuer.crt")
	spki1 := checkLineage(t, lab, key, crt)
	checkIssuer(t, lab, issuer)
	if b, _ := os.ReadFile(key); !bytes.Contains(b, []byte("BEGIN EC PRIVATE KEY")) {
		t.Errorf("lego v4 key file: want SEC 1 (BEGIN EC PRIVATE KEY), got %.40q", b)
	}
	env := readEnv(t, runEnv)
	for k, want := range map[string]string{
		"LEGO_CERT_PATH":        crt,
		"LEGO_CERT_KEY_PATH":    key,
		"LEGO_ISSUER_CERT_PATH": issuer,
		"LEGO_CERT_DOMAIN":      domain,
		"LEGO_ACCOUNT_EMAIL":    Email,
	} {
		if env[k] != want {
			t.Errorf("run hook: %s=%q, want %q", k, env[k], want)
		}
	}

	renew := append(lab.LegoV4Args(path, "renew", "--domains", domain),
		"--renew-hook", envDumper(t, dir, "renew", renewEnv), "--reuse-key")
	run(t, dir, lab, lego, append(renew, "--ari-disable")...) // 90 days left > 30: no renewal
	if _, err := os.Stat(renewEnv); err == nil {
		t.Errorf("lego4 renew on a fresh certificate ran the renew hook; want no renewal")
	}
	run(t, dir, lab, lego, append(renew, "--days", "999")...)
	if spki2 := checkLineage(t, lab, key, crt); spki2 != spki1 {
		t.Errorf("renew --reuse-key: key SPKI %s, want unchanged %s", spki2, spki1)
	}
	if env := readEnv(t, renewEnv); env["LEGO_CERT_PATH"] != crt {
		t.Errorf("renew hook: LEGO_CERT_PATH=%q, want %q", env["LEGO_CERT_PATH"], crt)
	}
}

// TestAlwaysValid proves that Options.AlwaysValid skips validation (lego
// answers HTTP-01 by writing into a webroot nobody serves) and that
// Options.Validity sets the lifetime of issued certificates.
func TestAlwaysValid(t *testing.T) {
	t.Parallel()
	lego := RequireTool(t, LegoV5)
	lab := Start(t, Options{DNSServer: LoopbackDNS(t), AlwaysValid: true, Validity: 6 * 24 * time.Hour})
	dir := t.TempDir()
	path := filepath.Join(dir, "lego")
	run(t, dir, lab, lego, append(lab.LegoV5Args(path), "--domains", domain, "--http.webroot", t.TempDir())...)
	certs := filepath.Join(path, "certificates")
	checkLineage(t, lab, filepath.Join(certs, domain+".key"), filepath.Join(certs, domain+".crt"))
}

// run runs name with args in dir, with the lab's environment, and fails t
// with the output when it fails or takes longer than 2 minutes.
func run(t *testing.T, dir string, lab *Lab, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), lab.Env()...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	sub := ""
	for _, a := range args {
		if a == "run" || a == "renew" || a == "certonly" {
			sub = a
			break
		}
	}
	t.Logf("%s %s took %.1f s", filepath.Base(name), sub, time.Since(start).Seconds())
}

// envDumper writes an executable script (lego runs hooks without a shell)
// that saves its environment to out, and returns its path.
func envDumper(t *testing.T, dir, name, out string) string {
	t.Helper()
	p := filepath.Join(dir, name+"-hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nenv > '"+out+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// readEnv parses a file written by env(1).
func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not run: %v", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func parseCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatalf("parse certificate: %v", err)
		}
		certs = append(certs, c)
	}
}

// checkLineage checks that certFile starts with a leaf for mail.example.test
// that chains to Pebble's root, valid for the lab's Validity (so Pebble used
// its one profile), whose key is the one in keyFile. It returns the hex SHA-256
// of the key's SPKI (the data of a `3 1 1` TLSA record).
func checkLineage(t *testing.T, lab *Lab, keyFile, certFile string) string {
	t.Helper()
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("%s does not match %s: %v", keyFile, certFile, err)
	}
	chain := parseCerts(t, certPEM)
	if len(chain) == 0 {
		t.Fatalf("no certificate in %s", certFile)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(lab.Root(t))
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(lab.Intermediate(t))
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("verify %s against Pebble's root: %v", certFile, err)
	}
	// Pebble's NotAfter is NotBefore + validity - 1 s (RFC 5280 §4.1.2.5
	// counts both ends).
	if life, want := leaf.NotAfter.Sub(leaf.NotBefore), lab.opts.Validity; life < want-time.Minute || life > want+time.Minute {
		t.Errorf("%s lifetime %v, want about %v", certFile, life, want)
	}
	return tlsa.SPKIDigestHex(leaf)
}

// checkIssuer checks that file holds Pebble's intermediate.
func checkIssuer(t *testing.T, lab *Lab, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("issuer: %v", err)
	}
	got, want := parseCerts(t, b), parseCerts(t, lab.Intermediate(t))
	if len(got) == 0 || !got[0].Equal(want[0]) {
		t.Errorf("%s: want Pebble's intermediate first", file)
	}
}
