// Capture stage: read stdout and stderr through libuv pipes, concurrently,
// each capped (bytes past the cap are read and discarded, so a chatty
// payload never blocks on a full pipe), and feed stdin bytes if given.
#include <uv.h>

#include <cstring>

#include <fmt/format.h>

#include "detail/invocation.hpp"
#include "detail/log.hpp"
#include "payloadrun/error.hpp"

namespace payloadrun::detail {
namespace {

Invocation* owner_of(uv_handle_t* h) { return static_cast<Invocation*>(h->data); }

void on_alloc(uv_handle_t* h, std::size_t /*suggested*/, uv_buf_t* buf) {
  Invocation* inv = owner_of(h);
  // All streams of the supervisor share one buffer: libuv calls alloc and
  // then read for one stream at a time on this thread.
  if (inv->impl == nullptr) {
    *buf = uv_buf_init(nullptr, 0);
    return;
  }
  *buf = uv_buf_init(inv->impl->read_buffer.get(),
                     static_cast<unsigned>(Supervisor::Impl::read_buffer_size));
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  Invocation* inv = owner_of(reinterpret_cast<uv_handle_t*>(stream));
  dispatch(inv->impl, "pipe read", [&] {
    StreamCapture& s = reinterpret_cast<uv_pipe_t*>(stream) == &inv->out.pipe ? inv->out : inv->err;
    if (nread > 0) {
      const std::size_t n = static_cast<std::size_t>(nread);
      const std::size_t cap = inv->impl != nullptr ? inv->impl->options.capture_limit : 0;
      const std::size_t room = s.data.size() < cap ? cap - s.data.size() : 0;
      const std::size_t keep = n < room ? n : room;
      s.data.append(buf->base, keep);
      if (keep < n) {
        if (s.discarded == 0) {
          logger()->warn("payload '{}' {} exceeded {} bytes; the rest is discarded",
                         inv->payload->name, &s == &inv->out ? "stdout" : "stderr", cap);
        }
        s.discarded += n - keep;
      }
      return;
    }
    if (nread == 0) return;  // EAGAIN
    if (nread != UV_EOF) {
      logger()->warn("payload '{}': reading {} failed: {}", inv->payload->name,
                     &s == &inv->out ? "stdout" : "stderr", uv_strerror(static_cast<int>(nread)));
    }
    close_stream(*inv, s);
    maybe_complete(*inv);
  });
}

void on_stdin_written(uv_write_t* req, int status) {
  Invocation* inv = static_cast<Invocation*>(req->data);
  dispatch(inv->impl, "stdin write", [&] {
    if (status != 0 && status != UV_EPIPE && status != UV_ECANCELED) {
      logger()->warn("payload '{}': writing stdin failed: {}", inv->payload->name,
                     uv_strerror(status));
    }
    close_if_open(*inv, inv->stdin_open, &inv->stdin_pipe);
  });
}

void open_pipe(Invocation& inv, uv_pipe_t& pipe, UniqueFd fd, const char* what) {
  uv_loop_t* loop = inv.impl->loop;
  uv_pipe_init(loop, &pipe, 0);
  pipe.data = &inv;
  ++inv.open_handles;
  const int rc = uv_pipe_open(&pipe, fd.get());
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
  inv.out.open = true;
  open_pipe(inv, inv.out.pipe, std::move(out), "stdout");
  inv.err.open = true;
  open_pipe(inv, inv.err.pipe, std::move(err), "stderr");
  for (StreamCapture* s : {&inv.out, &inv.err}) {
    const int rc = uv_read_start(reinterpret_cast<uv_stream_t*>(&s->pipe), on_alloc, on_read);
    if (rc != 0) {
      throw Error(Errc::io,
                  fmt::format("spawn payload '{}': cannot read its output: {}", inv.payload->name,
                              uv_strerror(rc)),
                  -rc);
    }
  }
  if (stdin_write) {
    inv.stdin_open = true;
    open_pipe(inv, inv.stdin_pipe, std::move(stdin_write), "stdin");
    uv_buf_t buf = uv_buf_init(inv.stdin_data.data(), static_cast<unsigned>(inv.stdin_data.size()));
    inv.stdin_req.data = &inv;
    const int rc = uv_write(&inv.stdin_req, reinterpret_cast<uv_stream_t*>(&inv.stdin_pipe), &buf,
                            1, on_stdin_written);
    if (rc != 0) {
      logger()->warn("payload '{}': cannot write stdin: {}", inv.payload->name, uv_strerror(rc));
      inv.stdin_open = false;
      close_handle(inv, reinterpret_cast<uv_handle_t*>(&inv.stdin_pipe));
    }
  }
}

void close_stream(Invocation& inv, StreamCapture& s) {
  s.eof = true;
  if (!s.open) return;
  s.open = false;
  uv_read_stop(reinterpret_cast<uv_stream_t*>(&s.pipe));
  close_handle(inv, reinterpret_cast<uv_handle_t*>(&s.pipe));
}

bool streams_done(const Invocation& inv) { return inv.out.eof && inv.err.eof; }

}  // namespace payloadrun::detail
