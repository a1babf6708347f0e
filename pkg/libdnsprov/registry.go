// Package libdnsprov holds the libdns providers danehook can be built with
// (type = "libdns", name = "<provider>" in a [provider.NAME] table) and how
// each one's settings, errors and gaps are handled. The default build has
// rfc2136, desec and hetzner; others are compiled in with a build tag, as
// lego does (go build -tags libdns_route53 ./cmd/...).
//
// Providers are built from settings the caller has already read: this
// package never reads a credential file or the environment (the CLI,
// cmd/internal/cliapp, does).
package libdnsprov

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/danehook/danehook/pkg/dnsupdate"
)

// Settings is what a provider is built from.
type Settings struct {
	// Token is the API token (read by the caller from api_token_file or
	// api_token_env); empty for providers that take none.
	Token string
	// Server ("host:port") and Key are the rfc2136 provider's primary and
	// TSIG key.
	Server string
	Key    *dnsupdate.TSIGKey
	// Timeout bounds one exchange (the provider table's timeout).
	Timeout time.Duration
	// Extra holds the table's other settings (config.Provider.Settings),
	// for providers whose settings danehook does not know.
	Extra map[string]any
}

// Spec describes one libdns provider.
type Spec struct {
	// Name is the value of the name setting: "desec".
	Name string
	// Module is the Go module and version compiled in.
	Module string
	// Status is one line for the README: how far it is tested.
	Status string
	// TokenEnv is the default environment variable of the API token; ""
	// when the provider takes no API token (rfc2136 uses the TSIG
	// settings).
	TokenEnv string
	// Settings lists the Extra keys the provider accepts; any other key is
	// a configuration error.
	Settings []string
	// New builds the provider.
	New func(Settings) (dnsupdate.LibdnsProvider, error)
	// Classify maps the provider's errors to the dnsupdate.ErrProvider*
	// classes (nil when it cannot tell).
	Classify func(error) error
}

var specs = map[string]Spec{}

// register adds s; called from each provider file's init.
func register(s Spec) {
	if _, dup := specs[s.Name]; dup {
		panic("libdnsprov: provider " + s.Name + " registered twice")
	}
	specs[s.Name] = s
}

// Lookup returns the provider called name, or an error listing the
// compiled-in ones.
func Lookup(name string) (Spec, error) {
	if s, ok := specs[name]; ok {
		return s, nil
	}
	return Spec{}, fmt.Errorf("libdns provider %q is not compiled in (this build has: %s; others need a build tag, e.g. go build -tags libdns_route53)", name, strings.Join(Names(), ", "))
}

// Names returns the compiled-in provider names, sorted.
func Names() []string {
	var n []string
	for k := range specs {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// CheckExtra returns an error naming the first setting in extra that s
// does not accept.
func (s Spec) CheckExtra(extra map[string]any) error {
	var keys []string
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !contains(s.Settings, k) {
			allowed := "none besides danehook's own"
			if len(s.Settings) > 0 {
				allowed = strings.Join(s.Settings, ", ")
			}
			return fmt.Errorf("setting %q is unknown to libdns provider %q (its settings: %s)", k, s.Name, allowed)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// statusClass maps an HTTP status to a class: 401/403 auth, 404 zone,
// 429 and 5xx unavailable, other 4xx request; nil for 0.
func statusClass(status int) error {
	switch {
	case status == 401 || status == 403:
		return dnsupdate.ErrProviderAuth
	case status == 404:
		return dnsupdate.ErrProviderZone
	case status == 429 || status >= 500:
		return dnsupdate.ErrProviderUnavailable
	case status >= 400:
		return dnsupdate.ErrProviderRequest
	}
	return nil
}
