package cliapp

// Wiring: the configuration turned into what the engine is handed.

import (
	"fmt"
	"os"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/deploy"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
)

// Publisher is the interface the engine consumes (deploy.Publisher, whose
// doc states its contract): NewPublisher builds one per provider.
type Publisher = deploy.Publisher

// NewPublisher builds the provider described by p, reading its credentials:
// for "rfc2136" the TSIG key from key_file (a tsig-keygen file), else
// secret_file, else the environment variable secret_env; for "cloudflare"
// the API token from api_token_file, else the environment variable
// api_token_env. It is the only code in danehook that reads credentials.
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
		return &dnsupdate.RFC2136{Server: p.Server, Zone: p.Zone, Key: key, Timeout: timeout, Prerequisites: p.Prerequisites}, nil
	case "cloudflare":
		token, err := cloudflareToken(p)
		if err != nil {
			return nil, fmt.Errorf("provider %q: %w", p.Name, err)
		}
		return &dnsupdate.Cloudflare{APIToken: token, Zone: p.Zone, BaseURL: p.APIURL, Timeout: timeout}, nil
	}
	return nil, fmt.Errorf("provider %q: unknown type %q", p.Name, p.Type)
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
