package dnsupdate_test

import (
	"context"
	"fmt"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Publishing the next key's record beside the current one at Cloudflare,
// with the token from CLOUDFLARE_API_TOKEN_FILE or CLOUDFLARE_API_TOKEN.
func ExampleCloudflare() {
	token, err := dnsupdate.CloudflareTokenFromEnv()
	if err != nil {
		fmt.Println(err) // e.g. `… has mode 0644 …; run chmod 600 "/etc/danehook/cloudflare.token"`
		return
	}
	cf := &dnsupdate.Cloudflare{APIToken: token, Zone: "example.com"}
	ctx := context.Background()
	owner := "_25._tcp.mail.example.com."
	var current, next tlsa.Record // 3 1 1 of the served key and of the staged one

	served, err := cf.Records(ctx, owner)
	if err != nil {
		fmt.Println(err)
		return
	}
	plan := dnsupdate.Diff(owner, 3600, served, []tlsa.Record{current, next}, []tlsa.Record{current})
	fmt.Print(plan)
	if err := cf.Apply(ctx, plan); err != nil {
		fmt.Println(err) // a *CloudflareApplyError says what was applied
	}
}
