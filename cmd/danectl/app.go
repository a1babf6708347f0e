package main

import (
	"io"

	"github.com/danehook/danehook/cmd/internal/cliapp"
	"github.com/urfave/cli/v2"
)

// Exit codes, shared by every danehook binary (see cliapp).
const (
	exitOK       = cliapp.ExitOK
	exitMismatch = cliapp.ExitMismatch
	exitUsage    = cliapp.ExitUsage
	exitPending  = cliapp.ExitPending
)

// fail wraps err with an exit code and a hint printed on its own line.
func fail(code int, err error, hint string) error { return cliapp.Fail(code, err, hint) }

// commands returns every danectl subcommand, in the order an operator meets
// them: set up (init, config check), look at records offline (tlsa), change
// DNS (plan, publish), watch (status, check), the timer's step (tick), and
// key rotation. --help lists them in this order; each lives in the file
// named after it.
func commands() []*cli.Command {
	return []*cli.Command{
		initCommand(),
		configCommand(),
		tlsaCommand(),
		planCommand(),
		publishCommand(),
		statusCommand(),
		pruneCommand(),
		checkCommand(),
		tickCommand(),
		rotateCommand(),
	}
}

// newApp builds the danectl CLI writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "danectl",
		Usage:           "keep DANE TLSA records and the Postfix chain in step with ACME renewals",
		Writer:          stdout,
		ErrWriter:       stderr,
		Commands:        commands(),
		Flags:           []cli.Flag{cliapp.ConfigFlag},
		HideHelpCommand: true,
	}
}

// run executes danectl with args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	// The command line as given, for errors raised before flags are parsed
	// (check --plugin answers a bad option as a monitoring plugin).
	app.Metadata = map[string]any{"args": args}
	return cliapp.Run(app, args, stderr)
}
