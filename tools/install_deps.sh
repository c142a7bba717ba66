#!/usr/bin/env bash
# tools/install_deps.sh — installs what seekgrad needs from Debian packages, and nothing else.
# Idempotent and quiet when everything is present; a clear error when something is missing and we
# are not root. The core (autograd/ ops/ models/) needs only a C++20 compiler and CMake; the CLI,
# tests and plots need the libraries below.
set -euo pipefail

packages=(cmake g++ make doctest-dev libcli11-dev libyaml-cpp-dev libstb-dev libzstd-dev)
[ "${SEEKGRAD_WITH_GDB:-1}" = "1" ] && packages+=(gdb)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "seekgrad: installing missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "seekgrad: error: these packages are missing and this script is not running as root:" >&2
    echo "    sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null || true
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
echo "seekgrad: installed ${missing[*]}"
