#!/bin/sh
# danehook post-installation script, the same for both package formats:
#   .deb postinst: $1 = configure, $2 = the version configured before
#                  (empty on a first install); abort-* on error unwinding
#   .rpm %post:    $1 = 1 on a first install, 2 on an upgrade
# It changes no certbot or Postfix behaviour: nothing is linked into certbot,
# Postfix is not touched and danehook.timer stays disabled until the
# operator enables it. Upgrades keep the configuration and the state.
set -e

first=false
case "$1" in
configure) [ -n "$2" ] || first=true ;;
1) first=true ;;
2) ;;
*) exit 0 ;;
esac

# The state directory is in the package with mode 0700; keep it private even
# if someone loosened it (it holds staged private keys).
if [ -d /var/lib/danehook ]; then
	chmod 0700 /var/lib/danehook
fi

# Only where systemd runs (not in containers or chroots).
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi

if [ "$first" = true ]; then
	cat <<'MSG'
danehook: installed; it changes nothing until you set it up:
  1. edit /etc/danehook/danehook.toml, then check it:  danectl config check
  2. wire the ACME client:  danectl init certbot   (or: danectl init lego)
  3. the first issuance, as 'init certbot' prints it:  certbot certonly ... && dane-reload
  4. enable the hourly timer:  systemctl enable --now danehook.timer
  5. once 'danectl status' shows the switch safe, point Postfix at the chain:
     danectl init postfix   (prints the lines; they end in 'danectl tick')
See /usr/share/doc/danehook/README-packaging.md.
MSG
fi
exit 0
