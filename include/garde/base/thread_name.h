// Thread names, as `top -H`, `ps -L`, gdb, perf and /proc/PID/task/TID/comm show them.
#pragma once

#include <pthread.h>

namespace garde {

// Names the calling thread (15 bytes at most; longer names are refused, not cut). A thread
// starts with the name of the one that started it, so each long-lived thread names itself.
inline void NameThisThread(const char* name) { ::pthread_setname_np(::pthread_self(), name); }

}  // namespace garde
