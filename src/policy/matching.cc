#include "garde/policy/matching.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

namespace garde {

std::vector<std::string> FoldWords(std::string_view text, bool digits) {
  // NFD, combining marks dropped, lower case; ligatures and a few letters spelled out.
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  icu::UnicodeString decomposed;
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  if (U_SUCCESS(status)) nfd->normalize(source, decomposed, status);
  if (U_FAILURE(status)) decomposed = source;
  std::vector<std::string> words;
  std::string word;
  auto end_word = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  for (int32_t i = 0; i < decomposed.length();) {
    const UChar32 c = decomposed.char32At(i);
    i += U16_LENGTH(c);
    if (u_charType(c) == U_NON_SPACING_MARK) continue;
    if (u_isalpha(c) || (digits && u_isdigit(c))) {
      const UChar32 lower = u_tolower(c);
      switch (lower) {
        case 0x00DF: word += "ss"; break;  // ß
        case 0x00E6: word += "ae"; break;  // æ
        case 0x0153: word += "oe"; break;  // œ
        case 0x00F8: word += 'o'; break;   // ø
        case 0x0142: word += 'l'; break;   // ł
        default: icu::UnicodeString(lower).toUTF8String(word);
      }
    } else if (c != '\'' && c != 0x2019) {  // an apostrophe joins: O'Brien, d'Arc
      end_word();
    }
  }
  end_word();
  return words;
}

std::string FoldText(std::string_view text, bool digits) {
  std::string out;
  for (const auto& w : FoldWords(text, digits)) out += w;
  return out;
}

}  // namespace garde
