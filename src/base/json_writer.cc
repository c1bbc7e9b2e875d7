#include "garde/base/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace garde {

namespace {

// The escape of a byte below 0x20, a quote, a backslash or DEL.
const char* EscapeOf(unsigned char c, char (&buf)[8]) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: std::snprintf(buf, sizeof buf, "\\u%04x", c); return buf;
  }
}

}  // namespace

// Runs of bytes that stand for themselves are appended whole: a value is mostly one run.
void AppendJsonString(std::string& out, std::string_view v) {
  out += '"';
  size_t run = 0;
  char buf[8];
  for (size_t i = 0; i < v.size(); ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) continue;
    const char* escaped = EscapeOf(c, buf);
    out.append(v.data() + run, i - run);
    out += escaped;
    run = i + 1;
  }
  out.append(v.data() + run, v.size() - run);
  out += '"';
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_element_.empty()) {
    if (has_element_.back()) out_ += ',';
    has_element_.back() = true;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  has_element_.push_back(false);
  return *this;
}
JsonWriter& JsonWriter::EndObject() {
  out_ += '}';
  has_element_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  has_element_.push_back(false);
  return *this;
}
JsonWriter& JsonWriter::EndArray() {
  out_ += ']';
  has_element_.pop_back();
  return *this;
}
JsonWriter& JsonWriter::Key(std::string_view key) {
  BeforeValue();
  AppendJsonString(out_, key);
  out_ += ':';
  after_key_ = true;
  return *this;
}
JsonWriter& JsonWriter::String(std::string_view v) {
  BeforeValue();
  AppendJsonString(out_, v);
  return *this;
}
JsonWriter& JsonWriter::StringOrNull(std::string_view v) { return v.empty() ? Null() : String(v); }
JsonWriter& JsonWriter::Int(int64_t v) {
  BeforeValue();
  out_ += std::to_string(v);
  return *this;
}
JsonWriter& JsonWriter::Number(double v) {
  BeforeValue();
  if (!std::isfinite(v)) {
    out_ += "null";
  } else if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
    out_ += std::to_string(static_cast<int64_t>(v));
  } else {
    char buf[32];
    // Shortest text that reads back as the same double.
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, res.ptr);
  }
  return *this;
}
JsonWriter& JsonWriter::Bool(bool v) {
  BeforeValue();
  out_ += v ? "true" : "false";
  return *this;
}
JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}
JsonWriter& JsonWriter::Raw(std::string_view json) {
  BeforeValue();
  out_ += json;
  return *this;
}

}  // namespace garde
