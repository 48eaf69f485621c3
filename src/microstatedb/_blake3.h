/* BLAKE3 in hash mode, portable C, for the log's frame checksums.
 *
 * The blake3 package computes the same digests, but it releases the GIL for every input of a
 * few KB and takes it back after: a commit that checksums its frames one call each then waits
 * for the GIL once per frame, and a busy writer holds it for up to the switch interval each
 * time. Here a whole commit is framed, checksummed and written in one call that releases the
 * GIL once (write_frames in _speedups.c). Only what the frames need: one-shot hashing of any
 * length and the first output block. Written from the BLAKE3 specification; the tests hold it
 * to the blake3 package byte for byte. */

#ifndef MSDB_BLAKE3_H
#define MSDB_BLAKE3_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define B3_BLOCK_LEN 64
#define B3_CHUNK_LEN 1024
#define B3_CHUNK_START 1u
#define B3_CHUNK_END 2u
#define B3_PARENT 4u
#define B3_ROOT 8u
#define B3_MAX_DEPTH 54 /* 2**54 chunks: more than any input */

static const uint32_t B3_IV[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                                  0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

static const uint8_t B3_PERMUTATION[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};

static inline uint32_t
b3_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void
b3_store32(uint8_t *p, uint32_t w)
{
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
}

static inline uint32_t
b3_rotr(uint32_t w, int c)
{
    return (w >> c) | (w << (32 - c));
}

#define B3_G(s, a, b, c, d, x, y)                 \
    do {                                          \
        s[a] = s[a] + s[b] + (x);                 \
        s[d] = b3_rotr(s[d] ^ s[a], 16);          \
        s[c] = s[c] + s[d];                       \
        s[b] = b3_rotr(s[b] ^ s[c], 12);          \
        s[a] = s[a] + s[b] + (y);                 \
        s[d] = b3_rotr(s[d] ^ s[a], 8);           \
        s[c] = s[c] + s[d];                       \
        s[b] = b3_rotr(s[b] ^ s[c], 7);           \
    } while (0)

/* The compression function: all 16 output words (the first 8 are the chaining value). */
static void
b3_compress(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN], uint32_t block_len,
            uint64_t counter, uint32_t flags, uint32_t out[16])
{
    uint32_t m[16], t[16], s[16];
    for (int i = 0; i < 16; i++) {
        m[i] = b3_load32(block + 4 * i);
    }
    for (int i = 0; i < 8; i++) {
        s[i] = cv[i];
    }
    s[8] = B3_IV[0];
    s[9] = B3_IV[1];
    s[10] = B3_IV[2];
    s[11] = B3_IV[3];
    s[12] = (uint32_t)counter;
    s[13] = (uint32_t)(counter >> 32);
    s[14] = block_len;
    s[15] = flags;
    for (int r = 0; r < 7; r++) {
        B3_G(s, 0, 4, 8, 12, m[0], m[1]);
        B3_G(s, 1, 5, 9, 13, m[2], m[3]);
        B3_G(s, 2, 6, 10, 14, m[4], m[5]);
        B3_G(s, 3, 7, 11, 15, m[6], m[7]);
        B3_G(s, 0, 5, 10, 15, m[8], m[9]);
        B3_G(s, 1, 6, 11, 12, m[10], m[11]);
        B3_G(s, 2, 7, 8, 13, m[12], m[13]);
        B3_G(s, 3, 4, 9, 14, m[14], m[15]);
        if (r < 6) {
            for (int i = 0; i < 16; i++) {
                t[i] = m[B3_PERMUTATION[i]];
            }
            memcpy(m, t, sizeof(m));
        }
    }
    for (int i = 0; i < 8; i++) {
        out[i] = s[i] ^ s[i + 8];
        out[i + 8] = s[i + 8] ^ cv[i];
    }
}

/* What a node gives its parent (its chaining value) or, at the root, the digest. */
typedef struct {
    uint32_t cv[8];
    uint8_t block[B3_BLOCK_LEN];
    uint64_t counter;
    uint32_t block_len;
    uint32_t flags;
} B3Output;

typedef struct {
    uint32_t cv[8];       /* the current chunk's chaining value so far */
    uint64_t chunk;       /* the current chunk's index */
    uint8_t buf[B3_BLOCK_LEN];
    uint32_t buf_len;     /* bytes in buf: its last block is compressed only when more comes */
    uint32_t blocks;      /* blocks of the current chunk compressed */
    uint32_t depth;       /* chaining values on the stack */
    uint32_t stack[B3_MAX_DEPTH][8];
} B3Hasher;

static void
b3_init(B3Hasher *h)
{
    memcpy(h->cv, B3_IV, sizeof(h->cv));
    h->chunk = 0;
    h->buf_len = 0;
    h->blocks = 0;
    h->depth = 0;
}

static inline uint32_t
b3_chunk_start(const B3Hasher *h)
{
    return h->blocks == 0 ? B3_CHUNK_START : 0;
}

static void
b3_chunk_output(const B3Hasher *h, B3Output *o)
{
    memcpy(o->cv, h->cv, sizeof(o->cv));
    memset(o->block, 0, sizeof(o->block));  /* a last partial block is zero-padded */
    memcpy(o->block, h->buf, h->buf_len);
    o->counter = h->chunk;
    o->block_len = h->buf_len;
    o->flags = b3_chunk_start(h) | B3_CHUNK_END;
}

static void
b3_parent_output(const uint32_t left[8], const uint32_t right[8], B3Output *o)
{
    memcpy(o->cv, B3_IV, sizeof(o->cv));
    for (int i = 0; i < 8; i++) {
        b3_store32(o->block + 4 * i, left[i]);
        b3_store32(o->block + 32 + 4 * i, right[i]);
    }
    o->counter = 0;
    o->block_len = B3_BLOCK_LEN;
    o->flags = B3_PARENT;
}

static void
b3_output_cv(const B3Output *o, uint32_t cv[8])
{
    uint32_t out[16];
    b3_compress(o->cv, o->block, o->block_len, o->counter, o->flags, out);
    memcpy(cv, out, 8 * sizeof(uint32_t));
}

static void
b3_update(B3Hasher *h, const uint8_t *in, size_t n)
{
    while (n > 0) {
        if (h->blocks * B3_BLOCK_LEN + h->buf_len == B3_CHUNK_LEN) {
            /* a full chunk and more input: it is not the root, so it joins the tree */
            B3Output o;
            uint32_t cv[8];
            b3_chunk_output(h, &o);
            b3_output_cv(&o, cv);
            uint64_t total = h->chunk + 1;
            while ((total & 1) == 0) {  /* merge every subtree this chunk completes */
                h->depth--;
                b3_parent_output(h->stack[h->depth], cv, &o);
                b3_output_cv(&o, cv);
                total >>= 1;
            }
            memcpy(h->stack[h->depth], cv, sizeof(cv));
            h->depth++;
            memcpy(h->cv, B3_IV, sizeof(h->cv));
            h->chunk++;
            h->buf_len = 0;
            h->blocks = 0;
        }
        if (h->buf_len == B3_BLOCK_LEN) {  /* a full block and more input for this chunk */
            uint32_t out[16];
            b3_compress(h->cv, h->buf, B3_BLOCK_LEN, h->chunk, b3_chunk_start(h), out);
            memcpy(h->cv, out, sizeof(h->cv));
            h->blocks++;
            h->buf_len = 0;
        }
        size_t take = B3_BLOCK_LEN - h->buf_len;
        if (take > n) {
            take = n;
        }
        memcpy(h->buf + h->buf_len, in, take);
        h->buf_len += (uint32_t)take;
        in += take;
        n -= take;
    }
}

/* The first 8 bytes of the digest of everything given to b3_update. */
static void
b3_final8(const B3Hasher *h, uint8_t out[8])
{
    B3Output o;
    b3_chunk_output(h, &o);
    for (uint32_t i = h->depth; i > 0; i--) {
        uint32_t cv[8];
        b3_output_cv(&o, cv);
        b3_parent_output(h->stack[i - 1], cv, &o);
    }
    uint32_t words[16];
    b3_compress(o.cv, o.block, o.block_len, 0, o.flags | B3_ROOT, words);
    b3_store32(out, words[0]);
    b3_store32(out + 4, words[1]);
}

#endif
