#!/bin/sh
# danehook post-removal script, the same for both package formats:
#   .deb postrm:  $1 = remove | purge | upgrade | disappear | abort-install |
#                 abort-upgrade | failed-upgrade
#   .rpm %postun: $1 = 0 on removal, 1 on an upgrade
# Removal keeps /etc/danehook (configuration, TSIG keys, tokens) and
# /var/lib/danehook (state, staged keys): a reinstall continues where it
# stopped. Only a .deb purge deletes them, with the certbot hook links that
# 'danectl init certbot' made into the package's hooks directory.
set -e

if [ "$1" = purge ]; then
	rm -rf /var/lib/danehook /etc/danehook
	for phase in pre deploy post; do
		link=/etc/letsencrypt/renewal-hooks/$phase/danehook
		if [ -L "$link" ]; then
			case "$(readlink "$link")" in
			/usr/share/danehook/hooks/*) rm -f "$link" ;;
			esac
		fi
	done
fi

case "$1" in
remove | purge | 0 | 1)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
