// Issue 17: histograms in HdrHistogram's V2 compressed encoding (the
// summary's `histograms`, report --merge, --hlog): the layout agrees with
// shared/histogram.h, the encoding decodes back to the same counts, merging
// encoded histograms equals the histogram of the union of their values, and
// the .hlog reads back.
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "supervisor/analysis/histogram_codec.h"
#include "supervisor/analysis/hlog.h"
#include "supervisor/analysis/stats.h"

using namespace sshsoak;

namespace {

TEST(HistogramCodec, LatencyLayoutIsSharedHistogramsLayout) {
  hdr::Layout l = hdr::latencyLayout();
  EXPECT_EQ(l.countsLength(), LatencyHistogram::COUNTS_LENGTH);
  std::mt19937_64 rng(17);
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = rng() >> (rng() % 64);
    EXPECT_EQ(l.indexOf(v), LatencyHistogram::indexOf(v)) << v;
  }
  for (uint32_t i = 0; i < l.countsLength(); ++i) {
    ASSERT_EQ(l.lowestEquivalent(i), LatencyHistogram::lowestEquivalent(i)) << i;
    ASSERT_EQ(l.highestEquivalent(i), LatencyHistogram::highestEquivalent(i)) << i;
  }
}

TEST(HistogramCodec, ExactLayoutKeepsEveryWholeValueBelow262144) {
  hdr::Layout l = hdr::exactLayout();
  for (uint64_t v : {0ull, 1ull, 255ull, 256ull, 1000ull, 12345ull, 99999ull, 262143ull}) {
    EXPECT_EQ(l.lowestEquivalent(l.indexOf(v)), v);
    EXPECT_EQ(l.highestEquivalent(l.indexOf(v)), v);
  }
  // Above it, two values share a bucket (HdrHistogram's 5 figures).
  EXPECT_EQ(l.lowestEquivalent(l.indexOf(262145)), 262144u);
}

TEST(HistogramCodec, RoundTripKeepsEveryCountAndTheParameters) {
  std::mt19937_64 rng(1);
  for (auto layout : {hdr::latencyLayout(), hdr::exactLayout()}) {
    hdr::Histogram h{layout, {}, 0};
    for (int i = 0; i < 5000; ++i) h.record(rng() % 5'000'000, 1 + rng() % 3);
    h.record(uint64_t{1} << 40);  // clamped to the highest trackable
    h.record(0);
    std::string text = hdr::toBase64(h);
    ASSERT_EQ(text.rfind("HISTF", 0), 0u) << "HdrHistogram's V2 compressed cookie in base64 starts HISTF";
    auto back = hdr::fromBase64(text);
    ASSERT_TRUE(back.ok()) << back.error();
    EXPECT_TRUE(back->layout == layout);
    EXPECT_EQ(back->total, h.total);
    EXPECT_EQ(back->counts, h.counts);
  }
  hdr::Histogram empty;
  auto back = hdr::fromBase64(hdr::toBase64(empty));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_TRUE(back->empty());
}

TEST(HistogramCodec, EncodingIsHdrHistogramsV2ByteForByte) {
  // Decompress by hand: the header fields are where the V2 format puts them.
  hdr::Histogram h{hdr::latencyLayout(), {}, 0};
  h.record(1);
  h.record(1);
  h.record(300);
  std::string bytes = hdr::encodeCompressed(h);
  auto be32 = [&](const std::string& s, size_t at) {
    return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) | (static_cast<uint8_t>(s[at + 1]) << 16) |
           (static_cast<uint8_t>(s[at + 2]) << 8) | static_cast<uint8_t>(s[at + 3]);
  };
  EXPECT_EQ(be32(bytes, 0), 0x1c849314u);
  EXPECT_EQ(be32(bytes, 4), bytes.size() - 8);
  std::string plain(1 << 16, '\0');
  uLongf len = plain.size();
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(plain.data()), &len, reinterpret_cast<const Bytef*>(bytes.data() + 8),
                       bytes.size() - 8),
            Z_OK);
  plain.resize(len);
  EXPECT_EQ(be32(plain, 0), 0x1c849313u);
  EXPECT_EQ(be32(plain, 4), plain.size() - 40);  // payload length
  EXPECT_EQ(be32(plain, 8), 0u);                 // normalizing index offset
  EXPECT_EQ(be32(plain, 12), 2u);                // significant figures
  EXPECT_EQ(be32(plain, 16), 0u);                // lowest discernible value 1, an int64
  EXPECT_EQ(be32(plain, 20), 1u);
  EXPECT_EQ(be32(plain, 24), 1u << 4);           // highest trackable 2^36, an int64
  EXPECT_EQ(be32(plain, 28), 0u);
  EXPECT_EQ(be32(plain, 32), 0x3FF00000u);       // the conversion ratio 1.0 as a double
  // Counts: a run of one zero (index 0), 2 at index 1, a run of zeros, 1 at 300's index.
  std::string words = plain.substr(40);
  ASSERT_GE(words.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(words[0]), 1);  // zigzag(-1)
  EXPECT_EQ(static_cast<uint8_t>(words[1]), 4);  // zigzag(2)
}

TEST(HistogramCodec, DamagedInputIsNamedNotThrown) {
  EXPECT_FALSE(hdr::fromBase64("not base64!").ok());
  EXPECT_FALSE(hdr::fromBase64("AAAA").ok());
  hdr::Histogram h;
  h.record(5);
  std::string bytes = hdr::encodeCompressed(h);
  bytes[bytes.size() - 3] ^= 0x55;
  EXPECT_FALSE(hdr::decodeCompressed(bytes).ok());
  EXPECT_FALSE(hdr::decodeCompressed(bytes.substr(0, 5)).ok());
}

// The merge of encoded histograms is the histogram of all their values, and
// its nearest-rank percentiles are those of the values themselves (exact
// layout): the merged p95 of shards is the p95 of one log holding all.
TEST(HistogramCodec, MergeOfEncodedEqualsTheUnionExactly) {
  std::mt19937_64 rng(42);
  std::vector<int64_t> all;
  hdr::Histogram merged{hdr::exactLayout(), {}, 0};
  hdr::Histogram unionHist{hdr::exactLayout(), {}, 0};
  for (int shard = 0; shard < 4; ++shard) {
    hdr::Histogram h{hdr::exactLayout(), {}, 0};
    int n = 50 + static_cast<int>(rng() % 500);
    for (int i = 0; i < n; ++i) {
      int64_t ms = 200 + static_cast<int64_t>(rng() % 60000);
      h.record(static_cast<uint64_t>(ms));
      unionHist.record(static_cast<uint64_t>(ms));
      all.push_back(ms);
    }
    auto decoded = hdr::fromBase64(hdr::toBase64(h));
    ASSERT_TRUE(decoded.ok());
    ASSERT_TRUE(merged.merge(*decoded));
  }
  EXPECT_EQ(merged.counts, unionHist.counts);
  EXPECT_EQ(merged.total, all.size());
  for (double q : {0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(merged.nearestRank(q), percentile(all, q)) << q;
  }
  // The latency layout: merged equals the LatencyHistogram of all values.
  LatencyHistogram direct;
  hdr::Histogram parts{hdr::latencyLayout(), {}, 0};
  for (int k = 0; k < 3; ++k) {
    LatencyHistogram part;
    for (int i = 0; i < 1000; ++i) {
      uint64_t us = rng() % 10'000'000;
      part.record(us);
      direct.record(us);
    }
    auto decoded = hdr::fromBase64(hdr::toBase64(hdr::fromLatency(part)));
    ASSERT_TRUE(decoded.ok());
    ASSERT_TRUE(parts.merge(*decoded));
  }
  auto back = hdr::toLatency(parts);
  ASSERT_TRUE(back);
  for (double p : {50.0, 90.0, 99.0, 99.9, 100.0}) EXPECT_EQ(back->valueAtPercentile(p), direct.valueAtPercentile(p));
  EXPECT_EQ(back->max(), direct.max());
  // Different layouts do not merge.
  EXPECT_FALSE(parts.merge(merged));
}

TEST(Hlog, RendersTheIntervalLogFormatAndReadsBack) {
  std::map<std::string, hdr::Histogram> hs;
  hdr::Histogram r{hdr::exactLayout(), {}, 0};
  for (int i = 1; i <= 100; ++i) r.record(static_cast<uint64_t>(i * 37));
  hs["reconnect_ms"] = r;
  hdr::Histogram e;
  e.record(1500, 7);
  hs["echo_us"] = e;
  std::string text = hlog::render(hs, 1764144000.25, 61.5, "sshsoak run t1");
  EXPECT_EQ(text.rfind("#[Histogram log format version 1.3]\n#[StartTime: 1764144000.250 (seconds since epoch), ", 0),
            0u)
      << text;
  EXPECT_NE(text.find("#[BaseTime: 1764144000.250 (seconds since epoch)]\n"), std::string::npos);
  EXPECT_NE(text.find("\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nTag=reconnect_ms,0.000,61.500,3700.000,HISTF"), std::string::npos) << text;
  auto log = hlog::parse(text);
  ASSERT_TRUE(log.ok()) << log.error();
  EXPECT_EQ(log->version, "1.3");
  EXPECT_DOUBLE_EQ(*log->startTime, 1764144000.25);
  ASSERT_EQ(log->entries.size(), 2u);
  for (const auto& entry : log->entries) {
    ASSERT_TRUE(hs.count(entry.tag)) << entry.tag;
    EXPECT_EQ(entry.histogram.counts, hs[entry.tag].counts);
    EXPECT_EQ(entry.histogram.total, hs[entry.tag].total);
    EXPECT_DOUBLE_EQ(entry.lengthSecs, 61.5);
  }
  EXPECT_FALSE(hlog::parse("Tag=x,1,2,3,HISTFAAAA\n").ok());
  EXPECT_FALSE(hlog::parse("1,2\n").ok());
}

}  // namespace
