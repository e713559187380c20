// Bounded inputs and atomic outputs (files.hpp).
#include "files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "detail/errno_text.hpp"

namespace runner {
namespace {

using payloadrun::detail::errno_text;

// An fd closed at scope exit (the inputs' fds; ReportFile owns its own).
struct InputFd {
  int fd = -1;
  ~InputFd() {
    if (fd >= 0) ::close(fd);
  }
};

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "is a directory";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISCHR(mode)) return "is a character device, not a regular file";
  if (S_ISBLK(mode)) return "is a block device, not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

// Opened without blocking (a FIFO with no writer would block a plain open),
// then checked: a regular file within the limit.
void open_input(const std::string& path, const char* what, std::size_t limit, InputFd& in, struct stat& st) {
  in.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (in.fd < 0) throw InputError(fmt::format("{}: cannot open the {}: {}", path, what, errno_text(errno)));
  if (::fstat(in.fd, &st) != 0) {
    throw InputError(fmt::format("{}: cannot stat the {}: {}", path, what, errno_text(errno)));
  }
  if (!S_ISREG(st.st_mode)) throw InputError(fmt::format("{}: the {} {}", path, what, file_kind(st.st_mode)));
  if (static_cast<std::uint64_t>(st.st_size) > limit) {
    throw InputError(fmt::format("{}: the {} is {} bytes, more than the limit of {} MiB", path, what,
                                 static_cast<std::uint64_t>(st.st_size), limit >> 20));
  }
}

struct Identity {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  std::string resolved;  // when it does not exist
  bool operator==(const Identity& o) const {
    return exists == o.exists && (exists ? dev == o.dev && ino == o.ino : resolved == o.resolved);
  }
};

Identity identity(const std::string& path) {
  Identity id;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    return id;
  }
  std::error_code ec;
  const auto abs = std::filesystem::absolute(path, ec);
  const auto canonical = std::filesystem::weakly_canonical(ec ? std::filesystem::path(path) : abs, ec);
  id.resolved = (ec ? abs : canonical).lexically_normal().string();
  return id;
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "DIR/.NAME.XXXXXX.tmp" created with O_CLOEXEC; the fd, or OutputError.
int create_temp(const std::string& path, std::string& temp) {
  temp = fmt::format("{}/.{}.XXXXXX.tmp", dir_of(path), base_of(path));
  const int fd = ::mkostemps(temp.data(), 4, O_CLOEXEC);
  if (fd < 0) {
    throw OutputError(fmt::format("{}: cannot create a file in {}: {}", path, dir_of(path), errno_text(errno)));
  }
  return fd;
}

mode_t creation_mode() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return 0666 & ~mask;
}

}  // namespace

void check_input_file(const std::string& path, const char* what, std::size_t limit) {
  InputFd in;
  struct stat st {};
  open_input(path, what, limit, in, st);
}

std::string read_input_file(const std::string& path, const char* what, std::size_t limit) {
  InputFd in;
  struct stat st {};
  open_input(path, what, limit, in, st);
  std::string text;
  text.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (text.size() > limit) {
        throw InputError(fmt::format("{}: the {} grew past the limit of {} MiB while being read", path, what,
                                     limit >> 20));
      }
      text.resize(text.size() + 4096);  // it grew since fstat: read on
    }
    const ssize_t n = ::read(in.fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(fmt::format("{}: cannot read the {}: {}", path, what, errno_text(errno)));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

std::string find_aliased_output(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs) {
  std::vector<std::pair<const NamedPath*, Identity>> seen;
  for (const auto& in : inputs) seen.emplace_back(&in, identity(in.path));
  const std::size_t n_inputs = seen.size();
  for (const auto& out : outputs) {
    const Identity id = identity(out.path);
    for (std::size_t i = 0; i < seen.size(); ++i) {
      if (!(seen[i].second == id)) continue;
      const NamedPath& other = *seen[i].first;
      const bool input = i < n_inputs;
      return fmt::format("{} {} is the same file as {} {}{}; refusing to {}", out.role, out.path, other.role,
                         other.path, out.path == other.path ? "" : " (another name for it)",
                         input ? "overwrite an input" : "write two reports into one file");
    }
    seen.emplace_back(&out, id);
  }
  return {};
}

void probe_output(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    // rename() would replace a device or FIFO node with the report.
    throw OutputError(fmt::format("{}: {}; a report is written to a regular file, in place of the old one", path,
                                  file_kind(st.st_mode)));
  }
  std::string temp;
  const int fd = create_temp(path, temp);
  ::close(fd);
  ::unlink(temp.c_str());
}

ReportFile::ReportFile(std::string path) : path_(std::move(path)) {
  fd_ = create_temp(path_, temp_);
  static const mode_t mode = creation_mode();
  ::fchmod(fd_, mode);  // mkstemp's 0600 would make reports private
}

ReportFile::~ReportFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void ReportFile::write(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd_, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw OutputError(fmt::format("{}: writing the report failed: {}", path_, errno_text(errno)));
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

void ReportFile::finish() {
  if (fd_ < 0) return;
  if (::fsync(fd_) != 0 && errno != EINVAL) {  // EINVAL: a file system without fsync
    throw OutputError(fmt::format("{}: flushing the report to disk failed: {}", path_, errno_text(errno)));
  }
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) {
    throw OutputError(fmt::format("{}: closing the report failed: {}", path_, errno_text(errno)));
  }
}

void ReportFile::commit() {
  finish();
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    throw OutputError(fmt::format("{}: renaming {} onto it failed: {}", path_, temp_, errno_text(errno)));
  }
  committed_ = true;
}

void write_reports(const std::vector<std::pair<std::string, std::string>>& reports) {
  std::vector<std::unique_ptr<ReportFile>> files;
  for (const auto& [path, text] : reports) {
    files.push_back(std::make_unique<ReportFile>(path));
    files.back()->write(text);
    files.back()->finish();
  }
  for (auto& f : files) f->commit();
}

}  // namespace runner
