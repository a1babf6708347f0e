package tlsa

import (
	"errors"
	"strings"
	"testing"
)

func TestOwner(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 4 labels of 63 plus dots = 255 bytes: too long; 3×63 + "com" = 195 fine.
	tooLong := strings.Join([]string{long63, long63, long63, long63}, ".")
	tests := []struct {
		port uint16
		host string
		want string // "" means an error is expected
	}{
		{25, "mail.example.com", "_25._tcp.mail.example.com."},
		{25, "mail.example.com.", "_25._tcp.mail.example.com."},
		{465, "MAIL.Example.COM", "_465._tcp.mail.example.com."},
		{587, "mx-1.example.com", "_587._tcp.mx-1.example.com."},
		{25, "xn--bcher-kva.example", "_25._tcp.xn--bcher-kva.example."},
		{25, long63 + ".example.com", "_25._tcp." + long63 + ".example.com."},
		{25, "localhost", "_25._tcp.localhost."},
		{25, "1mail.example.com", "_25._tcp.1mail.example.com."},
		{0, "mail.example.com", ""},
		{25, "", ""},
		{25, ".", ""},
		{25, "mail.example.com..", ""},
		{25, ".mail.example.com", ""},
		{25, "mail..example.com", ""},
		{25, "_25._tcp.mail.example.com", ""},
		{25, "_25._tcp.mail.example.com.", ""},
		{25, "_465._TCP.mail.example.com", ""},
		{25, "192.0.2.1", ""},
		{25, "192.0.2.1.", ""},
		{25, "2001:db8::1", ""},
		{25, "[2001:db8::1]", ""},
		{25, "::ffff:192.0.2.1", ""},
		{25, "1.2.3", ""},
		{25, strings.Repeat("a", 64) + ".example.com", ""},
		{25, tooLong, ""},
		{25, "mail_1.example.com", ""},
		{25, "mail example.com", ""},
		{25, "mail.exa*mple.com", ""},
		{25, "*.example.com", ""},
		{25, "-mail.example.com", ""},
		{25, "mail-.example.com", ""},
		{25, "bücher.example", ""},
		{25, "mail.example.com/25", ""},
	}
	for _, tt := range tests {
		got, err := Owner(tt.port, tt.host)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Owner(%d, %q) = %q, want an error", tt.port, tt.host, got)
			} else if !errors.Is(err, ErrOwner) {
				t.Errorf("Owner(%d, %q) error %v does not wrap ErrOwner", tt.port, tt.host, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Owner(%d, %q) = %q, %v; want %q", tt.port, tt.host, got, err, tt.want)
		}
	}
}

func TestOwnerNameLength(t *testing.T) {
	// 253 bytes is the limit for the host without trailing dot.
	l := strings.Repeat("a", 61)
	host253 := strings.Join([]string{l, l, l, l}, ".") + ".abc" // 4*61+3+4 = 251
	host253 += "de"                                             // 253
	if len(host253) != 253 {
		t.Fatalf("test setup: len = %d", len(host253))
	}
	if _, err := Owner(25, host253); err != nil {
		t.Errorf("Owner(253-byte host): %v", err)
	}
	if _, err := Owner(25, host253+"."); err != nil {
		t.Errorf("Owner(253-byte host with dot): %v", err)
	}
	if _, err := Owner(25, host253+"f"); err == nil {
		t.Errorf("Owner(254-byte host) succeeded, want an error")
	}
}

func TestParseOwner(t *testing.T) {
	tests := []struct {
		owner string
		port  uint16
		host  string
		ok    bool
	}{
		{"_25._tcp.mail.example.com.", 25, "mail.example.com", true},
		{"_25._tcp.mail.example.com", 25, "mail.example.com", true},
		{"_65535._TCP.Mail.Example.Com.", 65535, "mail.example.com", true},
		{"_0._tcp.mail.example.com.", 0, "", false},
		{"_025._tcp.mail.example.com.", 0, "", false},
		{"_65536._tcp.mail.example.com.", 0, "", false},
		{"_25._udp.mail.example.com.", 0, "", false},
		{"_smtp._tcp.mail.example.com.", 0, "", false},
		{"25._tcp.mail.example.com.", 0, "", false},
		{"_25._tcp.", 0, "", false},
		{"_25._tcp", 0, "", false},
		{"mail.example.com.", 0, "", false},
		{"_25._tcp._25._tcp.mail.example.com.", 0, "", false},
		{"_25._tcp.mail.example.com..", 0, "", false},
		{"_25._tcp.192.0.2.1.", 0, "", false},
		{"", 0, "", false},
	}
	for _, tt := range tests {
		port, host, err := ParseOwner(tt.owner)
		if !tt.ok {
			if err == nil {
				t.Errorf("ParseOwner(%q) = %d, %q; want an error", tt.owner, port, host)
			} else if !errors.Is(err, ErrOwner) {
				t.Errorf("ParseOwner(%q) error %v does not wrap ErrOwner", tt.owner, err)
			}
			continue
		}
		if err != nil || port != tt.port || host != tt.host {
			t.Errorf("ParseOwner(%q) = %d, %q, %v; want %d, %q", tt.owner, port, host, err, tt.port, tt.host)
			continue
		}
		back, err := Owner(port, host)
		if err != nil || !strings.EqualFold(back, strings.TrimSuffix(tt.owner, ".")+".") {
			t.Errorf("Owner(ParseOwner(%q)) = %q, %v", tt.owner, back, err)
		}
	}
}
