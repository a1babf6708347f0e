package tlsa_test

import (
	"fmt"
	"strings"

	"github.com/danehook/danehook/pkg/tlsa"
)

func ExampleOwner() {
	owner, err := tlsa.Owner(25, "Mail.Example.COM")
	fmt.Println(owner, err)
	_, err = tlsa.Owner(25, "_25._tcp.mail.example.com")
	fmt.Println(err)
	// Output:
	// _25._tcp.mail.example.com. <nil>
	// tlsa: host "_25._tcp.mail.example.com": already is a TLSA owner name; give the host name alone (without "_25._tcp."): invalid TLSA owner
}

func ExampleParse() {
	// dig prints upper case hex split into 56-character chunks.
	r, err := tlsa.Parse("2 1 1 0B9FA5A59EED715C26C1020C711B4F6EC42D58B0015E14337A39DAD3 01C5AFC3")
	fmt.Println(r, err)
	// Output:
	// 2 1 1 0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3 <nil>
}

func ExampleParseRRset() {
	rrs, err := tlsa.ParseRRset(strings.NewReader(`
; dig +noall +answer TLSA _25._tcp.mail.example.com
_25._tcp.mail.example.com. 300 IN TLSA 2 1 1 0B9FA5A59EED715C26C1020C711B4F6EC42D58B0015E14337A39DAD3 01C5AFC3
`))
	for _, rr := range rrs {
		fmt.Println(rr.Owner, rr.TTL, rr.Record)
	}
	fmt.Println(err)
	// Output:
	// _25._tcp.mail.example.com. 300 2 1 1 0b9fa5a59eed715c26c1020c711b4f6ec42d58b0015e14337a39dad301c5afc3
	// <nil>
}
