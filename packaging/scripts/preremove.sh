#!/bin/sh
# danehook pre-removal script, the same for both package formats:
#   .deb prerm:  $1 = remove | upgrade | deconfigure | failed-upgrade
#   .rpm %preun: $1 = 0 on removal, 1 on an upgrade
# On removal it stops and disables danehook.timer; upgrades leave it alone.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if command -v systemctl >/dev/null 2>&1; then
	if [ -d /run/systemd/system ]; then
		systemctl stop danehook.timer danehook.service >/dev/null 2>&1 || true
	fi
	# Works without a running systemd too: it only removes the symlinks.
	systemctl disable danehook.timer >/dev/null 2>&1 || true
fi
exit 0
