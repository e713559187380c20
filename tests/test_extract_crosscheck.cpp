// Metric extraction cross-checked against an independent naive flattener
// (extract_oracle.hpp): a fio-like document, random documents, and random
// mutations of them.
#include <gtest/gtest.h>

#include "extract_oracle.hpp"

namespace {

using namespace extract_test;  // and the payloadrun names it uses

// ---------------------------------------------------------------------------
// Cross-checks against the naive flattener.

TEST(ExtractCrossCheck, FioLikeDocumentMatchesNaiveFlatten) {
  const std::string doc = fio_like_document(24, 42);
  const Flat want = naive_extract(doc);
  ASSERT_GT(want.size(), 1500u);
  EXPECT_EQ(extract(doc), want);
  EXPECT_EQ(extract("fio-3.36\nstarting 24 processes\n" + doc + "\nfio: done\n"), want);
  EXPECT_EQ(want.front().first, "timestamp");
  EXPECT_EQ(want[1].first, "jobs.0.error");
}

TEST(ExtractCrossCheck, RandomDocumentsMatchNaiveFlatten) {
  Extractor ex;
  std::size_t nonempty = 0;
  for (std::uint32_t seed = 1; seed <= 1500; ++seed) {
    RandomDoc gen(seed);
    gen.value(0);
    const std::string doc = (seed % 3 == 0) ? "noise [x " + gen.s : (seed % 3 == 1) ? gen.s : "log: " + gen.s + " }";
    PayloadMetrics m;
    ex.extract(doc, MetricSource::json, MetricStream::stdout_stream, m);
    const Flat want = naive_extract(doc);
    nonempty += want.empty() ? 0 : 1;
    ASSERT_EQ(flat(m), want) << "seed " << seed << ": " << doc.substr(0, 200);
  }
  EXPECT_GT(nonempty, 400u);
}

// (Round 339 once differed: the oracle's \u decoding accepted the mangled
// escape "\u0e9\"; the oracle now requires four hex digits, as JSON does.)
TEST(ExtractCrossCheck, MutatedDocumentsMatchNaiveFlatten) {
  // Truncations and structural-character edits: every path through finding
  // the document (whole text, region, unbalanced, unparseable) must agree.
  static const char edits[] = "{}[]\",:\\-0e. x";
  Extractor ex;
  std::mt19937 rng(99);
  for (std::uint32_t round = 0; round < 1500; ++round) {
    RandomDoc gen(round + 5000);
    gen.value(0);
    std::string doc = (round % 2 ? "pre " : "") + gen.s + (round % 4 == 1 ? " post" : "");
    const std::uint32_t changes = 1 + rng() % 3;
    for (std::uint32_t c = 0; c < changes && !doc.empty(); ++c) {
      const std::size_t at = rng() % doc.size();
      switch (rng() % 4) {
        case 0: doc.resize(at); break;
        case 1: doc.erase(at, 1); break;
        case 2: doc.insert(doc.begin() + static_cast<std::ptrdiff_t>(at), edits[rng() % (sizeof edits - 1)]); break;
        default: doc[at] = edits[rng() % (sizeof edits - 1)]; break;
      }
    }
    PayloadMetrics m;
    ex.extract(doc, MetricSource::json, MetricStream::stdout_stream, m);
    ASSERT_EQ(flat(m), naive_extract(doc)) << "round " << round << ": " << doc.substr(0, 200);
  }
}

}  // namespace
