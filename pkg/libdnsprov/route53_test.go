//go:build libdns_route53

package libdnsprov

import (
	"testing"

	"github.com/libdns/route53"
)

func TestRoute53Settings(t *testing.T) {
	s, err := Lookup("route53")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.New(Settings{Token: "secret", Extra: map[string]any{"region": "eu-central-1", "access_key_id": "AKIDEXAMPLE", "max_retries": int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	r := p.(*route53.Provider)
	if r.Region != "eu-central-1" || r.AccessKeyId != "AKIDEXAMPLE" || r.SecretAccessKey != "secret" || r.MaxRetries != 3 {
		t.Errorf("got %+v", r)
	}
	if _, err := s.New(Settings{Extra: map[string]any{"region": 7}}); err == nil {
		t.Error("a number for region was accepted")
	}
}
