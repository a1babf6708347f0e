package deploy

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
)

// Publisher reads and changes the TLSA records at owners. FindZone returns
// the zone (absolute name) an owner belongs to; Records returns what the
// provider serves at an owner; Apply sends the Add and Remove changes,
// ignoring Keep. *dnsupdate.RFC2136 and *dnsupdate.Cloudflare satisfy it.
type Publisher interface {
	FindZone(ctx context.Context, owner string) (string, error)
	Records(ctx context.Context, owner string) ([]dnsupdate.RR, error)
	Apply(ctx context.Context, changes []dnsupdate.Change) error
}

var (
	_ Publisher = (*dnsupdate.RFC2136)(nil)
	_ Publisher = (*dnsupdate.Cloudflare)(nil)
)

// NewPublisher builds the provider described by p, reading its credentials
// (TSIG key file, secret file or environment variable, API token). Errors
// name the provider and the file or variable at fault, never the secret.
func NewPublisher(p *config.Provider) (Publisher, error) {
	timeout := time.Duration(p.Timeout) * time.Second
	switch p.Type {
	case "rfc2136":
		var (
			key *dnsupdate.TSIGKey
			err error
		)
		switch {
		case p.KeyFile != "":
			key, err = dnsupdate.LoadTSIGKeyFile(p.KeyFile)
		case p.SecretFile != "":
			key, err = dnsupdate.TSIGKeyFromSecretFile(p.KeyName, p.KeyAlgorithm, p.SecretFile)
		default:
			key, err = dnsupdate.TSIGKeyFromEnv(p.KeyName, p.KeyAlgorithm, p.SecretEnv)
		}
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return &dnsupdate.RFC2136{Server: p.Server, Zone: p.Zone, Key: key, Timeout: timeout, Prerequisites: p.Prerequisites}, nil
	case "cloudflare":
		var (
			token string
			err   error
		)
		if p.APITokenFile != "" {
			token, err = dnsupdate.CloudflareTokenFromFile(p.APITokenFile)
		} else if v := os.Getenv(p.APITokenEnv); v != "" {
			token = v
		} else {
			err = fmt.Errorf("environment variable %s is unset or empty: set it or api_token_file", p.APITokenEnv)
		}
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return &dnsupdate.Cloudflare{APIToken: token, Zone: p.Zone, BaseURL: p.APIURL}, nil
	}
	return nil, fmt.Errorf("provider %q: unknown type %q", p.Name, p.Type)
}

// newChecker builds the propagation checker of provider p for records of
// ttl seconds.
func newChecker(p *config.Provider, ttl uint32, requireDNSSEC bool) *propagate.Checker {
	return &propagate.Checker{
		Primary:       p.QueryServer,
		Port:          p.NameserverPort,
		Hidden:        p.HiddenSecondaries,
		Resolver:      p.Resolver,
		Timeout:       time.Duration(p.Timeout) * time.Second,
		TTL:           ttl,
		RequireDNSSEC: requireDNSSEC,
	}
}
