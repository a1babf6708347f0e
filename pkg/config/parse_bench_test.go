package config

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse5000Hosts parses a configuration of 50 lineages of 100
// hosts each (the publish benchmark's), as every danectl run does first.
func BenchmarkParse5000Hosts(b *testing.B) {
	var s strings.Builder
	s.WriteString("state_dir = \"/var/lib/danehook\"\n[provider.lab]\ntype = \"rfc2136\"\nserver = \"127.0.0.1:53\"\nkey_file = \"/etc/danehook/key.conf\"\n")
	for l := range 50 {
		fmt.Fprintf(&s, "[lineage.l%03d]\nhosts = [", l)
		for h := range 100 {
			if h > 0 {
				s.WriteString(", ")
			}
			fmt.Fprintf(&s, "\"h%05d.z0.bench.test\"", l*100+h)
		}
		fmt.Fprintf(&s, "]\nttl = 300\nprovider = \"lab\"\nchain_file = \"/etc/postfix/l%03d.pem\"\n", l)
	}
	data := []byte(s.String())
	for b.Loop() {
		c, err := Parse("bench.toml", data)
		if err != nil {
			b.Fatal(err)
		}
		if len(c.Lineages) != 50 {
			b.Fatalf("%d lineages, want 50", len(c.Lineages))
		}
	}
}
