package propagate

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteText writes o for people: a header line naming the owner, zone,
// primary serial and negative TTL, then one row per server with its name,
// address, serial, RRset TTL (seconds), the records it serves (abbreviated
// to 8 hex digits) and its state ("ok", "lagging (primary N)",
// "unreachable: …", "error: …"). It returns the first write error.
func (o *Observation) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "owner %s (zone %s): primary %s serial %d, negative TTL %ds\n",
		o.Owner, o.Zone, o.Primary, o.PrimarySerial, o.NegativeTTL)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tSERIAL\tTTL\tRECORDS\tSTATE")
	for _, s := range o.Servers {
		serial, ttl, recs := "-", "-", "-"
		if s.Serial != 0 || s.OK() {
			serial = strconv.FormatUint(uint64(s.Serial), 10)
		}
		if len(s.Records) > 0 {
			ttl = strconv.FormatUint(uint64(s.TTL), 10)
			var parts []string
			for _, r := range s.Records {
				parts = append(parts, short(r.String()))
			}
			recs = strings.Join(parts, ", ")
		}
		state := "ok"
		switch {
		case s.Addr == "" || !s.Reachable:
			state = "unreachable: " + s.Err
		case s.Err != "":
			state = "error: " + s.Err
		case s.Lagging:
			state = fmt.Sprintf("lagging (primary %d)", o.PrimarySerial)
		}
		addr := s.Addr
		if addr == "" {
			addr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, addr, serial, ttl, recs, state)
	}
	return tw.Flush()
}
