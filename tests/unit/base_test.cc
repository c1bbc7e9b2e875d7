#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "garde/base/batch_queue.h"
#include "garde/base/byte_codec.h"
#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/ip_address.h"
#include "garde/base/json_writer.h"
#include "garde/base/splice.h"
#include "garde/http/problem.h"
#include "garde/http/router.h"

namespace garde {
namespace {

// Leader/follower batching from many threads at once, some callers waiting for their items
// (Run), others posting theirs (Post): every item runs once, in a batch no larger than the
// limit; a batch's first phase never overlaps another's (the next starts only once it hands
// over); a waiting caller returns, and a posted item's callback comes, only once the whole
// batch holding it has run, hand-over or not; and Stop returns only once every posted item
// has been answered.
TEST(BatchQueue, RunsEachItemOnceAndAnswersOnlyOnceItsBatchHasRun) {
  struct Item {
    int runs = 0;
    bool finished = false;  // its batch ran to the end
    int answers = 0;        // posted: its callback's calls
  };
  constexpr size_t kMaxBatch = 7;
  std::atomic<int> in_first_phase{0}, overlaps{0}, too_large{0}, early{0};
  std::atomic<int> batches{0};
  std::atomic<unsigned> seeds{1};
  auto queue = std::make_unique<BatchQueue<Item>>(
      kMaxBatch, [&](const std::vector<Item*>& batch, const std::function<void()>& hand_over) {
        std::mt19937 rng(seeds.fetch_add(7919U));
        ++batches;
        if (in_first_phase.fetch_add(1) != 0) ++overlaps;
        if (batch.size() > kMaxBatch) ++too_large;
        for (Item* it : batch) ++it->runs;
        if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        in_first_phase.fetch_sub(1);
        if (rng() % 2 == 0) {
          hand_over();  // the next batch may start while this one ends
        }
        if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        for (Item* it : batch) it->finished = true;
      });
  constexpr size_t kThreads = 12, kItems = 400;
  // Posted items live until the end; each thread posts every other one.
  std::vector<std::vector<Item>> posted(kThreads, std::vector<Item>(kItems));
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = 0; i < kItems; ++i) {
        if ((i + t) % 2 == 0) {
          Item* item = &posted[t][i];
          queue->Post(item, [item, &early] {
            if (item->runs != 1 || !item->finished) ++early;
            ++item->answers;
          });
          continue;
        }
        Item item;
        queue->Run(&item);
        if (item.runs != 1 || !item.finished) ++early;
      }
    });
  }
  for (auto& th : threads) th.join();
  queue->Stop();
  int answered_once = 0, posted_items = 0;
  for (size_t t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < kItems; ++i) {
      if ((i + t) % 2 != 0) continue;
      ++posted_items;
      answered_once += posted[t][i].answers == 1 && posted[t][i].runs == 1 ? 1 : 0;
    }
  }
  EXPECT_EQ(answered_once, posted_items);
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(too_large.load(), 0);
  EXPECT_EQ(early.load(), 0);
  // Batching happened: fewer batches than items (twelve threads queueing at once).
  EXPECT_LT(static_cast<size_t>(batches.load()), kThreads * kItems);
}

// Items posted with nobody waiting are led by the queue's own threads: every one is answered
// without any caller in Run, including those posted while a batch runs.
TEST(BatchQueue, PostedItemsRunWithNobodyWaiting) {
  struct Item {
    std::atomic<int> answers{0};
  };
  std::atomic<int> ran{0};
  BatchQueue<Item> queue(
      4, [&](const std::vector<Item*>& batch, const std::function<void()>& hand_over) {
        ran += static_cast<int>(batch.size());
        hand_over();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      });
  std::vector<Item> items(100);
  for (auto& item : items) {
    queue.Post(&item, [&item] { ++item.answers; });
  }
  queue.Stop();
  EXPECT_EQ(ran.load(), 100);
  EXPECT_TRUE(std::all_of(items.begin(), items.end(),
                          [](const Item& item) { return item.answers.load() == 1; }));
}

// Against a reference built beside it (erase, then insert in order), many random cases: a
// splice keeps the survivors' order, lands each new entry where asked, and does not move the
// vector while its capacity suffices.
TEST(Splice, MatchesRemovingThenInsertingOneByOne) {
  std::mt19937 rng(20261207);
  for (int round = 0; round < 2000; ++round) {
    const size_t n = rng() % 40;
    std::vector<int> v;
    for (size_t i = 0; i < n; ++i) v.push_back(static_cast<int>(2 * i));  // even: the old
    std::vector<size_t> removed;
    for (size_t i = 0; i < n; ++i) {
      if (rng() % 3 == 0) removed.push_back(i);
    }
    std::vector<int> expected;
    for (size_t i = 0, k = 0; i < n; ++i) {
      if (k < removed.size() && removed[k] == i) {
        ++k;
      } else {
        expected.push_back(v[i]);
      }
    }
    std::vector<int> added;  // odd: new, between the old ones, in order
    for (int x = -1; x < static_cast<int>(2 * n); x += 2) {
      if (rng() % 3 == 0) added.push_back(x);
    }
    for (int x : added) expected.insert(std::upper_bound(expected.begin(), expected.end(), x), x);
    std::vector<size_t> at;
    for (int x : added) {
      at.push_back(
          static_cast<size_t>(std::find(expected.begin(), expected.end(), x) - expected.begin()));
    }
    v.reserve(v.size() + added.size());
    const int* before = v.data();
    SpliceInPlace(v, removed, added, at);
    ASSERT_EQ(v, expected) << "round " << round;
    if (n > 0) {
      EXPECT_EQ(v.data(), before) << "round " << round;
    }
  }
}

TEST(IpAddress, EveryAddressHasOneText) {
  EXPECT_EQ(CanonicalAddress("203.0.113.7"), "203.0.113.7");
  EXPECT_EQ(CanonicalAddress(" 2001:DB8:0:0::1 "), "2001:db8::1");
  EXPECT_EQ(CanonicalAddress("::ffff:203.0.113.7"), "203.0.113.7");  // IPv4-mapped
  for (const char* bad : {"", "host", "203.0.113", "203.0.113.7:80", "[::1]", "1.2.3.4 5"}) {
    EXPECT_FALSE(CanonicalAddress(bad).has_value()) << bad;
  }
  EXPECT_EQ(AddressText(std::string("\xcb\x00\x71\x07", 4)), "203.0.113.7");
  EXPECT_EQ(AddressText("abc"), "");
}

// X-Forwarded-For counts only when the connection comes from a trusted proxy, and only as far
// as the chain of trusted proxies goes: what a client wrote itself is never taken.
TEST(IpAddress, TheClientBehindTrustedProxies) {
  const std::string proxy("\x7f\x00\x00\x01", 4);   // 127.0.0.1
  const std::string direct("\xc6\x33\x64\x09", 4);  // 198.51.100.9
  const std::vector<std::string> trusted = {"127.0.0.1", "10.0.0.2"};
  EXPECT_EQ(ClientAddress(trusted, direct, "1.1.1.1"), "198.51.100.9");  // not a proxy
  EXPECT_EQ(ClientAddress({}, proxy, "1.1.1.1"), "127.0.0.1");           // none trusted
  EXPECT_EQ(ClientAddress(trusted, proxy, ""), "127.0.0.1");
  EXPECT_EQ(ClientAddress(trusted, proxy, "198.51.100.7"), "198.51.100.7");
  // The client claimed 1.1.1.1; the proxy appended the address it saw.
  EXPECT_EQ(ClientAddress(trusted, proxy, "1.1.1.1, 198.51.100.7"), "198.51.100.7");
  // Two proxies: the inner one appended the outer one's address.
  EXPECT_EQ(ClientAddress(trusted, proxy, "198.51.100.7,10.0.0.2"), "198.51.100.7");
  // Garbage stops the walk at the hop that forwarded it.
  EXPECT_EQ(ClientAddress(trusted, proxy, "198.51.100.7, nonsense, 10.0.0.2"), "10.0.0.2");
  EXPECT_EQ(ClientAddress(trusted, proxy, "x\"y"), "127.0.0.1");
  EXPECT_EQ(ClientAddress(trusted, proxy, "2001:DB8::7"), "2001:db8::7");
  EXPECT_EQ(ClientAddress(trusted, "", "198.51.100.7"), "");  // no network
}

// The same rule against a model of the network rather than of the header: a client, maybe
// writing X-Forwarded-For itself (addresses, spoofed proxies, garbage), then a chain of proxies,
// trusted or not, each appending its peer's address in some spelling. The client to record is
// the first hop, from the service outwards, that is not a trusted proxy; what a trusted hop
// says is believed (a trusted client's own header too); empty list elements are no entries.
// 20 000 random paths.
TEST(IpAddress, TheClientBehindProxiesAsTheNetworkWouldHaveIt) {
  struct Host {
    std::string canonical;
    std::vector<std::string> spellings;
    std::string bytes;  // as accept() gives it
  };
  const std::string mapped_prefix("\0\0\0\0\0\0\0\0\0\0\xff\xff", 12);
  const std::vector<Host> hosts = {
      {"198.51.100.7",
       {"198.51.100.7", " 198.51.100.7", "::ffff:198.51.100.7", "::FFFF:198.51.100.7"},
       std::string("\xc6\x33\x64\x07", 4)},
      {"203.0.113.9", {"203.0.113.9", "203.0.113.9 "}, std::string("\xcb\x00\x71\x09", 4)},
      {"127.0.0.1", {"127.0.0.1", "::ffff:127.0.0.1"}, std::string("\x7f\x00\x00\x01", 4)},
      {"10.0.0.2", {"10.0.0.2"}, std::string("\x0a\x00\x00\x02", 4)},
      {"2001:db8::7",
       {"2001:db8::7", "2001:DB8::7", "2001:0db8:0000:0000:0000:0000:0000:0007", "2001:db8:0:0::7"},
       std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07", 16)},
      {"2001:db8:1::1",
       {"2001:db8:1::1", "2001:DB8:1:0:0:0:0:1"},
       std::string("\x20\x01\x0d\xb8\0\x01\0\0\0\0\0\0\0\0\0\x01", 16)},
      {"::1", {"::1", "0:0:0:0:0:0:0:1"}, std::string("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16)},
      {"fd00::2",
       {"fd00::2", "FD00:0::2"},
       std::string("\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x02", 16)},
  };
  const std::vector<std::string> garbage = {
      "unknown",          "nonsense", "1.2.3",   "[2001:db8::7]:80",
      "198.51.100.7:443", "x\"y",     "_hidden", ""};
  std::mt19937_64 rng(20261203);
  auto uniform = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  for (int round = 0; round < 20000; ++round) {
    std::vector<std::string> trusted;
    for (const Host& h : hosts) {
      if (uniform(3) == 0) trusted.push_back(h.canonical);
    }
    auto is_trusted = [&](const std::string& a) {
      return std::find(trusted.begin(), trusted.end(), a) != trusted.end();
    };
    // What the client writes itself: an address or garbage each, canonical text or nullopt.
    std::vector<std::pair<std::string, std::optional<std::string>>> forged;
    for (size_t n = uniform(4); n > 0; --n) {
      if (uniform(3) == 0) {
        forged.emplace_back(garbage[uniform(garbage.size())], std::nullopt);
      } else {
        const Host& h = hosts[uniform(hosts.size())];
        forged.emplace_back(h.spellings[uniform(h.spellings.size())], h.canonical);
      }
    }
    std::vector<const Host*> path;  // the client, then each proxy; the last is the peer
    for (size_t n = 1 + uniform(4); n > 0; --n) path.push_back(&hosts[uniform(hosts.size())]);

    std::string header;
    auto append = [&](const std::string& entry) {
      if (!header.empty()) header += uniform(2) == 0 ? ", " : ",";
      header += entry;
    };
    for (const auto& [text, canonical] : forged) append(text);
    for (size_t i = 1; i < path.size(); ++i) {  // proxy i appends the address it saw
      append(path[i - 1]->spellings[uniform(path[i - 1]->spellings.size())]);
    }
    std::string peer = path.back()->bytes;
    if (peer.size() == 4 && uniform(2) == 0) peer = mapped_prefix + peer;  // a dual-stack socket

    std::string expected;
    size_t hop = path.size();
    while (hop > 0 && is_trusted(path[hop - 1]->canonical)) --hop;
    if (hop > 0) {
      expected = path[hop - 1]->canonical;
    } else {  // every hop trusted, the client too: its own header is believed
      expected = path.front()->canonical;
      for (auto it = forged.rbegin(); it != forged.rend(); ++it) {
        if (it->first.empty()) continue;  // an empty list element is no entry
        if (!it->second) break;
        expected = *it->second;
        if (!is_trusted(expected)) break;
      }
    }
    ASSERT_EQ(ClientAddress(trusted, peer, header), expected)
        << "round " << round << ": header '" << header << "', peer " << path.back()->canonical;
  }
}

TEST(Clock, FormatsAndParsesRfc3339) {
  EXPECT_EQ(FormatRfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1795341600), "2026-11-22T10:00:00Z");
  EXPECT_EQ(ParseRfc3339("2026-11-22T10:00:00Z"), 1795341600);
  EXPECT_EQ(ParseRfc3339("2026-11-22T11:00:00+01:00"), 1795341600);
  EXPECT_EQ(ParseRfc3339("2026-11-22T10:00:00.123Z"), 1795341600);
  EXPECT_FALSE(ParseRfc3339("2026-11-22 10:00:00").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-02-30T10:00:00Z").has_value());
  EXPECT_FALSE(ParseRfc3339("2026-11-22T10:00:00").has_value());
}

TEST(Clock, CivilDaysRoundTrip) {
  for (int64_t d = -800000; d < 800000; d += 997) {
    EXPECT_EQ(DaysFromCivil(CivilFromDays(d)), d);
  }
  EXPECT_EQ(DaysInMonth(2024, 2), 29);
  EXPECT_EQ(DaysInMonth(2100, 2), 28);
  EXPECT_EQ(DaysInMonth(2000, 2), 29);
}

TEST(Encoding, Base64RoundTripsAndRejectsNonCanonical) {
  for (size_t n = 0; n < 40; ++n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 37 + 11);
    EXPECT_EQ(Base64Decode(Base64Encode(b)), b);
    EXPECT_EQ(Base64UrlDecode(Base64UrlEncode(b)), b);
    EXPECT_EQ(HexDecode(HexEncode(b)), b);
  }
  EXPECT_FALSE(Base64Decode("ab=c").has_value());
  EXPECT_FALSE(Base64UrlDecode("AB").has_value() && Base64UrlDecode("AB")->size() != 1);
  EXPECT_FALSE(Base64UrlDecode("AF").has_value());  // non-zero padding bits
  EXPECT_FALSE(HexDecode("zz").has_value());
}

TEST(Encoding, RandomIdsHaveTheContractShapeAndDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = RandomId("sub_");
    EXPECT_TRUE(IsRandomId(id, "sub_")) << id;
    EXPECT_EQ(id.size(), 30u);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(IsRandomId("sub_short", "sub_"));
  EXPECT_FALSE(IsRandomId("key_0123456789abcdefghjkmnpqrs", "sub_"));
}

// An id's 130 bits, big-endian: the last character the lowest five, the first the highest.
TEST(Encoding, ARandomIdsBitsAreItsCharactersInOrder) {
  uint8_t bits[kRandomIdBytes];
  ASSERT_TRUE(RandomIdBits("sub_00000000000000000000000001", "sub_", bits));
  EXPECT_EQ(Bytes(bits, bits + kRandomIdBytes),
            Bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  ASSERT_TRUE(RandomIdBits("sub_z0000000000000000000000000", "sub_", bits));  // 31 << 125
  EXPECT_EQ(Bytes(bits, bits + 2), Bytes({3, 0xe0}));
  ASSERT_TRUE(RandomIdBits("sub_zzzzzzzzzzzzzzzzzzzzzzzzzz", "sub_", bits));
  EXPECT_EQ(Bytes(bits, bits + kRandomIdBytes),
            Bytes({3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                   0xff, 0xff, 0xff}));
  std::set<Bytes> distinct;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(RandomIdBits(RandomId("sub_"), "sub_", bits));
    distinct.insert(Bytes(bits, bits + kRandomIdBytes));
  }
  EXPECT_EQ(distinct.size(), 1000u);
  bits[0] = 7;
  EXPECT_FALSE(RandomIdBits("sub_0000000000000000000000000I", "sub_", bits));  // not Crockford
  EXPECT_FALSE(RandomIdBits("key_00000000000000000000000001", "sub_", bits));
  EXPECT_EQ(bits[0], 7);  // nothing written
}

TEST(Encoding, IdsMintedInRunsShareARunsCharactersAndDrawTheRest) {
  RandomIdRuns runs("sub_", 100);
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back(runs.Next());
  std::set<std::string> distinct(ids.begin(), ids.end()), run_chars;
  EXPECT_EQ(distinct.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(IsRandomId(ids[i], "sub_")) << ids[i];
    // Characters 4-6 are the run's: the same for each id of a run of 100.
    EXPECT_EQ(ids[i].substr(4, 3), ids[i - i % 100].substr(4, 3)) << i;
    run_chars.insert(ids[i].substr(4, 3));
  }
  // Ten runs, each with characters drawn afresh (15 bits: some two of the ten alike in about
  // one run of this test in 730, two such pairs in about one in a million).
  EXPECT_GE(run_chars.size(), 9u);
  // Every other character is drawn for each id: over 1 000 ids each position takes all 32
  // values of the alphabet (a value missing: about 1 chance in 10^12).
  for (size_t pos = 7; pos < 30; ++pos) {
    std::set<char> seen;
    for (const auto& id : ids) seen.insert(id[pos]);
    EXPECT_EQ(seen.size(), 32u) << "position " << pos;
  }
}

TEST(Encoding, IdRunsAreSharedSafelyBetweenThreads) {
  RandomIdRuns runs("cev_", 100);
  std::vector<std::vector<std::string>> minted(4);
  std::vector<std::thread> threads;
  for (auto& out : minted) {
    threads.emplace_back([&runs, &out] {
      for (int i = 0; i < 250; ++i) out.push_back(runs.Next());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids, run_chars;
  for (const auto& out : minted) {
    for (const auto& id : out) {
      EXPECT_TRUE(IsRandomId(id, "cev_")) << id;
      ids.insert(id);
      run_chars.insert(id.substr(4, 3));
    }
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_LE(run_chars.size(), 10u);  // 1 000 ids are ten runs of 100, whoever minted them
}

TEST(Encoding, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("Zoë – 東京 🎉"));
  EXPECT_FALSE(IsValidUtf8("\xC3\x28"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
}

TEST(JsonWriter, EscapesAndNests) {
  JsonWriter w;
  w.BeginObject()
      .String("a", "q\"\\\n\x01")
      .BeginArray("b")
      .Int(1)
      .Number(2.5)
      .Bool(false)
      .Null()
      .EndArray()
      .Number("c", 0.1)
      .EndObject();
  EXPECT_EQ(w.str(), R"({"a":"q\"\\\n\u0001","b":[1,2.5,false,null],"c":0.1})");
}

// The escaping against a byte-by-byte reference (RFC 8259 §7: quote, backslash and controls
// escaped; DEL too), over random strings dense in bytes that need it.
TEST(JsonWriter, EscapesAsAByteByByteReferenceOnRandomStrings) {
  const std::map<unsigned char, std::string> named = {{'"', "\\\""}, {'\\', "\\\\"}, {'\n', "\\n"},
                                                      {'\r', "\\r"}, {'\t', "\\t"},  {'\b', "\\b"},
                                                      {'\f', "\\f"}};
  auto reference = [&named](std::string_view v) {
    std::string out = "\"";
    for (char ch : v) {
      const auto c = static_cast<unsigned char>(ch);
      if (named.count(c)) {
        out += named.at(c);
      } else if (c < 0x20 || c == 0x7f) {
        const char* hex = "0123456789abcdef";
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += static_cast<char>(c);
      }
    }
    return out + "\"";
  };
  std::mt19937 rng(20261207);
  const std::string special = std::string("\"\\\n\r\t\b\f\x7f\x01\x1f", 10) + '\0';
  for (int round = 0; round < 5000; ++round) {
    std::string v(rng() % 40, ' ');
    for (char& ch : v) {
      const unsigned pick = rng() % 4;
      ch = pick == 0   ? special[rng() % special.size()]
           : pick == 1 ? static_cast<char>(rng() % 256)
                       : static_cast<char>('a' + rng() % 26);
    }
    std::string prefix = round % 2 == 0 ? "" : "[";
    std::string out = prefix;
    AppendJsonString(out, v);
    ASSERT_EQ(out, prefix + reference(v)) << "round " << round;
  }
}

TEST(Router, MatchesParametersAndCustomVerbs) {
  Router r;
  int hit = 0;
  r.Add("POST", "/v1/subjects", [&](Exchange&) {
    hit = 1;
    return Status::Ok();
  });
  r.Add("POST", "/v1/subjects:batch", [&](Exchange&) {
    hit = 2;
    return Status::Ok();
  });
  r.Add("GET", "/v1/subjects/{id}", [&](Exchange&) {
    hit = 3;
    return Status::Ok();
  });
  r.Add("POST", "/v1/requests/{id}:verify", [&](Exchange&) {
    hit = 4;
    return Status::Ok();
  });
  std::map<std::string, std::string> p;
  std::vector<std::string> allowed;
  Exchange x;
  const Route* m = r.Match("POST", "/v1/subjects:batch", &p, &allowed);
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(m->handler(x).ok());
  EXPECT_EQ(hit, 2);
  m = r.Match("GET", "/v1/subjects/sub_1", &p, &allowed);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(p["id"], "sub_1");
  m = r.Match("POST", "/v1/requests/req_9:verify", &p, &allowed);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(p["id"], "req_9");
  EXPECT_EQ(r.Match("POST", "/v1/requests/req_9:explode", &p, &allowed), nullptr);
  allowed.clear();
  EXPECT_EQ(r.Match("DELETE", "/v1/subjects/sub_1", &p, &allowed), nullptr);
  EXPECT_EQ(allowed, std::vector<std::string>{"GET"});
  EXPECT_EQ(r.Match("GET", "/nowhere", &p, &allowed), nullptr);
}

TEST(Problem, EveryCodeMapsToOneStatusAndType) {
  EXPECT_EQ(HttpStatusOf(Code::kUnprocessable), 422);
  EXPECT_EQ(HttpStatusOf(Code::kDamaged), 409);
  EXPECT_EQ(HttpStatusOf(Code::kUnsupportedMediaType), 415);
  Status s = Conflict("dup");
  s.AddError("fields.email", "taken").AddExtra("existing_id", "sub_x");
  const std::string body = ProblemBody(s, "req_1");
  EXPECT_NE(body.find(R"("status":409)"), std::string::npos);
  EXPECT_NE(body.find(R"("existing_id":"sub_x")"), std::string::npos);
  EXPECT_NE(body.find(R"("errors":[{"field":"fields.email","message":"taken"}])"),
            std::string::npos);
}

}  // namespace
}  // namespace garde

#include "garde/http/exchange.h"

namespace garde {
namespace {

// A bearer key a request carried is overwritten before its memory is released.
TEST(Exchange, WipeCredentialsOverwritesTheAuthorizationHeader) {
  Exchange x;
  x.headers["authorization"] = "Bearer gk_secretsecretsecret";
  x.headers["x-purpose"] = "crm";
  const char* before = x.headers["authorization"].data();
  x.WipeCredentials();
  const std::string& after = x.headers["authorization"];
  EXPECT_EQ(after.data(), before);  // in place
  EXPECT_EQ(after, std::string(after.size(), '\0'));
  EXPECT_EQ(x.headers["x-purpose"], "crm");
}

// Variable-length integers at each length's edges, and input that never ends a number.
TEST(ByteCodec, VarIntegersReadBackAtEveryLengthAndTenBytesOfContinuationAreRefused) {
  std::vector<uint64_t> values = {0, 1, 127, 128, 16383, 16384, UINT64_MAX};
  for (int bits = 7; bits < 64; bits += 7) {
    values.push_back((uint64_t{1} << bits) - 1);
    values.push_back(uint64_t{1} << bits);
  }
  for (uint64_t v : values) {
    // v and -v as signed (two's complement, computed unsigned: -INT64_MIN overflows).
    const auto positive = static_cast<int64_t>(v), negative = static_cast<int64_t>(0 - v);
    ByteWriter w;
    w.Var(v).SVar(positive).SVar(negative).VStr("ab");
    ByteReader r(w.data());
    // The same bytes through the unchecked reader of memory one wrote oneself.
    char scratch[kMaxVarBytes];
    uint64_t got = 0;
    EXPECT_EQ(GetVar(w.data().data(), &got), PutVar(v, scratch));
    EXPECT_EQ(got, v);
    EXPECT_EQ(r.Var(), v);
    EXPECT_EQ(r.SVar(), positive);
    EXPECT_EQ(r.SVar(), negative);
    EXPECT_EQ(r.VStr(), "ab");
    EXPECT_TRUE(r.done() && !r.failed()) << v;
  }
  ByteWriter small;
  small.Var(127).SVar(-64).SVar(63);
  EXPECT_EQ(small.data().size(), 3u);
  ByteWriter extremes;
  extremes.SVar(INT64_MIN).SVar(INT64_MAX);
  ByteReader e(extremes.data());
  EXPECT_EQ(e.SVar(), INT64_MIN);
  EXPECT_EQ(e.SVar(), INT64_MAX);
  const std::string endless(11, '\x80');
  ByteReader bad(endless);
  EXPECT_EQ(bad.Var(), 0u);
  EXPECT_TRUE(bad.failed());
  ByteWriter longer;
  longer.Var(5).data() += "abc";  // a length beyond the bytes left
  ByteReader cut(longer.data());
  EXPECT_EQ(cut.VStr(), "");
  EXPECT_TRUE(cut.failed());
}

}  // namespace
}  // namespace garde
