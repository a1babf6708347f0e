package dnsupdate_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/danehook/danehook/pkg/dnsupdate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// A deploy step: read what the primary serves, compute the plan and apply it
// in one UPDATE per zone, branching on the error class.
func ExampleRFC2136() {
	key, err := dnsupdate.LoadTSIGKeyFile("/etc/danehook/deploy-key.conf") // tsig-keygen output, mode 0600
	if err != nil {
		fmt.Println(err)
		return
	}
	p := &dnsupdate.RFC2136{Server: "192.0.2.53:53", Key: key, Timeout: 5 * time.Second, Prerequisites: true}
	ctx := context.Background()
	owner := "_25._tcp.mail.example.com."
	current, err := p.Records(ctx, owner)
	if err != nil {
		fmt.Println(err)
		return
	}
	var next tlsa.Record // the 3 1 1 record of the next key
	plan := dnsupdate.Diff(owner, 3600, current, []tlsa.Record{next}, nil)
	switch err := p.Apply(ctx, plan); {
	case errors.Is(err, dnsupdate.ErrPrerequisite):
		fmt.Println("another writer changed the records; run again")
	case errors.Is(err, dnsupdate.ErrTSIG):
		fmt.Println("fix the key:", err)
	case err != nil:
		fmt.Println(err)
	}
}
