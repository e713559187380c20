// Demo payload: fails with a diagnostic on stderr and exit code --code
// (default 3).
#include <cstdio>

#include "demo_args.hpp"

int main(int argc, char** argv) {
  const long code = demo::int_arg(argc, argv, "--code", 3);
  std::printf("probing device...\n");
  std::fprintf(stderr,
               "failer: opening /dev/demo-missing: No such file or directory\n"
               "failer: giving up after 3 attempts (exit code %ld)\n",
               code);
  return static_cast<int>(code);
}
