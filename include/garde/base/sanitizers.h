// Whether the build runs under a sanitizer, for the few places that must tell it something or
// expect less of the machine: GCC defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__, clang
// answers __has_feature.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GARDE_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GARDE_ADDRESS_SANITIZER 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define GARDE_THREAD_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GARDE_THREAD_SANITIZER 1
#endif
#endif
