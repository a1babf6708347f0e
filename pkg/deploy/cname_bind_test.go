package deploy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/fixture"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/state"
)

// cnameEngine starts a BIND lab serving example.test. and other.test.,
// with the lineage's owner _25._tcp.mail.example.test. a CNAME to target.
func cnameEngine(t *testing.T, target string, zones ...string) (*Engine, *bindlab.Lab, *dnsupdate.RFC2136) {
	t.Helper()
	lab := bindlab.Start(t, bindlab.Options{TTL: 1, Zones: zones})
	lab.Nsupdate(t, "update add "+owner+" 1 IN CNAME "+target+"\nsend\n")
	cfgPath, cfgText := fixture.LabConfig(t, lab, "")
	cfg, err := config.Parse(cfgPath, []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	rp := labPublisher(t, cfg)
	return &Engine{Config: cfg, Store: &state.Store{Dir: cfg.State()}, Publishers: map[string]Publisher{"lab": rp}, LockWait: time.Second}, lab, rp
}

// TestCNAMEOwnerPublishesAtTarget: a TLSA owner that is a CNAME into a
// zone the provider manages gets its records at the target; nothing is
// ever added beside the CNAME; status names both names; the switch and
// the removal are decided at the target like at any owner.
func TestCNAMEOwnerPublishesAtTarget(t *testing.T) {
	const target = "_25._tcp.mail.other.test."
	e, _, rp := cnameEngine(t, target, "example.test.", "other.test.")
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)

	plans, err := e.Publish(t.Context())
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for _, p := range plans {
		for _, ch := range p.Changes {
			if ch.Op == dnsupdate.Add && !strings.EqualFold(ch.Owner, target) {
				t.Errorf("an addition at %s, want every one at the target %s", ch.Owner, target)
			}
		}
	}
	if n := rp.Sent().Updates; n != 1 {
		t.Errorf("sent %d UPDATEs, want 1 (to other.test.)", n)
	}
	// The alias still resolves to a CNAME only; the target serves the record.
	if _, err := rp.Records(t.Context(), owner); !errors.As(err, new(*dnsupdate.AliasError)) {
		t.Errorf("Records at the alias = %v, want still an AliasError (no TLSA beside the CNAME)", err)
	}
	got, err := rp.Records(t.Context(), target)
	if err != nil || len(got) != 1 || got[0].Record.String() != "3 1 1 "+spkiOf(t, c) {
		t.Fatalf("target serves %v (%v), want the lineage's 3 1 1", got, err)
	}
	st, err := e.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Owners) != 1 || st.Owners[0].Owner != target || len(st.Owners[0].Aliases) != 1 || st.Owners[0].Aliases[0] != owner || st.Owners[0].Err != "" {
		t.Fatalf("status owners = %+v, want one at %s with alias %s", st.Owners, target, owner)
	}
	// A second publish is idempotent.
	if _, err := e.Publish(t.Context()); err != nil || rp.Sent().Updates != 1 {
		t.Errorf("second Publish: %v, %d UPDATEs in all, want 1", err, rp.Sent().Updates)
	}
}

// TestCNAMEOwnerOutsideProvider: a CNAME into a zone the provider does
// not manage is refused with both names and nothing is sent.
func TestCNAMEOwnerOutsideProvider(t *testing.T) {
	e, _, rp := cnameEngine(t, "_25._tcp.mail.example.org.", "example.test.")
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	_, err := e.Publish(t.Context())
	if err == nil || !strings.Contains(err.Error(), owner) || !strings.Contains(err.Error(), "_25._tcp.mail.example.org.") || !strings.Contains(err.Error(), "does not manage") {
		t.Fatalf("Publish = %v, want a refusal naming %s and its target", err, owner)
	}
	if n := rp.Sent().Updates; n != 0 {
		t.Errorf("sent %d UPDATEs, want 0", n)
	}
}

// TestResolveAliasesMerges: two MX hosts whose TLSA owners are CNAMEs to
// one RRset are one owner, with both names and both lineages; their refs
// point at it.
func TestResolveAliasesMerges(t *testing.T) {
	const a, b, tgt = "_25._tcp.mx1.example.test.", "_25._tcp.mx2.example.test.", "_dane.example.test."
	l1 := &lineageView{L: &config.Lineage{Name: "mx1"}, Refs: []ownerRef{{Owner: a, Host: "mx1.example.test"}}}
	l2 := &lineageView{L: &config.Lineage{Name: "mx2"}, Refs: []ownerRef{{Owner: b, Host: "mx2.example.test"}}}
	s := &snapshot{Lineages: []*lineageView{l1, l2}, Owners: []*ownerView{
		{Owner: tgt, Aliases: []string{a}, Lineages: []string{"mx1"}, TTL: 60},
		{Owner: tgt, Aliases: []string{b}, Lineages: []string{"mx2"}, TTL: 300, RequireDNSSEC: true},
	}}
	s.resolveAliases()
	if len(s.Owners) != 1 {
		t.Fatalf("owners = %d, want 1", len(s.Owners))
	}
	ov := s.Owners[0]
	if strings.Join(ov.Aliases, ",") != a+","+b || strings.Join(ov.Lineages, ",") != "mx1,mx2" || ov.TTL != 300 || !ov.RequireDNSSEC {
		t.Errorf("merged owner = %+v", ov)
	}
	if l1.Refs[0].Owner != tgt || l2.Refs[0].Owner != tgt || l1.Refs[0].Host != "mx1.example.test" {
		t.Errorf("refs = %+v %+v, want both at %s with their hosts", l1.Refs, l2.Refs, tgt)
	}
}

// TestResolveAliasesRememberedTarget: once records were published at a
// CNAME's target, the state remembers the target as an owner of its own
// (no lineage, config.DefaultTTL). Merged with the lineages' views that
// reach it through their CNAMEs, it must not raise their ttl: the records
// would be published with 300 s and every later switch and rotation would
// wait 2 x 300 s instead of 2 x the lineage's ttl. Both orders.
func TestResolveAliasesRememberedTarget(t *testing.T) {
	const a, b, tgt = "_25._tcp.mx1.example.test.", "_25._tcp.mx2.example.test.", "_dane.example.test."
	for _, rememberedFirst := range []bool{true, false} {
		l1 := &lineageView{L: &config.Lineage{Name: "mx1"}, Refs: []ownerRef{{Owner: a, Host: "mx1.example.test"}}}
		l2 := &lineageView{L: &config.Lineage{Name: "mx2"}, Refs: []ownerRef{{Owner: b, Host: "mx2.example.test"}}}
		views := []*ownerView{
			{Owner: tgt, Aliases: []string{a}, Lineages: []string{"mx1"}, TTL: 1},
			{Owner: tgt, Aliases: []string{b}, Lineages: []string{"mx2"}, TTL: 2},
		}
		remembered := &ownerView{Owner: tgt, TTL: config.DefaultTTL, Former: []string{"mx1"}}
		if rememberedFirst {
			views = append([]*ownerView{remembered}, views...)
		} else {
			views = append(views, remembered)
		}
		s := &snapshot{Lineages: []*lineageView{l1, l2}, Owners: views}
		s.resolveAliases()
		if len(s.Owners) != 1 {
			t.Fatalf("remembered first %v: owners = %d, want 1", rememberedFirst, len(s.Owners))
		}
		if ov := s.Owners[0]; ov.TTL != 2 || strings.Join(ov.Lineages, ",") != "mx1,mx2" {
			t.Errorf("remembered first %v: merged TTL %d lineages %v, want 2 (the lineages' largest ttl) and mx1,mx2", rememberedFirst, ov.TTL, ov.Lineages)
		}
	}
}
