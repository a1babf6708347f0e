package pdnslab

import (
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/dnslab"
)

// TestStart starts a signed lab with a key PowerDNS knows but does not
// list in TSIG-ALLOW-DNSUPDATE, updates the primary with nsupdate and waits
// for the secondary to follow.
func TestStart(t *testing.T) {
	l := Start(t, dnslab.Options{Signed: true, ExtraKeys: []dnslab.ExtraKey{{Name: "other"}}})
	serial := l.Serial(t, l.Primary, "example.test.")
	l.Nsupdate(t, "update add _25._tcp.mail.example.test. 60 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	l.WaitSerial(t, l.Primary, "example.test.", serial+1, 5*time.Second)
	l.WaitSerial(t, l.Secondary, "example.test.", serial+1, 10*time.Second)
	out, err := l.NsupdateKey(l.Keys["other."].File, "update add _25._tcp.other.example.test. 60 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	if err == nil || !strings.Contains(out, "REFUSED") {
		t.Fatalf("key not in TSIG-ALLOW-DNSUPDATE: got %v: %s, want REFUSED", err, out)
	}
}
