// The range timer's recorder (see range_timer.h). The device clock is in range_timer.cu, its
// CPU-only stand-in in range_timer_stub.cpp.
#include "cuda/range_timer.h"

#include <algorithm>
#include <chrono>
#include <thread>

namespace mt::cuda {

std::atomic<bool> g_range_timing{false};

namespace {

using Clock = std::chrono::steady_clock;

struct Mark {
  const char* name;
  int parent, depth;
  double open_ms = 0, close_ms = 0;  // the host clock's readings
  bool closed = false;
};

// Mark i uses event slots 2i (open) and 2i + 1 (close).
struct Recorder {
  RangeClock clock = RangeClock::Host;
  // Read by any thread that opens a range while timing is on; written between recordings.
  std::atomic<std::thread::id> owner{};
  std::atomic<bool> recording{false};  // from start to stop, paused or not
  uint32_t generation = 0;  // an id from an earlier recording never closes a mark of this one
  std::vector<Mark> marks;
  std::vector<int> open;  // the open marks, innermost last
  size_t last_slot = 0;   // the event recorded last: once it has happened, all have
  Clock::time_point origin;
};

Recorder& recorder() {
  static Recorder r;
  return r;
}

bool is_owner(const Recorder& r) {
  return r.recording.load(std::memory_order_relaxed) &&
         r.owner.load(std::memory_order_relaxed) == std::this_thread::get_id();
}

double host_ms(const Recorder& r) {
  return std::chrono::duration<double, std::milli>(Clock::now() - r.origin).count();
}

void record(Recorder& r, size_t slot, double& host_reading) {
  if (r.clock == RangeClock::CudaEvents) {
    timing_event_record(slot);
    r.last_slot = slot;
  } else {
    host_reading = host_ms(r);
  }
}

// The nearest closed ancestor of mark i (-1 if none), as an index into the output.
int kept_parent(const std::vector<Mark>& marks, const std::vector<int>& out_index, int i) {
  int p = marks[i].parent;
  while (p >= 0 && !marks[p].closed) p = marks[p].parent;
  return p < 0 ? -1 : out_index[p];
}

}  // namespace

void range_timing_start(RangeClock clock, size_t expected_ranges) {
  Recorder& r = recorder();
  r.clock = clock;
  r.marks.clear();
  r.marks.reserve(expected_ranges);
  r.open.clear();
  r.generation += 1;
  r.last_slot = 0;
  r.origin = Clock::now();
  // Creating events costs host time: make what the recording will need before it starts.
  if (clock == RangeClock::CudaEvents)
    timing_events_reserve(2 * std::max<size_t>(expected_ranges, 64));
  r.owner.store(std::this_thread::get_id());
  r.recording.store(true);
  g_range_timing.store(true);
}

void range_timing_pause() { g_range_timing.store(false); }

void range_timing_resume() { g_range_timing.store(recorder().recording.load()); }

int64_t range_timing_begin(const char* name) {
  Recorder& r = recorder();
  if (!is_owner(r)) return -1;
  const int index = static_cast<int>(r.marks.size());
  Mark m;
  m.name = name;
  m.parent = r.open.empty() ? -1 : r.open.back();
  m.depth = static_cast<int>(r.open.size());
  if (r.clock == RangeClock::CudaEvents) timing_events_reserve(2 * r.marks.size() + 2);
  record(r, 2 * static_cast<size_t>(index), m.open_ms);
  r.marks.push_back(m);
  r.open.push_back(index);
  return (static_cast<int64_t>(r.generation) << 32) | index;
}

void range_timing_end(int64_t id) {
  Recorder& r = recorder();
  if (id < 0 || static_cast<uint32_t>(id >> 32) != r.generation || !is_owner(r)) return;
  const size_t index = static_cast<size_t>(id & 0xffffffff);
  if (index >= r.marks.size() || r.marks[index].closed) return;
  Mark& m = r.marks[index];
  record(r, 2 * index + 1, m.close_ms);
  m.closed = true;
  // RAII closes the innermost range first; search anyway, so that a range closed out of
  // order cannot leave a stale entry behind.
  for (size_t k = r.open.size(); k-- > 0;) {
    if (r.open[k] == static_cast<int>(index)) {
      r.open.erase(r.open.begin() + static_cast<std::ptrdiff_t>(k));
      break;
    }
  }
}

std::vector<TimedRange> range_timing_stop() {
  Recorder& r = recorder();
  g_range_timing.store(false);
  r.recording.store(false);
  const bool events = r.clock == RangeClock::CudaEvents;
  if (events && !r.marks.empty()) timing_event_wait(r.last_slot);  // the one host wait
  // Ranges still open at the stop have no time: left out, their children re-parented.
  std::vector<int> out_index(r.marks.size(), -1);
  std::vector<TimedRange> out;
  for (size_t i = 0; i < r.marks.size(); ++i) {
    const Mark& m = r.marks[i];
    if (!m.closed) continue;
    TimedRange t;
    t.name = m.name;
    t.parent = kept_parent(r.marks, out_index, static_cast<int>(i));
    t.depth = t.parent < 0 ? 0 : out[t.parent].depth + 1;
    t.ms = events ? timing_event_elapsed_ms(2 * i, 2 * i + 1) : m.close_ms - m.open_ms;
    out_index[i] = static_cast<int>(out.size());
    out.push_back(t);
  }
  r.marks.clear();
  r.open.clear();
  return out;
}

}  // namespace mt::cuda
