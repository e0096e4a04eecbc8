// parallel_for on one persistent thread pool, with dynamic chunking.
//
// Thread count T: set_num_threads(n) if called, else the environment variable
// VSUM_NUM_THREADS (a positive integer, read once on first use), else
// std::thread::hardware_concurrency().
//
// Pool: started lazily by the first call that needs it, with T - 1 workers
// named vsum-pool-<k> (k = 1 .. T-1; the calling thread works too).
// set_num_threads(n) with n different from the pool's size stops and joins
// the workers (after the running job, if any); the next parallel call starts
// a new set.  The pool is never destroyed: its idle workers end with the
// process.  In a child made by fork() the pool has no workers (its state is
// reset by a pthread_atfork handler); its first parallel call starts new ones.
//
// Chunking: [0, n) is cut into chunks of c = max(grain, ceil(n / (4 T)))
// indices (the last may be shorter), claimed in increasing order from a shared
// counter by the caller and the workers.  Chunk boundaries depend on T and
// which thread runs a chunk on timing, so a kernel is bit-identical at every
// thread count only if no index's result depends on its chunk (per-chunk
// scratch is fine, per-chunk partial results are not).
//
// Serial, inline in the calling thread as one call fn(0, n): when n fits in
// one chunk or T == 1; when called from inside a parallel_for chunk (nested:
// one layer of parallelism, on a worker or on the caller); and when called
// from a thread while another thread's job holds the pool (such a call never
// waits for the pool, never starts threads and cannot deadlock).
//
// Exceptions: once a chunk has thrown no new chunks are claimed; after all
// claimed chunks have finished the exception of the lowest-index chunk that
// threw is rethrown in the caller.  Chunks are claimed in order, so every
// chunk below that one ran: a kernel that checks its indices in increasing
// order reports the same first bad index at every thread count.
//
// No Python API may be used inside fn: kernels run with the GIL released.
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
// else std::invalid_argument.  Resizes the pool (see above); blocks while
// another thread's job runs on it.
void set_num_threads(int n);

// True while the calling thread is executing a parallel_for chunk (always on
// a pool worker).
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
