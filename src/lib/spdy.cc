// SPDY/3.1 session engine (sans-I/O). See include/kubexec/spdy.h for the
// contract and /work/shared/docs/protocol.md §2 for the wire facts.
#include "kubexec/spdy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kubexec/util.h"

namespace {

enum stream_flag : uint8_t {
    ST_USED = 0x01,
    ST_LOCAL = 0x02,      // we opened it
    ST_REPLIED = 0x04,    // SYN_REPLY sent (peer-opened) or received (local)
    ST_LOCAL_FIN = 0x08,  // we half-closed
    ST_REMOTE_FIN = 0x10, // peer half-closed
};

struct stream {
    uint32_t id;
    uint8_t flags;
};

// Stream slots: STREAMS_INLINE in the session (an exec uses at most 5), then
// blocks of STREAMS_BLOCK allocated as more are open at once, up to
// KX_SPDY_MAX_STREAMS; never moved (callers hold stream pointers across
// callbacks), freed with the session. A full table cost every session 1 KiB.
constexpr size_t STREAMS_INLINE = 8;
constexpr size_t STREAMS_BLOCK = 24;
struct stream_block {
    stream_block *next;
    stream s[STREAMS_BLOCK];
};

enum class rx_state : uint8_t {
    head,      // collecting the 8-byte frame header
    control,   // collecting a control payload into ctrl
    data,      // streaming a DATA payload to on_data
    dead,      // a fatal error happened; err is sticky
    goaway,    // peer sent GOAWAY; input ignored
};

// SYN_STREAM carries 10 fixed bytes before the block, SYN_REPLY/HEADERS 4.
constexpr size_t SYN_STREAM_FIXED = 10;
constexpr size_t SYN_REPLY_FIXED = 4;

// Per-session memory. A session lives as long as its connection (one per
// exec), so its idle cost is what a node pays per session. Header blocks on
// this protocol are tiny (kubectl's SYN_STREAMs inflate to ~30 bytes, our
// SYN_REPLYs are 4), so every buffer is an inline array sized for them; a
// frame that does not fit gets a heap buffer of its own size, freed as soon
// as the frame is handled. Limits are unchanged (KX_SPDY_MAX_*).
constexpr size_t CTRL_INLINE = 256;   // received control payload
constexpr size_t INFL_INLINE = 512;   // inflated received block (grows x2)
constexpr size_t PLAIN_INLINE = 256;  // outgoing uncompressed block
constexpr size_t OUT_INLINE = 256;    // outgoing control payload

// Our deflate: a 2 KiB window (windowBits 11: the 1423-byte dictionary fits
// whole, so the first block still references all of it) and memLevel 2:
// ~16 KiB of zlib state instead of ~262 KiB at the defaults (15, 8). Small
// header blocks compress to the same bytes. It runs raw (negative
// windowBits) and we write the zlib header ourselves, exactly as zlib would
// with a 32 KiB window (78 F9, then the dictionary's Adler-32): CINFO only
// bounds the window the inflater must keep, so announcing 32 KiB while using
// 2 KiB is valid, and the first block stays byte-compatible with the
// protocol.md examples. The Adler-32 trailer is never written (the stream is
// never finished), so raw mode loses nothing. Inflate stays at 15 bits: the
// peer's deflate may use a 32 KiB window.
constexpr int DEF_LEVEL = Z_BEST_COMPRESSION;
constexpr int DEF_WBITS = 11;
constexpr int DEF_MEMLEVEL = 2;
constexpr size_t ZLIB_HDR_LEN = 6; // CMF, FLG, DICTID

} // namespace

struct kx_spdy_session {
    kx_spdy_callbacks cb;
    void *user;
    bool is_server;
    bool def_ready, inf_ready;
    bool def_hdr_sent;  // the zlib header went out with the first block
    bool goaway_sent;
    bool goaway_recv;
    bool out_dead;      // a send failed; compression state may be off the wire
    bool hdr_dropped;   // kx_spdy_drop_header_state: no more header blocks
    z_stream def;
    z_stream inf;

    // Receive state.
    rx_state state;
    int err;            // sticky fatal error when state == dead
    uint8_t hdr[KX_SPDY_FRAME_HEADER_LEN];
    size_t hdr_len;
    uint16_t ctl_type;
    uint8_t flags;
    uint32_t need;      // payload bytes still expected
    uint32_t ctl_len;   // control payload length (== bytes wanted in ctrl)
    size_t ctrl_have;
    uint32_t data_id;

    uint32_t next_peer_id;   // lowest id a new peer SYN_STREAM may carry
    uint32_t last_peer_id;   // highest id the peer opened (GOAWAY last-good)
    uint32_t next_local_id;

    size_t nstreams;
    size_t streams_cap;      // slots in streams + the blocks
    stream streams[STREAMS_INLINE];
    stream_block *more;

    // Received control payload: ctrl_small, or a heap buffer of ctl_len
    // bytes for a frame that does not fit (freed once the frame is handled).
    uint8_t *ctrl;
    // Inflated block: infl_small or a heap buffer grown by doubling up to
    // KX_SPDY_MAX_HEADER_BLOCK + 1 (the spare byte detects "over the limit");
    // freed once the frame is handled.
    uint8_t *inflated;
    size_t infl_cap;

    uint8_t ctrl_small[CTRL_INLINE];
    uint8_t infl_small[INFL_INLINE];
    // The outgoing block's buffers are on send_headers_frame's stack: they
    // never outlive the call, so a held session does not carry them.
};

// ---- Streams ------------------------------------------------------------------

static stream *find_in(stream *v, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++)
        if ((v[i].flags & ST_USED) && v[i].id == id)
            return &v[i];
    return nullptr;
}

static stream *find_stream(kx_spdy_session *s, uint32_t id)
{
    if (id == 0)
        return nullptr;
    stream *st = find_in(s->streams, STREAMS_INLINE, id);
    for (stream_block *b = s->more; !st && b; b = b->next)
        st = find_in(b->s, STREAMS_BLOCK, id);
    return st;
}

// Makes sure add_stream has a free slot (call with nstreams below
// KX_SPDY_MAX_STREAMS, before anything goes on the wire). 0 or -ENOMEM.
static int reserve_stream(kx_spdy_session *s)
{
    if (s->nstreams < s->streams_cap)
        return 0;
    stream_block *b = (stream_block *)calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->next = s->more;
    s->more = b;
    s->streams_cap += STREAMS_BLOCK;
    return 0;
}

static stream *free_slot(stream *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(v[i].flags & ST_USED))
            return &v[i];
    return nullptr;
}

// After reserve_stream: never fails.
static stream *add_stream(kx_spdy_session *s, uint32_t id, uint8_t flags)
{
    stream *st = free_slot(s->streams, STREAMS_INLINE);
    for (stream_block *b = s->more; !st && b; b = b->next)
        st = free_slot(b->s, STREAMS_BLOCK);
    if (!st)
        return nullptr;
    st->id = id;
    st->flags = (uint8_t)(ST_USED | flags);
    s->nstreams++;
    return st;
}

static void drop_stream(kx_spdy_session *s, stream *st)
{
    st->flags = 0;
    st->id = 0;
    s->nstreams--;
}

// A stream is forgotten once both sides have sent FIN (spdystream does the same).
static void maybe_drop(kx_spdy_session *s, stream *st)
{
    if ((st->flags & (ST_LOCAL_FIN | ST_REMOTE_FIN)) == (ST_LOCAL_FIN | ST_REMOTE_FIN))
        drop_stream(s, st);
}

// Marks the peer side closed and reports it. The stream is re-looked-up by id
// because callbacks may have reset it meanwhile.
static void remote_fin(kx_spdy_session *s, uint32_t id)
{
    stream *st = find_stream(s, id);
    if (!st || (st->flags & ST_REMOTE_FIN))
        return;
    st->flags |= ST_REMOTE_FIN;
    maybe_drop(s, st);
    if (s->cb.on_fin)
        s->cb.on_fin(s->user, id);
}

// ---- Output -------------------------------------------------------------------

static int emit(kx_spdy_session *s, const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    if (s->out_dead)
        return -EPIPE;
    int rc = s->cb.send(s->user, hdr, KX_SPDY_FRAME_HEADER_LEN, payload, len);
    if (rc < 0)
        s->out_dead = true;
    return rc < 0 ? rc : 0;
}

static void control_header(uint8_t *h, uint16_t type, uint8_t flags, size_t len)
{
    kx_put_be16(h, (uint16_t)(0x8000u | KX_SPDY_VERSION));
    kx_put_be16(h + 2, type);
    h[4] = flags;
    kx_put_be24(h + 5, (uint32_t)len);
}

static int send_control(kx_spdy_session *s, uint16_t type, uint8_t flags, const uint8_t *p, size_t len)
{
    if (s->goaway_sent)
        return -EPIPE;
    uint8_t h[KX_SPDY_FRAME_HEADER_LEN];
    control_header(h, type, flags, len);
    return emit(s, h, p, len);
}

static int send_two_u32(kx_spdy_session *s, uint16_t type, uint32_t a, uint32_t b)
{
    uint8_t p[8];
    kx_put_be32(p, a);
    kx_put_be32(p + 4, b);
    return send_control(s, type, 0, p, sizeof p);
}

static bool name_ok(const char *name, size_t len)
{
    if (!name || len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((name[i] >= 'A' && name[i] <= 'Z') || name[i] == '\0')
            return false;
    // Hop-by-hop names are fatal to spdystream's reader.
    static const char *const forbidden[] = {"connection", "host", "keep-alive", "proxy-connection",
                                            "transfer-encoding"};
    for (const char *f : forbidden)
        if (strlen(f) == len && memcmp(f, name, len) == 0)
            return false;
    return true;
}

// Checks nv and returns the serialised block length, or <0.
static int block_len(const kx_spdy_nv *nv, size_t n)
{
    if (n > KX_SPDY_MAX_HEADERS)
        return -EMSGSIZE;
    if (n && !nv)
        return -EINVAL;
    size_t len = 4;
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(nv[i].name, nv[i].name_len) || (nv[i].value_len && !nv[i].value))
            return -EINVAL;
        if (nv[i].name_len > KX_SPDY_MAX_HEADER_BLOCK || nv[i].value_len > KX_SPDY_MAX_HEADER_BLOCK ||
            KX_SPDY_MAX_HEADER_BLOCK - len < 8 + nv[i].name_len + nv[i].value_len)
            return -EMSGSIZE;
        len += 8 + nv[i].name_len + nv[i].value_len;
    }
    return (int)len;
}

// Serialises nv (already checked by block_len) into p.
static void write_block(uint8_t *p, const kx_spdy_nv *nv, size_t n)
{
    size_t len = 4;
    kx_put_be32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kx_put_be32(p + len, (uint32_t)nv[i].name_len);
        memcpy(p + len + 4, nv[i].name, nv[i].name_len);
        len += 4 + nv[i].name_len;
        kx_put_be32(p + len, (uint32_t)nv[i].value_len);
        if (nv[i].value_len)
            memcpy(p + len + 4, nv[i].value, nv[i].value_len);
        len += 4 + nv[i].value_len;
    }
}

static int deflate_ready(kx_spdy_session *s)
{
    if (s->def_ready)
        return 0;
    if (s->hdr_dropped)
        return -EPIPE;
    if (deflateInit2(&s->def, DEF_LEVEL, Z_DEFLATED, -DEF_WBITS, DEF_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    if (deflateSetDictionary(&s->def, kx_spdy_dict, KX_SPDY_DICT_LEN) != Z_OK) {
        deflateEnd(&s->def);
        return -ENOMEM;
    }
    s->def_ready = true;
    return 0;
}

// Compresses plain[0..len) into out[0..cap) with the session's one deflate
// context, ending in a sync flush; the first block is preceded by the zlib
// header. Returns the compressed length or <0. A failure here leaves the
// context ahead of the wire, so output dies with it.
static int compress_block(kx_spdy_session *s, const uint8_t *plain, size_t len, uint8_t *out, size_t cap)
{
    size_t off = 0;
    if (!s->def_hdr_sent) {
        // RFC 1950 header as zlib writes it: CM 8, CINFO 7; FLEVEL 3 (level
        // 9), FDICT; FCHECK makes the pair a multiple of 31.
        unsigned flg = (3u << 6) | 0x20u;
        flg += 31 - ((0x78u << 8 | flg) % 31);
        out[0] = 0x78;
        out[1] = (uint8_t)flg;
        kx_put_be32(out + 2, KX_SPDY_DICT_ADLER);
        off = ZLIB_HDR_LEN;
    }
    s->def.next_in = (Bytef *)plain;
    s->def.avail_in = (uInt)len;
    s->def.next_out = out + off;
    s->def.avail_out = (uInt)(cap - off);
    int rc = deflate(&s->def, Z_SYNC_FLUSH);
    if ((rc != Z_OK && rc != Z_BUF_ERROR) || s->def.avail_in != 0 || s->def.avail_out == 0) {
        s->out_dead = true;
        return -EMSGSIZE;
    }
    s->def_hdr_sent = true;
    return (int)(cap - s->def.avail_out);
}

// Builds, compresses and sends a SYN_STREAM/SYN_REPLY whose payload starts
// with the `fixed_len` bytes at `fixed`. Blocks that do not fit the inline
// buffers use heap buffers sized to them, freed before returning.
static int send_headers_frame(kx_spdy_session *s, uint16_t type, uint8_t flags, const uint8_t *fixed,
                              size_t fixed_len, const kx_spdy_nv *nv, size_t n)
{
    int len = block_len(nv, n);
    if (len < 0)
        return len;
    int rc = deflate_ready(s);
    if (rc < 0)
        return rc;
    // deflateBound is zlib's worst case for this window/memLevel; a sync
    // flush adds at most 5 bytes plus the partial byte before it.
    size_t cap = fixed_len + ZLIB_HDR_LEN + deflateBound(&s->def, (uLong)len) + 16;
    uint8_t plain_small[PLAIN_INLINE], out_small[OUT_INLINE];
    uint8_t *plain = (size_t)len <= PLAIN_INLINE ? plain_small : (uint8_t *)malloc((size_t)len);
    uint8_t *out = cap <= OUT_INLINE ? out_small : (uint8_t *)malloc(cap);
    if (!plain || !out) {
        rc = -ENOMEM;
        goto done;
    }
    write_block(plain, nv, n);
    memcpy(out, fixed, fixed_len);
    rc = compress_block(s, plain, (size_t)len, out + fixed_len, cap - fixed_len);
    if (rc >= 0)
        rc = send_control(s, type, flags, out, fixed_len + (size_t)rc);
done:
    if (plain && plain != plain_small)
        free(plain);
    if (out && out != out_small)
        free(out);
    return rc;
}

static bool can_send(const kx_spdy_session *s)
{
    return !s->goaway_sent && !s->out_dead;
}

int kx_spdy_reply(kx_spdy_session *s, uint32_t id, const kx_spdy_nv *nv, size_t n, bool fin)
{
    if (!can_send(s))
        return -EPIPE;
    stream *st = find_stream(s, id);
    if (!st || (st->flags & (ST_LOCAL | ST_REPLIED)))
        return -EINVAL;
    uint8_t fixed[SYN_REPLY_FIXED];
    kx_put_be32(fixed, id);
    int rc = send_headers_frame(s, KX_SPDY_SYN_REPLY, fin ? KX_SPDY_FLAG_FIN : 0, fixed, sizeof fixed, nv, n);
    if (rc < 0)
        return rc;
    st->flags |= ST_REPLIED;
    if (fin) {
        st->flags |= ST_LOCAL_FIN;
        maybe_drop(s, st);
    }
    return 0;
}

int kx_spdy_open(kx_spdy_session *s, const kx_spdy_nv *nv, size_t n, bool fin, uint32_t *id_out)
{
    if (!can_send(s) || s->goaway_recv)
        return -EPIPE;
    if (s->next_local_id > KX_SPDY_MAX_STREAM_ID)
        return -ENOSPC;
    if (s->nstreams >= KX_SPDY_MAX_STREAMS)
        return -EAGAIN;
    if (reserve_stream(s) < 0)
        return -ENOMEM;
    uint32_t id = s->next_local_id;
    uint8_t fixed[SYN_STREAM_FIXED];
    kx_put_be32(fixed, id);
    kx_put_be32(fixed + 4, 0);
    fixed[8] = 0; // priority 0 (top 3 bits)
    fixed[9] = 0; // slot
    int rc = send_headers_frame(s, KX_SPDY_SYN_STREAM, fin ? KX_SPDY_FLAG_FIN : 0, fixed, sizeof fixed, nv, n);
    if (rc < 0)
        return rc;
    s->next_local_id += 2;
    add_stream(s, id, (uint8_t)(ST_LOCAL | (fin ? ST_LOCAL_FIN : 0)));
    if (id_out)
        *id_out = id;
    return 0;
}

int kx_spdy_data(kx_spdy_session *s, uint32_t id, const uint8_t *p, size_t len, bool fin)
{
    if (!can_send(s))
        return -EPIPE;
    stream *st = find_stream(s, id);
    if (!st || (st->flags & ST_LOCAL_FIN) || (!(st->flags & ST_LOCAL) && !(st->flags & ST_REPLIED)))
        return -EINVAL;
    if (len && !p)
        return -EINVAL;
    if (len == 0 && !fin)
        return 0;
    do {
        size_t chunk = len < KX_SPDY_MAX_DATA_CHUNK ? len : KX_SPDY_MAX_DATA_CHUNK;
        bool last = chunk == len;
        uint8_t h[KX_SPDY_FRAME_HEADER_LEN];
        kx_put_be32(h, id);
        h[4] = (last && fin) ? KX_SPDY_FLAG_FIN : 0;
        kx_put_be24(h + 5, (uint32_t)chunk);
        int rc = emit(s, h, chunk ? p : nullptr, chunk);
        if (rc < 0)
            return rc;
        p += chunk;
        len -= chunk;
    } while (len);
    if (fin) {
        st->flags |= ST_LOCAL_FIN;
        maybe_drop(s, st);
    }
    return 0;
}

int kx_spdy_rst(kx_spdy_session *s, uint32_t id, uint32_t status)
{
    if (id == 0 || id > KX_SPDY_MAX_STREAM_ID || status == 0)
        return -EINVAL;
    if (!can_send(s))
        return -EPIPE;
    int rc = send_two_u32(s, KX_SPDY_RST_STREAM, id, status);
    if (rc < 0)
        return rc;
    stream *st = find_stream(s, id);
    if (st)
        drop_stream(s, st);
    return 0;
}

int kx_spdy_ping(kx_spdy_session *s, uint32_t id)
{
    if (id == 0)
        return -EINVAL;
    if (!can_send(s))
        return -EPIPE;
    uint8_t p[4];
    kx_put_be32(p, id);
    return send_control(s, KX_SPDY_PING, 0, p, sizeof p);
}

int kx_spdy_goaway(kx_spdy_session *s, uint32_t status)
{
    if (!can_send(s))
        return -EPIPE;
    int rc = send_two_u32(s, KX_SPDY_GOAWAY, s->last_peer_id, status);
    s->goaway_sent = true;
    return rc;
}

// ---- Input --------------------------------------------------------------------

int kx_spdy_parse_nv_block(const uint8_t *p, size_t len, kx_spdy_nv *out, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!p || len < 4 || !n || (max && !out))
        return -EPROTO;
    uint32_t count = kx_get_be32(p);
    if (count > max)
        return -EMSGSIZE;
    size_t off = 4;
    for (uint32_t i = 0; i < count; i++) {
        if (len - off < 4)
            return -EPROTO;
        uint32_t nl = kx_get_be32(p + off);
        off += 4;
        if (nl == 0 || nl > len - off)
            return -EPROTO;
        const char *name = (const char *)p + off;
        for (uint32_t k = 0; k < nl; k++)
            if ((name[k] >= 'A' && name[k] <= 'Z') || name[k] == '\0')
                return -EPROTO;
        off += nl;
        if (len - off < 4)
            return -EPROTO;
        uint32_t vl = kx_get_be32(p + off);
        off += 4;
        if (vl > len - off)
            return -EPROTO;
        out[i].name = name;
        out[i].name_len = nl;
        out[i].value = (const char *)p + off;
        out[i].value_len = vl;
        off += vl;
    }
    if (off != len)
        return -EPROTO;
    *n = count;
    return 0;
}

// Inflates one complete compressed block with the session's one inflate
// context and parses it into nv (KX_SPDY_MAX_HEADERS entries). The output
// buffer starts inline and doubles on the heap up to the limit; nv points
// into it until release_rx() runs. Returns the pair count or <0.
static int inflate_block(kx_spdy_session *s, const uint8_t *p, size_t len, kx_spdy_nv *nv)
{
    if (s->hdr_dropped)
        return -EPROTO;   // the session said it wants no more streams
    if (!s->inf_ready) {
        if (inflateInit(&s->inf) != Z_OK)
            return -ENOMEM;
        s->inf_ready = true;
    }
    s->inf.next_in = (Bytef *)p;
    s->inf.avail_in = (uInt)len;
    s->inf.next_out = s->inflated;
    s->inf.avail_out = (uInt)s->infl_cap;
    for (;;) {
        int rc = inflate(&s->inf, Z_SYNC_FLUSH);
        if (rc == Z_NEED_DICT) {
            if (inflateSetDictionary(&s->inf, kx_spdy_dict, KX_SPDY_DICT_LEN) != Z_OK)
                return -EPROTO;
            continue;
        }
        if (s->inf.avail_out == 0) {
            if (s->infl_cap == KX_SPDY_MAX_HEADER_BLOCK + 1)
                return -EMSGSIZE;
            size_t cap = s->infl_cap * 2;
            if (cap > KX_SPDY_MAX_HEADER_BLOCK + 1)
                cap = KX_SPDY_MAX_HEADER_BLOCK + 1;
            uint8_t *nb = (uint8_t *)malloc(cap);
            if (!nb)
                return -ENOMEM;
            memcpy(nb, s->inflated, s->infl_cap);
            if (s->inflated != s->infl_small)
                free(s->inflated);
            s->inflated = nb;
            s->inf.next_out = nb + s->infl_cap;
            s->inf.avail_out = (uInt)(cap - s->infl_cap);
            s->infl_cap = cap;
            continue;
        }
        if (rc == Z_OK && s->inf.avail_in)
            continue;
        // Z_STREAM_END means the peer used Z_FINISH: the shared context is over.
        if ((rc != Z_OK && rc != Z_BUF_ERROR) || s->inf.avail_in != 0)
            return -EPROTO;
        break;
    }
    size_t out_len = s->infl_cap - s->inf.avail_out;
    size_t n = 0;
    int rc = kx_spdy_parse_nv_block(s->inflated, out_len, nv, KX_SPDY_MAX_HEADERS, &n);
    return rc < 0 ? rc : (int)n;
}

// Drops the heap buffers a big control frame needed; back to inline ones.
static void release_rx(kx_spdy_session *s)
{
    if (s->ctrl != s->ctrl_small)
        free(s->ctrl);
    s->ctrl = s->ctrl_small;
    if (s->inflated != s->infl_small)
        free(s->inflated);
    s->inflated = s->infl_small;
    s->infl_cap = INFL_INLINE;
}

static int fail(kx_spdy_session *s, int err)
{
    s->state = rx_state::dead;
    s->err = err;
    return err;
}

// Sends a frame from inside kx_spdy_recv; after our GOAWAY nothing goes out.
static int reply_rst(kx_spdy_session *s, uint32_t id, uint32_t status)
{
    if (s->goaway_sent || s->out_dead)
        return 0;
    return send_two_u32(s, KX_SPDY_RST_STREAM, id, status);
}

static int on_syn_stream(kx_spdy_session *s)
{
    uint32_t id = kx_get_be32(s->ctrl) & KX_SPDY_MAX_STREAM_ID;
    if (id == 0)
        return -EPROTO;
    // Always inflate, even for refused streams, to keep the context in sync.
    kx_spdy_nv nv[KX_SPDY_MAX_HEADERS];
    int n = inflate_block(s, s->ctrl + SYN_STREAM_FIXED, s->ctl_len - SYN_STREAM_FIXED, nv);
    if (n < 0)
        return n;
    if (s->goaway_sent)
        return 0; // we promised to take no new streams and may send nothing
    if (id < s->next_peer_id || find_stream(s, id))
        return reply_rst(s, id, KX_SPDY_PROTOCOL_ERROR);
    s->next_peer_id = id + 2;
    s->last_peer_id = id;
    if (s->nstreams >= KX_SPDY_MAX_STREAMS || reserve_stream(s) < 0)
        return reply_rst(s, id, KX_SPDY_REFUSED_STREAM);
    bool fin = s->flags & KX_SPDY_FLAG_FIN;
    add_stream(s, id, 0);
    if (s->cb.on_stream)
        s->cb.on_stream(s->user, id, nv, (size_t)n, fin);
    if (fin)
        remote_fin(s, id);
    return 0;
}

static int on_syn_reply(kx_spdy_session *s)
{
    uint32_t id = kx_get_be32(s->ctrl) & KX_SPDY_MAX_STREAM_ID;
    if (id == 0)
        return -EPROTO;
    kx_spdy_nv nv[KX_SPDY_MAX_HEADERS];
    int n = inflate_block(s, s->ctrl + SYN_REPLY_FIXED, s->ctl_len - SYN_REPLY_FIXED, nv);
    if (n < 0)
        return n;
    stream *st = find_stream(s, id);
    // Replies to streams we reset, or duplicates, are dropped.
    if (!st || !(st->flags & ST_LOCAL) || (st->flags & ST_REPLIED))
        return 0;
    st->flags |= ST_REPLIED;
    bool fin = s->flags & KX_SPDY_FLAG_FIN;
    if (s->cb.on_reply)
        s->cb.on_reply(s->user, id, nv, (size_t)n, fin);
    if (fin)
        remote_fin(s, id);
    return 0;
}

static int on_headers(kx_spdy_session *s)
{
    uint32_t id = kx_get_be32(s->ctrl) & KX_SPDY_MAX_STREAM_ID;
    if (id == 0)
        return -EPROTO;
    kx_spdy_nv nv[KX_SPDY_MAX_HEADERS];
    int n = inflate_block(s, s->ctrl + SYN_REPLY_FIXED, s->ctl_len - SYN_REPLY_FIXED, nv);
    if (n < 0)
        return n;
    if (s->flags & KX_SPDY_FLAG_FIN)
        remote_fin(s, id);
    return 0;
}

static int on_control(kx_spdy_session *s)
{
    const uint8_t *p = s->ctrl;
    switch (s->ctl_type) {
    case KX_SPDY_SYN_STREAM:
        return on_syn_stream(s);
    case KX_SPDY_SYN_REPLY:
        return on_syn_reply(s);
    case KX_SPDY_HEADERS:
        return on_headers(s);
    case KX_SPDY_RST_STREAM: {
        uint32_t id = kx_get_be32(p) & KX_SPDY_MAX_STREAM_ID, status = kx_get_be32(p + 4);
        if (id == 0 || status == 0)
            return -EPROTO;
        stream *st = find_stream(s, id);
        if (!st)
            return 0;
        drop_stream(s, st);
        if (s->cb.on_rst)
            s->cb.on_rst(s->user, id, status);
        return 0;
    }
    case KX_SPDY_SETTINGS: {
        // Accepted and ignored; only the layout is checked.
        uint32_t count = kx_get_be32(p);
        if (count > (s->ctl_len - 4) / 8 || 4 + (size_t)count * 8 != s->ctl_len)
            return -EPROTO;
        return 0;
    }
    case KX_SPDY_PING: {
        uint32_t id = kx_get_be32(p);
        if (id == 0)
            return -EPROTO;
        // Odd ids are client pings: a server echoes them, a client treats them
        // as answers to its own. Echo is byte-for-byte.
        bool peer_parity = (id & 1) == (s->is_server ? 1u : 0u);
        if (!peer_parity || s->goaway_sent || s->out_dead)
            return 0;
        return emit(s, s->hdr, p, 4);
    }
    case KX_SPDY_GOAWAY: {
        s->state = rx_state::goaway;
        s->goaway_recv = true;
        if (s->cb.on_goaway)
            s->cb.on_goaway(s->user, kx_get_be32(p) & KX_SPDY_MAX_STREAM_ID, kx_get_be32(p + 4));
        return 0;
    }
    case KX_SPDY_WINDOW_UPDATE:
        return 0; // no flow control toward Go peers (protocol.md §2.5)
    }
    return -EPROTO;
}

// Checks a control frame header; returns 0 or the fatal error.
static int check_control(kx_spdy_session *s)
{
    uint16_t version = kx_get_be16(s->hdr) & 0x7fff;
    if (version != KX_SPDY_VERSION)
        return -EPROTO;
    if (s->ctl_len > KX_SPDY_MAX_CONTROL_PAYLOAD)
        return -EMSGSIZE;
    switch (s->ctl_type) {
    case KX_SPDY_SYN_STREAM:
        return s->ctl_len > SYN_STREAM_FIXED ? 0 : -EPROTO;
    case KX_SPDY_SYN_REPLY:
    case KX_SPDY_HEADERS:
        return s->ctl_len > SYN_REPLY_FIXED ? 0 : -EPROTO;
    case KX_SPDY_RST_STREAM:
    case KX_SPDY_GOAWAY:
    case KX_SPDY_WINDOW_UPDATE:
        return s->ctl_len == 8 ? 0 : -EPROTO;
    case KX_SPDY_PING:
        return s->ctl_len == 4 ? 0 : -EPROTO;
    case KX_SPDY_SETTINGS:
        return s->ctl_len >= 4 ? 0 : -EPROTO;
    }
    return -EPROTO;
}

// DATA frame ended (all payload seen).
static void data_done(kx_spdy_session *s)
{
    s->state = rx_state::head;
    if (s->flags & KX_SPDY_FLAG_FIN)
        remote_fin(s, s->data_id);
}

int kx_spdy_recv(kx_spdy_session *s, const uint8_t *data, size_t len)
{
    if (!s)
        return -EINVAL;
    if (s->state == rx_state::dead)
        return s->err;
    if (len && !data)
        return -EINVAL;
    while (len) {
        switch (s->state) {
        case rx_state::dead:
            return s->err;
        case rx_state::goaway:
            return 0;
        case rx_state::head: {
            size_t take = KX_SPDY_FRAME_HEADER_LEN - s->hdr_len;
            if (take > len)
                take = len;
            memcpy(s->hdr + s->hdr_len, data, take);
            s->hdr_len += take;
            data += take;
            len -= take;
            if (s->hdr_len < KX_SPDY_FRAME_HEADER_LEN)
                break;
            s->hdr_len = 0;
            s->flags = s->hdr[4];
            s->need = kx_get_be24(s->hdr + 5);
            if (s->hdr[0] & 0x80) {
                s->ctl_type = kx_get_be16(s->hdr + 2);
                s->ctl_len = s->need;
                int rc = check_control(s);
                if (rc < 0)
                    return fail(s, rc);
                if (s->ctl_len > CTRL_INLINE) {
                    s->ctrl = (uint8_t *)malloc(s->ctl_len);
                    if (!s->ctrl) {
                        s->ctrl = s->ctrl_small;
                        return fail(s, -ENOMEM);
                    }
                }
                s->ctrl_have = 0;
                s->state = rx_state::control;
                break;
            }
            s->data_id = kx_get_be32(s->hdr) & KX_SPDY_MAX_STREAM_ID;
            if (s->data_id == 0)
                return fail(s, -EPROTO);
            s->state = rx_state::data;
            if (s->need == 0)
                data_done(s);
            break;
        }
        case rx_state::control: {
            size_t take = s->ctl_len - s->ctrl_have;
            if (take > len)
                take = len;
            memcpy(s->ctrl + s->ctrl_have, data, take);
            s->ctrl_have += take;
            data += take;
            len -= take;
            if (s->ctrl_have < s->ctl_len)
                break;
            s->state = rx_state::head;
            int rc = on_control(s);
            release_rx(s);
            if (rc < 0)
                return fail(s, rc);
            break;
        }
        case rx_state::data: {
            size_t take = s->need < len ? s->need : len;
            // Deliver only while the stream exists and its peer side is open;
            // re-checked per piece because callbacks may reset the stream.
            stream *st = find_stream(s, s->data_id);
            if (st && !(st->flags & ST_REMOTE_FIN) && s->cb.on_data)
                s->cb.on_data(s->user, s->data_id, data, take);
            data += take;
            len -= take;
            s->need -= (uint32_t)take;
            if (s->need == 0)
                data_done(s);
            break;
        }
        }
    }
    return 0;
}

// ---- Lifetime -------------------------------------------------------------------

kx_spdy_session *kx_spdy_session_new(bool is_server, const kx_spdy_callbacks *cb, void *user)
{
    if (!cb || !cb->send)
        return nullptr;
    kx_spdy_session *s = (kx_spdy_session *)calloc(1, sizeof *s);
    if (!s)
        return nullptr;
    s->cb = *cb;
    s->user = user;
    s->is_server = is_server;
    s->state = rx_state::head;
    s->next_peer_id = 1;
    s->next_local_id = is_server ? 2 : 1;
    s->streams_cap = STREAMS_INLINE;
    s->ctrl = s->ctrl_small;
    s->inflated = s->infl_small;
    s->infl_cap = INFL_INLINE;
    return s;
}

void kx_spdy_drop_header_state(kx_spdy_session *s)
{
    if (s->def_ready)
        deflateEnd(&s->def);
    if (s->inf_ready)
        inflateEnd(&s->inf);
    s->def_ready = s->inf_ready = false;
    s->hdr_dropped = true;
}

void kx_spdy_session_free(kx_spdy_session *s)
{
    if (!s)
        return;
    if (s->def_ready)
        deflateEnd(&s->def);
    if (s->inf_ready)
        inflateEnd(&s->inf);
    release_rx(s); // a control frame may be half received
    while (s->more) {
        stream_block *b = s->more;
        s->more = b->next;
        free(b);
    }
    free(s);
}
