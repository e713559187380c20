// payloadrun runner: the files it reads (scenarios, reports, sidecars) and
// the reports it writes.
//
// Inputs are bounded: a regular file of at most max_input_bytes, never a
// FIFO (opened without blocking), a device or a directory. Outputs are
// atomic: written to a temporary file in the same directory, every write and
// the close checked, fsync'ed, then renamed into place, so a killed or
// failing run leaves the previous file or none, never a truncated one.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace runner {

/// The largest scenario or report read (64 MiB).
inline constexpr std::size_t max_input_bytes = std::size_t{64} << 20;

/// An input that cannot be read; what() names the file and what it is.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An output that cannot be written; what() names the file and strerror.
class OutputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Exit status when a report could not be written (EX_IOERR of sysexits.h):
/// the run finished, but its report is not there (any previous one is).
inline constexpr int exit_report_write_failed = 74;

/// Throws InputError unless `path` is a regular file of at most `limit`
/// bytes (`what` names it in messages: "scenario file", "report"). Never
/// blocks on a FIFO.
void check_input_file(const std::string& path, const char* what, std::size_t limit = max_input_bytes);

/// The whole text of `path`, checked as check_input_file does.
std::string read_input_file(const std::string& path, const char* what, std::size_t limit = max_input_bytes);

/// A role and a path, for refusing outputs that name an input or each
/// other ("--json", "the scenario file", ...).
struct NamedPath {
  std::string role;
  std::string path;
};

/// The first output that is the same file as an input or an earlier output
/// (same st_dev/st_ino when it exists, else the same resolved path: ./x and
/// x, a symlinked directory), as a message; empty when all are distinct.
std::string find_aliased_output(const std::vector<NamedPath>& inputs, const std::vector<NamedPath>& outputs);

/// Throws OutputError unless a file can be created in `path`'s directory
/// (creates and removes a temporary file there; `path` is not touched) and
/// `path`, if it exists, is a regular file (not a directory, device, FIFO).
void probe_output(const std::string& path);

/// One report being written: a temporary file beside `path`, renamed onto
/// `path` by commit(); removed if never committed.
class ReportFile {
 public:
  explicit ReportFile(std::string path);  ///< creates the temporary file; throws OutputError
  ~ReportFile();
  ReportFile(const ReportFile&) = delete;
  ReportFile& operator=(const ReportFile&) = delete;

  void write(std::string_view text);  ///< all of it, or OutputError
  /// fsync and close the temporary file (OutputError on failure).
  void finish();
  /// finish() if not yet done, then rename onto the path (OutputError).
  void commit();
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
};

/// Write each (path, text) atomically: every temporary file is written and
/// closed before the first rename, so a failing write leaves every path as
/// it was. Throws OutputError naming the file.
void write_reports(const std::vector<std::pair<std::string, std::string>>& reports);

}  // namespace runner
