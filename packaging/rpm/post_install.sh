# %post: the hand-written %systemd_post. $1 is 1 on install, 2+ on upgrade.
systemd-tmpfiles --create /usr/lib/tmpfiles.d/exim-pilot.conf >/dev/null 2>&1 || :
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset exim-pilot.service >/dev/null 2>&1 || :
fi
