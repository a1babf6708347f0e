//go:build libdns_route53

package libdnsprov

import (
	"fmt"
	"strings"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/libdns/route53"
)

// libdns/route53 v1.6.2 (Amazon Route 53, on aws-sdk-go-v2), compiled in
// only with -tags libdns_route53: the SDK is large and nothing here can
// test against Route 53 (no fake; status "untested" in the README). The
// pattern for further tag-gated providers: one file, a build tag
// libdns_<name>, settings from Extra, the secret from the token.
//
// Settings: region, profile, access_key_id, hosted_zone_id, max_retries;
// the secret access key comes from api_token_file or api_token_env
// (default AWS_SECRET_ACCESS_KEY), never from the configuration file.
func init() {
	register(Spec{
		Name:     "route53",
		Module:   "github.com/libdns/route53 v1.6.2",
		Status:   "build tag libdns_route53; compiles, untested here (no Route 53 fake)",
		TokenEnv: "AWS_SECRET_ACCESS_KEY",
		Settings: []string{"region", "profile", "access_key_id", "hosted_zone_id", "max_retries"},
		New: func(s Settings) (dnsupdate.LibdnsProvider, error) {
			p := &route53.Provider{SecretAccessKey: s.Token}
			for k, v := range s.Extra {
				switch k {
				case "max_retries":
					n, ok := v.(int64)
					if !ok {
						return nil, fmt.Errorf("setting max_retries: want a whole number, got %v", v)
					}
					p.MaxRetries = int(n)
					continue
				}
				str, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("setting %s: want a string, got %v", k, v)
				}
				switch k {
				case "region":
					p.Region = str
				case "profile":
					p.Profile = str
				case "access_key_id":
					p.AccessKeyId = str
				case "hosted_zone_id":
					p.HostedZoneID = str
				}
			}
			return p, nil
		},
		Classify: func(err error) error {
			msg := err.Error()
			switch {
			case strings.Contains(msg, "InvalidClientTokenId"), strings.Contains(msg, "SignatureDoesNotMatch"), strings.Contains(msg, "AccessDenied"):
				return dnsupdate.ErrProviderAuth
			case strings.Contains(msg, "NoSuchHostedZone"):
				return dnsupdate.ErrProviderZone
			case strings.Contains(msg, "Throttling"), strings.Contains(msg, "PriorRequestNotComplete"):
				return dnsupdate.ErrProviderUnavailable
			case strings.Contains(msg, "InvalidChangeBatch"), strings.Contains(msg, "InvalidInput"):
				return dnsupdate.ErrProviderRequest
			}
			return nil
		},
	})
}
