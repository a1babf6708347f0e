package propagate_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/danehook/danehook/pkg/propagate"
	"github.com/danehook/danehook/pkg/tlsa"
)

// A deploy hook run: observe what every authoritative server serves, fold
// it into the sightings kept on disk, and ask whether the desired RRset is
// aged. Nothing waits: the next run (or `danectl tick`) asks again.
func ExampleChecker_Observe() {
	ctx := context.Background()
	c := &propagate.Checker{
		Primary: "192.0.2.53:53",        // where updates go
		Hidden:  []string{"192.0.2.54"}, // a stealth secondary, port 53
		TTL:     3600,                   // the TTL configured for the TLSA records
		Timeout: 2 * time.Second,
	}
	obs, err := c.Observe(ctx, "example.com.", "_25._tcp.mail.example.com.")
	if err != nil {
		fmt.Fprintln(os.Stderr, "danectl: error:", err)
		return
	}
	var seen propagate.Seen // loaded from and saved to the state directory
	now := time.Now()
	seen.Update(obs, now)

	var desired []tlsa.Record // 3 1 1 of the current and next keys
	set := propagate.AgeSet(obs, &seen, desired, now)
	for _, st := range set.Records {
		fmt.Println(st)
	}
	_ = obs.WriteText(os.Stdout)
}
