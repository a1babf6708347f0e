// Package pkgtest tests danehook's packages the way an operator meets them:
// it builds the .deb and .rpm for this machine's architecture with
// scripts/package.sh, checks them (lintian, rpm -qp), installs the .deb with
// dpkg, checks every installed file and mode, wires certbot in a temporary
// directory with the installed danectl and hook wrappers, upgrades, removes
// (state and configuration kept) and purges (everything gone).
//
// It changes this machine: it needs root and refuses to run where danehook
// is already installed or /etc/danehook or /var/lib/danehook exist. Outside
// CI a missing dpkg, or not being root, skips it; under CI=true that fails.
// Run it alone (scripts/test.sh does, after the other tests):
//
//	go test -count=1 ./scripts/pkgtest/
//
// With DANEHOOK_PKGTEST_E2E set to a go test -run pattern (for example
// TestClients/certbot), it also runs those scenarios of scripts/e2e with
// the installed binaries (DANEHOOK_BIN_DIR=/usr/bin,
// DANEHOOK_HOOKS_DIR=/usr/share/danehook/hooks) while the package is
// installed.
package pkgtest
