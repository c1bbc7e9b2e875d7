#include "garde/cli/commands.h"

int main(int argc, char** argv) { return garde::RunCli(argc, argv); }
