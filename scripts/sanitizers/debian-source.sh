#!/usr/bin/env bash
# Unpacks the Debian source of an installed library, with Debian's patches applied.
#   scripts/sanitizers/debian-source.sh SOURCE_PACKAGE BINARY_PACKAGE DEST_DIR
# Takes the version from the installed BINARY_PACKAGE, so the source matches the
# library the process would otherwise load, down to the ABI. Adds a deb-src entry
# for Debian 12's archive the first time, and needs dpkg-dev.
set -euo pipefail
source_package=${1:?usage: debian-source.sh SOURCE_PACKAGE BINARY_PACKAGE DEST_DIR}
binary_package=${2:?usage: debian-source.sh SOURCE_PACKAGE BINARY_PACKAGE DEST_DIR}
dest=$(realpath -m "${3:?usage: debian-source.sh SOURCE_PACKAGE BINARY_PACKAGE DEST_DIR}")

# A binNMU (+bN) rebuilds the same source, which carries the version without it.
version=$(dpkg-query -W -f='${Version}' "$binary_package")
version=${version%+b[0-9]*}
src_list=/etc/apt/sources.list.d/headway-deb-src.sources
if [[ ! -e $src_list ]]; then
  cat >"$src_list" <<'SOURCES'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi
command -v dpkg-source >/dev/null || apt-get install -y --no-install-recommends dpkg-dev >&2
apt-get update -qq -o Dir::Etc::sourcelist="$src_list" -o Dir::Etc::sourceparts=- \
  -o APT::Get::List-Cleanup=0 >&2

download=$dest.download
rm -rf "$dest" "$download" && mkdir -p "$download"
(cd "$download" && apt-get source -qq --download-only "$source_package=$version" >&2 &&
  dpkg-source -x --no-check ./*.dsc "$dest" >&2)
rm -rf "$download"
