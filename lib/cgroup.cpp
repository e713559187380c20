// cgroup v2 support: see detail/cgroup.hpp.
#include "detail/errno_text.hpp"
#include "detail/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "detail/log.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun::detail {
namespace {

constexpr std::size_t kMaxFileBytes = 16u * 1024u * 1024u;  // cgroup.procs of a busy cgroup
constexpr int kMaxKillRounds = 64;
constexpr int kMaxDepth = 64;
constexpr int kMaxUniqueAttempts = 1000;

const char* permission_hint(int e) {
  return e == EACCES || e == EPERM ? "; run as root or use a cgroup delegated to this user" : "";
}

template <class... A>
[[noreturn]] void fail(int e, fmt::format_string<A...> f, A&&... a) {
  throw Error(Errc::cgroup, fmt::format(f, std::forward<A>(a)...), e);
}

template <class... A>
[[noreturn]] void bad_argument(fmt::format_string<A...> f, A&&... a) {
  throw Error(Errc::invalid_argument, fmt::format(f, std::forward<A>(a)...));
}

// Run `f` (logging), swallowing any exception: for the noexcept members.
template <class F>
void quietly(F&& f) noexcept {
  try {
    f();
  } catch (...) {
  }
}

// The text up to the next `sep` (consumed, with the separator).
std::string_view next_token(std::string_view& rest, char sep) {
  const auto at = rest.find(sep);
  const std::string_view token = rest.substr(0, at);
  rest = at == std::string_view::npos ? std::string_view() : rest.substr(at + 1);
  return token;
}

// statfs: 1 = on cgroup2, 0 = elsewhere, -1 = failed (errno in err).
int on_cgroup2(const std::string& path, int fd, int& err) {
  struct statfs sfs {};
  if ((fd >= 0 ? ::fstatfs(fd, &sfs) : ::statfs(path.c_str(), &sfs)) != 0) {
    err = errno;
    return -1;
  }
  err = 0;
  return sfs.f_type == CGROUP2_SUPER_MAGIC ? 1 : 0;
}

std::string mount_hint() {
  auto mount = find_cgroup2_mount();
  return mount ? fmt::format("the cgroup2 filesystem is mounted at '{}'", *mount)
               : std::string("no cgroup2 filesystem is mounted");
}

// Whole file relative to dirfd; nullopt with err set on failure.
std::optional<std::string> read_file_at(int dirfd, const char* name, int& err) {
  UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_CLOEXEC));
  if (!fd) {
    err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || out.size() > kMaxFileBytes) {
      err = n < 0 ? errno : EFBIG;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  err = 0;
  return out;
}

// Write all of `data` to dirfd/name; 0 or the errno.
int write_file_at(int dirfd, const char* name, std::string_view data) {
  UniqueFd fd(::openat(dirfd, name, O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  while (!data.empty()) {
    const ssize_t n = ::write(fd.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\n") - first + 1);
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
  s = trim(s);
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Value of "key N" in a flat-keyed file such as cgroup.events or cpu.stat.
std::optional<std::uint64_t> keyed_value(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    const std::string_view line = next_token(text, '\n');
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return parse_u64(line.substr(key.size() + 1));
    }
  }
  return std::nullopt;
}

std::string dirname_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? std::string("/") : path.substr(0, slash);
}

std::string strip_trailing_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string real_path(const std::string& path, int& err) {
  std::unique_ptr<char, void (*)(void*)> real(::realpath(path.c_str(), nullptr), &std::free);
  err = real ? 0 : errno;
  return real ? std::string(real.get()) : std::string();
}

// "\040" -> ' ' (mountinfo octal escapes).
std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// mkdir `path` (and missing ancestors), but only ever inside a cgroup2
// directory. `depth` bounds the recursion.
void mkdir_in_cgroup2(const std::string& path, int depth) {
  const std::string parent = dirname_of(path);
  int err = 0;
  int on_cg2 = on_cgroup2(parent, -1, err);
  if (on_cg2 < 0 && err == ENOENT && parent != "/" && depth < kMaxDepth) {
    mkdir_in_cgroup2(parent, depth + 1);
    on_cg2 = on_cgroup2(parent, -1, err);
  }
  if (on_cg2 < 0) {
    fail(err, "cannot create cgroup '{}': its parent '{}' is not accessible: {}", path, parent,
         errno_text(err));
  }
  if (on_cg2 == 0) {
    fail(EXDEV, "cannot create cgroup '{}': its parent '{}' is not on a cgroup2 filesystem ({}); "
         "give a path inside the cgroup2 mount", path, parent, mount_hint());
  }
  if (::mkdir(path.c_str(), 0755) == 0) {
    logger()->info("created cgroup '{}'", path);
  } else if (const int e = errno; e != EEXIST) {
    fail(e, "cannot create cgroup '{}': mkdir failed: {}{}", path, errno_text(e), permission_hint(e));
  }
}

// pids listed in cgroup.procs (cgroup.threads in a threaded cgroup) of
// `dirfd` and of every descendant.
void collect_pids(int dirfd, int depth, std::vector<pid_t>& out) {
  int err = 0;
  auto text = read_file_at(dirfd, "cgroup.procs", err);
  if (!text && err == EOPNOTSUPP) text = read_file_at(dirfd, "cgroup.threads", err);
  if (!text && err != ENOENT) {
    logger()->warn("cgroup kill: cannot read a process list: {}", errno_text(err));
  }
  for (std::string_view rest = text ? std::string_view(*text) : std::string_view(); !rest.empty();) {
    if (auto v = parse_u64(next_token(rest, '\n')); v && *v > 0 && *v <= INT_MAX) {
      out.push_back(static_cast<pid_t>(*v));
    }
  }
  if (depth >= kMaxDepth) return;
  UniqueFd self(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(self ? ::fdopendir(self.get()) : nullptr, &::closedir);
  if (!dir) return;
  self.release();  // now owned by `dir`
  while (const dirent* ent = ::readdir(dir.get())) {
    if (ent->d_type != DT_DIR || std::strcmp(ent->d_name, ".") == 0 ||
        std::strcmp(ent->d_name, "..") == 0) {
      continue;
    }
    UniqueFd child(::openat(dirfd, ent->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (child) collect_pids(child.get(), depth + 1, out);
  }
}

// Field 22 (starttime) of /proc/<pid>/stat; nullopt when unreadable.
std::optional<std::uint64_t> start_time_of(const std::string& stat_path) {
  int err = 0;
  const auto text = read_file_at(AT_FDCWD, stat_path.c_str(), err);
  const auto paren = text ? text->rfind(')') : std::string::npos;
  if (paren == std::string::npos) return std::nullopt;
  std::string_view rest = std::string_view(*text).substr(paren + 1);
  next_token(rest, ' ');  // the blank after ')'
  for (int field = 3; field < 22; ++field) next_token(rest, ' ');
  return parse_u64(next_token(rest, ' '));
}

std::uint64_t own_pid_ns() noexcept {
  struct stat st {};
  return ::stat("/proc/self/ns/pid", &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

}  // namespace

CgroupCreator this_creator() noexcept {
  CgroupCreator c;
  c.pid = ::getpid();
  quietly([&] { c.start_time = start_time_of("/proc/self/stat").value_or(0); });
  c.pid_ns = own_pid_ns();
  return c;
}

std::optional<std::pair<std::string, CgroupCreator>> parse_unique_name(std::string_view name) {
  std::uint64_t fields[4] = {};  // pid, start_time, pid_ns, n (read from the end)
  for (int i = 3; i >= 0; --i) {
    const auto dash = name.rfind('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const std::string_view digits = name.substr(dash + 1);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    const auto v = parse_u64(digits);
    if (!v) return std::nullopt;
    fields[i] = *v;
    name = name.substr(0, dash);
  }
  if (name.empty() || fields[0] == 0 || fields[0] > INT_MAX) return std::nullopt;
  return std::pair{std::string(name), CgroupCreator{static_cast<pid_t>(fields[0]), fields[1], fields[2]}};
}

bool creator_alive(const CgroupCreator& creator) noexcept {
  if (creator.pid_ns != own_pid_ns()) return true;  // its pids are not ours to look up
  if (::kill(creator.pid, 0) != 0 && errno == ESRCH) return false;
  std::optional<std::uint64_t> start;
  quietly([&] { start = start_time_of(fmt::format("/proc/{}/stat", creator.pid)); });
  // Unreadable (gone meanwhile, or hidden by hidepid): not certainly gone.
  return !start || creator.start_time == 0 || *start == creator.start_time;
}

std::string validate_cgroup_name(std::string_view name) {
  if (const auto nul = name.find('\0'); nul != std::string_view::npos) {
    bad_argument("cgroup name '{}' contains a NUL byte", std::string(name).replace(nul, 1, "\\0"));
  }
  if (name.find('\n') != std::string_view::npos) {
    bad_argument("cgroup name '{}' contains a newline; the kernel rejects it in cgroup names", name);
  }
  // Joined as a path joins: empty and "." components vanish.
  std::vector<std::string_view> parts;
  for (std::string_view rest = name;;) {
    const bool last = rest.find('/') == std::string_view::npos;
    const std::string_view part = next_token(rest, '/');
    if (!part.empty() && part != ".") parts.push_back(part);
    if (last) break;
  }
  for (auto p : parts) {
    if (p == "..") {
      bad_argument("cgroup name '{}' contains '..'; paths must stay within the supervisor's cgroup parent",
                   name);
    }
    if (p.size() > NAME_MAX) {
      bad_argument("cgroup name '{}' has a component longer than {} bytes", name, NAME_MAX);
    }
  }
  if (parts.empty()) bad_argument("cgroup name '{}' is empty or resolves to the parent cgroup", name);
  std::string normal;
  for (auto p : parts) {
    if (!normal.empty()) normal += '/';
    normal += p;
  }
  return normal;
}

std::optional<std::string> find_cgroup2_mount(const std::string& mountinfo_path) {
  std::ifstream in(mountinfo_path);
  std::string line;
  while (in && std::getline(in, line)) {
    // id parent maj:min root mount-point options [optional...] - fstype source super-options
    const auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::string_view tail = std::string_view(line).substr(sep + 3);
    if (next_token(tail, ' ') != "cgroup2") continue;
    std::string_view head = std::string_view(line).substr(0, sep);
    for (int skip = 0; skip < 4; ++skip) next_token(head, ' ');
    const std::string_view mount_point = next_token(head, ' ');
    if (!mount_point.empty()) return unescape_mountinfo(mount_point);
  }
  return std::nullopt;
}

std::string resolve_cgroup_parent(std::string_view parent) {
  if (parent.empty()) {
    fail(0, "the supervisor's cgroup parent is empty; set SupervisorOptions::cgroup_parent to a "
         "directory inside the cgroup2 mount (absolute, or relative to the mount)");
  }
  if (parent.find('\0') != std::string_view::npos) {
    fail(0, "the supervisor's cgroup parent contains a NUL byte");
  }
  const auto mount = find_cgroup2_mount();
  if (!mount) {
    fail(0, "cgroup parent '{}' cannot be used: no cgroup2 filesystem is listed in "
         "/proc/self/mountinfo; mount one (mount -t cgroup2 none <dir>) or do not place payloads "
         "in cgroups", parent);
  }
  const std::string candidate = parent.front() == '/'
                                    ? std::string(parent)
                                    : strip_trailing_slashes(*mount) + "/" + std::string(parent);
  int e = 0;
  const std::string resolved = real_path(candidate, e);
  if (e == ENOENT) {
    fail(e, "cgroup parent '{}' ('{}') does not exist; create it (mkdir '{}') or point "
         "cgroup_parent at an existing cgroup2 directory", parent, candidate, candidate);
  }
  if (e != 0 && e != ENOTDIR) {
    fail(e, "cgroup parent '{}' ('{}') cannot be resolved: {}", parent, candidate, errno_text(e));
  }
  struct stat st {};
  if (e == ENOTDIR || ::stat(resolved.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    fail(ENOTDIR, "cgroup parent '{}' ('{}') is not a directory", parent, candidate);
  }
  std::string root = real_path(*mount, e);
  root = strip_trailing_slashes(e == 0 ? root : *mount);
  const bool inside = resolved == root || root == "/" ||
                      (resolved.size() > root.size() && resolved.compare(0, root.size(), root) == 0 &&
                       resolved[root.size()] == '/');
  if (!inside || on_cgroup2(resolved, -1, e) != 1) {
    fail(e != 0 ? e : EXDEV, "cgroup parent '{}' ('{}') is not inside the cgroup2 filesystem mounted "
         "at '{}'; give a path under it (or one relative to it)", parent, resolved, root);
  }
  return resolved;
}

Cgroup Cgroup::open(const std::string& path, bool create) {
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string::npos) {
    fail(EINVAL, "cgroup path '{}' must be an absolute path without NUL bytes", path);
  }
  if (create) mkdir_in_cgroup2(strip_trailing_slashes(path), 0);

  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    const int e = errno;
    fail(e, "cannot open cgroup '{}': {}", path,
         e == ENOENT    ? "it does not exist; create it first (or enable SupervisorOptions::create_cgroups)"
         : e == ENOTDIR ? "it is not a directory"
                        : errno_text(e));
  }
  int err = 0;
  if (const int on = on_cgroup2(path, dir.get(), err); on < 0) {
    fail(err, "cannot open cgroup '{}': fstatfs failed: {}", path, errno_text(err));
  } else if (on == 0) {
    fail(EXDEV, "'{}' is not a cgroup v2 directory ({}); cgroup v1 hierarchies are not supported",
         path, mount_hint());
  }

  // The root cgroup has no cgroup.type and is exempt from both rules below.
  const auto type_text = read_file_at(dir.get(), "cgroup.type", err);
  if (!type_text && err != ENOENT) {
    fail(err, "cannot read '{}/cgroup.type': {}", path, errno_text(err));
  }
  const std::string_view type = type_text ? trim(*type_text) : std::string_view("root");
  if (type == "domain invalid") {
    fail(EOPNOTSUPP, "cgroup '{}' has type 'domain invalid' (it lies in a threaded subtree), so no "
         "process can join it (EOPNOTSUPP); make it threaded (echo threaded > '{}/cgroup.type') or "
         "use a cgroup outside the threaded subtree", path, path);
  }
  if (type == "domain") {
    const auto sub = read_file_at(dir.get(), "cgroup.subtree_control", err);
    if (!sub) fail(err, "cannot read '{}/cgroup.subtree_control': {}", path, errno_text(err));
    const std::string_view controllers = trim(*sub);
    if (!controllers.empty()) {
      std::string disable;
      for (std::string_view rest = controllers; !rest.empty();) {
        disable += fmt::format("{}-{}", disable.empty() ? "" : " ", next_token(rest, ' '));
      }
      fail(EBUSY, "cgroup '{}' has controllers enabled in cgroup.subtree_control ({}); the cgroup v2 "
           "no-internal-process rule forbids processes in it (EBUSY): place payloads in a leaf "
           "child such as '{}/payloads', or disable them (echo '{}' > '{}/cgroup.subtree_control')",
           path, controllers, strip_trailing_slashes(path), disable, path);
    }
  }
  if (!UniqueFd(::openat(dir.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC))) {
    const int e = errno;
    fail(e, "cannot open '{}/cgroup.procs' for writing, so no process can be placed in cgroup '{}': "
         "{}{}", path, path, errno_text(e), permission_hint(e));
  }
  return Cgroup(strip_trailing_slashes(path), std::move(dir), false);
}

Cgroup Cgroup::create_unique(const std::string& parent, std::string_view prefix) {
  if (prefix.empty() || prefix == "." || prefix == ".." || prefix.size() > 200 ||
      prefix.find_first_of(std::string_view("/\n\0", 3)) != std::string_view::npos) {
    bad_argument("cgroup prefix '{}' must be a non-empty single path component (no '/', NUL or "
                 "newline; at most 200 bytes)", std::string(prefix).c_str());
  }
  static std::atomic<std::uint64_t> counter{0};
  const std::string base = strip_trailing_slashes(parent);
  int err = 0;
  if (const int on = on_cgroup2(base, -1, err); on < 0) {
    fail(err, "cannot create a cgroup under '{}': {}", base, errno_text(err));
  } else if (on == 0) {
    fail(EXDEV, "cannot create a cgroup under '{}': it is not on a cgroup2 filesystem ({})", base,
         mount_hint());
  }
  const CgroupCreator me = this_creator();
  for (int attempt = 0; attempt < kMaxUniqueAttempts; ++attempt) {
    const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
    const std::string path =
        fmt::format("{}/{}-{}-{}-{}-{}", base, prefix, me.pid, me.start_time, me.pid_ns, n);
    if (::mkdir(path.c_str(), 0755) != 0) {
      const int e = errno;
      if (e == EEXIST) continue;  // left behind by an earlier process with our pid
      fail(e, "cannot create cgroup '{}': mkdir failed: {}{}", path, errno_text(e), permission_hint(e));
    }
    logger()->debug("created cgroup '{}'", path);
    try {
      Cgroup cg = open(path, false);
      cg.owns_ = true;
      return cg;
    } catch (...) {
      ::rmdir(path.c_str());
      throw;
    }
  }
  fail(EEXIST, "cannot create a unique cgroup '{}-{}-N' under '{}': {} names already exist; remove "
       "stale cgroups there", prefix, ::getpid(), base, kMaxUniqueAttempts);
}

Cgroup Cgroup::adopt(const std::string& path) {
  UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (const int e = errno; !dir) fail(e, "cannot open cgroup '{}': {}", path, errno_text(e));
  int err = 0;
  if (on_cgroup2(path, dir.get(), err) != 1) {
    fail(err != 0 ? err : EXDEV, "'{}' is not a cgroup v2 directory ({})", path, mount_hint());
  }
  return Cgroup(strip_trailing_slashes(path), std::move(dir), true);
}

UniqueFd Cgroup::open_procs() const {
  UniqueFd fd(::openat(dir_.get(), "cgroup.procs", O_WRONLY | O_CLOEXEC));
  if (const int e = errno; !fd) fail(e, "cannot open '{}/cgroup.procs' for writing: {}", path_, errno_text(e));
  return fd;
}

UniqueFd Cgroup::open_events() const {
  UniqueFd fd(::openat(dir_.get(), "cgroup.events", O_RDONLY | O_CLOEXEC));
  if (const int e = errno; !fd) fail(e, "cannot open '{}/cgroup.events': {}", path_, errno_text(e));
  return fd;
}

bool Cgroup::populated() const {
  int err = 0;
  const auto text = read_file_at(dir_.get(), "cgroup.events", err);
  if (!text) fail(err, "cannot read '{}/cgroup.events': {}", path_, errno_text(err));
  const auto v = keyed_value(*text, "populated");
  if (!v || *v > 1) fail(EPROTO, "'{}/cgroup.events' has no valid 'populated' line", path_);
  return *v == 1;
}

void Cgroup::kill() noexcept {
  if (!dir_) return;
  const int e = write_file_at(dir_.get(), "cgroup.kill", "1");
  if (e == 0) return;
  if (e != ENOENT) {
    quietly([&] {
      logger()->warn("writing '{}/cgroup.kill' failed: {}; killing its processes one by one", path_,
                     errno_text(e));
    });
  }
  kill_with_signals();
}

void Cgroup::kill_with_signals() noexcept {
  if (!dir_) return;
  if (::faccessat(dir_.get(), "cgroup.type", F_OK, 0) != 0 && errno == ENOENT) {
    // Every process on the machine is in the root cgroup's subtree.
    quietly([&] { logger()->error("refusing to kill every process in the root cgroup '{}'", path_); });
    return;
  }
  try {
    const pid_t self = ::getpid();
    std::unordered_set<pid_t> signalled;
    std::vector<pid_t> pids;
    for (int round = 0; round < kMaxKillRounds; ++round) {
      pids.clear();
      collect_pids(dir_.get(), 0, pids);
      std::size_t fresh = 0;
      for (const pid_t pid : pids) {
        if (pid == self || !signalled.insert(pid).second) continue;
        ++fresh;
        if (::kill(pid, SIGKILL) != 0 && errno != ESRCH) {
          const int e = errno;  // before logger(), which may change it
          logger()->warn("kill({}, SIGKILL) in cgroup '{}' failed: {}", pid, path_, errno_text(e));
        }
      }
      if (fresh == 0) return;
    }
    logger()->warn("cgroup '{}' kept gaining processes after {} kill rounds", path_, kMaxKillRounds);
  } catch (const std::exception& ex) {
    quietly([&] { logger()->error("killing the processes of cgroup '{}' failed: {}", path_, ex.what()); });
  } catch (...) {
  }
}

bool Cgroup::remove() noexcept {
  if (!owns_) return true;
  if (::rmdir(path_.c_str()) == 0) {
    owns_ = false;
    return true;
  }
  const int e = errno;
  quietly([&] {
    logger()->warn("could not remove cgroup '{}': {}{}", path_, errno_text(e),
                   e == EBUSY ? " (it still holds processes or child cgroups)" : "");
  });
  return false;
}

CgroupStats Cgroup::stats() const noexcept {
  CgroupStats out;
  if (!dir_) return out;
  try {
    int err = 0;
    if (auto t = read_file_at(dir_.get(), "memory.peak", err)) out.memory_peak_bytes = parse_u64(*t);
    if (auto t = read_file_at(dir_.get(), "cpu.stat", err)) out.cpu_usage_usec = keyed_value(*t, "usage_usec");
    if (auto t = read_file_at(dir_.get(), "pids.peak", err)) out.pids_peak = parse_u64(*t);
  } catch (...) {  // allocation failure: report what was read
  }
  return out;
}

}  // namespace payloadrun::detail
