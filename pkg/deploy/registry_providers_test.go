package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/bindlab"
	"github.com/danehook/danehook/internal/cloudflarefake"
	"github.com/danehook/danehook/pkg/config"
	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/libdnsprov"
	"github.com/danehook/danehook/pkg/state"
)

var (
	_ Registry = (*dnsupdate.Cloudflare)(nil)
	_ Registry = (*dnsupdate.Libdns)(nil)
)

// hookedAny is any provider with a registry, with a hook that runs once
// right before the first change set carrying a removal.
type hookedAny struct {
	Publisher
	reg          Registry
	beforeRemove func()
}

func (h *hookedAny) Claims(ctx context.Context, owner string) ([]dnsupdate.Claim, error) {
	return h.reg.Claims(ctx, owner)
}

func (h *hookedAny) ApplyClaims(ctx context.Context, ttl uint32, add, remove []dnsupdate.Claim) error {
	return h.reg.ApplyClaims(ctx, ttl, add, remove)
}

func (h *hookedAny) ApplyClaimed(ctx context.Context, host string, changes []dnsupdate.Change) ([]dnsupdate.Conflict, error) {
	if f := h.beforeRemove; f != nil && hasRemove(changes) {
		h.beforeRemove = nil
		f()
	}
	return h.reg.ApplyClaimed(ctx, host, changes)
}

// libdnsHost is one installation publishing through libdns/rfc2136 at the
// lab (reads by direct query), host_id id.
func libdnsHost(t *testing.T, lab *bindlab.Lab, id string) (*Engine, *hookedAny) {
	t.Helper()
	e := hostEngine(t, lab, id)
	rp := e.Publishers["lab"].(*dnsupdate.RFC2136)
	spec, err := libdnsprov.Lookup("rfc2136")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := spec.New(libdnsprov.Settings{Server: rp.Server, Key: rp.Key})
	if err != nil {
		t.Fatal(err)
	}
	reader := &dnsupdate.RFC2136{Server: rp.Server, Key: rp.Key, Timeout: 5 * time.Second}
	l := &dnsupdate.Libdns{Name: "rfc2136", Provider: prov, Reader: reader, Classify: spec.Classify, Timeout: 5 * time.Second}
	h := &hookedAny{Publisher: l, reg: l}
	e.Publishers["lab"] = h
	zero := time.Duration(0)
	e.PublishWait = &zero
	return e, h
}

// TestSharedOwnerLibdns: the registry through a libdns provider
// (libdns/rfc2136 against BIND): claims are TXT records written with
// AppendRecords; a's cleanup keeps the record b serves; and when b renews
// onto a's old key between a's observation and a's removal, the claims
// read again right before DeleteRecords keep the record (no prerequisite
// exists on this path). All converge.
func TestSharedOwnerLibdns(t *testing.T) {
	t.Parallel() // mostly waits for records to age
	lab := bindlab.Start(t, bindlab.Options{TTL: 1})
	a, ha := libdnsHost(t, lab, "mx1")
	b, _ := libdnsHost(t, lab, "mx2")
	ca := newCA(t)
	_, _, k1 := ca.CA.Issue(t, nil)
	_, _, k2 := ca.CA.Issue(t, nil)
	_, _, kb := ca.CA.Issue(t, nil)
	r1 := serve(t, a, ca, k1)
	rb := serve(t, b, ca, kb)
	claims, err := ha.Claims(t.Context(), owner)
	if err != nil || len(claims) != 2 {
		t.Fatalf("claims after both published = %v, %v; want mx1 and mx2", claims, err)
	}
	serve(t, a, ca, k2)
	observeAged(t, lab, b)
	var bres *DeployResult
	ha.beforeRemove = func() { bres = switchTo(t, lab, b, ca, k1) }
	res, err := a.Reload(t.Context())
	if err != nil {
		t.Fatalf("a's Reload: %v", err)
	}
	if bres == nil || !bres.Installed {
		t.Fatalf("b's switch to k1 during a's cleanup: %+v", bres)
	}
	everyServedPresent(t, "a's cleanup during b's switch", a, b)
	if has(res.Removed, r1) || !strings.Contains(strings.Join(res.Held, " "), "host mx2 claimed it") {
		t.Fatalf("a removed %v, held %v; want r1 held, claimed by mx2 right before the removal", res.Removed, res.Held)
	}
	// b drops kb's claim; a never owned rb, so rb goes with b's cleanup.
	if _, err := b.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	everyServedPresent(t, "b's cleanup", a, b)
	if got := servedRecords(t, a); has(got, rb) || len(got) != 2 {
		t.Fatalf("converged to %v, want k1's and k2's records only", got)
	}
}

// TestCloudflareOwnerCNAME: the engine reads an owner through the
// Cloudflare provider: a CNAME there is followed to its target when the
// token sees the target's zone (records read and changed there, both
// names kept), refused naming both names otherwise; the registry is read
// at the target.
func TestCloudflareOwnerCNAME(t *testing.T) {
	const token = "cfTok-SECRET-race-1"
	const cfOwner = "_25._tcp.mail.example.com."
	for _, tc := range []struct {
		name, target string
		wantErr      string
	}{
		{name: "target in a zone of the account", target: "_25._tcp.mx.other.example"},
		{name: "target in the same zone", target: "_dane.example.com"},
		{name: "target outside the account", target: "_25._tcp.mx.elsewhere.test", wantErr: "does not manage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := cloudflarefake.New(t, token)
			f.AddZone("example.com")
			f.AddZone("other.example")
			f.AddRecord("example.com", cloudflarefake.Record{Type: "CNAME", Name: strings.TrimSuffix(cfOwner, "."), Content: tc.target})
			cf := &dnsupdate.Cloudflare{APIToken: token, BaseURL: f.URL, HTTPClient: f.Client(), MaxRetries: -1}
			if tc.wantErr == "" {
				if err := cf.ApplyClaims(t.Context(), 300, []dnsupdate.Claim{{Owner: tc.target + ".", Host: "mx2", Record: fakeRec(t, 7)}}, nil); err != nil {
					t.Fatal(err)
				}
			}
			e := &Engine{Config: &config.Config{HostID: "mx1"}, Store: &state.Store{Dir: t.TempDir()}, Publishers: map[string]Publisher{"cf": cf}}
			ov := &ownerView{Owner: cfOwner, Provider: "cf", TTL: 300}
			e.readOwner(t.Context(), ov)
			if tc.wantErr != "" {
				if ov.Err == nil || !strings.Contains(ov.Err.Error(), tc.wantErr) || !strings.Contains(ov.Err.Error(), cfOwner) || !strings.Contains(ov.Err.Error(), tc.target) {
					t.Fatalf("owner error = %v, want a refusal naming %s and %s", ov.Err, cfOwner, tc.target)
				}
				if !errors.Is(ov.Err, dnsupdate.ErrCloudflareZone) {
					t.Errorf("owner error %v does not match ErrCloudflareZone", ov.Err)
				}
				return
			}
			if ov.Err != nil {
				t.Fatalf("readOwner: %v", ov.Err)
			}
			if ov.Owner != tc.target+"." || len(ov.Aliases) != 1 || ov.Aliases[0] != cfOwner {
				t.Fatalf("owner %s aliases %v, want %s with alias %s", ov.Owner, ov.Aliases, tc.target+".", cfOwner)
			}
			if len(ov.Claims) != 1 || ov.Claims[0].Host != "mx2" {
				t.Errorf("claims at the target = %v, want mx2's", ov.Claims)
			}
		})
	}
}

// useLibdns replaces e's lab provider by libdns/rfc2136 against the same
// server (reads by direct query).
func useLibdns(t *testing.T, e *Engine, rp *dnsupdate.RFC2136) *dnsupdate.Libdns {
	t.Helper()
	spec, err := libdnsprov.Lookup("rfc2136")
	if err != nil {
		t.Fatal(err)
	}
	prov, err := spec.New(libdnsprov.Settings{Server: rp.Server, Key: rp.Key})
	if err != nil {
		t.Fatal(err)
	}
	l := &dnsupdate.Libdns{Name: "rfc2136", Provider: prov, Reader: &dnsupdate.RFC2136{Server: rp.Server, Key: rp.Key, Timeout: 5 * time.Second}, Timeout: 5 * time.Second}
	e.Publishers["lab"] = l
	return l
}

// TestCNAMEOwnerLibdns: through a libdns provider a CNAME owner is
// followed (the direct TLSA query shows the alias): the record goes to the
// target, nothing beside the CNAME; a target outside the zones the
// query_server serves is refused naming both names.
func TestCNAMEOwnerLibdns(t *testing.T) {
	const target = "_25._tcp.mail.other.test."
	e, _, rp := cnameEngine(t, target, "example.test.", "other.test.")
	useLibdns(t, e, rp)
	ca := newCA(t)
	k, c, _ := ca.issue(t, nil)
	writeFile(t, e.Config.Lineages["mail"].ChainFile, k, c)
	if _, err := e.Publish(t.Context()); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if _, err := rp.Records(t.Context(), owner); !errors.As(err, new(*dnsupdate.AliasError)) {
		t.Errorf("Records at the alias = %v, want still an AliasError (no TLSA beside the CNAME)", err)
	}
	if got, err := rp.Records(t.Context(), target); err != nil || len(got) != 1 || got[0].Record.String() != "3 1 1 "+spkiOf(t, c) {
		t.Fatalf("target serves %v (%v), want the lineage's 3 1 1", got, err)
	}

	e2, _, rp2 := cnameEngine(t, "_25._tcp.mail.example.org.", "example.test.")
	useLibdns(t, e2, rp2)
	writeFile(t, e2.Config.Lineages["mail"].ChainFile, k, c)
	_, err := e2.Publish(t.Context())
	if err == nil || !strings.Contains(err.Error(), owner) || !strings.Contains(err.Error(), "_25._tcp.mail.example.org.") || !strings.Contains(err.Error(), "does not manage") {
		t.Fatalf("Publish = %v, want a refusal naming %s and its target", err, owner)
	}
}
