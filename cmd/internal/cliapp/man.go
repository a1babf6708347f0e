package cliapp

// The man pages of the binaries (--generate-man), in roff (man(7)).

import (
	"fmt"
	"strings"

	"github.com/danehook/danehook/pkg/config"
	"github.com/urfave/cli/v2"
)

// exitStatus is the EXIT STATUS section every page carries: README.md's
// "Exit codes" table (TestManExitStatus checks that every code is there).
var exitStatus = [][2]string{
	{"0", "done (a pending switch is not an error: the renewal itself succeeded)"},
	{"1", "a mismatch, an error-level lint, a check that failed, or something still waits"},
	{"2", "bad input: flags, an unknown command, files, configuration, hook environment"},
	{"3", "TSIG or API authentication failure (BADKEY, BADSIG, BADTIME, bad token)"},
	{"4", "the server or API refused the change"},
	{"5", "the server is not authoritative for the zone"},
	{"6", "server failure, timeout, API unavailable, concurrent change"},
	{"7", "a step that is not safe yet"},
	{"8", "postfix check or reload failed, or the live chain does not match DNS"},
	{"9", "another danehook run holds the lock"},
	{"10", "the local system failed: disk full, I/O error, read-only file system, permission denied, out of files or memory"},
	{"130", "interrupted by SIGINT: the run stopped at its next step; run it again"},
	{"143", "interrupted by SIGTERM: the run stopped at its next step; run it again"},
}

// manFiles and manEnvironment are the FILES and ENVIRONMENT sections.
var manFiles = [][2]string{
	{config.DefaultPath, "the configuration; see danehook.toml(5)"},
	{"/var/lib/danehook/", "the state: owned records, first sightings, pending switches, staged keys (0700)"},
	{"/etc/postfix/danehook/", "the served chain files (chain_file), one per key algorithm (0700)"},
	{"/usr/share/danehook/hooks/", "the certbot hook wrappers that danectl init certbot links into /etc/letsencrypt/renewal-hooks/"},
	{"/usr/share/doc/danehook/", "README.md (the operator's guide), README-packaging.md, the annotated example configuration"},
}

func manEnvironment(name string) [][2]string {
	env := [][2]string{
		{config.EnvConfig, "the configuration file when --config is not given (default " + config.DefaultPath + ")"},
		{"DANEHOOK_STATE_DIR", "the state directory when the configuration sets no state_dir"},
		{EnvLogFormat, "the log format when --log-format is not given: text or json"},
	}
	if name == "dane-deploy" {
		env = append(env,
			[2]string{"RENEWED_LINEAGE, RENEWED_DOMAINS", "set by certbot for a deploy hook: the live directory of the renewed lineage, its names"},
			[2]string{"LEGO_CERT_DOMAIN, LEGO_CERT_PATH, LEGO_CERT_KEY_PATH, LEGO_ISSUER_CERT_PATH", "set by lego v4 for --run-hook and --renew-hook"},
			[2]string{"LEGO_HOOK_CERT_NAME, LEGO_HOOK_CERT_PATH, LEGO_HOOK_CERT_KEY_PATH, LEGO_HOOK_ISSUER_CERT_PATH, LEGO_HOOK_CERT_DOMAINS", "set by lego v5 for --deploy-hook"},
		)
	}
	return env
}

// manSeeAlso lists the other pages.
var manSeeAlso = []string{"danectl(1)", "dane-prerenew(1)", "dane-deploy(1)", "dane-reload(1)", "danehook.toml(5)", "certbot(1)", "lego(1)", "postconf(5)", "named.conf(5)"}

// ManPage returns app's man page in roff for section: NAME, SYNOPSIS,
// DESCRIPTION, OPTIONS, COMMANDS (each with its usage, description and
// options, recursively), LOGGING, EXIT STATUS, ENVIRONMENT, FILES and SEE
// ALSO. Hidden flags and commands are left out; the logging flags every
// command takes are listed once.
func ManPage(app *cli.App, section int) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %d \"\" \"danehook %s\" \"danehook manual\"\n", strings.ToUpper(app.Name), section, roffEscape(app.Version))
	b.WriteString(".SH NAME\n")
	fmt.Fprintf(&b, "%s \\- %s\n", app.Name, roffEscape(app.Usage))
	b.WriteString(".SH SYNOPSIS\n")
	synopsis := "[\\fIOPTIONS\\fR]"
	if len(app.VisibleCommands()) > 0 {
		synopsis += " \\fICOMMAND\\fR [\\fICOMMAND OPTIONS\\fR] [\\fIARGUMENTS\\fR]"
	} else if app.ArgsUsage != "" {
		synopsis += " " + roffEscape(app.ArgsUsage)
	}
	fmt.Fprintf(&b, ".B %s\n%s\n", app.Name, synopsis)
	if app.Description != "" {
		b.WriteString(".SH DESCRIPTION\n")
		writeParagraphs(&b, app.Description)
	}
	b.WriteString(".SH OPTIONS\n")
	writeFlags(&b, app.VisibleFlags(), false)
	if cmds := app.VisibleCommands(); len(cmds) > 0 {
		b.WriteString(".SH COMMANDS\n")
		for _, c := range cmds {
			writeCommand(&b, app.Name, c)
		}
	}
	b.WriteString(".SH LOGGING\n")
	writeParagraphs(&b, `Info and debug lines go to standard output, warnings and errors to standard error (certbot logs what a hook writes on standard error as a WARNING). --quiet (-q) keeps warnings and errors, --verbose adds debug lines, --log-format json (or `+EnvLogFormat+`=json) writes one JSON object per line with time (RFC 3339, UTC), level, msg and the attributes; the final error line too, with its hint. Every command takes these flags, before or after its name.`)
	b.WriteString(".SH EXIT STATUS\n")
	for _, e := range exitStatus {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", e[0], roffEscape(e[1]))
	}
	writeParagraphs(&b, "Each command's description above says which of these it returns. An error names the file, record, server or variable at fault; a hint: line says what to do.")
	b.WriteString(".SH ENVIRONMENT\n")
	for _, e := range manEnvironment(app.Name) {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roffEscape(e[0]), roffEscape(e[1]))
	}
	b.WriteString(".SH FILES\n")
	for _, f := range manFiles {
		fmt.Fprintf(&b, ".TP\n.I %s\n%s\n", roffEscape(f[0]), roffEscape(f[1]))
	}
	b.WriteString(".SH SEE ALSO\n")
	var see []string
	for _, s := range manSeeAlso {
		if !strings.HasPrefix(s, app.Name+"(") {
			n, sec, _ := strings.Cut(strings.TrimSuffix(s, ")"), "(")
			see = append(see, fmt.Sprintf("\\fB%s\\fR(%s)", roffEscape(n), sec))
		}
	}
	b.WriteString(strings.Join(see, ", ") + "\n")
	return b.String()
}

// writeCommand writes c (and its subcommands) as a .SS subsection named
// "PARENT c ARGS".
func writeCommand(b *strings.Builder, parent string, c *cli.Command) {
	if c.Hidden {
		return
	}
	full := parent + " " + c.Name
	head := full
	if c.ArgsUsage != "" {
		head += " " + c.ArgsUsage
	}
	fmt.Fprintf(b, ".SS \"%s\"\n", roffEscape(head))
	if c.Usage != "" {
		writeParagraphs(b, strings.ToUpper(c.Usage[:1])+c.Usage[1:]+".")
	}
	if c.Description != "" {
		writeParagraphs(b, c.Description)
	}
	writeFlags(b, c.VisibleFlags(), true)
	for _, sc := range c.Subcommands {
		writeCommand(b, full, sc)
	}
}

// writeFlags writes flags as a .TP list; with skipCommon, the logging flags
// and --help (listed once under OPTIONS) are left out.
func writeFlags(b *strings.Builder, flags []cli.Flag, skipCommon bool) {
	for _, f := range flags {
		name := f.Names()[0]
		if skipCommon && (name == FlagQuiet || name == FlagVerbose || name == FlagLogFormat || name == "help") {
			continue
		}
		head, usage, _ := strings.Cut(cli.FlagStringer(f), "\t")
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roffEscape(head), roffEscape(usage))
	}
}

// writeParagraphs writes text (paragraphs separated by blank lines; lines
// starting with spaces kept as they are) as roff paragraphs.
func writeParagraphs(b *strings.Builder, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		lines := strings.Split(para, "\n")
		pre := false
		for _, l := range lines {
			if strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "\t") {
				pre = true
			}
		}
		b.WriteString(".PP\n")
		if pre {
			b.WriteString(".nf\n")
		}
		for _, l := range lines {
			if !pre {
				l = strings.TrimSpace(l)
			}
			b.WriteString(roffLine(l) + "\n")
		}
		if pre {
			b.WriteString(".fi\n")
		}
	}
}

// roffEscape escapes backslashes and hyphens for roff.
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffLine is roffEscape for a line of text, which must not start with a
// control character ('.' or ').
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
