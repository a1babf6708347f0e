package cliapp

// Wiring: the configuration turned into what the engine is handed.

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/libdnsprov"
	"github.com/danehook/danehook/pkg/postfix"
)

// Publisher is the interface the engine consumes (deploy.Publisher, whose
// doc states its contract): NewPublisher builds one per provider.
type Publisher = deploy.Publisher

// NewPublisher builds the provider described by p, reading its credentials:
// for "rfc2136" the TSIG key from key_file (a tsig-keygen file), else
// secret_file, else the environment variable secret_env; for "cloudflare"
// the API token from api_token_file, else the environment variable
// api_token_env; for "libdns" the provider named by name (see
// pkg/libdnsprov), with its API token from api_token_file, else api_token_env
// (default: the provider's variable, e.g. DESEC_TOKEN), or for the rfc2136
// libdns provider the TSIG settings above; its records are read by direct
// query to query_server. It is the only code in danehook that reads credentials.
// Files readable by group or others are refused (see dnsupdate). Errors
// name the provider and the file or variable at fault, never the secret; an
// unknown type is an error.
func NewPublisher(p *config.Provider) (Publisher, error) {
	timeout := time.Duration(p.Timeout) * time.Second
	switch p.Type {
	case "rfc2136":
		key, err := tsigKey(p)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return &dnsupdate.RFC2136{Server: p.Server, Zone: p.Zone, Zones: p.Zones, Key: key, Timeout: timeout, Prerequisites: p.Prerequisites}, nil
	case "cloudflare":
		token, err := cloudflareToken(p)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return &dnsupdate.Cloudflare{APIToken: token, Zone: p.Zone, BaseURL: p.APIURL, Timeout: timeout}, nil
	case "libdns":
		l, err := newLibdns(p, timeout)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("provider %q: unknown type %q", p.Name, p.Type)
}

// newLibdns builds a type = "libdns" provider: the libdns module's
// provider with its credentials, reads by direct query to query_server.
func newLibdns(p *config.Provider, timeout time.Duration) (*dnsupdate.Libdns, error) {
	spec, err := libdnsprov.Lookup(p.LibdnsName)
	if err != nil {
		return nil, err
	}
	if err := spec.CheckExtra(p.Settings); err != nil {
		return nil, err
	}
	s := libdnsprov.Settings{Server: p.Server, Timeout: timeout, Extra: p.Settings}
	var secrets []string
	if spec.TokenEnv != "" {
		env := p.APITokenEnv
		if env == "" {
			env = spec.TokenEnv
		}
		switch {
		case p.APITokenFile != "":
			// The same rules as Cloudflare's token file: 0600, one line.
			s.Token, err = dnsupdate.CloudflareTokenFromFile(p.APITokenFile)
			if err != nil {
				return nil, err
			}
		case os.Getenv(env) != "":
			s.Token = os.Getenv(env)
		default:
			return nil, fmt.Errorf("environment variable %s is unset or empty: set it or api_token_file", env)
		}
		secrets = append(secrets, s.Token)
	}
	var readKey *dnsupdate.TSIGKey
	if p.LibdnsName == "rfc2136" {
		if p.Prerequisites {
			return nil, fmt.Errorf("prerequisites = true needs type = \"rfc2136\" (libdns/rfc2136 sends no prerequisite section)")
		}
		if p.KeyFile != "" || p.KeyName != "" {
			if s.Key, err = tsigKey(p); err != nil {
				return nil, err
			}
			secrets = append(secrets, s.Key.Secret)
			readKey = s.Key
		}
	}
	prov, err := spec.New(s)
	if err != nil {
		return nil, fmt.Errorf("libdns provider %q: %w", spec.Name, err)
	}
	reader := &dnsupdate.RFC2136{Server: p.QueryServer, Zone: p.Zone, Zones: p.Zones, Key: readKey, Timeout: timeout}
	l := &dnsupdate.Libdns{Name: spec.Name, Provider: prov, Reader: reader, Timeout: timeout, Classify: spec.Classify, Secrets: secrets}
	if readKey != nil {
		// libdns/rfc2136 drops the TSIG error of an answer: ask again,
		// signed, with danehook's own client, which reads it.
		diag := &dnsupdate.RFC2136{Server: p.Server, Key: readKey, Timeout: timeout}
		l.Diagnose = func(ctx context.Context, zone string) error {
			_, err := diag.Records(ctx, zone)
			return err
		}
	}
	return l, nil
}

// tsigKey reads the TSIG key of an rfc2136 provider.
func tsigKey(p *config.Provider) (*dnsupdate.TSIGKey, error) {
	switch {
	case p.KeyFile != "":
		return dnsupdate.LoadTSIGKeyFile(p.KeyFile)
	case p.SecretFile != "":
		return dnsupdate.TSIGKeyFromSecretFile(p.KeyName, p.KeyAlgorithm, p.SecretFile)
	}
	return dnsupdate.TSIGKeyFromEnv(p.KeyName, p.KeyAlgorithm, p.SecretEnv)
}

// cloudflareToken reads the API token of a cloudflare provider.
func cloudflareToken(p *config.Provider) (string, error) {
	if p.APITokenFile != "" {
		return dnsupdate.CloudflareTokenFromFile(p.APITokenFile)
	}
	if v := os.Getenv(p.APITokenEnv); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("environment variable %s is unset or empty: set it or api_token_file", p.APITokenEnv)
}

// Postfix returns the Postfix instance the configuration names
// ([postfix] config_dir and command; Postfix's defaults when unset).
func Postfix(cfg *config.Config) *postfix.Instance {
	return &postfix.Instance{ConfigDir: cfg.Postfix.ConfigDir, Postfix: cfg.Postfix.Command}
}
