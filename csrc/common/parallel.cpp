#include "common/parallel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <signal.h>
#define VSUM_POSIX_THREADS 1
#endif

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

// Marks the calling thread as inside a parallel region; restores the previous
// state even if fn throws.
struct ParallelRegionGuard {
  bool previous;
  ParallelRegionGuard() : previous(t_in_parallel) { t_in_parallel = true; }
  ~ParallelRegionGuard() { t_in_parallel = previous; }
};

// Name of worker k.
std::string worker_name(int k) { return "vsum-pool-" + std::to_string(k); }

// Names a worker thread (visible in /proc/<pid>/task/*/comm, top, gdb): on
// Linux from its creator, so the name is set before start_workers returns.
void name_from_creator(std::thread& thread, int k) {
#if defined(__linux__)
  pthread_setname_np(thread.native_handle(), worker_name(k).c_str());
#else
  (void)thread, (void)k;
#endif
}

// Names the calling worker where only a thread can name itself (macOS).
void name_from_worker(int k) {
#if defined(__APPLE__)
  pthread_setname_np(worker_name(k).c_str());
#else
  (void)k;
#endif
}

// One parallel_for_range call, shared by its caller and the workers that join.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0, chunk = 1, chunks = 0;
  std::atomic<int64_t> next{0};     // next chunk to claim
  std::atomic<bool> failed{false};  // a chunk threw: claim no more
  std::mutex error_mutex;
  int64_t error_chunk = std::numeric_limits<int64_t>::max();
  std::exception_ptr error;  // of chunk error_chunk
  int helpers = 0;           // workers that may still join (Pool::mutex_)
  int active = 0;            // workers inside run() (Pool::mutex_)

  // Claims chunks in increasing order and runs them until none is left or
  // one has thrown; keeps the exception of the lowest chunk that threw.
  void run() {
    while (!failed.load(std::memory_order_relaxed)) {
      const int64_t k = next.fetch_add(1, std::memory_order_relaxed);
      if (k >= chunks) return;
      const int64_t begin = k * chunk;
      try {
        (*fn)(begin, begin + std::min(chunk, n - begin));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (k < error_chunk) {
          error_chunk = k;
          error = std::current_exception();
        }
        failed.store(true, std::memory_order_relaxed);
      }
    }
  }
};

// The persistent workers.  A job runs only while its caller holds run_mutex,
// so at most one job is on the pool and workers are only started or stopped
// between jobs.
class Pool {
 public:
  std::mutex run_mutex;

  // Runs job on the caller and up to min(T - 1, chunks - 1) workers, starting
  // the workers for `threads` first if needed; returns when every chunk that
  // was claimed has finished.  Requires run_mutex.
  void run(Job& job, int threads) {
    if (threads != threads_) {
      stop_workers();
      start_workers(threads);
    }
    const auto available = static_cast<int64_t>(workers_.size());
    const int helpers = static_cast<int>(std::min(available, job.chunks - 1));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job.helpers = helpers;
      job_ = &job;
      ++generation_;
    }
    if (helpers == available) {
      work_cv_.notify_all();
    } else {
      for (int k = 0; k < helpers; ++k) work_cv_.notify_one();
    }
    {
      ParallelRegionGuard guard;
      job.run();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    job_ = nullptr;  // late workers must not join any more
    done_cv_.wait(lock, [&] { return job.active == 0; });
  }

  // Stops and joins the workers.  Requires run_mutex.
  void stop_workers() {
    if (workers_.empty()) {
      threads_ = 1;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = false;
    threads_ = 1;
  }

  // The thread count the workers were started for (1: no workers).  Requires run_mutex.
  int threads() const { return threads_; }

 private:
  // Starts threads - 1 workers (fewer if the system refuses more threads: the
  // jobs then simply get fewer helpers).  They block every signal, so signals
  // reach the interpreter's threads.
  void start_workers(int threads) {
    threads_ = threads;
    uint64_t generation;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation = generation_;
    }
#if defined(VSUM_POSIX_THREADS)
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
#endif
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int k = 1; k < threads; ++k) {
      try {
        workers_.emplace_back([this, k, generation] { worker_main(k, generation); });
        name_from_creator(workers_.back(), k);
      } catch (const std::system_error&) {
        break;
      }
    }
#if defined(VSUM_POSIX_THREADS)
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
#endif
  }

  // Worker loop: waits for a job newer than the last one seen and helps with it.
  void worker_main(int index, uint64_t seen) {
    name_from_worker(index);
    t_in_parallel = true;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_cv_.wait(lock, [&] { return stop_ || (job_ != nullptr && generation_ != seen); });
      if (stop_) return;
      seen = generation_;
      Job* job = job_;
      if (job->helpers == 0) continue;
      --job->helpers;
      ++job->active;
      lock.unlock();
      job->run();
      lock.lock();
      if (--job->active == 0) done_cv_.notify_all();
    }
  }

  std::mutex mutex_;  // guards job_, generation_, stop_ and the jobs' helpers/active
  std::condition_variable work_cv_, done_cv_;
  std::vector<std::thread> workers_;
  int threads_ = 1;
  Job* job_ = nullptr;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// The process's pool, created on first use.  Never deleted (see parallel.h).
std::atomic<Pool*> g_pool{nullptr};

// The pool, created if there is none yet.
Pool& get_pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p == nullptr) {
    Pool* fresh = new Pool();
    if (g_pool.compare_exchange_strong(p, fresh, std::memory_order_acq_rel)) {
      p = fresh;
    } else {
      delete fresh;  // another thread won; p holds its pool
    }
  }
  return *p;
}

#if defined(VSUM_POSIX_THREADS)
// In a forked child only the forking thread exists and the pool's mutexes may
// be held by threads that are gone: forget the old pool (leaked, never
// touched again); the child's first parallel call creates a new one.
void forget_pool_in_child() { g_pool.store(nullptr, std::memory_order_relaxed); }

[[maybe_unused]] const int g_atfork_registered = pthread_atfork(nullptr, nullptr, &forget_pool_in_child);
#endif

// fn(0, n) on the calling thread, marked as a parallel region.
void run_inline(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  ParallelRegionGuard guard;
  fn(0, n);
}

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
  Pool* pool = g_pool.load(std::memory_order_acquire);
  if (pool == nullptr || t_in_parallel) return;  // nothing started / inside a job: the next call resizes
  std::lock_guard<std::mutex> lock(pool->run_mutex);
  if (pool->threads() != n) pool->stop_workers();
}

bool in_parallel_region() { return t_in_parallel; }

void parallel_for_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  const int threads = get_num_threads();
  if (threads <= 1 || t_in_parallel) return run_inline(n, fn);
  const int64_t parts = 4 * int64_t{threads};
  const int64_t chunk = std::max(grain, n / parts + (n % parts != 0));
  const int64_t chunks = n / chunk + (n % chunk != 0);
  if (chunks <= 1) return run_inline(n, fn);

  Pool& pool = get_pool();
  std::unique_lock<std::mutex> lock(pool.run_mutex, std::try_to_lock);
  if (!lock.owns_lock()) return run_inline(n, fn);  // another thread's job holds the pool
  Job job;
  job.fn = &fn;
  job.n = n;
  job.chunk = chunk;
  job.chunks = chunks;
  pool.run(job, threads);
  lock.unlock();
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace vsum
