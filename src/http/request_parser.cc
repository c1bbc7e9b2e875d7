#include "garde/http/request_parser.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>

#include "garde/base/encoding.h"

namespace garde {
namespace {

// RFC 9110 tchar: the characters of a method or a header name.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return IsTokenChar(static_cast<unsigned char>(c));
  });
}

// Field values: visible characters, spaces, tabs and obs-text; no other control character.
bool IsFieldValue(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The next line of `s` from *pos, without its CRLF or LF; false when no full line is left.
bool NextLine(std::string_view s, size_t* pos, std::string_view* line) {
  const size_t eol = s.find('\n', *pos);
  if (eol == std::string_view::npos) return false;
  size_t end = eol;
  if (end > *pos && s[end - 1] == '\r') --end;
  *line = s.substr(*pos, end - *pos);
  *pos = eol + 1;
  return true;
}

// A decimal Content-Length; false unless it is digits only and fits comfortably.
bool ParseLength(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

constexpr size_t kMaxChunkLine = 1024;

// The methods of RFC 9110 §9 and PATCH (RFC 5789); others are 501.
bool IsKnownMethod(std::string_view m) {
  static constexpr std::string_view kMethods[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                  "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  return std::find(std::begin(kMethods), std::end(kMethods), m) != std::end(kMethods);
}

// RFC 9110 §7.2: Host = uri-host [ ":" port ]; a reg-name, an IPv4 address or an IP literal
// in brackets. Empty is allowed (a request-target without authority).
bool IsHost(std::string_view v) {
  if (v.empty()) return true;
  size_t end = v.size();
  if (v.front() == '[') {
    const size_t close = v.find(']');
    if (close == std::string_view::npos) return false;
    for (char c : v.substr(1, close - 1)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    }
    end = close + 1;
  } else {
    end = v.find(':');
    if (end == std::string_view::npos) end = v.size();
    if (end == 0) return false;
    for (char c : v.substr(0, end)) {
      const auto u = static_cast<unsigned char>(c);
      if (!std::isalnum(u) && std::strchr("-._~!$&'()*+,;=%", c) == nullptr) return false;
    }
  }
  if (end == v.size()) return true;
  if (v[end] != ':') return false;
  const std::string_view port = v.substr(end + 1);
  return port.size() <= 5 &&
         std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A chunked-framing line (chunk size, chunk end, trailer) ends with CRLF: RFC 9112 §7.1 gives
// no bare-LF leniency there, and a lenient reader is how chunked bodies get smuggled.
bool NextCrlfLine(std::string_view s, size_t* pos, std::string_view* line, bool* bare_lf) {
  const size_t eol = s.find('\n', *pos);
  if (eol == std::string_view::npos) return false;
  *bare_lf = eol == *pos || s[eol - 1] != '\r';
  *line = s.substr(*pos, eol - *pos - (*bare_lf ? 0 : 1));
  *pos = eol + 1;
  return true;
}

}  // namespace

Exchange ToExchange(ParsedRequest&& request) {
  Exchange x;
  x.method = std::move(request.method);
  x.target = std::move(request.target);
  // A repeated header keeps its last value, as the route handlers read one value per name;
  // X-Forwarded-For lines make one list in order (a proxy adds its own line after the
  // client's, RFC 9110 §5.3), read from the right (ClientAddress).
  for (auto& [name, value] : request.headers) {
    std::string& held = x.headers[name];
    if (name == "x-forwarded-for" && !held.empty()) {
      held += ", " + value;
    } else {
      held = std::move(value);
    }
  }
  x.body = std::move(request.body);
  return x;
}

std::string RequestParser::TakeBody() {
  body_taken_ += request_.body.size();
  std::string out = std::move(request_.body);
  request_.body.clear();
  return out;
}

void RequestParser::Reset() {
  state_ = State::kHead;
  scanned_ = 0;
  remaining_ = 0;
  body_taken_ = 0;
  request_ = ParsedRequest{};
  error_ = Status::Ok();
}

RequestParser::Progress RequestParser::Fail(Status s) {
  state_ = State::kFailed;
  error_ = std::move(s);
  return Progress::kFailed;
}

RequestParser::Progress RequestParser::Advance(std::string_view buffer, size_t* pos) {
  if (state_ == State::kFailed) return Progress::kFailed;
  if (state_ == State::kDone) return Progress::kDone;
  if (state_ == State::kHead) {
    // RFC 9112 §2.2: empty lines before a request line are ignored.
    if (scanned_ == 0) {
      while (*pos < buffer.size() && (buffer[*pos] == '\r' || buffer[*pos] == '\n')) ++*pos;
    }
    const std::string_view rest = buffer.substr(*pos);
    // The head ends with an empty line: "\n\r\n" or "\n\n". Resume the search a little before
    // where the last one stopped, in case the end straddled two reads.
    size_t end = std::string_view::npos;
    for (size_t i = scanned_ >= 2 ? scanned_ - 2 : 0; i < rest.size(); ++i) {
      const void* nl = std::memchr(rest.data() + i, '\n', rest.size() - i);
      if (nl == nullptr) break;
      i = static_cast<size_t>(static_cast<const char*>(nl) - rest.data());
      if (i + 1 < rest.size() && rest[i + 1] == '\n') {
        end = i + 2;
        break;
      }
      if (i + 2 < rest.size() && rest[i + 1] == '\r' && rest[i + 2] == '\n') {
        end = i + 3;
        break;
      }
    }
    // Bytes that cannot begin a request line (a TLS handshake, binary noise) are refused at
    // once, not after request_timeout: the method is a token followed by a space. Asked before
    // the head's size, so that the answer does not depend on how the bytes arrived.
    const size_t first_eol = rest.find('\n');
    const std::string_view start = rest.substr(0, first_eol);
    size_t method_end = 0;
    while (method_end < start.size() &&
           IsTokenChar(static_cast<unsigned char>(start[method_end]))) {
      ++method_end;
    }
    if (method_end < start.size() && (start[method_end] != ' ' || method_end == 0)) {
      return Fail(BadRequest("the request is not valid HTTP/1.1"));
    }
    if (end == std::string_view::npos) {
      scanned_ = rest.size();
      if (rest.size() > limits_.max_head_bytes) {
        return Fail(Status(Code::kHeaderTooLarge, "the request line and headers exceed " +
                                                      std::to_string(limits_.max_head_bytes) +
                                                      " bytes"));
      }
      return Progress::kNeedMore;
    }
    if (end > limits_.max_head_bytes) {
      return Fail(Status(Code::kHeaderTooLarge, "the request line and headers exceed " +
                                                    std::to_string(limits_.max_head_bytes) +
                                                    " bytes"));
    }
    Status head = ParseHead(rest.substr(0, end));
    *pos += end;
    scanned_ = end;
    if (!head.ok()) return Fail(std::move(head));
  }
  switch (state_) {
    case State::kBody: return Body(buffer, pos);
    case State::kChunkSize:
    case State::kChunkData:
    case State::kChunkDataEnd:
    case State::kTrailers: return Chunked(buffer, pos);
    case State::kDone: return Progress::kDone;
    default: return Progress::kNeedMore;
  }
}

Status RequestParser::ParseHead(std::string_view head) {
  size_t at = 0;
  std::string_view line;
  NextLine(head, &at, &line);
  // request-line = method SP request-target SP HTTP-version
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return BadRequest("the request is not valid HTTP/1.1");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return BadRequest("the request is not valid HTTP/1.1");
  // RFC 9112 §3.2: a request-target is URI characters, visible ASCII (other bytes are
  // percent-encoded).
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
      })) {
    return BadRequest("the request target is malformed");
  }
  // HTTP-version = "HTTP/" DIGIT "." DIGIT. A 1.x minor version above 1 is answered as 1.1
  // (RFC 9110 §2.5); another major version is 505.
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return BadRequest("the request is not valid HTTP/1.1");
  }
  if (version[5] != '1') {
    return Status(Code::kVersionNotSupported, "only HTTP/1.x is served here");
  }
  request_.minor_version = version[7] == '0' ? 0 : 1;
  if (!IsKnownMethod(method)) {
    return Status(Code::kNotImplemented, "the method is not one this service implements");
  }
  request_.method.assign(method);
  // RFC 9112 §3.2.2: an absolute-form target is served on its path (and query).
  if (std::string_view rest = target;
      AsciiLower(rest.substr(0, 7)) == "http://" || AsciiLower(rest.substr(0, 8)) == "https://") {
    rest.remove_prefix(rest.find("//") + 2);
    const size_t path = rest.find_first_of("/?");
    if (path == 0) return BadRequest("the request target is malformed");
    request_.target = path == std::string_view::npos ? "/" : std::string(rest.substr(path));
    if (request_.target.front() == '?') request_.target.insert(0, "/");
  } else {
    request_.target.assign(target);
  }

  bool chunked = false;
  int hosts = 0;
  bool has_length = false;
  uint64_t length = 0;
  std::string connection;
  while (NextLine(head, &at, &line) && !line.empty()) {
    if (line.front() == ' ' || line.front() == '\t') {
      return BadRequest("folded header lines are not accepted");
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return BadRequest("a header line is malformed");
    }
    const std::string_view value = Trim(line.substr(colon + 1));
    if (!IsFieldValue(value)) return BadRequest("a header value holds a control character");
    if (request_.headers.size() >= limits_.max_headers) {
      return Status(Code::kHeaderTooLarge,
                    "more than " + std::to_string(limits_.max_headers) + " header fields");
    }
    std::string name = AsciiLower(line.substr(0, colon));
    if (name == "content-length") {
      // A list of identical values is one length (RFC 9110 §8.6); an empty element ("5,",
      // an empty field) or any other difference is refused.
      std::string_view list = value;
      for (;;) {
        const size_t comma = list.find(',');
        uint64_t v = 0;
        if (!ParseLength(Trim(list.substr(0, comma)), &v) || (has_length && v != length)) {
          return BadRequest("the Content-Length header is invalid");
        }
        has_length = true;
        length = v;
        if (comma == std::string_view::npos) break;
        list = list.substr(comma + 1);
      }
    } else if (name == "transfer-encoding") {
      if (chunked || AsciiLower(value) != "chunked") {
        return BadRequest("only the chunked transfer coding is accepted");
      }
      chunked = true;
    } else if (name == "connection") {
      connection += AsciiLower(value) + ",";
    } else if (name == "expect") {
      request_.expect_continue = AsciiLower(value) == "100-continue";
    } else if (name == "host") {
      if (++hosts > 1) return BadRequest("a request has one Host header");
      if (!IsHost(value)) return BadRequest("the Host header is invalid");
    }
    request_.headers.emplace_back(std::move(name), std::string(value));
  }
  // RFC 9112 §3.2: an HTTP/1.1 request names its host once.
  if (request_.minor_version == 1 && hosts == 0) {
    return BadRequest("an HTTP/1.1 request needs a Host header");
  }
  // RFC 9112 §6.1: a request with both is a smuggling attempt or a broken intermediary.
  if (chunked && has_length) {
    return BadRequest("Content-Length and Transfer-Encoding together are not accepted");
  }
  if (chunked && request_.minor_version == 0) {
    return BadRequest("HTTP/1.0 has no chunked transfer coding");
  }
  bool close = false, keep = false;
  for (size_t from = 0; from < connection.size();) {
    const size_t comma = connection.find(',', from);
    const std::string_view token = Trim(std::string_view(connection).substr(from, comma - from));
    close = close || token == "close";
    keep = keep || token == "keep-alive";
    from = comma + 1;
  }
  request_.keep_alive = !close && (request_.minor_version == 1 || keep);
  if (request_.minor_version == 0) request_.expect_continue = false;

  body_limit_ = limits_.body_limit ? limits_.body_limit(request_.target)
                                   : std::numeric_limits<int64_t>::max();
  if (has_length && length > static_cast<uint64_t>(body_limit_)) {
    return Status(Code::kPayloadTooLarge,
                  "the body is larger than " + std::to_string(body_limit_) + " bytes");
  }
  if (chunked) {
    state_ = State::kChunkSize;
  } else if (length > 0) {
    state_ = State::kBody;
    remaining_ = length;
    request_.body.reserve(static_cast<size_t>(std::min<uint64_t>(length, 1 << 20)));
  } else {
    state_ = State::kDone;
  }
  return Status::Ok();
}

RequestParser::Progress RequestParser::Body(std::string_view buffer, size_t* pos) {
  const size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, buffer.size() - *pos));
  request_.body.append(buffer.data() + *pos, take);
  *pos += take;
  remaining_ -= take;
  if (remaining_ > 0) return Progress::kBodyNext;
  state_ = State::kDone;
  return Progress::kDone;
}

RequestParser::Progress RequestParser::Chunked(std::string_view buffer, size_t* pos) {
  for (;;) {
    std::string_view line;
    switch (state_) {
      case State::kChunkSize: {
        size_t at = *pos;
        bool bare_lf = false;
        if (!NextCrlfLine(buffer, &at, &line, &bare_lf)) {
          if (buffer.size() - *pos > kMaxChunkLine)
            return Fail(BadRequest("a chunk size line is too long"));
          return Progress::kBodyNext;
        }
        if (at - *pos > kMaxChunkLine) return Fail(BadRequest("a chunk size line is too long"));
        if (bare_lf) return Fail(BadRequest("a chunk size line does not end with CRLF"));
        // chunk-size is 1*HEXDIG right at the line's start; white space may only come before
        // a chunk extension (BWS ";").
        const size_t semi = line.find(';');
        std::string_view digits = line.substr(0, semi);
        if (semi != std::string_view::npos) {
          while (!digits.empty() && (digits.back() == ' ' || digits.back() == '\t')) {
            digits.remove_suffix(1);
          }
        }
        if (digits.empty() || digits.size() > 15)
          return Fail(BadRequest("a chunk size is invalid"));
        uint64_t size = 0;
        for (char c : digits) {
          int d;
          if (c >= '0' && c <= '9')
            d = c - '0';
          else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
          else
            return Fail(BadRequest("a chunk size is invalid"));
          size = size * 16 + static_cast<uint64_t>(d);
        }
        *pos = at;
        if (size == 0) {
          state_ = State::kTrailers;
          scanned_ = 0;
          break;
        }
        if (body_taken_ + request_.body.size() + size > static_cast<uint64_t>(body_limit_)) {
          return Fail(Status(Code::kPayloadTooLarge,
                             "the body is larger than " + std::to_string(body_limit_) + " bytes"));
        }
        remaining_ = size;
        state_ = State::kChunkData;
        break;
      }
      case State::kChunkData: {
        const size_t take =
            static_cast<size_t>(std::min<uint64_t>(remaining_, buffer.size() - *pos));
        request_.body.append(buffer.data() + *pos, take);
        *pos += take;
        remaining_ -= take;
        if (remaining_ > 0) return Progress::kBodyNext;
        state_ = State::kChunkDataEnd;
        break;
      }
      case State::kChunkDataEnd: {
        size_t at = *pos;
        bool bare_lf = false;
        if (!NextCrlfLine(buffer, &at, &line, &bare_lf)) {
          if (buffer.size() - *pos >= 2) return Fail(BadRequest("a chunk does not end with CRLF"));
          return Progress::kBodyNext;
        }
        if (!line.empty() || bare_lf) return Fail(BadRequest("a chunk does not end with CRLF"));
        *pos = at;
        state_ = State::kChunkSize;
        break;
      }
      case State::kTrailers: {
        size_t at = *pos;
        bool bare_lf = false;
        if (!NextCrlfLine(buffer, &at, &line, &bare_lf)) {
          if (scanned_ + (buffer.size() - *pos) > limits_.max_head_bytes) {
            return Fail(Status(Code::kHeaderTooLarge, "the trailer fields are too large"));
          }
          return Progress::kBodyNext;
        }
        scanned_ += at - *pos;
        *pos = at;
        if (scanned_ > limits_.max_head_bytes) {
          return Fail(Status(Code::kHeaderTooLarge, "the trailer fields are too large"));
        }
        if (bare_lf) return Fail(BadRequest("a trailer line does not end with CRLF"));
        if (line.empty()) {  // trailer fields are read and dropped
          state_ = State::kDone;
          return Progress::kDone;
        }
        // Each trailer is a field line: a body missing its last CRLF must not swallow the
        // request behind it as "trailers".
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos || !IsToken(line.substr(0, colon)) ||
            !IsFieldValue(Trim(line.substr(colon + 1)))) {
          return Fail(BadRequest("a trailer field line is malformed"));
        }
        break;
      }
      default: return Progress::kNeedMore;
    }
  }
}

}  // namespace garde
