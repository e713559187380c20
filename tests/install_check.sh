#!/usr/bin/env bash
# Install test (suite 'install'): stage `meson install` into a temporary
# DESTDIR, check the installed tree, then build and run a consumer program
# against it using only what pkg-config reports for the staged payloadrun.pc
# (PKG_CONFIG_SYSROOT_DIR=DESTDIR; see step 5 for why not --define-prefix).
#
#   tests/install_check.sh BUILDDIR
#
# Registered in tests/meson.build; `meson test` has built everything before it
# runs, so the install uses --no-rebuild. Set PAYLOADRUN_KEEP_INSTALL=1 to keep
# the staging directory for inspection.
set -euo pipefail

builddir=$(cd "${1:?usage: install_check.sh BUILDDIR}" && pwd)
srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CXX=${CXX:-g++}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/payloadrun-install.XXXXXX")
if [[ "${PAYLOADRUN_KEEP_INSTALL:-0}" == 1 ]]; then
  echo "staging directory kept: $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
dest=$tmp/destdir

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# --- 1. install into the staging directory ---------------------------------
echo "== meson install -C $builddir --destdir $dest --no-rebuild"
meson install -C "$builddir" --destdir "$dest" --no-rebuild --quiet

# Install directories as configured (prefix absolute; the rest relative to
# it unless absolute), from meson's introspection rather than hard-coded; and
# b_sanitize, which a consumer of a sanitized library must be built with too.
bindir='' libdir='' includedir='' datadir='' b_sanitize=''
eval "$(meson introspect --buildoptions "$builddir" | python3 -c '
import json, os, shlex, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
prefix = opts["prefix"]
for d in ("bindir", "libdir", "includedir", "datadir"):
    print(d + "=" + shlex.quote(os.path.join(prefix, opts[d])))
print("b_sanitize=" + shlex.quote(opts.get("b_sanitize", "none")))
')"
staged() { echo "$dest$1"; }  # DESTDIR + absolute install path

# --- 2. every file meson says it installs is in the staged tree -----------
missing=$(meson introspect --installed "$builddir" | python3 -c '
import json, os, sys
dest = sys.argv[1]
installed = json.load(sys.stdin).values()
print("\n".join(p for p in installed if not os.path.lexists(dest + p)))
print(len(installed), file=sys.stderr)
' "$dest" 2>"$tmp/count")
if [[ -n "$missing" ]]; then
  fail "installed files missing from $dest:"$'\n'"$missing"
else
  pass "all $(cat "$tmp/count") files of 'meson introspect --installed' present"
fi

# --- 3. headers: the whole public include/payloadrun/ tree ----------------
hdr_dir=$(staged "$includedir")/payloadrun
n_hdr=0
for h in "$srcdir"/include/payloadrun/*.hpp; do
  n_hdr=$((n_hdr + 1))
  [[ -f "$hdr_dir/$(basename "$h")" ]] || fail "header $(basename "$h") not installed in $hdr_dir"
  cmp -s "$h" "$hdr_dir/$(basename "$h")" || fail "installed $(basename "$h") differs from the source"
done
((n_hdr > 0)) || fail "no headers found in $srcdir/include/payloadrun"
[[ -f "$hdr_dir/payloadrun.hpp" ]] && pass "$n_hdr headers in ${hdr_dir#"$dest"}"
# The public headers hold the public API only: no test hook.
if hooks=$(grep -nEi 'hook|exposed for tests|fault injection' "$hdr_dir"/*.hpp); then
  fail "test hooks in the public headers:"$'\n'"$hooks"
else
  pass "no test hook in the public headers"
fi
# The umbrella header includes every public header but the optional
# adapters (fmt.hpp, gtest.hpp: they need fmt / gmock).
for h in "$hdr_dir"/*.hpp; do
  b=$(basename "$h")
  case $b in payloadrun.hpp | fmt.hpp | gtest.hpp) continue ;; esac
  grep -q "^#include \"payloadrun/$b\"" "$hdr_dir/payloadrun.hpp" || fail "payloadrun.hpp does not include $b"
  # ... and each compiles on its own.
  echo "#include <payloadrun/$b>" | "$CXX" -std=c++20 -fsyntax-only -x c++ -I"$(staged "$includedir")" - ||
    fail "payloadrun/$b does not compile on its own"
done

# --- 4. the library: dev symlink, soname link, real file ------------------
lib_dir=$(staged "$libdir")
so=$lib_dir/libpayloadrun.so
if [[ -L "$so" || -f "$so" ]] && [[ -f "$(readlink -f "$so")" ]]; then
  soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
  if [[ -n "$soname" && -e "$lib_dir/$soname" ]]; then
    pass "library ${so#"$dest"} -> $(basename "$(readlink -f "$so")") (SONAME $soname)"
  else
    fail "library SONAME '${soname}' has no matching file in $lib_dir"
  fi
  # Hidden visibility: the public API is exported, internals are not.
  exported=$(nm -D --defined-only "$so" | c++filt)
  if grep -q 'payloadrun::Supervisor::Supervisor(' <<<"$exported"; then
    pass "payloadrun::Supervisor is exported"
  else
    fail "payloadrun::Supervisor constructor is not exported from $so"
  fi
  # Nothing of payloadrun::detail (internals) is exported, and no test hook.
  # (std::__detail instantiations and fmt::v9::detail imports are not
  # ours; members that take a detail type are hidden too.)
  leaked=$(nm -DC --defined-only "$so" | cut -d' ' -f3- | grep -E 'payloadrun::detail::|hook' || true)
  if [[ -z "$leaked" ]]; then
    pass "no payloadrun::detail symbol or test hook exported"
  else
    fail "internal symbols exported from $so:"$'\n'"$leaked"
  fi
else
  fail "library libpayloadrun.so not installed in $lib_dir"
fi

# --- 5. the pkg-config file (found, not assumed) ---------------------------
mapfile -t pcs < <(find "$dest" -name payloadrun.pc)
if ((${#pcs[@]} != 1)); then
  fail "expected exactly one payloadrun.pc under $dest, found ${#pcs[@]}: ${pcs[*]-}"
  echo "$failures check(s) failed" >&2
  exit 1
fi
pc=${pcs[0]}
[[ "$pc" == "$lib_dir/pkgconfig/payloadrun.pc" ]] ||
  echo "note: payloadrun.pc is at ${pc#"$dest"}, not under the libdir"
pass "pkg-config file ${pc#"$dest"}"

# Point pkg-config at the staged tree with PKG_CONFIG_SYSROOT_DIR=DESTDIR:
# pkgconf then prefixes the -I/-L paths (and path variables) of the .pc with
# the staging directory. `--define-prefix` does not work here: it derives the
# prefix by dropping exactly two components (lib/pkgconfig) from the .pc's
# directory, so with Debian's multiarch libdir (lib/x86_64-linux-gnu) it yields
# <DESTDIR>/usr/local/lib, and it also rewrites the prefix of the system .pc
# files pulled in through Requires (libuv -> /usr/lib/include).
PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
export PKG_CONFIG_SYSROOT_DIR=$dest
pkgconf() { pkg-config "$@"; }
pc_includedir=$(pkgconf --variable=includedir payloadrun)
if [[ "$pc_includedir" == "$(staged "$includedir")" ]]; then
  pass "pkg-config with PKG_CONFIG_SYSROOT_DIR resolves includedir to ${pc_includedir}"
else
  fail "pkg-config gives includedir '$pc_includedir', expected '$(staged "$includedir")'"
fi
[[ "$(pkgconf --modversion payloadrun)" == "$(meson introspect --projectinfo "$builddir" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" ]] ||
  fail "payloadrun.pc version differs from the project version"
# Every Requires/Requires.private must resolve (static link included).
pkgconf --print-errors --exists payloadrun || fail "pkg-config cannot resolve payloadrun"
pkgconf --print-errors --static --libs payloadrun >/dev/null ||
  fail "pkg-config --static --libs payloadrun fails (Requires.private unresolved)"
cflags=$(pkgconf --cflags payloadrun)
libs=$(pkgconf --libs payloadrun)
echo "   cflags: $cflags"
echo "   libs:   $libs"
[[ " $cflags " == *" -I$(staged "$includedir") "* ]] || fail "--cflags lacks -I$(staged "$includedir")"
[[ " $libs " == *" -L$lib_dir "* ]] || fail "--libs lacks -L$lib_dir"

# --- 6. the programs -------------------------------------------------------
bin_dir=$(staged "$bindir")
for prog in payloadrun payloadrun-drain; do
  if [[ -x "$bin_dir/$prog" ]]; then
    pass "program ${bin_dir#"$dest"}/$prog"
  else
    fail "program $prog not installed (executable) in $bin_dir"
  fi
done
for f in demo.json failures.json; do
  [[ -f "$(staged "$datadir")/payloadrun/demo/$f" ]] || fail "demo scenario $f not installed"
done
# payloadrun-drain without arguments prints its usage and exits non-zero;
# run it to prove the installed binary loads the installed library.
if LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin_dir/payloadrun-drain" \
  >"$tmp/drain.out" 2>&1; then
  fail "payloadrun-drain without arguments exited 0"
elif grep -qi 'error while loading shared libraries' "$tmp/drain.out"; then
  fail "installed payloadrun-drain does not load: $(cat "$tmp/drain.out")"
else
  pass "installed payloadrun-drain runs (usage error as expected)"
fi

# --- 7. a consumer built only from pkg-config's flags ---------------------
cat >"$tmp/consumer.cpp" <<'EOF'
#include <payloadrun/payloadrun.hpp>

#include <cstdio>

int main() {
  payloadrun::Supervisor supervisor;
  payloadrun::Completion c =
      supervisor.payload(payloadrun::Payload::binary_payload("true", "/bin/true")).run();
  if (c.metrics.exit_code != 0 || c.metrics.timed_out || !c.result.passed) {
    std::fprintf(stderr, "consumer: /bin/true gave exit code %d (timed out %d, passed %d)\n",
                 c.metrics.exit_code, int(c.metrics.timed_out), int(c.result.passed));
    return 1;
  }
  std::puts("ok");
  return 0;
}
EOF
# -rpath-link: with wrap fallbacks, libpayloadrun's own shared dependencies
# (libuv, fmt, spdlog) are staged next to it; let the linker find them there.
extra=("-Wl,-rpath-link,$lib_dir")
[[ "$b_sanitize" == none ]] || extra+=("-fsanitize=$b_sanitize")
echo "== $CXX -std=c++20 ${extra[*]} consumer.cpp $cflags $libs"
# shellcheck disable=SC2086  # word splitting of the pkg-config flags is intended
if ! "$CXX" -std=c++20 "${extra[@]}" -o "$tmp/consumer" "$tmp/consumer.cpp" $cflags $libs; then
  fail "consumer does not compile/link against the staged install"
else
  export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  resolved=$(ldd "$tmp/consumer" | awk '$1 ~ /^libpayloadrun\.so/ { print $3 }')
  [[ "$resolved" == "$lib_dir"/* ]] ||
    fail "consumer resolves libpayloadrun to '$resolved', not the staged $lib_dir"
  out=$("$tmp/consumer") && rc=0 || rc=$?
  if [[ $rc -eq 0 && "$out" == ok ]]; then
    pass "consumer built from pkg-config flags ran Supervisor on /bin/true: $out"
  else
    fail "consumer exited $rc with output '$out'"
  fi
fi

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "install check passed"
