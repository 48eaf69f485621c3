/* BLAKE3 in hash mode, portable C, for the log's frame checksums.
 *
 * The blake3 package computes the same digests, but it releases the GIL for every input of a
 * few KB and takes it back after: a commit that checksums its frames one call each then waits
 * for the GIL once per frame, and a busy writer holds it for up to the switch interval each
 * time. Here a whole commit is framed, checksummed and written in one call that releases the
 * GIL once (commit_to in _speedups.c). Only what the frames need: hashing of any length and
 * the first 8 bytes of the digest; with AVX2, eight whole chunks at a time. Written from the
 * BLAKE3 specification; the tests hold it to the blake3 package byte for byte. */

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

/* The seven rounds over state s and message m (t: room for the permuted message), with G the
 * mixing step for their type: words, or vectors of one word from each of eight chunks. */
#define B3_ROUNDS(G, s, m, t)                             \
    do {                                                  \
        for (int r = 0; r < 7; r++) {                     \
            G(s, 0, 4, 8, 12, m[0], m[1]);                \
            G(s, 1, 5, 9, 13, m[2], m[3]);                \
            G(s, 2, 6, 10, 14, m[4], m[5]);               \
            G(s, 3, 7, 11, 15, m[6], m[7]);               \
            G(s, 0, 5, 10, 15, m[8], m[9]);               \
            G(s, 1, 6, 11, 12, m[10], m[11]);             \
            G(s, 2, 7, 8, 13, m[12], m[13]);              \
            G(s, 3, 4, 9, 14, m[14], m[15]);              \
            if (r < 6) {                                  \
                for (int i = 0; i < 16; i++) {            \
                    t[i] = m[B3_PERMUTATION[i]];          \
                }                                         \
                memcpy(m, t, sizeof(m));                  \
            }                                             \
        }                                                 \
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
    B3_ROUNDS(B3_G, s, m, t);
    for (int i = 0; i < 8; i++) {
        out[i] = s[i] ^ s[i + 8];
        out[i + 8] = s[i + 8] ^ cv[i];
    }
}


#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B3_HAVE_AVX2 1
#include <immintrin.h>

#define B3_AVX2 __attribute__((target("avx2")))

B3_AVX2 static inline __m256i
b3v_rot16(__m256i x)
{
    return _mm256_shuffle_epi8(
        x, _mm256_set_epi8(13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2, 13, 12, 15, 14, 9,
                           8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2));
}

B3_AVX2 static inline __m256i
b3v_rot8(__m256i x)
{
    return _mm256_shuffle_epi8(
        x, _mm256_set_epi8(12, 15, 14, 13, 8, 11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1, 12, 15, 14, 13, 8,
                           11, 10, 9, 4, 7, 6, 5, 0, 3, 2, 1));
}

#define B3V_ROTR(x, c) _mm256_or_si256(_mm256_srli_epi32((x), (c)), _mm256_slli_epi32((x), 32 - (c)))

#define B3V_G(s, a, b, c, d, x, y)                                        \
    do {                                                                  \
        s[a] = _mm256_add_epi32(_mm256_add_epi32(s[a], s[b]), (x));      \
        s[d] = b3v_rot16(_mm256_xor_si256(s[d], s[a]));                   \
        s[c] = _mm256_add_epi32(s[c], s[d]);                              \
        s[b] = B3V_ROTR(_mm256_xor_si256(s[b], s[c]), 12);                \
        s[a] = _mm256_add_epi32(_mm256_add_epi32(s[a], s[b]), (y));      \
        s[d] = b3v_rot8(_mm256_xor_si256(s[d], s[a]));                    \
        s[c] = _mm256_add_epi32(s[c], s[d]);                              \
        s[b] = B3V_ROTR(_mm256_xor_si256(s[b], s[c]), 7);                 \
    } while (0)

/* Transposes 8 vectors of 8 words: out[w] lane j = in[j] word w. */
B3_AVX2 static inline void
b3v_transpose(__m256i v[8])
{
    __m256i a0 = _mm256_unpacklo_epi32(v[0], v[1]), a1 = _mm256_unpackhi_epi32(v[0], v[1]);
    __m256i a2 = _mm256_unpacklo_epi32(v[2], v[3]), a3 = _mm256_unpackhi_epi32(v[2], v[3]);
    __m256i a4 = _mm256_unpacklo_epi32(v[4], v[5]), a5 = _mm256_unpackhi_epi32(v[4], v[5]);
    __m256i a6 = _mm256_unpacklo_epi32(v[6], v[7]), a7 = _mm256_unpackhi_epi32(v[6], v[7]);
    __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
    __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
    __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
    __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
    v[0] = _mm256_permute2x128_si256(b0, b4, 0x20);
    v[1] = _mm256_permute2x128_si256(b1, b5, 0x20);
    v[2] = _mm256_permute2x128_si256(b2, b6, 0x20);
    v[3] = _mm256_permute2x128_si256(b3, b7, 0x20);
    v[4] = _mm256_permute2x128_si256(b0, b4, 0x31);
    v[5] = _mm256_permute2x128_si256(b1, b5, 0x31);
    v[6] = _mm256_permute2x128_si256(b2, b6, 0x31);
    v[7] = _mm256_permute2x128_si256(b3, b7, 0x31);
}

/* The chaining values of the 8 whole chunks at `in`, numbered from `counter`; none is the
 * root. Each lane of a vector is one chunk. */
B3_AVX2 static void
b3_hash8_avx2(const uint8_t *in, uint64_t counter, uint32_t out[8][8])
{
    __m256i h[8], m[16], t[16], s[16];
    for (int i = 0; i < 8; i++) {
        h[i] = _mm256_set1_epi32((int)B3_IV[i]);
    }
    __m256i lo = _mm256_set_epi32((int)(uint32_t)(counter + 7), (int)(uint32_t)(counter + 6),
                                  (int)(uint32_t)(counter + 5), (int)(uint32_t)(counter + 4),
                                  (int)(uint32_t)(counter + 3), (int)(uint32_t)(counter + 2),
                                  (int)(uint32_t)(counter + 1), (int)(uint32_t)counter);
    __m256i hi = _mm256_set_epi32(
        (int)(uint32_t)((counter + 7) >> 32), (int)(uint32_t)((counter + 6) >> 32),
        (int)(uint32_t)((counter + 5) >> 32), (int)(uint32_t)((counter + 4) >> 32),
        (int)(uint32_t)((counter + 3) >> 32), (int)(uint32_t)((counter + 2) >> 32),
        (int)(uint32_t)((counter + 1) >> 32), (int)(uint32_t)(counter >> 32));
    for (int b = 0; b < 16; b++) {
        for (int j = 0; j < 8; j++) {  /* words 0-7 and 8-15 of block b of chunk j */
            m[j] = _mm256_loadu_si256((const __m256i *)(in + j * B3_CHUNK_LEN + b * 64));
            m[8 + j] = _mm256_loadu_si256((const __m256i *)(in + j * B3_CHUNK_LEN + b * 64 + 32));
        }
        b3v_transpose(m);
        b3v_transpose(m + 8);
        uint32_t flags = (b == 0 ? B3_CHUNK_START : 0) | (b == 15 ? B3_CHUNK_END : 0);
        for (int i = 0; i < 8; i++) {
            s[i] = h[i];
        }
        s[8] = _mm256_set1_epi32((int)B3_IV[0]);
        s[9] = _mm256_set1_epi32((int)B3_IV[1]);
        s[10] = _mm256_set1_epi32((int)B3_IV[2]);
        s[11] = _mm256_set1_epi32((int)B3_IV[3]);
        s[12] = lo;
        s[13] = hi;
        s[14] = _mm256_set1_epi32(B3_BLOCK_LEN);
        s[15] = _mm256_set1_epi32((int)flags);
        B3_ROUNDS(B3V_G, s, m, t);
        for (int i = 0; i < 8; i++) {
            h[i] = _mm256_xor_si256(s[i], s[i + 8]);
        }
    }
    b3v_transpose(h);  /* now h[j] holds chunk j's chaining value */
    for (int j = 0; j < 8; j++) {
        _mm256_storeu_si256((__m256i *)out[j], h[j]);
    }
}
#else
#define B3_HAVE_AVX2 0
#endif

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

/* A finished chunk's chaining value joins the tree; the next chunk starts empty. */
static void
b3_push_chunk(B3Hasher *h, const uint32_t chunk_cv[8])
{
    B3Output o;
    uint32_t cv[8];
    memcpy(cv, chunk_cv, sizeof(cv));
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

#if B3_HAVE_AVX2
static int b3_avx2 = -1;  /* whether the CPU has AVX2: asked once */
#endif

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
            b3_push_chunk(h, cv);
        }
#if B3_HAVE_AVX2
        if (h->blocks == 0 && h->buf_len == 0 && n > 8 * B3_CHUNK_LEN) {
            if (b3_avx2 < 0) {
                b3_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
            }
            /* eight whole chunks at a time, none of them the last: more input follows */
            while (b3_avx2 && n > 8 * B3_CHUNK_LEN) {
                uint32_t cvs[8][8];
                b3_hash8_avx2(in, h->chunk, cvs);
                for (int j = 0; j < 8; j++) {
                    b3_push_chunk(h, cvs[j]);
                }
                in += 8 * B3_CHUNK_LEN;
                n -= 8 * B3_CHUNK_LEN;
            }
        }
#endif
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
