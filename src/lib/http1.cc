// HTTP/1.1 adapter over http-parser 2.9; see kubexec/http1.h.
//
// This is the only file that includes <http_parser.h>. http-parser is driven
// with our own rules on top:
//  - the head is built in p->scratch as NUL-terminated strings addressed by
//    offsets (the struct may be embedded anywhere, so no pointers while
//    building) and copied into p->head when complete, so the last head stays
//    valid while the next pipelined message is being parsed;
//  - the upgrade decision is ours (see decide_upgrade); we overwrite
//    http_parser.upgrade so http-parser never disagrees with it;
//  - the upgrade handoff and on_head's "pause" both use http_parser_pause()
//    inside on_headers_complete. http-parser then stops on the byte that ends
//    the head (the LF of the blank line), not yet consumed. For the handoff we report that
//    LF as consumed and never feed again. For a pause we also report it as
//    consumed and owe http-parser that LF: the next feed replays a "\n" first.
#include "kubexec/http1.h"
#include "kubexec/util.h"

#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static_assert(sizeof(http_parser) <= sizeof(((kx_http_parser *)nullptr)->hp),
              "kx_http_parser.hp too small for http_parser");
static_assert(alignof(http_parser) <= 8, "kx_http_parser.hp under-aligned");

static http_parser *hp_of(kx_http_parser *p)
{
    return reinterpret_cast<http_parser *>(p->hp);
}

static kx_http_parser *kx_of(http_parser *hp)
{
    return static_cast<kx_http_parser *>(hp->data);
}

// Records a sticky error and returns the "stop" value for http-parser.
static int fail_cb(kx_http_parser *p, int err)
{
    if (p->err == 0)
        p->err = err;
    return -1;
}

// Appends to the head being built; -EMSGSIZE when the scratch is full (one
// byte is always kept for a closing NUL).
static int scratch_append(kx_http_parser *p, const char *at, size_t n)
{
    if (n >= sizeof p->scratch - p->used)
        return -EMSGSIZE;
    memcpy(p->scratch + p->used, at, n);
    p->used += n;
    return 0;
}

// Closes the string being built with a NUL.
static int scratch_close(kx_http_parser *p)
{
    if (p->used >= sizeof p->scratch)
        return -EMSGSIZE;
    p->scratch[p->used++] = '\0';
    return 0;
}

// Head size accounting. http-parser 2.9 does not expose a usable byte count
// to callbacks (nread reads 0 there), so we count what the head is made of:
// the request/status line pieces and every header line as "name: value\r\n".
// Optional whitespace beyond one space is not counted; http-parser caps the
// whole head at 80 KiB (HPE_HEADER_OVERFLOW), which bounds that slack.
static bool head_grow(kx_http_parser *p, size_t n)
{
    p->head_bytes += n;
    return p->head_bytes > KX_HTTP_MAX_HEAD;
}

enum { PIECE_NONE, PIECE_NAME, PIECE_VALUE, PIECE_URL };

static int on_message_begin(http_parser *hp)
{
    kx_http_parser *p = kx_of(hp);
    // Lenient http-parser builds go on after a message that ended the
    // connection (Connection: close, HTTP/1.0); we do not.
    if (p->closed)
        return fail_cb(p, -EPROTO);
    p->phase = KX_HTTP_PH_HEAD;
    p->used = 0;
    p->nbuild = 0;
    p->last = PIECE_NONE;
    p->url_off = UINT32_MAX;
    // "HTTP/1.1 " or " HTTP/1.1", the line's CRLF and the blank line.
    p->head_bytes = 13;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t n)
{
    kx_http_parser *p = kx_of(hp);
    if (p->phase != KX_HTTP_PH_HEAD)
        return 0;
    if (head_grow(p, n))
        return fail_cb(p, -EMSGSIZE);
    if (p->last != PIECE_URL) {
        if (p->last != PIECE_NONE)
            return fail_cb(p, -EPROTO);
        p->url_off = (uint32_t)p->used;
        p->last = PIECE_URL;
    }
    int r = scratch_append(p, at, n);
    return r ? fail_cb(p, r) : 0;
}

// Responses: the reason phrase only counts toward the head size.
static int on_status(http_parser *hp, const char *, size_t n)
{
    kx_http_parser *p = kx_of(hp);
    if (p->phase == KX_HTTP_PH_HEAD && head_grow(p, n))
        return fail_cb(p, -EMSGSIZE);
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t n)
{
    kx_http_parser *p = kx_of(hp);
    // After the head these are chunked-body trailers: ignored (http-parser
    // still bounds their size).
    if (p->phase != KX_HTTP_PH_HEAD)
        return 0;
    if (head_grow(p, n + (p->last != PIECE_NAME ? 4 : 0)))
        return fail_cb(p, -EMSGSIZE);
    if (p->last != PIECE_NAME) {
        if (p->last != PIECE_NONE && scratch_close(p))
            return fail_cb(p, -EMSGSIZE);
        if (p->nbuild >= KX_HTTP_MAX_HEADERS)
            return fail_cb(p, -EMSGSIZE);
        p->name_off[p->nbuild] = (uint32_t)p->used;
        p->value_off[p->nbuild] = UINT32_MAX;
        p->nbuild++;
        p->last = PIECE_NAME;
    }
    int r = scratch_append(p, at, n);
    return r ? fail_cb(p, r) : 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t n)
{
    kx_http_parser *p = kx_of(hp);
    if (p->phase != KX_HTTP_PH_HEAD)
        return 0;
    if (head_grow(p, n))
        return fail_cb(p, -EMSGSIZE);
    if (p->last != PIECE_VALUE) {
        if (p->last != PIECE_NAME || p->nbuild == 0)
            return fail_cb(p, -EPROTO);
        if (scratch_close(p))
            return fail_cb(p, -EMSGSIZE);
        p->value_off[p->nbuild - 1] = (uint32_t)p->used;
        p->last = PIECE_VALUE;
    }
    int r = scratch_append(p, at, n);
    return r ? fail_cb(p, r) : 0;
}

static bool decide_upgrade(const kx_http_parser *p, const kx_http_head *h)
{
    if (p->type == KX_HTTP_RESPONSE)
        return h->status == 101;
    if (strcmp(h->method, "CONNECT") == 0)
        return true;
    return kx_http_get(h, "Upgrade") != nullptr && kx_http_has_token(h, "Connection", "upgrade");
}

// Copies the scratch into p->head and resolves the offsets into pointers.
static int publish_head(kx_http_parser *p, http_parser *hp)
{
    if (p->last != PIECE_NONE && scratch_close(p))
        return -EMSGSIZE;
    // A name with no value callback at all: give it an empty value.
    if (p->nbuild > 0 && p->value_off[p->nbuild - 1] == UINT32_MAX) {
        if (scratch_close(p))
            return -EMSGSIZE;
        p->value_off[p->nbuild - 1] = (uint32_t)(p->used - 1);
    }
    kx_http_head *h = &p->head;
    memcpy(h->storage, p->scratch, p->used);
    h->url = p->url_off == UINT32_MAX ? "" : h->storage + p->url_off;
    h->nheaders = p->nbuild;
    for (size_t i = 0; i < p->nbuild; i++) {
        h->headers[i].name = h->storage + p->name_off[i];
        h->headers[i].value = h->storage + p->value_off[i];
    }
    h->method[0] = '\0';
    h->status = 0;
    if (p->type == KX_HTTP_REQUEST)
        kx_strlcpy(h->method, http_method_str((enum http_method)hp->method), sizeof h->method);
    else
        h->status = (int)hp->status_code;
    h->http_major = hp->http_major;
    h->http_minor = hp->http_minor;
    h->chunked = (hp->flags & F_CHUNKED) != 0;
    h->content_length =
        hp->content_length == ULLONG_MAX || hp->content_length > INT64_MAX
            ? -1
            : (int64_t)hp->content_length;
    // http-parser parses Content-Length even alongside chunked; chunked wins.
    if (h->chunked)
        h->content_length = -1;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    kx_http_parser *p = kx_of(hp);
    // Method (or status code) and its separator.
    if (head_grow(p, p->type == KX_HTTP_REQUEST
                         ? strlen(http_method_str((enum http_method)hp->method)) + 1
                         : 4))
        return fail_cb(p, -EMSGSIZE);
    int r = publish_head(p, hp);
    if (r)
        return fail_cb(p, r);
    kx_http_head *h = &p->head;
    bool skip_body = p->type == KX_HTTP_RESPONSE && p->head_request;
    if (skip_body)
        hp->flags |= F_SKIPBODY; // so keep-alive below does not wait for EOF
    h->upgrade = decide_upgrade(p, h);
    hp->upgrade = h->upgrade ? 1 : 0;
    if (h->upgrade && (h->content_length > 0 || h->chunked))
        return fail_cb(p, -EPROTO);
    h->keep_alive = !h->upgrade && http_should_keep_alive(hp);
    p->phase = KX_HTTP_PH_BODY;
    if (p->cb->on_head) {
        r = p->cb->on_head(p->user, h);
        if (r < 0)
            return fail_cb(p, r);
    }
    if (h->upgrade) {
        p->phase = KX_HTTP_PH_UPGRADED;
        if (p->cb->on_complete) {
            int c = p->cb->on_complete(p->user);
            if (c < 0)
                return fail_cb(p, c);
        }
        http_parser_pause(hp, 1);
        return 0;
    }
    if (r > 0)
        http_parser_pause(hp, 1);
    return skip_body ? 1 : 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    kx_http_parser *p = kx_of(hp);
    if (n == 0 || !p->cb->on_body)
        return 0;
    int r = p->cb->on_body(p->user, reinterpret_cast<const uint8_t *>(at), n);
    return r < 0 ? fail_cb(p, r) : 0;
}

static int on_message_complete(http_parser *hp)
{
    kx_http_parser *p = kx_of(hp);
    if (p->phase == KX_HTTP_PH_UPGRADED)
        return 0;
    p->phase = KX_HTTP_PH_IDLE;
    if (!p->head.keep_alive)
        p->closed = true;
    if (p->cb->on_complete) {
        int r = p->cb->on_complete(p->user);
        if (r < 0)
            return fail_cb(p, r);
    }
    return 0;
}

static const http_parser_settings kx_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = nullptr,
    .on_chunk_complete = nullptr,
};

void kx_http_parser_init(kx_http_parser *p, kx_http_type type, const kx_http_callbacks *cb,
                         void *user)
{
    memset(p, 0, offsetof(kx_http_parser, scratch));
    memset(&p->head, 0, offsetof(kx_http_head, storage));
    p->head.url = "";
    p->head.content_length = -1;
    p->head.storage[0] = '\0';
    p->cb = cb;
    p->user = user;
    p->type = type;
    p->phase = KX_HTTP_PH_IDLE;
    http_parser *hp = hp_of(p);
    http_parser_init(hp, type == KX_HTTP_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    hp->data = p;
}

void kx_http_parser_set_head_request(kx_http_parser *p, bool was_head)
{
    p->head_request = was_head;
}

static long set_failed(kx_http_parser *p, int err)
{
    p->phase = KX_HTTP_PH_FAILED;
    p->err = err;
    return err;
}

// Maps a stopped http-parser to our error code.
static long stopped(kx_http_parser *p, enum http_errno e)
{
    if (p->err)
        return set_failed(p, p->err);
    if (e == HPE_HEADER_OVERFLOW)
        return set_failed(p, -EMSGSIZE);
    return set_failed(p, -EPROTO);
}

// Runs http-parser over one buffer and classifies the outcome. Returns bytes
// consumed or a negative error.
static long run(kx_http_parser *p, const char *data, size_t len)
{
    http_parser *hp = hp_of(p);
    size_t n = http_parser_execute(hp, &kx_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(hp);
    if (e == HPE_PAUSED) {
        // Only on_headers_complete pauses; it stopped on the head's final LF.
        if (p->phase != KX_HTTP_PH_UPGRADED)
            p->resume_lf = true;
        return (long)n + 1;
    }
    if (e != HPE_OK)
        return stopped(p, e);
    if (n < len) {
        // http-parser stopped early on its own idea of an upgrade; we set
        // hp->upgrade ourselves so this should not happen, but never parse
        // past a point it refused.
        p->phase = KX_HTTP_PH_UPGRADED;
    }
    return (long)n;
}

// Replays the LF owed to http-parser after a pause.
static long resume(kx_http_parser *p)
{
    p->resume_lf = false;
    http_parser_pause(hp_of(p), 0);
    long r = run(p, "\n", 1);
    return r < 0 ? r : 0;
}

long kx_http_feed(kx_http_parser *p, const uint8_t *data, size_t len)
{
    if (p->phase == KX_HTTP_PH_FAILED)
        return p->err;
    if (p->in_cb)
        return -EBUSY;
    p->in_cb = true;
    long r = 0;
    if (p->resume_lf)
        r = resume(p);
    // len 0 means EOF to http-parser: never pass it through from here.
    if (r == 0 && len > 0 && p->phase != KX_HTTP_PH_UPGRADED)
        r = run(p, reinterpret_cast<const char *>(data), len);
    p->in_cb = false;
    return r;
}

int kx_http_eof(kx_http_parser *p)
{
    if (p->phase == KX_HTTP_PH_FAILED)
        return p->err;
    if (p->phase == KX_HTTP_PH_UPGRADED)
        return 0;
    if (p->in_cb)
        return -EBUSY;
    p->in_cb = true;
    long r = 0;
    if (p->resume_lf)
        r = resume(p);
    if (r == 0 && p->phase != KX_HTTP_PH_UPGRADED) {
        http_parser *hp = hp_of(p);
        http_parser_execute(hp, &kx_settings, nullptr, 0);
        enum http_errno e = HTTP_PARSER_ERRNO(hp);
        if (e != HPE_OK)
            r = stopped(p, e);
    }
    p->in_cb = false;
    return (int)r;
}

bool kx_http_upgraded(const kx_http_parser *p)
{
    return p->phase == KX_HTTP_PH_UPGRADED;
}

const kx_http_head *kx_http_parser_head(const kx_http_parser *p)
{
    return &p->head;
}

// --- Helpers ---------------------------------------------------------------

const char *kx_http_get(const kx_http_head *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (strcasecmp(h->headers[i].name, name) == 0)
            return h->headers[i].value;
    return nullptr;
}

size_t kx_http_get_all(const kx_http_head *h, const char *name, const char **out, size_t max)
{
    size_t count = 0;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (strcasecmp(h->headers[i].name, name) != 0)
            continue;
        if (count < max)
            out[count] = h->headers[i].value;
        count++;
    }
    return count;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool list_has_token(const char *v, const char *token)
{
    size_t tlen = strlen(token);
    while (*v) {
        while (is_ows(*v) || *v == ',')
            v++;
        const char *start = v;
        while (*v && *v != ',')
            v++;
        const char *end = v;
        while (end > start && is_ows(end[-1]))
            end--;
        if ((size_t)(end - start) == tlen && tlen > 0 && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

bool kx_http_has_token(const kx_http_head *h, const char *name, const char *token)
{
    for (size_t i = 0; i < h->nheaders; i++)
        if (strcasecmp(h->headers[i].name, name) == 0 && list_has_token(h->headers[i].value, token))
            return true;
    return false;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Decodes [s, end) into out (cap includes the NUL). plus: '+' means space.
static int pct_decode(const char *s, const char *end, char *out, size_t cap, bool plus)
{
    if (cap == 0)
        return -EMSGSIZE;
    size_t o = 0;
    while (s < end) {
        char c = *s++;
        if (c == '%') {
            if (end - s < 2)
                return -EINVAL;
            int hi = hexval(s[0]), lo = hexval(s[1]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = (char)(hi << 4 | lo);
            if (c == '\0')
                return -EINVAL;
            s += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap)
            return -EMSGSIZE;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int kx_url_split(const char *target, char *path, size_t path_cap, const char **query)
{
    if (path_cap > 0)
        path[0] = '\0';
    if (query)
        *query = "";
    if (!target || target[0] != '/')
        return -EINVAL;
    size_t plen = strcspn(target, "?#");
    int r = pct_decode(target, target + plen, path, path_cap, false);
    if (r) {
        if (path_cap > 0)
            path[0] = '\0';
        return r;
    }
    // Reject any ".." segment of the decoded path.
    for (const char *seg = path; *seg;) {
        const char *slash = strchr(seg, '/');
        size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            path[0] = '\0';
            return -EINVAL;
        }
        seg += n;
        if (*seg == '/')
            seg++;
    }
    if (query && target[plen] == '?')
        *query = target + plen + 1;
    return 0;
}

int kx_query_next(const char **cursor, char *key, size_t kcap, char *val, size_t vcap)
{
    const char *c = *cursor;
    while (*c == '&')
        c++;
    if (*c == '\0' || *c == '#') {
        *cursor = c;
        return 0;
    }
    size_t n = strcspn(c, "&#");
    const char *end = c + n;
    const char *eq = static_cast<const char *>(memchr(c, '=', n));
    int r = pct_decode(c, eq ? eq : end, key, kcap, true);
    if (r)
        return r;
    r = pct_decode(eq ? eq + 1 : end, end, val, vcap, true);
    if (r)
        return r;
    *cursor = end;
    return 1;
}

int kx_url_escape(char *out, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        size_t need = keep || c == ' ' ? 1 : 3;
        if (o + need >= cap)
            return -EMSGSIZE;
        if (keep) {
            out[o++] = (char)c;
        } else if (c == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap)
        return -EMSGSIZE;
    out[o] = '\0';
    return (int)o;
}

const char *kx_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

// A bounded string builder: the first overflow sticks.
struct outbuf {
    char *p;
    size_t cap, len;
    bool over;
};

static void ob_put(outbuf *o, const char *s, size_t n)
{
    if (o->over || n >= o->cap - o->len) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void ob_str(outbuf *o, const char *s)
{
    ob_put(o, s, strlen(s));
}

static bool is_ctl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

static bool valid_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 0x7f || c == ':')
            return false;
    }
    return true;
}

static bool valid_value(const char *s)
{
    if (!s)
        return false;
    for (; *s; s++)
        if (is_ctl((unsigned char)*s) && *s != '\t')
            return false;
    return true;
}

static int finish_head(outbuf *o, const kx_http_header *h, size_t n, int64_t content_length)
{
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(h[i].name) || !valid_value(h[i].value))
            return -EINVAL;
        ob_str(o, h[i].name);
        ob_put(o, ": ", 2);
        ob_str(o, h[i].value);
        ob_put(o, "\r\n", 2);
    }
    if (content_length >= 0) {
        char num[48];
        int k = snprintf(num, sizeof num, "Content-Length: %lld\r\n", (long long)content_length);
        ob_put(o, num, (size_t)k);
    }
    ob_put(o, "\r\n", 2);
    if (o->over)
        return -EMSGSIZE;
    return (int)o->len;
}

int kx_http_format_response(char *out, size_t cap, int status, const kx_http_header *h,
                            size_t n, int64_t content_length)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    if (cap == 0 || cap > (size_t)INT32_MAX)
        return cap == 0 ? -EMSGSIZE : -EINVAL;
    outbuf o = {out, cap, 0, false};
    out[0] = '\0';
    char line[64];
    int k = snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    ob_put(&o, line, (size_t)k);
    ob_str(&o, kx_http_reason(status));
    ob_put(&o, "\r\n", 2);
    return finish_head(&o, h, n, content_length);
}

static bool valid_token_word(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c >= 0x7f)
            return false;
    }
    return true;
}

int kx_http_format_request(char *out, size_t cap, const char *method, const char *target,
                           const kx_http_header *h, size_t n, int64_t content_length)
{
    if (!valid_token_word(method) || !valid_token_word(target))
        return -EINVAL;
    if (cap == 0 || cap > (size_t)INT32_MAX)
        return cap == 0 ? -EMSGSIZE : -EINVAL;
    outbuf o = {out, cap, 0, false};
    out[0] = '\0';
    ob_str(&o, method);
    ob_put(&o, " ", 1);
    ob_str(&o, target);
    ob_str(&o, " HTTP/1.1\r\n");
    return finish_head(&o, h, n, content_length);
}

int kx_hostport_split(const char *s, char *host, size_t hostcap, int *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= hostcap)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= hostcap)
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535 || !host[0])
        return -EINVAL;
    *port = (int)p;
    return 0;
}
