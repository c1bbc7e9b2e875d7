// The `garde` command line: subcommands, their options and help.
//
//   int main(int argc, char** argv) { return garde::RunCli(argc, argv); }
//
// Conventions scripts rely on (SPEC §1): commands that create a key print it alone on the
// last line of stdout; diagnostics go to stderr; exit 0 on success, 1 on failure, 2 on
// usage errors.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "garde/base/status.h"

namespace garde {

struct CliArgs {
  std::vector<std::string> words;                   // command words, e.g. {"apikey", "create"}
  std::multimap<std::string, std::string> options;  // --name value (repeatable)
  std::set<std::string> switches;                   // --help, --json, ...
  std::string error;                                // set when the arguments are malformed

  std::string Get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> All(const std::string& name) const;
  bool Has(const std::string& name) const { return switches.count(name) != 0; }
  // Options that configure a deployment (data-dir, policies, listen, ...).
  std::map<std::string, std::string> ConfigFlags() const;
};

CliArgs ParseCliArgs(int argc, char** argv);
// The keyring's passphrase, from --passphrase-fd or the systemd credential, and the terminal
// prompt for a sealed keyring read without either.
// Also acquires the PKCS#11 token's PIN (AcquireTokenPin).
Status AcquireKeyringPassphrase(const CliArgs& args);
// The PIN of the token holding the root keys, when pkcs11_module is configured: from
// pkcs11_pin_file (mode 0600) or the systemd credential garde-pkcs11-pin.
Status AcquireTokenPin(const CliArgs& args);
int RunCli(int argc, char** argv);

}  // namespace garde
