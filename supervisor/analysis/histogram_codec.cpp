#include "supervisor/analysis/histogram_codec.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace sshsoak::hdr {

namespace {

// HdrHistogram's cookies; the low nibble's high bits (0x10) say "word size 1":
// the counts are ZigZag LEB128 words, not fixed-width.
constexpr uint32_t V2_ENCODING_COOKIE = 0x1c849303 | 0x10;
constexpr uint32_t V2_COMPRESSION_COOKIE = 0x1c849304 | 0x10;
constexpr uint32_t COOKIE_BASE_MASK = ~0xf0u;
constexpr size_t ENCODING_HEADER_BYTES = 40;
constexpr size_t COMPRESSION_HEADER_BYTES = 8;
// No histogram of ours inflates beyond this (a 5-figure layout's whole
// counts array at 9 bytes a word is 25 MB): a bigger one is not ours.
constexpr size_t MAX_INFLATED_BYTES = 64u << 20;
constexpr uint64_t DOUBLE_ONE_BITS = 0x3FF0000000000000ull;  // the integer-to-double ratio 1.0

void putBe(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t getBe(std::string_view in, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + static_cast<size_t>(i)]);
  return v;
}

// LEB128-64b9B of the ZigZag of v: 7 bits a byte for 8 bytes, then the top 8.
void putZigZag(std::string& out, int64_t v) {
  uint64_t z = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  for (int i = 0; i < 8; ++i) {
    uint8_t b = z & 0x7f;
    z >>= 7;
    if (z == 0) {
      out.push_back(static_cast<char>(b));
      return;
    }
    out.push_back(static_cast<char>(b | 0x80));
  }
  out.push_back(static_cast<char>(z & 0xff));
}

// False when the input ends inside a word.
bool getZigZag(std::string_view in, size_t& at, int64_t& v) {
  uint64_t z = 0;
  int i = 0;
  for (; i < 8; ++i) {
    if (at >= in.size()) return false;
    uint8_t b = static_cast<uint8_t>(in[at++]);
    z |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) break;
  }
  if (i == 8) {
    if (at >= in.size()) return false;
    z |= static_cast<uint64_t>(static_cast<uint8_t>(in[at++])) << 56;
  }
  v = static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
  return true;
}

}  // namespace

std::optional<Layout> Layout::of(int significantFigures, int64_t highestTrackable) {
  if (significantFigures < 1 || significantFigures > 5 || highestTrackable < 2) return std::nullopt;
  Layout l;
  l.sigfigs_ = significantFigures;
  l.highest_ = highestTrackable;
  uint64_t singleUnitResolution = 2;
  for (int i = 0; i < significantFigures; ++i) singleUnitResolution *= 10;
  int magnitude = 0;
  while ((uint64_t{1} << magnitude) < singleUnitResolution) ++magnitude;
  l.halfMagnitude_ = magnitude > 1 ? magnitude - 1 : 0;
  l.subBucketCount_ = uint64_t{1} << (l.halfMagnitude_ + 1);
  l.subBucketMask_ = l.subBucketCount_ - 1;
  // Buckets until the smallest untrackable value is above the highest.
  uint64_t smallestUntrackable = l.subBucketCount_;
  uint32_t buckets = 1;
  while (smallestUntrackable <= static_cast<uint64_t>(highestTrackable)) {
    if (smallestUntrackable > (uint64_t{1} << 62)) {
      ++buckets;
      break;
    }
    smallestUntrackable <<= 1;
    ++buckets;
  }
  l.countsLength_ = (buckets + 1) * static_cast<uint32_t>(l.subBucketCount_ / 2);
  return l;
}

uint32_t Layout::indexOf(uint64_t value) const {
  value = std::min(value, static_cast<uint64_t>(highest_));
  int pow2Ceiling = 64 - __builtin_clzll(value | subBucketMask_);
  int bucket = pow2Ceiling - (halfMagnitude_ + 1);
  uint64_t subBucket = value >> bucket;
  uint64_t half = subBucketCount_ / 2;
  return static_cast<uint32_t>((static_cast<uint64_t>(bucket + 1) << halfMagnitude_) + subBucket - half);
}

uint64_t Layout::lowestEquivalent(uint32_t index) const {
  uint64_t half = subBucketCount_ / 2;
  int bucket = static_cast<int>(index >> halfMagnitude_) - 1;
  uint64_t subBucket = (index & (half - 1)) + half;
  if (bucket < 0) {
    subBucket -= half;
    bucket = 0;
  }
  return subBucket << bucket;
}

uint64_t Layout::highestEquivalent(uint32_t index) const {
  int bucket = static_cast<int>(index >> halfMagnitude_) - 1;
  if (bucket < 0) bucket = 0;
  return lowestEquivalent(index) + (uint64_t{1} << bucket) - 1;
}

Layout latencyLayout() {
  static const Layout l = *Layout::of(2, static_cast<int64_t>(LatencyHistogram::HIGHEST_TRACKABLE));
  return l;
}

Layout exactLayout() {
  static const Layout l = *Layout::of(5, static_cast<int64_t>(LatencyHistogram::HIGHEST_TRACKABLE));
  return l;
}

void Histogram::record(uint64_t value, uint64_t count) {
  if (count == 0) return;
  counts[layout.indexOf(value)] += count;
  total += count;
}

bool Histogram::merge(const Histogram& other) {
  if (!(layout == other.layout)) return false;
  for (const auto& [i, n] : other.counts) counts[i] += n;
  total += other.total;
  return true;
}

uint64_t Histogram::max() const { return counts.empty() ? 0 : layout.highestEquivalent(counts.rbegin()->first); }

std::optional<int64_t> Histogram::nearestRank(double q) const {
  if (total == 0) return std::nullopt;
  double r = std::floor(static_cast<double>(total) * q);
  uint64_t rank = r < 0 ? 0 : std::min<uint64_t>(static_cast<uint64_t>(r), total - 1);
  uint64_t seen = 0;
  for (const auto& [i, n] : counts) {
    seen += n;
    if (seen > rank) return static_cast<int64_t>(layout.lowestEquivalent(i));
  }
  return static_cast<int64_t>(layout.lowestEquivalent(counts.rbegin()->first));
}

Histogram fromLatency(const LatencyHistogram& h) {
  Histogram out;
  out.layout = latencyLayout();
  h.forEachNonZero([&](size_t i, uint64_t n) {
    out.counts.emplace(static_cast<uint32_t>(i), n);
    out.total += n;
  });
  return out;
}

std::optional<LatencyHistogram> toLatency(const Histogram& h) {
  if (!(h.layout == latencyLayout())) return std::nullopt;
  LatencyHistogram out;
  for (const auto& [i, n] : h.counts) {
    if (!out.addAtIndex(i, n)) return std::nullopt;
  }
  return out;
}

std::string encodeCompressed(const Histogram& h) {
  std::string counts;
  // HdrHistogram encodes up to the largest value's index; an empty one as
  // one run of a single zero.
  if (h.counts.empty()) {
    putZigZag(counts, -1);
  } else {
    uint32_t next = 0;
    for (const auto& [i, n] : h.counts) {
      if (i > next) putZigZag(counts, -static_cast<int64_t>(i - next));
      putZigZag(counts, static_cast<int64_t>(n));
      next = i + 1;
    }
  }
  std::string plain;
  plain.reserve(ENCODING_HEADER_BYTES + counts.size());
  putBe(plain, V2_ENCODING_COOKIE, 4);
  putBe(plain, counts.size(), 4);
  putBe(plain, 0, 4);  // normalizing index offset
  putBe(plain, static_cast<uint64_t>(h.layout.significantFigures()), 4);
  putBe(plain, 1, 8);  // lowest discernible value
  putBe(plain, static_cast<uint64_t>(h.layout.highestTrackable()), 8);
  putBe(plain, DOUBLE_ONE_BITS, 8);
  plain += counts;

  uLongf deflatedLen = compressBound(static_cast<uLong>(plain.size()));
  std::string out(COMPRESSION_HEADER_BYTES + deflatedLen, '\0');
  int rc = compress(reinterpret_cast<Bytef*>(out.data() + COMPRESSION_HEADER_BYTES), &deflatedLen,
                    reinterpret_cast<const Bytef*>(plain.data()), static_cast<uLong>(plain.size()));
  if (rc != Z_OK) throw std::runtime_error("zlib compress failed: " + std::to_string(rc));
  out.resize(COMPRESSION_HEADER_BYTES + deflatedLen);
  std::string head;
  putBe(head, V2_COMPRESSION_COOKIE, 4);
  putBe(head, deflatedLen, 4);
  std::memcpy(out.data(), head.data(), COMPRESSION_HEADER_BYTES);
  return out;
}

Result<Histogram, std::string> decodeCompressed(std::string_view bytes) {
  if (bytes.size() < COMPRESSION_HEADER_BYTES) return fail(std::string("shorter than its 8-byte header"));
  uint32_t cookie = static_cast<uint32_t>(getBe(bytes, 0, 4));
  if ((cookie & COOKIE_BASE_MASK) != (V2_COMPRESSION_COOKIE & COOKIE_BASE_MASK)) {
    return fail("not an HdrHistogram V2 compressed histogram (cookie " + std::to_string(cookie) + ")");
  }
  uint64_t deflatedLen = getBe(bytes, 4, 4);
  if (deflatedLen > bytes.size() - COMPRESSION_HEADER_BYTES) return fail(std::string("cut short (length field)"));

  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return fail(std::string("zlib inflateInit failed"));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + COMPRESSION_HEADER_BYTES));
  zs.avail_in = static_cast<uInt>(deflatedLen);
  std::string plain;
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (plain.size() >= MAX_INFLATED_BYTES) break;
    size_t have = plain.size();
    plain.resize(have + 65536);
    zs.next_out = reinterpret_cast<Bytef*>(plain.data() + have);
    zs.avail_out = 65536;
    rc = inflate(&zs, Z_NO_FLUSH);
    plain.resize(have + 65536 - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) return fail(std::string("its zlib data is damaged or too large"));

  if (plain.size() < ENCODING_HEADER_BYTES) return fail(std::string("inflated header cut short"));
  uint32_t encCookie = static_cast<uint32_t>(getBe(plain, 0, 4));
  if ((encCookie & COOKIE_BASE_MASK) != (V2_ENCODING_COOKIE & COOKIE_BASE_MASK)) {
    return fail(std::string("not a V2 encoding inside"));
  }
  if (((encCookie & 0xf0u) >> 4) != 1) return fail(std::string("fixed-width counts (only V2's LEB128 words are read)"));
  uint64_t payload = getBe(plain, 4, 4);
  int32_t normalizing = static_cast<int32_t>(getBe(plain, 8, 4));
  int sigfigs = static_cast<int32_t>(getBe(plain, 12, 4));
  int64_t lowest = static_cast<int64_t>(getBe(plain, 16, 8));
  int64_t highest = static_cast<int64_t>(getBe(plain, 24, 8));
  if (normalizing != 0) return fail(std::string("a normalizing index offset (shifted histogram) is not supported"));
  if (lowest != 1) return fail("lowest discernible value " + std::to_string(lowest) + " (only 1 is read)");
  auto layout = Layout::of(sigfigs, highest);
  if (!layout) {
    return fail("bad parameters: " + std::to_string(sigfigs) + " significant figures, highest " + std::to_string(highest));
  }
  if (payload != plain.size() - ENCODING_HEADER_BYTES) return fail(std::string("payload length does not match"));

  Histogram h;
  h.layout = *layout;
  std::string_view words(plain.data() + ENCODING_HEADER_BYTES, payload);
  size_t at = 0;
  uint64_t index = 0;
  while (at < words.size()) {
    int64_t v = 0;
    if (!getZigZag(words, at, v)) return fail(std::string("a count word is cut short"));
    if (v < 0) {
      // 0 - (uint64_t)v: -v overflows for INT64_MIN (a damaged log).
      index += uint64_t{0} - static_cast<uint64_t>(v);
      continue;
    }
    if (index >= layout->countsLength()) return fail(std::string("more counts than the layout holds"));
    if (v > 0) {
      h.counts[static_cast<uint32_t>(index)] += static_cast<uint64_t>(v);
      h.total += static_cast<uint64_t>(v);
    }
    ++index;
  }
  if (index > layout->countsLength()) return fail(std::string("a run of zeros beyond the layout"));
  return h;
}

namespace {
constexpr char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}

std::string base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    out += B64[(v >> 18) & 63];
    out += B64[(v >> 12) & 63];
    out += B64[(v >> 6) & 63];
    out += B64[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += B64[(v >> 18) & 63];
    out += B64[(v >> 12) & 63];
    out += i + 1 < in.size() ? B64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64Decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int a = val(in[i]), b = val(in[i + 1]);
    bool last = i + 4 == in.size();
    int c = last && in[i + 2] == '=' ? -2 : val(in[i + 2]);
    int d = last && in[i + 3] == '=' ? -2 : val(in[i + 3]);
    if (a < 0 || b < 0 || c == -1 || d == -1 || (c == -2 && d != -2)) return std::nullopt;
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                 (static_cast<uint32_t>(c < 0 ? 0 : c) << 6) | static_cast<uint32_t>(d < 0 ? 0 : d);
    out += static_cast<char>((v >> 16) & 0xff);
    if (c >= 0) out += static_cast<char>((v >> 8) & 0xff);
    if (d >= 0) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string toBase64(const Histogram& h) { return base64Encode(encodeCompressed(h)); }

Result<Histogram, std::string> fromBase64(std::string_view text) {
  auto bytes = base64Decode(text);
  if (!bytes) return fail(std::string("not base64"));
  return decodeCompressed(*bytes);
}

}  // namespace sshsoak::hdr
