package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes of danectl, documented in README.md ("Exit codes").
const (
	exitOK       = 0 // success
	exitMismatch = 1 // a TLSA mismatch, an error-level lint, or a check that failed
	exitUsage    = 2 // bad input: flags, files, configuration
	exitTSIG     = 3 // TSIG failure: BADKEY, BADSIG, BADTIME
	exitRefused  = 4 // the server refused the update (update-policy)
	exitNotAuth  = 5 // the server is not authoritative for the zone (NOTAUTH, NOTZONE)
	exitServer   = 6 // SERVFAIL, timeouts, unreachable servers, provider API failures
	exitPending  = 7 // the requested step is not safe yet (records not aged)
)

// exitError carries an exit code and an optional operator hint out of a command.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// fail wraps err with an exit code and a hint printed on its own line.
func fail(code int, err error, hint string) error {
	return &exitError{code: code, err: err, hint: hint}
}

// commands lists every danectl subcommand; each lives in its own file.
var commands []*cli.Command

// newApp builds the danectl CLI writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:            "danectl",
		Usage:           "keep DANE TLSA records and the Postfix chain in step with ACME renewals",
		Writer:          stdout,
		ErrWriter:       stderr,
		Commands:        commands,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // run() reports errors
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return fail(exitUsage, err, "run 'danectl "+c.Command.Name+" --help'")
		},
	}
}

// run executes danectl with args and returns the process exit code. It never
// calls os.Exit, so the whole CLI is testable in-process.
func run(args []string, stdout, stderr io.Writer) int {
	err := newApp(stdout, stderr).Run(args)
	if err == nil {
		return exitOK
	}
	code := exitUsage
	var ee *exitError
	var ce cli.ExitCoder
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.As(err, &ce):
		code = ce.ExitCode()
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "danectl:") {
		msg = "danectl: error: " + msg
	}
	fmt.Fprintln(stderr, msg)
	if ee != nil && ee.hint != "" {
		fmt.Fprintln(stderr, "hint: "+ee.hint)
	}
	return code
}
