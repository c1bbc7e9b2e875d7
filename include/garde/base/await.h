// Waits on this thread for an outcome handed to a callback, perhaps from another thread: the
// waiting form of a function that answers through `done` (Store::WriteThen and what uses it).
//
//   Result<ConsentEvent> e = Await<Result<ConsentEvent>>(
//       [&](std::function<void(Result<ConsentEvent>)> done) { ledger.RecordThen(..., done); });
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <utility>

namespace garde {

template <typename T>
T Await(const std::function<void(std::function<void(T)>)>& start) {
  // The promise is the callback's too: it may still be setting it as this returns.
  auto promise = std::make_shared<std::promise<T>>();
  auto outcome = promise->get_future();
  start([promise](T value) { promise->set_value(std::move(value)); });
  return outcome.get();
}

}  // namespace garde
