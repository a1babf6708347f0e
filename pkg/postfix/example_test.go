package postfix_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

// The post-hook sequence of DESIGN §7: check, one reload, then verify the
// live STARTTLS chain against the published RRset.
func Example() {
	ctx := context.Background()
	pf := postfix.Instance{} // the default instance, /etc/postfix
	if err := pf.Check(ctx); err != nil {
		fmt.Println("not reloading:", err)
		return
	}
	if err := pf.Reload(ctx); err != nil {
		var nr *postfix.NotRunningError
		if errors.As(err, &nr) {
			fmt.Println("hint:", nr.Hint())
		}
		return
	}
	rrset := []tlsa.Record{ /* the published records, from DNS */ }
	v, err := postfix.Verify(ctx, "127.0.0.1:25", "mail.example.com", rrset)
	if errors.Is(err, postfix.ErrNoMatch) {
		fmt.Println(err) // names the endpoint, the leaf's SPKI digest and the records tried
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range v.Matches {
		fmt.Println(m) // "3 1 1 <hex> matched depth 0 (CN=mail.example.com)"
	}
}
