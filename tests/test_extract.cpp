// Metric extraction (ktstr's rules): finding the document, flattening, the
// serde_json parsing rules. Cross-checks against a naive flattener:
// test_extract_crosscheck.cpp.
#include <gtest/gtest.h>

#include "detail/metrics_access.hpp"
#include "extract_oracle.hpp"

namespace {

using namespace extract_test;  // and the payloadrun names it uses

// ---------------------------------------------------------------------------
// Finding the document.

TEST(ExtractDocument, WholeDocumentWithSurroundingWhitespace) {
  EXPECT_EQ(extract(" \n\t{\"a\": 1, \"b\": [2]}\r\n  "), (Flat{{"a", 1}, {"b.0", 2}}));
}

TEST(ExtractDocument, TrimIsRustsUnicodeTrim) {
  // A lone scalar only parses through the whole-text attempt, so these show
  // which whitespace is trimmed: str::trim's (Unicode White_Space).
  EXPECT_EQ(extract("  42 \n"), (Flat{{"", 42}}));
  EXPECT_EQ(extract("\x0c" "7\x0b"), (Flat{{"", 7}}));
  EXPECT_EQ(extract("\xC2\xA0" "42\xE3\x80\x80"), (Flat{{"", 42}}));  // NBSP, U+3000
  EXPECT_EQ(extract("\xE2\x80\xA8" "-1.5\xC2\x85"), (Flat{{"", -1.5}}));  // U+2028, NEL
  EXPECT_TRUE(extract("\x1c" "42").empty());  // U+001C is not White_Space
  EXPECT_TRUE(extract("42 43").empty());
}

TEST(ExtractDocument, BannerBeforeDocument) {
  EXPECT_EQ(extract("fio-3.36 starting up\n{\"iops\": 500}"), (Flat{{"iops", 500}}));
  EXPECT_EQ(extract("fio-3.36\nRunning fio with 4 jobs\n\n{\"jobs\": [{\"jobname\": \"t\", "
                    "\"read\": {\"iops\": 12345, \"bw_bytes\": 50593792}}], "
                    "\"disk_util\": [{\"util\": 99.5}]}"),
            (Flat{{"jobs.0.read.iops", 12345}, {"jobs.0.read.bw_bytes", 50593792},
                  {"disk_util.0.util", 99.5}}));
}

TEST(ExtractDocument, ProseAfterDocumentIsIgnored) {
  EXPECT_EQ(extract("{\"a\": 1, \"b\": 2} --- trailing prose"), (Flat{{"a", 1}, {"b", 2}}));
  EXPECT_EQ(extract("fio-3.36 starting up\n{\"iops\": 100}\nfio done }"), (Flat{{"iops", 100}}));
  EXPECT_EQ(extract("[1, 2, 3]\nextra: banner line\n"), (Flat{{"0", 1}, {"1", 2}, {"2", 3}}));
}

TEST(ExtractDocument, SeveralDocumentsYieldTheFirst) {
  EXPECT_EQ(extract("{\"first\": 1} unrelated {\"second\": 2}"), (Flat{{"first", 1}}));
  EXPECT_EQ(extract("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"), (Flat{{"a", 1}}));
}

TEST(ExtractDocument, DmesgPrefixIsTakenAsTheArray) {
  const std::string input = "[   0.001234] kernel boot banner\n{\"iops\": 100}";
  EXPECT_EQ(find_json_region(input), std::optional<std::string_view>("[   0.001234]"));
  // `[   0.001234]` is valid JSON (a one-element array): its element is the
  // only metric and the real `iops` is lost, as ktstr pins.
  EXPECT_EQ(extract(input), (Flat{{"0", 0.001234}}));
}

TEST(ExtractDocument, BalancedButUnparseableRegionYieldsNothing) {
  EXPECT_TRUE(extract("[stderr bracket message]\n{\"iops\": 300}").empty());
}

TEST(ExtractDocument, BracketsAndEscapedQuotesInStrings) {
  EXPECT_EQ(extract("log: {\"msg\": \"look at {nested} } ] in text\", \"ok\": 1} trailing"),
            (Flat{{"ok", 1}}));
  EXPECT_EQ(extract("x {\"t\": \"has \\\"escaped\\\" } quotes\", \"v\": 2} y"), (Flat{{"v", 2}}));
  EXPECT_EQ(extract("x {\"p\": \"C:\\\\\", \"v\": 3} }"), (Flat{{"v", 3}}));
}

TEST(ExtractDocument, UnbalancedOpenerYieldsNothing) {
  EXPECT_TRUE(extract("incomplete {\"a\": 1").empty());
  EXPECT_TRUE(extract("[FAIL stress-ng: worker timed out\n{\"iops\": 200}").empty());
}

TEST(ExtractDocument, MalformedOrEmptyYieldsNothing) {
  for (const char* bad : {"", "   \n", "garbage not json", "{\"a\": 1,}", "{\"a\" 1}",
                          "{\"a\": NaN}", "{\"a\": 01}", "{\"a\": .5}", "{\"a\": \"\x01\"}",
                          "[\"\\ud800\"]", "{\"a\": tru}", "[1 2]"}) {
    EXPECT_TRUE(extract(bad).empty()) << bad;
  }
  EXPECT_EQ(extract("{\"a\": 1} {"), (Flat{{"a", 1}}));
  EXPECT_TRUE(extract("{}").empty());
  EXPECT_TRUE(extract("{\"outer\": {\"inner\": {}, \"also\": []}}").empty());
}

TEST(ExtractDocument, InvalidUtf8IsReplacedAsFromUtf8Lossy) {
  EXPECT_EQ(extract("{\"k\xff\": 1, \"s\": \"\xc3\x28\", \"a\": 2}"),
            (Flat{{"k\xEF\xBF\xBD", 1}, {"a", 2}}));
  EXPECT_EQ(extract("\xfe\xff banner {\"a\": 1}"), (Flat{{"a", 1}}));
}

// ---------------------------------------------------------------------------
// Flattening.

TEST(ExtractFlatten, Names) {
  EXPECT_EQ(extract("{\"jobs\": [{\"read\": {\"iops\": 123}}]}"), (Flat{{"jobs.0.read.iops", 123}}));
  EXPECT_EQ(extract("{\"a\": [[1, 2], [3, 4]]}"),
            (Flat{{"a.0.0", 1}, {"a.0.1", 2}, {"a.1.0", 3}, {"a.1.1", 4}}));
  EXPECT_EQ(extract("{\"percentile\": {\"99.000000\": 8160, \"99.900000\": 9000}}"),
            (Flat{{"percentile.99.000000", 8160}, {"percentile.99.900000", 9000}}));
  EXPECT_EQ(extract("[10, 20]"), (Flat{{"0", 10}, {"1", 20}}));
  EXPECT_EQ(extract("{\"root\": {\"a\": 1, \"b\": 2}, \"c\": 3}"),
            (Flat{{"root.a", 1}, {"root.b", 2}, {"c", 3}}));
  // As ktstr: a '.' joins a segment only to a non-empty name.
  EXPECT_EQ(extract("{\"\": {\"\": 1}, \"\\u0061\\n\": 2}"), (Flat{{"", 1}, {"a\n", 2}}));
  EXPECT_EQ(extract("{\"\": {\"a\": [3]}, \"b\": {\"\": 4}}"), (Flat{{"a.0", 3}, {"b.", 4}}));
  EXPECT_EQ(extract("3.5"), (Flat{{"", 3.5}}));
  std::string many = "[";
  for (int i = 0; i < 12; ++i) many += (i ? ",": "") + std::to_string(i);
  EXPECT_EQ(extract(many + "]").back(), (std::pair<std::string, double>{"11", 11}));
}

TEST(ExtractFlatten, ZeroAndNegativeKept) {
  const Flat m = extract("{\"errors\": 0, \"idle\": 0.0, \"delta\": -500.5, \"under\": -1000000}");
  EXPECT_EQ(m, (Flat{{"errors", 0}, {"idle", 0}, {"delta", -500.5}, {"under", -1000000}}));
}

TEST(ExtractFlatten, NegativeZeroIsMinusZero) {
  for (const char* doc : {"{\"z\": -0}", "{\"z\": -0.0}", "{\"z\": -0e5}", "x {\"z\": -0} y"}) {
    const Flat m = extract(doc);
    ASSERT_EQ(m.size(), 1u) << doc;
    EXPECT_TRUE(std::signbit(m[0].second)) << doc;
  }
  EXPECT_FALSE(std::signbit(extract("{\"z\": 0}")[0].second));
  const Flat m = extract("{\"s\": \"-0\", \"e\": 1e-0, \"z\": -0}");
  EXPECT_EQ(m, (Flat{{"e", 1}, {"z", 0}}));
  EXPECT_TRUE(std::signbit(m[1].second));
  EXPECT_TRUE(std::signbit(extract("-0")[0].second));
}

TEST(ExtractFlatten, StringsBoolsNullSkipped) {
  EXPECT_EQ(extract("{\"name\": \"fio\", \"ok\": true, \"no\": false, \"n\": null, "
                    "\"s\": \"42\", \"iops\": 42, \"list\": [\"1\", null, 2]}"),
            (Flat{{"iops", 42}, {"list.2", 2}}));
  EXPECT_TRUE(extract("\"7\"").empty());
  EXPECT_TRUE(extract("true").empty());
}

TEST(ExtractFlatten, DuplicateKeysLastValueWins) {
  EXPECT_EQ(extract("{\"a\": 1, \"b\": 2, \"a\": 3}"), (Flat{{"b", 2}, {"a", 3}}));
  EXPECT_EQ(extract("{\"a\": {\"x\": 1, \"y\": 2}, \"b\": 5, \"a\": 7}"), (Flat{{"b", 5}, {"a", 7}}));
  EXPECT_EQ(extract("{\"a\": 1, \"a\": {\"x\": 2}}"), (Flat{{"a.x", 2}}));
  EXPECT_EQ(extract("{\"a\": 1, \"a\": 2, \"a\": \"s\"}"), Flat{});
  EXPECT_EQ(extract("{\"a\": 1, \"\\u0061\": 2}"), (Flat{{"a", 2}}));  // equal once unescaped
  EXPECT_EQ(extract("{\"o\": {\"k\": 1, \"k\": 2}, \"o\": {\"k\": 3, \"j\": 4, \"k\": 5}}"),
            (Flat{{"o.j", 4}, {"o.k", 5}}));
  // A dotted key and a nested path may spell the same name: both are kept.
  EXPECT_EQ(extract("{\"a.b\": 1, \"a\": {\"b\": 2}}"), (Flat{{"a.b", 1}, {"a.b", 2}}));
}

TEST(ExtractFlatten, DuplicateKeysInLargeObjects) {
  std::string doc = "{";
  Flat want;
  for (int i = 0; i < 100; ++i) {
    doc += "\"k" + std::to_string(i) + "\": " + std::to_string(i) + ", ";
    if (i != 5 && i != 70) want.emplace_back("k" + std::to_string(i), i);
  }
  doc += "\"k5\": -5, \"k70\": {\"v\": -70}}";
  want.emplace_back("k5", -5);
  want.emplace_back("k70.v", -70);
  EXPECT_EQ(extract(doc), want);
  doc.replace(doc.find("\"k5\": -5, "), 10, "");
  doc.replace(doc.find(", \"k70\": {"), std::string::npos, "}");
  EXPECT_EQ(extract(doc).size(), 100u);
}

TEST(ExtractFlatten, NestedDuplicatesStayLinear) {
  // Each level repeats a key after a surviving subtree; a walk that redid an
  // object on finding a repeat would take 2^60 steps here.
  std::string doc = "{\"x\": 1}";
  for (int i = 0; i < 60; ++i) doc = "{\"s\": " + doc + ", \"a\": 1, \"a\": 2}";
  const Flat m = extract(doc);
  ASSERT_EQ(m.size(), 61u);
  std::string inner;
  for (int i = 0; i < 60; ++i) inner += "s.";
  EXPECT_EQ(m.front(), (std::pair<std::string, double>{inner + "x", 1}));
  EXPECT_EQ(m[1], (std::pair<std::string, double>{inner.substr(2) + "a", 2}));
  EXPECT_EQ(m.back(), (std::pair<std::string, double>{"a", 2}));
}

TEST(ExtractFlatten, LargeIntegersBecomeDoubles) {
  EXPECT_EQ(extract("{\"huge\": 9007199254740993}"), (Flat{{"huge", 9007199254740992.0}}));
  EXPECT_EQ(extract("{\"exact\": 9007199254740992}"), (Flat{{"exact", 9007199254740992.0}}));
  EXPECT_EQ(extract("{\"u\": 18446744073709551615}"), (Flat{{"u", 18446744073709551615.0}}));
  // Beyond u64/i64: serde_json reads these as f64 (simdjson rejects them).
  EXPECT_EQ(extract("{\"big\": 18446744073709551616}"), (Flat{{"big", 18446744073709551616.0}}));
  EXPECT_EQ(extract("{\"v\": 99999999999999999999999, \"n\": -9223372036854775809}"),
            (Flat{{"v", 99999999999999999999999.0}, {"n", -9223372036854775809.0}}));
  EXPECT_EQ(extract("banner {\"big\": 123456789012345678901234567890} tail"),
            (Flat{{"big", 123456789012345678901234567890.0}}));
  EXPECT_EQ(extract("{\"s\": \"123456789012345678901234567890\", \"x\": 1}"), (Flat{{"x", 1}}));
}

TEST(ExtractFlatten, OutOfRangeNumbersFailTheDocument) {
  EXPECT_TRUE(extract("{\"a\": 1e400}").empty());
  EXPECT_TRUE(extract("{\"ok\": 1, \"a\": [-1e400]}").empty());
  EXPECT_EQ(extract("{\"tiny\": 1e-400}"), (Flat{{"tiny", 0}}));
}

// ---------------------------------------------------------------------------
// Depth.

TEST(ExtractDepth, LeafAtMaxWalkDepthIsKept) {
  ASSERT_EQ(payloadrun::max_walk_depth, 64u);
  EXPECT_EQ(extract(nest_objects(64, "42")), (Flat{{dotted_x(64), 42}}));
}

TEST(ExtractDepth, DeeperValuesBecomeOneSentinelPerSkippedSubtree) {
  const std::string s(walk_truncation_sentinel);
  EXPECT_EQ(extract(nest_objects(65, "42")), (Flat{{s, 65}}));
  // Every child of a container at depth 64 is a skipped subtree, whatever
  // its type; a duplicated key counts once; an empty container adds none.
  EXPECT_EQ(extract(nest_objects(64, "{\"a\": 1, \"b\": \"s\", \"c\": {\"d\": 1}, \"a\": 2}")),
            (Flat{{s, 65}, {s, 65}, {s, 65}}));
  EXPECT_EQ(extract(nest_objects(64, "[null, [1]]")), (Flat{{s, 65}, {s, 65}}));
  EXPECT_TRUE(extract(nest_objects(64, "{}")).empty());
  EXPECT_EQ(extract("{\"ok\": 1, \"deep\": " + nest_objects(70, "1") + "}"),
            (Flat{{"ok", 1}, {s, 65}}));
}

TEST(ExtractDepth, ParseDepthLimitIsSerdeJsons) {
  // serde_json starts at remaining_depth 128 and fails when entering a
  // container brings it to 0: 127 nested containers parse, 128 do not,
  // whether or not the innermost one is empty.
  ASSERT_EQ(payloadrun::max_parse_depth, 128u);
  auto doc = [](std::size_t containers, const std::string& inner) {
    return "{\"ok\": 1, \"deep\": " + std::string(containers - 1, '[') + inner +
           std::string(containers - 1, ']') + "}";
  };
  const std::string s(walk_truncation_sentinel);
  EXPECT_EQ(extract(doc(127, "1")), (Flat{{"ok", 1}, {s, 65}}));
  EXPECT_EQ(extract(doc(127, "")), (Flat{{"ok", 1}, {s, 65}}));
  EXPECT_TRUE(extract(doc(128, "1")).empty());
  EXPECT_TRUE(extract(doc(128, "")).empty());
  EXPECT_TRUE(extract(doc(129, "")).empty());
  EXPECT_TRUE(extract("prefix " + doc(128, "") + " suffix").empty());
}

// ---------------------------------------------------------------------------
// Tags, appending, reuse.

TEST(ExtractOutput, TagsSourceStreamUnknownPolarityNoUnit) {
  PayloadMetrics m;
  Extractor ex;
  EXPECT_EQ(ex.extract("[{\"a\": 1}, {\"b\": 2}]", MetricSource::deferred,
                       MetricStream::stderr_stream, m),
            2u);
  for (const auto& x : m) {
    EXPECT_EQ(x.source, MetricSource::deferred);
    EXPECT_EQ(x.stream, MetricStream::stderr_stream);
    EXPECT_EQ(x.polarity, payloadrun::Polarity::unknown);
    EXPECT_EQ(x.unit, "");
  }
  EXPECT_EQ(ex.extract("{\"c\": 3}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(m[2].source, MetricSource::json);
  EXPECT_EQ(m[2].stream, MetricStream::stdout_stream);
}

TEST(ExtractOutput, AppendsAfterExistingMetrics) {
  PayloadMetrics m;
  m.add("pre", 1.5);
  Extractor ex;
  EXPECT_EQ(ex.extract("{\"a\": {\"b\": 2}}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(ex.extract("nothing here", MetricSource::json, MetricStream::stdout_stream, m), 0u);
  EXPECT_EQ(flat(m), (Flat{{"pre", 1.5}, {"a.b", 2}}));
  EXPECT_EQ(payloadrun::detail::MetricsAccess::name_arena(m), "prea.b");  // no slack left behind
  EXPECT_EQ(m.get("a.b"), 2.0);
}

TEST(ExtractOutput, ReusedExtractorGivesIdenticalResults) {
  const std::vector<std::string> docs = {
      fio_like_document(3, 7), "{\"a\": 1, \"a\": 2}", "banner {\"x\": 18446744073709551616} t",
      "{\"z\": -0}", "garbage", nest_objects(70, "1"), "[   0.001234] x {\"iops\": 1}",
      "{\"ok\": 1, \"deep\": " + std::string(127, '[') + std::string(127, ']') + "}", "{\"k\xff\": 1}"};
  Extractor reused;
  for (int round = 0; round < 2; ++round) {
    for (const std::string& d : docs) {
      PayloadMetrics a;
      PayloadMetrics b;
      reused.extract(d, MetricSource::json, MetricStream::stdout_stream, a);
      Extractor fresh;
      fresh.extract(d, MetricSource::json, MetricStream::stdout_stream, b);
      EXPECT_EQ(flat(a), flat(b)) << d.substr(0, 80);
      EXPECT_EQ(payloadrun::detail::MetricsAccess::name_arena(a), payloadrun::detail::MetricsAccess::name_arena(b));
    }
  }
  Extractor moved = std::move(reused);
  PayloadMetrics m;
  EXPECT_EQ(moved.extract("{\"a\": 1}", MetricSource::json, MetricStream::stdout_stream, m), 1u);
  EXPECT_EQ(reused.extract("{\"a\": 1}", MetricSource::json, MetricStream::stdout_stream, m), 1u);  // NOLINT(bugprone-use-after-move): a moved-from extractor still works
}

// ---------------------------------------------------------------------------
// find_json_region.

TEST(FindJsonRegion, Cases) {
  using R = std::optional<std::string_view>;
  EXPECT_EQ(find_json_region("prefix {\"a\": 1} suffix"), R("{\"a\": 1}"));
  EXPECT_EQ(find_json_region("log: {\"a\": {\"b\": 1}} done"), R("{\"a\": {\"b\": 1}}"));
  EXPECT_EQ(find_json_region("{\"text\": \"not a }\"}"), R("{\"text\": \"not a }\"}"));
  EXPECT_EQ(find_json_region("{\"t\": \"has \\\"escaped\\\" quotes\"}"),
            R("{\"t\": \"has \\\"escaped\\\" quotes\"}"));
  EXPECT_EQ(find_json_region("{\"t\": \"\\\\\"} }"), R("{\"t\": \"\\\\\"}"));
  EXPECT_EQ(find_json_region("no braces here"), std::nullopt);
  EXPECT_EQ(find_json_region("incomplete {"), std::nullopt);
  EXPECT_EQ(find_json_region("{\"a\": \"unterminated }"), std::nullopt);
  EXPECT_EQ(find_json_region(""), std::nullopt);
  // The first opener decides the type; only that type is counted.
  EXPECT_EQ(find_json_region("x [1, {\"a\": 2}] {\"b\": 3}"), R("[1, {\"a\": 2}]"));
  EXPECT_EQ(find_json_region("{ ] ] }"), R("{ ] ] }"));
  EXPECT_EQ(find_json_region("[ } { ] ]"), R("[ } { ]"));
  // A backslash outside a string does nothing; quotes toggle strings anywhere.
  EXPECT_EQ(find_json_region("{ \\\" } \" }"), R("{ \\\" } \" }"));
  EXPECT_EQ(find_json_region("0123456{89012345678901234}"), R("{89012345678901234}"));
}

}  // namespace

// ---------------------------------------------------------------------------
// search_document: the same rule, saying what it found (issue 18).

namespace {
using Outcome = payloadrun::DocumentSearch::Outcome;
}

TEST(SearchDocument, SaysWhichCaseTheRuleMet) {
  using payloadrun::search_document;
  EXPECT_EQ(search_document(" \n\t").outcome, Outcome::empty);
  EXPECT_EQ(search_document("Benchmark done, 3 runs").outcome, Outcome::no_opener);
  const auto unbalanced = search_document("results: {\"a\": [1, 2]");
  EXPECT_EQ(unbalanced.outcome, Outcome::unbalanced);
  EXPECT_EQ(unbalanced.offset, 9u);
  // hyperfine's table comes before its JSON: the first balanced region is
  // `[User: ...]`, which is not JSON (ktstr's rule stops there).
  const std::string hyperfine = "  Time (mean):  1.1 ms    [User: 0.3 ms, System: 0.0 ms]\n{\"results\": [{\"mean\": 1}]}";
  const auto table = search_document(hyperfine);
  EXPECT_EQ(table.outcome, Outcome::not_json);
  EXPECT_EQ(hyperfine.substr(table.offset, table.length), "[User: 0.3 ms, System: 0.0 ms]");
  const auto whole = search_document("  {\"a\": 1}\n");
  EXPECT_EQ(whole.outcome, Outcome::document);
  EXPECT_EQ(whole.offset, 2u);
  EXPECT_EQ(whole.length, 8u);
  const std::string banner = "fio-3.33\n{\"iops\": 5} done";
  const auto region = search_document(banner);
  EXPECT_EQ(region.outcome, Outcome::document);
  EXPECT_EQ(banner.substr(region.offset, region.length), "{\"iops\": 5}");
  // Whatever extract() yields metrics from is a document; what it yields
  // nothing from is not, on the inputs of the suite's other cases.
  for (std::string_view text : {"[   0.001234] kernel\n{\"iops\": 1}", "{\"a\": 1e999}", "[1, 2", "{\"s\": \"x\"}",
                                "\"just a string\"", "42", "{\"a\":1}{\"b\":2}"}) {
    const bool any = !extract(std::string(text)).empty();
    const auto found = search_document(text);
    if (any) {
      EXPECT_EQ(found.outcome, Outcome::document) << text;
    }
  }
  EXPECT_EQ(search_document("[1, 2").outcome, Outcome::unbalanced);
  EXPECT_EQ(search_document("{\"s\": \"x\"}").outcome, Outcome::document);  // a document without numbers
  EXPECT_EQ(search_document("{\"a\": 1e999}").outcome, Outcome::not_json);  // out of double range
}
