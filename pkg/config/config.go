// Package config reads danehook's TOML configuration
// (/etc/danehook/danehook.toml, --config, DANEHOOK_CONFIG): the lineages
// danehook manages, the DNS providers that publish their TLSA records and the
// Postfix instance that serves their chains. See DESIGN.md §8 and the example
// in packaging/danehook.toml.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is the configuration file read when neither --config nor
// DANEHOOK_CONFIG is set.
const DefaultPath = "/etc/danehook/danehook.toml"

// DefaultStateDir is where state is kept when neither state_dir nor
// DANEHOOK_STATE_DIR is set.
const DefaultStateDir = "/var/lib/danehook"

// Environment variables that override the configuration's location.
const (
	EnvConfig   = "DANEHOOK_CONFIG"
	EnvStateDir = "DANEHOOK_STATE_DIR"
)

// Default values applied to omitted settings.
const (
	DefaultTTL = 300 // seconds, TTL of published TLSA records
	// TAIssuerSet is the ta value that publishes a whole issuer set.
	TAIssuerSet = "issuer-set"
	DefaultPort = 25 // TCP port of the TLSA owner (_25._tcp)
)

// Config is the whole configuration file.
type Config struct {
	// Path is the file the configuration was read from.
	Path string `toml:"-"`
	// StateDir holds per-lineage state, locks and staged keys.
	StateDir string `toml:"state_dir"`
	// HostID, when set, names this installation in the ownership registry
	// beside every owner (a TXT RRset at _danehook.<owner>, RFC 2136
	// providers only): hosts that share an owner claim the records their
	// chains rely on there, and no host removes a record another claims.
	// Letters, digits, '.', '-' and '_', at most 63.
	HostID string `toml:"host_id"`
	// Postfix is the instance that serves the chains.
	Postfix Postfix `toml:"postfix"`
	// Lineages by name: certbot's live/<name>, lego's certificate name.
	Lineages map[string]*Lineage `toml:"lineage"`
	// Providers by name, referenced by Lineage.Provider.
	Providers map[string]*Provider `toml:"provider"`
}

// Postfix describes the Postfix instance danehook reloads and verifies.
type Postfix struct {
	// ConfigDir is passed as "postfix -c"; empty means Postfix's default.
	ConfigDir string `toml:"config_dir"`
	// Command is the postfix binary; default "postfix".
	Command string `toml:"command"`
}

// Lineage is one certificate managed by the ACME client and the TLSA records
// that pin it.
type Lineage struct {
	// Name is the table key (filled in by Load).
	Name string `toml:"-"`
	// Hosts are the MX host names whose TLSA owners carry the records.
	Hosts []string `toml:"hosts"`
	// Ports are the TCP ports of the TLSA owners; default [25].
	Ports []int `toml:"ports"`
	// Usages lists the record kinds wanted: "3 1 1" (default) and optionally
	// "2 1 1" (DANE-TA of the trust anchor chosen by TA).
	Usages []string `toml:"usages"`
	// TA picks the trust anchor for 2 x x records: "issuer", "root" or
	// "issuer-set" (the leaf's issuer is served, and every member of
	// IssuerSet whose key algorithm is the lineage's is published ahead as
	// 2 1 1, so a renewal onto a member needs no DNS change).
	TA string `toml:"ta"`
	// IssuerSet is a PEM file or a directory of PEM files (*.pem, *.crt,
	// *.cer) holding the CA certificates (intermediates) the ACME CA may
	// issue from; required when TA = "issuer-set".
	IssuerSet string `toml:"issuer_set"`
	// CAFile is an extra PEM file searched for the root when TA = "root".
	CAFile string `toml:"ca_file"`
	// TTL of the published records in seconds; default 300.
	TTL int `toml:"ttl"`
	// Provider names the [provider.NAME] table that publishes the records.
	Provider string `toml:"provider"`
	// ChainFile is the served chain file Postfix reads (smtpd_tls_chain_files).
	ChainFile string `toml:"chain_file"`
	// CertbotLineage is certbot's live directory for this lineage, e.g.
	// /etc/letsencrypt/live/mail.example.com (optional; used by plan/publish
	// before the first deploy).
	CertbotLineage string `toml:"certbot_lineage"`
	// LegoCert and LegoKey are lego's certificate bundle and key files
	// (optional, as CertbotLineage).
	LegoCert string `toml:"lego_cert"`
	LegoKey  string `toml:"lego_key"`
	// LegoCSR, when set, is the pinned CSR file passed to lego --csr;
	// dane-prerenew keeps it generated from LegoKey.
	LegoCSR string `toml:"lego_csr"`
	// Endpoints are the host:port addresses verified by STARTTLS after reload.
	Endpoints []string `toml:"endpoints"`
	// RequireDNSSEC turns an unsigned zone from a warning into an error,
	// in status and in dane-deploy, dane-reload and tick alike.
	RequireDNSSEC bool `toml:"require_dnssec"`
	// AllowUntrusted lets danehook publish and install a chain whose issuer
	// is not in the system trust store or ca_file (a staging or test CA
	// such as Pebble's). Off by default: a staging certificate on a
	// production MX is a mistake worth refusing.
	AllowUntrusted bool `toml:"allow_untrusted"`
	// RotateEvery, when set ("365d", "90d", "2160h"), makes `danectl tick`
	// stage a new key once the served key is that old and commit it once
	// its records are aged, so the next scheduled renewal uses it.
	RotateEvery Duration `toml:"rotate_every"`
	// RenewCommand is the command `danectl rotate commit --now` runs to
	// renew at once (argv, no shell). Default for certbot lineages:
	// certbot renew --cert-name NAME --force-renewal --no-random-sleep-on-renew
	// --config-dir <derived from certbot_lineage>.
	RenewCommand []string `toml:"renew_command"`
}

// Duration is a TOML duration: Go syntax ("2160h", "90m") or whole days ("365d").
type Duration time.Duration

// UnmarshalText parses "365d" or a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return fmt.Errorf("duration %q: want whole days like \"365d\" or a Go duration like \"2160h\"", s)
		}
		*d = Duration(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want whole days like \"365d\" or a Go duration like \"2160h\"", s)
	}
	*d = Duration(v)
	return nil
}

// String returns the duration in days when whole, else Go syntax.
func (d Duration) String() string {
	v := time.Duration(d)
	if v%(24*time.Hour) == 0 {
		return strconv.Itoa(int(v/(24*time.Hour))) + "d"
	}
	return v.String()
}

// Provider is one DNS provider.
type Provider struct {
	// Name is the table key (filled in by Load).
	Name string `toml:"-"`
	// Type is "rfc2136" or "cloudflare".
	Type string `toml:"type"`

	// RFC 2136: the primary server (host:port), an optional explicit zone,
	// and the TSIG key: a tsig-keygen file, or name, algorithm and a secret
	// from a file or an environment variable.
	Server        string `toml:"server"`
	Zone          string `toml:"zone"`
	KeyFile       string `toml:"key_file"`
	KeyName       string `toml:"key_name"`
	KeyAlgorithm  string `toml:"key_algorithm"`
	SecretFile    string `toml:"secret_file"`
	SecretEnv     string `toml:"secret_env"`
	Prerequisites bool   `toml:"prerequisites"`

	// Cloudflare: API token from a file or an environment variable
	// (default CLOUDFLARE_API_TOKEN), and an optional API base URL.
	APITokenFile string `toml:"api_token_file"`
	APITokenEnv  string `toml:"api_token_env"`
	APIURL       string `toml:"api_url"`

	// Propagation: port of the authoritative servers found from the NS
	// RRset (default 53), hidden secondaries ("ip:port"), the server asked
	// for the NS RRset (default Server), and an optional validating resolver
	// ("ip:port") for the AD bit.
	NameserverPort    int      `toml:"nameserver_port"`
	HiddenSecondaries []string `toml:"hidden_secondaries"`
	QueryServer       string   `toml:"query_server"`
	Resolver          string   `toml:"resolver"`
	// Timeout of one DNS or API exchange in seconds; default 5.
	Timeout int `toml:"timeout"`
}

// Error is a configuration error: the file, the line when known, the setting
// and what is wrong with it.
type Error struct {
	File    string
	Line    int // 0 when unknown
	Setting string
	Problem string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Setting == "" {
		return fmt.Sprintf("config %s: %s", loc, e.Problem)
	}
	return fmt.Sprintf("config %s: %s: %s", loc, e.Setting, e.Problem)
}

// ErrNotFound is returned (wrapped) when the configuration file does not exist.
var ErrNotFound = errors.New("configuration file not found")

// Path returns the configuration file to read: flag if not empty, else
// $DANEHOOK_CONFIG, else DefaultPath.
func Path(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads and validates the configuration at path. Errors are *Error
// values naming the file, line and setting, or wrap ErrNotFound.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config %s: %w (create it from /usr/share/doc/danehook/danehook.toml or pass --config)", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and validates configuration text; path is used in errors.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{Path: path}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Line: pe.Position.Line, Problem: pe.Message}
		}
		return nil, &Error{File: path, Problem: err.Error()}
	}
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, &Error{File: path, Line: locate(data, k), Setting: k.String(), Problem: "unknown setting (check the spelling against the example, /usr/share/doc/danehook/danehook.toml or packaging/danehook.toml)"}
	}
	if err := c.validate(data); err != nil {
		return nil, err
	}
	return c, nil
}

// State returns the state directory: $DANEHOOK_STATE_DIR, else state_dir,
// else DefaultStateDir.
func (c *Config) State() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	if c.StateDir != "" {
		return c.StateDir
	}
	return DefaultStateDir
}

// LineageNames returns the configured lineage names, sorted.
func (c *Config) LineageNames() []string {
	var n []string
	for k := range c.Lineages {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Lineage returns the lineage called name or an error listing the known ones.
func (c *Config) Lineage(name string) (*Lineage, error) {
	if l, ok := c.Lineages[name]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("config %s: no lineage %q (configured: %s)", c.Path, name, strings.Join(c.LineageNames(), ", "))
}

// Select returns the named lineages, or every lineage when names is empty.
func (c *Config) Select(names ...string) ([]*Lineage, error) {
	if len(names) == 0 {
		names = c.LineageNames()
	}
	var out []*Lineage
	for _, n := range names {
		l, err := c.Lineage(n)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (c *Config) validate(data []byte) error {
	bad := func(setting, problem string, key ...string) error {
		return &Error{File: c.Path, Line: locate(data, key), Setting: setting, Problem: problem}
	}
	if len(c.Lineages) == 0 {
		return &Error{File: c.Path, Problem: "no [lineage.NAME] table: add one per certificate (see packaging/danehook.toml)"}
	}
	if c.HostID != "" && !validHostID(c.HostID) {
		return bad("host_id", fmt.Sprintf("%q: use letters, digits, '.', '-' and '_' (at most 63), e.g. the machine's name \"mx1\"", c.HostID), "host_id")
	}
	for name, p := range c.Providers {
		p.Name = name
		at := "provider." + name
		if p.Timeout == 0 {
			p.Timeout = 5
		}
		if p.NameserverPort == 0 {
			p.NameserverPort = 53
		}
		switch p.Type {
		case "rfc2136":
			if p.Server == "" {
				return bad(at+".server", "missing: the primary server as host:port, e.g. \"192.0.2.53:53\"", "provider", name)
			}
			if p.KeyFile == "" && p.KeyName == "" {
				return bad(at+".key_file", "missing: a TSIG key file from tsig-keygen, or key_name with secret_file or secret_env", "provider", name)
			}
			if p.KeyFile == "" && p.SecretFile == "" && p.SecretEnv == "" {
				return bad(at+".secret_file", "missing: key_name needs secret_file or secret_env", "provider", name, "key_name")
			}
			if p.QueryServer == "" {
				p.QueryServer = p.Server
			}
		case "cloudflare":
			if p.APITokenFile == "" && p.APITokenEnv == "" {
				p.APITokenEnv = "CLOUDFLARE_API_TOKEN"
			}
		case "":
			return bad(at+".type", "missing: \"rfc2136\" or \"cloudflare\"", "provider", name)
		default:
			return bad(at+".type", fmt.Sprintf("unknown provider type %q: use \"rfc2136\" or \"cloudflare\"", p.Type), "provider", name, "type")
		}
	}
	for name, l := range c.Lineages {
		l.Name = name
		at := "lineage." + name
		if len(l.Hosts) == 0 {
			return bad(at+".hosts", "missing: the MX host names, e.g. [\"mail.example.com\"]", "lineage", name)
		}
		if len(l.Ports) == 0 {
			l.Ports = []int{DefaultPort}
		}
		for _, p := range l.Ports {
			if p < 1 || p > 65535 {
				return bad(at+".ports", fmt.Sprintf("port %d out of range 1-65535", p), "lineage", name, "ports")
			}
		}
		if len(l.Usages) == 0 {
			l.Usages = []string{"3 1 1"}
		}
		for _, u := range l.Usages {
			switch u {
			case "3 1 1":
			case "2 1 1":
				if l.TA == "" {
					l.TA = "issuer"
				}
			default:
				return bad(at+".usages", fmt.Sprintf("%q not supported: use \"3 1 1\" and optionally \"2 1 1\"", u), "lineage", name, "usages")
			}
		}
		if l.TA != "" && l.TA != "issuer" && l.TA != "root" && l.TA != TAIssuerSet {
			return bad(at+".ta", fmt.Sprintf("%q: use \"issuer\", \"root\" or \"issuer-set\"", l.TA), "lineage", name, "ta")
		}
		if l.TA == TAIssuerSet {
			if l.IssuerSet == "" {
				return bad(at+".issuer_set", "missing: ta = \"issuer-set\" needs the file or directory of the CA's intermediate certificates, e.g. \"/etc/danehook/le-intermediates/\"", "lineage", name, "ta")
			}
			if !slices.Contains(l.Usages, "2 1 1") {
				return bad(at+".usages", "ta = \"issuer-set\" publishes 2 1 1 records: add \"2 1 1\" to usages", "lineage", name, "ta")
			}
		} else if l.IssuerSet != "" {
			return bad(at+".issuer_set", "set, but ta is not \"issuer-set\": set ta = \"issuer-set\" or remove issuer_set", "lineage", name, "issuer_set")
		}
		if l.TTL == 0 {
			l.TTL = DefaultTTL
		}
		if l.TTL < 0 || l.TTL > 86400*7 {
			return bad(at+".ttl", fmt.Sprintf("%d seconds out of range 1-604800", l.TTL), "lineage", name, "ttl")
		}
		if l.Provider == "" {
			return bad(at+".provider", "missing: the name of a [provider.NAME] table", "lineage", name)
		}
		if _, ok := c.Providers[l.Provider]; !ok {
			return bad(at+".provider", fmt.Sprintf("no [provider.%s] table", l.Provider), "lineage", name, "provider")
		}
		if l.LegoCSR != "" && l.LegoKey == "" {
			return bad(at+".lego_key", "missing: lego_csr needs lego_key, the private key the CSR is made from", "lineage", name, "lego_csr")
		}
		if l.ChainFile == "" {
			return bad(at+".chain_file", "missing: the served chain file named in Postfix's smtpd_tls_chain_files", "lineage", name)
		}
	}
	return nil
}

func validHostID(s string) bool {
	if len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// locate returns the 1-based line of the TOML key path in data (a table
// header [a.b] followed by key c), or 0 when it cannot be found. BurntSushi/toml
// keeps key positions private, so this small scanner recovers them for error
// messages only.
func locate(data []byte, key []string) int {
	if len(key) == 0 {
		return 0
	}
	lines := strings.Split(string(data), "\n")
	norm := func(s string) string {
		return strings.NewReplacer(" ", "", "\t", "", "\"", "", "'", "").Replace(s)
	}
	// Find the longest table header that is a prefix of key, then the key.
	for cut := len(key); cut >= 0; cut-- {
		header := strings.Join(key[:cut], ".")
		start := 0
		if cut > 0 {
			start = -1
			for i, l := range lines {
				t := norm(l)
				if t == "["+header+"]" || t == "[["+header+"]]" {
					start = i
					break
				}
			}
			if start < 0 {
				continue
			}
			if cut == len(key) {
				return start + 1
			}
		}
		rest := strings.Join(key[cut:], ".")
		for i := start; i < len(lines); i++ {
			t := norm(lines[i])
			if i > start && strings.HasPrefix(t, "[") {
				break
			}
			if strings.HasPrefix(t, rest+"=") {
				return i + 1
			}
		}
	}
	return 0
}
