package postfix

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one postfix or postconf command when Instance.Timeout
// is zero. `postfix check` scans the queue, which takes a while on a big one.
const DefaultTimeout = 60 * time.Second

// Output limits: what a command prints and what is read back from the
// maillog are capped, keeping the end.
const (
	maxOutput   = 64 << 10 // bytes of command output kept
	maxLogRead  = 64 << 10 // bytes of appended maillog read
	maxLogLines = 12       // maillog lines quoted in an error
)

// CommandError is a postfix command that failed. Its message holds what the
// command printed and the lines Postfix appended to maillog_file while it
// ran, so that it names the real cause (Postfix commands without a terminal
// log only to syslog or maillog_file; see LAB-NOTES §3).
type CommandError struct {
	ConfigDir string   // the instance's -c directory; "" is the default (/etc/postfix)
	Args      []string // the command line, program first
	Err       error    // *exec.ExitError, a context error, or a start failure
	Output    string   // what the command printed on stdout and stderr, trimmed
	Maillog   string   // maillog_file of the instance, "" when unset
	Log       []string // maillog lines appended while the command ran, without timestamp and host
}

// Error returns `postfix -c DIR check: exit status 1: <output>; maillog
// FILE: <lines>`.
func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(strings.Join(e.Args, " "))
	if e.ConfigDir == "" {
		b.WriteString(" (default config directory)")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	out := outputLines(e.Output)
	if len(out) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(out, "; "))
	}
	log := newLogLines(e.Log, e.Output)
	if len(log) > 0 {
		fmt.Fprintf(&b, "; maillog %s: %s", e.Maillog, strings.Join(log, "; "))
	}
	if len(out) == 0 && len(log) == 0 {
		if e.Maillog == "" {
			b.WriteString(" (postfix printed nothing; with maillog_file unset its errors go to syslog only)")
		} else {
			fmt.Fprintf(&b, " (postfix printed nothing and logged nothing new to %s)", e.Maillog)
		}
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// text is everything the command said, for matching known messages.
func (e *CommandError) text() string {
	return e.Output + "\n" + strings.Join(e.Log, "\n")
}

// outputLines splits command output into non-empty trimmed lines.
func outputLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r", ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// newLogLines picks the maillog lines worth quoting: the diagnostics
// (fatal, panic, error, warning) if there are any, else the last few; lines
// whose message the command already printed are left out.
func newLogLines(log []string, output string) []string {
	var diag, all []string
	for _, l := range log {
		msg := l
		if i := strings.Index(l, "]: "); i >= 0 {
			msg = l[i+3:]
		}
		if msg != "" && strings.Contains(output, msg) {
			continue
		}
		all = append(all, l)
		if diagnostic.MatchString(msg) {
			diag = append(diag, l)
		}
	}
	if len(diag) > 0 {
		all = diag
	}
	if len(all) > maxLogLines {
		all = all[len(all)-maxLogLines:]
	}
	return all
}

// diagnostic matches the severity prefix of a Postfix log message.
var diagnostic = regexp.MustCompile(`^(fatal|panic|error|warning): `)

// timestampHost matches the "Nov 29 15:22:34 mail " prefix of a maillog_file
// line (Postfix writes "%b %e %T hostname").
var timestampHost = regexp.MustCompile(`^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)? \S+ `)

// parseMaillog splits maillog text into lines without the timestamp and host
// prefix; a partial first line (the read started mid-line) and empty lines
// are dropped.
func parseMaillog(b []byte, partialFirst bool) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxLogRead+1)
	first := true
	for sc.Scan() {
		l := sc.Text()
		if first && partialFirst {
			first = false
			continue
		}
		first = false
		l = strings.TrimSpace(timestampHost.ReplaceAllString(l, ""))
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// tailBuffer is an io.Writer that keeps the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// timeout is the bound of one command.
func (in *Instance) timeout() time.Duration {
	if in.Timeout > 0 {
		return in.Timeout
	}
	return DefaultTimeout
}

// postfixPath is the postfix program to run.
func (in *Instance) postfixPath() string {
	if in.Postfix != "" {
		return in.Postfix
	}
	return "postfix"
}

// postconfPath is Postconf, else postconf next to an explicit Postfix path,
// else "postconf" from PATH.
func (in *Instance) postconfPath() string {
	if in.Postconf != "" {
		return in.Postconf
	}
	if strings.ContainsRune(in.Postfix, filepath.Separator) {
		p := filepath.Join(filepath.Dir(in.Postfix), "postconf")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "postconf"
}

// configArgs is "-c DIR", or nothing for the default config directory.
func (in *Instance) configArgs() []string {
	if in.ConfigDir == "" {
		return nil
	}
	return []string{"-c", in.ConfigDir}
}

// postconf runs `postconf [-c DIR] args...` and returns its standard output.
// postconf prints its diagnostics on stderr whether or not that is a
// terminal; they are part of the returned *CommandError.
func (in *Instance) postconf(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout())
	defer cancel()
	argv := append(append([]string{in.postconfPath()}, in.configArgs()...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr tailBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timeout %s)", ctx.Err(), in.timeout())
		}
		return "", &CommandError{ConfigDir: in.ConfigDir, Args: argv, Err: err, Output: stderr.String()}
	}
	return stdout.String(), nil
}

// maillogFile returns the instance's maillog_file ("" when unset) and, when
// postconf itself failed, its error (whose output usually names a main.cf
// problem that the postfix command then fails on too).
//
// postconf reads master.cf too and fails on any error there; the value is
// then read from main.cf directly, when it holds no $parameter.
func (in *Instance) maillogFile(ctx context.Context) (string, error) {
	if in.maillogSet {
		return in.maillog, nil
	}
	out, err := in.postconf(ctx, "-x", "-h", "maillog_file")
	if err != nil {
		dir := in.ConfigDir
		if dir == "" {
			dir = "/etc/postfix"
		}
		if b, rerr := os.ReadFile(filepath.Join(dir, "main.cf")); rerr == nil {
			if v := mainCFValue(b, "maillog_file"); !strings.Contains(v, "$") {
				return v, err
			}
		}
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// mainCFValue returns the value main.cf assigns to name, as postconf(5)
// reads it: "name = value" lines, continued on lines that start with white
// space, whole-line comments starting with '#', the last assignment winning.
// Values are not expanded. It returns "" when name is not set.
func mainCFValue(data []byte, name string) string {
	// Join continuation lines into logical lines first.
	var logical []string
	for _, line := range strings.Split(strings.ReplaceAll(string(data), "\r", ""), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if len(logical) > 0 {
				logical[len(logical)-1] += " " + trimmed
			}
		default:
			logical = append(logical, trimmed)
		}
	}
	val := ""
	for _, l := range logical {
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == name {
			val = strings.TrimSpace(v)
		}
	}
	return val
}

// run runs `postfix [-c DIR] args...` with the instance's timeout, no shell,
// its stdout and stderr on a pseudo-terminal where available (so Postfix
// prints its errors there) and reads what it appended to maillog_file. A
// failure is a *CommandError.
func (in *Instance) run(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, in.timeout())
	defer cancel()

	maillog, confErr := in.maillogFile(ctx)
	var offset int64
	if maillog != "" {
		if fi, err := os.Stat(maillog); err == nil {
			offset = fi.Size()
		}
	}

	argv := append(append([]string{in.postfixPath()}, in.configArgs()...), args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = processGroup()
	cmd.Cancel = func() error { // called only after a successful Start
		killGroup(cmd.Process.Pid)
		return cmd.Process.Kill()
	}
	cmd.WaitDelay = 2 * time.Second
	out := &tailBuffer{max: maxOutput}

	var parent, child *os.File
	ptyErr := errors.New("no terminal wanted")
	if !in.noTerminal {
		parent, child, ptyErr = openTerminal()
	}
	var readDone chan struct{}
	if ptyErr == nil {
		cmd.Stdout, cmd.Stderr = child, child
		readDone = make(chan struct{})
		go func() {
			defer close(readDone)
			io.Copy(out, parent) // ends with EIO once every writer closed the terminal
		}()
	} else {
		cmd.Stdout, cmd.Stderr = out, out
	}
	err := cmd.Start()
	if child != nil {
		child.Close()
	}
	if err == nil {
		err = cmd.Wait()
	}
	if parent != nil {
		// A background child (postsuper after reload: postfix-script runs
		// `postsuper &` after signalling master) may keep the terminal open.
		// On success the output is not used: stop reading at once rather
		// than wait for it. On failure give it a moment, for the messages.
		wait := time.Second
		if err == nil {
			wait = 0
		}
		parent.SetReadDeadline(time.Now().Add(wait))
		<-readDone
		parent.Close()
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timeout %s)", ctx.Err(), in.timeout())
	}
	ce := &CommandError{ConfigDir: in.ConfigDir, Args: argv, Err: err, Output: out.String(), Maillog: maillog}
	if confErr != nil {
		var pe *CommandError
		if errors.As(confErr, &pe) {
			// postconf's complaint, unless the command printed it too.
			var extra []string
			for _, l := range outputLines(pe.Output) {
				_, msg, _ := strings.Cut(l, ": ")
				if !strings.Contains(ce.Output, msg) {
					extra = append(extra, l)
				}
			}
			if len(extra) > 0 {
				ce.Output = strings.TrimSpace(strings.Join(extra, "\n") + "\n" + ce.Output)
			}
		}
	}
	if maillog != "" {
		ce.Log = readLogSince(maillog, offset)
	}
	return ce
}

// readLogSince returns the lines appended to path after offset bytes (all of
// it when the file shrank: it was rotated or truncated), at most the last
// maxLogRead bytes.
func readLogSince(path string, offset int64) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	size := fi.Size()
	if size < offset {
		offset = 0
	}
	partial := false
	if size-offset > maxLogRead {
		offset, partial = size-maxLogRead, true
	}
	b := make([]byte, size-offset)
	n, _ := f.ReadAt(b, offset)
	return parseMaillog(b[:n], partial)
}
