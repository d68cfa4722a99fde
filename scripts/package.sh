#!/bin/bash
# Builds the Debian package of ckptfs (cmake/Packaging.cmake) into DIR and
# prints its path:
#   scripts/package.sh DIR [BUILD_DIR]
# The build is RelWithDebInfo with Debian's hardening flags
# (dpkg-buildflags), of the two programs only (-DCKPT_TESTS=OFF), stripped
# in the package, in BUILD_DIR (default: a fresh temporary directory,
# removed afterwards).  Needs cmake, dpkg-dev (dpkg-shlibdeps) and the
# build dependencies: scripts/install-deps.sh installs them.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if (($# < 1 || $# > 2)); then
  echo "usage: $0 DIR [BUILD_DIR]" >&2
  exit 2
fi
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)
if (($# == 2)); then
  build=$2
else
  build=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-pkg.XXXXXX")
  trap 'rm -rf "$build"' EXIT
fi
for tool in cmake cpack dpkg-buildflags dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || {
    echo "$0: $tool not found (scripts/install-deps.sh installs it)" >&2
    exit 1
  }
done

# the flags Debian builds its packages with (stack protector, fortify,
# relro, bindnow); CMake reads CFLAGS and LDFLAGS at the first configure
export DEB_BUILD_MAINT_OPTIONS=hardening=+all
CFLAGS="$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS)"
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS LDFLAGS
# reproducible timestamps in the archive, from the last commit
if [ -z "${SOURCE_DATE_EPOCH:-}" ] &&
   epoch=$(git -C "$top" log -1 --format=%ct 2>/dev/null); then
  export SOURCE_DATE_EPOCH=$epoch
fi

cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCKPT_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
rm -rf "$build/cpack"
cpack --config "$build/CPackConfig.cmake" -B "$build/cpack" >/dev/null
shopt -s nullglob
debs=("$build"/cpack/*.deb)
if ((${#debs[@]} != 1)); then
  echo "$0: cpack made ${#debs[@]} .deb files, not one" >&2
  exit 1
fi
mv -f "${debs[0]}" "$out/"
echo "$out/$(basename "${debs[0]}")"
