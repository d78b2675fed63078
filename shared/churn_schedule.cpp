#include "shared/churn_schedule.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sshsoak {

namespace {

// The intended starts before piece p begins, in closed form, so that a
// ramp of any number of steps costs nothing to look up.
double startsBeforePiece(const ChurnRamp& r, uint32_t piece) {
  if (!r.ramp() || piece == 0) return 0;
  if (r.steps <= 1) return r.startPerSec * static_cast<double>(r.rampMs) / 1000.0;
  // Pieces 0 .. p-1 of width L: L x (p x start + rise x p(p-1)/2), with
  // rise the step's increment.
  double p = piece;
  double widthSecs = static_cast<double>(r.rampMs) / r.steps / 1000.0;
  double rise = (r.endPerSec - r.startPerSec) / (r.steps - 1);
  return widthSecs * (p * r.startPerSec + rise * p * (p - 1) / 2.0);
}

// The piece holding t ms: the last one that starts at or before it.
uint32_t pieceAt(const ChurnRamp& r, double ms) {
  if (!r.ramp()) return 0;
  if (ms >= static_cast<double>(r.rampMs)) return r.pieces() - 1;
  if (r.steps <= 1 || ms <= 0) return 0;
  double stepMs = static_cast<double>(r.rampMs) / r.steps;
  return std::min(static_cast<uint32_t>(ms / stepMs), r.steps - 1);
}

}  // namespace

double ChurnRamp::targetAt(int64_t ms) const {
  if (!ramp() || ms >= rampMs) return endPerSec;
  if (ms <= 0 || steps <= 1) return startPerSec;
  // Step k of `steps` (k = 0 .. steps-1) holds start + k/(steps-1) of the rise.
  auto stepMs = static_cast<double>(rampMs) / steps;
  auto k = static_cast<uint32_t>(static_cast<double>(ms) / stepMs);
  if (k >= steps) k = steps - 1;
  return startPerSec + (endPerSec - startPerSec) * k / (steps - 1);
}

uint32_t ChurnRamp::pieces() const {
  if (!ramp()) return 1;
  return steps <= 1 ? 2 : steps + 1;
}

double ChurnRamp::pieceStartMs(uint32_t piece) const {
  if (!ramp() || piece == 0) return 0;
  if (piece >= pieces() - 1) return static_cast<double>(rampMs);
  return static_cast<double>(rampMs) * piece / steps;
}

double ChurnRamp::pieceRate(uint32_t piece) const {
  if (!ramp() || piece >= pieces() - 1) return endPerSec;
  if (steps <= 1) return startPerSec;
  return startPerSec + (endPerSec - startPerSec) * piece / (steps - 1);
}

double ChurnRamp::startsBy(double ms) const {
  if (ms <= 0) return 0;
  uint32_t p = pieceAt(*this, ms);
  return startsBeforePiece(*this, p) + pieceRate(p) * (ms - pieceStartMs(p)) / 1000.0;
}

double ChurnRamp::timeOfStart(double starts) const {
  if (starts <= 0) return 0;
  // The last piece that begins with fewer starts than asked for.
  uint32_t lo = 0, hi = pieces() - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (startsBeforePiece(*this, mid) <= starts) lo = mid;
    else hi = mid - 1;
  }
  double rest = starts - startsBeforePiece(*this, lo);
  if (rest <= 0) return pieceStartMs(lo);
  double rate = pieceRate(lo);
  if (rate <= 0) return std::numeric_limits<double>::infinity();
  double t = pieceStartMs(lo) + rest / rate * 1000.0;
  // Rounding must not carry a start into the next piece's time.
  if (lo + 1 < pieces()) t = std::min(t, pieceStartMs(lo + 1));
  return t;
}

}  // namespace sshsoak
