// The group-commit queue's rules: one batch written at a time, the next one started while the
// last is made durable, every writer answered with its own result. How the SQLite store uses
// them (the WAL's fsync after the hand-over): store_conformance_test.cc, SqliteDurability.
#include "garde/store/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventually.h"

namespace garde {
namespace {

using std::chrono::milliseconds;
using testing::Eventually;

// The commit functions below answer each write without running it: a write is known by its
// function's address, registered with the answer it must get.
class Answers {
 public:
  void Expect(const void* fn, std::string answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[fn] = std::move(answer);
  }
  void Answer(const std::vector<PendingWrite*>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    for (PendingWrite* w : batch) w->result = Status(Code::kConflict, answers_.at(w->fn));
  }

 private:
  std::mutex mu_;
  std::map<const void*, std::string> answers_;
};

const std::function<Status(WriteTx&)> kNothing = [](WriteTx&) { return Status::Ok(); };

TEST(GroupCommitQueue, TheNextBatchIsWrittenWhileOneIsMadeDurable) {
  std::atomic<int> batches{0};
  std::atomic<bool> first_handed_over{false}, second_began{false}, overlapped{false};
  auto commit = [&](const std::vector<PendingWrite*>& batch,
                    const std::function<void()>& hand_over) {
    if (batches.fetch_add(1) == 0) {
      hand_over();
      first_handed_over = true;
      // The first batch's "flush" lasts until the second batch is being written.
      overlapped = Eventually([&] { return second_began.load(); });
    } else {
      second_began = true;
    }
    for (PendingWrite* w : batch) w->result = Status::Ok();
  };
  GroupCommitQueue queue(commit);
  std::thread first([&] { EXPECT_TRUE(queue.Submit(kNothing, Durability::kImmediate).ok()); });
  ASSERT_TRUE(Eventually([&] { return first_handed_over.load(); }));
  EXPECT_TRUE(queue.Submit(kNothing, Durability::kImmediate).ok());
  first.join();
  EXPECT_TRUE(overlapped.load()) << "the second batch waited for the first one's flush";
  EXPECT_EQ(batches.load(), 2);
}

// Random timings: batches that hand over or not, long and short flushes. Never two batches
// written at once; every writer gets its own answer; batches form, and overlap.
TEST(GroupCommitQueue, OneBatchWrittenAtATimeAndEveryWriterGetsItsOwnAnswer) {
  Answers answers;
  std::atomic<int> writing{0}, most_writing{0}, flushing{0}, overlaps{0}, batched{0};
  auto commit = [&](const std::vector<PendingWrite*>& batch,
                    const std::function<void()>& hand_over) {
    thread_local std::mt19937 rng(std::random_device{}());
    const int now = writing.fetch_add(1) + 1;
    int seen = most_writing.load();
    while (now > seen && !most_writing.compare_exchange_weak(seen, now)) {
    }
    if (flushing.load() > 0) overlaps.fetch_add(1);
    if (batch.size() > 1) batched.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
    answers.Answer(batch);
    writing.fetch_sub(1);
    if (rng() % 4 != 0) {
      flushing.fetch_add(1);
      hand_over();
      if (rng() % 2 == 0) hand_over();  // a second call changes nothing
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 400));
      flushing.fetch_sub(1);
    }
  };
  GroupCommitQueue queue(commit);
  constexpr int kThreads = 8, kWrites = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        const std::function<Status(WriteTx&)> fn = [](WriteTx&) { return Status::Ok(); };
        const std::string mine = std::to_string(t) + "/" + std::to_string(i);
        answers.Expect(&fn, mine);
        Status s = queue.Submit(fn, Durability::kImmediate);
        EXPECT_EQ(s.message(), mine);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(most_writing.load(), 1);
  EXPECT_GT(batched.load(), 0);
  EXPECT_GT(overlaps.load(), 0);
}

}  // namespace
}  // namespace garde
