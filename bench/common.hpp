// bench/: small helpers shared by the benchmark programs (not part of the library).
#pragma once

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

using clock = std::chrono::steady_clock;

inline double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/// p in [0, 100], nearest-rank.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size()) + 0.999999);
  rank = std::clamp<std::size_t>(rank, 1, v.size());
  return v[rank - 1];
}

/// `--key value` and bare `--flag` arguments.
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument " + a);
      a = a.substr(2);
      if (i + 1 < argc && std::string_view(argv[i + 1]).rfind("--", 0) != 0) {
        kv_[a] = argv[++i];
      } else {
        kv_[a] = "";
      }
    }
  }
  bool has(const std::string& k) const { return kv_.count(k) != 0; }
  std::string str(const std::string& k, std::string def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : it->second;
  }
  double num(const std::string& k, double def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : std::stod(it->second);
  }
  long integer(const std::string& k, long def) const {
    auto it = kv_.find(k);
    return it == kv_.end() ? def : std::stol(it->second);
  }

 private:
  std::map<std::string, std::string> kv_;
};

/// Resident set size of this process, bytes (VmRSS).
inline std::size_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6)) * 1024u;
  }
  return 0;
}

/// CPU seconds (user + system) this process used.
inline double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

/// Raise RLIMIT_NOFILE to at least `want` (raising the hard limit too when
/// privileged). Returns the soft limit in effect.
inline rlim_t raise_nofile(rlim_t want) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= want) return rl.rlim_cur;
  rlimit up{want, std::max(want, rl.rlim_max)};
  if (::setrlimit(RLIMIT_NOFILE, &up) != 0) {
    up = {rl.rlim_max, rl.rlim_max};
    ::setrlimit(RLIMIT_NOFILE, &up);
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

/// `bytes` of anonymous memory in 4 KiB pages (no THP), every page touched,
/// held for the object's lifetime: makes the parent's page tables big.
class TouchedHeap {
 public:
  explicit TouchedHeap(std::size_t bytes) : size_(bytes) {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of the parent heap failed");
    ptr_ = static_cast<char*>(p);
    ::madvise(ptr_, size_, MADV_NOHUGEPAGE);
    for (std::size_t off = 0; off < size_; off += 4096) ptr_[off] = static_cast<char>(off >> 12);
  }
  ~TouchedHeap() {
    if (ptr_ != nullptr) ::munmap(ptr_, size_);
  }
  TouchedHeap(const TouchedHeap&) = delete;
  TouchedHeap& operator=(const TouchedHeap&) = delete;

 private:
  char* ptr_ = nullptr;
  std::size_t size_ = 0;
};

[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "BENCH CHECK FAILED: %s\n", why.c_str());
  std::exit(1);
}

}  // namespace bench
