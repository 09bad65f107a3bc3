// C11 <threads.h> on top of pthreads, for TSan builds only (SEG_TSAN=ON links
// it into every target; see RELIABILITY.md "Sanitizers in CI").
//
// Debian's librdkafka 2.0.2 is built on C11 threads: thrd_create, mtx_lock,
// cnd_wait, call_once. Since glibc 2.34 these call glibc's internal pthread
// functions directly, not through the PLT, and GCC 12's libtsan has no
// interceptors for them. So TSan never sees librdkafka's threads start (their
// first malloc crashes inside TSan's allocator: google/sanitizers#1195,
// llvm/llvm-project#109742) nor its mutexes and condition variables (every
// hand-over from a librdkafka thread to ours would be a race report).
//
// The definitions below interpose glibc's (librdkafka's references bind to
// the first definition in the global lookup order, and this library comes
// before libc) and forward to the pthread functions, which libtsan does
// intercept. glibc lays out thrd_t, mtx_t, cnd_t and once_flag exactly as
// pthread_t, pthread_mutex_t, pthread_cond_t and pthread_once_t, and
// implements them the same way, so nothing changes but what TSan sees.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

static int map_error(int err) {
  switch (err) {
    case 0:
      return thrd_success;
    case ENOMEM:
      return thrd_nomem;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    default:
      return thrd_error;
  }
}

struct start {
  thrd_start_t func;
  void* arg;
};

static void* run(void* p) {
  struct start s = *(struct start*)p;
  free(p);
  return (void*)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  struct start* s = malloc(sizeof *s);
  if (s == NULL) return thrd_nomem;
  s->func = func;
  s->arg = arg;
  int err = pthread_create(thr, NULL, run, s);
  if (err != 0) free(s);
  return map_error(err);
}

int thrd_join(thrd_t thr, int* res) {
  void* ret = NULL;
  int err = pthread_join(thr, &ret);
  if (err == 0 && res != NULL) *res = (int)(intptr_t)ret;
  return map_error(err);
}

int thrd_detach(thrd_t thr) { return map_error(pthread_detach(thr)); }

_Noreturn void thrd_exit(int res) { pthread_exit((void*)(intptr_t)res); }

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int err = pthread_mutex_init((pthread_mutex_t*)m, &attr);
  pthread_mutexattr_destroy(&attr);
  return map_error(err);
}

int mtx_lock(mtx_t* m) { return map_error(pthread_mutex_lock((pthread_mutex_t*)m)); }

int mtx_trylock(mtx_t* m) { return map_error(pthread_mutex_trylock((pthread_mutex_t*)m)); }

int mtx_timedlock(mtx_t* restrict m, const struct timespec* restrict ts) {
  return map_error(pthread_mutex_timedlock((pthread_mutex_t*)m, ts));
}

int mtx_unlock(mtx_t* m) { return map_error(pthread_mutex_unlock((pthread_mutex_t*)m)); }

void mtx_destroy(mtx_t* m) { pthread_mutex_destroy((pthread_mutex_t*)m); }

int cnd_init(cnd_t* c) { return map_error(pthread_cond_init((pthread_cond_t*)c, NULL)); }

int cnd_signal(cnd_t* c) { return map_error(pthread_cond_signal((pthread_cond_t*)c)); }

int cnd_broadcast(cnd_t* c) { return map_error(pthread_cond_broadcast((pthread_cond_t*)c)); }

int cnd_wait(cnd_t* c, mtx_t* m) {
  return map_error(pthread_cond_wait((pthread_cond_t*)c, (pthread_mutex_t*)m));
}

int cnd_timedwait(cnd_t* restrict c, mtx_t* restrict m, const struct timespec* restrict ts) {
  return map_error(pthread_cond_timedwait((pthread_cond_t*)c, (pthread_mutex_t*)m, ts));
}

void cnd_destroy(cnd_t* c) { pthread_cond_destroy((pthread_cond_t*)c); }

void call_once(once_flag* flag, void (*func)(void)) {
  _Static_assert(sizeof(once_flag) == sizeof(pthread_once_t), "once_flag is a pthread_once_t");
  pthread_once((pthread_once_t*)flag, func);
}
