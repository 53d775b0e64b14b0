# %postun: the hand-written %systemd_postun_with_restart. The database in
# /var/lib/exim-pilot is kept on erase: RPM has no purge, and it is data.
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -ge 1 ]; then
    systemctl try-restart exim-pilot.service >/dev/null 2>&1 || :
fi
