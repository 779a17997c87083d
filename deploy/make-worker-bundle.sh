#!/usr/bin/env bash
# Make the worker bundle from the Python of the image it runs in (Debian's python3), for
# machines that cannot download python-build-standalone (deploy/Dockerfile, BUNDLE_FROM=debian).
#
#   make-worker-bundle.sh DEST SRC     e.g. make-worker-bundle.sh /pach/python /tmp/src
#
# DEST/bin/python3 is the interpreter; DEST/lib holds the standard library
# (lib/pythonX.Y, with lib-dynload), this project and its dependencies (the site directory
# the interpreter's own site.py uses under DEST) and every shared library those need except glibc's own.
# The interpreter and the standard extension modules find DEST/lib through an RPATH relative
# to themselves ($ORIGIN), so the bundle runs from any directory, in any image with glibc at
# least as new as the build image's (Debian 12: glibc 2.36) and the same CPU architecture,
# with no Python of its own. Needs patchelf.
set -euo pipefail
DEST=$1 SRC=$2
PY=$(readlink -f "$(command -v python3)")
VER=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
STDLIB=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
mkdir -p "$DEST/bin" "$DEST/lib"
cp "$PY" "$DEST/bin/python$VER"
ln -sf "python$VER" "$DEST/bin/python3"
cp -a "$STDLIB" "$DEST/lib/python$VER"
rm -rf "$DEST/lib/python$VER/test" "$DEST/lib/python$VER/dist-packages"
# where this Python's own site.py looks under the bundle's prefix (Debian: .../dist-packages)
SITE=$(python3 -c 'import site, sys; print(site.getsitepackages([sys.argv[1]])[0])' "$DEST")
python3 -m pip install --no-cache-dir --no-compile --target "$SITE" "$SRC"

# glibc's own libraries come from the image the bundle runs in; everything else is copied
is_glibc() {
  case "$(basename "$1")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libutil.so.*|libresolv.so.*|ld-linux*|libanl.so.*|libnsl.so.*|libcrypt.so.*) return 0 ;;
  esac
  return 1
}
copy_deps() {  # copy the non-glibc shared libraries ELF file $1 needs into DEST/lib
  ldd "$1" 2>/dev/null | awk '/=> \// {print $3}' | while read -r lib; do
    is_glibc "$lib" && continue
    [ -e "$DEST/lib/$(basename "$lib")" ] || cp -L "$lib" "$DEST/lib/"
  done
}
copy_deps "$DEST/bin/python$VER"
for so in "$DEST/lib/python$VER/lib-dynload/"*.so; do copy_deps "$so"; done
# wheels' extension modules bring their own libraries (auditwheel) but may use the C++ runtime
find "$SITE" -name '*.so*' -type f | while read -r so; do copy_deps "$so"; done

# DT_RPATH (not RUNPATH) on the interpreter: it also applies to libraries dlopen()ed later
patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$DEST/bin/python$VER"
for so in "$DEST/lib/python$VER/lib-dynload/"*.so; do patchelf --force-rpath --set-rpath '$ORIGIN/../..' "$so"; done
for so in "$DEST/lib/"*.so*; do [ -f "$so" ] && patchelf --force-rpath --set-rpath '$ORIGIN' "$so"; done

"$DEST/bin/python3" -I -m compileall -q "$DEST/lib/python$VER" || true
# the bundle must import the worker with nothing but itself
env -i "$DEST/bin/python3" -I -c "import ssl, sqlite3, ctypes, pps.worker.runner, grpc, rocksdict; print('worker bundle ok:', __import__('sys').prefix)"
