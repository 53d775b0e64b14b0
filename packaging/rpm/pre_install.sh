# %pre: the user must exist before files are given its group, and the
# sysusers file is not on disk yet, so it is fed on stdin (Fedora's
# %sysusers_create_compat does the same).
systemd-sysusers --replace=/usr/lib/sysusers.d/exim-pilot.conf - <<'SYSUSERS'
u exim-pilot - "Exim log indexer (exim-pilot)" /var/lib/exim-pilot
SYSUSERS
