package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
)

// TestStatusTimesOneFormat: every time writeStatus prints is RFC 3339 in
// UTC (issue 13: three formats in one block), whatever the local zone.
func TestStatusTimesOneFormat(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.FixedZone("CET", 3600)
	now := time.Date(2026, 11, 29, 17, 5, 0, 0, time.Local)
	st := &deploy.Status{Lineages: []deploy.LineageStatus{{
		Name: "mail", ChainFile: "/etc/postfix/danehook/mail.pem", Served: "4ab6",
		Pending:  &deploy.Pending{SPKI: "9f3c", Since: now.Add(-3 * time.Minute), SafeAt: now.Add(7 * time.Minute), Blocking: []string{"x"}},
		Verified: "2026-11-29T15:00:00Z",
	}, {Name: "later", NotIssued: true, NotIssuedReason: "not issued yet: /etc/letsencrypt/live/later does not exist"}}}
	var b bytes.Buffer
	writeStatus(&b, st, now, nil)
	out := b.String()
	for _, want := range []string{"since 2026-11-29T16:02:00Z: safe in 7m0s (2026-11-29T16:12:00Z)", "verified    2026-11-29T15:00:00Z", "NOT ISSUED YET: /etc/letsencrypt/live/later does not exist"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// Any date-like text must be RFC 3339 UTC.
	dates := regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T][0-9:]+[0-9][^ ):]*`).FindAllString(out, -1)
	if len(dates) != 3 {
		t.Errorf("found %d times, want 3: %q", len(dates), dates)
	}
	for _, d := range dates {
		if _, err := time.Parse(time.RFC3339, d); err != nil || !strings.HasSuffix(d, "Z") {
			t.Errorf("time %q is not RFC 3339 UTC", d)
		}
	}
}
