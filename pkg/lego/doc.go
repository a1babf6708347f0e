// Package lego holds what danehook knows of lego's files (v4 and v5): the
// layout of <path>/certificates/ (<name>.crt with the leaf and issuers,
// <name>.key, <name>.issuer.crt), the pinned CSR that keeps renewals on the
// current key (lego --csr re-reads it on every renewal), the key hand-over
// that puts a staged key in lego's key file, and lego's --key-type names.
// It is the only danehook code that knows lego's layout.
//
// It may import pkg/chain (PEM reading), pkg/tlsa (the key digest) and
// internal/atomicfile, nothing else of danehook.
package lego
