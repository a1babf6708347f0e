package lego

import "testing"

func TestFilesOf(t *testing.T) {
	tests := []struct {
		path, name string
		want       Files
	}{
		{"/var/lib/lego", "mail.example.com", Files{
			"/var/lib/lego/certificates/mail.example.com.crt",
			"/var/lib/lego/certificates/mail.example.com.key",
			"/var/lib/lego/certificates/mail.example.com.issuer.crt"}},
		{".lego", "*.example.com", Files{
			".lego/certificates/_.example.com.crt",
			".lego/certificates/_.example.com.key",
			".lego/certificates/_.example.com.issuer.crt"}},
		{"/l", "mail:2", Files{"/l/certificates/mail-2.crt", "/l/certificates/mail-2.key", "/l/certificates/mail-2.issuer.crt"}},
	}
	for _, tt := range tests {
		if got := FilesOf(tt.path, tt.name); got != tt.want {
			t.Errorf("FilesOf(%q, %q) = %+v, want %+v", tt.path, tt.name, got, tt.want)
		}
		if got := CertName(tt.want.Cert); got != SanitizedName(tt.name) {
			t.Errorf("CertName(%q) = %q, want %q", tt.want.Cert, got, SanitizedName(tt.name))
		}
	}
}

func TestCertName(t *testing.T) {
	for in, want := range map[string]string{
		"/l/certificates/mail.crt":        "mail",
		"mail.example.com.crt":            "mail.example.com",
		"/l/certificates/mail.issuer.crt": "",
		"/l/certificates/mail.key":        "",
		"/l/certificates/mail.pem":        "",
		"":                                "",
	} {
		if got := CertName(in); got != want {
			t.Errorf("CertName(%q) = %q, want %q", in, got, want)
		}
	}
}
