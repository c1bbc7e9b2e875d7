// A small streaming JSON writer: deterministic member order, correct escaping.
//
//   JsonWriter w;
//   w.BeginObject().Key("id").String(id).Key("count").Int(3).EndObject();
//   std::string body = w.Take();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace garde {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Number(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Inserts already-serialised JSON text as one value.
  JsonWriter& Raw(std::string_view json);
  // Writes a string, or null when empty.
  JsonWriter& StringOrNull(std::string_view value);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void BeforeValue();
  std::string out_;
  // Per open container: true once it holds an element.
  std::vector<bool> has_element_;
  bool after_key_ = false;
};

// Appends value as a quoted, escaped JSON string.
void AppendJsonString(std::string& out, std::string_view value);

}  // namespace garde
