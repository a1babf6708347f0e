package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"github.com/danehook/danehook/cmd/internal/cliapp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
)

// The fixtures in testdata/tlsa are made by testdata/tlsa/gen.sh; the golden
// outputs in testdata/tlsa/golden are refreshed with
//
//	go test ./cmd/danectl -run TestTLSAGolden -update
func init() {
	// Other test files of this package may register -update too; register
	// it only once.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func tlsaUpdateGolden() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	v, _ := g.Get().(bool)
	return v
}

const tlsaTestdata = "testdata/tlsa"

// tlsaFx names a fixture file.
func tlsaFx(name string) string { return tlsaTestdata + "/" + name }

// danectlTLSA runs "danectl tlsa args..." in-process.
func danectlTLSA(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"danectl", "tlsa"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// tlsaRDATA returns the non-comment, non-empty lines of out.
func tlsaRDATA(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestTLSAGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		// The examples of the assignment.
		{"key", []string{"--host", "mail.example.com", tlsaFx("ec-sec1.pem")}, exitOK},
		{"fullchain-ports", []string{"--host", "mail.example.com", "--port", "25", "--port", "465", tlsaFx("fullchain.pem")}, exitOK},
		{"ta-chain", []string{"--usage", "2", "--selector", "1", "--mtype", "1", "--host", "mail.example.com", tlsaFx("chain.pem")}, exitOK},
		{"check-ok", []string{"--check", "--host", "mail.example.com", "--rrset", tlsaFx("records.txt"), tlsaFx("fullchain.pem")}, exitOK},
		// More forms.
		{"check-stale", []string{"--check", "--host", "mail.example.com", "--rrset", tlsaFx("stale.txt"), tlsaFx("combined.pem")}, exitMismatch},
		{"check-ta-not-sent", []string{"--check", "--host", "mail.example.com", "--rrset", tlsaFx("records.txt"), tlsaFx("cert.pem")}, exitMismatch},
		{"check-owners-from-rrset", []string{"--check", "--rrset", tlsaFx("records.txt"), tlsaFx("combined.pem")}, exitOK},
		{"check-other-port", []string{"--check", "--host", "mail.example.com", "--port", "465", "--rrset", tlsaFx("records.txt"), tlsaFx("fullchain.pem")}, exitMismatch},
		{"check-json", []string{"--check", "--json", "--host", "mail.example.com", "--rrset", tlsaFx("stale.txt"), tlsaFx("fullchain.pem")}, exitMismatch},
		{"ttl", []string{"--ttl", "300", "--host", "mail.example.com", tlsaFx("combined.pem")}, exitOK},
		{"json", []string{"--json", "--ttl", "60", "--host", "mail.example.com", tlsaFx("ed25519.pem"), tlsaFx("ed25519.csr"), tlsaFx("rsa-pub.pem"), tlsaFx("combined-rsa.pem")}, exitOK},
		{"two-hosts", []string{"--host", "mx1.example.com", "--host", "MX2.example.com.", tlsaFx("cert.pem")}, exitOK},
		{"ta-all-cas", []string{"--usage", "2", "--host", "mail.example.com", tlsaFx("fullchain.pem"), tlsaFx("reversed.pem")}, exitOK},
		{"ta-issuer", []string{"--usage", "2", "--ta", "issuer", "--host", "mail.example.com", tlsaFx("combined.pem")}, exitOK},
		{"ta-root-ca-file", []string{"--usage", "2", "--ta", "root", "--ca-file", tlsaFx("root.pem"), "--host", "mail.example.com", tlsaFx("fullchain.pem")}, exitOK},
		{"cert-selector", []string{"--selector", "0", "--mtype", "2", "--host", "mail.example.com", tlsaFx("cert.pem")}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := danectlTLSA(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, stderr)
			}
			golden := filepath.Join(tlsaTestdata, "golden", tt.name+".golden")
			if tlsaUpdateGolden() {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out != string(want) {
				t.Errorf("stdout differs from %s:\ngot:\n%s\nwant:\n%s", golden, out, want)
			}
		})
	}
}

// TestTLSAKeyForms checks every key encoding and every file that carries the
// same key gives the same 3 1 1 record.
func TestTLSAKeyForms(t *testing.T) {
	groups := [][]string{
		{"ec-sec1.pem", "ec-pkcs8.pem", "cert.pem", "fullchain.pem", "combined.pem", "reversed.pem"},
		{"rsa-pkcs1.pem", "rsa-pub.pem", "combined-rsa.pem"},
		{"ed25519.pem", "ed25519.csr"},
	}
	seen := map[string]string{}
	for _, g := range groups {
		var first string
		for _, f := range g {
			code, out, stderr := danectlTLSA(t, "--host", "mail.example.com", tlsaFx(f))
			if code != exitOK {
				t.Fatalf("%s: exit %d: %s", f, code, stderr)
			}
			lines := tlsaRDATA(out)
			if len(lines) != 1 {
				t.Fatalf("%s: got %d records, want 1:\n%s", f, len(lines), out)
			}
			if first == "" {
				first = lines[0]
			} else if lines[0] != first {
				t.Errorf("%s: got %q, want %q (as %s)", f, lines[0], first, g[0])
			}
			if prev, ok := seen[lines[0]]; ok && prev != g[0] {
				t.Errorf("%s gives the same record as %s", f, prev)
			}
			seen[lines[0]] = g[0]
			if !strings.HasPrefix(out, "; "+tlsaFx(f)+"\n") {
				t.Errorf("%s: output does not start with the file comment:\n%s", f, out)
			}
		}
	}
}

// TestTLSAOpenSSL compares the 3 1 1 and 2 1 1 data with the openssl CLI.
func TestTLSAOpenSSL(t *testing.T) {
	testenv.Require(t, "openssl")
	spkiSHA256 := func(certFile string) string {
		pub := tlsaOpenSSL(t, nil, "x509", "-in", certFile, "-pubkey", "-noout")
		der := tlsaOpenSSL(t, pub, "pkey", "-pubin", "-outform", "DER")
		return strings.Fields(string(tlsaOpenSSL(t, der, "dgst", "-sha256", "-r")))[0]
	}
	for _, tt := range []struct {
		args []string
		cert string
	}{
		{[]string{tlsaFx("ec-sec1.pem")}, tlsaFx("cert.pem")},
		{[]string{"--usage", "2", tlsaFx("chain.pem")}, tlsaFx("chain.pem")},
		{[]string{"--usage", "2", "--ta", "root", "--ca-file", tlsaFx("root.pem"), tlsaFx("chain.pem")}, tlsaFx("root.pem")},
	} {
		code, out, stderr := danectlTLSA(t, append([]string{"--host", "mail.example.com"}, tt.args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", tt.args, code, stderr)
		}
		lines := tlsaRDATA(out)
		want := spkiSHA256(tt.cert)
		if len(lines) != 1 || !strings.HasSuffix(lines[0], " 1 1 "+want) {
			t.Errorf("%v: got %q, want data %s (openssl)", tt.args, lines, want)
		}
	}
}

// tlsaOpenSSL runs the openssl CLI with stdin and returns its standard output.
func tlsaOpenSSL(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "openssl", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// TestTLSAPostfix checks danectl prints the same records as
// "postfix tls output-server-tlsa" for RSA and ECDSA keys, in the encodings
// openssl writes by default and the ones Postfix's own key generation writes.
func TestTLSAPostfix(t *testing.T) {
	testenv.Require(t, "postfix", "openssl")
	// postfix-tls-script reads openssl_path from the default configuration
	// directory, so /etc/postfix/main.cf must exist (an empty file will do).
	// Create it only when it is missing, and leave it: other packages' tests
	// may run postfix at the same time.
	const mainCF = "/etc/postfix/main.cf"
	if _, err := os.Stat(mainCF); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(mainCF, nil, 0o644); err != nil {
			testenv.Missing(t, "an empty "+mainCF+" for postfix tls: "+err.Error())
		}
	}
	dir := t.TempDir()
	keys := map[string][]string{
		"rsa-pkcs8.pem": {"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"},
		"rsa-pkcs1.pem": {"genrsa", "-traditional", "2048"},
		"ec-pkcs8.pem":  {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		"ec-sec1.pem":   {"ecparam", "-param_enc", "named_curve", "-genkey", "-name", "prime256v1"},
		"ec-p384.pem":   {"ecparam", "-param_enc", "named_curve", "-genkey", "-name", "secp384r1"},
	}
	for name, args := range keys {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name) // postfix takes relative names from its config directory
			if err := os.WriteFile(path, tlsaOpenSSL(t, nil, args...), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), "postfix", "tls", "output-server-tlsa", "-h", "mail.example.test", path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			pf, err := cmd.Output()
			if err != nil {
				t.Fatalf("postfix tls output-server-tlsa: %v: %s", err, stderr.String())
			}
			code, out, derr := danectlTLSA(t, "--host", "mail.example.test", path)
			if code != exitOK {
				t.Fatalf("danectl tlsa: exit %d: %s", code, derr)
			}
			got, want := tlsaRDATA(out), tlsaRDATA(string(pf))
			if len(want) != 1 || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("danectl tlsa:\n%s\npostfix tls output-server-tlsa:\n%s", out, pf)
			}
		})
	}
}

func TestTLSAStdin(t *testing.T) {
	records, err := os.ReadFile(tlsaFx("records.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		input string
		ok    bool
	}{
		{"records", string(records), true},
		{"bare", strings.Join(tlsaRDATA(strings.ReplaceAll(string(records), "_25._tcp.mail.example.com. 300 IN TLSA ", "")), "\n"), true},
		{"stale", "3 1 1 0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			app := newApp(&out, &errb)
			app.Reader = strings.NewReader(tt.input)
			err := app.Run([]string{"danectl", "tlsa", "--check", "--host", "mail.example.com", "--rrset", "-", tlsaFx("fullchain.pem")})
			if tt.ok && err != nil {
				t.Fatalf("got %v, want success\n%s", err, out.String())
			}
			if !tt.ok {
				var ee *cliapp.Error
				if !errors.As(err, &ee) || ee.Code != exitMismatch {
					t.Fatalf("got %v, want exit code %d", err, exitMismatch)
				}
			}
		})
	}
}

// TestTLSACheckJSON decodes the --check --json report.
func TestTLSACheckJSON(t *testing.T) {
	code, out, _ := danectlTLSA(t, "--check", "--json", "--host", "mail.example.com", "--rrset", tlsaFx("records.txt"), tlsaFx("combined.pem"))
	if code != exitOK {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	var rep struct {
		OK     bool `json:"ok"`
		Owners []struct {
			Owner   string `json:"owner"`
			OK      bool   `json:"ok"`
			Records []struct {
				Record  string `json:"record"`
				Matches []struct {
					Depth int `json:"depth"`
				} `json:"matches"`
			} `json:"records"`
		} `json:"owners"`
		Findings []json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if !rep.OK || len(rep.Owners) != 1 || !rep.Owners[0].OK || len(rep.Owners[0].Records) != 2 || len(rep.Findings) != 0 {
		t.Fatalf("unexpected report:\n%s", out)
	}
	for i, wantDepth := range []int{0, 1} {
		r := rep.Owners[0].Records[i]
		if len(r.Matches) != 1 || r.Matches[0].Depth != wantDepth {
			t.Errorf("record %s: matches %v, want depth %d", r.Record, r.Matches, wantDepth)
		}
	}
}

func TestTLSAJSON(t *testing.T) {
	code, out, stderr := danectlTLSA(t, "--json", "--host", "mail.example.com", "--port", "25", "--port", "465", tlsaFx("combined.pem"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2:\n%s", len(recs), out)
	}
	for _, key := range []string{"owner", "ttl", "usage", "selector", "matching_type", "data", "file", "subject"} {
		if _, ok := recs[0][key]; !ok {
			t.Errorf("JSON record lacks %q: %v", key, recs[0])
		}
	}
	if recs[0]["owner"] != "_25._tcp.mail.example.com." || recs[1]["owner"] != "_465._tcp.mail.example.com." {
		t.Errorf("owners = %v, %v", recs[0]["owner"], recs[1]["owner"])
	}
}

// TestTLSAErrors checks bad input exits 2 with a message naming the problem.
func TestTLSAErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRRset := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(badRRset, []byte("; ok\n3 1 1 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyRRset := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(emptyRRset, []byte("; nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := []string{"--host", "mail.example.com"}
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no file", host, "no FILE"},
		{"missing file", append(host, tlsaFx("nonexistent.pem")), "nonexistent.pem"},
		{"not PEM", append(host, garbage), "garbage.pem"},
		{"bad host", []string{"--host", "_25._tcp.mail.example.com", tlsaFx("cert.pem")}, "already is a TLSA owner"},
		{"ip host", []string{"--host", "192.0.2.1", tlsaFx("cert.pem")}, "IP address"},
		{"port 0", append(host, "--port", "0", tlsaFx("cert.pem")), "--port 0"},
		{"usage 4", append(host, "--usage", "4", tlsaFx("cert.pem")), "--usage 4"},
		{"selector 2", append(host, "--selector", "2", tlsaFx("cert.pem")), "--selector 2"},
		{"mtype 3", append(host, "--mtype", "3", tlsaFx("cert.pem")), "--mtype 3"},
		{"ttl", append(host, "--ttl", "-1", tlsaFx("cert.pem")), "--ttl"},
		{"selector 0 on key", append(host, "--selector", "0", tlsaFx("ec-sec1.pem")), "selector 0 needs a certificate"},
		{"selector 0 on public key", append(host, "--selector", "0", tlsaFx("rsa-pub.pem")), "selector 0"},
		{"selector 0 on csr", append(host, "--selector", "0", tlsaFx("ed25519.csr")), "selector 0"},
		{"key and other cert", append(host, tlsaFx("mismatch.pem")), "matches none"},
		{"ta from key", append(host, "--usage", "2", tlsaFx("ec-sec1.pem")), "holds no certificate"},
		{"ta leaf only", append(host, "--usage", "2", tlsaFx("cert.pem")), "no CA certificate"},
		{"ta issuer leaf only", append(host, "--usage", "2", "--ta", "issuer", tlsaFx("cert.pem")), "no issuer"},
		{"ta root not in system store", append(host, "--usage", "2", "--ta", "root", tlsaFx("fullchain.pem")), "trust anchor not found"},
		{"ta root bad ca-file", append(host, "--usage", "2", "--ta", "root", "--ca-file", tlsaFx("nonexistent.pem"), tlsaFx("fullchain.pem")), "nonexistent.pem"},
		{"ta without usage 2", append(host, "--ta", "root", tlsaFx("fullchain.pem")), "--usage 2"},
		{"ta bad mode", append(host, "--usage", "2", "--ta", "leaf", tlsaFx("fullchain.pem")), "--ta \"leaf\""},
		{"ca-file without ta root", append(host, "--ca-file", tlsaFx("root.pem"), tlsaFx("fullchain.pem")), "--ta root"},
		{"check without rrset", append(host, "--check", tlsaFx("fullchain.pem")), "--rrset"},
		{"rrset without check", append(host, "--rrset", tlsaFx("records.txt"), tlsaFx("fullchain.pem")), "--check"},
		{"check with usage", append(host, "--check", "--usage", "2", "--rrset", tlsaFx("records.txt"), tlsaFx("fullchain.pem")), "no effect"},
		{"check missing rrset", append(host, "--check", "--rrset", tlsaFx("nonexistent.txt"), tlsaFx("fullchain.pem")), "nonexistent.txt"},
		{"check empty digest", append(host, "--check", "--rrset", badRRset, tlsaFx("fullchain.pem")), "line 2"},
		{"check empty rrset", append(host, "--check", "--rrset", emptyRRset, tlsaFx("fullchain.pem")), "no TLSA record"},
		{"check key only", append(host, "--check", "--rrset", tlsaFx("records.txt"), tlsaFx("ec-sec1.pem")), "no certificate"},
		{"unknown flag", append(host, "--frobnicate", tlsaFx("cert.pem")), "frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := danectlTLSA(t, tt.args...)
			if code != exitUsage {
				t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitUsage, out, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not mention %q:\n%s", tt.want, stderr)
			}
			if !strings.HasPrefix(stderr, "danectl: error: ") {
				t.Errorf("stderr does not start with \"danectl: error: \":\n%s", stderr)
			}
		})
	}
}

// TestTLSAWarnings checks that records a sender would not use are printed
// with a warning on stderr and exit 0.
func TestTLSAWarnings(t *testing.T) {
	for _, tt := range []struct {
		args []string
		id   string
	}{
		{[]string{"--selector", "0", tlsaFx("cert.pem")}, "dane-ee-cert-selector"},
		{[]string{"--mtype", "0", tlsaFx("cert.pem")}, "full-data"},
		{[]string{"--usage", "2", "--selector", "0", tlsaFx("fullchain.pem")}, "dane-ta-cert-selector"},
		{[]string{"--usage", "1", tlsaFx("cert.pem")}, "pkix-usage-smtp"},
	} {
		code, out, stderr := danectlTLSA(t, append([]string{"--host", "mail.example.com"}, tt.args...)...)
		if code != exitOK || len(tlsaRDATA(out)) != 1 {
			t.Errorf("%v: exit %d, output:\n%s", tt.args, code, out)
		}
		if !strings.Contains(stderr, tt.id) {
			t.Errorf("%v: stderr lacks %q:\n%s", tt.args, tt.id, stderr)
		}
	}
	code, _, stderr := danectlTLSA(t, "--host", "mail.example.com", tlsaFx("cert.pem"))
	if code != exitOK || stderr != "" {
		t.Errorf("3 1 1: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
}

func TestTLSAHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := danectlTLSA(t, "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"Exit codes", "0  ", "1  ", "2  ", "--check", "--ta", "output-server-tlsa"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
