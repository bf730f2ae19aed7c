// Label selectors; see kubexec/labels.h. The grammar and the error texts
// follow k8s.io/apimachinery/pkg/labels (selector.go's lexer and parser).
#include "kubexec/labels.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The value of label `key`, or null when absent (or not a string).
static const char *label(json_object *labels, const char *key)
{
    json_object *v = nullptr;
    if (!labels || !json_object_object_get_ex(labels, key, &v) || !json_object_is_type(v, json_type_string))
        return nullptr;
    return json_object_get_string(v);
}

enum tok_kind { T_EOS, T_IDENT, T_NOT, T_EQ, T_DEQ, T_NEQ, T_GT, T_LT, T_OPEN, T_CLOSE, T_COMMA,
                T_IN, T_NOTIN };

struct lexer {
    const char *s;
    size_t pos;
    kx_lsel *sel;
};

static bool sel_special(char c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

// Next token; *text is its spelling (in the pool).
static tok_kind lex(lexer *l, const char **text)
{
    const char *s = l->s;
    while (s[l->pos] && isspace((unsigned char)s[l->pos]))
        l->pos++;
    size_t start = l->pos;
    tok_kind k;
    char c = s[l->pos];
    if (!c) {
        *text = "";
        return T_EOS;
    }
    if (sel_special(c)) {
        char n = s[l->pos + 1];
        if (c == '!' && n == '=')
            k = T_NEQ, l->pos += 2;
        else if (c == '=' && n == '=')
            k = T_DEQ, l->pos += 2;
        else {
            l->pos++;
            k = c == '!' ? T_NOT : c == '=' ? T_EQ : c == '(' ? T_OPEN : c == ')' ? T_CLOSE
                : c == ',' ? T_COMMA : c == '>' ? T_GT : T_LT;
        }
    } else {
        while (s[l->pos] && !isspace((unsigned char)s[l->pos]) && !sel_special(s[l->pos]))
            l->pos++;
        k = T_IDENT;
    }
    size_t len = l->pos - start;
    kx_lsel *sel = l->sel;
    char *t = sel->pool + sel->used;
    memcpy(t, s + start, len);
    t[len] = '\0';
    sel->used += len + 1;
    *text = t;
    if (k == T_IDENT && strcmp(t, "in") == 0)
        k = T_IN;
    else if (k == T_IDENT && strcmp(t, "notin") == 0)
        k = T_NOTIN;
    return k;
}

static tok_kind peek(lexer *l)
{
    lexer copy = *l;
    size_t used = l->sel->used;
    const char *t;
    tok_kind k = lex(&copy, &t);
    l->sel->used = used;
    return k;
}

struct perr {
    char *why;
    size_t whylen;
};

static int sel_fail(perr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sel_fail(perr *e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->whylen)
        snprintf(e->why, e->whylen, "unable to parse requirement: %s", msg);
    return -EINVAL;
}

static int sel_limit(perr *e, const char *fmt, int n)
{
    if (e->whylen)
        snprintf(e->why, e->whylen, fmt, n);
    return -EMSGSIZE;
}

int kx_lsel_parse(const char *s, kx_lsel *sel, char *why, size_t whylen)
{
    perr e = {why, whylen};
    if (whylen)
        why[0] = '\0';
    sel->n = 0;
    sel->used = 0;
    if (strlen(s) > KX_LSEL_MAX_LEN)
        return sel_limit(&e, "label selector longer than %d bytes", KX_LSEL_MAX_LEN);
    lexer l = {s, 0, sel};
    const char *t;
    if (peek(&l) == T_EOS)
        return 0;
    for (;;) {
        if (sel->n >= KX_LSEL_MAX_REQS)
            return sel_limit(&e, "label selector with more than %d requirements", KX_LSEL_MAX_REQS);
        kx_lsel_req *r = &sel->reqs[sel->n];
        memset(r, 0, sizeof *r);
        tok_kind k = lex(&l, &t);
        bool not_exists = false;
        if (k == T_NOT) {
            not_exists = true;
            k = lex(&l, &t);
        }
        if (k != T_IDENT)
            return sel_fail(&e, "found '%s', expected: !, identifier", t);
        r->key = t;
        tok_kind next = peek(&l);
        if (next == T_EOS || next == T_COMMA) {
            r->op = not_exists ? KX_LSEL_NOT_EXISTS : KX_LSEL_EXISTS;
        } else if (not_exists) {
            return sel_fail(&e, "found '%s', expected: ',' or 'end of string'", t);
        } else {
            k = lex(&l, &t);
            switch (k) {
            case T_EQ:
            case T_DEQ:
            case T_NEQ: {
                r->op = k == T_NEQ ? KX_LSEL_NEQ : KX_LSEL_EQ;
                tok_kind vk = peek(&l);
                if (vk == T_EOS || vk == T_COMMA) {
                    r->vals[r->nvals++] = "";
                } else {
                    vk = lex(&l, &t);
                    if (vk != T_IDENT && vk != T_IN && vk != T_NOTIN)
                        return sel_fail(&e, "found '%s', expected: identifier", t);
                    r->vals[r->nvals++] = t;
                }
                break;
            }
            case T_IN:
            case T_NOTIN: {
                r->op = k == T_IN ? KX_LSEL_IN : KX_LSEL_NOTIN;
                if (lex(&l, &t) != T_OPEN)
                    return sel_fail(&e, "found '%s', expected: '('", t);
                bool want_value = true;
                for (;;) {
                    tok_kind vk = lex(&l, &t);
                    if (vk == T_CLOSE) {
                        if (want_value && r->nvals < KX_LSEL_MAX_VALS)
                            r->vals[r->nvals++] = "";
                        break;
                    }
                    if (vk == T_COMMA) {
                        if (want_value && r->nvals < KX_LSEL_MAX_VALS)
                            r->vals[r->nvals++] = "";
                        want_value = true;
                        continue;
                    }
                    if ((vk != T_IDENT && vk != T_IN && vk != T_NOTIN) || !want_value)
                        return sel_fail(&e, "found '%s', expected: ',', ')' or identifier", t);
                    if (r->nvals >= KX_LSEL_MAX_VALS)
                        return sel_limit(&e, "label selector set with more than %d values",
                                         KX_LSEL_MAX_VALS);
                    r->vals[r->nvals++] = t;
                    want_value = false;
                }
                break;
            }
            case T_GT:
            case T_LT: {
                r->op = k == T_GT ? KX_LSEL_GT : KX_LSEL_LT;
                if (lex(&l, &t) != T_IDENT)
                    return sel_fail(&e, "found '%s', expected: identifier", t);
                char *end;
                errno = 0;
                r->num = strtoll(t, &end, 10);
                if (!*t || *end || errno)
                    return sel_fail(&e, "for 'Gt', 'Lt' operators, the value must be an integer");
                r->vals[r->nvals++] = t;
                break;
            }
            default:
                return sel_fail(&e, "found '%s', expected: in, notin, =, ==, !=, gt, lt", t);
            }
        }
        sel->n++;
        k = lex(&l, &t);
        if (k == T_EOS)
            return 0;
        if (k != T_COMMA)
            return sel_fail(&e, "found '%s', expected: ',' or 'end of string'", t);
    }
}

bool kx_lsel_match(const kx_lsel *sel, json_object *labels)
{
    for (size_t i = 0; i < sel->n; i++) {
        const kx_lsel_req *r = &sel->reqs[i];
        const char *v = label(labels, r->key);
        bool in = false;
        for (size_t j = 0; v && j < r->nvals; j++)
            in |= strcmp(v, r->vals[j]) == 0;
        bool ok;
        switch (r->op) {
        case KX_LSEL_EXISTS: ok = v != nullptr; break;
        case KX_LSEL_NOT_EXISTS: ok = v == nullptr; break;
        case KX_LSEL_EQ:
        case KX_LSEL_IN: ok = in; break;
        case KX_LSEL_NEQ:
        case KX_LSEL_NOTIN: ok = !in; break;
        default: {
            char *end;
            long long n = v ? strtoll(v, &end, 10) : 0;
            ok = v && *v && !*end && (r->op == KX_LSEL_GT ? n > r->num : n < r->num);
        }
        }
        if (!ok)
            return false;
    }
    return true;
}

