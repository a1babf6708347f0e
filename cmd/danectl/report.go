package main

import (
	"encoding/json"
	"io"
	"math"
	"time"

	"github.com/danehook/danehook/pkg/deploy"
)

// The --json outputs of status and check. These structs are the schema
// README.md documents ("JSON output"); TestJSONSchema decodes real output
// into a copy of them with DisallowUnknownFields and checks that README
// names every field. Rules: times are RFC 3339 in UTC ("2026-12-01T12:00:00Z"),
// omitted when unknown; durations are whole seconds; states are booleans
// or the enumerations listed; free text for people appears only in fields
// named error, reason, reasons or blocking. Adding a field is compatible;
// renaming or removing one bumps jsonSchema.

// jsonSchema is the version of the --json outputs of status and check.
const jsonSchema = 1

// statusReport is the --json output of `danectl status`.
type statusReport struct {
	Schema int `json:"schema"`
	// Time is when the report was made (the observation's clock).
	Time string `json:"time"`
	// OK is true when status exits 0: every record aged, nothing pending.
	OK bool `json:"ok"`
	// Timer is the systemd timer's state; omitted when not probed.
	Timer    *timerReport    `json:"timer,omitempty"`
	Lineages []lineageReport `json:"lineages"`
	Owners   []ownerReport   `json:"owners"`
}

// timerReport is what `systemctl is-enabled UNIT` (and, when enabled,
// `systemctl show UNIT -p NextElapseUSecRealtime`) said.
type timerReport struct {
	Unit string `json:"unit"`
	// State is "enabled", "disabled" or "unknown" (no systemd, or
	// systemctl failed).
	State string `json:"state"`
	// NextElapse is when systemd next runs the unit's service (its
	// NextElapseUSecRealtime, random delay included); omitted when not
	// known.
	NextElapse string `json:"next_elapse,omitempty"`
	// Reason says why a pending switch waits longer than it must.
	Reason string `json:"reason,omitempty"`

	next time.Time // NextElapse as a time
}

// timerRunReport is when the timer's run that completes a lineage's
// pending step comes, when no job is scheduled for it.
type timerRunReport struct {
	Unit string `json:"unit"`
	// Earliest and Latest bound the run's start.
	Earliest string `json:"earliest"`
	Latest   string `json:"latest"`
	// Source is "systemd" (the timer's next elapse, from systemd) or
	// "packaged" (computed from the packaged unit's schedule: OnCalendar=hourly,
	// RandomizedDelaySec=15min, AccuracySec=1min).
	Source string `json:"source"`
}

type lineageReport struct {
	Name      string `json:"name"`
	ChainFile string `json:"chain_file"`
	// ServedSPKI is the hex SHA-256 of the served key's SubjectPublicKeyInfo
	// (the 3 1 1 data); omitted when the chain file does not exist.
	ServedSPKI      string `json:"served_spki,omitempty"`
	ServedNotBefore string `json:"served_not_before,omitempty"`
	ServedNotAfter  string `json:"served_not_after,omitempty"`
	// DaysUntilExpiry is (served_not_after - time) in days, negative once
	// expired; omitted without a served chain.
	DaysUntilExpiry *float64 `json:"days_until_expiry,omitempty"`
	// Protected is false when the served chain matches no aged record at
	// some owner (see unprotected_reasons).
	Protected          bool           `json:"protected"`
	UnprotectedReasons []string       `json:"unprotected_reasons,omitempty"`
	Pending            *pendingReport `json:"pending,omitempty"`
	ReloadPending      bool           `json:"reload_pending"`
	ReloadReason       string         `json:"reload_reason,omitempty"`
	VerifiedAt         string         `json:"verified_at,omitempty"`
	Next               *nextKeyReport `json:"next_key,omitempty"`
	// PresentedReasons says per endpoint what it presented in this run.
	PresentedReasons []string `json:"presented_reasons,omitempty"`
	// ExpiryError is set when a pending switch cannot become safe before
	// the served certificate expires.
	ExpiryError string `json:"expiry_error,omitempty"`
	// NotIssued is true for a lineage configured before its first
	// issuance; NotIssuedReason names the missing file.
	NotIssued       bool   `json:"not_issued,omitempty"`
	NotIssuedReason string `json:"not_issued_reason,omitempty"`
	// WarningReasons are problems that will break mail later (a stale
	// issuer set).
	WarningReasons []string `json:"warning_reasons,omitempty"`
	// Scheduled is the run scheduled to complete the pending switch (or a
	// rotation commit) when it becomes safe; ScheduleError why scheduling
	// it failed.
	Scheduled     *scheduledReport `json:"scheduled,omitempty"`
	ScheduleError string           `json:"schedule_error,omitempty"`
	// TimerCompletes is when the timer's run completes the pending switch
	// (or rotation commit) when no job is scheduled for it; omitted when a
	// job is, or no timer runs 'danectl tick' as far as danectl knows.
	TimerCompletes *timerRunReport `json:"timer_completes,omitempty"`
	Error          string          `json:"error,omitempty"`
}

type scheduledReport struct {
	// Via is "systemd", "at" or "none".
	Via string `json:"via"`
	At  string `json:"at"`
	// ID is the transient timer unit or the at job number.
	ID      string `json:"id,omitempty"`
	Command string `json:"command,omitempty"`
}

type pendingReport struct {
	SPKI  string `json:"spki"`
	Since string `json:"since,omitempty"`
	// Safe is true when the next tick installs it.
	Safe   bool   `json:"safe"`
	SafeAt string `json:"safe_at,omitempty"`
	// SecondsUntilSafe is omitted while a server blocks the switch.
	SecondsUntilSafe *int64   `json:"seconds_until_safe,omitempty"`
	Blocking         []string `json:"blocking,omitempty"`
}

type nextKeyReport struct {
	SPKI      string `json:"spki"`
	Algorithm string `json:"algorithm"`
	Staged    string `json:"staged"`
	Committed string `json:"committed,omitempty"`
	// CommitAllowed is true once the staged key's record is aged at every
	// owner; CommitAllowedAt is that time (past or future), omitted while
	// a server blocks it and once committed.
	CommitAllowed   bool   `json:"commit_allowed"`
	CommitAllowedAt string `json:"commit_allowed_at,omitempty"`
}

type ownerReport struct {
	Owner    string   `json:"owner"`
	Zone     string   `json:"zone"`
	Provider string   `json:"provider"`
	Lineages []string `json:"lineages"`
	// Aged is true when every desired record is aged.
	Aged   bool   `json:"aged"`
	AgedAt string `json:"aged_at,omitempty"`
	// SecondsUntilAged is 0 once aged, omitted while a server blocks it.
	SecondsUntilAged   *int64         `json:"seconds_until_aged,omitempty"`
	Primary            string         `json:"primary,omitempty"`
	PrimarySerial      uint32         `json:"primary_serial"`
	NegativeTTL        uint32         `json:"negative_ttl"`
	ServersLagging     int            `json:"servers_lagging"`
	ServersUnreachable int            `json:"servers_unreachable"`
	Servers            []serverReport `json:"servers"`
	Records            []recordReport `json:"records"`
	// Unmatched are records danehook does not own that match no chain
	// Postfix may serve (presentation form).
	Unmatched   []string      `json:"unmatched"`
	HeldReasons []string      `json:"held_reasons,omitempty"`
	DNSSEC      *dnssecReport `json:"dnssec,omitempty"`
	Error       string        `json:"error,omitempty"`
}

type serverReport struct {
	Name      string   `json:"name"`
	Addr      string   `json:"addr,omitempty"`
	Reachable bool     `json:"reachable"`
	Serial    uint32   `json:"serial"`
	Lagging   bool     `json:"lagging"`
	TTL       uint32   `json:"ttl"`
	Records   []string `json:"records"`
	Error     string   `json:"error,omitempty"`
}

type recordReport struct {
	Record   string   `json:"record"`
	Owned    bool     `json:"owned"`
	Aged     bool     `json:"aged"`
	AgedAt   string   `json:"aged_at,omitempty"`
	Blocking []string `json:"blocking,omitempty"`
}

type dnssecReport struct {
	Signed bool `json:"signed"`
	// DS and Validated are "yes", "no" or "unknown" (no resolver).
	DS        string `json:"ds"`
	Validated string `json:"validated"`
	Reason    string `json:"reason,omitempty"`
}

// checkReport is the --json output of `danectl check`.
type checkReport struct {
	Schema int    `json:"schema"`
	Time   string `json:"time"`
	// OK is true when check exits 0.
	OK     bool         `json:"ok"`
	Status statusReport `json:"status"`
	Live   liveReport   `json:"live"`
}

// liveReport is the STARTTLS verification of check.
type liveReport struct {
	OK bool `json:"ok"`
	// Reasons lists each endpoint check that matched.
	Reasons []string `json:"reasons"`
	Error   string   `json:"error,omitempty"`
}

// rfc3339 formats t in UTC, "" for the zero time.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// secondsUntil returns whole seconds from now to t, at least 0; nil for
// the zero time (unknown).
func secondsUntil(t, now time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	s := int64(math.Ceil(t.Sub(now).Seconds()))
	return new(max(s, 0))
}

// daysUntil returns (t - now) in days, rounded to 0.01; nil for the zero time.
func daysUntil(t, now time.Time) *float64 {
	if t.IsZero() {
		return nil
	}
	return new(math.Round(t.Sub(now).Hours()/24*100) / 100)
}

// newStatusReport converts st, observed at now, to the --json schema; tr
// is the timer's state (nil when not probed).
func newStatusReport(st *deploy.Status, now time.Time, tr *timerReport) statusReport {
	r := statusReport{Schema: jsonSchema, Time: rfc3339(now), OK: st.OK(), Timer: tr,
		Lineages: []lineageReport{}, Owners: []ownerReport{}}
	for _, l := range st.Lineages {
		lr := lineageReport{Name: l.Name, ChainFile: l.ChainFile, ServedSPKI: l.Served,
			ServedNotBefore: rfc3339(l.ServedNotBefore), ServedNotAfter: rfc3339(l.ServedNotAfter), DaysUntilExpiry: daysUntil(l.ServedNotAfter, now),
			Protected: len(l.Unprotected) == 0, UnprotectedReasons: l.Unprotected,
			ReloadPending: l.Reload, ReloadReason: l.ReloadReason, VerifiedAt: rfc3339(l.VerifiedAt),
			PresentedReasons: l.Presented, ExpiryError: l.ExpiryErr, Error: l.Err,
			NotIssued: l.NotIssued, NotIssuedReason: l.NotIssuedReason, WarningReasons: l.Warnings, ScheduleError: l.ScheduleErr}
		if sc := l.Scheduled; sc != nil {
			lr.Scheduled = &scheduledReport{Via: sc.Via, At: rfc3339(sc.At), ID: sc.ID, Command: sc.Command}
		}
		lr.TimerCompletes = timerCompletes(l, tr, now)
		if p := l.Pending; p != nil {
			pr := &pendingReport{SPKI: p.SPKI, Since: rfc3339(p.Since), SafeAt: rfc3339(p.SafeAt),
				SecondsUntilSafe: secondsUntil(p.SafeAt, now), Blocking: p.Blocking}
			pr.Safe = l.Switch != nil && l.Switch.Safe
			lr.Pending = pr
		}
		if n := l.Next; n != nil {
			lr.Next = &nextKeyReport{SPKI: n.SPKI, Algorithm: n.Algorithm, Staged: rfc3339(n.Staged), Committed: rfc3339(n.Committed),
				CommitAllowed: n.Committed.IsZero() && !l.NextAgedAt.IsZero() && !l.NextAgedAt.After(now), CommitAllowedAt: rfc3339(l.NextAgedAt)}
		}
		r.Lineages = append(r.Lineages, lr)
	}
	for _, o := range st.Owners {
		or := ownerReport{Owner: o.Owner, Zone: o.Zone, Provider: o.Provider, Lineages: o.Lineages,
			Aged: o.Records.Aged, AgedAt: rfc3339(o.Records.AgedAt), Servers: []serverReport{},
			Records: []recordReport{}, Unmatched: []string{}, HeldReasons: o.Held, Error: o.Err}
		if or.Lineages == nil {
			or.Lineages = []string{}
		}
		if o.Records.Aged {
			or.SecondsUntilAged = new(int64(0))
		} else if len(o.Records.Records) > 0 {
			or.SecondsUntilAged = secondsUntil(o.Records.AgedAt, now)
		}
		if obs := o.Observation; obs != nil {
			or.Primary, or.PrimarySerial, or.NegativeTTL = obs.Primary, obs.PrimarySerial, obs.NegativeTTL
			for _, s := range obs.Servers {
				sr := serverReport{Name: s.Name, Addr: s.Addr, Reachable: s.Reachable, Serial: s.Serial,
					Lagging: s.Lagging, TTL: s.TTL, Records: []string{}, Error: s.Err}
				for _, rec := range s.Records {
					sr.Records = append(sr.Records, rec.String())
				}
				if s.Lagging {
					or.ServersLagging++
				}
				if !s.OK() {
					or.ServersUnreachable++
				}
				or.Servers = append(or.Servers, sr)
			}
		}
		for _, rs := range o.Records.Records {
			rr := recordReport{Record: rs.Record, Aged: rs.Aged, AgedAt: rfc3339(rs.AgedAt), Blocking: rs.Blocking}
			for _, x := range o.Owned {
				if x == rs.Record {
					rr.Owned = true
				}
			}
			or.Records = append(or.Records, rr)
		}
		or.Unmatched = append(or.Unmatched, o.Unmatched...)
		if d := o.DNSSEC; d != nil {
			or.DNSSEC = &dnssecReport{Signed: d.Signed, DS: string(d.DS), Validated: string(d.Validated), Reason: d.Warning}
		}
		r.Owners = append(r.Owners, or)
	}
	return r
}

// writeJSON writes v indented, one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
