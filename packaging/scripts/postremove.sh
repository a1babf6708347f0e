#!/bin/sh
# danehook post-removal script, the same for both package formats:
#   .deb postrm:  $1 = remove | purge | upgrade | disappear | abort-install |
#                 abort-upgrade | failed-upgrade
#   .rpm %postun: $1 = 0 on removal, 1 on an upgrade
# Removal keeps /etc/danehook (configuration, TSIG keys, tokens) and
# /var/lib/danehook (state, staged keys): a reinstall continues where it
# stopped. Only a .deb purge deletes them, with the certbot hook links that
# 'danectl init certbot' made into the package's hooks directory. Both
# remove danehook's hook entries from certbot's renewal configurations.
set -e

# certbot runs the hooks stored in renewal/*.conf (pre_hook, renew_hook,
# post_hook) at every renewal, as 'sh -c', whether the program exists or
# not: a stored danehook hook would fail every renewal with exit 127 once
# danehook is gone. On removal, delete the entries that are exactly one of
# danehook's hooks — the renewal-hooks/<phase>/danehook links of
# 'danectl init certbot' (which certbot also runs as directory hooks while
# they resolve, so nothing is lost on a reinstall) or a bare dane-prerenew,
# dane-deploy or dane-reload, optionally with DANEHOOK_CONFIG=FILE before
# it. A hook that also runs something else is left alone. Directory hook
# links that point at nothing are skipped by certbot (it runs only
# existing executable files). The certbot directories are /etc/letsencrypt
# and those 'danectl init certbot' recorded in /var/lib/danehook/certbot-dirs.
strip_certbot_hooks() {
	dirs=/etc/letsencrypt
	if [ -f /var/lib/danehook/certbot-dirs ]; then
		dirs="$dirs $(cat /var/lib/danehook/certbot-dirs)"
	fi
	re='^(pre_hook|renew_hook|post_hook)[[:space:]]*=[[:space:]]*(DANEHOOK_CONFIG=[^[:space:]]+[[:space:]]+)?([^[:space:]]*/renewal-hooks/(pre|deploy|post)/danehook|(/usr/bin/)?dane-(prerenew|deploy|reload))[[:space:]]*$'
	for dir in $dirs; do
		for conf in "$dir"/renewal/*.conf; do
			[ -f "$conf" ] || continue
			grep -Eq "$re" "$conf" || continue
			tmp="$conf.danehook-tmp"
			grep -Ev "$re" "$conf" >"$tmp" || true
			chmod --reference="$conf" "$tmp" 2>/dev/null || true
			mv -f "$tmp" "$conf"
			echo "danehook: removed danehook's hooks from $conf (certbot renewals keep working without danehook)"
		done
	done
}

case "$1" in
remove | purge | 0) strip_certbot_hooks ;;
esac

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
