// Makes absl::Mutex, absl::CondVar and absl::Notification visible to
// ThreadSanitizer when abseil comes from Debian's shared libraries, which are
// not built with TSan.
//
// Why: the lock and unlock code of absl::Mutex lives in
// libabsl_synchronization.so. Uninstrumented, TSan never sees those locks and
// reports every access they guard (in our code and in gRPC's, whose
// grpc_core::Mutex wraps absl::Mutex) as a data race. Abseil built with TSan
// annotates its mutex with TSan's public mutex interface
// (sanitizer/tsan_interface.h); this file adds the same annotations from the
// outside. It is linked into every binary of the TSan build only
// (TOKENBROKER_SANITIZE=thread). Its definitions interpose the library's
// (the executable's symbols come first for the dynamic linker, for calls
// from our code and from the libraries alike), annotate, and call the
// library's own code, found with dlsym(RTLD_NEXT).
//
// Soundness: it adds exactly the happens-before edges the real mutex
// creates (lock after unlock), with reader/writer modes, and nothing else; it
// suppresses no report. Synchronisation the libraries do with their own
// atomics stays invisible: see tsan.supp for what that leaves.

#include <dlfcn.h>
#include <link.h>
#include <sanitizer/tsan_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/config.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !defined(ABSL_OPTION_USE_INLINE_NAMESPACE) || \
    ABSL_OPTION_USE_INLINE_NAMESPACE != 1
#error "expects abseil with an inline namespace (Debian: absl::debian3)"
#endif

namespace {

#define TB_STRINGIFY_INNER(x) #x
#define TB_STRINGIFY(x) TB_STRINGIFY_INNER(x)

// "_ZN4absl7debian3" for absl::debian3::.
std::string AbslPrefix() {
  const std::string ns = TB_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(ns.size()) + ns;
}

template <typename Fn>
Fn Real(const char* rest, bool is_const = false) {
  std::string name = AbslPrefix() + rest;
  if (is_const) name.insert(3, "K");  // _ZNK... for const members.
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in abseil\n",
                 name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

using absl::Condition;
using absl::Duration;
using absl::Mutex;
using absl::Time;

constexpr unsigned kRead = __tsan_mutex_read_lock;

// Only the mutexes our code locks are annotated: calls from the program
// itself, not from libgrpc or libabsl. gRPC's internal mutexes guard objects
// whose lifetime gRPC manages with atomics TSan cannot see either (the
// libraries are not instrumented); annotating half of that protocol only
// yields reports about gRPC's internals, with no frame of ours.
struct ProgramText {
  uintptr_t begin = 0;
  uintptr_t end = 0;
};

ProgramText FindProgramText() {
  ProgramText text;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* text = static_cast<ProgramText*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& segment = info->dlpi_phdr[i];
          if (segment.p_type != PT_LOAD || !(segment.p_flags & PF_X)) continue;
          uintptr_t begin = info->dlpi_addr + segment.p_vaddr;
          uintptr_t end = begin + segment.p_memsz;
          if (text->begin == 0 || begin < text->begin) text->begin = begin;
          if (end > text->end) text->end = end;
        }
        return 1;  // The first object is the program itself.
      },
      &text);
  return text;
}

bool CalledByProgram(const void* caller) {
  static const ProgramText text = FindProgramText();
  auto pc = reinterpret_cast<uintptr_t>(caller);
  return pc >= text.begin && pc < text.end;
}

// Abseil's own functions call each other through the PLT (WaitWithTimeout
// calls WaitWithDeadline, Notify calls Lock, ...), so they reach these
// wrappers again: only the outermost call of a thread is annotated.
thread_local int nesting = 0;
thread_local int skipped = 0;  // Wrappers on the stack not annotating.

class Nested {
 public:
  // `caller`: __builtin_return_address(0) of the wrapper.
  explicit Nested(const void* caller)
      : outer_(nesting++ == 0 && CalledByProgram(caller)) {
    if (!outer_) ++skipped;
  }
  ~Nested() {
    if (!outer_) --skipped;
    --nesting;
  }
  bool outer() const { return outer_; }

 private:
  const bool outer_;
};

bool Annotating() { return nesting == 1 && skipped == 0; }

void PreUnlock(void* mu, unsigned flags) {
  if (Annotating()) __tsan_mutex_pre_unlock(mu, flags);
}
void PostUnlock(void* mu, unsigned flags) {
  if (Annotating()) __tsan_mutex_post_unlock(mu, flags);
}
void PreLock(void* mu, unsigned flags) {
  if (Annotating()) __tsan_mutex_pre_lock(mu, flags);
}
void PostLock(void* mu, unsigned flags, bool failed = false) {
  if (!Annotating()) return;
  if (failed) flags |= __tsan_mutex_try_lock_failed;
  __tsan_mutex_post_lock(mu, flags, 0);
}

// Runs `call` (which releases and re-acquires `mu`, as Await and
// CondVar::Wait do) inside an annotated unlock ... lock pair: TSan ignores
// the library's work (and condition evaluations) in between.
template <typename Call>
auto Reacquiring(Mutex* mu, Call call) {
  PreUnlock(mu, 0);
  auto result = call();
  PostUnlock(mu, 0);
  PreLock(mu, 0);
  PostLock(mu, 0);
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  static auto real = Real<void (*)(Mutex*)>("5MutexD2Ev");
  Nested nested(__builtin_return_address(0));
  if (nested.outer()) __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex4LockEv");
  Nested nested(__builtin_return_address(0));
  PreLock(this, 0);
  real(this);
  PostLock(this, 0);
}

void Mutex::Unlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Nested nested(__builtin_return_address(0));
  PreUnlock(this, 0);
  real(this);
  PostUnlock(this, 0);
}

bool Mutex::TryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  Nested nested(__builtin_return_address(0));
  PreLock(this, __tsan_mutex_try_lock);
  bool locked = real(this);
  PostLock(this, __tsan_mutex_try_lock, !locked);
  return locked;
}

void Mutex::ReaderLock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  Nested nested(__builtin_return_address(0));
  PreLock(this, kRead);
  real(this);
  PostLock(this, kRead);
}

void Mutex::ReaderUnlock() {
  static auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Nested nested(__builtin_return_address(0));
  PreUnlock(this, kRead);
  real(this);
  PostUnlock(this, kRead);
}

bool Mutex::ReaderTryLock() {
  static auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  Nested nested(__builtin_return_address(0));
  PreLock(this, kRead | __tsan_mutex_try_lock);
  bool locked = real(this);
  PostLock(this, kRead | __tsan_mutex_try_lock, !locked);
  return locked;
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex8LockWhenERKNS0_9ConditionE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, 0);
  real(this, cond);
  PostLock(this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, kRead);
  real(this, cond);
  PostLock(this, kRead);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, 0);
  bool result = real(this, cond, timeout);
  PostLock(this, 0);  // Held whatever the result.
  return result;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, 0);
  bool result = real(this, cond, deadline);
  PostLock(this, 0);
  return result;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, kRead);
  bool result = real(this, cond, timeout);
  PostLock(this, kRead);
  return result;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nested nested(__builtin_return_address(0));
  PreLock(this, kRead);
  bool result = real(this, cond, deadline);
  PostLock(this, kRead);
  return result;
}

// Await and CondVar::Wait are annotated as writer-held: this project waits
// only with writer locks (a reader wait would be reported by TSan as a
// mismatched unlock, not hidden).
void Mutex::Await(const Condition& cond) {
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      "5Mutex5AwaitERKNS0_9ConditionE");
  Nested nested(__builtin_return_address(0));
  Reacquiring(this, [&] {
    real(this, cond);
    return 0;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Nested nested(__builtin_return_address(0));
  return Reacquiring(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Real<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Nested nested(__builtin_return_address(0));
  return Reacquiring(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static auto real =
      Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Nested nested(__builtin_return_address(0));
  Reacquiring(mu, [&] {
    real(this, mu);
    return 0;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Nested nested(__builtin_return_address(0));
  return Reacquiring(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real = Real<bool (*)(CondVar*, Mutex*, Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Nested nested(__builtin_return_address(0));
  return Reacquiring(mu, [&] { return real(this, mu, deadline); });
}

// Notification: Notify() publishes, the waits observe. The library's
// fast path (already notified) reads an atomic TSan cannot see.
// HasBeenNotified() is inline: an acquire load of `notified_yet_`, the
// atomic that follows the Notification's mutex. Release there as well so
// that TSan pairs that load with Notify().
static_assert(sizeof(Notification) == 2 * sizeof(Mutex),
              "expects Notification = {Mutex mutex_; atomic<bool> ...}");
static void* NotifiedFlag(Notification* n) {
  return reinterpret_cast<char*>(n) + sizeof(Mutex);
}

void Notification::Notify() {
  static auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  Nested nested(__builtin_return_address(0));
  if (nested.outer()) {
    __tsan_release(this);
    __tsan_release(NotifiedFlag(this));
  }
  real(this);
}

void Notification::WaitForNotification() const {
  static auto real = Real<void (*)(const Notification*)>(
      "12Notification19WaitForNotificationEv", /*is_const=*/true);
  Nested nested(__builtin_return_address(0));
  real(this);
  if (nested.outer()) __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
      /*is_const=*/true);
  Nested nested(__builtin_return_address(0));
  bool notified = real(this, timeout);
  if (notified && nested.outer())
    __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
      /*is_const=*/true);
  Nested nested(__builtin_return_address(0));
  bool notified = real(this, deadline);
  if (notified && nested.outer())
    __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
