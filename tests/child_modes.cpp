// Helper-child behaviours (see child_modes.hpp). Each mode is what a real
// payload might do; process tests spawn the test binary itself in a mode.
#include "child_modes.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "payloadrun/payloadrun.hpp"

extern "C" char** environ;

namespace payloadrun_test {
namespace {

void sleep_ms(long ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void write_str(int fd, const std::string& s) { write_all(fd, s.data(), s.size()); }

volatile sig_atomic_t stop_requested = 0;
void on_stop_signal(int) { stop_requested = 1; }

// Catch `sig` (setting stop_requested), then create `ready` ("-": none).
void catch_stop_signal(int sig, const std::string& ready) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(sig, &sa, nullptr);
  if (ready != "-") ::close(::open(ready.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
}

// Wait (at most 60 s) for the stop signal.
bool wait_for_stop() {
  for (int i = 0; i < 12000 && stop_requested == 0; ++i) sleep_ms(5);
  return stop_requested != 0;
}

std::string read_file(const char* path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

const char* self_exe() {
  static std::string path = [] {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }();
  return path.c_str();
}

int run_child_mode(int argc, char** argv) {
  const std::string mode = argv[0];
  auto arg = [&](int i, const char* dflt = "") -> std::string {
    return i < argc ? argv[i] : dflt;
  };
  if (mode == "exit") return std::atoi(arg(1, "0").c_str());
  if (mode == "print") {  // print OUT [ERR [CODE]]
    write_str(1, arg(1));
    write_str(2, arg(2));
    return std::atoi(arg(3, "0").c_str());
  }
  if (mode == "sleep") {
    sleep_ms(std::atol(arg(1, "1000").c_str()));
    return 0;
  }
  if (mode == "list-fds") {  // prints the open fds, space separated
    DIR* d = ::opendir("/proc/self/fd");
    std::string out;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const int fd = std::atoi(e->d_name);
      if (fd == ::dirfd(d)) continue;
      out += std::to_string(fd) + " ";
    }
    ::closedir(d);
    write_str(1, out);
    return 0;
  }
  if (mode == "write-bytes") {  // write-bytes N [fd]
    const long long n = std::atoll(arg(1, "0").c_str());
    const int fd = std::atoi(arg(2, "1").c_str());
    std::string chunk(1 << 16, 'x');
    for (long long done = 0; done < n;) {
      const std::size_t k = static_cast<std::size_t>(std::min<long long>(n - done, 1 << 16));
      write_all(fd, chunk.data(), k);
      done += static_cast<long long>(k);
    }
    return 0;
  }
  if (mode == "wait-file") {  // poll for a file (at most 60 s), exit 0 when it exists
    for (int i = 0; i < 3000; ++i) {
      if (::access(arg(1).c_str(), F_OK) == 0) return 0;
      sleep_ms(20);
    }
    return 1;
  }
  if (mode == "ignore-term") {  // ignore SIGTERM, then sleep
    ::signal(SIGTERM, SIG_IGN);
    sleep_ms(std::atol(arg(1, "60000").c_str()));
    return 0;
  }
  if (mode == "stop-json") {  // stop-json SIG DOC READY: on SIG print DOC and exit 0 (fio on SIGINT)
    catch_stop_signal(std::atoi(arg(1, "2").c_str()), arg(3, "-"));
    if (!wait_for_stop()) return 97;
    write_str(1, arg(2));
    return 0;
  }
  if (mode == "ignore-stop") {  // ignore-stop SIG READY [PIDFILE]: ignore SIG (and a child in our group)
    ::signal(std::atoi(arg(1, "2").c_str()), SIG_IGN);
    if (argc > 3) {
      const pid_t pid = ::fork();
      if (pid == 0) {
        sleep_ms(60000);
        ::_exit(0);
      }
      const std::string tmp = arg(3) + ".tmp";
      { std::ofstream(tmp) << pid << "\n"; }
      ::rename(tmp.c_str(), arg(3).c_str());
    }
    if (arg(2, "-") != "-") ::close(::open(arg(2).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    sleep_ms(60000);
    return 0;
  }
  if (mode == "stop-group") {
    // stop-group SIG READY: a child in our group exits 42 on SIG; on SIG we
    // wait for it and print {"child_exit": its code}. Only if the whole
    // group gets SIG does the document appear.
    catch_stop_signal(std::atoi(arg(1, "2").c_str()), "-");
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (!wait_for_stop()) ::_exit(97);
      ::_exit(42);
    }
    if (arg(2, "-") != "-") ::close(::open(arg(2).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (!wait_for_stop()) return 97;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    write_str(1, "{\"child_exit\": " + std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + "}");
    return 0;
  }
  if (mode == "late-writer") {
    // late-writer MS: the leader exits at once; a child in its group holds
    // stdout and writes {"late": 1} after MS (a `tee` or a background job).
    int ready[2];
    if (::pipe(ready) != 0) return 98;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(ready[0]);
      ::close(ready[1]);
      sleep_ms(std::atol(arg(1, "2000").c_str()));
      write_str(1, "{\"late\": 1}");
      ::_exit(0);
    }
    ::close(ready[1]);
    char b;
    while (::read(ready[0], &b, 1) < 0 && errno == EINTR) {
    }
    write_str(2, "leader done\n");
    return 0;
  }
  if (mode == "fork-hold" || mode == "setsid-hold") {
    // The leader exits at once; a child (in our group, or escaped with
    // setsid) keeps stdout/stderr open for MS milliseconds.
    int ready[2];
    if (::pipe(ready) != 0) return 98;
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (mode == "setsid-hold") ::setsid();
      ::close(ready[0]);
      ::close(ready[1]);  // tells the leader we are set up
      sleep_ms(std::atol(arg(1, "60000").c_str()));
      ::_exit(0);
    }
    ::close(ready[1]);
    char b;
    while (::read(ready[0], &b, 1) < 0 && errno == EINTR) {
    }
    write_str(1, "{\"leader\": 1}");
    return std::atoi(arg(2, "0").c_str());
  }
  if (mode == "setsid-report") {  // an escapee prints its pid, then sleeps MS
    int ready[2];
    if (::pipe(ready) != 0) return 98;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid();
      write_str(1, std::to_string(::getpid()) + "\n");
      ::close(ready[0]);
      ::close(ready[1]);
      sleep_ms(std::atol(arg(1, "60000").c_str()));
      ::_exit(0);
    }
    ::close(ready[1]);
    char b;
    while (::read(ready[0], &b, 1) < 0 && errno == EINTR) {
    }
    return 0;
  }
  if (mode == "fork-writer") {  // leader exits while a child keeps writing
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = 0; i < 600000; ++i) {
        write_str(1, "tick\n");
        sleep_ms(1);
      }
      ::_exit(0);
    }
    sleep_ms(50);
    return 0;
  }
  if (mode == "fork-sleep") {  // fork-sleep PIDFILE MS: a child (our group) and we sleep MS
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string tmp = arg(1) + ".tmp";
      { std::ofstream(tmp) << ::getpid() << "\n"; }
      ::rename(tmp.c_str(), arg(1).c_str());  // complete once it exists
      sleep_ms(std::atol(arg(2, "60000").c_str()));
      ::_exit(0);
    }
    sleep_ms(std::atol(arg(2, "60000").c_str()));
    return 0;
  }
  if (mode == "drain-print") {  // drain-print DOC: read stdin to its end, print DOC
    char buf[4096];
    while (::read(0, buf, sizeof buf) > 0) {
    }
    write_str(1, arg(1));
    return 0;
  }
  if (mode == "bad-utf8") {
    write_str(1, std::string("ok \xff\xfe end \xc3\x28"));
    return 0;
  }
  if (mode == "cat") {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(0, buf, sizeof buf)) > 0) write_all(1, buf, static_cast<std::size_t>(n));
    return 0;
  }
  if (mode == "env") {
    const char* v = std::getenv(arg(1).c_str());
    write_str(1, v != nullptr ? v : "<unset>");
    return 0;
  }
  if (mode == "env-count") {
    int n = 0;
    for (char** e = environ; *e != nullptr; ++e) ++n;
    write_str(1, std::to_string(n));
    return 0;
  }
  if (mode == "env-dump") {  // every environment entry, each followed by NUL
    for (char** e = environ; *e != nullptr; ++e) write_all(1, *e, std::strlen(*e) + 1);
    return 0;
  }
  if (mode == "argv-report") {  // stdout: the mode's args, NUL-terminated; stderr: ppid exe
    for (int i = 1; i < argc; ++i) write_all(1, argv[i], std::strlen(argv[i]) + 1);
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    write_str(2, std::to_string(::getppid()) + " " + std::string(exe, n > 0 ? static_cast<std::size_t>(n) : 0));
    return 0;
  }
  if (mode == "cwd") {
    char buf[4096];
    write_str(1, ::getcwd(buf, sizeof buf) != nullptr ? buf : "?");
    return 0;
  }
  if (mode == "status") {  // signal mask/ignored set and process group
    write_str(1, read_file("/proc/self/status"));
    write_str(2, std::to_string(::getpid()) + " " + std::to_string(::getpgrp()));
    return 0;
  }
  if (mode == "cgroup") {  // first act: print our own cgroup
    write_str(1, read_file("/proc/self/cgroup"));
    return 0;
  }
  if (mode == "json") {  // json DOC [STDERR_TEXT [CODE]]
    write_str(1, arg(1));
    write_str(2, arg(2));
    return std::atoi(arg(3, "0").c_str());
  }
  if (mode == "stderr-json") {
    write_str(1, arg(2));
    write_str(2, arg(1));
    return 0;
  }
  if (mode == "close-stdout-sleep") {  // closes stdout, keeps running
    ::close(1);
    ::close(2);
    sleep_ms(std::atol(arg(1, "60000").c_str()));
    return 0;
  }
  if (mode == "fd-table") {
    // fd-table RESERVE|default [NOFILE]: with RLIMIT_NOFILE's soft limit set to
    // NOFILE (if given) and a second thread running (the case the
    // reservation is for), prints "FDSIZE_BEFORE FDSIZE_WITH FDSIZE_AFTER
    // FDS_BEFORE FDS_AFTER": the kernel's FDSize before, while and after a
    // Supervisor with reserve_fds RESERVE lived, and the open fds before
    // and after it.
    ::alarm(60);
    if (argc > 2) {
      rlimit lim{};
      ::getrlimit(RLIMIT_NOFILE, &lim);
      lim.rlim_cur = std::strtoul(arg(2).c_str(), nullptr, 10);
      if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < lim.rlim_cur) lim.rlim_max = lim.rlim_cur;  // root may
      if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        write_str(1, "cannot set RLIMIT_NOFILE to " + arg(2) + ": " + std::strerror(errno) + "\n");
        return 77;
      }
    }
    auto fd_size = [] {
      const std::string status = read_file("/proc/self/status");
      const auto at = status.find("FDSize:");
      return at == std::string::npos ? -1L : std::strtol(status.c_str() + at + 7, nullptr, 10);
    };
    auto open_fds = [] {
      int n = 0;
      DIR* d = ::opendir("/proc/self/fd");
      if (d == nullptr) return -1;
      while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
      ::closedir(d);
      return n - 1;  // the directory's own fd
    };
    std::atomic<bool> done{false};
    std::thread other([&] {
      while (!done) sleep_ms(1);
    });
    long before = -1;
    int fds_before = -1;
    long with = -1;
    try {
      {  // libuv's process-wide fds (its signal pipe) open with the first loop
        payloadrun::SupervisorOptions none;
        none.reserve_fds = 0;
        payloadrun::Supervisor warm(std::move(none));
      }
      before = fd_size();
      fds_before = open_fds();
      payloadrun::SupervisorOptions options;
      if (arg(1) != "default") options.reserve_fds = std::strtoul(arg(1, "0").c_str(), nullptr, 10);
      payloadrun::Supervisor sup(std::move(options));
      with = fd_size();
    } catch (const std::exception& e) {
      write_str(1, std::string("error: ") + e.what() + "\n");
      done = true;
      other.join();
      return 3;
    }
    const long after = fd_size();
    const int fds_after = open_fds();
    done = true;
    other.join();
    write_str(1, std::to_string(before) + " " + std::to_string(with) + " " + std::to_string(after) + " " +
                     std::to_string(fds_before) + " " + std::to_string(fds_after) + "\n");
    return 0;
  }
  if (mode == "supervise") {
    // supervise N SURVIVE CGROUP_PARENT BINARY ARGS...: a supervisor that
    // spawns N payloads (Payload::survives_supervisor = SURVIVE == "1"; each
    // in an own cgroup under CGROUP_PARENT unless it is "-"), prints each
    // leader's pid on a line, then "ready", and runs until killed.
    ::alarm(120);  // a leaked helper dies, and its payloads with it
    try {
      payloadrun::SupervisorOptions options;
      const bool own_cgroup = arg(3) != "-";
      if (own_cgroup) options.cgroup_parent = arg(3);
      payloadrun::Supervisor sup(std::move(options));
      payloadrun::Payload p = payloadrun::Payload::binary_payload("held", arg(4));
      for (int i = 5; i < argc; ++i) p.default_args.emplace_back(argv[i]);
      p.survives_supervisor = arg(2) == "1";
      std::vector<payloadrun::PayloadHandle> held;
      for (int i = 0, n = std::atoi(arg(1, "1").c_str()); i < n; ++i) {
        held.push_back(sup.payload(p).own_cgroup(own_cgroup).spawn());
        write_str(1, std::to_string(held.back().pid().value_or(0)) + "\n");
      }
      write_str(1, "ready\n");
      sup.run();
    } catch (const std::exception& e) {
      write_str(1, std::string("error: ") + e.what() + "\n");
      return 3;
    }
    return 0;
  }
  write_str(2, "unknown child mode: " + mode + "\n");
  return 99;
}

}  // namespace payloadrun_test
