package certbot

import "path/filepath"

// Files certbot keeps in a lineage's live directory (<config-dir>/live/<name>),
// each a symlink into archive/<name>/ (certbot/_internal/storage.py, ALL_FOUR).
const (
	LiveKey       = "privkey.pem"   // the private key
	LiveCert      = "cert.pem"      // the leaf certificate
	LiveChain     = "chain.pem"     // the issuers
	LiveFullchain = "fullchain.pem" // the leaf, then the issuers
)

// LineageName returns the lineage name of the live directory liveDir
// (<config-dir>/live/<name>): its base name, with any trailing slash ignored.
func LineageName(liveDir string) string {
	return filepath.Base(filepath.Clean(liveDir))
}
