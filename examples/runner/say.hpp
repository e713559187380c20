// payloadrun runner: printing to the terminal. A write to a closed or
// vanished stdout/stderr (EPIPE with SIGPIPE ignored, EBADF) is not an error
// of the run: `say` never throws (fmt::print would) and never kills.
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace runner {

template <class... T>
void say(std::FILE* out, fmt::format_string<T...> format, T&&... args) noexcept {
  try {
    const std::string text = fmt::format(format, std::forward<T>(args)...);
    std::fwrite(text.data(), 1, text.size(), out);
  } catch (...) {  // out of memory formatting a message: nothing better to do
  }
}

}  // namespace runner
