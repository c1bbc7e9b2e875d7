// Mutexes whose locking rules the compiler checks: clang's -Wthread-safety reads the
// annotations below (GUARDED_BY, REQUIRES, ACQUIRE ...), as leveldb's port/thread_annotations.h
// and abseil's Mutex do. Other compilers see plain std::mutex / std::shared_mutex.
//
//   Mutex mu_;
//   int count_ GUARDED_BY(mu_);
//   { MutexLock lock(&mu_); ++count_; cv_.wait(lock.native()); }
#pragma once

#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define GARDE_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define GARDE_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) GARDE_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY GARDE_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) GARDE_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) GARDE_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) GARDE_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define REQUIRES(...) GARDE_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) GARDE_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) GARDE_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) GARDE_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) GARDE_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) GARDE_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) GARDE_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define EXCLUDES(...) GARDE_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS GARDE_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace garde {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

class CAPABILITY("shared_mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;
  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  void LockShared() ACQUIRE_SHARED() { mu_.lock_shared(); }
  void UnlockShared() RELEASE_SHARED() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
};

// Holds a Mutex for its scope; native() is the std::unique_lock a condition variable waits on
// (the mutex is held again whenever the wait returns).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : lock_(mu->native()) {}
  ~MutexLock() RELEASE() = default;
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  // Lets go for a while (slow work outside the lock); Relock() before the scope ends.
  void Unlock() RELEASE() { lock_.unlock(); }
  void Relock() ACQUIRE() { lock_.lock(); }
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* mu_;
};

class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* mu_;
};

}  // namespace garde
