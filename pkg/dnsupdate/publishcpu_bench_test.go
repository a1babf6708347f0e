package dnsupdate

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkPublishPacking5000 is the client-side work of `danectl publish`
// of 5,000 additions in one zone, without a server: Messages (the plan's
// message count) on a provider that learned the zone from its reads, then
// what Apply does before each UPDATE goes on the wire (batches, the
// packing Messages remembered, building and signing each message).
func BenchmarkPublishPacking5000(b *testing.B) {
	key, err := NewTSIGKey("bench.", "hmac-sha256", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U=")
	if err != nil {
		b.Fatal(err)
	}
	const zone = "z0.bench.test."
	changes := make([]Change, 5000)
	zones := map[string]string{}
	for i := range changes {
		o := fmt.Sprintf("_25._tcp.h%05d.z0.bench.test.", i)
		changes[i] = Change{Op: Add, RR: RR{Owner: o, TTL: 300, Record: rec(byte(i))}}
		zones[o] = zone
	}
	for b.Loop() {
		p := &RFC2136{Server: "127.0.0.1:9", Key: key, zones: map[string]string{}}
		for o, z := range zones {
			p.zones[o] = z
		}
		n, err := p.Messages(b.Context(), changes)
		if err != nil {
			b.Fatal(err)
		}
		if n[zone] != 7 {
			b.Fatalf("5000 additions take %d messages, want 7", n[zone])
		}
		zoneOf, err := p.findZones(b.Context(), changes)
		if err != nil {
			b.Fatal(err)
		}
		bs, _ := p.batches(changes, zoneOf)
		bt, tsig := bs[zone], p.tsigLen()
		sent := 0
		for i := 0; i < bt.nAdds; sent++ {
			k := bt.pack(bt.units[i:bt.nAdds], nil, tsig)
			m := bt.msg(bt.units[i:i+k], nil)
			m.SetTsig(p.keyName(), p.Key.dnsAlgorithm(), tsigFudge, p.clock().Unix())
			wire, _, err := dns.TsigGenerate(m, p.Key.Secret, "", false)
			if err != nil || len(wire) > dns.MaxMsgSize {
				b.Fatalf("message %d: %d bytes, %v", sent, len(wire), err)
			}
			i += k
		}
		if sent != 7 {
			b.Fatalf("sent %d messages, want 7", sent)
		}
	}
}
