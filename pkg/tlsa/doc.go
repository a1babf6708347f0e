// Package tlsa computes, parses, matches and lints DANE TLSA records
// (RFC 6698, RFC 7671, RFC 7672), holds the key digest every other package
// compares keys by, and the report behind "danectl tlsa --check". It
// imports no other danehook package (only the standard library and
// miekg/dns).
//
// # The key digest
//
// [SPKIDigest] (of a certificate) and [KeyDigest] (of a public or private
// key) are the SHA-256 of the DER SubjectPublicKeyInfo: the data of a
// "3 1 1" record. [KeyMatches] tells whether a certificate carries a key.
//
// # Computing records
//
// [FromCertificate] computes any usage, selector and matching type from an
// X.509 certificate; [FromPublicKey], [FromCSR] and [FromSPKI] compute
// selector 1 (SPKI) records from a public or private key, a certificate
// signing request or a DER SubjectPublicKeyInfo. A record is never computed
// from empty input: the SHA-256 or SHA-512 of nothing is always a bug
// upstream and is refused with [ErrEmptyDigest].
//
// # Owner names
//
// [Owner] builds the owner name "_<port>._tcp.<host>." (RFC 6698 §3,
// RFC 7672 §2.2) and [ParseOwner] takes it apart.
//
// # Presentation form
//
// [Parse] reads the RDATA presentation form "3 1 1 <hex>" (RFC 6698 §2.2) and
// [ParseRRset] reads zone-file lines such as dig prints them.
//
// # Matching
//
// [Match] tells which records of an RRset match which certificate of the
// chain a server sends, following the rules a sending MTA applies
// (RFC 7671 §5, RFC 7672 §3): DANE-EE(3) matches the leaf only, DANE-TA(2)
// matches an issuer certificate the server sends, PKIX-TA(0) and PKIX-EE(1)
// are unusable for SMTP.
//
// # Checking an RRset against a chain
//
// [Check] matches an RRset against the chain a server sends at each owner
// ([Owners], [SelectOwners], [CheckOwner]), checks that the private key
// given with the chain is the leaf's ([CheckKeys]) and lints the records;
// the [Report] prints as text ([Report.WriteText]) or JSON.
//
// # Lints
//
// [Lint] reports problems in an RRset, alone or together with the chain the
// server sends. Every [Finding] has a stable identifier:
//
//   - "pkix-usage-smtp" (error): a record with usage 0 (PKIX-TA) or 1
//     (PKIX-EE). RFC 7672 §3.1.3 says SMTP senders treat such records as
//     unusable, so they never authenticate the server; publish 3 1 1 or 2 1 1.
//   - "dane-ee-cert-selector" (warning): a 3 0 x record hashes the whole
//     certificate, which changes on every renewal even when the key stays the
//     same. With an ACME CA that is every 90 days or sooner, so each renewal
//     breaks the record unless it is republished and aged first; 3 1 1 (the
//     key) survives renewals that reuse the key.
//   - "dane-ta-cert-selector" (warning): a 2 0 x record hashes the whole CA
//     certificate. ACME CAs re-issue and cross-sign intermediates under the
//     same key and pick among several per issuance, so the record stops
//     matching without any change by the operator; 2 1 1 (the CA's key)
//     survives re-issued intermediates.
//   - "full-data" (warning): a record with matching type 0 carries the whole
//     certificate or key instead of a digest; the RRset grows large (and may
//     need TCP), for no gain. Use matching type 1 (SHA-256).
//   - "too-many-records" (warning): more than 12 records at one owner. Large
//     RRsets are truncated over UDP and some senders give up rather than
//     compare many records; remove records no longer needed.
//   - "ta-not-in-chain" (error, needs the served chain): a 2 x x record whose
//     trust anchor is not one of the issuer certificates the server sends
//     (depth 1 or more). Senders only see the chain the server sends, so the
//     trust anchor certificate must be appended to it (RFC 7671 §5.2.2).
//   - "key-mismatch" (error, Check only): a private key given with the
//     chain is not the leaf's key; Postfix refuses to load such a chain.
//   - "no-match" (error, needs the served chain): no usable record at an
//     owner matches the served chain, so every DANE sender defers mail to
//     this server (RFC 7672 §2.2).
package tlsa
