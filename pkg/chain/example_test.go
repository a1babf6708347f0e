package chain_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/danehook/danehook/pkg/chain"
)

// A certbot deploy hook's view: load the renewed lineage, add the root as
// trust anchor for a "2 1 1" record, and write the served chain for Postfix.
func ExampleFromCertbotLineage() {
	dir, err := os.MkdirTemp("", "chain-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// Lay out live/mail -> ../../archive/mail as certbot does (test certificates).
	root := newRoot("Example Root", "p384")
	inter := root.issueCA("Example Intermediate", "p384")
	leaf := inter.issueLeaf("mail.example.com", "p256")
	live := certbotLineage(dir, "mail", [3][]byte{pemKey(leaf.Key, "pkcs8"), pemCerts(leaf.Cert), pemCerts(inter.Cert)})

	c, err := chain.FromCertbotLineage(live) // RENEWED_LINEAGE
	if err != nil {
		fmt.Println(err)
		return
	}
	// In production: chain.LoadRootStore() reads /etc/ssl/certs, or the ca_file setting.
	if err := c.AppendTA(chain.TARoot, chain.NewRootStore(root.Cert)); err != nil {
		fmt.Println(err)
		return
	}
	served := filepath.Join(dir, "mail-"+c.Algorithm()+".pem") // one file per algorithm
	if err := c.WriteFile(served); err != nil {
		fmt.Println(err)
		return
	}
	fi, err := os.Stat(served)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("algorithm:", c.Algorithm())
	for _, cert := range c.Served() {
		fmt.Println("serves:", cert.Subject.CommonName)
	}
	fmt.Println("mode:", fi.Mode())
	// Output:
	// algorithm: ecdsa
	// serves: mail.example.com
	// serves: Example Intermediate
	// serves: Example Root
	// mode: -rw-------
}

// Order sorts certificates by who signed whom, whatever the file order.
func ExampleOrder() {
	root := newRoot("Example Root", "p256")
	inter := root.issueCA("Example Intermediate", "p256")
	leaf := inter.issueLeaf("mail.example.com", "p256")

	l, issuers, err := chain.Order([]*x509.Certificate{root.Cert, leaf.Cert, inter.Cert})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(l.Subject.CommonName)
	for _, c := range issuers {
		fmt.Println(c.Subject.CommonName)
	}
	// Output:
	// mail.example.com
	// Example Intermediate
	// Example Root
}
