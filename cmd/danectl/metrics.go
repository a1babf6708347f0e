package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/danehook/danehook/internal/atomicfile"
)

// `danectl tick --metrics-file PATH` writes the figures of the plugin and
// of `status --json` in the Prometheus text exposition format (version
// 0.0.4: "# HELP", "# TYPE", one sample per line, label values escaped)
// for node_exporter's textfile collector: it reads the files named *.prom
// in --collector.textfile.directory, rejects samples with timestamps, and
// expects each file to be replaced atomically (node_exporter README,
// "Textfile Collector": write a temporary file in the same directory, then
// rename it). atomicfile.Write does exactly that; its temporary name
// ".<name>.tmp-*" does not end in .prom, so the collector never reads a
// half-written file.

// metricFamily is one metric name with its samples.
type metricFamily struct {
	name, help string
	samples    []metricSample
}

type metricSample struct {
	labels [][2]string // name, value
	value  float64
}

func (f *metricFamily) add(value float64, labels ...string) {
	s := metricSample{value: value}
	for i := 0; i+1 < len(labels); i += 2 {
		s.labels = append(s.labels, [2]string{labels[i], labels[i+1]})
	}
	f.samples = append(f.samples, s)
}

// escapeLabel escapes a label value: backslash, double quote and line feed.
func escapeLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}

// promFloat formats a sample value ("NaN" for an unknown figure).
func promFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// renderMetrics returns the exposition text of the families, each a gauge;
// families without samples are left out.
func renderMetrics(fams []*metricFamily) []byte {
	var b strings.Builder
	for _, f := range fams {
		if len(f.samples) == 0 {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", f.name, f.help, f.name)
		for _, s := range f.samples {
			b.WriteString(f.name)
			if len(s.labels) > 0 {
				var ls []string
				for _, l := range s.labels {
					ls = append(ls, l[0]+`="`+escapeLabel(l[1])+`"`)
				}
				b.WriteString("{" + strings.Join(ls, ",") + "}")
			}
			b.WriteString(" " + promFloat(s.value) + "\n")
		}
	}
	return []byte(b.String())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// tickMetrics builds the families of one tick at now: tickErr is the
// tick's own error (reload or rotation policy), rep the status observed
// after it (nil when statusErr says why it could not be made).
func tickMetrics(now time.Time, tickErr error, rep *statusReport, statusErr error) []*metricFamily {
	fam := func(name, help string) *metricFamily { return &metricFamily{name: "danehook_" + name, help: help} }
	tick := fam("tick_success", "1 when the last 'danectl tick' completed (reload, verification, rotation policy), 0 when it failed.")
	tick.add(b2f(tickErr == nil))
	ts := fam("tick_timestamp_seconds", "When the last 'danectl tick' ran, unix seconds.")
	ts.add(float64(now.Unix()))
	stOK := fam("status_success", "1 when the status after the tick could be observed, 0 otherwise (no other danehook_lineage_* or danehook_owner_* samples then).")
	stOK.add(b2f(statusErr == nil && rep != nil))
	fams := []*metricFamily{tick, ts, stOK}
	if rep == nil {
		return fams
	}
	var (
		protected = fam("lineage_protected", "1 when the served chain file matches an aged TLSA record at every owner of the lineage (DESIGN §3), 0 when it does not.")
		notAfter  = fam("lineage_served_not_after_timestamp_seconds", "Expiry (notAfter) of the served leaf certificate, unix seconds.")
		days      = fam("lineage_days_until_expiry", "Days until the served leaf certificate expires (negative once expired).")
		pending   = fam("lineage_pending_switch", "1 while a renewed chain waits for its TLSA records to age (a pending switch that is not safe yet).")
		pendSecs  = fam("lineage_pending_seconds", "How long the pending switch has waited, seconds (0 when none).")
		untilSafe = fam("lineage_seconds_until_safe", "Seconds until the pending switch is expected to be safe; NaN while a server blocks it.")
		expiryErr = fam("lineage_expiry_error", "1 when a pending switch cannot become safe before the served certificate expires.")
		reload    = fam("lineage_reload_pending", "1 when an endpoint presents another chain than the installed file (or it changed since the last reload).")
		verified  = fam("lineage_last_verified_timestamp_seconds", "When a STARTTLS handshake last presented the installed chain and it matched an aged record, unix seconds.")
		lerr      = fam("lineage_error", "1 when the lineage's files or Postfix's configuration could not be read or are wrong (see 'danectl status').")

		aged        = fam("owner_aged", "1 when every TLSA record danehook wants at the owner is aged.")
		untilAged   = fam("owner_seconds_until_aged", "Seconds until every wanted record at the owner is aged (0 once aged); NaN while a server blocks it.")
		servers     = fam("owner_servers", "Authoritative server addresses of the owner's zone (NS RRset and hidden secondaries).")
		lagging     = fam("owner_servers_lagging", "Authoritative servers whose SOA serial is older than the primary's.")
		unreachable = fam("owner_servers_unreachable", "Authoritative servers that did not answer, or not authoritatively.")
		unmatched   = fam("owner_records_unowned_unmatched", "Records at the owner danehook did not publish that match no chain Postfix may serve ('danectl prune').")
		signed      = fam("owner_dnssec_signed", "1 when the owner's zone is DNSSEC-signed (RFC 4035 §2).")
		oerr        = fam("owner_error", "1 when the owner could not be observed.")
	)
	for _, l := range rep.Lineages {
		lb := []string{"lineage", l.Name}
		protected.add(b2f(l.Protected), lb...)
		if na, err := time.Parse(time.RFC3339, l.ServedNotAfter); err == nil {
			notAfter.add(float64(na.Unix()), lb...)
			days.add(math.Round(na.Sub(now).Hours()/24*1000)/1000, lb...)
		}
		p := l.Pending != nil && !l.Pending.Safe
		pending.add(b2f(p), lb...)
		age, until := 0.0, math.NaN()
		if p {
			if since, err := time.Parse(time.RFC3339, l.Pending.Since); err == nil {
				age = math.Max(0, math.Round(now.Sub(since).Seconds()))
			}
			if l.Pending.SecondsUntilSafe != nil {
				until = float64(*l.Pending.SecondsUntilSafe)
			}
		} else {
			until = 0
		}
		pendSecs.add(age, lb...)
		untilSafe.add(until, lb...)
		expiryErr.add(b2f(l.ExpiryError != ""), lb...)
		reload.add(b2f(l.ReloadPending), lb...)
		if v, err := time.Parse(time.RFC3339, l.VerifiedAt); err == nil {
			verified.add(float64(v.Unix()), lb...)
		}
		lerr.add(b2f(l.Error != ""), lb...)
	}
	for _, o := range rep.Owners {
		ob := []string{"owner", o.Owner, "zone", o.Zone}
		aged.add(b2f(o.Aged), ob...)
		u := math.NaN()
		if o.SecondsUntilAged != nil {
			u = float64(*o.SecondsUntilAged)
		}
		untilAged.add(u, ob...)
		servers.add(float64(len(o.Servers)), ob...)
		lagging.add(float64(o.ServersLagging), ob...)
		unreachable.add(float64(o.ServersUnreachable), ob...)
		unmatched.add(float64(len(o.Unmatched)), ob...)
		if o.DNSSEC != nil {
			signed.add(b2f(o.DNSSEC.Signed), ob...)
		}
		oerr.add(b2f(o.Error != ""), ob...)
	}
	return append(fams, protected, notAfter, days, pending, pendSecs, untilSafe, expiryErr, reload, verified, lerr,
		aged, untilAged, servers, lagging, unreachable, unmatched, signed, oerr)
}

// writeMetricsFile replaces path atomically with the families, mode 0644
// (node_exporter runs as another user).
func writeMetricsFile(path string, fams []*metricFamily) error {
	if err := atomicfile.Write(path, renderMetrics(fams), 0o644); err != nil {
		return fmt.Errorf("--metrics-file: %w", err)
	}
	return nil
}
