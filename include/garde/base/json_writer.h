// A small streaming JSON writer: deterministic member order, correct escaping.
//
//   JsonWriter w;
//   w.BeginObject().String("id", id).Int("count", 3).EndObject();
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

  // An object's member: its key, then the value as above (Key("n").Int(3) is Int("n", 3)).
  JsonWriter& BeginObject(std::string_view key) { return Key(key).BeginObject(); }
  JsonWriter& BeginArray(std::string_view key) { return Key(key).BeginArray(); }
  JsonWriter& String(std::string_view key, std::string_view value) {
    return Key(key).String(value);
  }
  JsonWriter& Int(std::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Number(std::string_view key, double value) { return Key(key).Number(value); }
  JsonWriter& Bool(std::string_view key, bool value) { return Key(key).Bool(value); }
  JsonWriter& Null(std::string_view key) { return Key(key).Null(); }
  JsonWriter& Raw(std::string_view key, std::string_view json) { return Key(key).Raw(json); }
  JsonWriter& StringOrNull(std::string_view key, std::string_view value) {
    return Key(key).StringOrNull(value);
  }

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
