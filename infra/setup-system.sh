#!/usr/bin/env bash
# Installs the Debian packages sipscope needs (peers used by tests and the demo, Java, Maven).
# Run as root on Debian/Ubuntu: installs what is missing. As another user: lists what is missing.
set -euo pipefail
PKGS=(tshark sip-tester kamailio sipvicious sngrep maven default-jdk-headless unzip chromium chromium-driver)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-system: all Debian packages present"; exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system: missing Debian packages (install them as root): ${missing[*]}" >&2
  exit 0
fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/sipscope-apt.log 2>&1; then
  apt-get update -q >>/tmp/sipscope-apt.log 2>&1
  apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/sipscope-apt.log 2>&1 \
    || { echo "setup-system: apt-get install failed (read /tmp/sipscope-apt.log)" >&2; exit 1; }
fi
# kamailio's Debian service is not ours: tests start their own instance on other ports
systemctl disable --now kamailio >/dev/null 2>&1 || true
echo "setup-system: done"
