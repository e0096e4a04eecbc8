#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <system_error>
#include <thread>
#include <vector>

#include "common/errors.h"

namespace vsum {
namespace {

std::atomic<int> g_num_threads{0};  // 0 = not initialised yet
thread_local bool t_in_parallel = false;

int default_num_threads() {
  if (const char* env = std::getenv("VSUM_NUM_THREADS")) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(env, &end, 10);
    // Ignore values that are not a whole positive integer within bounds.
    if (errno == 0 && end != env && *end == '\0' && v >= 1 && v <= kMaxThreads) {
      return static_cast<int>(v);
    }
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min<unsigned>(hc, kMaxThreads));
}

// Restores the worker flag even if fn throws.
struct ParallelRegionGuard {
  bool previous;
  ParallelRegionGuard() : previous(t_in_parallel) { t_in_parallel = true; }
  ~ParallelRegionGuard() { t_in_parallel = previous; }
};

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n == 0) {
    int expected = 0;
    int d = default_num_threads();
    g_num_threads.compare_exchange_strong(expected, d);
    n = g_num_threads.load(std::memory_order_relaxed);
  }
  return n;
}

void set_num_threads(int n) {
  VSUM_CHECK(n >= 1 && n <= kMaxThreads, "num_threads must be an integer in [1, ", kMaxThreads, "]; got ", n);
  g_num_threads.store(n, std::memory_order_relaxed);
}

bool in_parallel_region() { return t_in_parallel; }

void parallel_for_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int64_t max_chunks = (n + grain - 1) / grain;
  int64_t T = std::min<int64_t>(get_num_threads(), max_chunks);
  if (T <= 1 || t_in_parallel) {
    ParallelRegionGuard guard;
    fn(0, n);
    return;
  }

  const int64_t base = n / T;
  const int64_t rem = n % T;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(T));
  auto run_chunk = [&](int64_t k) {
    // Chunk k = [k*base + min(k, rem), (k+1)*base + min(k+1, rem)): the first
    // rem chunks get one extra index.  No multiplication of n, so no overflow.
    const int64_t begin = k * base + std::min(k, rem);
    const int64_t end = begin + base + (k < rem ? 1 : 0);
    ParallelRegionGuard guard;
    try {
      if (begin < end) fn(begin, end);
    } catch (...) {
      errors[static_cast<size_t>(k)] = std::current_exception();
    }
  };

  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(T - 1));
  std::vector<int64_t> inline_chunks;  // chunks whose thread could not be started
  for (int64_t k = 1; k < T; ++k) {
    try {
      workers.emplace_back(run_chunk, k);
    } catch (const std::system_error&) {
      inline_chunks.push_back(k);
    }
  }
  run_chunk(0);
  for (int64_t k : inline_chunks) run_chunk(k);
  for (auto& w : workers) w.join();

  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace vsum
