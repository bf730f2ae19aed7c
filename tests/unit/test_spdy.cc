// Unit tests for kubexec/spdy.h: dictionary, protocol.md §2.9 byte examples,
// client<->server round trips fed whole / byte by byte / at random splits,
// and malformed input.
//
// With KX_SPDY_CORPUS_DIR=<dir> set, the test also writes seed inputs for
// tests/fuzz/corpus/fuzz_spdy_frames and .../fuzz_spdy_headers into
// <dir>/fuzz_spdy_frames and <dir>/fuzz_spdy_headers (directories must exist).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// cmocka.h has no extern "C" guard of its own.
extern "C" {
#include <cmocka.h>
}
#include <zlib.h>

#include "kubexec/spdy.h"
#include "kubexec/util.h"

// ---- Fixture -----------------------------------------------------------------

enum feed_mode { WHOLE, BYTES, RANDOM, NMODES };
static const char *const mode_names[] = {"whole", "bytes", "random"};

struct peer {
    kx_spdy_session *s;
    kx_buf out;           // every frame it sent, concatenated
    size_t frames;        // number of send calls
    char log[16384];      // events, one per line
    size_t log_len;
    kx_buf data[16];      // DATA received per stream id (< 16)
    size_t data_calls;
    bool auto_reply;      // reply (empty block) to SYN_STREAM inside on_stream
    int send_rc;          // value send returns
};

static void logf(peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf(peer *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->log + p->log_len, sizeof p->log - p->log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->log_len += (size_t)n;
    assert_true(p->log_len < sizeof p->log);
}

static int t_send(void *u, const uint8_t *hdr, size_t hl, const uint8_t *pl, size_t n)
{
    peer *p = (peer *)u;
    if (p->send_rc < 0)
        return p->send_rc;
    assert_int_equal(hl, 8);
    assert_int_equal(kx_get_be24(hdr + 5), n);
    assert_int_equal(kx_buf_append(&p->out, hdr, hl, 1 << 26), 0);
    if (n)
        assert_int_equal(kx_buf_append(&p->out, pl, n, 1 << 26), 0);
    p->frames++;
    return 0;
}

static void log_nv(peer *p, const kx_spdy_nv *nv, size_t n)
{
    logf(p, "{");
    for (size_t i = 0; i < n; i++) {
        logf(p, "%s%.*s=", i ? "," : "", (int)nv[i].name_len, nv[i].name);
        for (size_t k = 0; k < nv[i].value_len; k++)
            logf(p, "%c", nv[i].value[k] ? nv[i].value[k] : '|'); // NUL joins values
    }
    logf(p, "}");
}

static void t_stream(void *u, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin)
{
    peer *p = (peer *)u;
    logf(p, "S%u%s", id, fin ? "f" : "");
    log_nv(p, nv, n);
    logf(p, "\n");
    if (p->auto_reply)
        assert_int_equal(kx_spdy_reply(p->s, id, nullptr, 0, false), 0);
}

static void t_reply(void *u, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin)
{
    peer *p = (peer *)u;
    logf(p, "R%u%s", id, fin ? "f" : "");
    log_nv(p, nv, n);
    logf(p, "\n");
}

static void t_data(void *u, uint32_t id, const uint8_t *d, size_t n)
{
    peer *p = (peer *)u;
    assert_true(id < 16);
    assert_true(n > 0);
    assert_int_equal(kx_buf_append(&p->data[id], d, n, 1 << 26), 0);
    p->data_calls++;
}

static void t_fin(void *u, uint32_t id)
{
    logf((peer *)u, "F%u\n", id);
}

static void t_rst(void *u, uint32_t id, uint32_t status)
{
    logf((peer *)u, "X%u:%u\n", id, status);
}

static void t_goaway(void *u, uint32_t last, uint32_t status)
{
    logf((peer *)u, "G%u:%u\n", last, status);
}

static const kx_spdy_callbacks test_cb = {t_send, t_stream, t_reply, t_data, t_fin, t_rst, t_goaway};

static peer *peer_new(bool server)
{
    peer *p = (peer *)calloc(1, sizeof *p);
    assert_non_null(p);
    p->s = kx_spdy_session_new(server, &test_cb, p);
    assert_non_null(p->s);
    p->auto_reply = server;
    return p;
}

static void peer_free(peer *p)
{
    kx_spdy_session_free(p->s);
    kx_buf_free(&p->out);
    for (auto &d : p->data)
        kx_buf_free(&d);
    free(p);
}

static bool log_is(const peer *p, const char *want)
{
    if (strlen(want) == p->log_len && memcmp(p->log, want, p->log_len) == 0)
        return true;
    fprintf(stderr, "log mismatch\n--- want\n%s--- got\n%.*s---\n", want, (int)p->log_len, p->log);
    return false;
}

static uint32_t rng_state = 1;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

// Feeds bytes in the given mode; returns the first negative result or 0.
static int feed(kx_spdy_session *s, const uint8_t *p, size_t len, int mode)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off;
        if (mode == BYTES)
            n = 1;
        else if (mode == RANDOM)
            n = 1 + rnd() % (len / 3 + 1);
        if (n > len - off)
            n = len - off;
        int rc = kx_spdy_recv(s, p + off, n);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

// Moves everything `from` sent into `to`.
static int deliver(peer *from, peer *to, int mode)
{
    kx_buf b = from->out;
    from->out = kx_buf{};
    int rc = feed(to->s, b.data, b.len, mode);
    kx_buf_free(&b);
    return rc;
}

static void pump(peer *c, peer *s, int mode)
{
    while (c->out.len || s->out.len) {
        assert_int_equal(deliver(c, s, mode), 0);
        assert_int_equal(deliver(s, c, mode), 0);
    }
}

static size_t hex(uint8_t *out, const char *h)
{
    size_t n = 0;
    while (*h) {
        if (*h == ' ') {
            h++;
            continue;
        }
        unsigned v;
        assert_int_equal(sscanf(h, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

// A peer-side compressor for hand-built frames.
struct zc {
    z_stream z;
};

static void zc_init(zc *c)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(deflateInit(&c->z, 9), Z_OK);
    assert_int_equal(deflateSetDictionary(&c->z, kx_spdy_dict, KX_SPDY_DICT_LEN), Z_OK);
}

static size_t zc_block(zc *c, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    c->z.next_in = (Bytef *)in;
    c->z.avail_in = (uInt)n;
    c->z.next_out = out;
    c->z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&c->z, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(c->z.avail_in, 0);
    assert_true(c->z.avail_out > 0);
    return cap - c->z.avail_out;
}

// Builds an uncompressed NV block from name,value pairs (null-terminated list).
static size_t nv_block(uint8_t *out, const char *const *kv)
{
    size_t n = 0, off = 4;
    for (; kv[2 * n]; n++) {
        for (int k = 0; k < 2; k++) {
            size_t l = strlen(kv[2 * n + k]);
            kx_put_be32(out + off, (uint32_t)l);
            memcpy(out + off + 4, kv[2 * n + k], l);
            off += 4 + l;
        }
    }
    kx_put_be32(out, (uint32_t)n);
    return off;
}

static size_t ctl_frame(uint8_t *out, uint16_t type, uint8_t flags, const uint8_t *p, size_t n)
{
    kx_put_be16(out, 0x8003);
    kx_put_be16(out + 2, type);
    out[4] = flags;
    kx_put_be24(out + 5, (uint32_t)n);
    if (n)
        memcpy(out + 8, p, n);
    return 8 + n;
}

// SYN_STREAM (type 1) / SYN_REPLY / HEADERS with a compressed block.
static size_t hdr_frame(uint8_t *out, uint16_t type, uint8_t flags, uint32_t id, const uint8_t *block, size_t bl)
{
    size_t fixed = type == KX_SPDY_SYN_STREAM ? 10 : 4;
    uint8_t *p = out + 8;
    memset(p, 0, fixed);
    kx_put_be32(p, id);
    memcpy(p + fixed, block, bl);
    kx_put_be16(out, 0x8003);
    kx_put_be16(out + 2, type);
    out[4] = flags;
    kx_put_be24(out + 5, (uint32_t)(fixed + bl));
    return 8 + fixed + bl;
}

static const char *corpus_dir(void)
{
    return getenv("KX_SPDY_CORPUS_DIR");
}

static void corpus_write(const char *target, const char *name, const uint8_t *p, size_t n)
{
    const char *d = corpus_dir();
    if (!d)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", d, target, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

// ---- Dictionary and byte examples ---------------------------------------------

static void dictionary_length_and_adler(void **)
{
    assert_int_equal(sizeof kx_spdy_dict, 1423);
    assert_int_equal(KX_SPDY_DICT_LEN, 1423);
    uLong a = adler32(adler32(0, nullptr, 0), kx_spdy_dict, KX_SPDY_DICT_LEN);
    assert_int_equal(a, 0xE3C6A7C2u);
    assert_memory_equal(kx_spdy_dict, "\0\0\0\7options", 11);
    assert_memory_equal(kx_spdy_dict + 1423 - 6, "enq=0.", 6);
}

// The client SYN_STREAMs of protocol.md §2.9: stream 1 {streamtype: error}
// (first block, zlib header), then stream 3 {streamtype: stdin} (13-byte block
// that only inflates with the shared history).
static const char doc_syn1[] =
    "80 03 00 01 00 00 00 28 00 00 00 01 00 00 00 00 00 00"
    " 78 f9 e3 c6 a7 c2 02 a6 23 46 70 3a 2b 29 4a 4d cc 85 16 25 ac a9 a0 80 06 00 00 00 ff ff";
static const char doc_syn3[] = "80 03 00 01 00 00 00 17 00 00 00 03 00 00 00 00 00 00"
                               " c2 2e 55 5c 02 cc 2e 00 00 00 00 ff ff";

static void doc_syn_stream_decodes(void **)
{
    uint8_t in[128];
    size_t n = hex(in, doc_syn1);
    assert_int_equal(n, 48);
    n += hex(in + n, doc_syn3);
    assert_int_equal(n, 48 + 31);
    corpus_write("fuzz_spdy_frames", "doc_syn_1_3", in, n);
    for (int mode = 0; mode < NMODES; mode++) {
        peer *s = peer_new(true);
        s->auto_reply = false;
        assert_int_equal(feed(s->s, in, n, mode), 0);
        assert_true(log_is(s, "S1{streamtype=error}\nS3{streamtype=stdin}\n"));
        assert_int_equal(s->out.len, 0); // nothing is sent unprompted
        peer_free(s);
    }
}

static size_t inflate_all(z_stream *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int rc = inflate(z, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
        assert_int_equal(z->adler, KX_SPDY_DICT_ADLER);
        assert_int_equal(inflateSetDictionary(z, kx_spdy_dict, KX_SPDY_DICT_LEN), Z_OK);
        rc = inflate(z, Z_SYNC_FLUSH);
    }
    assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
    assert_int_equal(z->avail_in, 0);
    return cap - z->avail_out;
}

static void doc_syn_reply_encodes(void **)
{
    uint8_t in[128];
    size_t n = hex(in, doc_syn1);
    n += hex(in + n, doc_syn3);
    peer *s = peer_new(true);
    s->auto_reply = false;
    assert_int_equal(kx_spdy_recv(s->s, in, n), 0);
    assert_int_equal(kx_spdy_reply(s->s, 1, nullptr, 0, false), 0);
    assert_int_equal(kx_spdy_reply(s->s, 3, nullptr, 0, false), 0);
    assert_int_equal(s->frames, 2);

    const uint8_t *f = s->out.data;
    size_t l1 = 8 + kx_get_be24(f + 5);
    assert_memory_equal(f, "\x80\x03\x00\x02\x00", 5);
    assert_memory_equal(f + 8, "\x00\x00\x00\x01", 4);
    static const uint8_t zhdr[] = {0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2};
    assert_memory_equal(f + 12, zhdr, sizeof zhdr);
    const uint8_t *f2 = f + l1;
    size_t l2 = 8 + kx_get_be24(f2 + 5);
    assert_int_equal(l1 + l2, s->out.len);
    assert_memory_equal(f2, "\x80\x03\x00\x02\x00", 5);
    assert_memory_equal(f2 + 8, "\x00\x00\x00\x03", 4);
    // Later blocks carry no zlib header.
    assert_true(f2[12] != 0x78);

    z_stream z = {};
    assert_int_equal(inflateInit(&z), Z_OK);
    uint8_t plain[64];
    assert_int_equal(inflate_all(&z, f + 12, l1 - 12, plain, sizeof plain), 4);
    assert_memory_equal(plain, "\0\0\0\0", 4);
    assert_int_equal(inflate_all(&z, f2 + 12, l2 - 12, plain, sizeof plain), 4);
    assert_memory_equal(plain, "\0\0\0\0", 4);
    inflateEnd(&z);
    // Our SYN_REPLY ends in the sync-flush marker, never Z_FINISH.
    assert_memory_equal(f + l1 - 4, "\x00\x00\xff\xff", 4);
    peer_free(s);
}

static void doc_simple_frames(void **)
{
    uint8_t want[64];
    peer *c = peer_new(false);
    uint32_t id;
    // Streams 1, 3, 5 on the client.
    for (int i = 0; i < 3; i++)
        assert_int_equal(kx_spdy_open(c->s, nullptr, 0, false, &id), 0);
    assert_int_equal(id, 5);
    c->out.len = 0;
    assert_int_equal(kx_spdy_data(c->s, 5, (const uint8_t *)"hi\n", 3, false), 0);
    assert_int_equal(c->out.len, hex(want, "00 00 00 05 00 00 00 03 68 69 0a"));
    assert_memory_equal(c->out.data, want, c->out.len);
    c->out.len = 0;
    assert_int_equal(kx_spdy_data(c->s, 3, nullptr, 0, true), 0);
    assert_int_equal(c->out.len, hex(want, "00 00 00 03 01 00 00 00"));
    assert_memory_equal(c->out.data, want, c->out.len);
    c->out.len = 0;
    assert_int_equal(kx_spdy_ping(c->s, 1), 0);
    assert_int_equal(c->out.len, hex(want, "80 03 00 06 00 00 00 04 00 00 00 01"));
    assert_memory_equal(c->out.data, want, c->out.len);
    c->out.len = 0;
    assert_int_equal(kx_spdy_rst(c->s, 5, KX_SPDY_CANCEL), 0);
    assert_int_equal(c->out.len, hex(want, "80 03 00 03 00 00 00 08 00 00 00 05 00 00 00 05"));
    assert_memory_equal(c->out.data, want, c->out.len);
    // Stream 5 is forgotten after RST.
    assert_int_equal(kx_spdy_data(c->s, 5, (const uint8_t *)"x", 1, false), -EINVAL);
    peer_free(c);

    // GOAWAY last 7: a server that received stream 7.
    peer *s = peer_new(true);
    s->auto_reply = false;
    uint8_t in[64], block[64], plain[64];
    zc z;
    zc_init(&z);
    static const char *const kv[] = {"streamtype", "error", nullptr};
    size_t bl = zc_block(&z, plain, nv_block(plain, kv), block, sizeof block);
    size_t n = hdr_frame(in, KX_SPDY_SYN_STREAM, 0, 7, block, bl);
    assert_int_equal(kx_spdy_recv(s->s, in, n), 0);
    assert_int_equal(kx_spdy_goaway(s->s, KX_SPDY_GOAWAY_OK), 0);
    assert_int_equal(s->out.len, hex(want, "80 03 00 07 00 00 00 08 00 00 00 07 00 00 00 00"));
    assert_memory_equal(s->out.data, want, s->out.len);
    // GOAWAY is the last frame.
    assert_int_equal(kx_spdy_ping(s->s, 2), -EPIPE);
    assert_int_equal(kx_spdy_reply(s->s, 7, nullptr, 0, false), -EPIPE);
    assert_int_equal(kx_spdy_goaway(s->s, 0), -EPIPE);
    deflateEnd(&z.z);
    peer_free(s);
}

// ---- Round trips --------------------------------------------------------------

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 131 + seed) ^ (i >> 8));
}

static void round_trip_mode(int mode, uint32_t seed)
{
    rng_state = seed;
    peer *c = peer_new(false), *s = peer_new(true);
    static const char *const v1 = "error";
    kx_spdy_nv nv[2] = {{"streamtype", 10, v1, 5}, {"x-multi", 7, "a\0b", 3}};
    uint32_t id1, id3, id5;
    assert_int_equal(kx_spdy_open(c->s, nv, 2, false, &id1), 0);
    nv[0].value = "stdin";
    nv[0].value_len = 5;
    assert_int_equal(kx_spdy_open(c->s, nv, 1, false, &id3), 0);
    nv[0].value = "stdout";
    nv[0].value_len = 6;
    assert_int_equal(kx_spdy_open(c->s, nv, 1, false, &id5), 0);
    assert_int_equal(id1, 1);
    assert_int_equal(id3, 3);
    assert_int_equal(id5, 5);
    pump(c, s, mode);
    // The NUL-joined value stays one value.
    assert_true(log_is(s, "S1{streamtype=error,x-multi=a|b}\nS3{streamtype=stdin}\nS5{streamtype=stdout}\n"));
    assert_true(log_is(c, "R1{}\nR3{}\nR5{}\n"));
    c->log_len = s->log_len = 0;

    // Large data both ways: split into <=32 KiB frames.
    static uint8_t big[100000];
    fill_pattern(big, sizeof big, 7);
    size_t before = c->frames;
    assert_int_equal(kx_spdy_data(c->s, 3, big, sizeof big, false), 0);
    assert_int_equal(c->frames - before, 4); // 32768 * 3 + 1696
    assert_int_equal(kx_get_be24(c->out.data + 5), 32768);
    assert_int_equal(kx_spdy_data(c->s, 3, nullptr, 0, true), 0);
    before = s->frames;
    assert_int_equal(kx_spdy_data(s->s, 5, big, sizeof big, true), 0);
    assert_int_equal(s->frames - before, 4);
    assert_int_equal(kx_spdy_data(s->s, 1, (const uint8_t *)"st", 2, false), 0);
    pump(c, s, mode);
    assert_int_equal(s->data[3].len, sizeof big);
    assert_memory_equal(s->data[3].data, big, sizeof big);
    assert_int_equal(c->data[5].len, sizeof big);
    assert_memory_equal(c->data[5].data, big, sizeof big);
    assert_int_equal(c->data[1].len, 2);
    if (mode == BYTES)
        assert_true(s->data_calls >= sizeof big); // delivered as bytes arrive, not per frame
    assert_true(log_is(s, "F3\n"));
    assert_true(log_is(c, "F5\n"));
    c->log_len = s->log_len = 0;

    // A side that FIN'd may not send DATA again.
    assert_int_equal(kx_spdy_data(c->s, 3, big, 1, false), -EINVAL);
    assert_int_equal(kx_spdy_data(s->s, 5, big, 1, true), -EINVAL);
    // Server FINs 3 (both sides closed: forgotten), client resets 5.
    assert_int_equal(kx_spdy_data(s->s, 3, nullptr, 0, true), 0);
    assert_int_equal(kx_spdy_rst(c->s, 5, KX_SPDY_CANCEL), 0);
    pump(c, s, mode);
    assert_true(log_is(c, "F3\n"));
    assert_true(log_is(s, "X5:5\n"));
    // A RST for a stream the server already forgot is silent.
    assert_int_equal(kx_spdy_rst(c->s, 3, KX_SPDY_CANCEL), 0);
    pump(c, s, mode);
    assert_true(log_is(s, "X5:5\n"));
    assert_int_equal(kx_spdy_data(s->s, 3, big, 1, false), -EINVAL);
    c->log_len = s->log_len = 0;

    // PING: client ping (odd) is echoed by the server; server ping (even) by the client.
    assert_int_equal(kx_spdy_ping(c->s, 7), 0);
    assert_int_equal(kx_spdy_ping(s->s, 2), 0);
    uint8_t cping[12], sping[12];
    memcpy(cping, c->out.data, 12);
    memcpy(sping, s->out.data, 12);
    assert_int_equal(deliver(c, s, mode), 0);
    assert_int_equal(s->out.len, 24);
    assert_memory_equal(s->out.data + 12, cping, 12); // echo byte-for-byte after its own ping
    assert_int_equal(deliver(s, c, mode), 0);
    assert_int_equal(c->out.len, 12);
    assert_memory_equal(c->out.data, sping, 12);
    assert_int_equal(deliver(c, s, mode), 0);
    assert_int_equal(s->out.len, 0); // own-parity ping (the echo) is not echoed again

    // RST from the client on stream 1.
    assert_int_equal(kx_spdy_rst(c->s, 1, KX_SPDY_CANCEL), 0);
    pump(c, s, mode);
    assert_true(log_is(s, "X1:5\n"));
    assert_int_equal(kx_spdy_data(s->s, 1, big, 1, false), -EINVAL);
    s->log_len = 0;

    // GOAWAY from the server; the client ignores anything after it.
    assert_int_equal(kx_spdy_goaway(s->s, KX_SPDY_GOAWAY_OK), 0);
    kx_buf tail = s->out;
    s->out = kx_buf{};
    assert_int_equal(kx_buf_append(&tail, cping, 5, 1 << 20), 0); // garbage after GOAWAY
    assert_int_equal(feed(c->s, tail.data, tail.len, mode), 0);
    kx_buf_free(&tail);
    assert_true(log_is(c, "G5:0\n"));
    assert_int_equal(kx_spdy_open(c->s, nullptr, 0, false, &id1), -EPIPE);
    // The client may still finish: its GOAWAY reaches the server.
    assert_int_equal(kx_spdy_goaway(c->s, KX_SPDY_GOAWAY_OK), 0);
    assert_int_equal(deliver(c, s, mode), 0);
    assert_true(log_is(s, "G0:0\n"));
    peer_free(c);
    peer_free(s);
}

static void round_trip_whole(void **)
{
    round_trip_mode(WHOLE, 1);
}
static void round_trip_bytes(void **)
{
    round_trip_mode(BYTES, 1);
}
static void round_trip_random(void **)
{
    for (int i = 0; i < 5; i++)
        round_trip_mode(RANDOM, 1000u + (uint32_t)i);
}

// SYN_STREAM with FIN, HEADERS keeping the inflate context in sync, FIN via
// HEADERS, a server-opened stream answered by the client.
static void headers_and_fin_flags(void **)
{
    for (int mode = 0; mode < NMODES; mode++) {
        rng_state = 99u + (uint32_t)mode;
        peer *s = peer_new(true);
        uint8_t wire[1024], plain[256], block[256];
        size_t n = 0;
        zc z;
        zc_init(&z);
        static const char *const a[] = {"streamtype", "error", nullptr};
        static const char *const b[] = {"x-trailer", "yes", "x-other", "", nullptr};
        static const char *const c3[] = {"streamtype", "stdout", nullptr};
        size_t bl = zc_block(&z, plain, nv_block(plain, a), block, sizeof block);
        n += hdr_frame(wire + n, KX_SPDY_SYN_STREAM, 0, 1, block, bl);
        bl = zc_block(&z, plain, nv_block(plain, b), block, sizeof block);
        n += hdr_frame(wire + n, KX_SPDY_HEADERS, KX_SPDY_FLAG_FIN, 1, block, bl);
        bl = zc_block(&z, plain, nv_block(plain, c3), block, sizeof block);
        n += hdr_frame(wire + n, KX_SPDY_SYN_STREAM, KX_SPDY_FLAG_FIN, 3, block, bl);
        // DATA after the peer's FIN and for unknown streams is dropped.
        static const uint8_t d[] = {0, 0, 0, 3, 0, 0, 0, 2, 'n', 'o', 0, 0, 0, 9, 1, 0, 0, 1, 'z'};
        memcpy(wire + n, d, sizeof d);
        n += sizeof d;
        // WINDOW_UPDATE and SETTINGS are accepted and ignored.
        uint8_t wu[8], st[12];
        kx_put_be32(wu, 1);
        kx_put_be32(wu + 4, 65536);
        n += ctl_frame(wire + n, KX_SPDY_WINDOW_UPDATE, 0, wu, 8);
        kx_put_be32(st, 1);
        kx_put_be32(st + 4, 7);
        kx_put_be32(st + 8, 1 << 20);
        n += ctl_frame(wire + n, KX_SPDY_SETTINGS, 0, st, 12);
        if (mode == 0)
            corpus_write("fuzz_spdy_frames", "headers_fin", wire, n);
        assert_int_equal(feed(s->s, wire, n, mode), 0);
        assert_true(log_is(s, "S1{streamtype=error}\nF1\nS3f{streamtype=stdout}\nF3\n"));
        assert_int_equal(s->data[3].len, 0);
        // 3 is half-closed by the peer; once we FIN too it is forgotten.
        assert_int_equal(kx_spdy_data(s->s, 3, block, 1, false), 0);
        assert_int_equal(kx_spdy_data(s->s, 3, nullptr, 0, true), 0);
        assert_int_equal(kx_spdy_data(s->s, 3, nullptr, 0, true), -EINVAL);
        // Server-opened stream (even id) with headers, replied by the client.
        // Server-opened stream (even id) with headers, replied by a client
        // (a fresh pair: header blocks share one history per direction).
        peer *s2 = peer_new(true), *c = peer_new(false);
        uint32_t id = 0;
        kx_spdy_nv nv = {"streamtype", 10, "data", 4};
        assert_int_equal(kx_spdy_open(s2->s, &nv, 1, false, &id), 0);
        assert_int_equal(id, 2);
        assert_int_equal(kx_spdy_open(s2->s, &nv, 1, true, &id), 0);
        assert_int_equal(id, 4);
        assert_int_equal(deliver(s2, c, mode), 0);
        assert_true(log_is(c, "S2{streamtype=data}\nS4f{streamtype=data}\nF4\n"));
        assert_int_equal(kx_spdy_reply(c->s, 2, &nv, 1, true), 0);
        assert_int_equal(kx_spdy_reply(c->s, 2, nullptr, 0, false), -EINVAL); // already replied
        assert_int_equal(kx_spdy_reply(c->s, 4, nullptr, 0, true), 0);       // both FIN: forgotten
        assert_int_equal(kx_spdy_reply(c->s, 4, nullptr, 0, true), -EINVAL);
        assert_int_equal(deliver(c, s2, mode), 0);
        assert_true(log_is(s2, "R2f{streamtype=data}\nF2\nR4f{}\nF4\n"));
        peer_free(s2);
        deflateEnd(&z.z);
        peer_free(s);
        peer_free(c);
    }
}

static void stream_id_rules_and_limits(void **)
{
    peer *s = peer_new(true);
    s->auto_reply = false;
    zc z;
    zc_init(&z);
    uint8_t wire[256], plain[64], block[64];
    static const char *const kv[] = {"streamtype", "x", nullptr};
    size_t pl = nv_block(plain, kv);
    // Stream 5, then 3 (lower than expected) -> RST PROTOCOL_ERROR, ignored.
    size_t n = hdr_frame(wire, KX_SPDY_SYN_STREAM, 0, 5, block, zc_block(&z, plain, pl, block, sizeof block));
    assert_int_equal(kx_spdy_recv(s->s, wire, n), 0);
    n = hdr_frame(wire, KX_SPDY_SYN_STREAM, 0, 3, block, zc_block(&z, plain, pl, block, sizeof block));
    assert_int_equal(kx_spdy_recv(s->s, wire, n), 0);
    uint8_t want[16];
    assert_int_equal(s->out.len, hex(want, "80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 01"));
    assert_memory_equal(s->out.data, want, 16);
    assert_true(log_is(s, "S5{streamtype=x}\n"));
    // The context stayed in sync: the next one still parses.
    s->out.len = 0;
    for (uint32_t id = 7; id < 7 + 2 * 127; id += 2) {
        n = hdr_frame(wire, KX_SPDY_SYN_STREAM, 0, id, block, zc_block(&z, plain, pl, block, sizeof block));
        assert_int_equal(kx_spdy_recv(s->s, wire, n), 0);
    }
    assert_int_equal(s->out.len, 0); // 128 streams alive
    uint32_t id;
    assert_int_equal(kx_spdy_open(s->s, nullptr, 0, false, &id), -EAGAIN);
    n = hdr_frame(wire, KX_SPDY_SYN_STREAM, 0, 301, block, zc_block(&z, plain, pl, block, sizeof block));
    assert_int_equal(kx_spdy_recv(s->s, wire, n), 0);
    assert_int_equal(s->out.len, hex(want, "80 03 00 03 00 00 00 08 00 00 01 2d 00 00 00 03"));
    assert_memory_equal(s->out.data, want, 16);
    // A RST from the peer frees a slot.
    uint8_t r[8];
    kx_put_be32(r, 5);
    kx_put_be32(r + 4, KX_SPDY_CANCEL);
    n = ctl_frame(wire, KX_SPDY_RST_STREAM, 0, r, 8);
    assert_int_equal(kx_spdy_recv(s->s, wire, n), 0);
    assert_int_equal(kx_spdy_open(s->s, nullptr, 0, false, &id), 0);
    assert_int_equal(id, 2);
    // Data on a peer stream we have not replied to is refused.
    assert_int_equal(kx_spdy_data(s->s, 7, wire, 1, false), -EINVAL);
    assert_int_equal(kx_spdy_reply(s->s, 7, nullptr, 0, false), 0);
    assert_int_equal(kx_spdy_data(s->s, 7, wire, 1, false), 0);
    // Bad names we would send.
    kx_spdy_nv bad[] = {{"Upper", 5, "v", 1}, {"", 0, "v", 1}, {"host", 4, "x", 1}, {"connection", 10, "x", 1}};
    for (auto &b : bad)
        assert_int_equal(kx_spdy_reply(s->s, 9, &b, 1, false), -EINVAL);
    kx_spdy_nv many[101];
    for (auto &m : many)
        m = {"a", 1, "b", 1};
    assert_int_equal(kx_spdy_reply(s->s, 9, many, 101, false), -EMSGSIZE);
    static char huge[70000];
    memset(huge, 'v', sizeof huge);
    kx_spdy_nv hv = {"big", 3, huge, sizeof huge};
    assert_int_equal(kx_spdy_reply(s->s, 9, &hv, 1, false), -EMSGSIZE);
    assert_int_equal(kx_spdy_reply(s->s, 9, many, 100, false), 0); // exactly the limit is fine
    assert_int_equal(kx_spdy_rst(s->s, 0, 5), -EINVAL);
    assert_int_equal(kx_spdy_rst(s->s, 9, 0), -EINVAL);
    assert_int_equal(kx_spdy_ping(s->s, 0), -EINVAL);
    deflateEnd(&z.z);
    peer_free(s);
}

static void send_failure_kills_output(void **)
{
    peer *c = peer_new(false);
    c->send_rc = -ECONNRESET;
    uint32_t id;
    assert_int_equal(kx_spdy_open(c->s, nullptr, 0, false, &id), -ECONNRESET);
    c->send_rc = 0;
    assert_int_equal(kx_spdy_ping(c->s, 1), -EPIPE);
    assert_int_equal(c->out.len, 0);
    peer_free(c);
    assert_null(kx_spdy_session_new(true, nullptr, nullptr));
    kx_spdy_callbacks none = {};
    assert_null(kx_spdy_session_new(true, &none, nullptr));
}

// ---- Malformed input ------------------------------------------------------------

// Feeds `wire` after an optional valid prefix to a fresh server session in every
// mode and expects `want`; the error is sticky.
static void expect_fatal(const char *name, const uint8_t *wire, size_t n, int want)
{
    corpus_write("fuzz_spdy_frames", name, wire, n);
    for (int mode = 0; mode < NMODES; mode++) {
        peer *s = peer_new(true);
        int rc = feed(s->s, wire, n, mode);
        if (rc != want)
            fprintf(stderr, "%s (%s): got %d want %d\n", name, mode_names[mode], rc, want);
        assert_int_equal(rc, want);
        assert_int_equal(kx_spdy_recv(s->s, wire, 1), want);
        peer_free(s);
    }
}

// kx_spdy_drop_header_state: streams set up before keep carrying DATA, FIN,
// PING and RST; a later header block is fatal, and we can open/reply no more.
static void dropped_header_state(void **)
{
    peer *c = peer_new(false);
    peer *s = peer_new(true);
    static const char *const types[] = {"error", "stdout"};
    uint32_t ids[2];
    for (int i = 0; i < 2; i++) {
        kx_spdy_nv nv = {"streamtype", 10, types[i], strlen(types[i])};
        assert_int_equal(kx_spdy_open(c->s, &nv, 1, false, &ids[i]), 0);
    }
    pump(c, s, WHOLE);   // the server auto-replies
    kx_spdy_drop_header_state(s->s);
    kx_spdy_drop_header_state(s->s);   // idempotent
    assert_int_equal(kx_spdy_data(s->s, ids[1], (const uint8_t *)"out", 3, true), 0);
    assert_int_equal(kx_spdy_data(c->s, ids[0], (const uint8_t *)"in", 2, false), 0);
    assert_int_equal(kx_spdy_ping(c->s, 7), 0);
    pump(c, s, BYTES);
    assert_int_equal(c->data[ids[1]].len, 3);
    assert_int_equal(s->data[ids[0]].len, 2);
    assert_int_equal(kx_spdy_rst(s->s, ids[0], KX_SPDY_CANCEL), 0);
    // No new streams either way.
    kx_spdy_nv nv = {"streamtype", 10, "stdin", 5};
    uint32_t id;
    assert_int_equal(kx_spdy_open(s->s, &nv, 1, false, &id), -EPIPE);
    assert_int_equal(kx_spdy_open(c->s, &nv, 1, false, &id), 0);
    assert_int_equal(deliver(c, s, WHOLE), -EPROTO);
    peer_free(c);
    peer_free(s);
}

static void malformed_frames(void **)
{
    uint8_t w[80000], p[80000], block[512], plain[512];
    size_t n;
    // Unknown control type 5 (NOOP) and 10.
    n = ctl_frame(w, 5, 0, nullptr, 0);
    expect_fatal("bad_type5", w, n, -EPROTO);
    kx_put_be32(p, 1);
    n = ctl_frame(w, 10, 0, p, 4);
    expect_fatal("bad_type10", w, n, -EPROTO);
    // Version 2.
    kx_put_be32(p, 1);
    n = ctl_frame(w, KX_SPDY_PING, 0, p, 4);
    w[1] = 2;
    expect_fatal("bad_version", w, n, -EPROTO);
    // Wrong fixed lengths.
    n = ctl_frame(w, KX_SPDY_RST_STREAM, 0, p, 4);
    expect_fatal("rst_len4", w, n, -EPROTO);
    n = ctl_frame(w, KX_SPDY_PING, 0, p, 8);
    expect_fatal("ping_len8", w, n, -EPROTO);
    n = ctl_frame(w, KX_SPDY_GOAWAY, 0, p, 4);
    expect_fatal("goaway_len4", w, n, -EPROTO);
    n = ctl_frame(w, KX_SPDY_SYN_STREAM, 0, p, 10);
    expect_fatal("syn_no_block", w, n, -EPROTO);
    kx_put_be32(p, 2);
    n = ctl_frame(w, KX_SPDY_SETTINGS, 0, p, 12);
    expect_fatal("settings_count", w, n, -EPROTO);
    // Ids of 0.
    kx_put_be32(p, 0);
    n = ctl_frame(w, KX_SPDY_PING, 0, p, 4);
    expect_fatal("ping_id0", w, n, -EPROTO);
    kx_put_be32(p + 4, 5);
    n = ctl_frame(w, KX_SPDY_RST_STREAM, 0, p, 8);
    expect_fatal("rst_id0", w, n, -EPROTO);
    kx_put_be32(p, 1);
    kx_put_be32(p + 4, 0);
    n = ctl_frame(w, KX_SPDY_RST_STREAM, 0, p, 8);
    expect_fatal("rst_status0", w, n, -EPROTO);
    static const uint8_t data0[] = {0, 0, 0, 0, 0, 0, 0, 1, 'x'};
    expect_fatal("data_id0", data0, sizeof data0, -EPROTO);
    // Huge control length (over 64 KiB), both just over and the 24-bit max.
    n = ctl_frame(w, KX_SPDY_SYN_STREAM, 0, nullptr, 0);
    kx_put_be24(w + 5, 65537);
    expect_fatal("ctl_65537", w, n, -EMSGSIZE);
    kx_put_be24(w + 5, 0xffffff);
    expect_fatal("ctl_huge", w, n, -EMSGSIZE);

    // Header blocks.
    static const char *const kv[] = {"streamtype", "error", nullptr};
    size_t pl = nv_block(plain, kv);
    zc z;
    zc_init(&z);
    size_t bl = zc_block(&z, plain, pl, block, sizeof block);
    deflateEnd(&z.z);
    // SYN_STREAM id 0.
    n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 0, block, bl);
    expect_fatal("syn_id0", w, n, -EPROTO);
    n = hdr_frame(w, KX_SPDY_SYN_REPLY, 0, 0, block, bl);
    expect_fatal("reply_id0", w, n, -EPROTO);
    // Corrupt zlib: flip a byte in the middle.
    n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, block, bl);
    w[8 + 10 + 10] ^= 0x55;
    expect_fatal("zlib_corrupt", w, n, -EPROTO);
    // Wrong dictionary id in the zlib header.
    n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, block, bl);
    w[8 + 10 + 5] ^= 1;
    expect_fatal("zlib_dictid", w, n, -EPROTO);
    // Block with trailing junk (not exactly consumed).
    memcpy(p, block, bl);
    memcpy(p + bl, "junk", 4);
    n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, p, bl + 4);
    expect_fatal("zlib_trailing", w, n, -EPROTO);
    // Block cut short: the NV block is incomplete.
    n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, block, bl - 6);
    expect_fatal("zlib_short", w, n, -EPROTO);
    // Z_FINISH-terminated block (stream end) is refused.
    {
        z_stream f = {};
        assert_int_equal(deflateInit(&f, 9), Z_OK);
        assert_int_equal(deflateSetDictionary(&f, kx_spdy_dict, KX_SPDY_DICT_LEN), Z_OK);
        f.next_in = plain;
        f.avail_in = (uInt)pl;
        f.next_out = p;
        f.avail_out = sizeof p;
        assert_int_equal(deflate(&f, Z_FINISH), Z_STREAM_END);
        n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, p, sizeof p - f.avail_out);
        deflateEnd(&f);
        expect_fatal("zlib_finish", w, n, -EPROTO);
    }
    // Upper-case header name and a zero-length name.
    struct {
        const char *name;
        const char *const kv[5];
        int want;
    } nvcases[] = {
        {"nv_upper", {"streamType", "error", nullptr}, -EPROTO},
        {"nv_emptyname", {"", "error", nullptr}, -EPROTO},
    };
    for (auto &c : nvcases) {
        zc_init(&z);
        bl = zc_block(&z, plain, nv_block(plain, c.kv), block, sizeof block);
        deflateEnd(&z.z);
        n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, block, bl);
        expect_fatal(c.name, w, n, c.want);
    }
    // 101 headers.
    {
        static uint8_t big[2048];
        kx_put_be32(big, 101);
        size_t off = 4;
        for (int i = 0; i < 101; i++) {
            kx_put_be32(big + off, 1);
            big[off + 4] = 'a';
            kx_put_be32(big + off + 5, 1);
            big[off + 9] = 'b';
            off += 10;
        }
        zc_init(&z);
        bl = zc_block(&z, big, off, p, sizeof p);
        deflateEnd(&z.z);
        n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, p, bl);
        expect_fatal("nv_101", w, n, -EMSGSIZE);
    }
    // A block that inflates to more than 64 KiB (zeros compress well).
    {
        static uint8_t zeros[70000];
        kx_put_be32(zeros, 1);
        kx_put_be32(zeros + 4, 1);
        zeros[8] = 'a';
        kx_put_be32(zeros + 9, sizeof zeros - 13);
        zc_init(&z);
        bl = zc_block(&z, zeros, sizeof zeros, p, sizeof p);
        deflateEnd(&z.z);
        assert_true(bl < 2000);
        n = hdr_frame(w, KX_SPDY_SYN_STREAM, 0, 1, p, bl);
        expect_fatal("inflate_bomb", w, n, -EMSGSIZE);
    }
}

static void garbage_never_crashes(void **)
{
    // Random bytes, optionally after a valid prefix: must return 0 or negative
    // without tripping ASan/UBSan.
    uint8_t buf[4096];
    rng_state = 4242;
    for (int i = 0; i < 300; i++) {
        size_t n = 1 + rnd() % sizeof buf;
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)rnd();
        if (i % 3 == 0) {
            buf[0] = 0x80;
            buf[1] = 0x03;
            buf[2] = 0;
            buf[3] = (uint8_t)(1 + rnd() % 9);
        }
        peer *s = peer_new(true);
        int rc = feed(s->s, buf, n, i % NMODES);
        assert_true(rc == 0 || rc == -EPROTO || rc == -EMSGSIZE);
        peer_free(s);
    }
}

// ---- NV block parser --------------------------------------------------------------

static void nv_block_parser(void **)
{
    uint8_t b[256];
    kx_spdy_nv nv[4];
    size_t n = 99;
    static const char *const kv[] = {"a", "1", "bb", "", "c", "x\0y", nullptr};
    size_t l = nv_block(b, kv);
    assert_int_equal(kx_spdy_parse_nv_block(b, l, nv, 4, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nv[1].name_len, 2);
    assert_memory_equal(nv[1].name, "bb", 2);
    assert_int_equal(nv[1].value_len, 0);
    assert_int_equal(kx_spdy_parse_nv_block(b, l, nv, 2, &n), -EMSGSIZE);
    assert_int_equal(kx_spdy_parse_nv_block(b, l - 1, nv, 4, &n), -EPROTO);
    b[l] = 0;
    assert_int_equal(kx_spdy_parse_nv_block(b, l + 1, nv, 4, &n), -EPROTO);
    assert_int_equal(kx_spdy_parse_nv_block(b, 3, nv, 4, &n), -EPROTO);
    for (size_t cut = 0; cut < l; cut++)
        assert_true(kx_spdy_parse_nv_block(b, cut, nv, 4, &n) < 0);
    // Empty block.
    assert_int_equal(kx_spdy_parse_nv_block((const uint8_t *)"\0\0\0\0", 4, nv, 4, &n), 0);
    assert_int_equal(n, 0);
    // Length fields that overflow.
    uint8_t o[16] = {0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 'a'};
    assert_int_equal(kx_spdy_parse_nv_block(o, 9, nv, 4, &n), -EPROTO);
    uint8_t o2[16] = {0, 0, 0, 1, 0, 0, 0, 1, 'a', 0xff, 0xff, 0xff, 0xfe};
    assert_int_equal(kx_spdy_parse_nv_block(o2, 13, nv, 4, &n), -EPROTO);
    uint8_t o3[16] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(kx_spdy_parse_nv_block(o3, 4, nv, 4, &n), -EMSGSIZE);

    // Seeds for fuzz_spdy_headers: byte 0 selects the mode (see the target).
    if (corpus_dir()) {
        uint8_t seed[300];
        for (uint8_t mode = 0; mode < 3; mode++) {
            static const char *const sets[][7] = {
                {"streamtype", "error", nullptr},
                {"streamtype", "data", "port", "8080", "requestid", "0", nullptr},
                {"a", "1", "bb", "", "c", "x\0y", nullptr},
            };
            for (size_t i = 0; i < 3; i++) {
                seed[0] = mode;
                size_t sl = nv_block(seed + 1, sets[i]);
                if (mode == 1) { // already compressed
                    zc z;
                    zc_init(&z);
                    uint8_t tmp[300];
                    memcpy(tmp, seed + 1, sl);
                    sl = zc_block(&z, tmp, sl, seed + 1, sizeof seed - 1);
                    deflateEnd(&z.z);
                }
                char name[32];
                snprintf(name, sizeof name, "m%u_set%zu", mode, i);
                corpus_write("fuzz_spdy_headers", name, seed, sl + 1);
            }
        }
        static const uint8_t odd[][10] = {
            {0, 0, 0, 0, 1},
            {0, 0xff, 0xff, 0xff, 0xff},
            {0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
            {2, 0, 0, 0, 1, 0, 0, 0, 1, 'A'},
            {1, 0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0, 0, 0},
            {1, 0x78, 0x9c, 0, 0, 0, 0, 0xff, 0xff, 0},
        };
        for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
            char name[32];
            snprintf(name, sizeof name, "odd%zu", i);
            corpus_write("fuzz_spdy_headers", name, odd[i], sizeof odd[i]);
        }
    }
}

// Writes the wire bytes of a whole kubectl-like session as a frames seed.
static void corpus_session_seed(void **)
{
    if (!corpus_dir())
        return;
    peer *c = peer_new(false);
    uint32_t id;
    const char *types[] = {"error", "stdin", "stdout", "stderr"};
    for (const char *t : types) {
        kx_spdy_nv nv = {"streamtype", 10, t, strlen(t)};
        assert_int_equal(kx_spdy_open(c->s, &nv, 1, false, &id), 0);
    }
    assert_int_equal(kx_spdy_data(c->s, 3, (const uint8_t *)"hi\n", 3, false), 0);
    assert_int_equal(kx_spdy_data(c->s, 3, nullptr, 0, true), 0);
    assert_int_equal(kx_spdy_ping(c->s, 1), 0);
    assert_int_equal(kx_spdy_rst(c->s, 5, KX_SPDY_CANCEL), 0);
    corpus_write("fuzz_spdy_frames", "kubectl_session", c->out.data, c->out.len);
    assert_int_equal(kx_spdy_goaway(c->s, 0), 0);
    corpus_write("fuzz_spdy_frames", "kubectl_session_goaway", c->out.data, c->out.len);
    peer_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dictionary_length_and_adler),
        cmocka_unit_test(doc_syn_stream_decodes),
        cmocka_unit_test(doc_syn_reply_encodes),
        cmocka_unit_test(doc_simple_frames),
        cmocka_unit_test(round_trip_whole),
        cmocka_unit_test(round_trip_bytes),
        cmocka_unit_test(round_trip_random),
        cmocka_unit_test(headers_and_fin_flags),
        cmocka_unit_test(stream_id_rules_and_limits),
        cmocka_unit_test(send_failure_kills_output),
        cmocka_unit_test(dropped_header_state),
        cmocka_unit_test(malformed_frames),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(nv_block_parser),
        cmocka_unit_test(corpus_session_seed),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
