package postfix

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The Postfix SMTP server's certificate parameters (postconf(5)).
const (
	// ParamChainFiles is smtpd_tls_chain_files (Postfix ≥ 3.4): when it is
	// non-empty the legacy parameters are ignored (postconf(5):
	// "When this parameter is non-empty, the legacy parameters are
	// ignored, and a warning is logged if any are also non-empty").
	ParamChainFiles = "smtpd_tls_chain_files"
)

// legacyPairs are the legacy certificate and key parameters, one pair per
// algorithm (RSA, ECDSA, DSA), in the order Postfix loads them. Each key
// parameter defaults to "$<cert parameter>" (a combined file).
var legacyPairs = [][2]string{
	{"smtpd_tls_cert_file", "smtpd_tls_key_file"},
	{"smtpd_tls_eccert_file", "smtpd_tls_eckey_file"},
	{"smtpd_tls_dcert_file", "smtpd_tls_dkey_file"},
}

// levelParams decide whether a service offers TLS at all, and how.
var levelParams = []string{"smtpd_tls_security_level", "smtpd_use_tls", "smtpd_enforce_tls", "smtpd_tls_wrappermode"}

// servedParams are every parameter Served asks postconf for, in one call.
func servedParams() []string {
	p := []string{ParamChainFiles}
	for _, pair := range legacyPairs {
		p = append(p, pair[0], pair[1])
	}
	return append(p, levelParams...)
}

// Config is what a Postfix instance is configured to serve, one entry per
// smtpd service of master.cf, main.cf settings folded into each (see
// Instance.Served).
type Config struct {
	ConfigDir string       // the instance's -c directory; "" is the default (/etc/postfix)
	Services  []ServiceTLS // in master.cf order
	// Maillog is the instance's maillog_file, expanded; "" when unset
	// (Postfix then logs to syslog only). Instance.SetMaillog hands it to
	// Reload and Check, which then do not ask postconf again.
	Maillog string
	// QueueDirectory is the instance's queue_directory, expanded, where
	// master keeps pid/master.pid. Instance.SetQueueDirectory hands it to
	// Reload, which waits for the previous generation's smtpd processes
	// to exit.
	QueueDirectory string `json:",omitempty"`
}

// ServiceTLS is the effective certificate configuration of one smtpd
// service: main.cf values with the service's master.cf -o overrides
// applied, $parameters expanded, as that smtpd reads them at its start.
type ServiceTLS struct {
	// Service is the master.cf service name and type: "smtp/inet",
	// "submission/inet", "127.0.0.1:2525/inet", "smtpd/pass".
	Service string
	// ChainFiles is smtpd_tls_chain_files effective for this service, in
	// order; nil when empty.
	ChainFiles []string
	// CertKeyPairs are the legacy (cert file, key file) pairs with a
	// non-empty cert file, RSA then ECDSA then DSA; filled only when
	// ChainFiles is empty (otherwise Postfix ignores them).
	CertKeyPairs [][2]string
	// CertKeyParams names the parameters of each CertKeyPairs entry, e.g.
	// {"smtpd_tls_eccert_file", "smtpd_tls_eckey_file"}.
	CertKeyParams [][2]string
	// Source tells, for each parameter above and in levelParams, where the
	// value comes from: "main.cf" (set there or its default), "master.cf
	// service S" (an -o override of S), or "main.cf, expanded with
	// master.cf service S overrides" (a $parameter the service overrides).
	Source map[string]string
	// SecurityLevel is the effective TLS security level: "none", "may",
	// "encrypt" or another value of smtpd_tls_security_level; when that is
	// empty, derived from smtpd_enforce_tls (encrypt) and smtpd_use_tls
	// (may), else "none" (postconf(5)).
	SecurityLevel string
	// WrapperMode is smtpd_tls_wrappermode = yes: TLS from the first byte
	// (port 465, RFC 8314), no STARTTLS.
	WrapperMode bool
}

// Offers reports whether the service offers TLS at all (its security level
// is not "none"): a service that does not presents no certificate.
func (s *ServiceTLS) Offers() bool { return s.SecurityLevel != "none" }

// Files returns the files the service reads its keys and certificates
// from: ChainFiles, or the files of CertKeyPairs (cert, then key when it
// differs), without duplicates, in that order.
func (s *ServiceTLS) Files() []string {
	if len(s.ChainFiles) > 0 {
		return slices.Clone(s.ChainFiles)
	}
	var files []string
	for _, p := range s.CertKeyPairs {
		for _, f := range p {
			if f != "" && !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	return files
}

// describe says what the service reads, with sources, for messages:
// `smtpd_tls_chain_files "/a.pem" (main.cf)` or `smtpd_tls_cert_file
// "/x/fullchain.pem" (main.cf), smtpd_tls_key_file "/x/privkey.pem" (main.cf)`.
func (s *ServiceTLS) describe() string {
	src := func(p string) string {
		if v := s.Source[p]; v != "" {
			return " (" + v + ")"
		}
		return ""
	}
	if len(s.ChainFiles) > 0 {
		return fmt.Sprintf("%s %q%s", ParamChainFiles, strings.Join(s.ChainFiles, ", "), src(ParamChainFiles))
	}
	var parts []string
	for i, p := range s.CertKeyPairs {
		names := s.CertKeyParams[i]
		parts = append(parts, fmt.Sprintf("%s %q%s, %s %q%s", names[0], p[0], src(names[0]), names[1], p[1], src(names[1])))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("no certificate (%s and every legacy cert parameter are empty)", ParamChainFiles)
	}
	return strings.Join(parts, ", ")
}

// Served reads what the instance is configured to serve: for every
// master.cf service whose command is smtpd (`postconf [-c DIR] -M`), the
// certificate parameters smtpd_tls_chain_files, smtpd_tls_cert_file and
// smtpd_tls_key_file, smtpd_tls_eccert_file and smtpd_tls_eckey_file,
// smtpd_tls_dcert_file and smtpd_tls_dkey_file, and the TLS level
// parameters, as that smtpd reads them: main.cf values with the service's
// -o overrides (`postconf -P`) applied, then $parameters expanded
// (`postconf -x`, given the service's overrides with `-o` so that defaults
// such as smtpd_tls_key_file = $smtpd_tls_cert_file and user-defined
// $parameters see them, as smtpd does).
//
// It runs three postconf commands at once, then one per service with
// overrides (at most four at a time). A failed postconf is a *CommandError.
// An instance without smtpd service gives a Config without services.
//
// With ServedCache set, a result is kept in that file under the key
// servedKey (main.cf and master.cf content, the postconf program, the host
// name) and returned while the key is unchanged, without running postconf:
// what postconf prints is a function of exactly those inputs.
func (in *Instance) Served(ctx context.Context) (*Config, error) {
	if in.ServedCache == "" {
		return in.served(ctx)
	}
	key, kerr := in.servedKey()
	if kerr == nil {
		if cfg := readServedCache(in.ServedCache, key); cfg != nil {
			return cfg, nil
		}
	}
	cfg, err := in.served(ctx)
	if err == nil && kerr == nil {
		writeServedCache(in.ServedCache, key, cfg)
	}
	return cfg, err
}

// served is Served without the cache.
func (in *Instance) served(ctx context.Context) (*Config, error) {
	var (
		wg                   sync.WaitGroup
		services, over, main string
		errM, errP, errX     error
	)
	wg.Add(3)
	go func() { defer wg.Done(); services, errM = in.postconf(ctx, "-M") }()
	go func() { defer wg.Done(); over, errP = in.postconf(ctx, "-P") }()
	go func() {
		defer wg.Done()
		main, errX = in.postconf(ctx, append(append([]string{"-x"}, servedParams()...), "maillog_file", "queue_directory")...)
	}()
	wg.Wait()
	for _, err := range []error{errM, errP, errX} {
		if err != nil {
			return nil, err
		}
	}
	mainValues := parseAssignments(main)
	overrides := map[string][][2]string{} // service -> raw (name, value), in master.cf order
	for _, kv := range parseAssignmentList(over) {
		if svc, name, ok := cutServiceParam(kv[0]); ok {
			overrides[svc] = append(overrides[svc], [2]string{name, kv[1]})
		}
	}

	cfg := &Config{ConfigDir: in.ConfigDir, Maillog: strings.TrimSpace(mainValues["maillog_file"]),
		QueueDirectory: strings.TrimSpace(mainValues["queue_directory"])}
	for _, svc := range smtpdServices(services) {
		cfg.Services = append(cfg.Services, ServiceTLS{Service: svc})
	}
	values := make([]map[string]string, len(cfg.Services))
	errs := make([]error, len(cfg.Services))
	sem := make(chan struct{}, 4)
	for i, s := range cfg.Services {
		ov := overrides[s.Service]
		if len(ov) == 0 {
			values[i] = mainValues
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := []string{"-x"}
			for _, kv := range ov {
				args = append(args, "-o", kv[0]+"="+kv[1])
			}
			out, err := in.postconf(ctx, append(args, servedParams()...)...)
			values[i], errs[i] = parseAssignments(out), err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		direct := map[string]bool{}
		for _, kv := range overrides[s.Service] {
			direct[kv[0]] = true
		}
		s.fill(values[i], mainValues, direct)
	}
	return cfg, nil
}

// fill sets the service's fields from its expanded values v; main are the
// main.cf values and direct the parameters the service overrides itself
// (for Source).
func (s *ServiceTLS) fill(v, main map[string]string, direct map[string]bool) {
	s.Source = map[string]string{}
	for _, p := range servedParams() {
		switch {
		case direct[p]:
			s.Source[p] = "master.cf service " + s.Service
		case v[p] != main[p]:
			s.Source[p] = "main.cf, expanded with master.cf service " + s.Service + " overrides"
		default:
			s.Source[p] = "main.cf"
		}
	}
	s.ChainFiles = splitList(v[ParamChainFiles])
	if len(s.ChainFiles) == 0 {
		for _, pair := range legacyPairs {
			if cert := strings.TrimSpace(v[pair[0]]); cert != "" {
				s.CertKeyPairs = append(s.CertKeyPairs, [2]string{cert, strings.TrimSpace(v[pair[1]])})
				s.CertKeyParams = append(s.CertKeyParams, pair)
			}
		}
	}
	s.SecurityLevel = strings.ToLower(strings.TrimSpace(v["smtpd_tls_security_level"]))
	if s.SecurityLevel == "" {
		switch {
		case yes(v["smtpd_enforce_tls"]):
			s.SecurityLevel = "encrypt"
		case yes(v["smtpd_use_tls"]):
			s.SecurityLevel = "may"
		default:
			s.SecurityLevel = "none"
		}
	}
	s.WrapperMode = yes(v["smtpd_tls_wrappermode"])
}

// yes reports whether a Postfix boolean value is true ("yes", any case;
// postconf(5) booleans are "yes" or "no").
func yes(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "yes") }

// parseAssignments parses postconf output lines "name = value" (value
// possibly empty, then printed as "name =") into a map; other lines are
// ignored.
func parseAssignments(out string) map[string]string {
	m := map[string]string{}
	for _, kv := range parseAssignmentList(out) {
		m[kv[0]] = kv[1]
	}
	return m
}

// parseAssignmentList is parseAssignments keeping the order and repeats.
// A name never holds white space, so the first " =" ends it.
func parseAssignmentList(out string) [][2]string {
	var list [][2]string
	for _, line := range strings.Split(out, "\n") {
		name, value, ok := strings.Cut(line, " =")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			continue
		}
		list = append(list, [2]string{name, strings.TrimSpace(value)})
	}
	return list
}

// cutServiceParam splits a `postconf -P` name "service/type/parameter"
// into "service/type" and "parameter". The service name may itself hold a
// slash (a unix service such as "private/x"), the type and the parameter
// name do not.
func cutServiceParam(key string) (service, param string, ok bool) {
	i := strings.LastIndexByte(key, '/')
	if i <= 0 || i == len(key)-1 || !strings.Contains(key[:i], "/") {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// smtpdServices returns "service/type" of every `postconf -M` entry whose
// command (the eighth field; a path is allowed) is smtpd, in order. Lines
// look like "smtp inet n - y - - smtpd -o name=value".
func smtpdServices(out string) []string {
	var svcs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if filepath.Base(f[7]) == "smtpd" {
			svcs = append(svcs, f[0]+"/"+f[1])
		}
	}
	return svcs
}

// Reads reports whether every smtpd service that offers TLS reads exactly
// the files in want (as sets: order and repeats do not matter; paths are
// compared cleaned, and equal when they resolve to the same file through
// symbolic links), and returns the services that do not, in master.cf
// order. A Config without any service offering TLS reads nothing: it
// returns false and no services. Services with security level "none" are
// not judged: they present no certificate.
func (c *Config) Reads(want []string) (bool, []ServiceTLS) {
	var wrong []ServiceTLS
	offering := 0
	for _, s := range c.Services {
		if !s.Offers() {
			continue
		}
		offering++
		if !sameFiles(s.Files(), want) {
			wrong = append(wrong, s)
		}
	}
	return offering > 0 && len(wrong) == 0, wrong
}

// sameFiles compares two file lists as sets (see Config.Reads).
func sameFiles(got, want []string) bool {
	canon := func(list []string) []string {
		out := make([]string, 0, len(list))
		for _, f := range list {
			f = filepath.Clean(f)
			if r, err := filepath.EvalSymlinks(f); err == nil {
				f = r
			}
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
		sort.Strings(out)
		return out
	}
	return len(want) > 0 && slices.Equal(canon(got), canon(want))
}

// FixLine returns the shell command line that makes every smtpd service
// that offers TLS read exactly want (danehook's chain files, in order) as
// smtpd_tls_chain_files: `postconf [-c DIR] -e 'smtpd_tls_chain_files =
// A, B'` when a service takes the parameter from main.cf, and `postconf
// [-c DIR] -P 'submission/inet/smtpd_tls_chain_files=A,B'` for services
// that override it in master.cf, joined with " && " when both are needed.
// configDir is the instance's -c directory ("" for the default). It
// returns "" when every service already reads want. Postfix applies the
// change at `postfix reload`.
func (c *Config) FixLine(configDir string, want []string) string {
	_, wrong := c.Reads(want)
	if len(wrong) == 0 {
		return ""
	}
	mainFix := false
	var masterFix []string
	for _, s := range wrong {
		if strings.HasPrefix(s.Source[ParamChainFiles], "master.cf") {
			masterFix = append(masterFix, shellQuote(s.Service+"/"+ParamChainFiles+"="+strings.Join(want, ",")))
		} else {
			mainFix = true
		}
	}
	prog := "postconf"
	if configDir != "" {
		prog += " -c " + shellQuote(configDir)
	}
	var cmds []string
	if mainFix {
		cmds = append(cmds, prog+" -e "+shellQuote(ParamChainFiles+" = "+strings.Join(want, ", ")))
	}
	if len(masterFix) > 0 {
		cmds = append(cmds, prog+" -P "+strings.Join(masterFix, " "))
	}
	return strings.Join(cmds, " && ")
}

// Check returns nil when every smtpd service that offers TLS reads exactly
// want (see Reads), else a *NotServedError naming each service that does
// not, what it reads instead and where that is set, with the FixLine.
func (c *Config) Check(want []string) error {
	ok, wrong := c.Reads(want)
	if ok {
		return nil
	}
	return &NotServedError{ConfigDir: c.ConfigDir, Want: slices.Clone(want), Services: wrong, Fix: c.FixLine(c.ConfigDir, want)}
}

// NotServedError is the error of Config.Check: Postfix is not configured
// to serve danehook's chain files, so what it serves is not protected by
// danehook's TLSA records (a renewal by the ACME client would reach
// senders unannounced).
type NotServedError struct {
	ConfigDir string       // "" for the default instance
	Want      []string     // danehook's chain files
	Services  []ServiceTLS // the services that read other files; empty when no service offers TLS
	Fix       string       // FixLine; "" when no service offers TLS
}

// Error names each service, what it reads and from where:
// `postfix config "/etc/postfix": service "smtp/inet" reads
// smtpd_tls_cert_file "/etc/letsencrypt/live/mx/fullchain.pem" (main.cf),
// ... instead of the chain file "/var/lib/danehook/chain.pem"`.
func (e *NotServedError) Error() string {
	in := Instance{ConfigDir: e.ConfigDir}
	if len(e.Services) == 0 {
		return fmt.Sprintf("%s: no smtpd service offers TLS (smtpd_tls_security_level); want the chain file %q served", in.describe(), strings.Join(e.Want, ", "))
	}
	parts := make([]string, len(e.Services))
	for i, s := range e.Services {
		parts[i] = fmt.Sprintf("service %q reads %s", s.Service, s.describe())
	}
	return fmt.Sprintf("%s: %s instead of the chain file %q", in.describe(), strings.Join(parts, "; "), strings.Join(e.Want, ", "))
}

// Hint returns the commands that fix it: "run: <FixLine> && postfix [-c
// DIR] reload".
func (e *NotServedError) Hint() string {
	if e.Fix == "" {
		return "enable STARTTLS on the smtpd services (smtpd_tls_security_level = may) and set " + ParamChainFiles + " to " + strings.Join(e.Want, ", ")
	}
	reload := "postfix"
	if e.ConfigDir != "" {
		reload += " -c " + shellQuote(e.ConfigDir)
	}
	return "run: " + e.Fix + " && " + reload + " reload"
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// [A-Za-z0-9_./,=:@%+-].
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./,=:@%+-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
