// The one JSON writer and field reader (lib/detail/json_write.hpp,
// json_fields.hpp; docs/json.md): escaping, invalid UTF-8, non-finite
// doubles, the ring codec's round trip and error wording through them.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <limits>
#include <string>

#include "detail/json_fields.hpp"
#include "detail/json_write.hpp"
#include "payloadrun/error.hpp"
#include "payloadrun/evaluate.hpp"
#include "payloadrun/ring.hpp"

using namespace payloadrun;

namespace {

TEST(Json, EscapesControlCharactersAsUnicodeEscapes) {
  using payloadrun::detail::json_quote;
  EXPECT_EQ(json_quote(std::string("a\"b\\c\n\r\t", 8)), R"("a\"b\\c\n\r\t")");
  EXPECT_EQ(json_quote(std::string("\x00\x01\x08\x0c\x1f\x7f", 6)), R"("\u0000\u0001\u0008\u000c\u001f\u007f")");
  EXPECT_EQ(json_quote("caf\xC3\xA9 \xE2\x82\xAC"), "\"caf\xC3\xA9 \xE2\x82\xAC\"") << "valid UTF-8 is verbatim";
}

TEST(Json, InvalidUtf8BecomesOneReplacementPerMaximalSubpart) {
  using payloadrun::detail::json_quote;
  EXPECT_EQ(json_quote("a\xff" "b"), "\"a\xEF\xBF\xBD" "b\"");
  EXPECT_EQ(json_quote("\xE2\x82"), "\"\xEF\xBF\xBD\"") << "a truncated sequence is one U+FFFD";
  EXPECT_EQ(json_quote("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"") << "an overlong form: two";
  simdjson::dom::parser parser;
  for (const std::string s : {"\xff\xfe", "ok\xed\xa0\x80", "x\x01\xf4\x90\x80\x80"}) {
    const std::string q = json_quote(s);
    std::string_view back;
    ASSERT_EQ(parser.parse(q).get_string().get(back), simdjson::SUCCESS) << q;
    EXPECT_EQ(back, utf8_lossy(s));
  }
}

TEST(Json, NonFiniteDoublesAreStringsAndReadBack) {
  using payloadrun::detail::json_number;
  using payloadrun::detail::json_read_double;
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(json_number(std::nan("")), R"("NaN")");
  EXPECT_EQ(json_number(inf), R"("Infinity")");
  EXPECT_EQ(json_number(-inf), R"("-Infinity")");
  EXPECT_EQ(json_number(7), "7.0");
  EXPECT_EQ(json_number(-0.0), "-0.0");
  EXPECT_EQ(json_number(2.5e-7), "2.5e-07");
  simdjson::dom::parser parser;
  for (const double v : {inf, -inf, 0.1, -0.0, 1e300, 7.0}) {
    double back = 0;
    const std::string text = json_number(v);
    ASSERT_TRUE(json_read_double(parser.parse(text), back)) << text;
    EXPECT_EQ(back, v) << text;
    EXPECT_EQ(std::signbit(back), std::signbit(v)) << text;
  }
  double back = 0;
  ASSERT_TRUE(json_read_double(parser.parse(json_number(std::nan(""))), back));
  EXPECT_TRUE(std::isnan(back));
  EXPECT_FALSE(json_read_double(parser.parse(std::string("null")), back)) << "null only where asked";
  ASSERT_TRUE(json_read_double(parser.parse(std::string("null")), back, true));
  EXPECT_TRUE(std::isnan(back));
  EXPECT_FALSE(json_read_double(parser.parse(std::string(R"("nan")")), back));
}

TEST(Json, RingRecordsRoundTripNonFiniteAndControlCharacters) {
  Completion c;
  c.payload_name = std::string("p\x01\n\x7f", 4);
  const double inf = std::numeric_limits<double>::infinity();
  c.metrics.add("nan", std::nan(""));
  c.metrics.add("inf", inf);
  c.metrics.add("-inf", -inf);
  c.metrics.add("neg0", -0.0);
  const MetricsRecord r = decode_metrics(encode_metrics(c, false));
  EXPECT_EQ(r.payload_name, c.payload_name);
  ASSERT_EQ(r.metrics.size(), 4u);
  EXPECT_TRUE(std::isnan(r.metrics[0].value));
  EXPECT_EQ(r.metrics[1].value, inf);
  EXPECT_EQ(r.metrics[2].value, -inf);
  EXPECT_TRUE(std::signbit(r.metrics[3].value));
  // An old-style record (written by any version 1 producer) decodes the same.
  const std::string body = encode_metrics(c, false);
  EXPECT_NE(body.find(R"("value":"NaN")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("p\u0001\n\u007f")"), std::string::npos) << body;
}

TEST(Json, RingDecodeErrorsNameTheFieldAndWhatWasExpected) {
  Completion c;
  c.metrics.add("x", 1);
  std::string body = encode_metrics(c, false);
  body.replace(body.find("\"value\":1.0"), 11, "\"value\":true");
  try {
    decode_metrics(body);
    ADD_FAILURE() << "decoded";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              R"(ring record body is malformed: value: expected a number, "NaN", "Infinity" or "-Infinity", got a boolean)");
  }
}

}  // namespace
