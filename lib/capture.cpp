// Capture stage: read stdout and stderr from their pipes (in the
// supervisor's watch set), concurrently, each capped (bytes past the cap
// are read and discarded, so a chatty payload never blocks on a full pipe),
// and feed stdin bytes through a libuv pipe if given; when the leader exits,
// note a stream another process still holds (its unwritten output is lost
// to the group kill).
#include <fcntl.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "detail/errno_text.hpp"
#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun::detail {
namespace {

void on_stdin_written(uv_write_t* req, int status) {
  Invocation* inv = static_cast<Invocation*>(req->data);
  dispatch(inv->impl, "stdin write", [&] {
    if (status != 0 && status != UV_EPIPE && status != UV_ECANCELED) {
      logger()->warn("payload '{}': writing stdin failed: {}", inv->payload->name,
                     uv_strerror(status));
    }
    if (inv->rare) close_slot(*inv, inv->rare->stdin_pipe);
  });
}

void open_pipe(Invocation& inv, HandleSlot<uv_pipe_t>& pipe, UniqueFd fd, const char* what) {
  uv_pipe_init(inv.impl->loop, &pipe.handle, 0);
  slot_opened(inv, pipe);
  const int rc = uv_pipe_open(&pipe.handle, fd.get());
  if (rc != 0) {
    throw Error(Errc::io,
                fmt::format("spawn payload '{}': cannot watch its {}: {}", inv.payload->name, what,
                            uv_strerror(rc)),
                -rc);
  }
  fd.release();  // the pipe handle owns it now
}

}  // namespace

void start_capture(Invocation& inv, UniqueFd out, UniqueFd err, UniqueFd stdin_write) {
  inv.out.fd = std::move(out);
  inv.out.tag.kind = WatchKind::out;
  watch_fd(inv, inv.out.fd.get(), inv.out.tag, "stdout");
  inv.err.fd = std::move(err);
  inv.err.tag.kind = WatchKind::err;
  watch_fd(inv, inv.err.fd.get(), inv.err.tag, "stderr");
  if (stdin_write) {
    RareHandles& rare = rare_handles(inv);
    open_pipe(inv, rare.stdin_pipe, std::move(stdin_write), "stdin");
    uv_buf_t buf = uv_buf_init(rare.stdin_data.data(), static_cast<unsigned>(rare.stdin_data.size()));
    rare.stdin_req.data = &inv;
    const int rc = uv_write(&rare.stdin_req, reinterpret_cast<uv_stream_t*>(&rare.stdin_pipe.handle),
                            &buf, 1, on_stdin_written);
    if (rc != 0) {
      logger()->warn("payload '{}': cannot write stdin: {}", inv.payload->name, uv_strerror(rc));
      close_slot(inv, rare.stdin_pipe);
    }
  }
}

namespace {

const char* stream_name(const Invocation& inv, const StreamCapture& s) {
  return &s == &inv.out ? "stdout" : "stderr";
}

enum class ReadOutcome { data, empty, ended };

// One read: bytes kept up to the cap; `ended` at EOF or an error.
ReadOutcome read_once(Invocation& inv, StreamCapture& s, std::size_t* got = nullptr) {
  char* buf = inv.impl->read_buffer.get();
  const long nread = read_nowait(*inv.impl, s.fd.get(), buf, SupervisorImpl::read_buffer_size);
  if (nread > 0) {
    const auto n = static_cast<std::size_t>(nread);
    if (got != nullptr) *got = n;
    const std::size_t cap = inv.impl->options.capture_limit;
    const std::size_t room = s.data.size() < cap ? cap - s.data.size() : 0;
    const std::size_t keep = n < room ? n : room;
    s.data.append(buf, keep);
    if (keep < n) {
      if (s.discarded == 0) {
        logger()->warn("payload '{}' {} exceeded {} bytes; the rest is discarded", inv.payload->name,
                       stream_name(inv, s), cap);
      }
      s.discarded += n - keep;
    }
    return ReadOutcome::data;
  }
  if (nread < 0 && errno == EAGAIN) return ReadOutcome::empty;
  if (nread < 0) {
    const int e = errno;
    logger()->warn("payload '{}': reading {} failed: {}", inv.payload->name,
                   stream_name(inv, s), errno_text(e));
  }
  return ReadOutcome::ended;
}

}  // namespace

void on_stream_ready(Invocation& inv, StreamCapture& s) {
  // One read per readiness (level-triggered: more data means another event).
  if (read_once(inv, s) != ReadOutcome::ended) return;
  close_stream(inv, s);  // EOF (or an error: nothing more will come)
  maybe_complete(inv);
}

void note_open_streams(Invocation& inv) noexcept {
  // The leader's fds closed before its pidfd woke us: a pipe that is empty
  // but not at EOF, or that yields more than it can buffer, has another
  // writer. Reading what it holds first keeps the leader's own output.
  for (StreamCapture* s : {&inv.out, &inv.err}) {
    if (s->at_eof) continue;
    const int size = ::fcntl(s->fd.get(), F_GETPIPE_SZ);
    const std::size_t capacity = size > 0 ? static_cast<std::size_t>(size) : 1u << 20;
    std::size_t total = 0;
    for (;;) {
      std::size_t got = 0;
      const ReadOutcome r = read_once(inv, *s, &got);
      if (r == ReadOutcome::ended) {
        close_stream(inv, *s);  // the leader's exit completes it as usual
        break;
      }
      total += got;
      if (r == ReadOutcome::empty || total > capacity) {
        s->open_at_group_kill = true;
        logger()->info("payload '{}': {} still open when the leader exited; its group is killed "
                       "(output not yet written is lost)",
                       inv.payload->name, stream_name(inv, *s));
        break;
      }
    }
  }
}

void explain_lost_output(const Invocation& inv, Completion& c) {
  if (c.result.passed) return;
  for (const StreamCapture* s : {&inv.out, &inv.err}) {
    if (!s->open_at_group_kill) continue;
    c.result.details.push_back(AssertDetail{
        DetailKind::other,
        fmt::format("{} was still open when the process group was killed after the leader "
                    "exited: a process outliving the leader held it; output it had not written "
                    "is lost",
                    stream_name(inv, *s))});
  }
}

void close_stream(Invocation& inv, StreamCapture& s) noexcept {
  s.at_eof = true;
  unwatch_fd(inv, s.fd.get(), s.tag);
  s.fd.reset();
}

bool streams_done(const Invocation& inv) noexcept { return inv.out.at_eof && inv.err.at_eof; }

}  // namespace payloadrun::detail
