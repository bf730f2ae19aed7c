// Placeholder until the logs endpoint lands: answers like a kubelet without it.
#include <string.h>

#include "node.h"
#include "rcx.h"

void kx_node_logs(kx_node *, kx_httpd_req *req, const char *, const char *, const char *)
{
    static const char msg[] = "container logs are not supported by this node yet";
    kx_httpd_respond(req, 501, "text/plain; charset=utf-8", msg, sizeof msg - 1);
}
