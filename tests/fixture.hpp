// Shared fixture for process tests: an embedded loop per test, a watchdog
// bounding every wait, and end-of-test checks (loop closes with 0, no child
// left, no fd leaked).
#pragma once

#include <dirent.h>
#include <sys/wait.h>
#include <uv.h>

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "child_modes.hpp"
#include "payloadrun/payloadrun.hpp"

namespace payloadrun_test {

inline int count_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;
}

/// The state letter of /proc/PID/stat ('Z' zombie, ...); 'X' when gone.
inline char process_state(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? 'X' : stat[paren + 2];
}

/// A payload that runs this test binary in a child mode.
inline payloadrun::Payload child_payload(const std::string& name, std::vector<std::string> mode_args,
                                         payloadrun::OutputFormat format = payloadrun::output::ExitCode{}) {
  payloadrun::Payload p = payloadrun::Payload::binary_payload(name, self_exe());
  p.output = std::move(format);
  p.default_args = {"--payloadrun-child"};
  for (auto& a : mode_args) p.default_args.push_back(std::move(a));
  return p;
}

/// Records what an Emitter receives, in order.
struct RecordingEmitter : payloadrun::Emitter {
  std::vector<std::pair<std::uint64_t, std::string>> metrics;  // index, name
  std::vector<payloadrun::RawPayloadOutput> raws;
  std::vector<std::string> order;
  void emit_metrics(const payloadrun::Completion& c) override {
    metrics.emplace_back(c.metrics.payload_index, c.payload_name);
    order.push_back("metrics");
  }
  void emit_raw(const payloadrun::RawPayloadOutput& r) override {
    raws.push_back(r);
    order.push_back("raw");
  }
};

/// Captures what the library logs (logger "payloadrun").
class LogCapture {
 public:
  LogCapture() {
    sink_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
    spdlog::drop("payloadrun");
    auto l = std::make_shared<spdlog::logger>("payloadrun", sink_);
    l->set_level(spdlog::level::debug);
    spdlog::register_logger(l);
  }
  ~LogCapture() { spdlog::drop("payloadrun"); }
  bool contains(const std::string& needle) const {
    for (const auto& line : sink_->last_formatted()) {
      if (line.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

/// Suites run on both spawn backends: INSTANTIATE_TEST_SUITE_P(Backends,
/// Suite, both_backends(), backend_name).
inline auto both_backends() {
  return ::testing::Values(payloadrun::SpawnBackend::clone_vfork, payloadrun::SpawnBackend::uv_spawn);
}
inline std::string backend_name(const ::testing::TestParamInfo<payloadrun::SpawnBackend>& info) {
  return info.param == payloadrun::SpawnBackend::clone_vfork ? "clone" : "uv_spawn";
}

class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // libuv opens process-wide fds (its signal lock pipe) on first use: warm
    // up once so they are not counted as a test's leak.
    static const bool warmed_up = [] {
      uv_loop_t l;
      uv_loop_init(&l);
      { payloadrun::Supervisor s(&l); }
      uv_run(&l, UV_RUN_NOWAIT);
      uv_loop_close(&l);
      return true;
    }();
    (void)warmed_up;
    fds_before_ = count_fds();
    ASSERT_EQ(uv_loop_init(&loop_), 0);
  }

  void TearDown() override {
    stop_watchdog();
    sup_.reset();
    // Bounded: close callbacks need one or two passes.
    for (int i = 0; i < 100 && uv_loop_alive(&loop_) != 0; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "handles left open on the loop";
    EXPECT_TRUE(no_children()) << "a child process is left (alive or zombie)";
    EXPECT_EQ(count_fds(), fds_before_) << "file descriptors leaked";
  }

  payloadrun::Supervisor& sup(payloadrun::SupervisorOptions o = {},
                              std::chrono::seconds bound = std::chrono::seconds(60)) {
    sup_.emplace(&loop_, std::move(o));
    start_watchdog(bound);
    return *sup_;
  }

  /// Fails the test and kills every payload if it runs longer than `bound`.
  void start_watchdog(std::chrono::seconds bound) {
    stop_watchdog();
    watchdog_.emplace();
    uv_timer_init(&loop_, &*watchdog_);
    watchdog_->data = this;
    uv_timer_start(
        &*watchdog_,
        [](uv_timer_t* t) {
          auto* self = static_cast<ProcessTest*>(t->data);
          ADD_FAILURE() << "watchdog: the test's wait exceeded its bound";
          if (self->sup_) self->sup_->shutdown();
        },
        static_cast<std::uint64_t>(bound.count()) * 1000, 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&*watchdog_));
  }

  void stop_watchdog() {
    if (!watchdog_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&*watchdog_), nullptr);
    for (int i = 0; i < 10 && uv_is_closing(reinterpret_cast<uv_handle_t*>(&*watchdog_)) &&
                    uv_loop_alive(&loop_) != 0;
         ++i) {
      uv_run(&loop_, UV_RUN_NOWAIT);
    }
    uv_run(&loop_, UV_RUN_NOWAIT);
    watchdog_.reset();
  }

  uv_loop_t loop_{};
  std::optional<payloadrun::Supervisor> sup_;
  std::optional<uv_timer_t> watchdog_;
  int fds_before_ = 0;
};

}  // namespace payloadrun_test
