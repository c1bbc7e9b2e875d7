// `garde serve`: the HTTP service as a Poco ServerApplication (SIGTERM/SIGINT stop it
// gracefully), with a keyring watcher that picks up rotations.
//
//   return RunServe(args);
#pragma once

#include "garde/cli/commands.h"

namespace garde {

int RunServe(const CliArgs& args);

}  // namespace garde
