#include <gtest/gtest.h>

#include <set>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"
#include "garde/base/ip_address.h"
#include "garde/base/json_writer.h"
#include "garde/http/problem.h"
#include "garde/http/router.h"

namespace garde {
namespace {

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
  w.BeginObject().Key("a").String("q\"\\\n\x01").Key("b").BeginArray().Int(1).Number(2.5)
      .Bool(false).Null().EndArray().Key("c").Number(0.1).EndObject();
  EXPECT_EQ(w.str(), R"({"a":"q\"\\\n\u0001","b":[1,2.5,false,null],"c":0.1})");
}

TEST(Router, MatchesParametersAndCustomVerbs) {
  Router r;
  int hit = 0;
  r.Add("POST", "/v1/subjects", [&](Exchange&) { hit = 1; return Status::Ok(); });
  r.Add("POST", "/v1/subjects:batch", [&](Exchange&) { hit = 2; return Status::Ok(); });
  r.Add("GET", "/v1/subjects/{id}", [&](Exchange&) { hit = 3; return Status::Ok(); });
  r.Add("POST", "/v1/requests/{id}:verify", [&](Exchange&) { hit = 4; return Status::Ok(); });
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

}  // namespace
}  // namespace garde
