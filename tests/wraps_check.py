#!/usr/bin/env python3
"""Wrap check (meson test, suite 'wraps'): the dependency fallbacks in subprojects/.

    tests/wraps_check.py SOURCE_ROOT

Offline, in three parts:

1. Every dependency('NAME', ...) in the project's meson.build files (but the
   optional ones, `required : false` or a feature option, and Meson's built-in
   ones like threads) is
   provided by a wrap in subprojects/ ([provide]), and every option a call passes
   in default_options is declared in that wrap's packagefiles meson_options.txt.
2. Every subprojects/*.wrap parses (configparser, as Meson reads it) and is a
   [wrap-file] with directory, source_url (https), source_filename and a 64-hex
   source_hash; its patch_directory is subprojects/packagefiles/<dir>/ with a
   meson.build whose project() version is the one in `directory`, which assigns
   every [provide] variable and overrides every provided dependency. No
   patch_url/patch_filename: packaging comes from packagefiles/ only.
3. A real fallback build of gtest/gmock through our wrap and packagefiles, from
   Debian's googletest sources (/usr/src/googletest, package googletest): they are
   packed as the wrap's source archive into a scratch packagecache (the wrap's
   hash replaced by the archive's, nothing else changed), a one-test consumer
   project calls dependency('gtest', main : false) and dependency('gmock') like
   tests/meson.build, is configured with --wrap-mode=nodownload
   --force-fallback-for=gtest,gmock so Meson itself extracts the archive, overlays
   packagefiles/gtest and resolves [provide], then built and run.

Exit status: 0 all passed, 1 a check failed, 77 (skip) only when parts 1-2
passed but part 3 cannot run (no /usr/src/googletest, no meson or ninja).
Set WRAPS_CHECK_KEEP=1 to keep the scratch directory; GOOGLETEST_SRC overrides
/usr/src/googletest.
"""

import configparser
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

# Dependencies Meson resolves itself (never from a wrap).
BUILTIN_DEPS = {'threads', 'dl', 'openmp', 'appleframeworks', 'blocks', 'iconv', 'intl'}
SKIP = 77

failures = []


def fail(msg):
    failures.append(msg)
    print('FAIL: ' + msg)


def ok(msg):
    print('ok: ' + msg)


# --- meson.build scanning ---------------------------------------------------

def strip_comments(text):
    """Drop '#' comments outside string literals (Meson strings: '...', '''...''')."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("'''", i):
            j = text.find("'''", i + 3)
            j = n if j < 0 else j + 3
            out.append(text[i:j])
            i = j
        elif text[i] == "'":
            j = i + 1
            while j < n and text[j] != "'" and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text[i] == '#':
            j = text.find('\n', i)
            i = n if j < 0 else j
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


def call_args(text, start):
    """The argument text of the call whose '(' is at text[start]."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "'":
            j = i + 1
            while j < len(text) and text[j] != "'":
                j += 2 if text[j] == '\\' else 1
            i = j
        elif c in '([':
            depth += 1
        elif c in ')]':
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
        i += 1
    return text[start + 1:]


def meson_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        # Not ours (subprojects/), not sources (.git, build directories).
        dirnames[:] = [d for d in dirnames
                       if not (rel == '.' and d == 'subprojects') and not d.startswith('.')
                       and not os.path.exists(os.path.join(dirpath, d, 'meson-private'))]
        if 'meson.build' in filenames:
            yield os.path.join(dirpath, 'meson.build')


def dependency_calls(root):
    """(name, file, required, default_options) for each dependency() call."""
    calls = []
    for path in meson_files(root):
        with open(path, encoding='utf-8') as f:
            text = strip_comments(f.read())
        for m in re.finditer(r'(?<![\w.])dependency\s*\(', text):
            args = call_args(text, m.end() - 1)
            name = re.match(r"\s*'([^']*)'", args)
            rel = os.path.relpath(path, root)
            if not name:
                fail(f'{rel}: dependency() without a literal name: dependency({args.strip()[:60]})')
                continue
            # Optional: required : false, or a feature option (auto: used when found).
            required = not re.search(r"\brequired\s*:\s*(false\b|get_option\s*\()", args)
            opts = []
            dm = re.search(r'\bdefault_options\s*:\s*\[([^\]]*)\]', args)
            if dm:
                opts = [o.split('=', 1)[0] for o in re.findall(r"'([^']*)'", dm.group(1))]
            calls.append((name.group(1), rel, required, opts))
    return calls


# --- wraps ------------------------------------------------------------------

def read_wrap(path):
    cp = configparser.ConfigParser(interpolation=None)
    with open(path, encoding='utf-8') as f:
        cp.read_file(f)
    return cp


def check_wrap(subdir, wrap_file):
    """Validate one wrap; return {dependency name: wrap name}."""
    name = os.path.basename(wrap_file)[:-len('.wrap')]
    where = os.path.join('subprojects', os.path.basename(wrap_file))
    failed_before = len(failures)
    try:
        cp = read_wrap(wrap_file)
    except (configparser.Error, UnicodeDecodeError) as e:
        fail(f'{where} does not parse: {e}')
        return {}
    kinds = [s for s in cp.sections() if s.startswith('wrap-')]
    if kinds != ['wrap-file']:
        fail(f'{where}: expected exactly one [wrap-file] section (release tarball), found {kinds}')
        return {}
    w = cp['wrap-file']
    bad = 0
    for key in ('directory', 'source_url', 'source_filename', 'source_hash', 'patch_directory'):
        if not w.get(key, '').strip():
            fail(f'{where}: [wrap-file] lacks {key}')
            bad += 1
    for key in ('patch_url', 'patch_filename', 'patch_hash'):
        if key in w:
            fail(f'{where}: {key} is not allowed (our packaging lives in packagefiles/)')
            bad += 1
    if bad:
        return {}
    if not re.fullmatch(r'[0-9a-f]{64}', w['source_hash'].strip()):
        fail(f"{where}: source_hash is not 64 lowercase hex digits: {w['source_hash']!r}")
    if not w['source_url'].startswith('https://'):
        fail(f"{where}: source_url is not https: {w['source_url']}")
    pdir = os.path.join(subdir, 'packagefiles', w['patch_directory'].strip())
    build = os.path.join(pdir, 'meson.build')
    if not os.path.isfile(build):
        fail(f"{where}: patch_directory packagefiles/{w['patch_directory']}/meson.build does not exist")
        return {}
    with open(build, encoding='utf-8') as f:
        text = strip_comments(f.read())

    # project() version == the version in the source directory's name.
    proj = re.search(r'(?<![\w.])project\s*\(', text)
    pver = re.search(r"\bversion\s*:\s*'([^']*)'", call_args(text, proj.end() - 1)) if proj else None
    dver = re.search(r'(\d+(?:\.\d+)+)$', w['directory'].strip())
    if not pver:
        fail(f"{where}: packagefiles/{w['patch_directory']}/meson.build has no project() version")
    elif dver and dver.group(1) != pver.group(1):
        fail(f"{where}: directory {w['directory']} is version {dver.group(1)} but "
             f"packagefiles/{w['patch_directory']}/meson.build says {pver.group(1)}")

    provided = {}
    if not cp.has_section('provide') or not cp.items('provide'):
        fail(f'{where}: no [provide] section: dependency() would not fall back to it')
        return {}
    for key, value in cp.items('provide'):
        if key == 'program_names':
            continue
        if key == 'dependency_names':
            names = [n.strip() for n in value.split(',') if n.strip()]
        else:
            names = [key]
            if not re.search(r'^\s*' + re.escape(value.strip()) + r'\s*=', text, re.M):
                fail(f"{where}: [provide] {key} = {value} but packagefiles/"
                     f"{w['patch_directory']}/meson.build never assigns {value}")
        for n in names:
            if not re.search(r"meson\.override_dependency\s*\(\s*'" + re.escape(n) + "'", text):
                fail(f"{where}: packagefiles/{w['patch_directory']}/meson.build does not "
                     f"meson.override_dependency('{n}', ...)")
            provided[n] = name
    if len(failures) == failed_before:
        ok(f"{where}: {w['directory']} ({w['source_url']}), provides {', '.join(sorted(provided))}")
    return provided


def declared_options(subdir, wrap_name):
    w = read_wrap(os.path.join(subdir, wrap_name + '.wrap'))['wrap-file']
    path = os.path.join(subdir, 'packagefiles', w['patch_directory'].strip(), 'meson_options.txt')
    if not os.path.isfile(path):
        return set()
    with open(path, encoding='utf-8') as f:
        return set(re.findall(r"option\s*\(\s*'([^']+)'", f.read()))


# --- part 3: real gtest/gmock fallback build --------------------------------

CONSUMER_BUILD = """project('wraps_check_consumer', 'cpp', default_options : ['cpp_std=c++17'])
# The same calls as tests/meson.build.
gtest_dep = dependency('gtest', version : '>=1.10', main : false)
gmock_dep = dependency('gmock', version : '>=1.10')
exe = executable('one_test', 'one_test.cpp', dependencies : [gtest_dep, gmock_dep])
"""

CONSUMER_TEST = r"""#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

namespace {
struct Sink {
  virtual ~Sink() = default;
  virtual void put(int v) = 0;
};
struct MockSink : Sink {
  MOCK_METHOD(void, put, (int v), (override));
};
}  // namespace

TEST(WrapsCheck, GtestAndGmockFromTheFallback) {
  MockSink sink;
  EXPECT_CALL(sink, put(testing::Gt(1))).Times(2);
  sink.put(2);
  sink.put(3);
  EXPECT_THAT((std::vector<int>{1, 2, 3}), testing::ElementsAre(1, testing::Ge(2), 3));
}

int main(int argc, char** argv) {
  testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
"""


def run(cmd, **kw):
    print('$ ' + ' '.join(cmd), flush=True)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def gtest_fallback_build(subdir, provided):
    """Return True (passed), False (failed) or None (cannot run here)."""
    src = os.environ.get('GOOGLETEST_SRC', '/usr/src/googletest')
    if not os.path.isfile(os.path.join(src, 'googletest', 'src', 'gtest-all.cc')):
        print(f'SKIP part 3: no googletest sources at {src} (Debian package googletest)')
        return None
    meson, ninja = shutil.which('meson'), shutil.which('ninja') or shutil.which('samu')
    if not meson or not ninja:
        print('SKIP part 3: meson or ninja not on PATH')
        return None
    wrap_name = provided.get('gtest')
    if not wrap_name or provided.get('gmock') != wrap_name:
        fail('no single wrap provides both gtest and gmock')
        return False
    wrap = read_wrap(os.path.join(subdir, wrap_name + '.wrap'))
    w = wrap['wrap-file']
    directory = w['directory'].strip()
    pdir = w['patch_directory'].strip()

    m = re.search(r'GOOGLETEST_VERSION\s+([\d.]+)',
                  open(os.path.join(src, 'CMakeLists.txt'), encoding='utf-8').read())
    want = re.search(r'(\d+(?:\.\d+)+)$', directory)
    if m and want and m.group(1) != want.group(1):
        print(f'note: {src} is googletest {m.group(1)}, the wrap pins {want.group(1)}')

    keep = os.environ.get('WRAPS_CHECK_KEEP') == '1'
    tmp = tempfile.mkdtemp(prefix='payloadrun-wraps.')
    try:
        proj = os.path.join(tmp, 'consumer')
        sub = os.path.join(proj, 'subprojects')
        cache = os.path.join(sub, 'packagecache')
        os.makedirs(cache)
        # The source archive, laid out as the upstream tarball (top directory
        # = the wrap's `directory`), into the packagecache.
        archive = os.path.join(cache, w['source_filename'].strip())
        with tarfile.open(archive, 'w:gz') as tar:
            tar.add(src, arcname=directory,
                    filter=lambda ti: None if os.path.basename(ti.name) in ('build', '.git') else ti)
        with open(archive, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        w['source_hash'] = digest
        with open(os.path.join(sub, wrap_name + '.wrap'), 'w', encoding='utf-8') as f:
            wrap.write(f)
        shutil.copytree(os.path.join(subdir, 'packagefiles', pdir),
                        os.path.join(sub, 'packagefiles', pdir))
        with open(os.path.join(proj, 'meson.build'), 'w', encoding='utf-8') as f:
            f.write(CONSUMER_BUILD)
        with open(os.path.join(proj, 'one_test.cpp'), 'w', encoding='utf-8') as f:
            f.write(CONSUMER_TEST)

        build = os.path.join(tmp, 'build')
        env = {k: v for k, v in os.environ.items() if not k.startswith('MESON')}
        r = run([meson, 'setup', build, proj, '--wrap-mode=nodownload',
                 '--force-fallback-for=gtest,gmock', '-Dbuildtype=plain'], env=env)
        if r.returncode != 0:
            print(r.stdout)
            fail('meson setup of the gtest/gmock fallback consumer failed')
            return False
        # Meson itself extracted the archive and overlaid the packagefiles.
        extracted = os.path.join(sub, directory)
        if not re.search(r'Dependency gtest from subproject \S+ found: YES', r.stdout) or \
                not os.path.isfile(os.path.join(extracted, 'googletest', 'src', 'gtest-all.cc')) or \
                not os.path.isfile(os.path.join(extracted, 'meson.build')):
            print(r.stdout)
            fail('gtest was not resolved from the wrap fallback (archive from packagecache)')
            return False
        ok(f'meson resolved gtest and gmock from the {wrap_name} wrap '
           f'({directory} + packagefiles/{pdir})')
        r = run([ninja, '-C', build, 'one_test'], env=env)
        if r.returncode != 0:
            print(r.stdout[-6000:])
            fail('building the gtest/gmock fallback consumer failed')
            return False
        r = run([os.path.join(build, 'one_test')], env=env)
        print(r.stdout)
        if r.returncode != 0 or '[  PASSED  ] 1 test.' not in r.stdout:
            fail(f'the one-test binary built on the fallback exited {r.returncode}')
            return False
        ok('gtest/gmock fallback built from packagefiles and its one test passed')
        return True
    finally:
        if keep:
            print(f'scratch directory kept: {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    root = os.path.abspath(sys.argv[1])
    subdir = os.path.join(root, 'subprojects')
    start = time.monotonic()

    # Part 2 first: what the wraps provide.
    provided = {}
    wraps = sorted(f for f in os.listdir(subdir) if f.endswith('.wrap')) if os.path.isdir(subdir) else []
    if not wraps:
        fail('no subprojects/*.wrap')
    for f in wraps:
        for dep, wrap_name in check_wrap(subdir, os.path.join(subdir, f)).items():
            if dep in provided and provided[dep] != wrap_name:
                fail(f'{dep} is provided by both {provided[dep]}.wrap and {wrap_name}.wrap')
            provided[dep] = wrap_name

    # Part 1: every required dependency() has a wrap.
    for name, where, required, opts in dependency_calls(root):
        if name in BUILTIN_DEPS:
            continue
        if not required:
            print(f'note: {where}: optional dependency {name!r} (required : false or a feature option) needs no wrap')
            continue
        if name not in provided:
            fail(f"{where}: dependency('{name}') has no wrap in subprojects/ providing it")
            continue
        missing = [o for o in opts if o not in declared_options(subdir, provided[name])]
        if missing:
            fail(f"{where}: dependency('{name}') passes default_options {missing} that "
                 f'{provided[name]}.wrap\'s packagefiles do not declare (meson_options.txt)')
        else:
            ok(f"{where}: dependency('{name}') falls back to {provided[name]}.wrap"
               + (f" (options {', '.join(opts)} declared)" if opts else ''))

    if failures:
        print(f'{len(failures)} check(s) failed')
        return 1

    built = gtest_fallback_build(subdir, provided)
    print(f'({time.monotonic() - start:.1f} s)')
    if failures:
        print(f'{len(failures)} check(s) failed')
        return 1
    if built is None:
        return SKIP
    print('wraps check passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
