package deploy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// TestFirstRecordsHeld: the decision that keeps an owner's first TLSA
// records back, over what Postfix is configured to serve: held while the
// service of the owner's port reads a chain they would not match or
// offers no STARTTLS; published when it reads the lineage's chain file,
// files of the same key, files that do not exist yet, when only another
// port's service differs, when the owner already has records, or when
// Postfix's configuration was not read.
func TestFirstRecordsHeld(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	ka, ca1, _ := ca.issue(t, nil)
	kb, cb, _ := ca.issue(t, nil)
	liveA, liveB := filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	writeFile(t, liveA, ka, ca1)
	writeFile(t, liveB, kb, cb)
	ours := filepath.Join(dir, "chain.pem") // not installed yet
	recA, err := tlsa.FromCertificate(mustLeaf(t, ca1), tlsa.UsageDANEEE, tlsa.SelectorSPKI, tlsa.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	owner := "_25._tcp.mail.example.test."
	add := []dnsupdate.Change{{Op: dnsupdate.Add, RR: dnsupdate.RR{Owner: owner, TTL: 60, Record: recA}}}
	svc := func(name, level string, files ...string) postfix.ServiceTLS {
		return postfix.ServiceTLS{Service: name, SecurityLevel: level, ChainFiles: files}
	}
	cfg := &config.Config{Lineages: map[string]*config.Lineage{"mail": {Name: "mail", ChainFile: ours, Hosts: []string{"mail.example.test"}}}}
	tests := []struct {
		name     string
		services []postfix.ServiceTLS
		endpoint string
		served   bool // the owner already has a record
		unread   bool // Postfix's configuration not read
		held     string
	}{
		{name: "reads the chain file", services: []postfix.ServiceTLS{svc("smtp/inet", "may", ours)}},
		{name: "live files of the same key", services: []postfix.ServiceTLS{svc("smtp/inet", "may", liveA)}},
		{name: "live files of another key", services: []postfix.ServiceTLS{svc("smtp/inet", "may", liveB)}, held: "would not match"},
		{name: "files that do not exist yet", services: []postfix.ServiceTLS{svc("smtp/inet", "may", filepath.Join(dir, "none.pem"))}},
		{name: "no STARTTLS", services: []postfix.ServiceTLS{svc("smtp/inet", "none", ours)}, held: "offers STARTTLS"},
		{name: "only submission reads another key", services: []postfix.ServiceTLS{svc("smtp/inet", "may", ours), svc("submission/inet", "may", liveB)}},
		{name: "a pass service behind postscreen reads another key", services: []postfix.ServiceTLS{svc("smtp/inet", "may", ours), svc("smtpd/pass", "may", liveB)}, held: "would not match"},
		{name: "another port, the lineage's endpoint", services: []postfix.ServiceTLS{svc("127.0.0.1:2525/inet", "may", liveB)}, endpoint: "127.0.0.1:2525", held: "would not match"},
		{name: "another port, not an endpoint", services: []postfix.ServiceTLS{svc("127.0.0.1:2525/inet", "may", liveB)}, held: "on port 25 offers STARTTLS"},
		{name: "the owner has records", services: []postfix.ServiceTLS{svc("smtp/inet", "may", liveB)}, served: true},
		{name: "Postfix not read", services: []postfix.ServiceTLS{svc("smtp/inet", "may", liveB)}, unread: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := *cfg.Lineages["mail"]
			if tc.endpoint != "" {
				l.Endpoints = []string{tc.endpoint}
			}
			e := &Engine{Config: &config.Config{Lineages: map[string]*config.Lineage{"mail": &l}}}
			s := &snapshot{PostfixRead: !tc.unread, Postfix: &postfix.Config{Services: tc.services}, Now: time.Now()}
			ov := &ownerView{Owner: owner, Host: "mail.example.test", Lineages: []string{"mail"}}
			if tc.served {
				ov.Current = []dnsupdate.RR{{Owner: owner, TTL: 60, Record: recA}}
			}
			got := e.firstRecordsHeld(s, ov, add)
			switch {
			case tc.held == "" && got != "":
				t.Errorf("held (%s), want published", got)
			case tc.held != "" && !strings.Contains(got, tc.held):
				t.Errorf("got %q, want held saying %q", got, tc.held)
			}
		})
	}
}

func TestServicePort(t *testing.T) {
	for svc, want := range map[string]int{"smtp/inet": 25, "submission/inet": 587, "smtps/inet": 465, "submissions/inet": 465,
		"127.0.0.1:2525/inet": 2525, "[::1]:26/inet": 26, "2526/inet": 2526, "smtpd/pass": -1, "relay/unix": -1, "mysmtp/inet": -1} {
		got, known := servicePort(svc)
		if want < 0 && known || want >= 0 && (!known || got != want) {
			t.Errorf("servicePort(%q) = %d, %v; want %d", svc, got, known, want)
		}
	}
}
