package main

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/danehook/danehook/pkg/chain"
	"github.com/danehook/danehook/pkg/tlsa"
)

// Flag names of "danectl tlsa".
const (
	tlsaFlagHost     = "host"
	tlsaFlagPort     = "port"
	tlsaFlagUsage    = "usage"
	tlsaFlagSelector = "selector"
	tlsaFlagMType    = "mtype"
	tlsaFlagTTL      = "ttl"
	tlsaFlagJSON     = "json"
	tlsaFlagTA       = "ta"
	tlsaFlagCAFile   = "ca-file"
	tlsaFlagCheck    = "check"
	tlsaFlagRRset    = "rrset"
)

// tlsaDefaultPort is the SMTP port TLSA records are published for unless --port
// says otherwise (RFC 7672 §2.2).
const tlsaDefaultPort = 25

// tlsaCommand is "danectl tlsa".
func tlsaCommand() *cli.Command {
	return &cli.Command{
		Name:      "tlsa",
		Usage:     "print TLSA records for keys, certificates and CSRs, or check an RRset against a chain",
		ArgsUsage: "FILE...",
		UsageText: `danectl tlsa [--host HOST] [--port N]... [--usage U --selector S --mtype M] [--ttl N] [--json] FILE...
danectl tlsa --usage 2 [--ta issuer|root [--ca-file FILE]] --host HOST FILE...
danectl tlsa --check --rrset FILE|- [--host HOST] [--port N]... [--json] FILE...`,
		Description: `Prints one zone-file line per record, a superset of "postfix tls output-server-tlsa":

   _25._tcp.mail.example.com. IN TLSA 3 1 1 <sha256 of the key>

FILEs are PEM: private keys (PKCS #1, SEC 1, PKCS #8, RSA, ECDSA, Ed25519), public
keys, certificates, certificate requests, or combined files (key, then leaf, then
issuers, as Postfix's smtpd_tls_chain_files reads them). A "; FILE" comment line
precedes the records of each FILE.

With usage 3 (the default, "3 1 1"), each file gives the record of its key: the
certificate matching the private key if the file has one, else the first
certificate that issued no other one; selector 0 (the whole certificate) needs a
certificate. With usage 2 it prints one record per CA certificate in the file,
or only the trust anchor with --ta: "issuer" is the leaf's issuer from the file,
"root" the root above the last certificate, looked up in the system trust store
(or --ca-file) by subject and key identifier.

--check reads records from --rrset (zone-file lines as dig prints them, or bare
"3 1 1 <hex>" lines; "-" is standard input), takes the FILEs together as the
chain the server sends (leaf first), prints which record matched which
certificate and every lint finding (see the tlsa package documentation).

Exit codes:
   0  records printed; with --check: every owner matches and no error-level lint
   1  with --check: a mismatch or an error-level lint (e.g. no-match, ta-not-in-chain)
   2  bad input: flags, unreadable or unsupported files, a trust anchor not found`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: tlsaFlagHost, Usage: "`HOST` name of the mail server (the MX target); repeat for several; default: this machine's host name"},
			&cli.IntSliceFlag{Name: tlsaFlagPort, Usage: "TCP `PORT`; repeat for several (default: 25)"},
			&cli.IntFlag{Name: tlsaFlagUsage, Value: int(tlsa.UsageDANEEE), Usage: "certificate usage `U`: 3 DANE-EE, 2 DANE-TA (0 and 1 are unusable for SMTP)"},
			&cli.IntFlag{Name: tlsaFlagSelector, Value: int(tlsa.SelectorSPKI), Usage: "selector `S`: 1 the public key (SPKI), 0 the whole certificate"},
			&cli.IntFlag{Name: tlsaFlagMType, Value: int(tlsa.MatchSHA256), Usage: "matching type `M`: 1 SHA-256, 2 SHA-512, 0 the full data"},
			&cli.IntFlag{Name: tlsaFlagTTL, Usage: "print TTL `SECONDS` in each line (0: none)"},
			&cli.BoolFlag{Name: tlsaFlagJSON, Usage: "print JSON instead of zone-file lines"},
			&cli.StringFlag{Name: tlsaFlagTA, Usage: "with --usage 2: print only the trust anchor `MODE`: issuer (the leaf's issuer) or root (from the trust store)"},
			&cli.StringFlag{Name: tlsaFlagCAFile, Usage: "with --ta root: look the root up in PEM `FILE` instead of the system trust store"},
			&cli.BoolFlag{Name: tlsaFlagCheck, Usage: "match the records of --rrset against the chain in FILEs and lint them"},
			&cli.StringFlag{Name: tlsaFlagRRset, Usage: "with --check: read TLSA records from `FILE` (\"-\" for standard input)"},
		},
		Action: runTLSA,
	}
}

// tlsaOptions are the parsed flags of "danectl tlsa".
type tlsaOptions struct {
	hosts                  []string // canonical host names, no trailing dot
	ports                  []uint16
	usage, selector, mtype uint8
	ttl                    uint32
	json                   bool
	ta                     string
	caFile                 string
	check                  bool
	rrset                  string
	files                  []string
}

func runTLSA(c *cli.Context) error {
	o, err := tlsaFlags(c)
	if err != nil {
		return err
	}
	if o.check {
		return checkTLSA(c, o)
	}
	return printTLSA(c, o)
}

// tlsaUsageErr is a bad-input failure with the command's help as hint.
func tlsaUsageErr(format string, args ...any) error {
	return fail(exitUsage, fmt.Errorf("tlsa: "+format, args...), "run 'danectl tlsa --help'")
}

// tlsaFlags validates the flags and arguments.
func tlsaFlags(c *cli.Context) (tlsaOptions, error) {
	o := tlsaOptions{
		json: c.Bool(tlsaFlagJSON), ta: c.String(tlsaFlagTA), caFile: c.String(tlsaFlagCAFile),
		check: c.Bool(tlsaFlagCheck), rrset: c.String(tlsaFlagRRset), files: c.Args().Slice(),
	}
	if len(o.files) == 0 {
		return o, tlsaUsageErr("no FILE given: name PEM files with keys, certificates or CSRs")
	}
	for _, h := range c.StringSlice(tlsaFlagHost) {
		ch, err := tlsa.CheckHost(h)
		if err != nil {
			return o, tlsaUsageErr("--host: %w", err)
		}
		o.hosts = append(o.hosts, ch)
	}
	if len(o.hosts) == 0 && !o.check {
		h, err := os.Hostname()
		ch, cerr := tlsa.CheckHost(h)
		if err != nil || cerr != nil || !strings.Contains(ch, ".") {
			return o, tlsaUsageErr("no --host given and this machine's host name %q is not a fully qualified domain name; give --host mail.example.com", h)
		}
		o.hosts = []string{ch}
	}
	ports := c.IntSlice(tlsaFlagPort)
	if !c.IsSet(tlsaFlagPort) {
		ports = []int{tlsaDefaultPort}
	}
	for _, p := range ports {
		if p < 1 || p > 65535 {
			return o, tlsaUsageErr("--port %d: want 1–65535", p)
		}
		o.ports = tlsaAppendUnique(o.ports, uint16(p))
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *uint8
	}{{tlsaFlagUsage, 3, &o.usage}, {tlsaFlagSelector, 1, &o.selector}, {tlsaFlagMType, 2, &o.mtype}} {
		v := c.Int(f.name)
		if v < 0 || v > f.max {
			return o, tlsaUsageErr("--%s %d: want 0–%d", f.name, v, f.max)
		}
		*f.dst = uint8(v)
	}
	ttl := c.Int(tlsaFlagTTL)
	if ttl < 0 || ttl > 1<<31-1 {
		return o, tlsaUsageErr("--ttl %d: want 0–2147483647 seconds", ttl)
	}
	o.ttl = uint32(ttl)
	switch o.ta {
	case "", chain.TAIssuer, chain.TARoot:
	default:
		return o, tlsaUsageErr("--ta %q: want \"issuer\" or \"root\"", o.ta)
	}
	if o.ta != "" && o.usage != tlsa.UsageDANETA && o.usage != tlsa.UsagePKIXTA {
		return o, tlsaUsageErr("--ta applies to trust-anchor records: add --usage 2")
	}
	if o.caFile != "" && o.ta != chain.TARoot {
		return o, tlsaUsageErr("--ca-file is used only with --ta root")
	}
	if o.check {
		if o.rrset == "" {
			return o, tlsaUsageErr("--check needs --rrset FILE (zone-file lines or bare \"3 1 1 <hex>\"; \"-\" for standard input)")
		}
		for _, n := range []string{tlsaFlagUsage, tlsaFlagSelector, tlsaFlagMType, tlsaFlagTA, tlsaFlagTTL} {
			if c.IsSet(n) {
				return o, tlsaUsageErr("--%s has no effect with --check: the records come from --rrset", n)
			}
		}
	} else if o.rrset != "" {
		return o, tlsaUsageErr("--rrset is read only with --check")
	}
	return o, nil
}

func tlsaAppendUnique[T comparable](s []T, v T) []T {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// tlsaReadBundle reads one input file, failing with exit code 2.
func tlsaReadBundle(path string) (*chain.Bundle, error) {
	b, err := chain.ReadFile(path)
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("tlsa: %w", err),
			"give PEM files holding private keys, certificates, public keys or certificate requests")
	}
	return b, nil
}

// tlsaSource says where a record came from.
type tlsaSource struct {
	File    string `json:"file"`
	From    string `json:"from"`              // "certificate", "private key", "public key", "certificate request"
	Subject string `json:"subject,omitempty"` // certificate or CSR subject, or the key's description
}

// tlsaComputed is one record and where it came from.
type tlsaComputed struct {
	rec tlsa.Record
	src tlsaSource
}

// printTLSA computes and prints the records of every file.
func printTLSA(c *cli.Context, o tlsaOptions) error {
	var roots *chain.RootStore // loaded once, for --ta root
	type tlsaFileRecords struct {
		file string
		recs []tlsaComputed
	}
	var all []tlsaFileRecords
	for _, f := range o.files {
		b, err := tlsaReadBundle(f)
		if err != nil {
			return err
		}
		var recs []tlsaComputed
		if o.usage == tlsa.UsageDANETA || o.usage == tlsa.UsagePKIXTA {
			recs, err = tlsaTARecords(f, b, o, &roots)
		} else {
			recs, err = tlsaEERecords(f, b, o)
		}
		if err != nil {
			return err
		}
		all = append(all, tlsaFileRecords{f, recs})
	}

	var rrs []tlsa.RR
	type tlsaJSONRecord struct {
		Owner        string `json:"owner"`
		TTL          uint32 `json:"ttl"`
		Usage        uint8  `json:"usage"`
		Selector     uint8  `json:"selector"`
		MatchingType uint8  `json:"matching_type"`
		Data         string `json:"data"`
		tlsaSource
	}
	jsonOut := []tlsaJSONRecord{}
	owners, err := tlsa.Owners(o.hosts, o.ports)
	if err != nil {
		return tlsaUsageErr("%w", err)
	}
	var text bytes.Buffer
	for _, fr := range all {
		fmt.Fprintf(&text, "; %s\n", fr.file)
		for _, owner := range owners {
			for _, cr := range fr.recs {
				rr := tlsa.RR{Owner: owner, TTL: o.ttl, Record: cr.rec}
				rrs = append(rrs, rr)
				fmt.Fprintln(&text, rr)
				jsonOut = append(jsonOut, tlsaJSONRecord{Owner: owner, TTL: o.ttl, Usage: cr.rec.Usage,
					Selector: cr.rec.Selector, MatchingType: cr.rec.MatchingType,
					Data: hex.EncodeToString(cr.rec.Data), tlsaSource: cr.src})
			}
		}
	}
	out := c.App.Writer
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(jsonOut); err != nil {
			return fmt.Errorf("tlsa: write JSON: %w", err)
		}
	} else if _, err := out.Write(text.Bytes()); err != nil {
		return fmt.Errorf("tlsa: write records: %w", err)
	}
	// Lint findings about what was asked for (3 0 x, full data, usage 0/1)
	// are printed as warnings on stderr and never change the exit code: the
	// operator asked for these records.
	seen := map[string]bool{}
	for _, f := range tlsa.Lint(tlsa.LintInput{RRset: rrs}) {
		if seen[f.ID] {
			continue // once per lint is enough for generated records
		}
		seen[f.ID] = true
		fmt.Fprintf(c.App.ErrWriter, "danectl: warning: %s: %s\n", f.ID, f.Message)
	}
	return nil
}

// tlsaEERecords computes the end-entity records (usage 3 or 1) of one file: one
// per private key (from the matching certificate when the file has
// certificates), one for the leaf when the file has certificates but no key,
// one per public key and CSR. Duplicates within the file are dropped.
func tlsaEERecords(file string, b *chain.Bundle, o tlsaOptions) ([]tlsaComputed, error) {
	var out []tlsaComputed
	add := func(r tlsa.Record, src tlsaSource) {
		for _, x := range out {
			if x.rec.Equal(r) {
				return
			}
		}
		out = append(out, tlsaComputed{r, src})
	}
	keyOnly := func(what string) error {
		return fail(exitUsage, fmt.Errorf("tlsa: %q: %s: %w", file, what, tlsa.ErrKeySelector),
			"use --selector 1, or give the certificate (with the key, or alone)")
	}
	for i, k := range b.PrivateKeys {
		spki, err := tlsa.MarshalSPKI(k)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: private key %d: %w", file, i+1, err), "")
		}
		if len(b.Certificates) > 0 {
			leaf := tlsa.CertForKey(b.Certificates, k)
			if leaf == nil {
				return nil, fail(exitUsage,
					fmt.Errorf("tlsa: %q: the %s matches none of the %d certificates in the file", file, tlsa.DescribeKey(k), len(b.Certificates)),
					"put the private key together with its own certificate, or give the key file alone")
			}
			r, err := tlsa.FromCertificate(leaf, o.usage, o.selector, o.mtype)
			if err != nil {
				return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
			}
			add(r, tlsaSource{File: file, From: "certificate", Subject: leaf.Subject.String()})
			continue
		}
		if o.selector != tlsa.SelectorSPKI {
			return nil, keyOnly(tlsa.DescribeKey(k))
		}
		r, err := tlsa.FromSPKI(spki, o.usage, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		add(r, tlsaSource{File: file, From: "private key", Subject: tlsa.DescribeKey(k)})
	}
	if len(b.PrivateKeys) == 0 && len(b.Certificates) > 0 {
		leaf, _, err := chain.Order(b.Certificates)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: find the leaf: %w", file, err),
				"give one certificate chain per file (leaf and its issuers)")
		}
		r, err := tlsa.FromCertificate(leaf, o.usage, o.selector, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		add(r, tlsaSource{File: file, From: "certificate", Subject: leaf.Subject.String()})
	}
	for _, pub := range b.PublicKeys {
		if o.selector != tlsa.SelectorSPKI {
			return nil, keyOnly("public key")
		}
		r, err := tlsa.FromPublicKey(pub, o.usage, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		add(r, tlsaSource{File: file, From: "public key", Subject: tlsa.DescribeKey(pub)})
	}
	for _, csr := range b.CSRs {
		if o.selector != tlsa.SelectorSPKI {
			return nil, keyOnly("certificate request")
		}
		r, err := tlsa.FromCSR(csr, o.usage, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		add(r, tlsaSource{File: file, From: "certificate request", Subject: csr.Subject.String()})
	}
	return out, nil
}

// tlsaTARecords computes the trust-anchor records (usage 2 or 0) of one file:
// one per CA certificate in chain order, or the one --ta names. roots caches
// the trust store between files.
func tlsaTARecords(file string, b *chain.Bundle, o tlsaOptions, roots **chain.RootStore) ([]tlsaComputed, error) {
	if len(b.Certificates) == 0 {
		return nil, fail(exitUsage,
			fmt.Errorf("tlsa: %q holds no certificate: a %d x x record names a CA certificate", file, o.usage),
			"give the certificate chain (fullchain.pem or chain.pem), or use --usage 3 for the key")
	}
	leaf, issuers, err := chain.Order(b.Certificates)
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: order the chain: %w", file, err),
			"give one certificate chain per file (leaf and its issuers)")
	}
	if len(b.PrivateKeys) > 0 {
		if _, err := tlsa.MarshalSPKI(b.PrivateKeys[0]); err == nil && !tlsa.KeyMatches(leaf, b.PrivateKeys[0]) {
			return nil, fail(exitUsage,
				fmt.Errorf("tlsa: %q: the %s does not match the leaf %q", file, tlsa.DescribeKey(b.PrivateKeys[0]), leaf.Subject.String()),
				"put the private key together with its own certificate chain")
		}
	}
	path := append([]*x509.Certificate{leaf}, issuers...)
	var cas []*x509.Certificate
	for _, c := range path {
		if c.BasicConstraintsValid && c.IsCA {
			cas = append(cas, c)
		}
	}
	var tas []*x509.Certificate
	switch o.ta {
	case "":
		if len(cas) == 0 {
			return nil, fail(exitUsage,
				fmt.Errorf("tlsa: %q holds no CA certificate, only %q", file, leaf.Subject.String()),
				"give the full chain (fullchain.pem), or add --ta root to take the root from the trust store")
		}
		tas = cas
	case chain.TAIssuer:
		if len(cas) == 0 {
			return nil, fail(exitUsage,
				fmt.Errorf("tlsa: %q holds no issuer of %q: %w", file, leaf.Subject.String(), chain.ErrTANotFound),
				"give the full chain (fullchain.pem) so the issuer is in it")
		}
		tas = cas[:1]
	case chain.TARoot:
		if *roots == nil {
			var files []string
			if o.caFile != "" {
				files = []string{o.caFile}
			}
			rs, err := chain.LoadRootStore(files...)
			if err != nil {
				return nil, fail(exitUsage, fmt.Errorf("tlsa: load trust store: %w", err),
					"install ca-certificates, or give the root with --ca-file FILE")
			}
			*roots = rs
		}
		root, err := chain.FindRoot(path[len(path)-1], *roots)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err),
				"give the root certificate with --ca-file FILE")
		}
		tas = []*x509.Certificate{root}
	}
	var out []tlsaComputed
	for _, ta := range tas {
		r, err := tlsa.FromCertificate(ta, o.usage, o.selector, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		out = append(out, tlsaComputed{r, tlsaSource{File: file, From: "certificate", Subject: ta.Subject.String()}})
	}
	return out, nil
}

// checkTLSA matches the records of --rrset against the chain in the files
// and lints them (tlsa.Check), prints the report and maps it to an exit code.
func checkTLSA(c *cli.Context, o tlsaOptions) error {
	rrs, err := tlsaReadRRset(c, o.rrset)
	if err != nil {
		return err
	}
	// The files together are the chain the server sends, in order.
	var in tlsa.CheckInput
	for _, f := range o.files {
		b, err := tlsaReadBundle(f)
		if err != nil {
			return err
		}
		for _, cert := range b.Certificates {
			in.Chain = append(in.Chain, tlsa.ChainCert{Cert: cert, File: f})
		}
		for _, k := range b.PrivateKeys {
			in.Keys = append(in.Keys, tlsa.FileKey{Key: k, File: f})
		}
	}
	if len(in.Chain) == 0 {
		return fail(exitUsage, fmt.Errorf("tlsa: no certificate in %s: --check needs the chain the server sends", tlsaQuoteFiles(o.files)),
			"give the served chain file, or fullchain.pem (leaf first)")
	}
	if in.Owners, err = tlsa.Owners(o.hosts, o.ports); err != nil {
		return tlsaUsageErr("%w", err)
	}
	in.RRset = rrs
	rep := tlsa.Check(in)
	out := c.App.Writer
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("tlsa: write JSON: %w", err)
		}
	} else if err := rep.WriteText(out); err != nil {
		return fmt.Errorf("tlsa: write report: %w", err)
	}
	if !rep.OK {
		hint := "fix the error findings above"
		if rep.Mismatched {
			hint = "publish a record that matches the served chain (danectl tlsa FILE) and wait 2 TTLs before serving it"
		}
		return fail(exitMismatch, errors.New("tlsa: check failed: "+rep.Summary()), hint)
	}
	return nil
}

// tlsaReadRRset reads --rrset: a file or "-" for standard input.
func tlsaReadRRset(c *cli.Context, name string) ([]tlsa.RR, error) {
	var r io.Reader
	if name == "-" {
		r = c.App.Reader
		if r == nil {
			r = os.Stdin
		}
		name = "standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: --rrset: %w", err), "give a file of TLSA records, or \"-\" for standard input")
		}
		defer f.Close()
		r = f
	}
	rrs, err := tlsa.ParseRRset(r)
	if err != nil {
		return nil, fail(exitUsage, fmt.Errorf("tlsa: --rrset %q: %w", name, err),
			"give zone-file lines (\"_25._tcp.mail.example.com. 300 IN TLSA 3 1 1 <hex>\", as dig +noall +answer prints them) or bare \"3 1 1 <hex>\" lines")
	}
	if len(rrs) == 0 {
		return nil, fail(exitUsage, fmt.Errorf("tlsa: --rrset %q holds no TLSA record", name),
			"fetch the records with: dig +noall +answer TLSA _25._tcp.HOST")
	}
	return rrs, nil
}

func tlsaQuoteFiles(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = fmt.Sprintf("%q", f)
	}
	return strings.Join(q, ", ")
}
