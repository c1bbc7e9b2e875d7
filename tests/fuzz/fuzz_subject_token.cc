// libFuzzer target: subject link tokens. Arbitrary bytes never verify under a key that minted
// nothing; claims made from the input verify after minting, unchanged, and fail once a byte of
// the token is changed or once they expire.
#include <cstdlib>
#include <string>

#include "garde/crypto/secret.h"
#include "garde/crypto/subject_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Two keys: `verifier` never mints, so nothing the fuzzer may have seen (it learns the
  // tokens `tokens` mints from comparisons) can pass it without being a forgery.
  static const bool ready = garde::InitSodium() || (std::abort(), false);
  static const garde::SubjectTokens tokens(garde::SecretKey::Random());
  static const garde::SubjectTokens verifier(garde::SecretKey::Random());
  (void)ready;
  const std::string input(reinterpret_cast<const char*>(data), size);
  if (verifier.Verify(input, 1000).ok()) std::abort();  // a forgery
  const size_t a = input.size() / 3, b = 2 * input.size() / 3;
  const garde::SubjectTokenClaims claims{input.substr(0, a), input.substr(a, b - a),
                                         input.substr(b), 2000};
  const std::string token = tokens.Mint(claims);
  auto back = tokens.Verify(token, 1000);
  if (back.ok()) {
    if (back->subject != claims.subject || back->use != claims.use || back->scope != claims.scope ||
        back->expires != claims.expires) {
      std::abort();
    }
  }
  if (!token.empty()) {
    std::string tampered = token;
    tampered[size % tampered.size()] ^= 0x01;
    if (tampered != token && tokens.Verify(tampered, 1000).ok()) std::abort();
  }
  if (tokens.Verify(token, 3000).ok()) std::abort();  // expired
  return 0;
}
