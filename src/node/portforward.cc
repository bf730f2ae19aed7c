// Placeholder until the portforward endpoint lands: answers like a kubelet without it.
#include <string.h>

#include "node.h"
#include "rcx.h"

void kx_node_portforward(kx_node *, kx_httpd_req *req, const char *, const char *)
{
    static const char msg[] = "port-forward is not supported by this node yet";
    kx_httpd_respond(req, 501, "text/plain; charset=utf-8", msg, sizeof msg - 1);
}
