package dnsupdate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// DefaultTSIGAlgorithm is the TSIG algorithm used when none is given
// (RFC 8945 §6: HMAC-SHA256 is mandatory to implement).
const DefaultTSIGAlgorithm = "hmac-sha256"

// tsigAlgorithms maps the accepted algorithm names to miekg/dns's names.
// hmac-md5 is refused (RFC 8945 §6: not recommended), as are truncated MACs.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// TSIGKey is a TSIG key (RFC 8945): an absolute key name such as
// "deploy-key.", an algorithm ("hmac-sha256", also "hmac-sha1", "hmac-sha224",
// "hmac-sha384", "hmac-sha512") and the base64 secret shared with the server.
//
// String, GoString, LogValue and MarshalJSON redact the secret, so a key
// printed with fmt, logged with slog or encoded as JSON never shows it.
type TSIGKey struct {
	Name      string
	Algorithm string
	Secret    string
}

// NewTSIGKey checks and normalises a key: name made absolute and lower case,
// algorithm lower case without a trailing dot (empty means hmac-sha256), the
// secret valid non-empty base64. Errors name the key but never the secret.
func NewTSIGKey(name, algorithm, secret string) (*TSIGKey, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("tsig key: empty key name")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("tsig key %q: invalid key name", name)
	}
	name = dns.CanonicalName(name)
	alg := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(algorithm)), ".")
	if alg == "" {
		alg = DefaultTSIGAlgorithm
	}
	if _, ok := tsigAlgorithms[alg]; !ok {
		return nil, fmt.Errorf("tsig key %q: unsupported algorithm %q (use hmac-sha256, hmac-sha1, hmac-sha224, hmac-sha384 or hmac-sha512)", name, alg)
	}
	secret = strings.Join(strings.Fields(secret), "")
	if secret == "" {
		return nil, fmt.Errorf("tsig key %q: empty secret", name)
	}
	if _, err := base64.StdEncoding.DecodeString(secret); err != nil {
		return nil, fmt.Errorf("tsig key %q: secret is not valid base64", name)
	}
	return &TSIGKey{Name: name, Algorithm: alg, Secret: secret}, nil
}

// String returns `key "<name>" (<algorithm>)`, without the secret.
func (k TSIGKey) String() string {
	return fmt.Sprintf("key %q (%s)", k.Name, k.Algorithm)
}

// GoString returns a Go-syntax form with the secret redacted (for %#v).
func (k TSIGKey) GoString() string {
	return fmt.Sprintf("dnsupdate.TSIGKey{Name:%q, Algorithm:%q, Secret:\"REDACTED\"}", k.Name, k.Algorithm)
}

// LogValue implements slog.LogValuer: name and algorithm, secret redacted.
func (k TSIGKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", k.Name), slog.String("algorithm", k.Algorithm), slog.String("secret", "REDACTED"))
}

// MarshalJSON encodes the key with the secret redacted.
func (k TSIGKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"name": k.Name, "algorithm": k.Algorithm, "secret": "REDACTED"})
}

// dnsAlgorithm returns the algorithm as miekg/dns names it ("hmac-sha256.").
func (k *TSIGKey) dnsAlgorithm() string {
	if a, ok := tsigAlgorithms[strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")]; ok {
		return a
	}
	if k.Algorithm == "" {
		return dns.HmacSHA256
	}
	return dns.Fqdn(strings.ToLower(k.Algorithm))
}

// LoadTSIGKeyFile reads a BIND key file as written by
// `tsig-keygen -a hmac-sha256 <name>` (and read by `nsupdate -k`):
//
//	key "deploy-key" {
//		algorithm hmac-sha256;
//		secret "base64…";
//	};
//
// The file must hold exactly one key and must not be accessible by group or
// others (mode 0600 or 0400); otherwise the error names the file and says to
// run chmod 600. Errors never contain the secret.
func LoadTSIGKeyFile(path string) (*TSIGKey, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseTSIGKey(data)
	if err != nil {
		return nil, fmt.Errorf("key file %q: %w", path, err)
	}
	return k, nil
}

// TSIGKeyFromSecretFile builds a key from its name and algorithm (empty:
// hmac-sha256) and a file holding only the base64 secret (surrounding white
// space ignored). The file is refused when accessible by group or others.
func TSIGKeyFromSecretFile(name, algorithm, path string) (*TSIGKey, error) {
	data, err := readPrivateFile(path)
	if err != nil {
		return nil, err
	}
	k, err := NewTSIGKey(name, algorithm, string(data))
	if err != nil {
		return nil, fmt.Errorf("secret file %q: %w", path, err)
	}
	return k, nil
}

// TSIGKeyFromEnv builds a key from its name and algorithm (empty:
// hmac-sha256) and the base64 secret in the environment variable env. An
// unset or empty variable is an error naming the variable.
func TSIGKeyFromEnv(name, algorithm, env string) (*TSIGKey, error) {
	secret := os.Getenv(env)
	if strings.TrimSpace(secret) == "" {
		return nil, fmt.Errorf("tsig key %q: environment variable %s is unset or empty", name, env)
	}
	k, err := NewTSIGKey(name, algorithm, secret)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", env, err)
	}
	return k, nil
}

// readPrivateFile reads a file that holds a secret, refusing it when its
// mode grants any permission to group or others.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %q is accessible by group or others (mode %04o): run chmod 600 %q", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read key file %q: %w", path, err)
	}
	return data, nil
}

// ParseTSIGKey parses the text of a BIND key file holding one key statement
// (see LoadTSIGKeyFile). It accepts #, // and /* */ comments, any white
// space, quoted or bare key names and algorithm names with or without a
// trailing dot. Errors give line numbers and never quote the secret.
func ParseTSIGKey(data []byte) (*TSIGKey, error) {
	toks, err := lexBIND(string(data))
	if err != nil {
		return nil, err
	}
	p := &keyParser{toks: toks}
	var keys []*TSIGKey
	for !p.done() {
		t := p.next()
		if t.kind != tokWord || !strings.EqualFold(t.text, "key") {
			return nil, fmt.Errorf("line %d: expected a key statement", t.line)
		}
		k, err := p.keyBody()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	switch len(keys) {
	case 0:
		return nil, errors.New("no key statement found")
	case 1:
		return keys[0], nil
	default:
		return nil, fmt.Errorf("%d key statements found, want exactly one", len(keys))
	}
}

type tokKind int

const (
	tokWord tokKind = iota
	tokString
	tokPunct // { } ;
)

type token struct {
	kind tokKind
	text string
	line int
}

// lexBIND splits named.conf-style text into words, quoted strings and the
// punctuation { } ;, dropping comments.
func lexBIND(s string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || (c == '/' && i+1 < len(s) && s[i+1] == '/'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			start := line
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated /* comment", start)
			}
			line += strings.Count(s[i:i+2+end], "\n")
			i += 2 + end + 2
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{tokPunct, string(c), line})
			i++
		case c == '"':
			start := line
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				if s[j] == '\n' {
					line++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("line %d: unterminated quoted string", start)
			}
			toks = append(toks, token{tokString, b.String(), start})
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\f\v{};\"#", rune(s[j])) &&
				!(s[j] == '/' && j+1 < len(s) && (s[j+1] == '/' || s[j+1] == '*')) {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], line})
			i = j
		}
	}
	return toks, nil
}

type keyParser struct {
	toks []token
	pos  int
}

func (p *keyParser) done() bool { return p.pos >= len(p.toks) }

func (p *keyParser) next() token {
	if p.done() {
		line := 1
		if len(p.toks) > 0 {
			line = p.toks[len(p.toks)-1].line
		}
		return token{kind: tokPunct, text: "EOF", line: line}
	}
	t := p.toks[p.pos]
	p.pos++
	return t
}

func (p *keyParser) expect(punct string) error {
	t := p.next()
	if t.kind != tokPunct || t.text != punct {
		return fmt.Errorf("line %d: expected %q", t.line, punct)
	}
	return nil
}

// keyBody parses `<name> { algorithm <alg>; secret "<b64>"; };` after "key".
func (p *keyParser) keyBody() (*TSIGKey, error) {
	nt := p.next()
	if nt.kind == tokPunct {
		return nil, fmt.Errorf("line %d: key statement without a name", nt.line)
	}
	if err := p.expect("{"); err != nil {
		return nil, err
	}
	var alg, secret string
	var haveAlg, haveSecret bool
	for {
		t := p.next()
		if t.kind == tokPunct && t.text == "}" {
			break
		}
		if t.kind != tokWord {
			return nil, fmt.Errorf("line %d: expected algorithm or secret in key %q", t.line, nt.text)
		}
		v := p.next()
		if v.kind == tokPunct {
			return nil, fmt.Errorf("line %d: %s without a value in key %q", t.line, strings.ToLower(t.text), nt.text)
		}
		switch strings.ToLower(t.text) {
		case "algorithm":
			if haveAlg {
				return nil, fmt.Errorf("line %d: duplicate algorithm in key %q", t.line, nt.text)
			}
			alg, haveAlg = v.text, true
		case "secret":
			if haveSecret {
				return nil, fmt.Errorf("line %d: duplicate secret in key %q", t.line, nt.text)
			}
			secret, haveSecret = v.text, true
		default:
			return nil, fmt.Errorf("line %d: unknown key option in key %q (want algorithm and secret)", t.line, nt.text)
		}
		if err := p.expect(";"); err != nil {
			return nil, err
		}
	}
	if err := p.expect(";"); err != nil {
		return nil, err
	}
	if !haveAlg {
		return nil, fmt.Errorf("line %d: key %q has no algorithm", nt.line, nt.text)
	}
	if !haveSecret {
		return nil, fmt.Errorf("line %d: key %q has no secret", nt.line, nt.text)
	}
	return NewTSIGKey(nt.text, alg, secret)
}
