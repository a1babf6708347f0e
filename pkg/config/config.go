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
	// beside every owner (a TXT RRset at _danehook.<owner>, with every
	// provider type; only rfc2136 makes a removal conditional on it in the
	// same UPDATE): hosts that share an owner claim the records their
	// chains rely on there, and no host removes a record another claims.
	// Letters, digits, '.', '-' and '_', at most 63.
	HostID string `toml:"host_id"`
	// Postfix is the instance that serves the chains.
	Postfix Postfix `toml:"postfix"`
	// Lineages by name: certbot's live/<name>, lego's certificate name.
	Lineages map[string]*Lineage `toml:"lineage"`
	// Providers by name, referenced by Lineage.Provider.
	Providers map[string]*Provider `toml:"provider"`
	// Schedule says how the run that completes a switch is scheduled.
	Schedule Schedule `toml:"schedule"`

	data []byte // the file's text, for Line
}

// DefaultPublishWait is Schedule.PublishWait when omitted: how long a hook
// watches the authoritative servers after an UPDATE (lego kills hooks after
// 2 minutes; NOTIFY and IXFR usually land in well under a second).
const DefaultPublishWait = 20 * time.Second

// Schedule is the [schedule] table (issue 15: switch at the physical
// floor, not at the timer's next tick).
type Schedule struct {
	// PublishWait bounds how long dane-deploy, dane-reload and tick keep
	// observing every authoritative server after publishing, until each
	// serves the new records, so that first sightings are recorded when
	// they happen. Default DefaultPublishWait; "0s" turns it off.
	PublishWait *Duration `toml:"publish_wait"`
	// Via is how the completing run is scheduled at the moment a switch
	// becomes safe: "auto" (default: systemd-run where systemd runs, else
	// at where installed, else none), "systemd", "at" or "none" (the
	// timer completes it).
	Via string `toml:"via"`
}

// Wait returns PublishWait, DefaultPublishWait when omitted.
func (s Schedule) Wait() time.Duration {
	if s.PublishWait == nil {
		return DefaultPublishWait
	}
	return time.Duration(*s.PublishWait)
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
	// CAFile is an extra PEM file of roots: searched for the root when
	// TA = "root", and trusted beside the system trust store by the
	// allow_untrusted guardrail (a private or test CA's root).
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
	// DehydratedCert is dehydrated's certificate directory for this
	// lineage, CERTDIR/<alias> (Debian: /var/lib/dehydrated/certs/<alias>):
	// privkey.pem, cert.pem, chain.pem and the per-certificate config.
	DehydratedCert string `toml:"dehydrated_cert"`
	// DehydratedConfig is dehydrated's main configuration file; default
	// /etc/dehydrated/config or /usr/local/etc/dehydrated/config, the first
	// that exists (dehydrated's own search order).
	DehydratedConfig string `toml:"dehydrated_config"`
	// AcmeShDir is acme.sh's domain directory for this lineage,
	// <home>/<domain> or <home>/<domain>_ecc: <domain>.key, <domain>.cer,
	// ca.cer and the domain configuration <domain>.conf.
	AcmeShDir string `toml:"acmesh_dir"`
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
	// Type is "rfc2136", "cloudflare" or "libdns".
	Type string `toml:"type"`
	// LibdnsName names the libdns provider of a type = "libdns" table
	// ("rfc2136", "desec", "hetzner", or one compiled in with a build tag).
	LibdnsName string `toml:"name"`
	// Settings holds the settings of a type = "libdns" table that danehook
	// itself does not know, by key, for the libdns provider to read (values
	// as decoded from TOML: string, int64, bool, …). Secrets never go here:
	// they come from api_token_file / api_token_env or the TSIG settings.
	Settings map[string]any `toml:"-"`

	// RFC 2136: the primary server (host:port), an optional explicit zone,
	// and the TSIG key: a tsig-keygen file, or name, algorithm and a secret
	// from a file or an environment variable.
	Server string `toml:"server"`
	Zone   string `toml:"zone"`
	// Zones, instead of Zone, names the zones of a primary that serves
	// several (rfc2136 and libdns): an owner below one of them is taken to
	// be in the longest that encloses it, as Zone does for every owner, and
	// such a zone's owners may be read from its transfer at Server; an
	// owner below none is placed by zone discovery.
	Zones         []string `toml:"zones"`
	KeyFile       string   `toml:"key_file"`
	KeyName       string   `toml:"key_name"`
	KeyAlgorithm  string   `toml:"key_algorithm"`
	SecretFile    string   `toml:"secret_file"`
	SecretEnv     string   `toml:"secret_env"`
	Prerequisites bool     `toml:"prerequisites"`
	// ZoneTransfers lets a run that reads many owners of one zone read the
	// zone by AXFR from each server that allows it (pkg/dnsupdate
	// transfer.go, decision X1); false reads every owner by direct query.
	// nil (not set) means true.
	ZoneTransfers *bool `toml:"zone_transfers"`

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

// TransfersAllowed reports whether zone_transfers lets runs read zones by
// AXFR (true unless set to false).
func (p *Provider) TransfersAllowed() bool { return p.ZoneTransfers == nil || *p.ZoneTransfers }

// NamedZones returns the zones the operator named: Zone alone when set,
// else Zones; nil when neither is (zone discovery places every owner).
func (p *Provider) NamedZones() []string {
	if p.Zone != "" {
		return []string{p.Zone}
	}
	return p.Zones
}

// Error is a configuration error: the file, the line when known, the setting
// and what is wrong with it.
type Error struct {
	File    string
	Line    int // 0 when unknown
	Setting string
	Problem string
}

// Problems is every problem found in one configuration file, in file
// order where lines are known. errors.As finds each *Error in it.
type Problems []*Error

func (p Problems) Error() string {
	var lines []string
	for _, e := range p {
		lines = append(lines, e.Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as errors.
func (p Problems) Unwrap() []error {
	out := make([]error, len(p))
	for i, e := range p {
		out[i] = e
	}
	return out
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
	if probs := c.check(data, md); len(probs) > 0 {
		return nil, probs
	}
	return c, nil
}

// libdnsSettings moves the undecoded keys of type = "libdns" provider
// tables into Provider.Settings and returns the undecoded keys left.
func (c *Config) libdnsSettings(md toml.MetaData, data []byte) ([]toml.Key, error) {
	var raw struct {
		Provider map[string]map[string]any `toml:"provider"`
	}
	var left []toml.Key
	decoded := false
	for _, k := range md.Undecoded() {
		if len(k) == 3 && k[0] == "provider" {
			if p := c.Providers[k[1]]; p != nil && p.Type == "libdns" {
				if !decoded {
					if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
						return nil, err
					}
					decoded = true
				}
				if p.Settings == nil {
					p.Settings = map[string]any{}
				}
				p.Settings[k[2]] = raw.Provider[k[1]][k[2]]
				continue
			}
		}
		if len(k) > 3 && k[0] == "provider" {
			if p := c.Providers[k[1]]; p != nil && p.Type == "libdns" {
				continue // inside a sub-table already moved with its key
			}
		}
		left = append(left, k)
	}
	return left, nil
}

// Inspect is Load for `danectl config check`: it returns the decoded
// configuration (defaults applied as far as the settings allow) together
// with every problem of the file, as a Problems error, so that each can be
// reported in one run. The configuration is nil only when the file cannot
// be read or is not TOML.
func Inspect(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config %s: %w (create it from /usr/share/doc/danehook/danehook.toml or pass --config)", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c := &Config{Path: path}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Line: pe.Position.Line, Problem: pe.Message}
		}
		return nil, &Error{File: path, Problem: err.Error()}
	}
	if probs := c.check(data, md); len(probs) > 0 {
		return c, probs
	}
	return c, nil
}

// check returns every problem of the decoded file: unknown settings, then
// the validation of each table. It keeps data for Line.
func (c *Config) check(data []byte, md toml.MetaData) Problems {
	c.data = data
	var probs Problems
	und, err := c.libdnsSettings(md, data)
	if err != nil {
		probs = append(probs, &Error{File: c.Path, Problem: err.Error()})
	}
	for _, k := range und {
		probs = append(probs, &Error{File: c.Path, Line: locate(data, k), Setting: k.String(), Problem: "unknown setting (check the spelling against the example, /usr/share/doc/danehook/danehook.toml or packaging/danehook.toml)"})
	}
	probs = append(probs, c.validate(data)...)
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return probs
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

func (c *Config) validate(data []byte) Problems {
	var probs Problems
	bad := func(setting, problem string, key ...string) {
		probs = append(probs, &Error{File: c.Path, Line: locate(data, key), Setting: setting, Problem: problem})
	}
	// at reports a problem with one value of a list setting, at the line
	// of that value.
	badValue := func(setting, value, problem string, key ...string) {
		probs = append(probs, &Error{File: c.Path, Line: locateValue(data, key, value), Setting: setting, Problem: problem})
	}
	if len(c.Lineages) == 0 {
		probs = append(probs, &Error{File: c.Path, Problem: "no [lineage.NAME] table: add one per certificate (see packaging/danehook.toml)"})
	}
	switch c.Schedule.Via {
	case "", "auto", "systemd", "at", "none":
	default:
		bad("schedule.via", fmt.Sprintf("%q: want \"auto\", \"systemd\", \"at\" or \"none\"", c.Schedule.Via), "schedule", "via")
	}
	if c.Schedule.Wait() > 2*time.Minute {
		bad("schedule.publish_wait", fmt.Sprintf("%s is longer than the 2 minutes lego gives a hook: at most \"2m\"", c.Schedule.Wait()), "schedule", "publish_wait")
	}
	if c.HostID != "" && !validHostID(c.HostID) {
		bad("host_id", fmt.Sprintf("%q: use letters, digits, '.', '-' and '_' (at most 63), e.g. the machine's name \"mx1\"", c.HostID), "host_id")
	}
	for _, name := range sortedKeys(c.Providers) {
		p := c.Providers[name]
		p.Name = name
		at := "provider." + name
		if p.Timeout == 0 {
			p.Timeout = 5
		}
		if p.Timeout < 0 {
			bad(at+".timeout", fmt.Sprintf("%d: want a positive number of seconds (default 5)", p.Timeout), "provider", name, "timeout")
		}
		if p.ZoneTransfers != nil && p.Type != "rfc2136" {
			bad(at+".zone_transfers", fmt.Sprintf("is a setting of type = \"rfc2136\" (this provider is type = %q, whose reads are direct queries): remove it", p.Type), "provider", name, "zone_transfers")
		}
		if len(p.Zones) > 0 {
			switch {
			case p.Type == "cloudflare":
				bad(at+".zones", "is a setting of type = \"rfc2136\" and \"libdns\" (Cloudflare finds each owner's zone through its API; \"zone\" names one): remove it", "provider", name, "zones")
			case p.Zone != "":
				bad(at+".zones", "set \"zone\" (every owner in one zone) or \"zones\" (several), not both", "provider", name, "zones")
			}
			seen := map[string]bool{}
			for _, z := range p.Zones {
				key := strings.ToLower(strings.TrimSuffix(z, "."))
				switch {
				case zoneProblem(z) != "":
					badValue(at+".zones", z, fmt.Sprintf("%q %s: write each zone's name as in its SOA record, e.g. \"example.com.\"", z, zoneProblem(z)), "provider", name, "zones")
				case seen[key]:
					badValue(at+".zones", z, fmt.Sprintf("%q is listed twice: remove one", z), "provider", name, "zones")
				}
				seen[key] = true
			}
		}
		if p.NameserverPort == 0 {
			p.NameserverPort = 53
		}
		if p.NameserverPort < 1 || p.NameserverPort > 65535 {
			bad(at+".nameserver_port", fmt.Sprintf("port %d out of range 1-65535", p.NameserverPort), "provider", name, "nameserver_port")
		}
		for _, f := range []struct{ key, value string }{{"server", p.Server}, {"query_server", p.QueryServer}, {"resolver", p.Resolver}} {
			if f.value == "" {
				continue
			}
			if why := hostPortProblem(f.value); why != "" {
				bad(at+"."+f.key, why, "provider", name, f.key)
			}
		}
		for _, f := range []struct{ key, value string }{{"secret_env", p.SecretEnv}, {"api_token_env", p.APITokenEnv}} {
			if f.value != "" {
				if why := envNameProblem(f.value); why != "" {
					bad(at+"."+f.key, why, "provider", name, f.key)
				}
			}
		}
		for _, f := range []struct{ key, value string }{{"key_file", p.KeyFile}, {"secret_file", p.SecretFile}, {"api_token_file", p.APITokenFile}, {"key_name", p.KeyName}} {
			if f.value != "" && LooksLikeSecret(f.value) {
				what := "a file name"
				if f.key == "key_name" {
					what = "the TSIG key's name"
				}
				bad(at+"."+f.key, "looks like a secret, not "+what+" (the value is not shown): put the secret in a file readable by root only and name that file here", "provider", name, f.key)
			}
		}
		switch p.Type {
		case "rfc2136":
			if p.Server == "" {
				bad(at+".server", "missing: the primary server as host:port, e.g. \"192.0.2.53:53\"", "provider", name)
			}
			if p.KeyFile == "" && p.KeyName == "" {
				bad(at+".key_file", "missing: a TSIG key file from tsig-keygen, or key_name with secret_file or secret_env", "provider", name)
			} else if p.KeyFile == "" && p.SecretFile == "" && p.SecretEnv == "" {
				bad(at+".secret_file", "missing: key_name needs secret_file or secret_env", "provider", name, "key_name")
			}
			if p.QueryServer == "" {
				p.QueryServer = p.Server
			}
		case "cloudflare":
			if p.APITokenFile == "" && p.APITokenEnv == "" {
				p.APITokenEnv = "CLOUDFLARE_API_TOKEN"
			}
		case "libdns":
			if p.LibdnsName == "" {
				bad(at+".name", "missing: the libdns provider, e.g. \"desec\", \"hetzner\" or \"rfc2136\"", "provider", name)
			}
			if p.QueryServer == "" {
				p.QueryServer = p.Server
			}
			if p.QueryServer == "" {
				bad(at+".query_server", "missing: an authoritative server of the zone as ip:port (records are read there by direct query, never through the provider's API)", "provider", name)
			}
		case "":
			bad(at+".type", "missing: \"rfc2136\", \"cloudflare\" or \"libdns\"", "provider", name)
		default:
			bad(at+".type", fmt.Sprintf("unknown provider type %q: use \"rfc2136\", \"cloudflare\" or \"libdns\"", p.Type), "provider", name, "type")
		}
	}
	for _, name := range sortedKeys(c.Lineages) {
		l := c.Lineages[name]
		l.Name = name
		at := "lineage." + name
		if len(l.Hosts) == 0 {
			bad(at+".hosts", "missing: the MX host names, e.g. [\"mail.example.com\"]", "lineage", name)
		}
		for i, h := range l.Hosts {
			if why := hostProblem(h); why != "" {
				badValue(fmt.Sprintf("%s.hosts[%d]", at, i), h, fmt.Sprintf("%q %s", h, why), "lineage", name, "hosts")
			}
		}
		if len(l.Ports) == 0 {
			l.Ports = []int{DefaultPort}
		}
		seen := map[int]bool{}
		for _, p := range l.Ports {
			if p < 1 || p > 65535 {
				badValue(at+".ports", strconv.Itoa(p), fmt.Sprintf("port %d out of range 1-65535", p), "lineage", name, "ports")
			} else if seen[p] {
				badValue(at+".ports", strconv.Itoa(p), fmt.Sprintf("port %d listed twice", p), "lineage", name, "ports")
			}
			seen[p] = true
		}
		explicitTA := l.TA
		if len(l.Usages) == 0 {
			l.Usages = []string{"3 1 1"}
		}
		hasTA := false
		for _, u := range l.Usages {
			switch u {
			case "3 1 1":
			case "2 1 1":
				hasTA = true
				if l.TA == "" {
					l.TA = "issuer"
				}
			default:
				badValue(at+".usages", u, fmt.Sprintf("%q not supported: use \"3 1 1\" and optionally \"2 1 1\"", u), "lineage", name, "usages")
			}
		}
		switch {
		case explicitTA != "" && explicitTA != "issuer" && explicitTA != "root" && explicitTA != TAIssuerSet:
			bad(at+".ta", fmt.Sprintf("%q: use \"issuer\", \"root\" or \"issuer-set\"", l.TA), "lineage", name, "ta")
		case explicitTA != "" && !hasTA:
			bad(at+".ta", fmt.Sprintf("%q is set but usages has no \"2 1 1\": no record names the trust anchor; add \"2 1 1\" to usages or remove ta", explicitTA), "lineage", name, "ta")
		case l.TA == TAIssuerSet && l.IssuerSet == "":
			bad(at+".issuer_set", "missing: ta = \"issuer-set\" needs the file or directory of the CA's intermediate certificates, e.g. \"/etc/danehook/le-intermediates/\"", "lineage", name, "ta")
		case l.TA != TAIssuerSet && l.IssuerSet != "":
			bad(at+".issuer_set", "set, but ta is not \"issuer-set\": set ta = \"issuer-set\" or remove issuer_set", "lineage", name, "issuer_set")
		}
		if l.TTL == 0 {
			l.TTL = DefaultTTL
		}
		if l.TTL < 0 || l.TTL > 86400*7 {
			bad(at+".ttl", fmt.Sprintf("%d seconds out of range 1-604800", l.TTL), "lineage", name, "ttl")
		}
		if l.Provider == "" {
			bad(at+".provider", "missing: the name of a [provider.NAME] table", "lineage", name)
		} else if _, ok := c.Providers[l.Provider]; !ok {
			bad(at+".provider", fmt.Sprintf("no [provider.%s] table", l.Provider), "lineage", name, "provider")
		}
		if l.LegoCSR != "" && l.LegoKey == "" {
			bad(at+".lego_key", "missing: lego_csr needs lego_key, the private key the CSR is made from", "lineage", name, "lego_csr")
		}
		if l.DehydratedConfig != "" && l.DehydratedCert == "" {
			bad(at+".dehydrated_cert", "missing: dehydrated_config needs dehydrated_cert, the certificate directory (CERTDIR/<alias>)", "lineage", name, "dehydrated_config")
		}
		var sources []string
		for _, s := range []struct{ key, val string }{
			{"certbot_lineage", l.CertbotLineage}, {"lego_cert", l.LegoCert + l.LegoKey}, {"dehydrated_cert", l.DehydratedCert}, {"acmesh_dir", l.AcmeShDir},
		} {
			if s.val != "" {
				sources = append(sources, s.key)
			}
		}
		if len(sources) > 1 {
			bad(at+"."+sources[1], fmt.Sprintf("a lineage has one ACME client: %s and %s are both set; keep one", sources[0], sources[1]), "lineage", name, sources[1])
		}
		if l.ChainFile == "" {
			bad(at+".chain_file", "missing: the served chain file named in Postfix's smtpd_tls_chain_files", "lineage", name)
		}
	}
	return probs
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
