// Package propagate answers "when is a change visible everywhere?" for the
// TLSA records at one owner: it finds every authoritative server of a zone,
// asks each of them directly what it serves, remembers when each server was
// first seen serving each record, and tells when a record is aged
// (RFC 7671 §8.1): served by every authoritative server, and 2 × max(TTL,
// negative-caching TTL) past the moment the last of them was first seen
// serving it.
//
// # Finding the servers
//
// [Checker.Servers] reads the zone's NS RRset from the primary, resolves
// every NS name to all its A and AAAA addresses (in-zone names at the
// primary, out-of-zone names at [Checker.Resolver] when set, else at the
// primary; never the system resolver) and adds the configured hidden
// secondaries.
//
// # Observing
//
// [Checker.Observe] queries every server directly (recursion desired off,
// UDP with a TCP retry when the answer is truncated, RFC 7766 §5; an answer
// still truncated over TCP is an [ErrTruncated] failure, never an RRset) for the
// TLSA RRset at the owner and the zone's SOA serial, and records the zone's
// negative-caching TTL, min(SOA TTL, SOA MINIMUM) (RFC 2308 §5), from the
// primary. An [Observation] is plain data with JSON tags, for `danectl status`.
//
// # Ageing
//
// [Seen] keeps, per owner, record and server address, the time the server
// was first seen serving the record; [Seen.Update] adds first sightings and
// forgets a sighting as soon as a server answers without the record, so a
// record that disappears and comes back ages again. [Age] and [AgeSet] turn
// an observation and its sightings into a [Status]. No function here reads
// the clock or sleeps: the caller passes now.
//
// # DNSSEC
//
// [Checker.DNSSEC] tells whether the zone is signed (DNSKEY at the apex and
// an RRSIG over the SOA at the primary), whether the parent has a DS and
// whether a validating resolver sets the AD bit. Senders ignore TLSA records
// in unsigned zones (RFC 7672 §2.2).
package propagate
