#!/usr/bin/env bash
# Install test (suite 'install'): stage `meson install` into a temporary
# DESTDIR, check the installed tree (no source or build path in any installed
# program or library; the installed demo runs from the staged tree), then
# build and run consumers against it: tests/cmake_consumer/*.cpp from what
# pkg-config reports for the staged payloadrun.pc and payloadrun-gtest.pc
# (PKG_CONFIG_SYSROOT_DIR=DESTDIR; see step 5 for why not --define-prefix),
# and the CMake project tests/cmake_consumer (find_package(payloadrun)).
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
prefix='' bindir='' libdir='' includedir='' datadir='' libexecdir='' b_sanitize=''
eval "$(meson introspect --buildoptions "$builddir" | python3 -c '
import json, os, shlex, sys
opts = {o["name"]: o["value"] for o in json.load(sys.stdin)}
prefix = opts["prefix"]
print("prefix=" + shlex.quote(prefix))
for d in ("bindir", "libdir", "includedir", "datadir", "libexecdir"):
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
# The public headers need no define of a dependency (-DSPDLOG_*,
# -DSIMDJSON_*): none may reach consumers, --static included.
if defines=$(pkgconf --cflags --static payloadrun | tr ' ' '\n' | grep -E '^-D'); then
  fail "payloadrun.pc hands consumers defines:"$'\n'"$defines"
else
  pass "pkg-config --cflags [--static] payloadrun has no -D"
fi

# --- 6. the programs -------------------------------------------------------
bin_dir=$(staged "$bindir")
for prog in payloadrun payloadrun-drain; do
  if [[ -x "$bin_dir/$prog" ]]; then
    pass "program ${bin_dir#"$dest"}/$prog"
  else
    fail "program $prog not installed (executable) in $bin_dir"
  fi
done
# The demo: scenarios in datadir, its ELF programs in libexecdir.
demo_data=$(staged "$datadir")/payloadrun/demo
demo_exec=$(staged "$libexecdir")/payloadrun/demo
for f in demo.json failures.json; do
  [[ -f "$demo_data/$f" ]] || fail "demo scenario $f not installed in ${demo_data#"$dest"}"
done
for f in fio_like schbench_like forker overrun failer; do
  [[ -x "$demo_exec/$f" ]] || fail "demo program $f not installed (executable) in ${demo_exec#"$dest"}"
done
is_elf() { [[ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" == '177ELF' ]]; }
n_elf=0
while IFS= read -r -d '' f; do
  is_elf "$f" || continue
  n_elf=$((n_elf + 1))
  case $f in "$(staged "$datadir")"/*) fail "ELF file ${f#"$dest"} installed in the datadir" ;; esac
  # No source or build directory path in what is installed (debug info,
  # __FILE__, compiled-in lookups).
  if leak=$(strings -a "$f" | grep -F -e "$srcdir" -e "$builddir" | head -n 3); then
    fail "${f#"$dest"} names the source or build directory:"$'\n'"$leak"
  fi
done < <(find "$dest" -type f -print0)
((n_elf >= 8)) && pass "$n_elf installed ELF files, none in the datadir, none naming $srcdir or $builddir"
((n_elf >= 8)) || fail "only $n_elf ELF files installed (the library, 2 programs, 5 demo payloads expected)"
# ... nor in any other installed file (.pc, CMake package, scenarios).
if named=$(grep -rlF -e "$srcdir" -e "$builddir" "$dest"); then
  fail "installed files name the source or build directory:"$'\n'"${named//"$dest"/}"
else
  pass "no installed file names the source or build directory"
fi
# The installed `payloadrun run` finds the installed demo relative to itself
# (no path is compiled in, see above) and passes it.
if LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin_dir/payloadrun" run \
  --json "$tmp/demo-report.json" >"$tmp/demo.out" 2>&1; then
  demo_file=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["scenario"]["file"])' \
    "$tmp/demo-report.json")
  if [[ "$demo_file" == "$demo_data/demo.json" ]]; then
    pass "installed payloadrun ran the installed demo ${demo_file#"$dest"} (exit 0)"
  else
    fail "installed payloadrun ran the demo scenario '$demo_file', not $demo_data/demo.json"
  fi
else
  fail "installed payloadrun run (the demo) failed:"$'\n'"$(tail -n 20 "$tmp/demo.out")"
fi
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

# --- 7. consumers built only from pkg-config's flags -----------------------
consumer_src=$srcdir/tests/cmake_consumer
# -rpath-link: with wrap fallbacks, libpayloadrun's own shared dependencies
# (libuv, fmt, spdlog) are staged next to it; let the linker find them there.
extra=("-Wl,-rpath-link,$lib_dir")
[[ "$b_sanitize" == none ]] || extra+=("-fsanitize=$b_sanitize")
export LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# build_and_run NAME PKG: NAME.cpp built with `pkg-config --cflags --libs PKG`,
# run; it must exit 0.
build_and_run() {
  local name=$1 flags
  flags=$(pkgconf --cflags --libs "$2")
  echo "== $CXX -std=c++20 ${extra[*]} $name.cpp $flags"
  # shellcheck disable=SC2086  # word splitting of the pkg-config flags is intended
  if ! "$CXX" -std=c++20 "${extra[@]}" -o "$tmp/$name" "$consumer_src/$name.cpp" $flags; then
    fail "$name does not compile/link against the staged install with $2.pc"
    return
  fi
  resolved=$(ldd "$tmp/$name" | awk '$1 ~ /^libpayloadrun\.so/ { print $3 }')
  [[ "$resolved" == "$lib_dir"/* ]] ||
    fail "$name resolves libpayloadrun to '$resolved', not the staged $lib_dir"
  if "$tmp/$name" >"$tmp/$name.out" 2>&1; then
    pass "$name built from $2.pc ran: $(tail -n 1 "$tmp/$name.out")"
  else
    fail "$name (from $2.pc) failed:"$'\n'"$(tail -n 20 "$tmp/$name.out")"
  fi
}
build_and_run consumer payloadrun
build_and_run gtest_consumer payloadrun-gtest

# --- 8. a CMake consumer: find_package(payloadrun) --------------------------
cmake_dir=$lib_dir/cmake/payloadrun
[[ -f "$cmake_dir/payloadrunConfig.cmake" ]] ||
  fail "CMake package file payloadrunConfig.cmake not installed in ${cmake_dir#"$dest"}"
if ! command -v cmake >/dev/null; then
  # meson writes the version file from CMake's templates, so not without it.
  echo "SKIP: the CMake consumer and payloadrunConfigVersion.cmake: cmake is not installed" \
    "(apt-get install cmake; .ci/run does)"
else
  [[ -f "$cmake_dir/payloadrunConfigVersion.cmake" ]] ||
    fail "CMake package file payloadrunConfigVersion.cmake not installed in ${cmake_dir#"$dest"}"
  cm_flags=("-DCMAKE_EXE_LINKER_FLAGS=${extra[*]}")
  [[ "$b_sanitize" == none ]] || cm_flags+=("-DCMAKE_CXX_FLAGS=-fsanitize=$b_sanitize")
  cmake_prefix=$(staged "$prefix")  # the CMAKE_PREFIX_PATH a user gives: the install prefix
  if cmake -S "$consumer_src" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$cmake_prefix" \
      -DCMAKE_CXX_COMPILER="$(command -v "$CXX")" "${cm_flags[@]}" >"$tmp/cmake.out" 2>&1 &&
    cmake --build "$tmp/cmake-build" >>"$tmp/cmake.out" 2>&1; then
    found_dir=$(sed -n 's/^payloadrun_DIR:PATH=//p' "$tmp/cmake-build/CMakeCache.txt")
    [[ "$found_dir" == "$cmake_dir" ]] || fail "CMake found payloadrun in '$found_dir', not the staged $cmake_dir"
    for prog in consumer gtest_consumer; do
      if "$tmp/cmake-build/$prog" >"$tmp/cmake-$prog.out" 2>&1; then
        pass "CMake-built $prog (payloadrun::$([[ $prog == consumer ]] && echo payloadrun || echo gtest)) ran"
      else
        fail "CMake-built $prog failed:"$'\n'"$(tail -n 20 "$tmp/cmake-$prog.out")"
      fi
    done
  else
    fail "the CMake consumer does not configure/build:"$'\n'"$(tail -n 30 "$tmp/cmake.out")"
  fi
  # The version file: 0.x accepts only the same minor version.
  if cmake -S "$consumer_src" -B "$tmp/cmake-build-v" -DCMAKE_PREFIX_PATH="$cmake_prefix" \
      -DPAYLOADRUN_VERSION_WANTED=0.99 >"$tmp/cmake-v.out" 2>&1; then
    fail "find_package(payloadrun 0.99) accepted version $(pkgconf --modversion payloadrun)"
  elif grep -q 'considered but not accepted' "$tmp/cmake-v.out" &&
    grep -qF "payloadrunConfig.cmake, version: $(pkgconf --modversion payloadrun)" "$tmp/cmake-v.out"; then
    pass "find_package(payloadrun 0.99) refuses version $(pkgconf --modversion payloadrun) (payloadrunConfigVersion.cmake)"
  else
    fail "find_package(payloadrun 0.99) failed for another reason:"$'\n'"$(tail -n 20 "$tmp/cmake-v.out")"
  fi
fi

if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "install check passed"
