#include "garde/http/request_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace garde {
namespace {

RequestParser::Limits TestLimits() {
  RequestParser::Limits limits;
  limits.max_head_bytes = 1024;
  limits.max_headers = 10;
  limits.body_limit = [](std::string_view target) -> int64_t {
    return target.find(":batch") != std::string_view::npos ? 1000 : 100;
  };
  return limits;
}

// Feeds `wire` in pieces of `step` bytes (as a slow client sends it) until the parser
// finishes or the bytes run out.
RequestParser::Progress FeedInSteps(RequestParser& p, const std::string& wire, size_t step,
                                    size_t* pos) {
  std::string buffer;
  auto progress = RequestParser::Progress::kNeedMore;
  for (size_t at = 0; at < wire.size(); at += step) {
    buffer.append(wire, at, step);
    progress = p.Advance(buffer, pos);
    if (progress == RequestParser::Progress::kDone ||
        progress == RequestParser::Progress::kFailed) {
      break;
    }
  }
  return progress;
}

TEST(RequestParser, ParsesAGetWithItsHeaders) {
  RequestParser p(TestLimits());
  const std::string wire =
      "GET /v1/subjects/sub_1?x=1 HTTP/1.1\r\nHost: a\r\nX-Purpose:  crm \r\n\r\n";
  size_t pos = 0;
  ASSERT_EQ(p.Advance(wire, &pos), RequestParser::Progress::kDone);
  EXPECT_EQ(pos, wire.size());
  EXPECT_EQ(p.request().method, "GET");
  EXPECT_EQ(p.request().target, "/v1/subjects/sub_1?x=1");
  EXPECT_EQ(p.request().minor_version, 1);
  EXPECT_TRUE(p.request().keep_alive);
  ASSERT_EQ(p.request().headers.size(), 2u);
  EXPECT_EQ(p.request().headers[1].first, "x-purpose");
  EXPECT_EQ(p.request().headers[1].second, "crm");
  EXPECT_TRUE(p.request().body.empty());
}

// A proxy adds its own X-Forwarded-For line after the client's: the lines make one list, in
// order (RFC 9110 §5.3), so the hop the proxy appended is last. Other repeated fields keep
// their last value.
TEST(RequestParser, RepeatedForwardedForLinesMakeOneList) {
  RequestParser p(TestLimits());
  const std::string wire =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 198.51.100.7\r\nX-Purpose: a\r\n"
      "X-Forwarded-For: 10.0.0.2, 127.0.0.1\r\nX-Purpose: b\r\n\r\n";
  size_t pos = 0;
  ASSERT_EQ(p.Advance(wire, &pos), RequestParser::Progress::kDone);
  Exchange x = ToExchange(ParsedRequest(p.request()));
  EXPECT_EQ(x.Header("x-forwarded-for"), "198.51.100.7, 10.0.0.2, 127.0.0.1");
  EXPECT_EQ(x.Header("x-purpose"), "b");
}

TEST(RequestParser, ByteByByteGivesTheSameRequest) {
  const std::string wire =
      "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nContent-Type: "
      "application/json\r\n\r\n"
      "{\"a\":\"bcd\"}";
  for (size_t step : {1u, 2u, 3u, 7u, 64u}) {
    RequestParser p(TestLimits());
    size_t pos = 0;
    ASSERT_EQ(FeedInSteps(p, wire, step, &pos), RequestParser::Progress::kDone) << step;
    EXPECT_EQ(p.request().body, "{\"a\":\"bcd\"}") << step;
    EXPECT_EQ(pos, wire.size());
  }
}

TEST(RequestParser, PipelinedRequestsComeOutOneAfterTheOther) {
  const std::string wire =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: "
      "2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestParser p(TestLimits());
  size_t pos = 0;
  std::vector<std::string> seen;
  while (p.Advance(wire, &pos) == RequestParser::Progress::kDone) {
    seen.push_back(p.request().method + " " + p.request().target + " " + p.request().body);
    p.Reset();
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"GET /a ", "POST /b hi", "GET /c "}));
  EXPECT_EQ(pos, wire.size());
}

TEST(RequestParser, DecodesChunkedBodiesWithExtensionsAndTrailers) {
  const std::string wire =
      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;name=v\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: t\r\n\r\n"
      "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
  for (size_t step : {1u, 5u, 1000u}) {
    RequestParser p(TestLimits());
    size_t pos = 0;
    ASSERT_EQ(FeedInSteps(p, wire, step, &pos), RequestParser::Progress::kDone) << step;
    EXPECT_EQ(p.request().body, "Wikipedia in\r\n\r\nchunks.") << step;
    EXPECT_EQ(wire.substr(pos, 4), "GET ") << step;
  }
}

// A body taken out as it arrives (an upload spooled to disk) comes out whole, in order, and
// still counts against the body limit: chunks adding up past it are refused.
TEST(RequestParser, ABodyTakenAsItArrivesIsWholeAndStillLimited) {
  const std::string body(90, 'b');
  std::string chunked;
  for (size_t at = 0; at < body.size(); at += 7) {
    const std::string part = body.substr(at, 7);
    chunked += std::to_string(part.size()) + "\r\n" + part + "\r\n";
  }
  const std::string chunked_framing = "Transfer-Encoding: chunked\r\n\r\n" + chunked + "0\r\n\r\n";
  for (const std::string& framing : {"Content-Length: 90\r\n\r\n" + body, chunked_framing}) {
    const std::string wire = "POST /x HTTP/1.1\r\nHost: x\r\n" + framing;
    for (size_t step : {1u, 13u, 1000u}) {
      RequestParser p(TestLimits());
      std::string buffer, taken;
      size_t pos = 0;
      auto progress = RequestParser::Progress::kNeedMore;
      for (size_t at = 0; at < wire.size() && progress != RequestParser::Progress::kDone;
           at += step) {
        buffer.append(wire, at, step);
        progress = p.Advance(buffer, &pos);
        taken += p.TakeBody();
      }
      ASSERT_EQ(progress, RequestParser::Progress::kDone) << step;
      EXPECT_EQ(taken, body) << step;
      EXPECT_TRUE(p.request().body.empty());
    }
  }
  // 15 chunks of 7 bytes: 105 bytes, over the limit of 100 although each was taken out.
  std::string over;
  for (int i = 0; i < 15; ++i) over += "7\r\nbbbbbbb\r\n";
  RequestParser p(TestLimits());
  const std::string wire =
      "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + over + "0\r\n\r\n";
  std::string buffer;
  size_t pos = 0;
  auto progress = RequestParser::Progress::kNeedMore;
  auto going = [&] {
    return progress == RequestParser::Progress::kNeedMore ||
           progress == RequestParser::Progress::kBodyNext;
  };
  for (size_t at = 0; at < wire.size() && going(); at += 9) {
    buffer.append(wire, at, 9);
    progress = p.Advance(buffer, &pos);
    p.TakeBody();
  }
  EXPECT_EQ(progress, RequestParser::Progress::kFailed);
  EXPECT_EQ(p.error().code(), Code::kPayloadTooLarge);
}

TEST(RequestParser, AnswersHttp10WithCloseUnlessKeepAliveIsAsked) {
  RequestParser p(TestLimits());
  size_t pos = 0;
  ASSERT_EQ(p.Advance("GET / HTTP/1.0\r\n\r\n", &pos), RequestParser::Progress::kDone);
  EXPECT_FALSE(p.request().keep_alive);
  p.Reset();
  pos = 0;
  ASSERT_EQ(p.Advance("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &pos),
            RequestParser::Progress::kDone);
  EXPECT_TRUE(p.request().keep_alive);
  p.Reset();
  pos = 0;
  ASSERT_EQ(p.Advance("GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n\r\n", &pos),
            RequestParser::Progress::kDone);
  EXPECT_FALSE(p.request().keep_alive);
}

TEST(RequestParser, FlagsExpectContinueAndWaitsForTheBody) {
  RequestParser p(TestLimits());
  size_t pos = 0;
  const std::string head =
      "PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  ASSERT_EQ(p.Advance(head, &pos), RequestParser::Progress::kBodyNext);
  EXPECT_TRUE(p.request().expect_continue);
  EXPECT_TRUE(p.Started());
  ASSERT_EQ(p.Advance(head + "abc", &pos), RequestParser::Progress::kDone);
  EXPECT_EQ(p.request().body, "abc");
}

TEST(RequestParser, IgnoresEmptyLinesBeforeARequest) {
  RequestParser p(TestLimits());
  size_t pos = 0;
  ASSERT_EQ(p.Advance("\r\n\r\n", &pos), RequestParser::Progress::kNeedMore);
  EXPECT_FALSE(p.Started());
  ASSERT_EQ(p.Advance("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", &pos),
            RequestParser::Progress::kDone);
}

struct Refusal {
  const char* name;
  std::string wire;
  Code code;
};

TEST(RequestParser, RefusesWhatCouldBeSmuggledOrIsNotHttp) {
  const std::vector<Refusal> cases = {
      {"not http", "\x01\x02 NOT-HTTP \xff\r\n\r\n", Code::kBadRequest},
      {"no version", "GET /\r\n\r\n", Code::kBadRequest},
      {"http/2", "GET / HTTP/2.0\r\n\r\n", Code::kVersionNotSupported},
      {"http/3", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", Code::kVersionNotSupported},
      {"not a version", "GET / HTTP/1.x\r\nHost: x\r\n\r\n", Code::kBadRequest},
      {"unknown method", "BREW / HTTP/1.1\r\nHost: x\r\n\r\n", Code::kNotImplemented},
      {"no host", "GET / HTTP/1.1\r\n\r\n", Code::kBadRequest},
      {"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", Code::kBadRequest},
      {"invalid host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Code::kBadRequest},
      {"host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", Code::kBadRequest},
      {"host with a bad port", "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", Code::kBadRequest},
      {"length with a trailing comma", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5,\r\n\r\n",
       Code::kBadRequest},
      {"an extra empty length",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length:\r\n\r\n",
       Code::kBadRequest},
      {"trailers swallowing the next request",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
       "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
       Code::kBadRequest},
      {"bare LF after a chunk size",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\nA\r\n0\r\n\r\n",
       Code::kBadRequest},
      {"bare LF after chunk data",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\n0\r\n\r\n",
       Code::kBadRequest},
      {"chunk size with a leading space",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n 1\r\nA\r\n0\r\n\r\n",
       Code::kBadRequest},
      {"garbage without a line end", std::string("\x16\x03\x01\x02\x00\x01"), Code::kBadRequest},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", Code::kBadRequest},
      {"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", Code::kBadRequest},
      {"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nHost : a\r\n\r\n", Code::kBadRequest},
      {"folded header", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n", Code::kBadRequest},
      {"no colon", "GET / HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n", Code::kBadRequest},
      {"control char", std::string("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n"),
       Code::kBadRequest},
      {"length and chunked",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       Code::kBadRequest},
      {"two lengths",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
       Code::kBadRequest},
      {"length list differs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n",
       Code::kBadRequest},
      {"signed length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
       Code::kBadRequest},
      {"gzip coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       Code::kBadRequest},
      {"chunked in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       Code::kBadRequest},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
       Code::kBadRequest},
      {"chunk without crlf",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
       Code::kBadRequest},
      {"body over limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n",
       Code::kPayloadTooLarge},
      {"chunks over limit",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" +
           std::string(80, 'a') + "\r\n50\r\n",
       Code::kPayloadTooLarge},
      {"head too large", "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(2000, 'a') + "\r\n\r\n",
       Code::kHeaderTooLarge},
      {"endless head", "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(2000, 'a'),
       Code::kHeaderTooLarge},
      // Not a request line, whatever follows it: refused as such however the bytes arrive
      // (found by fuzzing: whole, the head's size was judged first, 431; byte by byte, 400).
      {"not a method, in a head too large",
       "]POST / HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(2000, 'a') + "\r\n\r\n",
       Code::kBadRequest},
      {"too many headers",
       "GET / HTTP/1.1\r\nHost: x\r\n" +
           [] {
             std::string h;
             for (int i = 0; i < 11; ++i) h += "X-" + std::to_string(i) + ": v\r\n";
             return h;
           }() +
           "\r\n",
       Code::kHeaderTooLarge},
  };
  for (const auto& c : cases) {
    RequestParser p(TestLimits());
    size_t pos = 0;
    EXPECT_EQ(p.Advance(c.wire, &pos), RequestParser::Progress::kFailed) << c.name;
    EXPECT_EQ(p.error().code(), c.code) << c.name << ": " << p.error().message();
    // Once failed, it stays failed.
    EXPECT_EQ(p.Advance(c.wire, &pos), RequestParser::Progress::kFailed) << c.name;
    // The same answer whatever pieces the bytes arrive in.
    for (size_t step : {1u, 7u}) {
      RequestParser q(TestLimits());
      size_t at = 0;
      EXPECT_EQ(FeedInSteps(q, c.wire, step, &at), RequestParser::Progress::kFailed)
          << c.name << ", " << step << " bytes at a time";
      EXPECT_EQ(q.error().code(), c.code)
          << c.name << ", " << step << " bytes at a time: " << q.error().message();
    }
  }
}

// RFC 9112 §3.2.2 and RFC 9110 §2.5: what a strict server still accepts.
TEST(RequestParser, AcceptsAbsoluteFormLaterMinorVersionsAndHostlessHttp10) {
  struct Accepted {
    const char* wire;
    const char* target;
    int minor;
  };
  const Accepted cases[] = {
      {"GET http://example.org/v1/purposes?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n",
       "/v1/purposes?x=1", 1},
      {"GET HTTPS://example.org:8443 HTTP/1.1\r\nHost: example.org:8443\r\n\r\n", "/", 1},
      {"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", "/healthz", 1},
      {"GET /healthz HTTP/1.0\r\n\r\n", "/healthz", 0},
      {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "/", 1},
      {"GET / HTTP/1.1\r\nHost:\r\n\r\n", "/", 1},
      {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 ;ext=1\r\nA\r\n0\r\n"
       "Digest: x\r\n\r\n",
       "/", 1},
  };
  for (const auto& c : cases) {
    RequestParser p(TestLimits());
    size_t pos = 0;
    EXPECT_EQ(p.Advance(c.wire, &pos), RequestParser::Progress::kDone)
        << c.wire << ": " << p.error().message();
    EXPECT_EQ(p.request().target, c.target) << c.wire;
    EXPECT_EQ(p.request().minor_version, c.minor) << c.wire;
  }
}

TEST(RequestParser, AcceptsALargerBodyWhereTheTargetAllowsIt) {
  RequestParser p(TestLimits());
  size_t pos = 0;
  const std::string wire =
      "POST /v1/subjects:batch HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" +
      std::string(500, 'x');
  ASSERT_EQ(p.Advance(wire, &pos), RequestParser::Progress::kDone) << p.error().message();
  EXPECT_EQ(p.request().body.size(), 500u);
  p.Reset();
  pos = 0;
  const std::string same_length_list =
      "POST /v1/subjects:batch HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nok";
  ASSERT_EQ(p.Advance(same_length_list, &pos), RequestParser::Progress::kDone);
  EXPECT_EQ(p.request().body, "ok");
}

}  // namespace
}  // namespace garde
