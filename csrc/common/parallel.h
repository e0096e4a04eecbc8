// A tiny std::thread based parallel_for with deterministic chunking.
//
// Thread count: set_num_threads(n) if called, else the environment variable
// VSUM_NUM_THREADS (a positive integer, read once on first use), else
// std::thread::hardware_concurrency().
//
// Chunking is a pure function of (n, grain, thread count): with T workers the
// range [0, n) is cut into T contiguous, near-equal chunks.
// T = min(num_threads, ceil(n / grain)); chunk k = [k*b + min(k, r), ...) with
// b = n / T, r = n % T (the first r chunks get one extra index).  The calling
// thread runs chunk 0.
// Kernels whose per-index work does not depend on the chunk therefore give
// bit-identical results for every thread count.
//
// Calls made from inside a worker run serially (no nested oversubscription).
// The first exception (lowest chunk index) thrown by fn is rethrown in the
// caller after all workers have joined.  No Python API may be used inside fn:
// kernels run with the GIL released.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

namespace vsum {

// Upper bound accepted by set_num_threads.
constexpr int kMaxThreads = 4096;

// Current thread count (>= 1).
int get_num_threads();

// Set the thread count used by later parallel_for calls; 1 <= n <= kMaxThreads
// else std::invalid_argument.
void set_num_threads(int n);

// True while the calling thread is executing a parallel_for chunk.
bool in_parallel_region();

// fn(begin, end) over contiguous chunks that partition [0, n).
void parallel_for_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// fn(i) for every i in [0, n), chunked as parallel_for_range.
template <typename F>
void parallel_for(int64_t n, F&& fn, int64_t grain = 1) {
  parallel_for_range(n, grain, [&fn](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

}  // namespace vsum
