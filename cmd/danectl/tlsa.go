package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
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

// tlsaKeyMismatch is the finding of --check for a private key that is not
// the leaf's: Postfix refuses such a chain.
const tlsaKeyMismatch = "key-mismatch"

// tlsaDefaultPort is the SMTP port TLSA records are published for unless --port
// says otherwise (RFC 7672 §2.2).
const tlsaDefaultPort = 25

func init() { commands = append(commands, tlsaCommand()) }

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
	var text bytes.Buffer
	for _, fr := range all {
		fmt.Fprintf(&text, "; %s\n", fr.file)
		for _, host := range o.hosts {
			for _, port := range o.ports {
				owner, err := tlsa.Owner(port, host)
				if err != nil {
					return tlsaUsageErr("%w", err)
				}
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
			leaf := tlsaCertForSPKI(b.Certificates, spki)
			if leaf == nil {
				return nil, fail(exitUsage,
					fmt.Errorf("tlsa: %q: the %s matches none of the %d certificates in the file", file, tlsaKeyDesc(k), len(b.Certificates)),
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
			return nil, keyOnly(tlsaKeyDesc(k))
		}
		r, err := tlsa.FromSPKI(spki, o.usage, o.mtype)
		if err != nil {
			return nil, fail(exitUsage, fmt.Errorf("tlsa: %q: %w", file, err), "")
		}
		add(r, tlsaSource{File: file, From: "private key", Subject: tlsaKeyDesc(k)})
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
		add(r, tlsaSource{File: file, From: "public key", Subject: tlsaKeyDesc(pub)})
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
		spki, err := tlsa.MarshalSPKI(b.PrivateKeys[0])
		if err == nil && tlsaCertForSPKI([]*x509.Certificate{leaf}, spki) == nil {
			return nil, fail(exitUsage,
				fmt.Errorf("tlsa: %q: the %s does not match the leaf %q", file, tlsaKeyDesc(b.PrivateKeys[0]), leaf.Subject.String()),
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

// tlsaCertForSPKI returns the first certificate whose DER SubjectPublicKeyInfo is
// spki, or whose public key equals the one spki encodes.
func tlsaCertForSPKI(certs []*x509.Certificate, spki []byte) *x509.Certificate {
	for _, c := range certs {
		if bytes.Equal(c.RawSubjectPublicKeyInfo, spki) {
			return c
		}
	}
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return nil
	}
	for _, c := range certs {
		if k, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(pub) {
			return c
		}
	}
	return nil
}

// tlsaKeyDesc describes a public or private key: "ECDSA P-256 private key".
func tlsaKeyDesc(k any) string {
	kind := "public key"
	if _, ok := k.(crypto.Signer); ok {
		kind = "private key"
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return fmt.Sprintf("RSA %d-bit %s", k.N.BitLen(), kind)
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d-bit %s", k.N.BitLen(), kind)
	case *ecdsa.PrivateKey:
		return fmt.Sprintf("ECDSA %s %s", k.Curve.Params().Name, kind)
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s %s", k.Curve.Params().Name, kind)
	case ed25519.PrivateKey, ed25519.PublicKey:
		return "Ed25519 " + kind
	}
	return fmt.Sprintf("%T %s", k, kind)
}

// checkTLSA matches the records of --rrset against the chain in the files
// and lints them.
func checkTLSA(c *cli.Context, o tlsaOptions) error {
	rrs, err := tlsaReadRRset(c, o.rrset)
	if err != nil {
		return err
	}
	// The files together are the chain the server sends, in order.
	type link struct {
		cert *x509.Certificate
		file string
	}
	var links []link
	type fileKey struct {
		key  crypto.Signer
		file string
	}
	var keys []fileKey
	for _, f := range o.files {
		b, err := tlsaReadBundle(f)
		if err != nil {
			return err
		}
		for _, cert := range b.Certificates {
			links = append(links, link{cert, f})
		}
		for _, k := range b.PrivateKeys {
			keys = append(keys, fileKey{k, f})
		}
	}
	if len(links) == 0 {
		return fail(exitUsage, fmt.Errorf("tlsa: no certificate in %s: --check needs the chain the server sends", tlsaQuoteFiles(o.files)),
			"give the served chain file, or fullchain.pem (leaf first)")
	}
	served := make([]*x509.Certificate, len(links))
	for i, l := range links {
		served[i] = l.cert
	}

	// Which owners to check: --host × --port, else every owner in the RRset.
	var owners []string
	for _, h := range o.hosts {
		for _, p := range o.ports {
			owner, err := tlsa.Owner(p, h)
			if err != nil {
				return tlsaUsageErr("%w", err)
			}
			owners = tlsaAppendUnique(owners, owner)
		}
	}
	var checked []tlsa.RR
	skipped := 0
	if len(owners) > 0 {
		for _, rr := range rrs {
			switch {
			case rr.Owner == "":
				for _, ow := range owners {
					x := rr
					x.Owner = ow
					checked = append(checked, x)
				}
			case slices.Contains(owners, rr.Owner):
				checked = append(checked, rr)
			default:
				skipped++
			}
		}
	} else {
		checked = rrs
		for _, rr := range rrs {
			owners = tlsaAppendUnique(owners, rr.Owner)
		}
	}

	rep := tlsaCheckReport{OK: true, Skipped: skipped}
	for i, l := range links {
		rep.Chain = append(rep.Chain, tlsaChainEntry{Depth: i, Subject: l.cert.Subject.String(), File: l.file})
	}
	if len(keys) > 0 {
		found := false
		for _, k := range keys {
			if spki, err := tlsa.MarshalSPKI(k.key); err == nil && tlsaCertForSPKI(served[:1], spki) != nil {
				found = true
			}
		}
		if !found {
			rep.OK = false
			rep.Findings = append(rep.Findings, tlsaJSONFinding{ID: tlsaKeyMismatch, Severity: tlsa.Error,
				Message: fmt.Sprintf("the %s in %q is not the key of the leaf %q (the first certificate): Postfix refuses such a chain",
					tlsaKeyDesc(keys[0].key), keys[0].file, served[0].Subject.String())})
		}
	}
	for _, ow := range owners {
		var recs []tlsa.Record
		for _, rr := range checked {
			if rr.Owner == ow {
				recs = append(recs, rr.Record)
			}
		}
		res := tlsa.Match(served, recs)
		oc := tlsaOwnerCheck{Owner: ow, OK: res.OK(), Records: []tlsaRecordCheck{}}
		for i, r := range recs {
			rc := tlsaRecordCheck{Record: r.String(), Matches: []tlsaAssoc{}, Rejected: []tlsaAssoc{}}
			for _, m := range res.Matches {
				if m.Index == i {
					rc.Matches = append(rc.Matches, tlsaAssoc{Depth: m.Depth, Subject: m.Certificate.Subject.String()})
				}
			}
			for _, m := range res.Rejected {
				if m.Index == i {
					rc.Rejected = append(rc.Rejected, tlsaAssoc{Depth: m.Depth, Subject: m.Certificate.Subject.String(), Reason: m.Reason})
				}
			}
			oc.Records = append(oc.Records, rc)
		}
		if !res.OK() {
			rep.OK = false
			rep.mismatched = true
		}
		if len(recs) == 0 {
			rep.Findings = append(rep.Findings, tlsaJSONFinding{ID: tlsa.LintNoMatch, Severity: tlsa.Error, Owner: ow,
				Message: "no TLSA record at this owner in --rrset: DANE senders treat the server as not using DANE, or defer mail if the owner should have records; publish 3 1 1 for the current key"})
		}
		rep.Owners = append(rep.Owners, oc)
	}
	for _, f := range tlsa.Lint(tlsa.LintInput{RRset: checked, Chain: served}) {
		jf := tlsaJSONFinding{ID: f.ID, Severity: f.Severity, Owner: f.Owner, Message: f.Message}
		if f.Record != nil {
			jf.Record = f.Record.String()
		}
		if f.Severity == tlsa.Error {
			rep.OK = false
		}
		rep.Findings = append(rep.Findings, jf)
	}

	out := c.App.Writer
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("tlsa: write JSON: %w", err)
		}
	} else {
		rep.writeText(out)
	}
	if !rep.OK {
		hint := "fix the error findings above"
		if rep.mismatched {
			hint = "publish a record that matches the served chain (danectl tlsa FILE) and wait 2 TTLs before serving it"
		}
		return fail(exitMismatch, errors.New("tlsa: check failed: "+rep.summary()), hint)
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

// tlsaCheckReport is the result of --check, printed as text or JSON.
type tlsaCheckReport struct {
	OK       bool              `json:"ok"`
	Chain    []tlsaChainEntry  `json:"chain"`
	Owners   []tlsaOwnerCheck  `json:"owners"`
	Findings []tlsaJSONFinding `json:"findings"`
	Skipped  int               `json:"skipped_records"` // records at owners not checked

	mismatched bool // some owner has no matching record
}

// tlsaChainEntry is one certificate of the served chain.
type tlsaChainEntry struct {
	Depth   int    `json:"depth"`
	Subject string `json:"subject"`
	File    string `json:"file"`
}

// tlsaOwnerCheck is the match result at one owner.
type tlsaOwnerCheck struct {
	Owner   string            `json:"owner"`
	OK      bool              `json:"ok"`
	Records []tlsaRecordCheck `json:"records"`
}

// tlsaRecordCheck says what one record matched.
type tlsaRecordCheck struct {
	Record   string      `json:"record"`
	Matches  []tlsaAssoc `json:"matches"`
	Rejected []tlsaAssoc `json:"rejected"`
}

// tlsaAssoc is a certificate of the chain a record names.
type tlsaAssoc struct {
	Depth   int    `json:"depth"`
	Subject string `json:"subject"`
	Reason  string `json:"reason,omitempty"` // why the match does not count
}

// tlsaJSONFinding is a lint finding.
type tlsaJSONFinding struct {
	ID       string        `json:"id"`
	Severity tlsa.Severity `json:"severity"`
	Owner    string        `json:"owner,omitempty"`
	Record   string        `json:"record,omitempty"`
	Message  string        `json:"message"`
}

// writeText prints the report for a person.
func (r tlsaCheckReport) writeText(w io.Writer) {
	fmt.Fprintln(w, "; chain sent:")
	for _, e := range r.Chain {
		fmt.Fprintf(w, ";   depth %d: %s (%s)\n", e.Depth, e.Subject, e.File)
	}
	for _, oc := range r.Owners {
		status := "match"
		if !oc.OK {
			status = "MISMATCH"
		}
		owner := oc.Owner
		if owner == "" {
			owner = "(records without owner)"
		}
		fmt.Fprintf(w, "%s: %s (%s)\n", owner, status, tlsaPlural(len(oc.Records), "record"))
		for _, rc := range oc.Records {
			for _, m := range rc.Matches {
				fmt.Fprintf(w, "  %s: matches depth %d (%s)\n", rc.Record, m.Depth, m.Subject)
			}
			for _, m := range rc.Rejected {
				fmt.Fprintf(w, "  %s: equals depth %d (%s) but does not count: %s\n", rc.Record, m.Depth, m.Subject, m.Reason)
			}
			if len(rc.Matches) == 0 && len(rc.Rejected) == 0 {
				fmt.Fprintf(w, "  %s: matches nothing in the chain\n", rc.Record)
			}
		}
	}
	if r.Skipped > 0 {
		fmt.Fprintf(w, "; %s at other owners not checked\n", tlsaPlural(r.Skipped, "record"))
	}
	for _, f := range r.Findings {
		where := f.Owner
		if f.Record != "" {
			where += " " + f.Record
		}
		fmt.Fprintf(w, "%s %s %s: %s\n", f.Severity, f.ID, strings.TrimSpace(where), f.Message)
	}
	if r.OK {
		fmt.Fprintf(w, "ok: %s\n", r.summary())
	} else {
		fmt.Fprintf(w, "FAIL: %s\n", r.summary())
	}
}

// summary counts owners, mismatches, errors and warnings.
func (r tlsaCheckReport) summary() string {
	mismatch, errs, warns := 0, 0, 0
	for _, oc := range r.Owners {
		if !oc.OK {
			mismatch++
		}
	}
	for _, f := range r.Findings {
		if f.Severity == tlsa.Error {
			errs++
		} else {
			warns++
		}
	}
	return fmt.Sprintf("%s, %d mismatched, %s, %s", tlsaPlural(len(r.Owners), "owner"), mismatch, tlsaPlural(errs, "error"), tlsaPlural(warns, "warning"))
}

// tlsaPlural returns "1 record" or "2 records".
func tlsaPlural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func tlsaQuoteFiles(files []string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = fmt.Sprintf("%q", f)
	}
	return strings.Join(q, ", ")
}
