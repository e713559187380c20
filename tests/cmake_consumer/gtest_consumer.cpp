// A consumer of payloadrun/gtest.hpp (the matchers), built by the install
// test from payloadrun-gtest.pc and from CMake's payloadrun::gtest.
#include <payloadrun/gtest.hpp>
#include <payloadrun/payloadrun.hpp>

using namespace payloadrun::testing;

TEST(InstalledMatchers, ExitCodes) {
  payloadrun::Supervisor supervisor;
  payloadrun::Payload fails = payloadrun::Payload::binary_payload("false", "/bin/false");
  fails.default_checks = {payloadrun::MetricCheck::exit_code_eq(0)};
  EXPECT_THAT(supervisor.payload(payloadrun::Payload::binary_payload("true", "/bin/true")).run(),
              ExitedWith(0));
  payloadrun::Completion c = supervisor.payload(fails).run();
  EXPECT_THAT(c, ExitedWith(1));
  EXPECT_THAT(c, Failed());
}

int main(int argc, char** argv) {
  ::testing::InitGoogleMock(&argc, argv);
  return RUN_ALL_TESTS();
}
