package judgelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/testenv"
)

// Algorithm selects the server key algorithm a judge run forces.
type Algorithm string

// The algorithms a judge runs with: Default is what an OpenSSL sender
// negotiates (the ECDSA chain when Postfix serves both); RSA and ECDSA force
// that key by cipher list (aRSA:!aECDSA / aECDSA:!aRSA), which needs TLS ≤
// 1.2, because TLS 1.3 cipher suites do not name the key type.
const (
	Default Algorithm = "default"
	RSA     Algorithm = "rsa"
	ECDSA   Algorithm = "ecdsa"
)

// Algorithms lists every Algorithm.
var Algorithms = []Algorithm{Default, RSA, ECDSA}

// CApath is the OpenSSL CA directory handed to posttls-finger (-P). DANE-EE
// (3 x x) needs no CA; it matters for the "secure" fallback posttls-finger
// reports when no TLSA records exist.
const CApath = "/etc/ssl/certs/"

// CheckTimeout bounds one judge run (posttls-finger's own connection and
// command timeouts are 10 s each).
const CheckTimeout = 30 * time.Second

// Judge is Postfix's own DANE client, posttls-finger -c -l dane-only,
// asking the lab Resolver for TLSA records. Its methods are safe for
// concurrent use.
type Judge struct {
	Resolver *Resolver
	// Dirs holds, per Algorithm, the MAIL_CONFIG directory with the main.cf
	// that run uses.
	Dirs map[Algorithm]string
}

// NewJudge writes one MAIL_CONFIG directory per Algorithm under
// t.TempDir() and returns a Judge using r. It needs posttls-finger,
// unshare, mount and sh, and root (for the private mount namespace).
func NewJudge(t testing.TB, r *Resolver) *Judge {
	t.Helper()
	testenv.Require(t, "posttls-finger", "unshare", "mount", "sh")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (the judge bind-mounts resolv.conf in a private mount namespace)")
	}
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatalf("judgelab: %v", err)
	}
	j := &Judge{Resolver: r, Dirs: map[Algorithm]string{}}
	for _, alg := range Algorithms {
		dir := filepath.Join(base, string(alg))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("judgelab: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte(mainCF(alg)), 0o644); err != nil {
			t.Fatalf("judgelab: %v", err)
		}
		j.Dirs[alg] = dir
	}
	return j
}

// mainCF is the judge's main.cf for alg.
func mainCF(alg Algorithm) string {
	lines := []string{
		"# judgelab: posttls-finger as a DANE sender (" + string(alg) + ")",
		"compatibility_level = 3.6",
		"smtp_dns_support_level = dnssec",
		"smtp_host_lookup = dns",
		"inet_protocols = ipv4",
		"smtp_tls_loglevel = 1",
		"maillog_file = /dev/stdout",
		"maillog_file_prefixes = /dev/stdout",
	}
	switch alg {
	case RSA:
		lines = append(lines,
			"tls_high_cipherlist = aRSA:!aECDSA",
			"tls_medium_cipherlist = aRSA:!aECDSA",
			"smtp_tls_protocols = <=TLSv1.2",
			"smtp_tls_mandatory_protocols = <=TLSv1.2")
	case ECDSA:
		lines = append(lines,
			"tls_high_cipherlist = aECDSA:!aRSA",
			"tls_medium_cipherlist = aECDSA:!aRSA",
			"smtp_tls_protocols = <=TLSv1.2",
			"smtp_tls_mandatory_protocols = <=TLSv1.2")
	}
	return strings.Join(lines, "\n") + "\n"
}

// Verdict is the outcome of one judge run.
type Verdict struct {
	At   time.Time // when the run started
	Took time.Duration
	Host string
	Port int
	Alg  Algorithm

	// Verified: posttls-finger printed "Verified TLS connection
	// established": the chain matched a validated TLSA record.
	Verified bool
	// NoTLSA: "no TLSA records found" — the sender does no DANE for this
	// destination (not a failure by itself).
	NoTLSA bool
	// Untrusted: the connection was "Untrusted", or the chain failed
	// verification (num=65: no matching DANE TLSA records): a DANE sender
	// defers the mail.
	Untrusted bool
	// Matched is the TLSA record posttls-finger reports it matched
	// ("3 1 1 <HEX>"), "" when none.
	Matched string
	// Key is the SHA-256 of the presented leaf's SubjectPublicKeyInfo in
	// lower-case hex (posttls-finger's pkey_fingerprint): the data of the
	// leaf's 3 1 1 record. "" when no certificate was presented.
	Key string
	// Line is the one output line that decided, trimmed.
	Line string
	// Output is all of posttls-finger's output (for timelines).
	Output string
	// Err says the judge could not run (not a verdict): posttls-finger or
	// the mount namespace could not start, or the run was cut short.
	Err error
}

// OK reports whether the run is not a failure: Verified, or NoTLSA (no
// DANE at all).
func (v Verdict) OK() bool { return v.Err == nil && (v.Verified || v.NoTLSA) }

// String is one timeline line: "[host]:port alg: VERDICT (took) line".
func (v Verdict) String() string {
	word := "FAIL"
	switch {
	case v.Err != nil:
		word = "ERROR"
	case v.Verified:
		word = "Verified"
	case v.NoTLSA:
		word = "no-TLSA"
	case v.Untrusted:
		word = "UNTRUSTED"
	}
	s := fmt.Sprintf("[%s]:%d %s: %s (%.1f s)", v.Host, v.Port, v.Alg, word, v.Took.Seconds())
	if v.Key != "" {
		s += " key " + shortHex(v.Key)
	}
	if v.Matched != "" && v.Verified {
		s += " matched " + shortRecord(v.Matched)
	}
	if v.Line != "" && !v.Verified {
		s += ": " + v.Line
	}
	if v.Err != nil {
		s += ": " + v.Err.Error()
	}
	return s
}

func shortHex(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

// shortRecord shortens the data of a "3 1 1 HEX" record for timelines.
func shortRecord(rec string) string {
	f := strings.Fields(rec)
	if len(f) == 4 && len(f[3]) > 16 {
		f[3] = strings.ToLower(f[3][:16]) + "…"
	}
	return strings.Join(f, " ")
}

// script runs posttls-finger in the private mount namespace unshare -m
// made: $1 is the lab resolv.conf, $2 the MAIL_CONFIG directory, the rest
// posttls-finger's arguments. unshare makes the namespace's mounts private,
// so the bind mount never reaches the host's /etc/resolv.conf.
const script = `mount --bind "$1" /etc/resolv.conf || exit 97
MAIL_CONFIG="$2"; export MAIL_CONFIG; shift 2
exec posttls-finger "$@"`

// Check runs posttls-finger -c -l dane-only -P CApath "[host]:port" with
// alg's main.cf (and -p "<=TLSv1.2" for RSA and ECDSA) and returns its
// verdict. The TLSA owner posttls-finger asks for is _<port>._tcp.<host>.
// (RFC 7672 §2.2), so port is both where Postfix listens and the port of
// the owner. A run that cannot start, or is cut short by ctx or by
// CheckTimeout, has Err set.
func (j *Judge) Check(ctx context.Context, host string, port int, alg Algorithm) Verdict {
	v := Verdict{At: time.Now(), Host: host, Port: port, Alg: alg}
	dir, ok := j.Dirs[alg]
	if !ok {
		v.Err = fmt.Errorf("unknown algorithm %q", alg)
		return v
	}
	args := []string{"-c", "-l", "dane-only", "-P", CApath, "-t", "10", "-T", "10"}
	if alg != Default {
		args = append(args, "-p", "<=TLSv1.2")
	}
	args = append(args, "["+host+"]:"+strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "judge",
		j.Resolver.ResolvConf, dir}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	v.Took = time.Since(v.At)
	v.Output = out.String()
	if ctx.Err() != nil {
		v.Err = fmt.Errorf("posttls-finger %s cut short after %.1f s: %w", args[len(args)-1], v.Took.Seconds(), ctx.Err())
		return v
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		v.Err = fmt.Errorf("run posttls-finger: %w", err)
		return v
	}
	if err != nil && ee.ExitCode() == 97 {
		v.Err = fmt.Errorf("mount --bind %s /etc/resolv.conf in a private namespace: %s", j.Resolver.ResolvConf, strings.TrimSpace(v.Output))
		return v
	}
	parse(&v)
	if err != nil && v.Line == "" {
		v.Err = fmt.Errorf("posttls-finger: %v: %s", err, strings.TrimSpace(v.Output))
	}
	return v
}

// parse reads posttls-finger's output into v's verdict fields.
func parse(v *Verdict) {
	var established, noTLSA, verifyErr, last string
	for _, raw := range strings.Split(v.Output, "\n") {
		l := strings.TrimSpace(raw)
		if l == "" {
			continue
		}
		// maillog_file lines carry a date and "posttls-finger[pid]:"; the
		// stderr copy "posttls-finger: ". Keep the message.
		if i := strings.Index(l, "posttls-finger"); i >= 0 {
			if j := strings.Index(l[i:], ": "); j >= 0 {
				l = l[i+j+2:]
			}
		}
		last = l
		switch {
		case strings.Contains(l, "TLS connection established"):
			if established == "" {
				established = l
			}
		case strings.Contains(l, "no TLSA records found"):
			noTLSA = l
		case strings.Contains(l, "num=65") || strings.Contains(l, "no matching DANE TLSA records"):
			verifyErr = l
		}
		if i := strings.Index(l, "pkey_fingerprint="); i >= 0 && v.Key == "" {
			fp := l[i+len("pkey_fingerprint="):]
			if j := strings.IndexAny(fp, ", "); j >= 0 {
				fp = fp[:j]
			}
			v.Key = strings.ToLower(strings.ReplaceAll(fp, ":", ""))
		}
		if i := strings.Index(l, "Matched DANE "); i >= 0 {
			if j := strings.Index(l[i:], ": "); j >= 0 && v.Matched == "" {
				v.Matched = strings.TrimSpace(l[i+j+2:])
			}
		}
	}
	v.Verified = strings.HasPrefix(established, "Verified TLS connection established")
	v.NoTLSA = noTLSA != ""
	v.Untrusted = strings.HasPrefix(established, "Untrusted TLS connection established") || verifyErr != ""
	switch {
	case v.Verified:
		v.Line = established
	case v.NoTLSA:
		v.Line = noTLSA
	case verifyErr != "":
		v.Line = verifyErr
	case established != "":
		v.Line = established
	default:
		v.Line = last
	}
}

// Target is one destination a Sampler judges: posttls-finger
// "[Host]:Port" with Alg.
type Target struct {
	Host string
	Port int
	Alg  Algorithm
}

func (t Target) String() string {
	return fmt.Sprintf("%s %s", net.JoinHostPort(t.Host, strconv.Itoa(t.Port)), t.Alg)
}
