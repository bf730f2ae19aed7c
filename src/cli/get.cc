// kubexec get / version: kubectl's `get` for pods, nodes and namespaces, and
// `version`, printing what kubectl 1.33 prints.
//
// How kubectl does it, and so how this file does it:
//   - tables come from the server: GET with Accept "...;as=Table;..." and
//     print columnDefinitions/rows with the rules of k8s.io/cli-runtime's
//     table printer (priority-0 columns unless -o wide, upper-case headers,
//     NAMESPACE first with -A, "pod/NAME" when several kinds are printed,
//     LABELS / -L columns) through a copy of its tabwriter (min width 6,
//     padding 3, spaces; the last cell of a line is not padded);
//   - everything is fetched first, then printed, then the errors are printed
//     ("Error from server (NotFound): ..." per failed name), exit 1 if any;
//   - -o json is Go's json.MarshalIndent of the object (keys sorted, four
//     spaces, HTML characters escaped); several objects or a list become
//     {"apiVersion":"v1","items":[...],"kind":"List","metadata":{"resourceVersion":""}};
//   - -o yaml is sigs.k8s.io/yaml (go-yaml v2) of the same: keys in go-yaml's
//     "natural" order, strings quoted when go-yaml would read them back as
//     something else, emitted by libyaml (go-yaml v2 is a port of it, so line
//     folding at 80 columns and the quoting fallbacks are the same);
//   - -o name prints kind/name.
// -l is checked here first (kubexec/labels.h: a malformed selector is
// reported without asking), sent as labelSelector as kubectl does, and applied
// again to the answer: a no-op against a server that filters (ours does), the
// right answer from one that does not.
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cli.h"
#include "kubexec/labels.h"

// ---- Output buffer -------------------------------------------------------------

struct obuf {
    kx_buf b;
    bool oom;
};

static void put(obuf *o, const void *p, size_t n)
{
    if (!o->oom && n && kx_buf_append(&o->b, p, n, SIZE_MAX) < 0)
        o->oom = true;
}

static void puts_(obuf *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putc_(obuf *o, char c)
{
    put(o, &c, 1);
}

static void putf(obuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(obuf *o, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        put(o, small, (size_t)n);
        return;
    }
    char *big = (char *)malloc((size_t)n + 1);
    if (!big) {
        o->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    put(o, big, (size_t)n);
    free(big);
}

// Writes the buffer to stdout; 0 or 1 after a message.
static int flush_out(obuf *o)
{
    if (o->oom)
        return kx_cli_err("out of memory");
    if (o->b.len && fwrite(o->b.data, 1, o->b.len, stdout) != o->b.len)
        return 1;
    o->b.len = 0;
    return fflush(stdout) == 0 ? 0 : 1;
}

// ---- UTF-8 ---------------------------------------------------------------------

// Decodes the sequence at s (n > 0 bytes left) as Go's utf8.DecodeRune does:
// returns its length; an invalid byte is 1 byte long and U+FFFD.
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, v = c & 0x07, min = 0x10000;
    else
        goto bad;
    if (n < len)
        goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            goto bad;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        goto bad;
    *cp = v;
    return len;
bad:
    *cp = 0xfffd;
    return 1;
}

static size_t rune_count(const char *s, size_t n)
{
    size_t count = 0;
    uint32_t cp;
    for (size_t i = 0; i < n; count++)
        i += utf8_next((const unsigned char *)s + i, n - i, &cp);
    return count;
}

// Appends s with every invalid byte replaced by U+FFFD (what Go's JSON decoder
// hands kubectl's printers).
static void put_valid_utf8(obuf *o, const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp == 0xfffd && l == 1)
            puts_(o, "\xef\xbf\xbd");
        else
            put(o, s + i, l);
        i += l;
    }
}

// ---- Go number formatting ----------------------------------------------------------

// Shortest decimal digits of f (f finite, not zero): digits in d (no dot,
// no trailing zeros), *dp = position of the decimal point (value = 0.d * 10^dp).
static void shortest_digits(double f, char *d, size_t cap, int *dp)
{
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, nullptr) == f)
            break;
    }
    // tmp: [-]D[.DDD]e[+-]XX
    const char *s = tmp[0] == '-' ? tmp + 1 : tmp;
    size_t n = 0;
    for (; *s && *s != 'e' && n + 1 < cap; s++)
        if (*s != '.')
            d[n++] = *s;
    d[n] = '\0';
    while (n > 1 && d[n - 1] == '0')
        d[--n] = '\0';
    *dp = atoi(s + 1) + 1;
}

// strconv.FormatFloat(f, 'e' or 'f', -1, 64) from shortest digits.
static void fmt_e(obuf *o, bool neg, const char *d, int dp)
{
    if (neg)
        putc_(o, '-');
    putc_(o, d[0]);
    if (d[1]) {
        putc_(o, '.');
        puts_(o, d + 1);
    }
    int e = dp - 1;
    putf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
}

static void fmt_f(obuf *o, bool neg, const char *d, int dp)
{
    if (neg)
        putc_(o, '-');
    int nd = (int)strlen(d);
    if (dp <= 0) {
        puts_(o, "0.");
        for (int i = 0; i < -dp; i++)
            putc_(o, '0');
        puts_(o, d);
    } else if (dp >= nd) {
        puts_(o, d);
        for (int i = nd; i < dp; i++)
            putc_(o, '0');
    } else {
        put(o, d, (size_t)dp);
        putc_(o, '.');
        puts_(o, d + dp);
    }
}

// encoding/json's float64 text.
static void go_json_float(obuf *o, double f)
{
    if (f == 0) {
        puts_(o, signbit(f) ? "-0" : "0");
        return;
    }
    char d[32];
    int dp;
    shortest_digits(f, d, sizeof d, &dp);
    double a = f < 0 ? -f : f;
    if (a < 1e-6 || a >= 1e21) {
        obuf t = {};
        fmt_e(&t, f < 0, d, dp);
        // encoding/json turns e-09 into e-9.
        size_t n = t.b.len;
        if (!t.oom && n >= 4 && t.b.data[n - 4] == 'e' && t.b.data[n - 3] == '-' &&
            t.b.data[n - 2] == '0') {
            t.b.data[n - 2] = t.b.data[n - 1];
            t.b.len--;
        }
        put(o, t.b.data, t.b.len);
        o->oom |= t.oom;
        kx_buf_free(&t.b);
    } else {
        fmt_f(o, f < 0, d, dp);
    }
}

// strconv.FormatFloat(f, 'g', -1, 64), as go-yaml v2 writes floats.
static void go_yaml_float(obuf *o, double f)
{
    if (f == 0) {
        puts_(o, signbit(f) ? "-0" : "0");
        return;
    }
    char d[32];
    int dp;
    shortest_digits(f, d, sizeof d, &dp);
    // strconv's %g with the shortest precision switches to %e from 1e+06 on.
    int exp = dp - 1;
    if (exp < -4 || exp >= 6)
        fmt_e(o, f < 0, d, dp);
    else
        fmt_f(o, f < 0, d, dp);
}

// ---- JSON, as Go's encoding/json writes it ------------------------------------

static void go_json_string(obuf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    putc_(o, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            i++;
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                putc_(o, (char)c);
                continue;
            }
            switch (c) {
            case '"': puts_(o, "\\\""); break;
            case '\\': puts_(o, "\\\\"); break;
            case '\b': puts_(o, "\\b"); break;
            case '\f': puts_(o, "\\f"); break;
            case '\n': puts_(o, "\\n"); break;
            case '\r': puts_(o, "\\r"); break;
            case '\t': puts_(o, "\\t"); break;
            default: {
                char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
                puts_(o, e);
            }
            }
            continue;
        }
        uint32_t cp;
        size_t l = utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp == 0xfffd && l == 1)
            puts_(o, "\\ufffd");
        else if (cp == 0x2028 || cp == 0x2029)
            putf(o, "\\u%04x", cp);
        else
            put(o, s + i, l);
        i += l;
    }
    putc_(o, '"');
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// The keys of object o, sorted with cmp when cmp is not null, in a malloc'd
// array (the strings are o's); *n gets the count. Null on ENOMEM.
static const char **object_keys(json_object *o, int (*cmp)(const void *, const void *), size_t *n)
{
    size_t cap = (size_t)json_object_object_length(o), k = 0;
    const char **keys = (const char **)malloc((cap ? cap : 1) * sizeof *keys);
    if (!keys)
        return nullptr;
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        if (k < cap)
            keys[k++] = key;
    }
    if (cmp)
        qsort(keys, k, sizeof *keys, cmp);
    *n = k;
    return keys;
}

static void indent(obuf *o, const char *unit, int depth)
{
    for (int i = 0; i < depth; i++)
        puts_(o, unit);
}

static void go_json_value(obuf *o, json_object *v, int depth, const char *unit, bool sorted)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        puts_(o, "null");
        return;
    case json_type_boolean:
        puts_(o, json_object_get_boolean(v) ? "true" : "false");
        return;
    case json_type_double:
        go_json_float(o, json_object_get_double(v));
        return;
    case json_type_int:
        puts_(o, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        return;
    case json_type_string:
        go_json_string(o, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return;
    case json_type_array: {
        size_t n = json_object_array_length(v);
        if (n == 0) {
            puts_(o, "[]");
            return;
        }
        puts_(o, "[\n");
        for (size_t i = 0; i < n; i++) {
            indent(o, unit, depth + 1);
            go_json_value(o, json_object_array_get_idx(v, i), depth + 1, unit, sorted);
            puts_(o, i + 1 < n ? ",\n" : "\n");
        }
        indent(o, unit, depth);
        putc_(o, ']');
        return;
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(v);
        if (n == 0) {
            puts_(o, "{}");
            return;
        }
        size_t k;
        const char **keys = object_keys(v, sorted ? cmp_str : nullptr, &k);
        if (!keys) {
            o->oom = true;
            return;
        }
        puts_(o, "{\n");
        for (size_t i = 0; i < k; i++) {
            indent(o, unit, depth + 1);
            go_json_string(o, keys[i], strlen(keys[i]));
            puts_(o, ": ");
            go_json_value(o, json_object_object_get(v, keys[i]), depth + 1, unit, sorted);
            puts_(o, i + 1 < k ? ",\n" : "\n");
        }
        free(keys);
        indent(o, unit, depth);
        putc_(o, '}');
        return;
    }
    }
}

// ---- YAML, as sigs.k8s.io/yaml (go-yaml v2) writes it -----------------------------

// go-yaml v2's map key order (sorter.go keyList.Less) for string keys: letters
// compare as runes, a non-letter sorts before a letter, digit runs compare as
// numbers.
static bool is_letter(uint32_t r)
{
    return r < 0x80 ? isalpha((int)r) != 0 : r != 0xfffd;
}

static bool is_digit(uint32_t r)
{
    return r >= '0' && r <= '9';
}

static size_t to_runes(const char *s, uint32_t *out, size_t cap)
{
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len && n < cap;)
        i += utf8_next((const unsigned char *)s + i, len - i, &out[n++]);
    return n;
}

static int yaml_key_cmp(const void *pa, const void *pb)
{
    const char *sa = *(const char *const *)pa, *sb = *(const char *const *)pb;
    uint32_t ar[512], br[512];
    size_t an_ = to_runes(sa, ar, 512), bn_ = to_runes(sb, br, 512);
    for (size_t i = 0; i < an_ && i < bn_; i++) {
        if (ar[i] == br[i])
            continue;
        bool al = is_letter(ar[i]), bl = is_letter(br[i]);
        if (al && bl)
            return ar[i] < br[i] ? -1 : 1;
        if (al || bl)
            return bl ? -1 : 1;
        int64_t an = 0, bn = 0;
        size_t ai, bi;
        if (ar[i] == '0' || br[i] == '0') {
            for (size_t j = i; j-- > 0 && is_digit(ar[j]);)
                if (ar[j] != '0') {
                    an = 1;
                    bn = 1;
                    break;
                }
        }
        for (ai = i; ai < an_ && is_digit(ar[ai]); ai++)
            an = an * 10 + (int64_t)(ar[ai] - '0');
        for (bi = i; bi < bn_ && is_digit(br[bi]); bi++)
            bn = bn * 10 + (int64_t)(br[bi] - '0');
        if (an != bn)
            return an < bn ? -1 : 1;
        if (ai != bi)
            return ai < bi ? -1 : 1;
        return ar[i] < br[i] ? -1 : 1;
    }
    return an_ < bn_ ? -1 : an_ > bn_ ? 1 : 0;
}

// Go's strconv.ParseInt(s, 0, 64) syntax (range not checked).
static bool go_int_syntax(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    const char *digits = "0123456789";
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        digits = "0123456789abcdefABCDEF", s += 2;
    else if (s[0] == '0' && (s[1] == 'o' || s[1] == 'O'))
        digits = "01234567", s += 2;
    else if (s[0] == '0' && (s[1] == 'b' || s[1] == 'B'))
        digits = "01", s += 2;
    else if (s[0] == '0' && s[1])
        digits = "01234567", s += 1;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr(digits, *s))
            return false;
    return true;
}

// ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
static bool yaml_float_syntax(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    } else {
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s == '.') {
            s++;
            while (isdigit((unsigned char)*s))
                s++;
        }
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    return *s == '\0';
}

// 1 or 2 digits (Go's getnum(value, false)); -1 if none.
static int getnum(const char **p)
{
    const char *s = *p;
    if (!isdigit((unsigned char)s[0]))
        return -1;
    int v = s[0] - '0';
    s++;
    if (isdigit((unsigned char)s[0]))
        v = v * 10 + (*s++ - '0');
    *p = s;
    return v;
}

// go-yaml v2's parseTimestamp: time.Parse with "2006-1-2T15:4:5.999999999Z07:00"
// (also 't'), "2006-1-2 15:4:5.999999999" and "2006-1-2".
static bool yaml_timestamp(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    if (s[4] != '-')
        return false;
    int year = atoi(s);
    const char *p = s + 5;
    int month = getnum(&p);
    if (month < 1 || month > 12 || *p++ != '-')
        return false;
    int day = getnum(&p);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int dim = mdays[month - 1];
    if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        dim = 29;
    if (day < 1 || day > dim)
        return false;
    if (!*p)
        return true;
    char sep = *p++;
    if (sep != 'T' && sep != 't' && sep != ' ')
        return false;
    int h = getnum(&p);
    if (h < 0 || h > 23 || *p++ != ':')
        return false;
    int m = getnum(&p);
    if (m < 0 || m > 59 || *p++ != ':')
        return false;
    int sec = getnum(&p);
    if (sec < 0 || sec > 59)
        return false;
    if ((*p == '.' || *p == ',') && isdigit((unsigned char)p[1])) {
        p++;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (sep == ' ')
        return *p == '\0';
    if (*p == 'Z')
        return p[1] == '\0';
    if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
        isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
        isdigit((unsigned char)p[5]) && p[6] == '\0')
        return (p[1] - '0') * 10 + (p[2] - '0') <= 24 && (p[4] - '0') * 10 + (p[5] - '0') <= 60;
    return false;
}

// ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
static bool yaml_base60(const char *s)
{
    if (!strchr(s, ':'))
        return false;
    if (*s == '+' || *s == '-')
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s) || *s == '_')
        s++;
    int groups = 0;
    while (*s == ':') {
        s++;
        if (s[0] >= '0' && s[0] <= '5' && isdigit((unsigned char)s[1]))
            s += 2;
        else if (isdigit((unsigned char)s[0]))
            s += 1;
        else
            return false;
        groups++;
    }
    if (!groups)
        return false;
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s) || *s == '_')
            s++;
    }
    return *s == '\0';
}

// True when go-yaml v2 would write s plain (it resolves back to a string):
// its encoder otherwise double-quotes.
static bool yaml_plain_ok(const char *s)
{
    static const char *const special[] = {
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
        "on", "On", "ON", "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off",
        "OFF", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
        "-.inf", "-.Inf", "-.INF", "<<"};
    char c = s[0];
    if (!c)
        return false;   // "" reads back as null
    bool hinted = c == '+' || c == '-' || c == '.' || isdigit((unsigned char)c) ||
                  (c && strchr("yYnNtTfFoO~", c));
    if (!hinted)
        return !yaml_base60(s);
    for (const char *sp : special)
        if (strcmp(s, sp) == 0)
            return false;
    if (c == '.') {
        if (yaml_float_syntax(s))
            return false;
    } else if (c == '+' || c == '-' || isdigit((unsigned char)c)) {
        if (isdigit((unsigned char)c) && yaml_timestamp(s))
            return false;
        size_t n = strlen(s);
        char *plain = (char *)malloc(n + 1);
        if (!plain)
            return false;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] != '_')
                plain[k++] = s[i];
        plain[k] = '\0';
        bool num = go_int_syntax(plain) || yaml_float_syntax(plain);
        free(plain);
        if (num)
            return false;
    }
    return !yaml_base60(s);
}

struct yemit {
    yaml_emitter_t em;
    obuf *out;
    bool failed;
    bool control;   // a string go-yaml's reader would refuse
};

// kubectl's YAML goes through JSON text that go-yaml then reads back; the
// runes encoding/json leaves raw but YAML does not allow make kubectl fail
// with "yaml: control characters are not allowed".
static bool yaml_refused(const char *s, size_t n)
{
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        i += utf8_next((const unsigned char *)s + i, n - i, &cp);
        if (cp == 0x7f || (cp >= 0x80 && cp <= 0x9f && cp != 0x85) || cp == 0xfffe ||
            cp == 0xffff)
            return true;
    }
    return false;
}

static int y_write(void *data, unsigned char *buf, size_t size)
{
    put((obuf *)data, buf, size);
    return 1;
}

static void y_emit(yemit *y, yaml_event_t *ev)
{
    if (y->failed) {
        yaml_event_delete(ev);
        return;
    }
    if (!yaml_emitter_emit(&y->em, ev))   // consumes the event either way
        y->failed = true;
}

static void y_scalar(yemit *y, const char *s, size_t n, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, nullptr, nullptr, (yaml_char_t *)s, (int)n, 1, 1,
                                      style)) {
        y->failed = true;
        return;
    }
    y_emit(y, &ev);
}

static void y_string(yemit *y, const char *s, size_t n)
{
    obuf v = {};
    put_valid_utf8(&v, s, n);
    putc_(&v, '\0');
    if (v.oom) {
        y->failed = true;
        kx_buf_free(&v.b);
        return;
    }
    const char *t = (const char *)v.b.data;
    size_t tl = v.b.len - 1;
    if (yaml_refused(t, tl)) {
        y->control = true;
        y->failed = true;
        kx_buf_free(&v.b);
        return;
    }
    yaml_scalar_style_t style;
    if (memchr(t, '\n', tl))
        style = YAML_LITERAL_SCALAR_STYLE;
    else if (strlen(t) == tl && yaml_plain_ok(t))
        style = YAML_PLAIN_SCALAR_STYLE;   // libyaml falls back to quotes when it must
    else
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    y_scalar(y, t, tl, style);
    kx_buf_free(&v.b);
}

static void y_node(yemit *y, json_object *v)
{
    yaml_event_t ev;
    switch (json_object_get_type(v)) {
    case json_type_null:
        y_scalar(y, "null", 4, YAML_PLAIN_SCALAR_STYLE);
        return;
    case json_type_boolean:
        if (json_object_get_boolean(v))
            y_scalar(y, "true", 4, YAML_PLAIN_SCALAR_STYLE);
        else
            y_scalar(y, "false", 5, YAML_PLAIN_SCALAR_STYLE);
        return;
    case json_type_int: {
        const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
        y_scalar(y, s, strlen(s), YAML_PLAIN_SCALAR_STYLE);
        return;
    }
    case json_type_double: {
        obuf t = {};
        double d = json_object_get_double(v);
        // JSON's 1.0 reaches go-yaml as the YAML int 1 (JSONToYAML re-reads
        // encoding/json's text).
        obuf j = {};
        go_json_float(&j, d);
        putc_(&j, '\0');
        if (!j.oom && (go_int_syntax((const char *)j.b.data)))
            put(&t, j.b.data, j.b.len - 1);
        else
            go_yaml_float(&t, d);
        kx_buf_free(&j.b);
        y_scalar(y, t.oom ? "" : (const char *)t.b.data, t.oom ? 0 : t.b.len,
                 YAML_PLAIN_SCALAR_STYLE);
        y->failed |= t.oom;
        kx_buf_free(&t.b);
        return;
    }
    case json_type_string:
        y_string(y, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return;
    case json_type_array: {
        if (!yaml_sequence_start_event_initialize(&ev, nullptr, nullptr, 1,
                                                  YAML_BLOCK_SEQUENCE_STYLE)) {
            y->failed = true;
            return;
        }
        y_emit(y, &ev);
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n && !y->failed; i++)
            y_node(y, json_object_array_get_idx(v, i));
        yaml_sequence_end_event_initialize(&ev);
        y_emit(y, &ev);
        return;
    }
    case json_type_object: {
        if (!yaml_mapping_start_event_initialize(&ev, nullptr, nullptr, 1,
                                                 YAML_BLOCK_MAPPING_STYLE)) {
            y->failed = true;
            return;
        }
        y_emit(y, &ev);
        size_t k;
        const char **keys = object_keys(v, yaml_key_cmp, &k);
        if (!keys) {
            y->failed = true;
            return;
        }
        for (size_t i = 0; i < k && !y->failed; i++) {
            y_string(y, keys[i], strlen(keys[i]));
            y_node(y, json_object_object_get(v, keys[i]));
        }
        free(keys);
        yaml_mapping_end_event_initialize(&ev);
        y_emit(y, &ev);
        return;
    }
    }
}

// One YAML document for v; 0, -EILSEQ (kubectl's control character error) or
// -EINVAL.
static int print_yaml(obuf *o, json_object *v)
{
    yemit y = {};
    y.out = o;
    if (!yaml_emitter_initialize(&y.em))
        return -ENOMEM;
    yaml_emitter_set_output(&y.em, y_write, o);
    yaml_emitter_set_unicode(&y.em, 1);
    yaml_event_t ev;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    y_emit(&y, &ev);
    yaml_document_start_event_initialize(&ev, nullptr, nullptr, nullptr, 1);
    y_emit(&y, &ev);
    y_node(&y, v);
    yaml_document_end_event_initialize(&ev, 1);
    y_emit(&y, &ev);
    yaml_stream_end_event_initialize(&ev);
    y_emit(&y, &ev);
    if (!y.failed && !yaml_emitter_flush(&y.em))
        y.failed = true;
    yaml_emitter_delete(&y.em);
    return y.control ? -EILSEQ : y.failed ? -EINVAL : 0;
}

// ---- JSON input ---------------------------------------------------------------------

static json_object *jget(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v)
               ? v : nullptr;
}

static const char *jstr(json_object *o, const char *k)
{
    json_object *v = jget(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : nullptr;
}

// ---- Resource kinds ---------------------------------------------------------------

struct kind_info {
    const char *resource;   // path segment: "pods"
    const char *kind;       // "Pod"
    const char *lower;      // kubectl's "pod/NAME" prefix
    bool namespaced;
    const char *aliases[3];
};

static const kind_info kinds[] = {
    {"pods", "Pod", "pod", true, {"pod", "po", "pods"}},
    {"nodes", "Node", "node", false, {"node", "no", "nodes"}},
    {"namespaces", "Namespace", "namespace", false, {"namespace", "ns", "namespaces"}},
};

// kubectl's RESTMapper matches resource names case-insensitively, short
// names ("po") exactly.
static const kind_info *find_kind(const char *s, size_t n)
{
    for (const kind_info &k : kinds)
        for (size_t i = 0; i < 3; i++) {
            const char *a = k.aliases[i];
            if (strlen(a) == n && (i == 1 ? strncmp(a, s, n) : strncasecmp(a, s, n)) == 0)
                return &k;
        }
    return nullptr;
}

static int no_type(const char *s, size_t n)
{
    return kx_cli_err("the server doesn't have a resource type \"%.*s\"", (int)n, s);
}

// ---- kubectl get --------------------------------------------------------------------

enum out_mode { OUT_TABLE, OUT_WIDE, OUT_JSON, OUT_YAML, OUT_NAME };

struct get_opts {
    out_mode mode;
    bool all_ns, no_headers, show_labels, show_kind, ignore_nf;
    const char *selector, *field_selector, *label_cols;
    long chunk;
    kx_lsel sel;
    bool has_sel;
};

#define GET_MAX_ARGS 64
#define GET_MAX_VISITS 256
#define GET_MAX_ERRORS 256

struct visit {
    const kind_info *k;
    const char *name;   // null: the list
};

// A fetched answer: a Table (table modes) or an object/list (the others).
struct result {
    const kind_info *k;
    json_object *obj;
};

struct saved_err {
    int status;
    uint8_t *body;
    size_t len;
};

struct get_run {
    kx_cli *c;
    get_opts *o;
    kx_cli_http *h;
    result *res;
    size_t nres, capres;
    saved_err errs[GET_MAX_ERRORS];
    size_t nerrs;
};

static int add_result(get_run *g, const kind_info *k, json_object *obj)
{
    if (g->nres == g->capres) {
        size_t cap = g->capres ? g->capres * 2 : 16;
        result *r = (result *)realloc(g->res, cap * sizeof *r);
        if (!r) {
            json_object_put(obj);
            return kx_cli_err("out of memory");
        }
        g->res = r;
        g->capres = cap;
    }
    g->res[g->nres++] = {k, obj};
    return 0;
}

static void save_err(get_run *g, const kx_cli_resp *r)
{
    if (g->nerrs >= GET_MAX_ERRORS)
        return;
    saved_err *e = &g->errs[g->nerrs++];
    e->status = r->status;
    e->len = r->body_len;
    e->body = (uint8_t *)malloc(r->body_len ? r->body_len : 1);
    if (!e->body)
        e->len = 0;
    else if (r->body_len)
        memcpy(e->body, r->body, r->body_len);
}

static const char table_accept[] =
    "Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
    "g=meta.k8s.io,application/json\r\n";

// Drops list entries (Table rows or items) the selector does not match.
static void filter_rows(json_object *arr, const kx_lsel *sel, bool table)
{
    for (size_t i = json_object_array_length(arr); i-- > 0;) {
        json_object *e = json_object_array_get_idx(arr, i);
        json_object *meta = jget(table ? jget(e, "object") : e, "metadata");
        if (!kx_lsel_match(sel, jget(meta, "labels")))
            json_object_array_del_idx(arr, i, 1);
    }
}

// GETs one visit (every page of a list) into results. 0, or 1 after a
// transport error (API errors are saved for later, as kubectl prints them last).
static int fetch(get_run *g, const visit *v)
{
    get_opts *o = g->o;
    kx_cli *c = g->c;
    bool table = o->mode == OUT_TABLE || o->mode == OUT_WIDE;
    char ens[768], ename[768];
    if (kx_cli_qesc(ens, sizeof ens, c->cfg.namespace_) < 0 ||
        (v->name && kx_cli_qesc(ename, sizeof ename, v->name) < 0))
        return kx_cli_err("namespace or name too long");
    char base[2048];
    if (!v->k->namespaced || (o->all_ns && !v->name))
        snprintf(base, sizeof base, "/api/v1/%s", v->k->resource);
    else
        snprintf(base, sizeof base, "/api/v1/namespaces/%s/%s", ens, v->k->resource);
    char *cont = nullptr;
    json_object *acc = nullptr;   // list being assembled (generic modes)
    for (;;) {
        kx_buf path = {};
        int bad = kx_buf_append(&path, base, strlen(base), SIZE_MAX);
        if (v->name) {
            bad |= kx_buf_append(&path, "/", 1, SIZE_MAX);
            bad |= kx_buf_append(&path, ename, strlen(ename), SIZE_MAX);
        } else {
            // url.Values.Encode order: keys sorted.
            char sep = '?';
            const char *keys[] = {"continue", "fieldSelector", "labelSelector"};
            const char *vals[] = {cont, o->field_selector, o->selector};
            for (int i = 0; i < 3; i++) {
                if (!vals[i] || !*vals[i])
                    continue;
                size_t cap = strlen(vals[i]) * 3 + 1;
                char *e = (char *)malloc(cap);
                if (!e || kx_cli_qesc(e, cap, vals[i]) < 0) {
                    free(e);
                    bad = -ENOMEM;
                    break;
                }
                char head[32];
                snprintf(head, sizeof head, "%c%s=", sep, keys[i]);
                bad |= kx_buf_append(&path, head, strlen(head), SIZE_MAX);
                bad |= kx_buf_append(&path, e, strlen(e), SIZE_MAX);
                free(e);
                sep = '&';
            }
            if (o->chunk > 0) {
                char lim[40];
                snprintf(lim, sizeof lim, "%climit=%ld", sep, o->chunk);
                bad |= kx_buf_append(&path, lim, strlen(lim), SIZE_MAX);
            }
        }
        bad |= kx_buf_append(&path, "", 1, SIZE_MAX);
        free(cont);
        cont = nullptr;
        if (bad) {
            kx_buf_free(&path);
            json_object_put(acc);
            return kx_cli_err("out of memory");
        }
        kx_cli_resp r;
        int rc = kx_cli_http_do(g->h, "GET", (const char *)path.data,
                                table ? table_accept : "Accept: application/json\r\n", nullptr,
                                nullptr, &r);
        kx_buf_free(&path);
        if (rc) {
            json_object_put(acc);
            return 1;
        }
        if (r.status != 200) {
            json_object_put(acc);
            if (!(o->ignore_nf && r.status == 404))
                save_err(g, &r);
            return 0;
        }
        json_object *obj = kx_cli_json(r.body, r.body_len);
        if (!obj || !json_object_is_type(obj, json_type_object)) {
            json_object_put(obj);
            json_object_put(acc);
            return kx_cli_err("the server returned an answer that is not a JSON object");
        }
        if (table && strcmp(jstr(obj, "kind") ? jstr(obj, "kind") : "", "Table") != 0) {
            json_object_put(obj);
            json_object_put(acc);
            return kx_cli_err("the server did not return a Table for %s", v->k->resource);
        }
        const char *next = jstr(jget(obj, "metadata"), "continue");
        if (!v->name && next && *next && o->chunk > 0)
            cont = strdup(next);
        json_object *items = jget(obj, table ? "rows" : "items");
        if (!v->name && items && json_object_is_type(items, json_type_array) && o->has_sel)
            filter_rows(items, &o->sel, table);
        if (table || v->name) {
            if (add_result(g, v->k, obj))
                return 1;
        } else if (!acc) {
            acc = obj;
        } else {
            // Later pages: append their items to the first page's list.
            json_object *dst = jget(acc, "items");
            for (size_t i = 0; dst && items && i < json_object_array_length(items); i++)
                json_object_array_add(dst, json_object_get(json_object_array_get_idx(items, i)));
            json_object_put(obj);
        }
        if (!cont)
            break;
    }
    if (acc && add_result(g, v->k, acc))
        return 1;
    return 0;
}

// ---- Go's text/tabwriter (k8s fork), as kubectl configures it ------------------------

struct tw_cell {
    const char *p;
    size_t size, width;
};

struct tw {
    tw_cell *cells;
    size_t *line_start;   // index of each line's first cell; line_start[nlines] = ncells
    size_t nlines;
    size_t widths[64];
    size_t nwidths;
    obuf *out;
};

enum { TW_MINWIDTH = 6, TW_PADDING = 3 };

static void tw_pad(obuf *o, size_t textw, size_t cellw)
{
    for (size_t i = textw; i < cellw; i++)
        putc_(o, ' ');
}

static void tw_write_lines(tw *t, size_t line0, size_t line1)
{
    for (size_t i = line0; i < line1; i++) {
        size_t a = t->line_start[i], b = t->line_start[i + 1];
        for (size_t j = 0; j < b - a; j++) {
            const tw_cell *c = &t->cells[a + j];
            put(t->out, c->p, c->size);
            if (j < t->nwidths)
                tw_pad(t->out, c->width, t->widths[j]);
        }
        if (i + 1 < t->nlines)
            putc_(t->out, '\n');
    }
}

static size_t tw_ncells(tw *t, size_t line)
{
    return t->line_start[line + 1] - t->line_start[line];
}

static void tw_format(tw *t, size_t line0, size_t line1)
{
    size_t column = t->nwidths;
    for (size_t cur = line0; cur < line1; cur++) {
        if (column + 1 >= tw_ncells(t, cur))
            continue;
        tw_write_lines(t, line0, cur);
        line0 = cur;
        size_t width = TW_MINWIDTH;
        for (; cur < line1; cur++) {
            if (column + 1 >= tw_ncells(t, cur))
                break;
            const tw_cell *c = &t->cells[t->line_start[cur] + column];
            if (c->width + TW_PADDING > width)
                width = c->width + TW_PADDING;
        }
        if (t->nwidths < sizeof t->widths / sizeof t->widths[0]) {
            t->widths[t->nwidths++] = width;
            tw_format(t, line0, cur);
            t->nwidths--;
        } else {
            tw_write_lines(t, line0, cur);
        }
        line0 = cur;
    }
    tw_write_lines(t, line0, line1);
}

// Formats tab-separated, newline-terminated text into out.
static int tw_flush(const kx_buf *text, obuf *out)
{
    size_t ncells = 1, nlines = 1;
    for (size_t i = 0; i < text->len; i++) {
        if (text->data[i] == '\t')
            ncells++;
        else if (text->data[i] == '\n')
            ncells++, nlines++;
    }
    tw t = {};
    t.out = out;
    t.cells = (tw_cell *)calloc(ncells, sizeof *t.cells);
    t.line_start = (size_t *)calloc(nlines + 1, sizeof *t.line_start);
    if (!t.cells || !t.line_start) {
        free(t.cells);
        free(t.line_start);
        return -ENOMEM;
    }
    size_t nc = 0, start = 0;
    const char *d = (const char *)text->data;
    for (size_t i = 0; i <= text->len; i++) {
        if (i < text->len && d[i] != '\t' && d[i] != '\n')
            continue;
        tw_cell *c = &t.cells[nc++];
        c->p = d ? d + start : "";
        c->size = i - start;
        c->width = rune_count(c->p, c->size);
        start = i + 1;
        if (i == text->len || d[i] == '\n')
            t.line_start[++t.nlines] = nc;
    }
    tw_format(&t, 0, t.nlines);
    free(t.cells);
    free(t.line_start);
    return 0;
}

// ---- Table printing (k8s.io/cli-runtime/pkg/printers/tableprinter.go) ----------------

struct tprint {
    get_opts *o;
    obuf out;               // what goes to stdout
    kx_buf group;           // the current printer's text, tab-separated
    bool group_oom;
    const kind_info *last;  // the current printer's kind
    bool with_ns;           // sticky, as kubectl's shared PrintFlags make it
    bool with_kind;
    char *last_cols;        // the columnDefinitions last seen, as JSON
    bool printed_headers;
    bool sep_ready;
    size_t written;
};

static void gput(tprint *p, const char *s, size_t n)
{
    if (!p->group_oom && n && kx_buf_append(&p->group, s, n, SIZE_MAX) < 0)
        p->group_oom = true;
}

static void gputs(tprint *p, const char *s)
{
    gput(p, s, strlen(s));
}

static int flush_group(tprint *p)
{
    if (p->group_oom)
        return -ENOMEM;
    if (!p->group.len)
        return 0;
    obuf f = {};
    int rc = tw_flush(&p->group, &f);
    p->group.len = 0;
    if (rc < 0 || f.oom) {
        kx_buf_free(&f.b);
        return -ENOMEM;
    }
    if (f.b.len) {
        if (p->sep_ready) {
            putc_(&p->out, '\n');
            p->sep_ready = false;
        }
        put(&p->out, f.b.data, f.b.len);
        p->written += f.b.len;
    }
    kx_buf_free(&f.b);
    return 0;
}

// A cell as printTable writes it: strings cut at the first line break (then
// "..."), ESC and CR made visible; other values as fmt.Sprint prints them.
static void put_cell(tprint *p, json_object *v)
{
    if (!v)
        return;
    obuf t = {};
    switch (json_object_get_type(v)) {
    case json_type_null:
        break;
    case json_type_string: {
        const char *s = json_object_get_string(v);
        size_t n = (size_t)json_object_get_string_len(v);
        size_t cut = strcspn(s, "\f\n\r");
        bool trunc = cut < n;
        if (trunc)
            n = cut;
        put_valid_utf8(&t, s, n);
        if (trunc)
            puts_(&t, "...");
        break;
    }
    case json_type_double:
        go_yaml_float(&t, json_object_get_double(v));   // %v of a float64 is %g
        break;
    default:
        puts_(&t, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    }
    for (size_t i = 0; i < t.b.len; i++) {
        char c = (char)t.b.data[i];
        if (c == '\x1b')
            gputs(p, "^[");
        else if (c == '\r')
            gputs(p, "\\r");
        else
            gput(p, &c, 1);
    }
    p->group_oom |= t.oom;
    kx_buf_free(&t.b);
}

// labels.FormatLabels: "k=v,..." sorted by key, or "<none>".
static void put_labels(tprint *p, json_object *labels)
{
    size_t n = labels && json_object_is_type(labels, json_type_object)
                   ? (size_t)json_object_object_length(labels) : 0;
    if (!n) {
        gputs(p, "<none>");
        return;
    }
    size_t k;
    const char **keys = object_keys(labels, cmp_str, &k);
    if (!keys) {
        p->group_oom = true;
        return;
    }
    for (size_t i = 0; i < k; i++) {
        if (i)
            gputs(p, ",");
        gputs(p, keys[i]);
        gputs(p, "=");
        const char *v = jstr(labels, keys[i]);
        gputs(p, v ? v : "");
    }
    free(keys);
}

// The -L keys, split on ','.
struct label_cols {
    char buf[1024];
    const char *keys[32];
    size_t n;
};

static void print_table(tprint *p, const kind_info *k, json_object *table, const label_cols *lc)
{
    get_opts *o = p->o;
    bool wide = o->mode == OUT_WIDE;
    if (k != p->last) {
        if (flush_group(p) < 0)
            p->group_oom = true;
        if (p->last && !o->no_headers && p->written > 0)
            p->sep_ready = true;
        p->last = k;
        free(p->last_cols);
        p->last_cols = nullptr;
        p->printed_headers = false;
        if (o->all_ns && k->namespaced)
            p->with_ns = true;
    }
    json_object *cols = jget(table, "columnDefinitions");
    json_object *rows = jget(table, "rows");
    size_t ncols = cols && json_object_is_type(cols, json_type_array)
                       ? json_object_array_length(cols) : 0;
    size_t nrows = rows && json_object_is_type(rows, json_type_array)
                       ? json_object_array_length(rows) : 0;
    const char *cj = cols ? json_object_to_json_string_ext(cols, JSON_C_TO_STRING_PLAIN) : "";
    bool same = p->last_cols && strcmp(cj, p->last_cols) == 0;
    bool no_headers = o->no_headers || (p->printed_headers && (ncols == 0 || same));
    if (ncols && !same) {
        free(p->last_cols);
        p->last_cols = strdup(cj);
        p->printed_headers = false;
    }
    if (nrows)
        p->printed_headers = true;
    // The name column gets "kind/" when several kinds are printed.
    size_t name_col = SIZE_MAX;
    for (size_t i = 0; p->with_kind && i < ncols; i++) {
        json_object *cd = json_object_array_get_idx(cols, i);
        const char *f = jstr(cd, "format"), *t = jstr(cd, "type");
        if (f && t && strcmp(f, "name") == 0 && strcmp(t, "string") == 0) {
            name_col = i;
            break;
        }
    }
    if (!no_headers) {
        if (nrows == 0)
            return;
        bool first = true;
        if (p->with_ns) {
            gputs(p, "NAMESPACE");
            first = false;
        }
        for (size_t i = 0; i < ncols; i++) {
            json_object *cd = json_object_array_get_idx(cols, i), *pr = jget(cd, "priority");
            if (!wide && pr && json_object_get_int64(pr) != 0)
                continue;
            if (!first)
                gputs(p, "\t");
            first = false;
            const char *name = jstr(cd, "name");
            for (const char *s = name ? name : ""; *s; s++) {
                char ch = (char)toupper((unsigned char)*s);
                gput(p, &ch, 1);
            }
        }
        for (size_t i = 0; i < lc->n; i++) {
            if (!first)
                gputs(p, "\t");
            first = false;
            const char *last = strrchr(lc->keys[i], '/');
            for (const char *s = last ? last + 1 : lc->keys[i]; *s; s++) {
                char ch = (char)toupper((unsigned char)*s);
                gput(p, &ch, 1);
            }
        }
        if (o->show_labels) {
            if (!first)
                gputs(p, "\t");
            gputs(p, "LABELS");
        }
        gputs(p, "\n");
    }
    for (size_t r = 0; r < nrows; r++) {
        json_object *row = json_object_array_get_idx(rows, r);
        json_object *cells = jget(row, "cells");
        json_object *meta = jget(jget(row, "object"), "metadata");
        size_t ncells = cells && json_object_is_type(cells, json_type_array)
                            ? json_object_array_length(cells) : 0;
        bool first = true;
        if (p->with_ns) {
            const char *ns = jstr(meta, "namespace");
            gputs(p, ns ? ns : "");
            first = false;
        }
        for (size_t i = 0; i < ncells && i < ncols; i++) {
            json_object *pr = jget(json_object_array_get_idx(cols, i), "priority");
            if (!wide && pr && json_object_get_int64(pr) != 0)
                continue;
            if (!first)
                gputs(p, "\t");
            first = false;
            json_object *cell = json_object_array_get_idx(cells, i);
            if (i == name_col) {
                gputs(p, p->last->lower);
                gputs(p, "/");
            }
            put_cell(p, cell);
        }
        json_object *labels = jget(meta, "labels");
        for (size_t i = 0; i < lc->n; i++) {
            if (!first)
                gputs(p, "\t");
            first = false;
            const char *v = meta ? jstr(labels, lc->keys[i]) : nullptr;
            gputs(p, v ? v : "");
        }
        if (o->show_labels) {
            if (!first)
                gputs(p, "\t");
            if (meta)
                put_labels(p, labels);
        }
        gputs(p, "\n");
    }
}

// ---- Generic printing (-o json|yaml|name; kubectl's printGeneric) ---------------------

// Items of a list get the kind and apiVersion the list implies, as client-go's
// UnstructuredList decoding gives them.
static void fix_items(json_object *list)
{
    const char *lk = jstr(list, "kind"), *av = jstr(list, "apiVersion");
    json_object *items = jget(list, "items");
    if (!items || !json_object_is_type(items, json_type_array))
        return;
    char ik[128] = "";
    if (lk) {
        size_t n = strlen(lk);
        if (n > 4 && strcmp(lk + n - 4, "List") == 0 && n - 4 < sizeof ik) {
            memcpy(ik, lk, n - 4);
            ik[n - 4] = '\0';
        }
    }
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *it = json_object_array_get_idx(items, i);
        if (!json_object_is_type(it, json_type_object))
            continue;
        if (!jstr(it, "kind") && ik[0])
            json_object_object_add(it, "kind", json_object_new_string(ik));
        if (!jstr(it, "apiVersion") && av)
            json_object_object_add(it, "apiVersion", json_object_new_string(av));
    }
}

static void print_name(obuf *out, const kind_info *k, json_object *obj)
{
    const char *kind = jstr(obj, "kind");
    const char *name = jstr(jget(obj, "metadata"), "name");
    if (kind && *kind) {
        for (const char *s = kind; *s; s++)
            putc_(out, (char)tolower((unsigned char)*s));
    } else {
        puts_(out, k->lower);
    }
    putc_(out, '/');
    puts_(out, name ? name : "");
    putc_(out, '\n');
}

static int print_generic(get_run *g, bool single_implied, obuf *out)
{
    get_opts *o = g->o;
    // Flatten: lists become their items.
    json_object *all = json_object_new_array();
    if (!all)
        return -ENOMEM;
    for (size_t i = 0; i < g->nres; i++) {
        json_object *obj = g->res[i].obj;
        json_object *items = jget(obj, "items");
        if (items && json_object_is_type(items, json_type_array)) {
            fix_items(obj);
            for (size_t j = 0; j < json_object_array_length(items); j++)
                json_object_array_add(all, json_object_get(json_object_array_get_idx(items, j)));
        } else {
            json_object_array_add(all, json_object_get(obj));
        }
    }
    size_t n = json_object_array_length(all);
    if (n == 0 && o->ignore_nf) {
        json_object_put(all);
        return 0;
    }
    if (o->mode == OUT_NAME) {
        for (size_t i = 0; i < n; i++) {
            json_object *it = json_object_array_get_idx(all, i);
            const kind_info *k = g->res[0].k;
            const char *kind = jstr(it, "kind");
            for (const kind_info &ki : kinds)
                if (kind && strcmp(kind, ki.kind) == 0)
                    k = &ki;
            print_name(out, k, it);
        }
        json_object_put(all);
        return 0;
    }
    if (single_implied && g->nerrs) {
        json_object_put(all);
        return 0;   // kubectl prints only the error
    }
    json_object *doc;
    if (single_implied && n == 1 && g->nres == 1 && !jget(g->res[0].obj, "items")) {
        doc = json_object_get(json_object_array_get_idx(all, 0));
        json_object_put(all);
    } else {
        doc = json_object_new_object();
        json_object *meta = json_object_new_object();
        if (!doc || !meta) {
            json_object_put(doc);
            json_object_put(meta);
            json_object_put(all);
            return -ENOMEM;
        }
        json_object_object_add(doc, "apiVersion", json_object_new_string("v1"));
        json_object_object_add(doc, "items", all);
        json_object_object_add(doc, "kind", json_object_new_string("List"));
        json_object_object_add(meta, "resourceVersion", json_object_new_string(""));
        json_object_object_add(doc, "metadata", meta);
    }
    int rc = 0;
    if (o->mode == OUT_JSON) {
        go_json_value(out, doc, 0, "    ", true);
        putc_(out, '\n');
    } else {
        rc = print_yaml(out, doc);
    }
    json_object_put(doc);
    return rc;
}

// ---- The command ----------------------------------------------------------------------

static int no_resource_error(void)
{
    fputs("You must specify the type of resource to get. Supported resource types: pods (po), "
          "nodes (no), namespaces (ns).\n\n"
          "error: Required resource not specified.\n"
          "See 'kubexec get -h' for help and examples\n",
          stderr);
    return 1;
}

// Splits the positional arguments into visits, with kubectl's checks and
// messages. 0 or 1.
static int plan(const char **pos, size_t npos, const get_opts *o, visit *v, size_t *nv,
                bool *single_implied)
{
    *nv = 0;
    *single_implied = false;
    if (npos == 0)
        return no_resource_error();
    bool any_slash = false, all_slash = true;
    for (size_t i = 0; i < npos; i++) {
        if (strchr(pos[i], '/'))
            any_slash = true;
        else
            all_slash = false;
    }
    if (any_slash && !all_slash)
        return kx_cli_err("there is no need to specify a resource type as a separate argument "
                          "when passing arguments in resource/name form (e.g. 'kubexec get "
                          "resource/<resource_name>' instead of 'kubexec get resource "
                          "resource/<resource_name>'");
    if (any_slash) {
        for (size_t i = 0; i < npos; i++) {
            const char *s = pos[i], *slash = strchr(s, '/');
            if (strchr(slash + 1, '/'))
                return kx_cli_err("arguments in resource/name form may not have more than one "
                                  "slash");
            if (slash == s || !slash[1])
                return kx_cli_err("arguments in resource/name form must have a single resource "
                                  "and name");
        }
        for (size_t i = 0; i < npos; i++) {
            const char *s = pos[i], *slash = strchr(s, '/');
            const kind_info *k = find_kind(s, (size_t)(slash - s));
            if (!k)
                return no_type(s, (size_t)(slash - s));
            v[(*nv)++] = {k, slash + 1};
        }
        *single_implied = npos == 1;
    } else {
        const kind_info *types[8];
        size_t nt = 0;
        for (const char *s = pos[0];;) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            const kind_info *k = find_kind(s, len);
            if (!k)
                return no_type(s, len);
            bool dup = false;
            for (size_t i = 0; i < nt; i++)
                dup |= types[i] == k;
            if (!dup && nt < 8)
                types[nt++] = k;
            if (!comma)
                break;
            s = comma + 1;
        }
        for (size_t t = 0; t < nt; t++) {
            if (npos == 1) {
                v[(*nv)++] = {types[t], nullptr};
                continue;
            }
            for (size_t i = 1; i < npos; i++)
                v[(*nv)++] = {types[t], pos[i]};
        }
        *single_implied = nt == 1 && npos == 2;
    }
    bool named = v[0].name != nullptr;
    if (named && o->selector && *o->selector)
        return kx_cli_err("name cannot be provided when a selector is specified");
    for (size_t i = 0; named && o->all_ns && i < *nv; i++)
        if (v[i].k->namespaced)
            return kx_cli_err("a resource cannot be retrieved by name across all namespaces");
    return 0;
}

int kx_cmd_get(kx_cli *c, int argc, char **argv)
{
    static get_opts o;   // big (the selector); one command per process
    memset(&o, 0, sizeof o);
    const char *output = nullptr;
    bool watch = false, watch_only = false;
    const char *sort_by = nullptr, *template_ = nullptr;
    o.chunk = 500;
    const kx_flag flags[] = {
        {"output", 'o', KXF_STRING, &output},
        {"all-namespaces", 'A', KXF_BOOL, &o.all_ns},
        {"selector", 'l', KXF_STRING, &o.selector},
        {"field-selector", 0, KXF_STRING, &o.field_selector},
        {"no-headers", 0, KXF_BOOL, &o.no_headers},
        {"show-labels", 0, KXF_BOOL, &o.show_labels},
        {"show-kind", 0, KXF_BOOL, &o.show_kind},
        {"label-columns", 'L', KXF_STRING, &o.label_cols},
        {"ignore-not-found", 0, KXF_BOOL, &o.ignore_nf},
        {"chunk-size", 0, KXF_INT, &o.chunk},
        {"watch", 'w', KXF_BOOL, &watch},
        {"watch-only", 0, KXF_BOOL, &watch_only},
        {"sort-by", 0, KXF_STRING, &sort_by},
        {"template", 0, KXF_STRING, &template_},
    };
    const char *pos[GET_MAX_ARGS];
    size_t npos;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, GET_MAX_ARGS,
                     &npos, nullptr, nullptr))
        return 1;
    if (!output || !*output)
        o.mode = OUT_TABLE;
    else if (strcmp(output, "wide") == 0)
        o.mode = OUT_WIDE;
    else if (strcmp(output, "json") == 0)
        o.mode = OUT_JSON;
    else if (strcmp(output, "yaml") == 0)
        o.mode = OUT_YAML;
    else if (strcmp(output, "name") == 0)
        o.mode = OUT_NAME;
    else
        return kx_cli_err("unable to match a printer suitable for the output format \"%s\", "
                          "allowed formats are: json,name,wide,yaml",
                          output);
    if (watch || watch_only)
        return kx_cli_err("--watch is not supported by kubexec");
    if (sort_by && *sort_by)
        return kx_cli_err("--sort-by is not supported by kubexec");
    if (template_ && *template_)
        return kx_cli_err("--template is not supported by kubexec");
    label_cols lc = {};
    if (o.label_cols && *o.label_cols) {
        if (kx_strlcpy(lc.buf, o.label_cols, sizeof lc.buf) < 0)
            return kx_cli_err("--label-columns value too long");
        for (char *save = nullptr, *t = strtok_r(lc.buf, ",", &save); t;
             t = strtok_r(nullptr, ",", &save)) {
            if (lc.n >= sizeof lc.keys / sizeof lc.keys[0])
                return kx_cli_err("too many --label-columns");
            lc.keys[lc.n++] = t;
        }
    }
    static visit v[GET_MAX_VISITS];
    size_t nv;
    bool single;
    if (plan(pos, npos, &o, v, &nv, &single))
        return 1;
    if (o.selector && *o.selector) {
        char why[600];
        int r = kx_lsel_parse(o.selector, &o.sel, why, sizeof why);
        if (r == -EINVAL) {
            fprintf(stderr, "error: unable to parse label selector \"%s\": %s\n", o.selector, why);
            return 1;
        }
        if (r < 0)
            return kx_cli_err("%s", why);
        o.has_sel = true;
    }
    get_run g = {};
    g.c = c;
    g.o = &o;
    if (kx_cli_http_open(c, &g.h))
        return 1;
    int rc = 0;
    for (size_t i = 0; i < nv && !rc; i++)
        rc = fetch(&g, &v[i]);
    kx_cli_http_close(g.h);
    if (!rc) {
        obuf out = {};
        if (o.mode == OUT_TABLE || o.mode == OUT_WIDE) {
            tprint p = {};
            p.o = &o;
            p.with_kind = o.show_kind;
            for (size_t i = 1; i < g.nres; i++)
                p.with_kind |= g.res[i].k != g.res[0].k;
            for (size_t i = 0; i < g.nres; i++)
                print_table(&p, g.res[i].k, g.res[i].obj, &lc);
            if (flush_group(&p) < 0 || p.group_oom)
                p.out.oom = true;
            kx_buf_free(&p.group);
            free(p.last_cols);
            rc = flush_out(&p.out);
            kx_buf_free(&p.out.b);
            if (!rc && p.written == 0 && !o.ignore_nf && g.nerrs == 0) {
                bool all_namespaced = !o.all_ns;
                for (size_t i = 0; i < nv; i++)
                    all_namespaced &= v[i].k->namespaced;
                if (all_namespaced)
                    fprintf(stderr, "No resources found in %s namespace.\n", c->cfg.namespace_);
                else
                    fputs("No resources found\n", stderr);
            }
        } else {
            int pr = print_generic(&g, single, &out);
            if (pr == -EILSEQ)
                rc = kx_cli_err("yaml: control characters are not allowed");
            else if (pr < 0)
                rc = kx_cli_err("cannot print the answer as %s", output);
            else
                rc = flush_out(&out);
        }
        kx_buf_free(&out.b);
    }
    for (size_t i = 0; i < g.nerrs; i++) {
        if (!rc) {
            kx_cli_resp r = {};
            r.status = g.errs[i].status;
            r.body = g.errs[i].body;
            r.body_len = g.errs[i].len;
            kx_cli_api_error(&r);
        }
        free(g.errs[i].body);
    }
    if (g.nerrs)
        rc = 1;
    for (size_t i = 0; i < g.nres; i++)
        json_object_put(g.res[i].obj);
    free(g.res);
    return rc;
}

// ---- kubectl version ------------------------------------------------------------------

#if defined(__x86_64__)
#define KX_PLATFORM "linux/amd64"
#elif defined(__aarch64__)
#define KX_PLATFORM "linux/arm64"
#elif defined(__arm__)
#define KX_PLATFORM "linux/arm"
#else
#define KX_PLATFORM "linux/unknown"
#endif

#if defined(__clang__)
#define KX_COMPILER "clang"
#else
#define KX_COMPILER "gcc"
#endif

// k8s.io/apimachinery/pkg/version.Info in its field order; the omitempty ones
// only when set.
static json_object *version_info(json_object *src)
{
    static const struct {
        const char *key;
        bool omitempty;
    } fields[] = {{"major", false}, {"minor", false}, {"emulationMajor", true},
                  {"emulationMinor", true}, {"minCompatibilityMajor", true},
                  {"minCompatibilityMinor", true}, {"gitVersion", false}, {"gitCommit", false},
                  {"gitTreeState", false}, {"buildDate", false}, {"goVersion", false},
                  {"compiler", false}, {"platform", false}};
    json_object *o = json_object_new_object();
    for (const auto &f : fields) {
        const char *v = jstr(src, f.key);
        if (f.omitempty && (!v || !*v))
            continue;
        json_object_object_add(o, f.key, json_object_new_string(v ? v : ""));
    }
    return o;
}

static json_object *client_info(void)
{
    json_object *src = json_object_new_object();
    // "0.1.0" -> major "0", minor "1".
    char major[16] = "", minor[16] = "";
    sscanf(KX_CLI_VERSION, "%15[0-9].%15[0-9]", major, minor);
    json_object_object_add(src, "major", json_object_new_string(major));
    json_object_object_add(src, "minor", json_object_new_string(minor));
    json_object_object_add(src, "gitVersion", json_object_new_string("v" KX_CLI_VERSION));
    json_object_object_add(src, "compiler", json_object_new_string(KX_COMPILER));
    json_object_object_add(src, "platform", json_object_new_string(KX_PLATFORM));
    json_object *o = version_info(src);
    json_object_put(src);
    return o;
}

int kx_cmd_version(kx_cli *c, int argc, char **argv)
{
    bool client_only = false;
    const char *output = nullptr;
    const kx_flag flags[] = {
        {"client", 0, KXF_BOOL, &client_only},
        {"output", 'o', KXF_STRING, &output},
    };
    const char *pos[16];
    size_t npos;
    if (kx_cli_parse(c, argc, argv, flags, sizeof flags / sizeof flags[0], pos, 16, &npos,
                     nullptr, nullptr))
        return 1;
    if (npos) {
        fputs("error: extra arguments: [", stderr);
        for (size_t i = 0; i < npos; i++)
            fprintf(stderr, "%s%s", i ? " " : "", pos[i]);
        fputs("]\n", stderr);
        return 1;
    }
    bool json = output && strcmp(output, "json") == 0, yaml = output && strcmp(output, "yaml") == 0;
    if (output && *output && !json && !yaml)
        return kx_cli_err("--output must be 'yaml' or 'json'");
    json_object *server = nullptr;
    int rc = 0;
    if (!client_only) {
        // A bad kubeconfig fails before anything is printed, as in kubectl.
        if (kx_cli_setup(c))
            return 1;
        if (!json && !yaml) {
            printf("Client Version: v%s\n", KX_CLI_VERSION);
            fflush(stdout);
        }
        kx_cli_http *h;
        kx_cli_resp r;
        if (kx_cli_get(c, "/version", &r, &h)) {
            rc = 1;
        } else {
            if (r.status != 200) {
                rc = kx_cli_api_error(&r);
            } else {
                json_object *src = kx_cli_json(r.body, r.body_len);
                if (!src || !json_object_is_type(src, json_type_object))
                    rc = kx_cli_err("the server's /version answer is not a JSON object");
                else
                    server = version_info(src);
                json_object_put(src);
            }
            kx_cli_http_close(h);
        }
    } else if (!json && !yaml) {
        printf("Client Version: v%s\n", KX_CLI_VERSION);
    }
    if (json || yaml) {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "clientVersion", client_info());
        if (server)
            json_object_object_add(doc, "serverVersion", json_object_get(server));
        obuf out = {};
        if (json) {
            go_json_value(&out, doc, 0, "  ", false);
            putc_(&out, '\n');
        } else if (print_yaml(&out, doc) == 0) {
            putc_(&out, '\n');   // kubectl's Fprintln after the document
        }
        json_object_put(doc);
        if (flush_out(&out))
            rc = 1;
        kx_buf_free(&out.b);
    } else if (server) {
        printf("Server Version: %s\n", jstr(server, "gitVersion"));
    }
    json_object_put(server);
    return rc;
}
