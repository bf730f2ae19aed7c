// tls_records.h - TLS 1.2 AES-GCM record protection with OpenSSL's libcrypto,
// loaded only when first needed (internal to the mbedTLS backend).
//
// Why: mbedTLS 2.28's AES-GCM moves ~300 MB/s per core, libcrypto's 6 GB/s.
// The CLI starts on mbedTLS (half the start-up time and memory of OpenSSL 3)
// and, once a connection carries bulk data, tls_mbedtls.cc hands the record
// layer to this module with the keys mbedTLS derived (as kernel TLS offload
// does). Records are RFC 5246 §6.2.3.3 with RFC 5288's nonce: a 4-byte salt
// from the key block and an 8-byte explicit part, the sequence number.
//
// Sans-I/O like the rest of TLS here; no allocation per record except the
// output buffer's growth. Not thread-safe (nor is anything in the CLI).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kubexec/util.h"

// Largest plaintext in one record (RFC 5246 §6.2.1) and the ciphertext
// limit a record may carry (§6.2.3: plaintext + 2048).
#define KX_TLSREC_MAX_PLAIN 16384u
#define KX_TLSREC_MAX_BODY (KX_TLSREC_MAX_PLAIN + 2048u)
// Header + explicit nonce + tag around each record's plaintext.
#define KX_TLSREC_OVERHEAD (5u + 8u + 16u)

struct kx_tlsrec;

// Keys for a client: it writes with the client_write key/salt and reads
// with the server's; key_len 16 (AES-128-GCM) or 32 (AES-256-GCM).
// write_seq / read_seq: the sequence numbers of the next record each way.
struct kx_tlsrec_keys {
    const uint8_t *write_key, *read_key;
    size_t key_len;
    const uint8_t *write_salt, *read_salt; // 4 bytes each
    uint64_t write_seq, read_seq;
};

// Makes a protector. 0; -ENOSYS when libcrypto cannot be loaded (the
// caller keeps mbedTLS); -EINVAL for a key length other than 16 or 32;
// -ENOMEM. Copies the keys: the caller may wipe its own.
int kx_tlsrec_new(kx_tlsrec **out, const kx_tlsrec_keys *k);
// Wipes the keys and frees. Null is fine.
void kx_tlsrec_free(kx_tlsrec *r);

// Appends one record of `type` carrying p[0..n), n <= KX_TLSREC_MAX_PLAIN,
// to out. 0; -EINVAL (n too large), -ENOMEM (out is unchanged then),
// -EPROTO (libcrypto refused; the protector must not be used again).
int kx_tlsrec_seal(kx_tlsrec *r, uint8_t type, const uint8_t *p, size_t n, kx_buf *out);

// Size of the record starting at p[0..n): 0 while it is incomplete,
// -EPROTO if the header is not a TLS 1.2 record or announces more than
// KX_TLSREC_MAX_BODY bytes (a peer never sends those).
long kx_tlsrec_next(const uint8_t *p, size_t n);

// Opens the complete record rec[0..len) (len as kx_tlsrec_next said) in
// place: its type, and its plaintext as a window inside rec. 0; -EBADMSG
// when the tag does not verify (tampering, wrong keys or sequence); -EPROTO
// when the record is too short or its plaintext exceeds KX_TLSREC_MAX_PLAIN.
// A failure is final for the connection (TLS sends a fatal alert).
int kx_tlsrec_open(kx_tlsrec *r, uint8_t *rec, size_t len, uint8_t *type, uint8_t **plain,
                   size_t *plain_len);
