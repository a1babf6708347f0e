package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/bindlab"
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

// TestStatusDomainCommand: `danectl status DOMAIN` reads the MX RRset from
// the lab's BIND, names the managing lineage, reports a host that does not
// answer, exits 1, and refuses lineages and domains mixed.
func TestStatusDomainCommand(t *testing.T) {
	cfg, lab := dnsLab(t, func(l *bindlab.Lab) string { return l.KeyFile })
	lab.Nsupdate(t, "update add example.test. 1 IN MX 10 mail.example.test.\nsend\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing answers there
	code, out, errs := danectl(t, "status", "--config", cfg, "--smtp-port", strconv.Itoa(port), "example.test")
	if code != exitMismatch || !strings.Contains(out, "MX 10 mail.example.test: managed by lineage mail: PROBLEM") || !strings.Contains(errs, "do not all match") {
		t.Fatalf("status DOMAIN: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = danectl(t, "status", "--config", cfg, "--json", "--smtp-port", strconv.Itoa(port), "example.test")
	var reps []deploy.MXReport
	if err := json.Unmarshal([]byte(out), &reps); err != nil || code != exitMismatch || len(reps) != 1 || len(reps[0].Hosts) != 1 || reps[0].Hosts[0].Lineages[0] != "mail" || reps[0].Server != lab.Primary {
		t.Fatalf("status DOMAIN --json: exit %d, %v\n%s", code, err, out)
	}
	if code, _, errs := danectl(t, "status", "--config", cfg, "mail", "example.test"); code != exitUsage || !strings.Contains(errs, "not both") {
		t.Errorf("mixed arguments: exit %d, %s", code, errs)
	}
}
