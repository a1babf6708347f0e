package tlsa

import (
	"encoding/hex"
	"strconv"
)

// Usage values (RFC 6698 §2.1.1, RFC 7218 acronyms).
const (
	UsagePKIXTA uint8 = 0 // PKIX-TA
	UsagePKIXEE uint8 = 1 // PKIX-EE
	UsageDANETA uint8 = 2 // DANE-TA
	UsageDANEEE uint8 = 3 // DANE-EE
)

// Selector values (RFC 6698 §2.1.2).
const (
	SelectorCert uint8 = 0 // Cert: the full DER certificate
	SelectorSPKI uint8 = 1 // SPKI: the DER SubjectPublicKeyInfo
)

// Matching type values (RFC 6698 §2.1.3).
const (
	MatchFull   uint8 = 0 // Full: the selected content itself
	MatchSHA256 uint8 = 1 // SHA2-256 digest, 32 bytes
	MatchSHA512 uint8 = 2 // SHA2-512 digest, 64 bytes
)

// Record is the RDATA of one TLSA record (RFC 6698 §2.1): usage, selector,
// matching type and the certificate association data as raw bytes.
type Record struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	Data         []byte
}

// String returns the presentation form of the RDATA (RFC 6698 §2.2):
// "3 1 1 <lower-case hex>".
func (r Record) String() string {
	return string(r.AppendTo(make([]byte, 0, 9+2*len(r.Data))))
}

// AppendTo appends r's presentation form (String) to b and returns the
// extended slice, without allocating when b has room (printing thousands
// of records).
func (r Record) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(r.Usage), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.Selector), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.MatchingType), 10)
	b = append(b, ' ')
	return hex.AppendEncode(b, r.Data)
}

// Equal reports whether r and o have the same usage, selector, matching type
// and association data.
func (r Record) Equal(o Record) bool {
	return r.Usage == o.Usage && r.Selector == o.Selector && r.MatchingType == o.MatchingType &&
		string(r.Data) == string(o.Data)
}
