// PLACEHOLDER (lead's build only) — the helper writing completion.cc replaces this file entirely.
#include "cli.h"
int kx_cmd_completion(kx_cli *, int, char **) { return kx_cli_err("not yet"); }
