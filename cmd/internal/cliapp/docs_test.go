package cliapp

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/danehook/danehook/internal/testenv"
	"github.com/urfave/cli/v2"
)

func docsApp(stdout, stderr *bytes.Buffer, ran *bool) *cli.App {
	return &cli.App{
		Name:      "dane-test",
		Usage:     "a test binary",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags:     []cli.Flag{ConfigFlag},
		Commands: []*cli.Command{{
			Name:        "tick",
			Usage:       "the timer's step",
			Description: "tick runs what dane-reload runs.\n\n.Exit codes: 0 ok.",
			Flags:       []cli.Flag{&cli.BoolFlag{Name: "dry-run"}},
			Action:      func(*cli.Context) error { *ran = true; return nil },
		}},
	}
}

func TestGenerateDocs(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		want     []string
		wantErr  string
	}{
		{[]string{"--generate-man"}, ExitOK, []string{".TH DANE-TEST 1", "dane-test \\- a test binary", "tick", "\\-\\-config", ".SH EXIT STATUS", ".SH FILES", ".SH ENVIRONMENT", ".SH SEE ALSO"}, ""},
		{[]string{"--generate-completion", "bash"}, ExitOK, []string{"_dane_test()", "--generate-bash-completion", "complete -o bashdefault -o default -o nospace -F _dane_test dane-test"}, ""},
		{[]string{"--generate-completion", "zsh"}, ExitOK, []string{"#compdef dane-test\n", "_dane_test()", "compdef _dane_test dane-test"}, ""},
		{[]string{"--generate-completion", "fish"}, ExitUsage, nil, `completion for shell "fish": only bash and zsh are supported`},
		// urfave/cli reads the candidates' context from os.Args, which in a
		// test are go test's: only check that completion runs no action.
		{[]string{"tick", "--generate-bash-completion"}, ExitOK, nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			ran := false
			code := Run(docsApp(&out, &errb, &ran), append([]string{"dane-test"}, tt.args...), &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, errb.String())
			}
			if ran {
				t.Errorf("the app's action ran; want only the document printed")
			}
			for _, want := range tt.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q; got:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errb.String(), tt.wantErr) {
				t.Errorf("stderr lacks %q; got:\n%s", tt.wantErr, errb.String())
			}
		})
	}
}

func TestGenerateDocsHidden(t *testing.T) {
	var out, errb bytes.Buffer
	ran := false
	if code := Run(docsApp(&out, &errb, &ran), []string{"dane-test", "--help"}, &errb); code != ExitOK {
		t.Fatalf("--help: exit %d", code)
	}
	if strings.Contains(out.String(), "generate") {
		t.Errorf("--help shows the hidden --generate-* flags:\n%s", out.String())
	}
	out.Reset()
	Run(docsApp(&out, &errb, &ran), []string{"dane-test", "--generate-man"}, &errb)
	if strings.Contains(out.String(), "generate") {
		t.Errorf("the man page shows the hidden --generate-* flags:\n%s", out.String())
	}
}

// TestCompletionSyntax checks the bash script with bash -n (zsh is not
// installed on the test machines; its script is urfave/cli's own).
func TestCompletionSyntax(t *testing.T) {
	testenv.Require(t, "bash")
	script, err := Completion("danectl", "bash")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "danectl")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
}

// TestManPage: the page carries each command's description (a line that
// starts with a dot is escaped), every exit code of the README's table,
// the environment and files, and no logging flags per command.
func TestManPage(t *testing.T) {
	var out, errb bytes.Buffer
	ran := false
	if code := Run(docsApp(&out, &errb, &ran), []string{"dane-test", "--generate-man"}, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	man := out.String()
	for _, want := range []string{".SS \"dane\\-test tick\"", "tick runs what dane\\-reload runs.", "\\&.Exit codes: 0 ok.", ".B DANEHOOK_CONFIG", ".I /etc/danehook/danehook.toml", "\\fBdanehook.toml\\fR(5)"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q:\n%s", want, man)
		}
	}
	codes := []int{ExitOK, ExitMismatch, ExitUsage, ExitTSIG, ExitRefused, ExitNotAuth, ExitServer, ExitPending, ExitPostfix, ExitLocked, ExitSystem, ExitSIGINT, ExitSIGTERM}
	for _, c := range codes {
		if !strings.Contains(man, fmt.Sprintf(".TP\n.B %d\n", c)) {
			t.Errorf("EXIT STATUS lacks %d", c)
		}
	}
	cmds := man[strings.Index(man, ".SH COMMANDS"):strings.Index(man, ".SH LOGGING")]
	if strings.Contains(cmds, "log\\-format") || strings.Contains(cmds, "\\-\\-quiet") {
		t.Errorf("the logging flags are repeated per command:\n%s", cmds)
	}
}
