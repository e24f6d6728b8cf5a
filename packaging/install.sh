#!/usr/bin/env bash
# Installs Lookout as a systemd service on Debian/Ubuntu.
#
#   cargo build --release -p lookout
#   sudo packaging/install.sh [BINARY]          # default target/release/lookout
#
# Lays out /usr/local/bin/lookout, /etc/systemd/system/lookout.service, /etc/lookout/lookout.toml
# (the example configuration, only if none is there: an existing one is never overwritten) and
# /var/lib/lookout (data, and lists/ for the category lists); creates the `lookout` system user;
# reloads systemd. It does not start the service: lists and the configuration come first.
#
# DESTDIR=/some/root lays the files out under that root only (no user, no systemctl): for
# building a package, and for the test that checks this script.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/lookout}
D=${DESTDIR:-}
if [ ! -x "$BIN" ]; then
  echo "install.sh: no Lookout binary at $BIN (build it: cargo build --release -p lookout)" >&2
  exit 2
fi
if [ -z "$D" ] && [ "$(id -u)" != "0" ]; then
  echo "install.sh: run as root (sudo), or set DESTDIR to lay the files out elsewhere" >&2
  exit 2
fi

install -D -m 0755 "$BIN" "$D/usr/local/bin/lookout"
install -D -m 0644 packaging/lookout.service "$D/etc/systemd/system/lookout.service"
install -d -m 0755 "$D/etc/lookout"
install -d -m 0750 "$D/var/lib/lookout" "$D/var/lib/lookout/lists"
config="$D/etc/lookout/lookout.toml"
if [ -e "$config" ]; then
  echo "kept the existing configuration $config"
else
  "$BIN" config example > "$config.new"
  chmod 0640 "$config.new"
  mv "$config.new" "$config"
  echo "wrote the example configuration to $config: edit it (networks, groups, lists)"
fi

if [ -z "$D" ]; then
  if ! id lookout >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/lookout --shell /usr/sbin/nologin lookout
  fi
  chown -R lookout:lookout /var/lib/lookout
  chgrp lookout "$config"
  systemctl daemon-reload
  cat <<MSG
Lookout is installed, not started. Next:
  1. put category lists under /var/lib/lookout/lists (e.g. UT1's folders) and edit $config
  2. lookout config check $config
  3. systemctl enable --now lookout; journalctl -u lookout -f
MSG
fi
