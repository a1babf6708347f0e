package postfix_test

import (
	"crypto/x509"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/danehook/danehook/pkg/postfix"
	"github.com/danehook/danehook/pkg/tlsa"
)

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\n", nil},
		{"/etc/postfix/ecdsa.pem\n", []string{"/etc/postfix/ecdsa.pem"}},
		{"/a.pem, /b.pem", []string{"/a.pem", "/b.pem"}},
		{"/a.pem,/b.pem", []string{"/a.pem", "/b.pem"}},
		{"  /a.pem \t /b.pem ,, /c.pem\n", []string{"/a.pem", "/b.pem", "/c.pem"}},
	}
	for _, tt := range tests {
		if got := postfix.SplitList(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitList(%q) got %q want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSplitList(f *testing.F) {
	for _, s := range []string{"", "/a.pem, /b.pem", " ,\t\n", "a,,b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range postfix.SplitList(s) {
			if e == "" || strings.ContainsAny(e, ", \t\r\n") {
				t.Fatalf("SplitList(%q) element %q is empty or holds a separator", s, e)
			}
		}
	})
}

func TestParseMaillog(t *testing.T) {
	log := "Nov 29 15:22:34 mail pfx/postfix-script[13454]: fatal: cannot execute /usr/sbin/postconf!\n" +
		"Nov  9 05:02:03 mail.example.test pfx/master[1]: reload -- version 3.7.11\n" +
		"\n" +
		"not a syslog line\n"
	want := []string{
		"pfx/postfix-script[13454]: fatal: cannot execute /usr/sbin/postconf!",
		"pfx/master[1]: reload -- version 3.7.11",
		"not a syslog line",
	}
	if got := postfix.ParseMaillog([]byte(log), false); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMaillog got %q want %q", got, want)
	}
	if got := postfix.ParseMaillog([]byte("ail pfx/x[1]: partial\n"+log), true); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseMaillog(partial first line) got %q want %q", got, want)
	}
}

func FuzzParseMaillog(f *testing.F) {
	f.Add([]byte("Nov 29 15:22:34 mail pfx/postfix-script[1]: fatal: x\n"), false)
	f.Add([]byte("partial\nDec  1 00:00:00 h p[2]: warning: y\n"), true)
	f.Add([]byte("\n\n\r\n"), false)
	f.Fuzz(func(t *testing.T, b []byte, partial bool) {
		for _, l := range postfix.ParseMaillog(b, partial) {
			if l == "" || strings.Contains(l, "\n") {
				t.Fatalf("ParseMaillog line %q is empty or holds a newline", l)
			}
		}
	})
}

func TestNewLogLinesPrefersDiagnostics(t *testing.T) {
	log := []string{
		"p/master[1]: daemon started",
		"p/postfix-script[2]: fatal: cannot execute /usr/sbin/postconf!",
		"p/postsuper[3]: warning: already printed",
	}
	got := postfix.NewLogLines(log, "postsuper: warning: already printed\n")
	want := []string{"p/postfix-script[2]: fatal: cannot execute /usr/sbin/postconf!"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NewLogLines got %q want %q", got, want)
	}
	if got := postfix.NewLogLines(log[:1], ""); !reflect.DeepEqual(got, log[:1]) {
		t.Errorf("NewLogLines without diagnostics got %q want %q", got, log[:1])
	}
}

func TestCommandErrorMessage(t *testing.T) {
	err := &postfix.CommandError{
		ConfigDir: "/lab/etc",
		Args:      []string{"postfix", "-c", "/lab/etc", "check"},
		Err:       errors.New("exit status 1"),
		Output:    "/usr/sbin/postconf: fatal: file /lab/etc/master.cf: line 26: bad field count\r\n",
		Maillog:   "/lab/maillog",
		Log:       []string{"p/postfix-script[9]: fatal: cannot execute /usr/sbin/postconf!"},
	}
	want := "postfix -c /lab/etc check: exit status 1: /usr/sbin/postconf: fatal: file /lab/etc/master.cf: line 26: bad field count; " +
		"maillog /lab/maillog: p/postfix-script[9]: fatal: cannot execute /usr/sbin/postconf!"
	if got := err.Error(); got != want {
		t.Errorf("Error()\ngot  %q\nwant %q", got, want)
	}
	silent := &postfix.CommandError{Args: []string{"postfix", "reload"}, Err: errors.New("exit status 1")}
	if got, want := silent.Error(), "postfix reload (default config directory): exit status 1 (postfix printed nothing; with maillog_file unset its errors go to syslog only)"; got != want {
		t.Errorf("Error()\ngot  %q\nwant %q", got, want)
	}
}

func TestNotRunningError(t *testing.T) {
	tests := []struct {
		dir, msg, hint string
	}{
		{"", "postfix reload: postfix is not running", "postfix start"},
		{"/lab/etc", "postfix -c /lab/etc reload: postfix is not running", "postfix -c /lab/etc start"},
	}
	for _, tt := range tests {
		err := error(&postfix.NotRunningError{ConfigDir: tt.dir})
		if !errors.Is(err, postfix.ErrNotRunning) {
			t.Errorf("errors.Is(%v, ErrNotRunning) got false want true", err)
		}
		if got := err.Error(); got != tt.msg {
			t.Errorf("Error() got %q want %q", got, tt.msg)
		}
		if got := err.(interface{ Hint() string }).Hint(); got != tt.hint {
			t.Errorf("Hint() got %q want %q", got, tt.hint)
		}
	}
}

func TestHasKeyword(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"mail.example.test\nPIPELINING\nSTARTTLS\n8BITMIME", true},
		{"mail.example.test\nstarttls", true},
		{"mail.example.test\nSIZE 10240000\nSTARTTLSX", false},
		{"STARTTLS greets you", false}, // the greeting line is not a keyword
		{"", false},
	}
	for _, tt := range tests {
		if got := postfix.HasKeyword(tt.msg, "STARTTLS"); got != tt.want {
			t.Errorf("HasKeyword(%q) got %v want %v", tt.msg, got, tt.want)
		}
	}
}

func FuzzHasKeyword(f *testing.F) {
	f.Add("mail.example.test\nSTARTTLS")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		got := postfix.HasKeyword(msg, "STARTTLS")
		if got && !strings.Contains(strings.ToUpper(msg), "STARTTLS") {
			t.Fatalf("HasKeyword(%q) true without the keyword", msg)
		}
	})
}

func TestNameMatches(t *testing.T) {
	tests := []struct {
		name, host string
		want       bool
	}{
		{"mail.example.test", "mail.example.test", true},
		{"*.example.test", "mail.example.test", true},
		{"*.example.test", "a.mail.example.test", false}, // one label only
		{"*.example.test", "example.test", false},
		{"m*.example.test", "mail.example.test", false}, // partial wildcards are not supported
		{"*.*.test", "mail.example.test", false},
		{"*", "test", false},
		{"", "", false},
		{"other.example.test", "mail.example.test", false},
	}
	for _, tt := range tests {
		if got := postfix.NameMatches(tt.name, tt.host); got != tt.want {
			t.Errorf("NameMatches(%q, %q) got %v want %v", tt.name, tt.host, got, tt.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		desc  string
		names []string
		cn    string
		host  string
		ok    bool
	}{
		{"dNSName", []string{"mx.example.test", "mail.example.test"}, "mx.example.test", "mail.example.test", true},
		{"case and trailing dot", []string{"Mail.Example.Test"}, "x", "mail.example.test.", true},
		{"wildcard", []string{"*.example.test"}, "", "mail.example.test", true},
		{"CN ignored when dNSNames exist", []string{"mx.example.test"}, "mail.example.test", "mail.example.test", false},
		{"CN when no dNSName", []string{}, "mail.example.test", "mail.example.test", true},
		{"wrong name", []string{"mx.example.test"}, "", "mail.example.test", false},
	}
	for _, tt := range tests {
		leaf := newPKI(t, pkiOptions{leafNames: tt.names, leafCN: tt.cn}).leaf
		err := postfix.CheckName(leaf, tt.host)
		if (err == nil) != tt.ok {
			t.Errorf("%s: CheckName got %v want ok=%v", tt.desc, err, tt.ok)
		}
	}
}

func TestEvaluate(t *testing.T) {
	now := time.Now()
	good := newPKI(t, pkiOptions{})
	other := newPKI(t, pkiOptions{})
	expiredLeaf := newPKI(t, pkiOptions{leafNotAfter: now.Add(-time.Minute)})
	expiredInter := newPKI(t, pkiOptions{interNotBefore: now.Add(-48 * time.Hour), interNotAfter: now.Add(-time.Hour)})
	wrongName := newPKI(t, pkiOptions{leafNames: []string{"mx.example.test"}})

	type match struct{ index, depth int }
	tests := []struct {
		desc     string
		chain    []*x509.Certificate
		host     string
		rrset    []tlsa.Record
		matches  []match
		rejected []string // a substring of each rejection reason, in order
	}{
		{"3 1 1 leaf", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.leaf, 3, 1, 1)}, []match{{0, 0}}, nil},
		{"3 1 1 ignores names", []*x509.Certificate{good.leaf}, "other.example.test",
			[]tlsa.Record{record(t, good.leaf, 3, 1, 1)}, []match{{0, 0}}, nil},
		{"3 0 1 ignores dates", []*x509.Certificate{expiredLeaf.leaf}, "mail.example.test",
			[]tlsa.Record{record(t, expiredLeaf.leaf, 3, 0, 1)}, []match{{0, 0}}, nil},
		{"3 1 1 of another key", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, other.leaf, 3, 1, 1)}, nil, nil},
		{"2 1 1 intermediate", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, other.leaf, 3, 1, 1), record(t, good.inter, 2, 1, 1)}, []match{{1, 1}}, nil},
		{"2 0 2 intermediate", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.inter, 2, 0, 2)}, []match{{0, 1}}, nil},
		{"2 1 1 root sent", []*x509.Certificate{good.leaf, good.inter, good.root}, "mail.example.test",
			[]tlsa.Record{record(t, good.root, 2, 1, 1)}, []match{{0, 2}}, nil},
		{"2 1 1 root not sent", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.root, 2, 1, 1)}, nil, nil},
		{"2 1 1 intermediate, leaf lacks host", []*x509.Certificate{wrongName.leaf, wrongName.inter}, "mail.example.test",
			[]tlsa.Record{record(t, wrongName.inter, 2, 1, 1)}, nil, []string{"RFC 7672 §3.2.3"}},
		{"2 1 1 intermediate, leaf expired", []*x509.Certificate{expiredLeaf.leaf, expiredLeaf.inter}, "mail.example.test",
			[]tlsa.Record{record(t, expiredLeaf.inter, 2, 1, 1)}, nil, []string{"does not validate"}},
		{"2 1 1 expired intermediate: anchor dates are ignored", []*x509.Certificate{expiredInter.leaf, expiredInter.inter}, "mail.example.test",
			[]tlsa.Record{record(t, expiredInter.inter, 2, 1, 1)}, []match{{0, 1}}, nil},
		{"2 1 1 root, intermediate expired", []*x509.Certificate{expiredInter.leaf, expiredInter.inter, expiredInter.root}, "mail.example.test",
			[]tlsa.Record{record(t, expiredInter.root, 2, 1, 1)}, nil, []string{"does not validate"}},
		{"2 1 1 intermediate of another chain", []*x509.Certificate{good.leaf, other.inter}, "mail.example.test",
			[]tlsa.Record{record(t, other.inter, 2, 1, 1)}, nil, []string{"does not chain"}},
		{"2 1 1 leaf", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.leaf, 2, 1, 1)}, nil, []string{"not a trust anchor match"}},
		{"3 1 1 intermediate", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.inter, 3, 1, 1)}, nil, []string{"leaf only"}},
		{"1 1 1 leaf is unusable", []*x509.Certificate{good.leaf, good.inter}, "mail.example.test",
			[]tlsa.Record{record(t, good.leaf, 1, 1, 1)}, nil, []string{"unusable for SMTP"}},
		{"empty RRset", []*x509.Certificate{good.leaf}, "mail.example.test", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			v := postfix.Evaluate(tt.chain, tt.host, tt.rrset, now)
			var got []match
			for _, m := range v.Matches {
				got = append(got, match{m.Index, m.Depth})
			}
			if !reflect.DeepEqual(got, tt.matches) {
				t.Errorf("matches (index, depth) got %v want %v", got, tt.matches)
			}
			if v.OK() != (len(tt.matches) > 0) {
				t.Errorf("OK() got %v want %v", v.OK(), len(tt.matches) > 0)
			}
			if len(v.Rejected) != len(tt.rejected) {
				t.Fatalf("rejected got %v want %d reasons %q", v.Rejected, len(tt.rejected), tt.rejected)
			}
			for i, r := range v.Rejected {
				if !strings.Contains(r.Reason, tt.rejected[i]) {
					t.Errorf("rejection %d reason got %q want it to contain %q", i, r.Reason, tt.rejected[i])
				}
			}
		})
	}
}

func TestMainCFValue(t *testing.T) {
	tests := []struct {
		desc, in, want string
	}{
		{"unset", "myhostname = x\n", ""},
		{"simple", "maillog_file = /var/log/postfix.log\n", "/var/log/postfix.log"},
		{"last wins", "maillog_file = /a\n# maillog_file = /c\nmaillog_file = /b\n", "/b"},
		{"reset to empty", "maillog_file = /a\nmaillog_file =\n", ""},
		{"continuation", "maillog_file =\n  /a/b\nother = 1\n", "/a/b"},
		{"no spaces, CRLF", "maillog_file=/a\r\n", "/a"},
		{"similar name", "maillog_file_prefixes = /var\n", ""},
	}
	for _, tt := range tests {
		if got := postfix.MainCFValue([]byte(tt.in), "maillog_file"); got != tt.want {
			t.Errorf("%s: MainCFValue got %q want %q", tt.desc, got, tt.want)
		}
	}
}

func FuzzMainCFValue(f *testing.F) {
	f.Add([]byte("maillog_file = /a\n  /b\n# c\n"))
	f.Add([]byte("\n\t\n= =\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := postfix.MainCFValue(b, "maillog_file")
		if strings.ContainsAny(v, "\n") || strings.TrimSpace(v) != v {
			t.Fatalf("MainCFValue(%q) got %q, with a newline or untrimmed", b, v)
		}
	})
}

func TestNoMatchErrorMessage(t *testing.T) {
	p := newPKI(t, pkiOptions{})
	other := newPKI(t, pkiOptions{})
	rrset := []tlsa.Record{record(t, other.leaf, 3, 1, 1), record(t, p.leaf, 2, 1, 1)}
	v := postfix.Evaluate([]*x509.Certificate{p.leaf, p.inter}, "mail.example.test", rrset, time.Now())
	v.Endpoint = "127.0.0.1:2525"
	err := error(v.NoMatch())
	if !errors.Is(err, postfix.ErrNoMatch) {
		t.Fatalf("errors.Is(%v, ErrNoMatch) got false want true", err)
	}
	msg := err.Error()
	for _, want := range []string{"127.0.0.1:2525", `"mail.example.test"`, spki(p.leaf), rrset[0].String(), rrset[1].String(), "depth 0 but does not count"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
}

func TestCheckNeedsPostfixBinary(t *testing.T) {
	in := postfix.Instance{Postfix: "/nonexistent/postfix", Postconf: "/nonexistent/postconf", ConfigDir: "/lab/etc"}
	err := in.Check(t.Context())
	var ce *postfix.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Check got %v want a *CommandError", err)
	}
	if !errors.Is(err, exec.ErrNotFound) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Check got %v want it to name the missing program", err)
	}
	if !strings.Contains(err.Error(), "/lab/etc") {
		t.Errorf("Check error %q does not name the config directory", err)
	}
}
