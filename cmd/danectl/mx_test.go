package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/danehook/danehook/pkg/deploy"
)

func TestWriteMX(t *testing.T) {
	reps := []*deploy.MXReport{{Domain: "example.test.", Server: "127.0.0.1:53", Hosts: []deploy.MXHost{
		{Preference: 10, Host: "mail.example.test", Lineages: []string{"mail"}, Owner: "_25._tcp.mail.example.test.", RecordsAt: "_25._tcp.mail.example.test.",
			TLSA: []string{"3 1 1 aa"}, OK: true, Chains: []deploy.MXChain{{Algorithm: "rsa", Addr: "127.0.0.1:25"}, {Algorithm: "ecdsa", Addr: "127.0.0.1:25", Served: true, Matches: true, Leaf: "CN=mail"}}},
		{Preference: 20, Host: "mx2.example.test", Owner: "_25._tcp.mx2.example.test.", CNAMEs: []string{"_25._tcp.mx2.example.test."}, RecordsAt: "_dane.example.test.",
			Problem: "the rsa chain presented at 127.0.0.1:25 matches none of the TLSA records", Chains: []deploy.MXChain{{Algorithm: "rsa", Addr: "127.0.0.1:25", Served: true, Leaf: "CN=mx2"}}},
	}}}
	var b bytes.Buffer
	writeMX(&b, reps)
	out := b.String()
	for _, want := range []string{
		"MX 10 mail.example.test: managed by lineage mail: ok",
		"rsa at 127.0.0.1:25: no certificate of this algorithm",
		"ecdsa at 127.0.0.1:25: CN=mail: matches",
		"MX 20 mx2.example.test: unmanaged: PROBLEM: the rsa chain",
		"_25._tcp.mx2.example.test. -> _dane.example.test. (CNAME)",
		"rsa at 127.0.0.1:25: CN=mx2: MATCHES NO RECORD",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
