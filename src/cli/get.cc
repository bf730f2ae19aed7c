// PLACEHOLDER (lead's build only) — the helper writing get.cc replaces this file entirely.
#include "cli.h"
int kx_cmd_get(kx_cli *, int, char **) { return kx_cli_err("not yet"); }
int kx_cmd_version(kx_cli *, int, char **) { return kx_cli_err("not yet"); }
