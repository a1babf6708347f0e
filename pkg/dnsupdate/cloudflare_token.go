package dnsupdate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Environment variables naming the Cloudflare API token, as lego and certbot's
// Cloudflare plugins spell them.
const (
	CloudflareTokenEnv     = "CLOUDFLARE_API_TOKEN"      // the token itself
	CloudflareTokenFileEnv = "CLOUDFLARE_API_TOKEN_FILE" // a file holding the token
)

// Errors of token loading.
var (
	// ErrCloudflareNoToken: neither a token file nor CLOUDFLARE_API_TOKEN(_FILE)
	// gave a token.
	ErrCloudflareNoToken = errors.New("cloudflare: no API token configured")
	// ErrCloudflareTokenInsecure: the token file is readable or writable by
	// group or others, or is not a regular file.
	ErrCloudflareTokenInsecure = errors.New("cloudflare: token file is not private")
)

// cfMaxTokenFile bounds what is read from a token file (bytes).
const cfMaxTokenFile = 4096

// CloudflareTokenFromFile reads a Cloudflare API token from path. The file
// must be a regular file with no permission bits for group or others (mode
// 0600 or 0400); otherwise the error matches ErrCloudflareTokenInsecure and
// tells the operator to run chmod 600 on it. Surrounding white space (a
// trailing newline) is removed; an empty token, or one with white space or
// control characters inside, is refused. Errors name the file, never its
// contents.
func CloudflareTokenFromFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cloudflare token file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cloudflare token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("cloudflare token file %q is not a regular file: %w", path, ErrCloudflareTokenInsecure)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("cloudflare token file %q has mode %04o, readable or writable by group or others; run chmod 600 %q: %w",
			path, perm, path, ErrCloudflareTokenInsecure)
	}
	b, err := io.ReadAll(io.LimitReader(f, cfMaxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("cloudflare token file %q: %w", path, err)
	}
	if len(b) > cfMaxTokenFile {
		return "", fmt.Errorf("cloudflare token file %q is larger than %d bytes; it should hold only the API token", path, cfMaxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	if err := cfCheckToken(tok); err != nil {
		return "", fmt.Errorf("cloudflare token file %q: %w", path, err)
	}
	return tok, nil
}

// CloudflareTokenFromEnv returns the API token named by the environment:
// the file in CLOUDFLARE_API_TOKEN_FILE (read with CloudflareTokenFromFile),
// or the value of CLOUDFLARE_API_TOKEN. Setting both is refused as
// ambiguous; setting neither returns ErrCloudflareNoToken.
func CloudflareTokenFromEnv() (string, error) {
	file, hasFile := os.LookupEnv(CloudflareTokenFileEnv)
	tok, hasTok := os.LookupEnv(CloudflareTokenEnv)
	switch {
	case hasFile && file != "" && hasTok && tok != "":
		return "", fmt.Errorf("cloudflare: both %s and %s are set; keep only one", CloudflareTokenEnv, CloudflareTokenFileEnv)
	case hasFile && file != "":
		return CloudflareTokenFromFile(file)
	case hasTok && tok != "":
		tok = strings.TrimSpace(tok)
		if err := cfCheckToken(tok); err != nil {
			return "", fmt.Errorf("cloudflare: %s: %w", CloudflareTokenEnv, err)
		}
		return tok, nil
	}
	return "", fmt.Errorf("%w: set %s or %s, or name a token file in the configuration", ErrCloudflareNoToken, CloudflareTokenEnv, CloudflareTokenFileEnv)
}

// cfCheckToken refuses an empty token or one that cannot be sent in an
// Authorization header (white space, control or non-ASCII characters). The
// error never quotes the token.
func cfCheckToken(tok string) error {
	if tok == "" {
		return ErrCloudflareNoToken
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("API token contains white space or a control or non-ASCII character at byte %d", i)
		}
	}
	return nil
}
