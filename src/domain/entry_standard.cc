#include "garde/domain/entry_standard.h"

#include <Poco/Exception.h>
#include <Poco/RegularExpression.h>
#include <phonenumbers/phonenumberutil.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uloc.h>
#include <unicode/unistr.h>

#include <cmath>

#include "garde/base/clock.h"
#include "garde/base/encoding.h"

namespace garde {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

bool IsSpace(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string Trim(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsSpace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && IsSpace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

// Runs of white space become one space.
std::string CollapseSpaces(const std::string& s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (IsSpace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

bool HasControlCharacters(const std::string& s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::string ToUpperAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

bool ValidEmail(const std::string& e) {
  if (e.size() > 254) return false;
  const size_t at = e.find('@');
  if (at == std::string::npos || at == 0 || at > 64 || e.find('@', at + 1) != std::string::npos) {
    return false;
  }
  const std::string domain = e.substr(at + 1);
  if (domain.size() < 3 || domain.find('.') == std::string::npos || domain.front() == '.' ||
      domain.back() == '.' || domain.find("..") != std::string::npos) {
    return false;
  }
  for (char c : e) {
    if (IsSpace(static_cast<unsigned char>(c)) || c == '<' || c == '>' || c == ',' || c == ';' ||
        c == '"' || c == '(' || c == ')' || c == '[' || c == ']' || c == '\\') {
      return false;
    }
  }
  return true;
}

bool IsIsoCountry(const std::string& code) {
  for (const char* const* c = uloc_getISOCountries(); *c != nullptr; ++c) {
    if (code == *c) return true;
  }
  return false;
}

}  // namespace

std::string ToNfc(const std::string& utf8) {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  if (U_FAILURE(err)) return utf8;
  const icu::UnicodeString in = icu::UnicodeString::fromUTF8(utf8);
  if (nfc->isNormalized(in, err) && U_SUCCESS(err)) return utf8;
  err = U_ZERO_ERROR;
  const icu::UnicodeString out = nfc->normalize(in, err);
  if (U_FAILURE(err)) return utf8;
  std::string result;
  out.toUTF8String(result);
  return result;
}

std::string ToLower(const std::string& utf8) {
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(utf8);
  s.toLower(icu::Locale::getRoot());
  std::string out;
  s.toUTF8String(out);
  return out;
}

size_t CodePoints(const std::string& utf8) {
  size_t n = 0;
  for (char c : utf8) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80 ? 1 : 0;
  return n;
}

EntryStandard::EntryStandard(std::string default_region)
    : default_region_(std::move(default_region)) {}

std::optional<std::string> EntryStandard::NormalizeText(const FieldSpec& spec,
                                                        const std::string& in,
                                                        std::string* error) const {
  if (!IsValidUtf8(in)) {
    *error = "is not valid UTF-8";
    return std::nullopt;
  }
  std::string s = ToNfc(Trim(in));
  if (spec.type != FieldType::kString && spec.type != FieldType::kStreet) s = CollapseSpaces(s);
  if (HasControlCharacters(s)) {
    *error = "contains control characters";
    return std::nullopt;
  }
  switch (spec.type) {
    case FieldType::kEmail:
      s = ToLower(s);
      if (!ValidEmail(s)) {
        *error = "is not a valid email address";
        return std::nullopt;
      }
      break;
    case FieldType::kPhone: {
      const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
      PhoneNumber number;
      if (s.size() > 40 ||
          util->Parse(s, default_region_, &number) != PhoneNumberUtil::NO_PARSING_ERROR ||
          !util->IsValidNumber(number)) {
        *error = "is not a valid phone number (use E.164, e.g. +33612345678)";
        return std::nullopt;
      }
      util->Format(number, PhoneNumberUtil::E164, &s);
      break;
    }
    case FieldType::kDate: {
      auto d = ParseIsoDate(s);
      if (!d) {
        *error = "is not a valid ISO 8601 date (YYYY-MM-DD)";
        return std::nullopt;
      }
      s = FormatIsoDate(*d);
      break;
    }
    case FieldType::kPostalCode: s = ToUpperAscii(s); break;
    case FieldType::kCountry:
      s = ToUpperAscii(s);
      if (!IsIsoCountry(s)) {
        *error = "is not an ISO 3166-1 alpha-2 country code";
        return std::nullopt;
      }
      break;
    case FieldType::kEnum: {
      for (const auto& v : spec.values) {
        if (ToLower(v) == ToLower(s)) return v;  // canonical spelling
      }
      std::string allowed;
      for (const auto& v : spec.values) allowed += (allowed.empty() ? "" : ", ") + v;
      *error = "must be one of: " + allowed;
      return std::nullopt;
    }
    default: break;
  }
  const size_t len = CodePoints(s);
  if (spec.required && len == 0) {
    *error = "must not be empty";
    return std::nullopt;
  }
  const size_t max_len = spec.max_length.value_or(1000);
  if (len > max_len) {
    *error = "is longer than " + std::to_string(max_len) + " characters";
    return std::nullopt;
  }
  if (spec.min_length && len < *spec.min_length) {
    *error = "is shorter than " + std::to_string(*spec.min_length) + " characters";
    return std::nullopt;
  }
  if (spec.pattern_re) {
    bool matched = false;
    try {
      matched = spec.pattern_re->match(s);
    } catch (const Poco::Exception&) {
      matched = false;
    }
    if (!matched) {
      *error = "does not match the required pattern";
      return std::nullopt;
    }
  }
  return s;
}

std::optional<FieldValue> EntryStandard::Normalize(const FieldSpec& spec, const FieldValue& v,
                                                   std::string* error) const {
  switch (spec.type) {
    case FieldType::kBool:
      if (v.type != FieldValue::Type::kBool) {
        *error = "must be true or false";
        return std::nullopt;
      }
      return v;
    case FieldType::kNumber: {
      if (v.type != FieldValue::Type::kNumber || !std::isfinite(v.number)) {
        *error = "must be a number";
        return std::nullopt;
      }
      if (spec.integer && v.number != std::floor(v.number)) {
        *error = "must be a whole number";
        return std::nullopt;
      }
      if (spec.min && v.number < *spec.min) {
        *error = "must be at least " + IndexText(FieldValue::Number(*spec.min));
        return std::nullopt;
      }
      if (spec.max && v.number > *spec.max) {
        *error = "must be at most " + IndexText(FieldValue::Number(*spec.max));
        return std::nullopt;
      }
      return v;
    }
    default: {
      if (v.type != FieldValue::Type::kString) {
        *error = "must be a string";
        return std::nullopt;
      }
      auto s = NormalizeText(spec, v.text, error);
      if (!s) return std::nullopt;
      return FieldValue::String(std::move(*s));
    }
  }
}

}  // namespace garde
