package main

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCommandOrder checks that --help lists the commands in the order an
// operator meets them (one list, in commands()).
func TestCommandOrder(t *testing.T) {
	var got []string
	for _, c := range newApp(io.Discard, io.Discard).Commands {
		got = append(got, c.Name)
	}
	want := []string{"init", "config", "tlsa", "plan", "publish", "status", "prune", "check", "tick", "rotate"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// TestManPageCarriesEveryCommand: danectl's man page has a subsection per
// command and subcommand with the start of its description, and the
// EXIT STATUS, ENVIRONMENT, FILES and SEE ALSO sections.
func TestManPageCarriesEveryCommand(t *testing.T) {
	code, man, errs := danectl(t, "--generate-man")
	if code != 0 {
		t.Fatalf("--generate-man: exit %d: %s", code, errs)
	}
	for _, sec := range []string{".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH FILES", ".SH SEE ALSO", ".SH COMMANDS"} {
		if !strings.Contains(man, sec) {
			t.Errorf("man page lacks %s", sec)
		}
	}
	var walk func(parent string, cs []*cli.Command)
	walk = func(parent string, cs []*cli.Command) {
		for _, c := range cs {
			full := parent + " " + c.Name
			if !strings.Contains(man, `.SS "`+strings.ReplaceAll(full, "-", `\-`)) {
				t.Errorf("man page has no subsection for %q", full)
			}
			if c.Description != "" {
				first := strings.Fields(strings.SplitN(c.Description, "\n", 2)[0])
				if len(first) > 3 {
					first = first[:3]
				}
				if w := strings.ReplaceAll(strings.Join(first, " "), "-", `\-`); !strings.Contains(man, w) {
					t.Errorf("man page lacks the description of %q (%q)", full, w)
				}
			}
			walk(full, c.Subcommands)
		}
	}
	walk("danectl", newApp(io.Discard, io.Discard).Commands)
}
