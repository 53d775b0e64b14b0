# %preun: the hand-written %systemd_preun. $1 is 0 on erase, 1+ on upgrade.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now exim-pilot.service >/dev/null 2>&1 || :
fi
