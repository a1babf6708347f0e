package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// The checks that catch, when the configuration is read, settings that
// would make every hook fail later (issue "config check catches it before
// the first renewal").

// hostProblem says why h cannot be an MX host whose TLSA owner is
// _port._tcp.<h>, or "" when it can. The TLSA base domain is the MX host
// name (RFC 7672 §3.2.3), a fully qualified host name (RFC 1123 §2.1:
// letters, digits and hyphens, labels not starting or ending with a
// hyphen), at most 63 octets per label and 253 in all (RFC 1035 §2.3.4,
// without the trailing dot). The trailing dot of an absolute name is
// allowed.
func hostProblem(h string) string {
	name := strings.TrimSuffix(h, ".")
	switch {
	case h == "":
		return "is empty: write the MX host's full name, e.g. mail.example.com"
	case strings.IndexFunc(h, unicode.IsSpace) >= 0:
		return "contains white space: write one host name per list entry"
	case net.ParseIP(strings.Trim(h, "[]")) != nil:
		return "is an IP address: TLSA records are published under the MX host's name (_25._tcp.<host>, RFC 7672 §3.2.3); write that name"
	case strings.Contains(h, "*"):
		return "is a wildcard: senders look up the TLSA records of each MX host by its own name; list every host"
	case strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasSuffix(h, ".."):
		return "has an empty label (doubled or leading dot)"
	case !strings.Contains(name, "."):
		return "is not a fully qualified name (a single label): write the MX host's full name, e.g. " + name + ".example.com"
	case len(name) > 253:
		return fmt.Sprintf("is %d octets long: a domain name has at most 253 (RFC 1035 §2.3.4)", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) > 63 {
			return fmt.Sprintf("has a label of %d octets (%.16s…): at most 63 (RFC 1035 §2.3.4)", len(label), label)
		}
		if !isHostLabel(label) {
			return fmt.Sprintf("label %q is not a host name label: letters, digits and inner hyphens only, internationalized names in their xn-- form (RFC 1123 §2.1, RFC 5890)", label)
		}
	}
	return ""
}

// zoneProblem says why z cannot be a zone's name (the owner of its SOA
// record), or "" when it can: at most 63 octets per label and 253 in all
// (RFC 1035 §2.3.4, without the trailing dot), no empty label, letters,
// digits, hyphens and underscores (zones such as _domainkey.example.com
// exist; RFC 2181 §11 allows any octet, but a zone name with others is a
// typing error here far more often than a real zone).
func zoneProblem(z string) string {
	name := strings.TrimSuffix(z, ".")
	switch {
	case name == "":
		return "is empty or the root"
	case strings.IndexFunc(z, unicode.IsSpace) >= 0:
		return "contains white space"
	case strings.Contains(name, "..") || strings.HasPrefix(name, ".") || strings.HasSuffix(z, ".."):
		return "has an empty label (doubled or leading dot)"
	case len(name) > 253:
		return fmt.Sprintf("is %d octets long (at most 253, RFC 1035 §2.3.4)", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) > 63 {
			return fmt.Sprintf("has a label of %d octets (at most 63, RFC 1035 §2.3.4)", len(label))
		}
		for i := 0; i < len(label); i++ {
			switch c := label[i]; {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return fmt.Sprintf("holds %q", string(c))
			}
		}
	}
	return ""
}

// isHostLabel reports whether label is a host name label (RFC 1123 §2.1):
// letters, digits and hyphens, at least one octet, not starting or ending
// with a hyphen; `^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`, spelt out
// because a configuration of 5,000 hosts matched that regexp 25,000
// times, half of loading it.
func isHostLabel(label string) bool {
	if label == "" {
		return false
	}
	for i := 0; i < len(label); i++ {
		switch c := label[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' && i > 0 && i < len(label)-1:
		default:
			return false
		}
	}
	return true
}

// hostPortProblem says why v is not "host:port" with a port 1-65535, or ""
// when it is.
func hostPortProblem(v string) string {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		if LooksLikeSecret(v) {
			return "is not host:port (the value is not shown: it looks like a secret)"
		}
		return fmt.Sprintf("%q: want host:port, e.g. \"192.0.2.53:53\" or \"[2001:db8::53]:53\"", v)
	}
	n, err := strconv.Atoi(port)
	switch {
	case host == "":
		return fmt.Sprintf("%q has no host: want host:port, e.g. \"192.0.2.53:53\"", v)
	case err != nil || n < 1 || n > 65535:
		return fmt.Sprintf("%q: port %q out of range 1-65535", v, port)
	}
	return ""
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// envNameProblem says why v is not the name of an environment variable
// (POSIX.1-2017 §8.1: letters, digits and underscores, not starting with a
// digit), or "" when it is. The value is never quoted: a secret pasted
// where its variable's name belongs must not reach a log.
func envNameProblem(v string) string {
	switch {
	case LooksLikeSecret(v):
		return "looks like a secret, not the name of an environment variable (the value is not shown): put the secret in the variable's value and its name, e.g. DANEHOOK_TSIG_SECRET, here"
	case !envName.MatchString(v):
		return "is not the name of an environment variable (letters, digits and underscores; the value is not shown)"
	}
	return ""
}

// LooksLikeSecret reports whether v has the shape of a credential rather
// than of a file or variable name: a pasted tsig-keygen block (`secret
// "…";`); a base64 string of 16 bytes or more (TSIG secrets, RFC 8945 §6;
// BIND's tsig-keygen prints 32 bytes for hmac-sha256) mixing upper case,
// lower case and digits; or a 40-character API token of letters, digits,
// "_" and "-" mixing all three (Cloudflare API tokens). Paths under the
// usual roots and anything with a dot or white space (a file name) are not
// secret-shaped.
func LooksLikeSecret(v string) bool {
	if strings.Contains(v, "secret") && strings.ContainsAny(v, "\";{}") {
		return true
	}
	if strings.ContainsAny(v, ". \t\n") {
		return false
	}
	for _, root := range []string{"/etc/", "/var/", "/run/", "/usr/", "/opt/", "/srv/", "/root/", "/home/", "/tmp/"} {
		if strings.HasPrefix(v, root) {
			return false
		}
	}
	mixed := strings.ContainsAny(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") &&
		strings.ContainsAny(v, "0123456789")
	if !mixed {
		return false
	}
	if len(v) == 40 && regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(v) {
		return true
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) >= 16 {
			return true
		}
	}
	return false
}

// locateValue returns the line of value (quoted, or a bare number) within
// the setting key, which may span lines (a TOML array); the key's own line
// when value cannot be found there.
func locateValue(data []byte, key []string, value string) int {
	start := locate(data, key)
	if start == 0 {
		return 0
	}
	lines := strings.Split(string(data), "\n")
	quoted := strconv.Quote(value)
	bare := regexp.MustCompile(`(^|[\[\s,=])` + regexp.QuoteMeta(value) + `($|[\]\s,#])`)
	for i := start - 1; i < len(lines); i++ {
		l := lines[i]
		if i > start-1 {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "[\"") || regexp.MustCompile(`^[A-Za-z0-9_."-]+\s*=`).MatchString(t) {
				break
			}
		}
		if strings.Contains(l, quoted) || strings.Contains(l, "'"+value+"'") || bare.MatchString(l) {
			return i + 1
		}
	}
	return start
}

// Line returns the 1-based line of the setting key (a table path and key,
// e.g. "lineage", "mail", "chain_file") in the file c was read from, 0 when
// unknown.
func (c *Config) Line(key ...string) int {
	return locate(c.data, key)
}

// CheckFiles returns the problems of the files the configuration names that
// only the file system shows: a configuration file, or its directory, that
// others may write (the configuration names commands run as root:
// renew_command, postfix.command); a chain_file that names a directory; a
// chain file directory that others may write (they could replace the file
// that holds the private key, or plant a link where danehook writes it). A
// directory with the sticky bit (such as /tmp) protects the files in it
// from others and is not reported for the configuration file. Missing files
// are not problems here (`danectl config check` reports them).
func (c *Config) CheckFiles() Problems {
	var probs Problems
	if fi, err := os.Stat(c.Path); err == nil && fi.Mode().Perm()&0o002 != 0 {
		probs = append(probs, &Error{File: c.Path, Problem: fmt.Sprintf("the configuration file is writable by others (mode %04o) and names commands danehook runs as root: chmod o-w %s", fi.Mode().Perm(), c.Path)})
	}
	dir := filepath.Dir(c.Path)
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o002 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		probs = append(probs, &Error{File: c.Path, Problem: fmt.Sprintf("its directory %s is writable by others (mode %04o): anyone can replace the configuration; chmod o-w %s", dir, fi.Mode().Perm(), dir)})
	}
	for _, name := range sortedKeys(c.Lineages) {
		l := c.Lineages[name]
		if l.ChainFile == "" {
			continue
		}
		at := "lineage." + name + ".chain_file"
		line := c.Line("lineage", name, "chain_file")
		fi, err := os.Stat(l.ChainFile)
		if err == nil && fi.IsDir() {
			probs = append(probs, &Error{File: c.Path, Line: line, Setting: at, Problem: fmt.Sprintf("%q is a directory: name the chain file inside it, e.g. %s", l.ChainFile, filepath.Join(l.ChainFile, name+".pem"))})
			continue
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		d := filepath.Dir(l.ChainFile)
		if di, err := os.Stat(d); err == nil && di.IsDir() && di.Mode().Perm()&0o002 != 0 {
			probs = append(probs, &Error{File: c.Path, Line: line, Setting: at, Problem: fmt.Sprintf("its directory %s is writable by others (mode %04o) and will hold the private key: install -d -m 0700 %s", d, di.Mode().Perm(), d)})
		}
	}
	return probs
}
