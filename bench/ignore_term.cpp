// A payload that ignores SIGTERM and sleeps 10 s, printing nothing: only
// SIGKILL ends it early (deadline benchmark). No shell, no grandchild.
#include <csignal>
#include <unistd.h>

int main() {
  std::signal(SIGTERM, SIG_IGN);
  ::sleep(10);
  return 0;
}
