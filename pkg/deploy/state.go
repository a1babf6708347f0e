package deploy

import (
	"sort"
	"time"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/schedule"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Names of the state documents and of the lock (in the state directory).
const (
	dnsDoc   = "dns"      // dns.json: DNSState
	lockName = "danehook" // danehook.lock: one lock for every hook and timer run
)

// DNSState is what danehook remembers about DNS, shared by all lineages
// because lineages may share TLSA owners: the records it published (owned
// records — it never removes any other) and when each authoritative server
// was first seen serving each record.
type DNSState struct {
	// Owned maps an owner to the records danehook published there, in
	// presentation form ("3 1 1 <hex>").
	Owned map[string][]string `json:"owned"`
	// Seen holds first-seen times per owner, record and server.
	Seen *propagate.Seen `json:"seen"`
	// Providers maps an owner to the provider that published its owned
	// records, so that an owner dropped from the configuration (a renamed
	// host) is still observed and cleaned up through the right provider.
	Providers map[string]string `json:"providers,omitempty"`
	// OwnerLineages maps an owner to the lineages it belonged to when
	// danehook last published there.
	OwnerLineages map[string][]string `json:"owner_lineages,omitempty"`
	// Retiring maps an owner that is no longer configured, and whose owned
	// records danehook withdrew, to when it did: the owner is observed, and
	// switches of its former lineages wait, until no resolver can still
	// hold its RRset.
	Retiring map[string]time.Time `json:"retiring,omitempty"`
	// PostfixChecked is postfix.Instance.ConfigDigest of main.cf and
	// master.cf when `postfix check` last passed (kept in this one global
	// document so that a run saves one file): an unchanged configuration is
	// not checked again.
	PostfixChecked string `json:"postfix_checked,omitempty"`
}

// noteLineages records that owner belongs to lineages.
func (s *DNSState) noteLineages(owner string, lineages []string) {
	if len(lineages) == 0 {
		return
	}
	if s.OwnerLineages == nil {
		s.OwnerLineages = map[string][]string{}
	}
	s.OwnerLineages[owner] = append([]string(nil), lineages...)
}

// reserve sizes the maps that own and noteLineages fill for the
// additions of plans, when they are empty: a first publish of 5,000 owners
// spent a third of recording them as owned growing the maps. A map stays
// nil when no addition would create it (nil and empty differ to saveDNS).
func (s *DNSState) reserve(plans []*OwnerPlan) {
	n, provider, lineages := 0, false, false
	for _, p := range plans {
		for _, c := range p.Changes {
			if c.Op == dnsupdate.Add {
				n++
				provider = provider || p.Provider != ""
				lineages = lineages || len(p.Lineages) > 0
			}
		}
	}
	if n == 0 {
		return
	}
	if len(s.Owned) == 0 {
		s.Owned = make(map[string][]string, n)
	}
	if len(s.Providers) == 0 && (provider || s.Providers != nil) {
		s.Providers = make(map[string]string, n)
	}
	if len(s.OwnerLineages) == 0 && (lineages || s.OwnerLineages != nil) {
		s.OwnerLineages = make(map[string][]string, n)
	}
}

// owned returns the owned records at owner.
func (s *DNSState) owned(owner string) []tlsa.Record {
	var out []tlsa.Record
	for _, p := range s.Owned[owner] {
		if r, err := tlsa.Parse(p); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// own adds rec, published through provider, to the owned records at
// owner; disown removes it.
func (s *DNSState) own(owner string, rec tlsa.Record, provider string) {
	if s.Owned == nil {
		s.Owned = map[string][]string{}
	}
	if provider != "" {
		if s.Providers == nil {
			s.Providers = map[string]string{}
		}
		s.Providers[owner] = provider
	}
	p := rec.String()
	for _, x := range s.Owned[owner] {
		if x == p {
			return
		}
	}
	s.Owned[owner] = append(s.Owned[owner], p)
	sort.Strings(s.Owned[owner])
}

func (s *DNSState) disown(owner string, rec tlsa.Record) {
	p := rec.String()
	var keep []string
	for _, x := range s.Owned[owner] {
		if x != p {
			keep = append(keep, x)
		}
	}
	if len(keep) == 0 {
		delete(s.Owned, owner)
		return
	}
	s.Owned[owner] = keep
}

// LineageState is what danehook remembers about one lineage
// (<state dir>/<lineage>.json).
type LineageState struct {
	// Pending is a renewed chain that is ready but not yet safe to serve.
	Pending *Pending `json:"pending,omitempty"`
	// VerifiedChain is the SHA-256 (hex) of the served chain file's content
	// when a STARTTLS handshake last matched the published records. A
	// served file with another digest needs a reload and a verification, and
	// until then no owned record is removed.
	VerifiedChain string `json:"verified_chain,omitempty"`
	// VerifiedRecords are the records (presentation form) that chain
	// needs; they are not removed until the next verification.
	VerifiedRecords []string `json:"verified_records,omitempty"`
	// KeySPKI is the SHA-256 of the ACME client's key, hex: the key the
	// next renewal reuses, as dane-prerenew last saw it, or the key of the
	// renewal dane-deploy was last handed.
	KeySPKI string `json:"key_spki,omitempty"`
	// Next is a staged key whose 3 1 1 records are published beside the
	// current key's (danectl rotate stage), until a chain with it is served.
	Next *NextKey `json:"next,omitempty"`
	// KeySince is when a chain with the current served key was first
	// installed (the key's age for rotate_every).
	KeySince time.Time `json:"key_since,omitzero"`
	// Installed is when danehook last installed a chain for this lineage.
	Installed time.Time `json:"installed,omitzero"`
	// Verified is when a STARTTLS handshake last matched the published
	// records.
	Verified time.Time `json:"verified,omitzero"`
	// Scheduled is the run scheduled to complete the lineage's next step
	// (a switch, a rotation commit) when it becomes safe; nil when none.
	Scheduled *schedule.Entry `json:"scheduled,omitempty"`
	// ScheduleErr is why the last attempt to schedule that run failed ("" if
	// it did not); the timer completes the step then.
	ScheduleErr string `json:"schedule_error,omitempty"`
}

// Pending is a switch that waits for its records to age.
type Pending struct {
	// File is the assembled chain (key, leaf, issuers, TA), kept in the
	// state directory with mode 0600 until it is installed.
	File string `json:"file"`
	// SPKI is the SHA-256 of the new key's SubjectPublicKeyInfo, hex.
	SPKI string `json:"spki"`
	// Leaf describes the new leaf: subject, serial and expiry.
	Leaf string `json:"leaf"`
	// Since is when the switch was recorded.
	Since time.Time `json:"since"`
	// SafeAt is when the switch is expected to become safe; zero while a
	// server blocks it.
	SafeAt time.Time `json:"safe_at,omitzero"`
	// Blocking names what keeps the switch from being safe.
	Blocking []string `json:"blocking,omitempty"`
}

// NextKey is a staged key of a rotation (DESIGN §5).
type NextKey struct {
	// File holds the private key (PKCS #8 PEM, mode 0600) in the state
	// directory; it is never overwritten while staged.
	File string `json:"file"`
	// SPKI is the SHA-256 of its SubjectPublicKeyInfo, hex (3 1 1 data).
	SPKI string `json:"spki"`
	// Algorithm is "rsa-2048", "ecdsa-p256", … as staged.
	Algorithm string `json:"algorithm"`
	// Staged is when the key was made and its records first published.
	Staged time.Time `json:"staged"`
	// Committed is when `rotate commit` allowed the next renewal to use it;
	// zero while only staged.
	Committed time.Time `json:"committed,omitzero"`
	// Swapped is true once the ACME client's key file holds the next key.
	Swapped bool `json:"swapped,omitempty"`
}

// Record returns the staged key's 3 1 1 record; an error means the state
// holds no valid digest.
func (n *NextKey) Record() (tlsa.Record, error) {
	return tlsa.Parse("3 1 1 " + n.SPKI)
}
