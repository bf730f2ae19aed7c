// manifest.cc - YAML/JSON manifest loading (libyaml events -> json-c) and v1 Pod
// validation. See manifest.h for the contract.
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kubexec/util.h"

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int set_err(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

// ---------------------------------------------------------------------------
// YAML -> json-c

// Plain-scalar resolution, YAML 1.2 core schema (see manifest.h).
static bool is_null_word(const char *s, size_t n)
{
    return n == 0 || (n == 1 && s[0] == '~') ||
           (n == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static int bool_word(const char *s, size_t n)
{
    if (n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) || !memcmp(s, "TRUE", 4)))
        return 1;
    if (n == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) || !memcmp(s, "FALSE", 5)))
        return 0;
    return -1;
}

static bool all_in(const char *s, size_t n, const char *set)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(set, s[i]))
            return false;
    return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?  with at least a '.' or
// an exponent (pure digits are integers).
static bool is_float_text(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    bool dot = false, exp = false;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    if (i < n && s[i] == '.') {
        dot = true;
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; digits++; }
    }
    if (digits == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        exp = true;
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t ed = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') { i++; ed++; }
        if (ed == 0)
            return false;
    }
    return i == n && (dot || exp);
}

// Builds the json value of a plain, untagged scalar. json-c represents null as
// a NULL pointer, so a NULL result only means ENOMEM when *is_null is false.
static json_object *resolve_plain(const char *s, size_t n, bool *is_null)
{
    *is_null = false;
    if (is_null_word(s, n)) {
        *is_null = true;
        return NULL;
    }
    int b = bool_word(s, n);
    if (b >= 0)
        return json_object_new_boolean(b);
    if (n < 64) {
        char tmp[64];
        memcpy(tmp, s, n);
        tmp[n] = 0;
        const char *d = tmp;
        bool neg = false;
        if (*d == '-' || *d == '+') {
            neg = *d == '-';
            d++;
        }
        if (all_in(d, strlen(d), "0123456789")) {
            errno = 0;
            long long v = strtoll(tmp, NULL, 10);
            if (errno == 0)
                return json_object_new_int64(v);
            return json_object_new_double_s(strtod(tmp, NULL), tmp);
        }
        if (!neg && d == tmp && n > 2 && tmp[0] == '0' && (tmp[1] == 'x' || tmp[1] == 'o') &&
            all_in(tmp + 2, n - 2, tmp[1] == 'x' ? "0123456789abcdefABCDEF" : "01234567")) {
            errno = 0;
            unsigned long long v = strtoull(tmp + 2, NULL, tmp[1] == 'x' ? 16 : 8);
            if (errno == 0 && v <= (unsigned long long)INT64_MAX)
                return json_object_new_int64((int64_t)v);
            // Out of range: keep the text rather than invent a value.
            return json_object_new_string_len(s, (int)n);
        }
        if (is_float_text(tmp, n))
            return json_object_new_double_s(strtod(tmp, NULL), tmp);
    }
    return json_object_new_string_len(s, (int)n);
}

struct yframe {
    json_object *node;     // borrowed: owned by its parent (or by ybuild.root)
    bool is_map;
    char *key;             // pending key of a mapping (malloc'd), or NULL
};

struct ybuild {
    yframe stack[KX_MANIFEST_MAX_DEPTH];
    int depth;
    json_object *root;     // first document's root (owned)
    int docs;              // documents started so far
};

// Attaches v (owned; consumed on every path) to the current container or as a
// document root. Returns 0 or -EINVAL/-ENOMEM with err set.
static int yattach(ybuild *b, json_object *v, size_t line, char *err, size_t errlen)
{
    if (b->depth == 0) {
        if (b->docs == 1) {
            b->root = v;
            return 0;
        }
        bool empty = v == NULL || json_object_get_type(v) == json_type_null;
        json_object_put(v);
        if (!empty)
            return set_err(err, errlen, -EINVAL,
                           "yaml: line %zu: more than one document (a manifest holds one pod)", line);
        return 0;
    }
    yframe *f = &b->stack[b->depth - 1];
    if (f->is_map) {
        char *key = f->key;
        f->key = NULL;
        if (json_object_object_get_ex(f->node, key, NULL)) {
            json_object_put(v);
            int rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: duplicate key \"%.64s\"", line, key);
            free(key);
            return rc;
        }
        int rc = json_object_object_add(f->node, key, v);
        free(key);
        if (rc != 0) {
            json_object_put(v);
            return set_err(err, errlen, -ENOMEM, "out of memory");
        }
        return 0;
    }
    if (json_object_array_add(f->node, v) != 0) {
        json_object_put(v);
        return set_err(err, errlen, -ENOMEM, "out of memory");
    }
    return 0;
}

static int yaml_to_json(const char *data, size_t len, json_object **out, char *err, size_t errlen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return set_err(err, errlen, -ENOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);

    ybuild b = {};
    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: %s", (size_t)p.problem_mark.line + 1,
                         p.problem ? p.problem : "syntax error");
            break;
        }
        size_t line = (size_t)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            b.docs++;
            break;
        case YAML_ALIAS_EVENT:
            rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: aliases are not supported", line);
            break;
        case YAML_SCALAR_EVENT: {
            if (ev.data.scalar.anchor) {
                rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: anchors are not supported", line);
                break;
            }
            const char *s = (const char *)ev.data.scalar.value;
            size_t n = ev.data.scalar.length;
            yframe *f = b.depth ? &b.stack[b.depth - 1] : NULL;
            if (f && f->is_map && !f->key) {
                if (memchr(s, 0, n)) {
                    rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: NUL byte in a key", line);
                    break;
                }
                f->key = strndup(s, n);
                if (!f->key)
                    rc = set_err(err, errlen, -ENOMEM, "out of memory");
                break;
            }
            const char *tag = (const char *)ev.data.scalar.tag;
            bool force_str = tag && !strcmp(tag, YAML_STR_TAG);
            json_object *v;
            bool is_null = false;
            if (!force_str && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
                v = resolve_plain(s, n, &is_null);
            else
                v = json_object_new_string_len(s, (int)n);
            if (!v && !is_null) {
                rc = set_err(err, errlen, -ENOMEM, "out of memory");
                break;
            }
            rc = yattach(&b, v, line, err, errlen);
            break;
        }
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            bool is_map = ev.type == YAML_MAPPING_START_EVENT;
            const yaml_char_t *anchor = is_map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor;
            if (anchor) {
                rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: anchors are not supported", line);
                break;
            }
            yframe *f = b.depth ? &b.stack[b.depth - 1] : NULL;
            if (f && f->is_map && !f->key) {
                rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: mapping keys must be scalars", line);
                break;
            }
            if (b.depth >= KX_MANIFEST_MAX_DEPTH) {
                rc = set_err(err, errlen, -EINVAL, "yaml: line %zu: nesting deeper than %d levels", line,
                             KX_MANIFEST_MAX_DEPTH);
                break;
            }
            json_object *v = is_map ? json_object_new_object() : json_object_new_array();
            if (!v) {
                rc = set_err(err, errlen, -ENOMEM, "out of memory");
                break;
            }
            // Attach first so the value is owned by the tree from now on; the
            // frame only borrows it.
            json_object_get(v);
            rc = yattach(&b, v, line, err, errlen);
            if (rc == 0) {
                b.stack[b.depth].node = v;
                b.stack[b.depth].is_map = is_map;
                b.stack[b.depth].key = NULL;
                b.depth++;
            }
            json_object_put(v);   // drop our temporary reference
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (b.depth > 0) {
                b.depth--;
                free(b.stack[b.depth].key);
                b.stack[b.depth].key = NULL;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    for (int i = 0; i < b.depth; i++)
        free(b.stack[i].key);
    if (rc == 0 && (b.root == NULL || json_object_get_type(b.root) == json_type_null))
        rc = set_err(err, errlen, -EINVAL, "empty manifest");
    if (rc != 0) {
        json_object_put(b.root);
        return rc;
    }
    *out = b.root;
    return 0;
}

static int json_parse(const char *data, size_t len, json_object **out, char *err, size_t errlen)
{
    json_tokener *tok = json_tokener_new_ex(KX_MANIFEST_MAX_DEPTH);
    if (!tok)
        return set_err(err, errlen, -ENOMEM, "out of memory");
    json_object *v = json_tokener_parse_ex(tok, data, (int)len);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!v && e == json_tokener_continue) {
        // A top-level literal ("null", "12") only ends at a delimiter; a NUL
        // byte tells the tokener that the input is over.
        v = json_tokener_parse_ex(tok, "", 1);
        e = json_tokener_get_error(tok);
        if (v || e != json_tokener_continue)
            end = len;
    }
    int rc = 0;
    if (!v && (e == json_tokener_continue || e == json_tokener_error_parse_eof)) {
        rc = set_err(err, errlen, -EINVAL, "json: unexpected end of input");
    } else if (!v && e == json_tokener_success) {
        // "null" parses to NULL with success.
        rc = set_err(err, errlen, -EINVAL, "empty manifest");
    } else if (!v) {
        rc = set_err(err, errlen, -EINVAL, "json: offset %zu: %s", end, json_tokener_error_desc(e));
    } else {
        for (size_t i = end; i < len; i++) {
            char c = data[i];
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
                rc = set_err(err, errlen, -EINVAL, "json: offset %zu: data after the top-level value", i);
                break;
            }
        }
    }
    json_tokener_free(tok);
    if (rc != 0) {
        json_object_put(v);
        return rc;
    }
    *out = v;
    return 0;
}

int kx_manifest_parse(const char *data, size_t len, bool json, json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    if (len > KX_MANIFEST_MAX_BYTES)
        return set_err(err, errlen, -EFBIG, "file too large (%zu bytes, limit %d)", len, KX_MANIFEST_MAX_BYTES);
    return json ? json_parse(data, len, out, err, errlen) : yaml_to_json(data, len, out, err, errlen);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int kx_manifest_load(const char *path, json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return set_err(err, errlen, -e, "open: %s", strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return set_err(err, errlen, -e, "stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return set_err(err, errlen, -EINVAL, "not a regular file");
    }
    if (st.st_size > KX_MANIFEST_MAX_BYTES) {
        close(fd);
        return set_err(err, errlen, -EFBIG, "file too large (%lld bytes, limit %d)", (long long)st.st_size,
                       KX_MANIFEST_MAX_BYTES);
    }
    // Read up to limit + 1 regardless of st_size: the file may grow meanwhile.
    size_t cap = (size_t)st.st_size + 1, len = 0;
    if (cap > (size_t)KX_MANIFEST_MAX_BYTES + 1)
        cap = (size_t)KX_MANIFEST_MAX_BYTES + 1;
    char *buf = (char *)malloc(cap);
    if (!buf) {
        close(fd);
        return set_err(err, errlen, -ENOMEM, "out of memory");
    }
    for (;;) {
        if (len == cap) {
            if (cap > (size_t)KX_MANIFEST_MAX_BYTES)
                break;
            size_t ncap = cap * 2 > (size_t)KX_MANIFEST_MAX_BYTES + 1 ? (size_t)KX_MANIFEST_MAX_BYTES + 1 : cap * 2;
            char *nb = (char *)realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                return set_err(err, errlen, -ENOMEM, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return set_err(err, errlen, -e, "read: %s", strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    bool json;
    if (ends_with(path, ".json")) {
        json = true;
    } else if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
        json = false;
    } else {
        size_t i = 0;
        while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        json = i < len && buf[i] == '{';
    }
    int rc = kx_manifest_parse(buf, len, json, out, err, errlen);
    free(buf);
    return rc;
}

// ---------------------------------------------------------------------------
// Pod validation

bool kx_is_dns1123_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

// Renders a value for an error message: strings quoted and JSON-escaped (NUL
// bytes included), other values as JSON; both cut at ~80 chars.
static const char *show(char *buf, size_t cap, json_object *v)
{
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v), o = 0;
        buf[o++] = '"';
        // Per byte at most 6 chars; keep room for "...", the quote and NUL.
        for (size_t i = 0; i < n; i++) {
            if (i == 80 || o + 12 >= cap) {
                memcpy(buf + o, "...", 3);
                o += 3;
                break;
            }
            unsigned char ch = (unsigned char)s[i];
            if (ch == '"' || ch == '\\') {
                buf[o++] = '\\';
                buf[o++] = (char)ch;
            } else if (ch < 0x20 || ch == 0x7f) {
                o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", ch);
            } else {
                buf[o++] = (char)ch;
            }
        }
        buf[o++] = '"';
        buf[o] = 0;
    } else {
        const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        snprintf(buf, cap, "%.80s", s ? s : "?");
    }
    return buf;
}

static const char *kLabelMsg =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character";

struct vctx {
    char *err;
    size_t errlen;
};

static int req(vctx *c, const char *path)
{
    return set_err(c->err, c->errlen, -EINVAL, "%s: Required value", path);
}

static int invalid(vctx *c, const char *path, json_object *v, const char *why)
{
    char shown[128];
    return set_err(c->err, c->errlen, -EINVAL, "%s: Invalid value: %s: %s", path, show(shown, sizeof shown, v), why);
}

// Copies a string member (checked type, no NUL bytes). *out stays NULL when
// absent (or JSON null) and !required.
static int get_str(vctx *c, json_object *obj, const char *key, const char *path, bool required, char **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return required ? req(c, path) : 0;
    if (!json_object_is_type(v, json_type_string))
        return invalid(c, path, v, "must be a string");
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (memchr(s, 0, n))
        return invalid(c, path, v, "must not contain NUL bytes");
    if (required && n == 0)
        return req(c, path);
    *out = strndup(s, n);
    return *out ? 0 : set_err(c->err, c->errlen, -ENOMEM, "out of memory");
}

static int get_bool(vctx *c, json_object *obj, const char *key, const char *path, bool *out)
{
    json_object *v = NULL;
    *out = false;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return invalid(c, path, v, "must be a boolean");
    *out = json_object_get_boolean(v);
    return 0;
}

static int get_strv(vctx *c, json_object *obj, const char *key, const char *path, char ***out, size_t *nout)
{
    json_object *v = NULL;
    *out = NULL;
    *nout = 0;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return invalid(c, path, v, "must be a list of strings");
    size_t n = json_object_array_length(v);
    if (n > KX_CTR_MAX_ARGV)
        return set_err(c->err, c->errlen, -EINVAL, "%s: Too many: %zu: must have at most %d items", path, n,
                       KX_CTR_MAX_ARGV);
    if (n == 0)
        return 0;
    char **arr = (char **)calloc(n + 1, sizeof *arr);   // NULL-terminated: usable as argv
    if (!arr)
        return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
    *out = arr;
    *nout = n;   // the caller frees a partial array through kx_pod_spec_free
    for (size_t i = 0; i < n; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        json_object *e = json_object_array_get_idx(v, i);
        if (!e || !json_object_is_type(e, json_type_string))
            return invalid(c, p, e, "must be a string");
        const char *s = json_object_get_string(e);
        size_t sl = (size_t)json_object_get_string_len(e);
        if (memchr(s, 0, sl))
            return invalid(c, p, e, "must not contain NUL bytes");
        arr[i] = strndup(s, sl);
        if (!arr[i])
            return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
    }
    return 0;
}

static bool valid_env_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                  ch == '-' || ch == '.';
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_image(const char *s)
{
    if (!*s || *s == '/')
        return false;
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f || *q == '\\')
            return false;
    // Every '/'-separated component must be non-empty and not "." or "..":
    // the name becomes a path under the image directory.
    const char *comp = s;
    for (;;) {
        const char *slash = strchr(comp, '/');
        size_t n = slash ? (size_t)(slash - comp) : strlen(comp);
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
            return false;
        if (!slash)
            return true;
        comp = slash + 1;
    }
}

static int check_string_map(vctx *c, json_object *meta, const char *key, const char *path, json_object **out)
{
    json_object *v = NULL;
    *out = NULL;
    if (!json_object_object_get_ex(meta, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_object))
        return invalid(c, path, v, "must be a map of string keys to string values");
    json_object_object_foreach(v, k, val) {
        if (!val || !json_object_is_type(val, json_type_string)) {
            char p[256];
            snprintf(p, sizeof p, "%s[%.64s]", path, k);
            return invalid(c, p, val, "must be a string");
        }
    }
    *out = json_object_get(v);
    return 0;
}

static int parse_container(vctx *c, json_object *jc, size_t idx, kx_container_spec *out)
{
    char path[64], p[128];
    snprintf(path, sizeof path, "spec.containers[%zu]", idx);
    if (!json_object_is_type(jc, json_type_object))
        return invalid(c, path, jc, "must be an object");
    int rc;
    snprintf(p, sizeof p, "%s.name", path);
    if ((rc = get_str(c, jc, "name", p, true, &out->name)) != 0)
        return rc;
    if (!kx_is_dns1123_label(out->name)) {
        json_object *v = NULL;
        json_object_object_get_ex(jc, "name", &v);
        return invalid(c, p, v, strlen(out->name) > 63 ? "must be no more than 63 characters" : kLabelMsg);
    }
    snprintf(p, sizeof p, "%s.image", path);
    if ((rc = get_str(c, jc, "image", p, true, &out->image)) != 0)
        return rc;
    if (!valid_image(out->image)) {
        json_object *v = NULL;
        json_object_object_get_ex(jc, "image", &v);
        return invalid(c, p, v, "must be a relative image name without empty, \".\" or \"..\" path components, "
                                "spaces or control characters");
    }
    snprintf(p, sizeof p, "%s.command", path);
    if ((rc = get_strv(c, jc, "command", p, &out->command, &out->ncommand)) != 0)
        return rc;
    snprintf(p, sizeof p, "%s.args", path);
    if ((rc = get_strv(c, jc, "args", p, &out->args, &out->nargs)) != 0)
        return rc;
    snprintf(p, sizeof p, "%s.workingDir", path);
    if ((rc = get_str(c, jc, "workingDir", p, false, &out->working_dir)) != 0)
        return rc;
    if (out->working_dir && !out->working_dir[0]) {
        free(out->working_dir);
        out->working_dir = NULL;
    }
    snprintf(p, sizeof p, "%s.tty", path);
    if ((rc = get_bool(c, jc, "tty", p, &out->tty)) != 0)
        return rc;
    snprintf(p, sizeof p, "%s.stdin", path);
    if ((rc = get_bool(c, jc, "stdin", p, &out->stdin_)) != 0)
        return rc;
    snprintf(p, sizeof p, "%s.stdinOnce", path);
    if ((rc = get_bool(c, jc, "stdinOnce", p, &out->stdin_once)) != 0)
        return rc;

    json_object *env = NULL;
    if (json_object_object_get_ex(jc, "env", &env) && env) {
        snprintf(p, sizeof p, "%s.env", path);
        if (!json_object_is_type(env, json_type_array))
            return invalid(c, p, env, "must be a list of {name, value} objects");
        size_t n = json_object_array_length(env);
        if (n > KX_CTR_MAX_ENV)
            return set_err(c->err, c->errlen, -EINVAL, "%s: Too many: %zu: must have at most %d items", p, n,
                           KX_CTR_MAX_ENV);
        if (n > 0) {
            out->env = (kx_env *)calloc(n, sizeof *out->env);
            if (!out->env)
                return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
            out->nenv = n;
        }
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(env, i);
            char ep[160];
            snprintf(ep, sizeof ep, "%s.env[%zu]", path, i);
            if (!e || !json_object_is_type(e, json_type_object))
                return invalid(c, ep, e, "must be an object");
            char np[192];
            snprintf(np, sizeof np, "%s.name", ep);
            if ((rc = get_str(c, e, "name", np, true, &out->env[i].name)) != 0)
                return rc;
            if (!valid_env_name(out->env[i].name)) {
                json_object *v = NULL;
                json_object_object_get_ex(e, "name", &v);
                return invalid(c, np, v,
                               "a valid environment variable name must consist of alphabetic characters, digits, "
                               "'_', '-', or '.', and must not start with a digit");
            }
            if (json_object_object_get_ex(e, "valueFrom", NULL)) {
                snprintf(np, sizeof np, "%s.valueFrom", ep);
                return set_err(c->err, c->errlen, -EINVAL, "%s: Unsupported value: valueFrom is not supported",
                               np);
            }
            snprintf(np, sizeof np, "%s.value", ep);
            if ((rc = get_str(c, e, "value", np, false, &out->env[i].value)) != 0)
                return rc;
            if (!out->env[i].value && !(out->env[i].value = strdup("")))
                return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
        }
    }
    return 0;
}

static int parse_pod(vctx *c, json_object *pod, kx_pod_spec *out)
{
    int rc;
    if (!pod || !json_object_is_type(pod, json_type_object))
        return set_err(c->err, c->errlen, -EINVAL, "a Pod must be a JSON/YAML object");
    json_object *v = NULL;
    if (!json_object_object_get_ex(pod, "kind", &v) || !v)
        return req(c, "kind");
    if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "Pod") != 0) {
        char shown[128];
        return set_err(c->err, c->errlen, -EINVAL, "kind: Unsupported value: %s: supported values: \"Pod\"",
                       show(shown, sizeof shown, v));
    }
    if (!json_object_object_get_ex(pod, "apiVersion", &v) || !v)
        return req(c, "apiVersion");
    if (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "v1") != 0) {
        char shown[128];
        return set_err(c->err, c->errlen, -EINVAL, "apiVersion: Unsupported value: %s: supported values: \"v1\"",
                       show(shown, sizeof shown, v));
    }

    json_object *meta = NULL;
    if (!json_object_object_get_ex(pod, "metadata", &meta) || !meta)
        return req(c, "metadata.name");
    if (!json_object_is_type(meta, json_type_object))
        return invalid(c, "metadata", meta, "must be an object");
    if ((rc = get_str(c, meta, "name", "metadata.name", true, &out->name)) != 0)
        return rc;
    if (!kx_is_dns1123_label(out->name)) {
        json_object_object_get_ex(meta, "name", &v);
        return invalid(c, "metadata.name", v, strlen(out->name) > 63 ? "must be no more than 63 characters" : kLabelMsg);
    }
    if ((rc = get_str(c, meta, "namespace", "metadata.namespace", false, &out->ns)) != 0)
        return rc;
    if (out->ns && !out->ns[0]) {
        free(out->ns);
        out->ns = NULL;
    }
    if (out->ns && !kx_is_dns1123_label(out->ns)) {
        json_object_object_get_ex(meta, "namespace", &v);
        return invalid(c, "metadata.namespace", v,
                       strlen(out->ns) > 63 ? "must be no more than 63 characters" : kLabelMsg);
    }
    if (!out->ns && !(out->ns = strdup("default")))
        return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
    if ((rc = check_string_map(c, meta, "labels", "metadata.labels", &out->labels)) != 0)
        return rc;
    if ((rc = check_string_map(c, meta, "annotations", "metadata.annotations", &out->annotations)) != 0)
        return rc;

    json_object *spec = NULL;
    if (!json_object_object_get_ex(pod, "spec", &spec) || !spec)
        return req(c, "spec.containers");
    if (!json_object_is_type(spec, json_type_object))
        return invalid(c, "spec", spec, "must be an object");
    json_object *ctrs = NULL;
    if (!json_object_object_get_ex(spec, "containers", &ctrs) || !ctrs)
        return req(c, "spec.containers");
    if (!json_object_is_type(ctrs, json_type_array))
        return invalid(c, "spec.containers", ctrs, "must be a list");
    size_t n = json_object_array_length(ctrs);
    if (n == 0)
        return req(c, "spec.containers");
    if (n > KX_POD_MAX_CONTAINERS)
        return set_err(c->err, c->errlen, -EINVAL, "spec.containers: Too many: %zu: must have at most %d items", n,
                       KX_POD_MAX_CONTAINERS);
    out->containers = (kx_container_spec *)calloc(n, sizeof *out->containers);
    if (!out->containers)
        return set_err(c->err, c->errlen, -ENOMEM, "out of memory");
    out->ncontainers = n;
    for (size_t i = 0; i < n; i++) {
        if ((rc = parse_container(c, json_object_array_get_idx(ctrs, i), i, &out->containers[i])) != 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(out->containers[j].name, out->containers[i].name)) {
                char p[64];
                snprintf(p, sizeof p, "spec.containers[%zu].name", i);
                return set_err(c->err, c->errlen, -EINVAL, "%s: Duplicate value: \"%s\"", p,
                               out->containers[i].name);
            }
        }
    }

    out->restart_policy = KX_RESTART_ALWAYS;
    if (json_object_object_get_ex(spec, "restartPolicy", &v) && v) {
        const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
        if (s && !strcmp(s, "Always")) {
            out->restart_policy = KX_RESTART_ALWAYS;
        } else if (s && !strcmp(s, "OnFailure")) {
            out->restart_policy = KX_RESTART_ON_FAILURE;
        } else if (s && !strcmp(s, "Never")) {
            out->restart_policy = KX_RESTART_NEVER;
        } else {
            char shown[128];
            return set_err(c->err, c->errlen, -EINVAL,
                           "spec.restartPolicy: Unsupported value: %s: supported values: \"Always\", \"OnFailure\", "
                           "\"Never\"",
                           show(shown, sizeof shown, v));
        }
    }
    return get_bool(c, spec, "hostNetwork", "spec.hostNetwork", &out->host_network);
}

int kx_pod_spec_parse(json_object *pod, kx_pod_spec *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    vctx c = {err, errlen};
    int rc = parse_pod(&c, pod, out);
    if (rc != 0)
        kx_pod_spec_free(out);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void kx_pod_spec_free(kx_pod_spec *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ncontainers; i++) {
        kx_container_spec *c = &s->containers[i];
        free(c->name);
        free(c->image);
        free_strv(c->command, c->ncommand);
        free_strv(c->args, c->nargs);
        for (size_t j = 0; j < c->nenv; j++) {
            free(c->env[j].name);
            free(c->env[j].value);
        }
        free(c->env);
        free(c->working_dir);
    }
    free(s->containers);
    free(s->name);
    free(s->ns);
    json_object_put(s->labels);
    json_object_put(s->annotations);
    memset(s, 0, sizeof *s);
}
