#!/usr/bin/env bash
# build.sh OUT: builds the Debian package from a copy of the source tree in
# OUT/src (the committed files with the working tree's changes, untracked
# ones included unless ignored), so that dpkg-buildpackage neither cleans
# the developer's build/ nor writes beside the checkout: the .deb and its
# .buildinfo/.changes land in OUT/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-deb}
version=$(dpkg-parsechangelog -S Version)
src=$out/src/hpprouter-$version
rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude=./build --exclude='./build-*' --exclude=./.state -cf - . | tar -xf - -C "$src"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b)
mv "$out"/src/*.deb "$out"/src/*.buildinfo "$out"/src/*.changes "$out"/
ls "$out"/*.deb
