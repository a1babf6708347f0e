package libdnsprov

import (
	"fmt"
	"testing"
	"time"

	"github.com/danehook/danehook/internal/apidns"
	"github.com/danehook/danehook/internal/desecfake"
	"github.com/danehook/danehook/pkg/dnsupdate"
)

// TestDesecRequestsPerOwner counts what publishing one record at each of n
// owners of one deSEC domain costs through libdns/desec (README benchmark
// section, issue 12 "the libdns path vs the provider's own batch"): one
// AppendRecords, in which libdns/desec GETs every RRset it appends to
// (deSEC's dns_api_cheap limit: 10/s, 50/min) and then writes all of them
// with one atomic bulk PUT (dns_api_per_domain_expensive: 2/s, 15/min,
// 100/h, 300/day). deSEC's own bulk PATCH of the RRsets
// (/domains/{name}/rrsets/, all records of each RRset, which danehook reads
// by DNS anyway) would be that one write and no GET. The fake does not
// throttle: against desec.io, n ≥ 50 owners meets the read limit (429,
// waited out per Retry-After within the call's timeout). A rerun reads the
// owners by DNS only and sends nothing.
func TestDesecRequestsPerOwner(t *testing.T) {
	for _, n := range []int{10, 100} { // 1,000: 1,000 GET + 1 PUT (README; 16 s here, the fake re-renders its zone per DNS query)
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := desecfake.New(t, desecToken)
			f.AddDomain("example.com")
			f.Intercept(t)
			addr := apidns.Serve(t, f.DNS)
			l := build(t, "desec", desecToken, addr, 30*time.Second)
			changes := make([]dnsupdate.Change, n)
			for i := range changes {
				changes[i] = add(fmt.Sprintf("_25._tcp.h%05d.example.com.", i), 3600, rec(t))
			}
			start := time.Now()
			if err := l.Apply(t.Context(), changes); err != nil {
				t.Fatal(err)
			}
			gets, puts := f.Requests("GET"), f.Requests("PUT")
			t.Logf("%d owners: %d GET + %d PUT in %v (deSEC bulk PATCH: 0 GET + 1 PATCH)", n, gets, puts, time.Since(start).Round(time.Millisecond))
			if gets != n || puts != 1 {
				t.Errorf("%d owners: %d GET, %d PUT; want %d GET (one per RRset) and 1 bulk PUT", n, gets, puts, n)
			}
			if err := l.Apply(t.Context(), changes); err != nil {
				t.Fatal(err)
			}
			if g, p := f.Requests("GET")-gets, f.Requests("PUT")-puts; g != 0 || p != 0 {
				t.Errorf("rerun: %d GET, %d PUT; want none", g, p)
			}
		})
	}
}
