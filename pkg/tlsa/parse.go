package tlsa

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Association data lengths of the digest matching types (RFC 6698 §2.1.3).
const (
	sha256Len = 32
	sha512Len = 64
)

// Decision: ParseRRset reads master files itself instead of through
// miekg/dns's NewZoneParser (or NewRR per line), which does the lexing
// ($ORIGIN, $TTL, parentheses, comments, TTL units) equally well. The
// reasons, each tied to a test in parse_test.go that fails once the gap is
// gone:
//  1. Bare RDATA lines ("3 1 1 <hex>", what operators paste and what
//     danectl tlsa --check must accept beside dig's output) are no master
//     file: NewZoneParser reads the "3" as a relative owner name and stops
//     (TestZoneParserGaps/bare).
//  2. ParseError.Line is API (danectl prints "line N"); dns.ParseError keeps
//     the line in an unexported field, so the number could only be scraped
//     from its message (TestZoneParserGaps/line).
//  3. NewZoneParser keeps TLSA data it cannot decode ("zz") and usages out
//     of range, accepts other classes and expands $GENERATE, so every record
//     would be validated again here anyway (TestZoneParserGaps/lenient).
//  4. A line with neither TTL nor class and no $TTL before it
//     ("<owner> TLSA 3 1 1 <hex>") is refused with "missing TTL with no
//     previous value"; ParseRRset reads it with TTL 0 (unknown)
//     (TestZoneParserGaps/no_ttl).
// Where both read the same input they agree: TestZoneParserAgrees feeds
// every master-file case of TestParseRRset to NewZoneParser.

// maxLine is the longest zone-file line ParseRRset reads, in bytes: enough for
// a 3 0 0 record of a large certificate in hex.
const maxLine = 1 << 20

// Parse reads the presentation form of TLSA RDATA (RFC 6698 §2.2):
// "<usage> <selector> <matching type> <hex>", such as
// "3 1 1 0b9fa5a5…". The hex may be upper or lower case and split by white
// space into several tokens (as dig splits it into 56-character chunks).
//
// It returns an error for a missing field, fields out of range (usage 0–3,
// selector 0–1, matching type 0–2), quotes, non-hex characters, association
// data of the wrong length (32 bytes for SHA-256, 64 for SHA-512; matching
// type 0 must hold one DER SEQUENCE: a certificate or a SubjectPublicKeyInfo).
// It wraps ErrEmptyDigest for the SHA-256 or SHA-512 digest of empty input:
// such a record was computed from nothing and never matches.
func Parse(s string) (Record, error) {
	r, err := parseFields(strings.Fields(s))
	if err != nil {
		return Record{}, fmt.Errorf("tlsa: parse %q: %w", clip(s), err)
	}
	return r, nil
}

// parseFields parses TLSA RDATA given as white-space separated tokens.
func parseFields(f []string) (Record, error) {
	for _, t := range f {
		if strings.ContainsAny(t, "\"'") {
			return Record{}, errors.New("quotes are not allowed in TLSA RDATA; remove them")
		}
	}
	if len(f) < 4 {
		return Record{}, fmt.Errorf("want \"<usage> <selector> <matching type> <hex>\", got %d fields", len(f))
	}
	var v [3]uint8
	for i, name := range []string{"usage", "selector", "matching type"} {
		n, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil || !isDigits(f[i]) {
			return Record{}, fmt.Errorf("%s %q is not a number 0–255", name, clip(f[i]))
		}
		v[i] = uint8(n)
	}
	if err := checkParams(v[0], v[1], v[2]); err != nil {
		return Record{}, err
	}
	h := strings.Join(f[3:], "")
	if h == "-" {
		return Record{}, fmt.Errorf("empty association data (\"-\"): %w", ErrEmptyDigest)
	}
	data, err := hex.DecodeString(h)
	if err != nil {
		return Record{}, fmt.Errorf("association data is not hex: %w", err)
	}
	r := Record{Usage: v[0], Selector: v[1], MatchingType: v[2], Data: data}
	if err := r.check(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// check validates the association data length for the matching type and
// refuses digests of empty input.
func (r Record) check() error {
	switch r.MatchingType {
	case MatchFull:
		if len(r.Data) == 0 {
			return fmt.Errorf("matching type 0 with no data: %w", ErrEmptyDigest)
		}
		if err := checkDERSequence(r.Data); err != nil {
			what := "certificate"
			if r.Selector == SelectorSPKI {
				what = "SubjectPublicKeyInfo"
			}
			return fmt.Errorf("matching type 0 data is not a DER %s: %w", what, err)
		}
	case MatchSHA256:
		if len(r.Data) != sha256Len {
			return fmt.Errorf("SHA-256 data is %d bytes, want %d (64 hex digits)", len(r.Data), sha256Len)
		}
		if bytes.Equal(r.Data, emptySHA256[:]) {
			return fmt.Errorf("data is the SHA-256 of empty input (e3b0c442…b855); whatever computed it read no key or certificate: %w", ErrEmptyDigest)
		}
	case MatchSHA512:
		if len(r.Data) != sha512Len {
			return fmt.Errorf("SHA-512 data is %d bytes, want %d (128 hex digits)", len(r.Data), sha512Len)
		}
		if bytes.Equal(r.Data, emptySHA512[:]) {
			return fmt.Errorf("data is the SHA-512 of empty input (cf83e135…a3e); whatever computed it read no key or certificate: %w", ErrEmptyDigest)
		}
	}
	return nil
}

// Validate reports whether r could be published: parameters in range
// (usage 0–3, selector 0–1, matching type 0–2), data of the right length and
// not the digest of empty input (wrapping ErrEmptyDigest), as Parse checks.
func (r Record) Validate() error {
	if err := checkParams(r.Usage, r.Selector, r.MatchingType); err != nil {
		return fmt.Errorf("tlsa: record %s: %w", clip(r.String()), err)
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("tlsa: record %s: %w", clip(r.String()), err)
	}
	return nil
}

// RR is one TLSA resource record read from a zone file: the absolute owner
// name in lower case ("_25._tcp.mail.example.com."), the TTL in seconds and
// the RDATA. Owner is "" and TTL 0 for a bare RDATA line; TTL is 0 when the
// line gives none and no $TTL preceded it.
type RR struct {
	Owner string
	TTL   uint32
	Record
}

// String returns the zone-file line "<owner> [<ttl>] IN TLSA <u> <s> <m> <hex>",
// omitting a zero TTL, or the bare RDATA when Owner is empty.
func (rr RR) String() string {
	switch {
	case rr.Owner == "":
		return rr.Record.String()
	case rr.TTL == 0:
		return fmt.Sprintf("%s IN TLSA %s", rr.Owner, rr.Record)
	}
	return fmt.Sprintf("%s %d IN TLSA %s", rr.Owner, rr.TTL, rr.Record)
}

// ParseError is a ParseRRset failure on one line (1-based; the first line of
// a record continued over several lines with parentheses).
type ParseError struct {
	Line int
	Err  error
}

// Error returns "line N: <cause>".
func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the underlying error, so errors.Is(err, ErrEmptyDigest) works.
func (e *ParseError) Unwrap() error { return e.Err }

// ParseRRset reads TLSA records from r, one per line, in either form:
//
//   - master-file lines (RFC 1035 §5.1) as dig and BIND print them:
//     "_25._tcp.mail.example.com. [ttl] [IN] TLSA 3 1 1 <hex>", with the TTL
//     and class in either order, the TTL in seconds or BIND units ("1h30m"),
//     the hex split over several tokens or over several lines inside
//     parentheses (dig +multiline); a line with no owner (starting with white
//     space) reuses the previous owner; $ORIGIN and $TTL are honoured;
//     records of other types (RRSIG, CNAME, SOA …) are skipped;
//   - bare RDATA lines "3 1 1 <hex>" (Owner "" in the result).
//
// Comments start with ';'; blank lines are ignored. Owners must be TLSA owner
// names ("_<port>._tcp.<host>.", see ParseOwner) and are returned absolute and
// in lower case. The class must be IN.
//
// Errors are *ParseError values naming the line; one wrapping ErrEmptyDigest
// marks a digest of empty input. An empty input yields no records and no
// error.
func ParseRRset(r io.Reader) ([]RR, error) {
	p := rrParser{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxLine)
	var (
		pending   []string // tokens of a record open with "("
		startLine int
		indented  bool
	)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.ContainsAny(text, "\"") {
			if i := strings.IndexByte(text, ';'); i < 0 || strings.IndexByte(text, '"') < i {
				return nil, &ParseError{Line: line, Err: errors.New("quotes are not allowed in TLSA records; remove them")}
			}
		}
		if i := strings.IndexByte(text, ';'); i >= 0 {
			text = text[:i]
		}
		if pending == nil {
			startLine = line
			indented = text != "" && (text[0] == ' ' || text[0] == '\t')
		}
		toks, open, err := splitParens(text, pending != nil)
		if err != nil {
			return nil, &ParseError{Line: line, Err: err}
		}
		switch {
		case pending != nil:
			pending = append(pending, toks...)
			if open {
				continue
			}
			toks, pending = pending, nil
		case open:
			pending = append([]string{}, toks...)
			continue
		}
		if len(toks) == 0 {
			continue
		}
		if err := p.record(toks, indented); err != nil {
			return nil, &ParseError{Line: startLine, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &ParseError{Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", maxLine)}
		}
		return nil, fmt.Errorf("tlsa: read RRset: %w", err)
	}
	if pending != nil {
		return nil, &ParseError{Line: startLine, Err: errors.New("unbalanced \"(\": no closing \")\"")}
	}
	return p.out, nil
}

// splitParens splits a comment-free line into tokens, dropping parentheses.
// inside tells whether a "(" is open from an earlier line; open reports
// whether one is open after this line.
func splitParens(text string, inside bool) (toks []string, open bool, err error) {
	open = inside
	for _, t := range strings.Fields(strings.NewReplacer("(", " ( ", ")", " ) ").Replace(text)) {
		switch t {
		case "(":
			if open {
				return nil, false, errors.New("nested \"(\"")
			}
			open = true
		case ")":
			if !open {
				return nil, false, errors.New("\")\" without \"(\"")
			}
			open = false
		default:
			toks = append(toks, t)
		}
	}
	return toks, open, nil
}

// rrParser holds the state of ParseRRset between records.
type rrParser struct {
	out     []RR
	origin  string // $ORIGIN, absolute, lower case
	ttl     uint32 // $TTL, 0 if none
	lastOwn string
}

// record parses the tokens of one logical line.
func (p *rrParser) record(toks []string, indented bool) error {
	if strings.HasPrefix(toks[0], "$") {
		return p.directive(toks)
	}
	// A bare RDATA line starts with three numbers (usage, selector, matching
	// type); a master-file line never does (owner or TTL, then class or type).
	if len(toks) >= 3 && isDigits(toks[0]) && isDigits(toks[1]) && isDigits(toks[2]) {
		rec, err := parseFields(toks)
		if err != nil {
			return err
		}
		p.out = append(p.out, RR{Record: rec})
		return nil
	}
	k := typeIndex(toks)
	if k < 0 {
		return fmt.Errorf("want \"<owner> [ttl] [IN] TLSA <usage> <selector> <matching type> <hex>\" or bare \"3 1 1 <hex>\", got %q", clip(strings.Join(toks, " ")))
	}
	owner := ""
	ttl := p.ttl // $TTL, or 0
	for i, t := range toks[:k] {
		switch {
		case i == 0 && !indented && !isTTL(t) && !isClass(t):
			owner = t
		case isTTL(t):
			v, err := parseTTL(t)
			if err != nil {
				return err
			}
			ttl = v
		case isClass(t):
			if !strings.EqualFold(t, "IN") {
				return fmt.Errorf("class %s: only IN is supported", t)
			}
		default:
			return fmt.Errorf("unexpected %q before the record type (want owner, TTL, class)", clip(t))
		}
	}
	if !strings.EqualFold(toks[k], "TLSA") {
		return nil // another type: RRSIG, CNAME, SOA …
	}
	if owner == "" {
		if p.lastOwn == "" {
			return errors.New("record has no owner name and no earlier line gives one")
		}
		owner = p.lastOwn
	} else {
		o, err := p.absolute(owner)
		if err != nil {
			return err
		}
		if _, _, err := ParseOwner(o); err != nil {
			return err
		}
		owner = strings.ToLower(o)
	}
	rec, err := parseFields(toks[k+1:])
	if err != nil {
		return fmt.Errorf("%s: %w", owner, err)
	}
	p.lastOwn = owner
	p.out = append(p.out, RR{Owner: owner, TTL: ttl, Record: rec})
	return nil
}

// directive handles $ORIGIN and $TTL; $INCLUDE and $GENERATE are refused.
func (p *rrParser) directive(toks []string) error {
	switch strings.ToUpper(toks[0]) {
	case "$ORIGIN":
		if len(toks) != 2 || !strings.HasSuffix(toks[1], ".") {
			return errors.New("want \"$ORIGIN <absolute name>.\"")
		}
		p.origin = strings.ToLower(toks[1])
		return nil
	case "$TTL":
		if len(toks) != 2 || !isTTL(toks[1]) {
			return errors.New("want \"$TTL <seconds>\"")
		}
		v, err := parseTTL(toks[1])
		if err != nil {
			return err
		}
		p.ttl = v
		return nil
	}
	return fmt.Errorf("directive %s is not supported (only $ORIGIN and $TTL)", clip(toks[0]))
}

// absolute makes a possibly relative owner name absolute using $ORIGIN.
func (p *rrParser) absolute(name string) (string, error) {
	switch {
	case name == "@":
		if p.origin == "" {
			return "", errors.New("owner \"@\" without $ORIGIN")
		}
		return p.origin, nil
	case strings.HasSuffix(name, "."):
		return name, nil
	case p.origin == "":
		return "", fmt.Errorf("owner %q is relative: add the trailing dot or an $ORIGIN line", clip(name))
	case p.origin == ".":
		return name + ".", nil
	}
	return name + "." + p.origin, nil
}

// typeIndex returns the index of the record type mnemonic in the first four
// tokens (owner, TTL, class, type), or -1.
func typeIndex(toks []string) int {
	for i := 0; i < len(toks) && i < 4; i++ {
		if isType(toks[i]) {
			return i
		}
	}
	return -1
}

// isType reports whether t is a record type mnemonic known to miekg/dns or
// the generic form TYPEnnn (RFC 3597 §5).
func isType(t string) bool {
	u := strings.ToUpper(t)
	if _, ok := dns.StringToType[u]; ok {
		return true
	}
	return strings.HasPrefix(u, "TYPE") && isDigits(u[4:])
}

// isClass reports whether t is a class mnemonic or CLASSnnn (RFC 3597 §5).
func isClass(t string) bool {
	u := strings.ToUpper(t)
	if _, ok := dns.StringToClass[u]; ok {
		return true
	}
	return strings.HasPrefix(u, "CLASS") && isDigits(u[5:])
}

// isTTL reports whether t looks like a TTL: digits, optionally with BIND
// units (s, m, h, d, w).
func isTTL(t string) bool {
	if t == "" || t[0] < '0' || t[0] > '9' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i] | 0x20
		if !(t[i] >= '0' && t[i] <= '9' || strings.IndexByte("smhdw", c) >= 0) {
			return false
		}
	}
	return true
}

// maxTTL is the largest TTL RFC 2181 §8 allows, in seconds.
const maxTTL = 1<<31 - 1

// parseTTL parses a TTL in seconds or BIND units ("1h30m", "2d").
func parseTTL(t string) (uint32, error) {
	var total, n uint64
	digits := false
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c >= '0' && c <= '9' {
			n = n*10 + uint64(c-'0')
			digits = true
			if n > maxTTL {
				return 0, fmt.Errorf("TTL %q is larger than %d seconds", clip(t), maxTTL)
			}
			continue
		}
		if !digits {
			return 0, fmt.Errorf("TTL %q: unit without a number", clip(t))
		}
		mult := map[byte]uint64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[c|0x20]
		total += n * mult
		n, digits = 0, false
		if total > maxTTL {
			return 0, fmt.Errorf("TTL %q is larger than %d seconds", clip(t), maxTTL)
		}
	}
	total += n
	if total > maxTTL {
		return 0, fmt.Errorf("TTL %q is larger than %d seconds", clip(t), maxTTL)
	}
	return uint32(total), nil
}

// clip shortens s for error messages to at most 80 bytes.
func clip(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:77] + "..."
}
