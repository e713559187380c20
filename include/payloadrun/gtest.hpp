// payloadrun: optional GoogleMock matchers for tests that run payloads.
//
//   #include <payloadrun/gtest.hpp>
//   using namespace payloadrun::testing;
//   EXPECT_THAT(completion, Passed());
//   EXPECT_THAT(completion.metrics, HasMetric("jobs.0.read.iops", Ge(1000)));
//   EXPECT_THAT(completion, HasDetail(DetailKind::other, HasSubstr("below minimum")));
//
// A failing match explains itself with the failure details and the stderr
// tail (Completion) or the metrics present (PayloadMetrics). Header-only;
// link gtest/gmock yourself. Also defines PrintTo for the result types so
// gtest prints them readably.
#pragma once

#include <gmock/gmock.h>

#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>

#include "payloadrun/check.hpp"
#include "payloadrun/emitter.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/metrics.hpp"

namespace payloadrun {

inline void PrintTo(const AssertDetail& d, std::ostream* os) {
  *os << "[" << to_string(d.kind) << "] " << d.message;
}

inline void PrintTo(const AssertResult& r, std::ostream* os) {
  *os << (r.passed ? "passed" : "failed");
  for (std::size_t i = 0; i < r.details.size(); ++i) {
    *os << (i ? "; " : ": ");
    PrintTo(r.details[i], os);
  }
}

inline void PrintTo(const Metric& m, std::ostream* os) {
  *os << m.name << "=" << format_value(m.value);
  if (!m.unit.empty()) *os << " " << m.unit;
}

inline void PrintTo(const PayloadMetrics& m, std::ostream* os) {
  constexpr std::size_t max_listed = 16;
  *os << "exit " << m.exit_code << (m.timed_out ? ", timed out" : "") << ", " << m.size() << " metrics [";
  std::size_t i = 0;
  for (const Metric metric : m) {
    if (i == max_listed) {
      *os << ", ... " << m.size() - i << " more";
      break;
    }
    if (i++) *os << ", ";
    PrintTo(metric, os);
  }
  *os << "]";
}

inline void PrintTo(const Completion& c, std::ostream* os) {
  *os << "Completion{" << c.payload_name << ", pid " << c.pid << ", ";
  PrintTo(c.result, os);
  *os << ", ";
  PrintTo(c.metrics, os);
  if (c.error) *os << ", supervision error: " << *c.error;
  if (!c.stderr_text.empty()) *os << ", stderr tail:\n" << stderr_tail(c.stderr_text);
  *os << "}";
}

namespace testing {

namespace detail {

inline void explain_failures(const AssertResult& r, std::string_view stderr_text,
                             ::testing::MatchResultListener* l) {
  if (!l->IsInterested()) return;
  *l << (r.passed ? "passed" : "failed");
  for (std::size_t i = 0; i < r.details.size(); ++i) {
    *l << (i ? "; " : ": ") << "[" << to_string(r.details[i].kind) << "] " << r.details[i].message;
  }
  if (!stderr_text.empty()) *l << "\nstderr tail:\n" << stderr_tail(stderr_text);
}

class PassedMatcher {
 public:
  explicit PassedMatcher(bool want_passed) : want_passed_(want_passed) {}
  bool MatchAndExplain(const Completion& c, ::testing::MatchResultListener* l) const {
    const bool passed = c.result.passed && !c.error;
    explain_failures(c.result, c.stderr_text, l);
    if (c.error && l->IsInterested()) *l << "\nsupervision error: " << *c.error;
    return passed == want_passed_;
  }
  bool MatchAndExplain(const AssertResult& r, ::testing::MatchResultListener* l) const {
    explain_failures(r, {}, l);
    return r.passed == want_passed_;
  }
  void DescribeTo(std::ostream* os) const { *os << (want_passed_ ? "passed its checks" : "failed its checks"); }
  void DescribeNegationTo(std::ostream* os) const {
    *os << (want_passed_ ? "failed its checks" : "passed its checks");
  }

 private:
  bool want_passed_;
};

class HasMetricMatcher {
 public:
  HasMetricMatcher(std::string name, std::optional<::testing::Matcher<double>> value)
      : name_(std::move(name)), value_(std::move(value)) {}
  bool MatchAndExplain(const PayloadMetrics& m, ::testing::MatchResultListener* l) const {
    const std::optional<double> v = m.get(name_);
    if (!v) {
      if (l->IsInterested()) {
        *l << "has no metric \"" << name_ << "\"; it has " << m.size() << " metric" << (m.size() == 1 ? "" : "s");
        std::size_t i = 0;
        for (const Metric metric : m) {
          if (i == 16) {
            *l << ", ...";
            break;
          }
          *l << (i++ ? ", " : ": ") << metric.name;
        }
      }
      return false;
    }
    *l << "metric \"" << name_ << "\" = " << format_value(*v);
    if (!value_) return true;
    ::testing::StringMatchResultListener inner;
    const bool ok = value_->MatchAndExplain(*v, &inner);
    if (!inner.str().empty()) *l << ", " << inner.str();
    return ok;
  }
  bool MatchAndExplain(const Completion& c, ::testing::MatchResultListener* l) const {
    return MatchAndExplain(c.metrics, l);
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has a metric \"" << name_ << "\"";
    if (value_) {
      *os << " whose value ";
      value_->DescribeTo(os);
    }
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "has no metric \"" << name_ << "\"";
    if (value_) {
      *os << " whose value ";
      value_->DescribeTo(os);
    }
  }

 private:
  std::string name_;
  std::optional<::testing::Matcher<double>> value_;
};

class HasDetailMatcher {
 public:
  HasDetailMatcher(std::optional<DetailKind> kind, ::testing::Matcher<const std::string&> message)
      : kind_(kind), message_(std::move(message)) {}
  bool MatchAndExplain(const AssertResult& r, ::testing::MatchResultListener* l) const {
    for (const auto& d : r.details) {
      if ((!kind_ || d.kind == *kind_) && message_.Matches(d.message)) {
        *l << "detail [" << to_string(d.kind) << "] matches";
        return true;
      }
    }
    explain_failures(r, {}, l);
    return false;
  }
  bool MatchAndExplain(const Completion& c, ::testing::MatchResultListener* l) const {
    if (MatchAndExplain(c.result, l)) return true;
    if (!c.stderr_text.empty() && l->IsInterested()) *l << "\nstderr tail:\n" << stderr_tail(c.stderr_text);
    return false;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has a failure detail";
    if (kind_) *os << " of kind " << to_string(*kind_);
    *os << " whose message ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "has no such failure detail (";
    DescribeTo(os);
    *os << ")";
  }

 private:
  std::optional<DetailKind> kind_;
  ::testing::Matcher<const std::string&> message_;
};

}  // namespace detail

/// The invocation passed its checks (and supervision reported no error).
/// Works on Completion and AssertResult.
inline ::testing::PolymorphicMatcher<detail::PassedMatcher> Passed() {
  return ::testing::MakePolymorphicMatcher(detail::PassedMatcher(true));
}

/// The invocation failed its checks. Works on Completion and AssertResult.
inline ::testing::PolymorphicMatcher<detail::PassedMatcher> Failed() {
  return ::testing::MakePolymorphicMatcher(detail::PassedMatcher(false));
}

/// A metric called `name` exists (PayloadMetrics or Completion).
inline ::testing::PolymorphicMatcher<detail::HasMetricMatcher> HasMetric(std::string name) {
  return ::testing::MakePolymorphicMatcher(detail::HasMetricMatcher(std::move(name), std::nullopt));
}

/// A metric called `name` exists and its value matches `value` (a matcher
/// such as Ge(1000), or a number for equality).
template <class ValueMatcher>
::testing::PolymorphicMatcher<detail::HasMetricMatcher> HasMetric(std::string name, ValueMatcher value) {
  return ::testing::MakePolymorphicMatcher(
      detail::HasMetricMatcher(std::move(name), ::testing::SafeMatcherCast<double>(value)));
}

/// Some failure detail of `kind` has a message matching `message`
/// (a string matcher such as HasSubstr("below minimum")).
template <class MessageMatcher>
::testing::PolymorphicMatcher<detail::HasDetailMatcher> HasDetail(DetailKind kind, MessageMatcher message) {
  return ::testing::MakePolymorphicMatcher(
      detail::HasDetailMatcher(kind, ::testing::SafeMatcherCast<const std::string&>(message)));
}

/// Some failure detail (any kind) has a message matching `message`.
template <class MessageMatcher>
::testing::PolymorphicMatcher<detail::HasDetailMatcher> HasDetail(MessageMatcher message) {
  return ::testing::MakePolymorphicMatcher(
      detail::HasDetailMatcher(std::nullopt, ::testing::SafeMatcherCast<const std::string&>(message)));
}

/// The payload exited with a code matching `code` (-1: died by a signal).
template <class CodeMatcher>
auto ExitedWith(CodeMatcher code) {
  return ::testing::Field("metrics", &Completion::metrics,
                          ::testing::Field("exit_code", &PayloadMetrics::exit_code,
                                           ::testing::SafeMatcherCast<int>(code)));
}

/// The deadline expired and the payload was killed.
inline auto TimedOut() {
  return ::testing::Field("metrics", &Completion::metrics,
                          ::testing::Field("timed_out", &PayloadMetrics::timed_out, true));
}

}  // namespace testing
}  // namespace payloadrun
