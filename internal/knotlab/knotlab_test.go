package knotlab

import (
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/dnslab"
)

// TestStart starts a signed lab with a narrow key, updates the primary with
// nsupdate and waits for the secondary to follow.
func TestStart(t *testing.T) {
	l := Start(t, dnslab.Options{Signed: true, ExtraKeys: []dnslab.ExtraKey{{Name: "narrow", Owners: []string{"_25._tcp.mail.example.test."}}}})
	serial := l.Serial(t, l.Primary, "example.test.")
	l.Nsupdate(t, "update add _25._tcp.mail.example.test. 60 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	l.WaitSerial(t, l.Secondary, "example.test.", serial+1, 5*time.Second)
	out, err := l.NsupdateKey(l.Keys["narrow."].File, "update add _25._tcp.other.example.test. 60 IN TLSA 3 1 1 "+strings.Repeat("ab", 32))
	// Knot answers an UPDATE its ACL denies with NOTAUTH and the TSIG
	// error BADKEY, as for an unknown key (README "DNS servers").
	if err == nil || !strings.Contains(out, "NOTAUTH(BADKEY)") {
		t.Fatalf("narrow key at another owner: got %v: %s, want NOTAUTH(BADKEY)", err, out)
	}
}
