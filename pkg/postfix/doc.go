// Package postfix drives a Postfix instance the way danehook needs it
// (DESIGN §7): `postfix check` before `postfix reload`, whether the master
// runs, which chain files smtpd serves, and a STARTTLS handshake whose
// presented chain is matched against a TLSA RRset as a DANE SMTP sender does
// (RFC 7672). It knows no DNS: records are passed in.
//
// # Commands
//
// [Instance] runs postfix and postconf with exec.CommandContext, no shell,
// a timeout, and `-c DIR` for a non-default instance. Without a terminal,
// Postfix commands report errors only to syslog or maillog_file, so a failed
// command's [CommandError] quotes both what the command printed (it is run
// on a pseudo-terminal on Linux, where Postfix prints its errors) and the
// lines Postfix appended to maillog_file while it ran.
//
// # Verification
//
// [Handshake] speaks just enough SMTP (greeting, EHLO, STARTTLS, QUIT) to get
// the server's chain; [Verify] matches it with [tlsa.Match] and adds what a
// sender also checks for DANE-TA(2): path validation from the trust anchor
// and the leaf's name (RFC 7672 §3.2). github.com/shuque/dane was evaluated
// for the matching and not used: its DANE-TA path validation takes the last
// certificate sent as the root, is unexported and tied to its own DNS and
// dialing Config; it compares hex strings case-sensitively, checks names with
// x509.VerifyHostname (no CN fallback) and reports depths only in free text.
package postfix
