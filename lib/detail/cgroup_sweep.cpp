// Cleaning up after dead supervisors: see sweep_stale_cgroups in
// detail/cgroup.hpp.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "detail/cgroup.hpp"
#include "detail/errno_text.hpp"
#include "detail/log.hpp"

namespace payloadrun::detail {
namespace {

constexpr int kMaxDepth = 64;

using Clock = std::chrono::steady_clock;

struct Stale {
  Cgroup cgroup;
  CgroupCreator creator;
};

// Names of the subdirectories of `dirfd` (closed with the listing).
std::vector<std::string> subdirectories(int dirfd) {
  std::vector<std::string> out;
  UniqueFd self(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(self ? ::fdopendir(self.get()) : nullptr, &::closedir);
  if (!dir) return out;
  self.release();  // now owned by `dir`
  while (const dirent* ent = ::readdir(dir.get())) {
    if (ent->d_type == DT_DIR && std::strcmp(ent->d_name, ".") != 0 && std::strcmp(ent->d_name, "..") != 0) {
      out.emplace_back(ent->d_name);
    }
  }
  return out;
}

// rmdir every cgroup below `dirfd`, deepest first (a payload may have made
// child cgroups of its own). What fails stays; the caller's rmdir says so.
void remove_children(int dirfd, int depth) {
  if (depth >= kMaxDepth) return;
  for (const std::string& name : subdirectories(dirfd)) {
    UniqueFd child(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (child) remove_children(child.get(), depth + 1);
    ::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR);
  }
}

// Until `cg` is unpopulated or `until` passes; true when it is empty.
bool wait_empty(const Cgroup& cg, Clock::time_point until) {
  const UniqueFd events = cg.open_events();
  while (cg.populated()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{events.get(), POLLPRI, 0};  // cgroup.events changed
    ::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 50)));
  }
  return true;
}

}  // namespace

std::size_t sweep_stale_cgroups(const std::string& parent, std::chrono::milliseconds wait) noexcept {
  std::size_t removed = 0;
  try {
    UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) {
      const int e = errno;  // before logger(), which may change it
      logger()->warn("stale cgroups: cannot open '{}': {}", parent, errno_text(e));
      return 0;
    }
    std::vector<Stale> stale;
    for (const std::string& name : subdirectories(dir.get())) {
      const auto parsed = parse_unique_name(name);
      if (!parsed || creator_alive(parsed->second)) continue;
      const std::string path = parent + "/" + name;
      if (parsed->first == survivor_cgroup_prefix) {
        // Its payloads may still run: never killed, removed once empty.
        if (::rmdir(path.c_str()) == 0) {
          ++removed;
          logger()->info("removed empty cgroup '{}' of payloads that outlived supervisor pid {}", path,
                         parsed->second.pid);
        }
        continue;
      }
      if (parsed->first != own_cgroup_prefix) continue;
      try {
        stale.push_back({Cgroup::adopt(path), parsed->second});
        stale.back().cgroup.kill();
      } catch (const std::exception& e) {
        logger()->warn("stale cgroup '{}': {}", path, e.what());
      }
    }
    const auto until = Clock::now() + wait;
    for (Stale& s : stale) {
      const std::string& path = s.cgroup.path();
      try {
        if (!wait_empty(s.cgroup, until)) {
          logger()->warn("stale cgroup '{}' (supervisor pid {} is gone) still holds processes {} ms "
                         "after cgroup.kill; left for a later supervisor",
                         path, s.creator.pid, wait.count());
          continue;
        }
        remove_children(s.cgroup.dir_fd(), 0);
        if (s.cgroup.remove()) {
          ++removed;
          logger()->info("killed and removed stale cgroup '{}': its supervisor (pid {}) is gone", path,
                         s.creator.pid);
        }
      } catch (const std::exception& e) {
        logger()->warn("stale cgroup '{}': {}", path, e.what());
      }
    }
  } catch (...) {  // allocation failure: what was cleaned stays cleaned
  }
  return removed;
}

}  // namespace payloadrun::detail
