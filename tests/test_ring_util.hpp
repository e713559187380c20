// Helpers for the ring suites: unique names per test pid, forked children
// with bounded waits.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "detail/ring_test_hooks.hpp"
#include "payloadrun/ring_producer.hpp"

namespace ring_test {

/// A ring name unique to this process and test; removed on destruction.
struct RingName {
  std::string name;
  explicit RingName(const std::string& tag)
      : name("payloadrun-test-" + std::to_string(::getpid()) + "-" + tag) {
    payloadrun::remove_ring(name);
  }
  ~RingName() { payloadrun::remove_ring(name); }
  operator const std::string&() const { return name; }
};

/// Run `body` in a forked child; the child exits 0 unless body returns non-zero
/// or throws.
inline pid_t fork_child(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      rc = 3;
    }
    ::_exit(rc);
  }
  return pid;
}

/// Wait for `pid` at most `bound`; SIGKILL it past that. Returns the raw status.
inline int wait_child(pid_t pid, std::chrono::seconds bound = std::chrono::seconds(120)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "child " << pid << " exceeded its bound; killed";
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

inline bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// A child that writes "before" (index 0), then reserves index 1 and raises
// `sig` between that reservation and its commit.
inline pid_t fork_reserving_producer(const std::string& name, int sig) {
  return fork_child([&name, sig] {
    payloadrun::RingProducer p(name);
    p.write(payloadrun::RecordType::metrics, 0, "before");
    payloadrun::detail::RingProducerAccess::set_after_reserve_hook(p, [sig] { ::raise(sig); });
    p.write(payloadrun::RecordType::metrics, 1, "never committed");
    return 0;
  });
}


// Parses "pP sS ..." bodies.
inline std::pair<int, int> parse_seq(const std::string& body) {
  int p = -1, s = -1;
  std::sscanf(body.c_str(), "p%d s%d", &p, &s);
  return {p, s};
}

}  // namespace ring_test
