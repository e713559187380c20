// The runner's graceful stop keys (issue 18): "stop_signal" and
// "stop_grace_ms" parsed, refused with the payload and key named, and run end
// to end with real shells that print their results on SIGINT.
#include <signal.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>

#include "scenario.hpp"
#include "test_runner_util.hpp"

using namespace runner;
using namespace runner_test;
using ::testing::HasSubstr;

namespace {

std::string stop_error(const std::string& fields) {
  try {
    parse_scenario(R"({"payloads": [{"name": "fio", "binary": "b", )" + fields + "}]}", "s.json", "/base");
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RunnerStop, ParsesNamesNumbersAndTheGrace) {
  const Scenario s = parse_scenario(R"({"payloads": [
    {"name": "a", "binary": "b", "stop_signal": "SIGINT", "stop_grace_ms": 2000},
    {"name": "b", "binary": "b", "stop_signal": "SIGUSR2"},
    {"name": "c", "binary": "b", "stop_signal": 3, "stop_grace_ms": 0},
    {"name": "d", "binary": "b", "stop_grace_ms": 10},
    {"name": "e", "binary": "b"}]})",
                                    "s.json", "/base");
  ASSERT_EQ(s.payloads.size(), 5u);
  EXPECT_EQ(s.payloads[0].stop_signal, SIGINT);
  EXPECT_EQ(s.payloads[0].stop_grace, std::chrono::milliseconds(2000));
  EXPECT_EQ(s.payloads[1].stop_signal, SIGUSR2);
  EXPECT_FALSE(s.payloads[1].stop_grace.has_value());
  EXPECT_EQ(s.payloads[2].stop_signal, SIGQUIT);
  EXPECT_EQ(s.payloads[2].stop_grace, std::chrono::milliseconds(0));
  EXPECT_FALSE(s.payloads[3].stop_signal.has_value());
  EXPECT_EQ(s.payloads[3].stop_grace, std::chrono::milliseconds(10));
  EXPECT_FALSE(s.payloads[4].stop_signal.has_value()) << "default: the seed's immediate SIGKILL";
  EXPECT_FALSE(s.payloads[4].stop_grace.has_value());
  for (const char* name : {"SIGTERM", "SIGHUP", "SIGUSR1", "SIGQUIT"}) {
    EXPECT_EQ(stop_error(std::string(R"("stop_signal": ")") + name + "\""), "(no error)") << name;
  }
}

TEST(RunnerStop, BadValuesNameThePayloadAndTheKey) {
  EXPECT_EQ(stop_error(R"("stop_signal": "SIGFOO")"),
            R"(s.json: payloads[0].stop_signal: payload "fio": unknown stop signal "SIGFOO"; expected "SIGINT", )"
            R"("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT" or a signal number)");
  EXPECT_THAT(stop_error(R"("stop_signal": "sigint")"), HasSubstr(R"(unknown stop signal "sigint")"));
  EXPECT_THAT(stop_error(R"("stop_signal": 19)"),
              HasSubstr(R"(payloads[0].stop_signal: payload "fio": stop signal 19 is not a signal to stop with)"));
  EXPECT_THAT(stop_error(R"("stop_signal": 0)"), HasSubstr(R"(payload "fio": stop signal 0 is not)"));
  EXPECT_THAT(stop_error(R"("stop_signal": 2.5)"), HasSubstr(R"(payloads[0].stop_signal: payload "fio": expected)"));
  EXPECT_THAT(stop_error(R"("stop_signal": true)"), HasSubstr(R"(payloads[0].stop_signal: payload "fio": expected)"));
  EXPECT_THAT(stop_error(R"("stop_grace_ms": -1)"),
              HasSubstr("payloads[0].stop_grace_ms: expected a non-negative integer (milliseconds"));
  EXPECT_THAT(stop_error(R"("stop_grace_ms": "2s")"), HasSubstr("payloads[0].stop_grace_ms: expected"));
  EXPECT_THAT(stop_error(R"("stop_grace": 5)"), HasSubstr("stop_grace"));  // unknown key
}

struct Invocation {
  bool timed_out = false;
  bool passed = false;
  double duration_ms = 0;
  std::map<std::string, double> metrics;
};

std::map<std::string, Invocation> read_report(const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::map<std::string, Invocation> out;
  if (auto err = parser.load(path).get(root)) {
    ADD_FAILURE() << path << ": " << simdjson::error_message(err);
    return out;
  }
  simdjson::dom::array invs;  // by value: a range-for over a temporary's value() dangles
  if (root["invocations"].get(invs) != simdjson::SUCCESS) {
    ADD_FAILURE() << path << ": no invocations";
    return out;
  }
  for (simdjson::dom::element inv : invs) {
    Invocation r;
    r.timed_out = inv["timed_out"].get_bool().value();
    r.passed = inv["passed"].get_bool().value();
    r.duration_ms = inv["duration_ms"].get_double().value();
    simdjson::dom::array metrics;
    if (inv["metrics"].get(metrics) != simdjson::SUCCESS) continue;
    for (simdjson::dom::element m : metrics) {
      r.metrics[std::string(m["name"].get_string().value())] = m["value"].get_double().value();
    }
    out[std::string(inv["payload"].get_string().value())] = r;
  }
  return out;
}

TEST(RunnerStop, ADeadlineWithAStopSignalKeepsWhatThePayloadPrints) {
  // fio-like shells: they print their report on SIGINT. Their `sleep`
  // children get the signal too (the whole group), so the trap runs.
  TempDir dir;
  const std::string reporter = R"(trap 'echo \"{\\\"iops\\\": 1234}\"; exit 0' INT; while :; do sleep 0.05; done)";
  const std::string stubborn = R"(trap '' INT; while :; do sleep 0.05; done)";
  write_file(dir.file("s.json"), R"({"payloads": [
    {"name": "graceful", "binary": "sh", "args": ["-c", ")" + reporter + R"("], "output": "json",
     "checks": [{"min": {"metric": "iops", "value": 1000}}],
     "timeout_ms": 700, "stop_signal": "SIGINT", "stop_grace_ms": 5000},
    {"name": "seed", "binary": "sh", "args": ["-c", ")" + reporter + R"("], "output": "json",
     "checks": [{"min": {"metric": "iops", "value": 1000}}], "timeout_ms": 700},
    {"name": "stubborn", "binary": "sh", "args": ["-c", ")" + stubborn + R"("], "output": "json",
     "timeout_ms": 700, "stop_signal": 2, "stop_grace_ms": 800}]})");
  const ProgramResult r = run_program({"run", dir.file("s.json"), "--json", dir.file("r.json")},
                                      std::chrono::seconds(60));
  ASSERT_EQ(r.status, 1) << r.out << r.err;  // "seed" fails its check
  auto invs = read_report(dir.file("r.json"));
  ASSERT_EQ(invs.size(), 3u);
  const Invocation& g = invs["graceful"];
  EXPECT_TRUE(g.timed_out);
  EXPECT_EQ(g.metrics.count("iops") ? g.metrics.at("iops") : -1, 1234) << "the report printed on SIGINT is extracted";
  EXPECT_TRUE(g.passed);
  EXPECT_LT(g.duration_ms, 4000) << "the shell's exit ends the grace";
  const Invocation& s = invs["seed"];
  EXPECT_TRUE(s.timed_out);
  EXPECT_TRUE(s.metrics.empty()) << "the default stays the seed's immediate SIGKILL";
  EXPECT_FALSE(s.passed);
  const Invocation& st = invs["stubborn"];
  EXPECT_TRUE(st.timed_out);
  EXPECT_GE(st.duration_ms, 1450) << "SIGKILL came before the 800 ms grace";
  EXPECT_LT(st.duration_ms, 5000);
}

}  // namespace
