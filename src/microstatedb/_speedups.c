/* The store's local write path and the durable log's commit, compiled.
 *
 * A local write through a CRDT handle ends in one call of the key's writer: it takes the
 * next sequence number and HLC timestamp, encodes the event as msgpack and hands it to the
 * log. In CPython that bookkeeping cost more than the CRDT update it records; here it is one
 * C call. Every rule stays where it is defined in Python: the writer reads and writes the
 * same fields the Python write path uses (``HLCState`` under ``HLC``, ``WriteState`` under
 * ``Store``), calls ``HLC.tick`` once per millisecond, and hands every value it does not
 * encode itself (a type outside msgpack's core, a subclass, an int beyond 64 bits) to the
 * same encoder the Python path uses, so both write the same bytes or raise the same error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "_blake3.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

/* ------------------------------------------------------------------ HLCState */

typedef struct {
    PyObject_HEAD
    unsigned long long last;
    double edge;
} HLCState;

static PyMemberDef hlcstate_members[] = {
    {"last", T_ULONGLONG, offsetof(HLCState, last), 0,
     "The largest timestamp issued or seen so far."},
    {"edge", T_DOUBLE, offsetof(HLCState, edge), 0,
     "A wall reading in ms below this one gives last + 1."},
    {NULL},
};

static PyTypeObject HLCStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.HLCState",
    .tp_doc = "The fields of a hybrid logical clock that the compiled write path steps.",
    .tp_basicsize = sizeof(HLCState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_members = hlcstate_members,
};

/* ---------------------------------------------------------------- WriteState */

typedef struct {
    PyObject_HEAD
    PyObject *blocked;
    PyObject *deps;
    PyObject *touched;
    Py_ssize_t since_snapshot;
    Py_ssize_t snapshot_every;
} WriteState;

static PyMemberDef writestate_members[] = {
    {"_blocked", T_OBJECT, offsetof(WriteState, blocked), 0, NULL},
    {"_deps", T_OBJECT, offsetof(WriteState, deps), 0, NULL},
    {"_touched", T_OBJECT, offsetof(WriteState, touched), 0, NULL},
    {"_since_snapshot", T_PYSSIZET, offsetof(WriteState, since_snapshot), 0, NULL},
    {"_snapshot_every", T_PYSSIZET, offsetof(WriteState, snapshot_every), 0, NULL},
    {NULL},
};

static int
writestate_traverse(WriteState *self, visitproc visit, void *arg)
{
    Py_VISIT(self->blocked);
    Py_VISIT(self->deps);
    Py_VISIT(self->touched);
    return 0;
}

static int
writestate_clear(WriteState *self)
{
    Py_CLEAR(self->blocked);
    Py_CLEAR(self->deps);
    Py_CLEAR(self->touched);
    return 0;
}

static void
writestate_dealloc(WriteState *self)
{
    PyObject_GC_UnTrack(self);
    writestate_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject WriteStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.WriteState",
    .tp_doc = "The fields of a store that its compiled write path reads and updates.",
    .tp_basicsize = sizeof(WriteState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)writestate_traverse,
    .tp_clear = (inquiry)writestate_clear,
    .tp_dealloc = (destructor)writestate_dealloc,
    .tp_members = writestate_members,
};

/* ------------------------------------------------------------------- msgpack */

/* Encodes the msgpack core (None, bool, int within 64 bits, float, str, bytes, list, tuple,
 * dict) exactly as msgpack's Packer(use_bin_type=True) does. Anything else returns
 * UNSUPPORTED with no exception set, and the caller hands the whole value to the Python
 * encoder instead. */

#define UNSUPPORTED (-2)
#define MAX_DEPTH 32

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
    int owned;          /* p is a PyMem block of this Buf's own, else someone else's room */
    char local[256];
} Buf;

static inline void
buf_init(Buf *b)  /* no initializer: zeroing the local buffer would cost more than the write */
{
    b->p = b->local;
    b->len = 0;
    b->cap = sizeof(b->local);
    b->owned = 0;
}

static inline void
buf_free(Buf *b)
{
    if (b->owned) {
        PyMem_Free(b->p);
    }
}

static int
buf_grow(Buf *b, Py_ssize_t need)
{
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + need) {
        cap *= 2;
    }
    char *p;
    if (!b->owned) {
        p = PyMem_Malloc(cap);
        if (p != NULL) {
            memcpy(p, b->p, b->len);
        }
    }
    else {
        p = PyMem_Realloc(b->p, cap);
    }
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    b->owned = 1;
    return 0;
}

/* memcpy for the short strings events are made of (names, keys, kinds): a call to the C
 * library's memcpy cost more than the copy. Copies of 4 to 32 bytes are two overlapping
 * fixed-size moves. */
static inline void
copy_short(char *dst, const char *src, Py_ssize_t n)
{
    if (n > 32) {
        memcpy(dst, src, n);
    }
    else if (n >= 16) {
        char a[16], z[16];
        memcpy(a, src, 16);
        memcpy(z, src + n - 16, 16);
        memcpy(dst, a, 16);
        memcpy(dst + n - 16, z, 16);
    }
    else if (n >= 8) {
        unsigned long long a, z;
        memcpy(&a, src, 8);
        memcpy(&z, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &z, 8);
    }
    else if (n >= 4) {
        unsigned int a, z;
        memcpy(&a, src, 4);
        memcpy(&z, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &z, 4);
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            dst[i] = src[i];
        }
    }
}

#define RESERVE(b, n)                                                    \
    do {                                                                 \
        if ((b)->len + (n) > (b)->cap && buf_grow((b), (n)) < 0) {       \
            return -1;                                                   \
        }                                                                \
    } while (0)

static inline void
put_be(char *p, unsigned long long v, int n)
{
#if (defined(__GNUC__) || defined(__clang__)) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* n is a constant at every call: one swap and one store instead of a loop of byte stores */
    if (n == 8) {
        uint64_t w = __builtin_bswap64(v);
        memcpy(p, &w, 8);
        return;
    }
    if (n == 4) {
        uint32_t w = __builtin_bswap32((uint32_t)v);
        memcpy(p, &w, 4);
        return;
    }
    if (n == 2) {
        uint16_t w = __builtin_bswap16((uint16_t)v);
        memcpy(p, &w, 2);
        return;
    }
#endif
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static inline int
put_head(Buf *b, unsigned char tag, unsigned long long v, int n)
{
    if (n == 0) {
        RESERVE(b, 1);
        b->p[b->len++] = (char)tag;
        return 0;
    }
    RESERVE(b, 1 + n);
    b->p[b->len] = (char)tag;
    put_be(b->p + b->len + 1, v, n);
    b->len += 1 + n;
    return 0;
}

/* The unsigned int v at p, which has room for 9 bytes; returns how many it took. */
static inline Py_ssize_t
put_uint_at(char *p, unsigned long long v)
{
    if (v < 0x80) {
        p[0] = (char)v;
        return 1;
    }
    if (v <= 0xff) {
        p[0] = (char)0xcc;
        p[1] = (char)v;
        return 2;
    }
    if (v <= 0xffff) {
        p[0] = (char)0xcd;
        put_be(p + 1, v, 2);
        return 3;
    }
    if (v <= 0xffffffffULL) {
        p[0] = (char)0xce;
        put_be(p + 1, v, 4);
        return 5;
    }
    p[0] = (char)0xcf;
    put_be(p + 1, v, 8);
    return 9;
}

static inline int
pack_uint(Buf *b, unsigned long long v)
{
    RESERVE(b, 9);
    b->len += put_uint_at(b->p + b->len, v);
    return 0;
}

static inline int
pack_int(Buf *b, PyObject *o)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (u == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return UNSUPPORTED;
        }
        return pack_uint(b, u);
    }
    if (overflow < 0) {
        return UNSUPPORTED;
    }
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v >= 0) {
        return pack_uint(b, (unsigned long long)v);
    }
    if (v >= -32) {
        return put_head(b, (unsigned char)(v & 0xff), 0, 0);
    }
    if (v >= -128) {
        return put_head(b, 0xd0, (unsigned long long)v, 1);
    }
    if (v >= -32768) {
        return put_head(b, 0xd1, (unsigned long long)v, 2);
    }
    if (v >= -2147483648LL) {
        return put_head(b, 0xd2, (unsigned long long)v, 4);
    }
    return put_head(b, 0xd3, (unsigned long long)v, 8);
}

static inline int
pack_raw(Buf *b, const char *data, Py_ssize_t n, int is_str)
{
    int r;
    if (is_str) {
        if (n < 32) {
            r = put_head(b, (unsigned char)(0xa0 | n), 0, 0);
        }
        else if (n <= 0xff) {
            r = put_head(b, 0xd9, (unsigned long long)n, 1);
        }
        else if (n <= 0xffff) {
            r = put_head(b, 0xda, (unsigned long long)n, 2);
        }
        else if ((unsigned long long)n <= 0xffffffffULL) {
            r = put_head(b, 0xdb, (unsigned long long)n, 4);
        }
        else {
            return UNSUPPORTED;
        }
    }
    else {
        if (n <= 0xff) {
            r = put_head(b, 0xc4, (unsigned long long)n, 1);
        }
        else if (n <= 0xffff) {
            r = put_head(b, 0xc5, (unsigned long long)n, 2);
        }
        else if ((unsigned long long)n <= 0xffffffffULL) {
            r = put_head(b, 0xc6, (unsigned long long)n, 4);
        }
        else {
            return UNSUPPORTED;
        }
    }
    if (r < 0) {
        return r;
    }
    RESERVE(b, n);
    copy_short(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static inline int
pack_container_head(Buf *b, Py_ssize_t n, unsigned char fix, unsigned char t16,
                    unsigned char t32)
{
    if (n < 16) {
        return put_head(b, (unsigned char)(fix | n), 0, 0);
    }
    if (n <= 0xffff) {
        return put_head(b, t16, (unsigned long long)n, 2);
    }
    if ((unsigned long long)n <= 0xffffffffULL) {
        return put_head(b, t32, (unsigned long long)n, 4);
    }
    return UNSUPPORTED;
}

#if defined(__GNUC__) || defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
/* CPython 3.11's dict keys (Include/internal/pycore_dict.h), read only to walk a combined
 * dict's entries without a call per entry, as PyDict_Next does */
#define DICT_ENTRIES_3_11
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} DictKeys311;
#endif

static int pack_obj(Buf *b, PyObject *o, int depth);

static int
pack_seq(Buf *b, PyObject *const *items, Py_ssize_t n, int depth)
{
    if (depth >= MAX_DEPTH) {
        return UNSUPPORTED;
    }
    int r = pack_container_head(b, n, 0x90, 0xdc, 0xdd);
    for (Py_ssize_t i = 0; r == 0 && i < n; i++) {
        r = pack_obj(b, items[i], depth + 1);
    }
    return r;
}

static int
pack_dict(Buf *b, PyObject *o, int depth)
{
    if (depth >= MAX_DEPTH) {
        return UNSUPPORTED;
    }
    /* A dict changed during encoding could not happen here: nothing below runs Python. So
     * its size is the number of entries to read, and no call is spent on finding the end. */
    Py_ssize_t n = PyDict_GET_SIZE(o);
    int r = pack_container_head(b, n, 0x80, 0xde, 0xdf);
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (r == 0 && n-- > 0 && PyDict_Next(o, &pos, &k, &v)) {
        r = pack_obj(b, k, depth + 1);
        if (r == 0) {
            r = pack_obj(b, v, depth + 1);
        }
    }
    return r;
}

/* One value of the msgpack core, in b. */
static int
pack_obj(Buf *b, PyObject *o, int depth)
{
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) {  /* lone surrogates: the Python encoder says what is wrong */
            PyErr_Clear();
            return UNSUPPORTED;
        }
        return pack_raw(b, s, n, 1);
    }
    if (t == &PyLong_Type) {
        return pack_int(b, o);
    }
    if (t == &PyDict_Type) {
        return pack_dict(b, o, depth);
    }
    if (t == &PyList_Type) {
        return pack_seq(b, ((PyListObject *)o)->ob_item, PyList_GET_SIZE(o), depth);
    }
    if (t == &PyTuple_Type) {
        return pack_seq(b, ((PyTupleObject *)o)->ob_item, PyTuple_GET_SIZE(o), depth);
    }
    if (o == Py_None) {
        return put_head(b, 0xc0, 0, 0);
    }
    if (o == Py_True) {
        return put_head(b, 0xc3, 0, 0);
    }
    if (o == Py_False) {
        return put_head(b, 0xc2, 0, 0);
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(o);
        unsigned long long u;
        memcpy(&u, &d, 8);
        return put_head(b, 0xcb, u, 8);
    }
    if (t == &PyBytes_Type) {
        return pack_raw(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o), 0);
    }
    return UNSUPPORTED;
}

/* The fast encoder: the shapes CRDT deltas are made of (lists, tuples and dicts of fewer than
 * 16 entries; ASCII strings under 32 characters, ints of up to two digits, floats, None and
 * booleans), written through a cursor that stays in a register: no Buf in memory to load and
 * store around every value, no call per leaf. NULL for anything else, or short of room: the
 * caller then encodes the whole event again with pack_obj, which takes every value. Both give
 * msgpack's bytes. */
#define FAST_ROOM 40  /* the most one leaf writes: a 31-byte string and its tag */

static char *fast_seq(char *p, const char *end, PyObject *const *items, Py_ssize_t n,
                      int depth);
static char *fast_dict(char *p, const char *end, PyObject *o, Py_ssize_t n, int depth);

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static ALWAYS_INLINE char *
fast_value(char *p, const char *end, PyObject *o, int depth)
{
    if (end - p < FAST_ROOM) {
        return NULL;
    }
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(o);
        if (!PyUnicode_IS_COMPACT_ASCII(o) || n >= 32) {
            return NULL;
        }
        p[0] = (char)(0xa0 | n);  /* ASCII is its own UTF-8 */
        copy_short(p + 1, (const char *)(((PyASCIIObject *)o) + 1), n);
        return p + 1 + n;
    }
    if (t == &PyLong_Type) {
#if PY_VERSION_HEX < 0x030C0000
        /* CPython 3.11's layout: the sign is the size's, then 30-bit digits */
        Py_ssize_t size = Py_SIZE(o);
        if (size >= 0 && size <= 2) {
            const digit *d = ((PyLongObject *)o)->ob_digit;
            unsigned long long v = size == 0   ? 0
                                   : size == 1 ? d[0]
                                               : d[0] | (unsigned long long)d[1] << PyLong_SHIFT;
            return p + put_uint_at(p, v);
        }
#endif
        return NULL;
    }
    if (t == &PyList_Type || t == &PyTuple_Type) {
        Py_ssize_t n = Py_SIZE(o);
        if (n >= 16 || depth >= MAX_DEPTH) {
            return NULL;
        }
        if (n == 0) {  /* empty: no call */
            p[0] = (char)0x90;
            return p + 1;
        }
        return fast_seq(p, end,
                        t == &PyList_Type ? ((PyListObject *)o)->ob_item
                                          : ((PyTupleObject *)o)->ob_item,
                        n, depth);
    }
    if (t == &PyDict_Type) {
        Py_ssize_t n = PyDict_GET_SIZE(o);
        if (n >= 16 || depth >= MAX_DEPTH) {
            return NULL;
        }
        if (n == 0) {
            p[0] = (char)0x80;
            return p + 1;
        }
        return fast_dict(p, end, o, n, depth);
    }
    if (o == Py_None) {
        p[0] = (char)0xc0;
        return p + 1;
    }
    if (o == Py_True || o == Py_False) {
        p[0] = (char)(o == Py_True ? 0xc3 : 0xc2);
        return p + 1;
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(o);
        unsigned long long u;
        memcpy(&u, &d, 8);
        p[0] = (char)0xcb;
        put_be(p + 1, u, 8);
        return p + 9;
    }
    return NULL;
}

/* A list's or a tuple's items, after its head: 1 to 15 of them, at `depth` (room for the
 * head was checked with the value). Apart from the dicts, so that each keeps few registers
 * to save per call: deltas nest lists several deep. */
static NOINLINE char *
fast_seq(char *p, const char *end, PyObject *const *items, Py_ssize_t n, int depth)
{
    *p++ = (char)(0x90 | n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((p = fast_value(p, end, items[i], depth + 1)) == NULL) {
            return NULL;
        }
    }
    return p;
}

/* A dict's entries, after its head: 1 to 15 of them, at `depth`. */
static NOINLINE char *
fast_dict(char *p, const char *end, PyObject *o, Py_ssize_t n, int depth)
{
    *p++ = (char)(0x80 | n);
#ifdef DICT_ENTRIES_3_11
    if (((PyDictObject *)o)->ma_values == NULL) {  /* combined: entries in order, holes NULL */
        DictKeys311 *dk = (DictKeys311 *)((PyDictObject *)o)->ma_keys;
        char *entries = dk->dk_indices + ((size_t)1 << dk->dk_log2_index_bytes);
        int general = dk->dk_kind == 0;  /* DICT_KEYS_GENERAL: entries carry the hash first */
        Py_ssize_t step = general ? 3 : 2;
        PyObject **e = (PyObject **)entries + (general ? 1 : 0);
        for (Py_ssize_t i = 0; n > 0 && i < dk->dk_nentries; i++, e += step) {
            if (e[1] != NULL) {
                n--;
                p = fast_value(p, end, e[0], depth + 1);
                if (p == NULL || (p = fast_value(p, end, e[1], depth + 1)) == NULL) {
                    return NULL;
                }
            }
        }
        return p;
    }
#endif
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (n-- > 0 && PyDict_Next(o, &pos, &k, &v)) {
        p = fast_value(p, end, k, depth + 1);
        if (p == NULL || (p = fast_value(p, end, v, depth + 1)) == NULL) {
            return NULL;
        }
    }
    return p;
}

/* Values encoded one after another as bytes (after an 8-element array header if asked), or
 * NULL with no exception if one of them needs the Python encoder. */
static PyObject *
pack_fields(PyObject *const *fields, Py_ssize_t n, int with_header)
{
    Buf b;
    buf_init(&b);
    int r = with_header ? put_head(&b, 0x98, 0, 0) : 0;
    for (Py_ssize_t i = 0; r == 0 && i < n; i++) {
        r = pack_obj(&b, fields[i], 0);
    }
    PyObject *out = r == 0 ? PyBytes_FromStringAndSize(b.p, b.len) : NULL;
    buf_free(&b);
    return out;
}

static PyObject *
speedups_pack(PyObject *module, PyObject *o)
{
    PyObject *out = pack_fields(&o, 1, 0);
    if (out == NULL && !PyErr_Occurred()) {
        out = Py_NewRef(Py_None);  /* outside the core: the caller's encoder takes it */
    }
    return out;
}

static PyObject *
speedups_pack_fast(PyObject *module, PyObject *o)
{
    char out[1024];
    char *end = fast_value(out, out + sizeof(out), o, 0);
    if (end == NULL) {
        Py_RETURN_NONE;  /* the write path encodes the event again with pack_obj */
    }
    return PyBytes_FromStringAndSize(out, end - out);
}

/* ------------------------------------------------------------- EncodedEvents */

/* A log's encoded events, back to back in one buffer, with their boundaries: a bytes object
 * per event cost an allocation on every write and a free when it left memory, and twice the
 * memory of the event itself. It reads as a sequence of bytes; events leave from the front
 * only (a log releases its oldest events, a commit takes the pending ones).
 *
 * With dots (a durable log's pending events), each event also carries its origin and seq, in
 * arrays beside the offsets: a commit needs each origin's largest seq per segment, and lists
 * of them cost two appends per write and an object kept alive per event until the commit. */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t cap;         /* bytes at data */
    Py_ssize_t *offs;       /* event k (counted from the last compaction): offs[k]..offs[k+1] */
    Py_ssize_t offs_cap;    /* entries at offs (and at seqs and oids) */
    Py_ssize_t first;       /* events before this one have left */
    Py_ssize_t nev;         /* events recorded in offs; offs[nev] is the bytes in use */
    /* with dots only, else NULL */
    unsigned long long *seqs;
    unsigned int *oids;     /* index of the event's origin in `origins` */
    PyObject *origins;      /* list of every origin seen, in order of first sight */
    PyObject *origin_ids;   /* dict: origin -> index */
    PyObject *last_origin;  /* borrowed from `origins`: the last one added, and its index */
    unsigned int last_oid;
    char refusing;          /* set by the log once closed or failed: appenders ask it why */
    /* Set while commit_to() writes from the arrays without the GIL: until it is clear again
     * they must not move, so a writer that needs more room waits (events_grow). */
    char copying;
    /* Drops in a row that held under a quarter of the data's or the offsets' room: that room
     * goes back only after QUIET_DROPS of them (events_drop). */
    unsigned char quiet_data, quiet_offs;
} EncodedEvents;

static PyTypeObject EncodedEventsType, TakenDotsType;

#define EV_LIVE(e) ((e)->nev - (e)->first)

/* Resizes offs and the dots' arrays to `cap` entries. A failed realloc keeps its block, at
 * least offs_cap long, so offs_cap becomes the least room any array is sure to have: `cap`
 * after a shrink either way, the old offs_cap after a failed growth (-1 then). */
static int
events_resize_offs(EncodedEvents *e, Py_ssize_t cap)
{
    Py_ssize_t least = cap;
    Py_ssize_t *offs = PyMem_Realloc(e->offs, (size_t)cap * sizeof(*offs));
    if (offs != NULL) {
        e->offs = offs;
    }
    else if (e->offs_cap < least) {
        least = e->offs_cap;
    }
    if (e->seqs != NULL) {
        unsigned long long *seqs = PyMem_Realloc(e->seqs, (size_t)cap * sizeof(*seqs));
        unsigned int *oids = PyMem_Realloc(e->oids, (size_t)cap * sizeof(*oids));
        e->seqs = seqs != NULL ? seqs : e->seqs;
        e->oids = oids != NULL ? oids : e->oids;
        if ((seqs == NULL || oids == NULL) && e->offs_cap < least) {
            least = e->offs_cap;
        }
    }
    e->offs_cap = least;
    return least == cap ? 0 : -1;
}

#if defined(__GNUC__) || defined(__clang__)
#define WRITE_WITHOUT_GIL 1
#define COPYING(e) __atomic_load_n(&(e)->copying, __ATOMIC_ACQUIRE)
#else  /* no portable atomics here: commit_to() writes with the GIL held */
#define WRITE_WITHOUT_GIL 0
#define COPYING(e) 0
#endif

/* Room for one more event of up to `need` bytes, grown. */
static NOINLINE int
events_grow(EncodedEvents *e, Py_ssize_t need)
{
    if (COPYING(e)) {  /* commit_to() is writing from these arrays: they must stay put */
        Py_BEGIN_ALLOW_THREADS
        /* a write takes microseconds to milliseconds (a slow disk): yield, then sleep */
        for (int spins = 0; COPYING(e); spins++) {
            if (spins < 100) {
                sched_yield();
            }
            else {
                struct timespec pause = {0, 50000};
                nanosleep(&pause, NULL);
            }
        }
        Py_END_ALLOW_THREADS
    }
    if (e->nev + 2 > e->offs_cap && events_resize_offs(e, e->offs_cap * 2) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t used = e->offs[e->nev];
    if (need > PY_SSIZE_T_MAX / 2 - used) {
        PyErr_NoMemory();
        return -1;
    }
    if (used + need > e->cap) {  /* by half again: a long log's slack stays under a third */
        Py_ssize_t cap = e->cap < 1024 ? 1024 : e->cap + e->cap / 2;
        while (cap < used + need) {
            cap += cap / 2;
        }
        char *data = PyMem_Realloc(e->data, (size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        e->data = data;
        e->cap = cap;
    }
    return 0;
}

/* Room for one more event of up to `need` bytes. */
static inline int
events_reserve(EncodedEvents *e, Py_ssize_t need)
{
    if (e->nev + 2 <= e->offs_cap && need <= e->cap - e->offs[e->nev]) {
        return 0;
    }
    return events_grow(e, need);
}

/* The index of `origin` in the origins table, added on first sight; -1 on error. */
static long long
events_origin_id(EncodedEvents *e, PyObject *origin)
{
    if (origin == e->last_origin) {  /* a store's own writes: the same string every time */
        return e->last_oid;
    }
    if (!PyUnicode_CheckExact(origin)) {
        PyErr_Format(PyExc_TypeError, "an origin is a str, not %.100s", Py_TYPE(origin)->tp_name);
        return -1;
    }
    PyObject *id = PyDict_GetItemWithError(e->origin_ids, origin);
    long long oid;
    if (id != NULL) {
        oid = PyLong_AsLongLong(id);
        origin = PyList_GET_ITEM(e->origins, oid);  /* the table's own object, kept alive there */
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    else {
        oid = PyList_GET_SIZE(e->origins);
        if (oid >= 0xffffffffLL) {
            PyErr_SetString(PyExc_OverflowError, "more than 2**32 - 1 origins in one buffer");
            return -1;
        }
        if (PyList_Append(e->origins, origin) < 0) {
            return -1;
        }
        PyObject *n = PyLong_FromLongLong(oid);
        if (n == NULL || PyDict_SetItem(e->origin_ids, origin, n) < 0) {
            Py_XDECREF(n);
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyList_SetSlice(e->origins, oid, oid + 1, NULL);  /* the table stays as it was */
            PyErr_Restore(type, value, tb);
            return -1;
        }
        Py_DECREF(n);
    }
    e->last_origin = origin;
    e->last_oid = (unsigned int)oid;
    return oid;
}

/* The dot an event is added with: its origin's index and its seq, checked before anything is
 * added. Without dots, none may be given. */
static int
events_dot(EncodedEvents *e, PyObject *origin, PyObject *seq, unsigned int *oid,
           unsigned long long *s)
{
    if ((e->seqs == NULL) != (origin == NULL)) {
        PyErr_SetString(PyExc_TypeError, e->seqs == NULL
                                             ? "this buffer keeps no dots: append(body)"
                                             : "this buffer keeps dots: add(body, origin, seq)");
        return -1;
    }
    if (origin == NULL) {
        return 0;
    }
    if (!PyLong_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "a seq is an int, not %.100s", Py_TYPE(seq)->tp_name);
        return -1;
    }
    *s = PyLong_AsUnsignedLongLong(seq);
    if (*s == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    long long id = events_origin_id(e, origin);
    if (id < 0) {
        return -1;
    }
    *oid = (unsigned int)id;
    return 0;
}

/* The event of `n` bytes written in place at the end of the buffer (after events_reserve)
 * becomes the last one, with its dot if the buffer keeps them. */
static inline void
events_commit(EncodedEvents *e, Py_ssize_t n, unsigned int oid, unsigned long long seq)
{
    if (e->seqs != NULL) {
        e->seqs[e->nev] = seq;
        e->oids[e->nev] = oid;
    }
    e->offs[e->nev + 1] = e->offs[e->nev] + n;
    e->nev++;
}

static int
events_add(EncodedEvents *e, const char *p, Py_ssize_t n, unsigned int oid,
           unsigned long long seq)
{
    if (events_reserve(e, n) < 0) {
        return -1;
    }
    memcpy(e->data + e->offs[e->nev], p, n);
    events_commit(e, n, oid, seq);
    return 0;
}

static int
check_body(PyObject *body)
{
    if (!PyBytes_Check(body)) {
        PyErr_Format(PyExc_TypeError, "an encoded event is bytes, not %.100s",
                     Py_TYPE(body)->tp_name);
        return -1;
    }
    return 0;
}

/* One event given as bytes; origin and seq are NULL for a buffer without dots. */
static int
events_add_object(EncodedEvents *e, PyObject *body, PyObject *origin, PyObject *seq)
{
    unsigned int oid = 0;
    unsigned long long s = 0;
    if (check_body(body) < 0 || events_dot(e, origin, seq, &oid, &s) < 0) {
        return -1;
    }
    return events_add(e, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), oid, s);
}

/* Drops the first `n` live events. Their bytes are reclaimed once they are as many as the live
 * ones: each live byte then moves at most once per its own length in released ones.
 *
 * The capacity stays what the events held before this drop needed: the next ones will need as
 * much (a log releases one snapshot interval of two, a commit takes what one interval
 * brought). Only capacity beyond four times that, left by a past burst, is given back, and
 * only once QUIET_DROPS drops in a row have left it unused. A durable log's commits take
 * uneven amounts (each waits for the GIL a varying time): giving the room back on the first
 * small one and growing into fresh pages on the next large one page-faulted the writer a
 * hundred times and more per 50,000 writes. */
#define QUIET_DROPS 16

/* Counts one more drop, quiet or not; true once QUIET_DROPS quiet ones came in a row. */
static inline int
events_quiet(unsigned char *count, int quiet)
{
    *count = !quiet ? 0 : *count < QUIET_DROPS ? *count + 1 : QUIET_DROPS;
    return *count == QUIET_DROPS;
}

static void
events_drop(EncodedEvents *e, Py_ssize_t n)
{
    Py_ssize_t held_events = EV_LIVE(e), held_bytes = e->offs[e->nev] - e->offs[e->first];
    e->first += n;
    Py_ssize_t live = EV_LIVE(e);
    int shrink_data = events_quiet(&e->quiet_data, e->cap > 65536 && held_bytes < e->cap / 4);
    int shrink_offs =
        events_quiet(&e->quiet_offs, e->offs_cap > 4096 && held_events < e->offs_cap / 4);
    if (e->first < live) {
        return;
    }
    Py_ssize_t base = e->offs[e->first];
    memmove(e->data, e->data + base, e->offs[e->nev] - base);
    for (Py_ssize_t k = 0; k <= live; k++) {
        e->offs[k] = e->offs[e->first + k] - base;
    }
    if (e->seqs != NULL) {
        memmove(e->seqs, e->seqs + e->first, (size_t)live * sizeof(*e->seqs));
        memmove(e->oids, e->oids + e->first, (size_t)live * sizeof(*e->oids));
    }
    e->first = 0;
    e->nev = live;
    /* a failed shrink keeps the larger block */
    if (shrink_data) {
        Py_ssize_t cap = held_bytes * 2 > 8192 ? held_bytes * 2 : 8192;
        char *data = PyMem_Realloc(e->data, (size_t)cap);
        if (data != NULL) {
            e->data = data;
            e->cap = cap;
        }
        e->quiet_data = 0;
    }
    if (shrink_offs) {
        events_resize_offs(e, held_events * 2 + 2 > 128 ? held_events * 2 + 2 : 128);
        e->quiet_offs = 0;
    }
}

static PyObject *
events_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dots", NULL};
    int dots = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$p:EncodedEvents", kwlist, &dots)) {
        return NULL;
    }
    EncodedEvents *e = (EncodedEvents *)type->tp_alloc(type, 0);
    if (e == NULL) {
        return NULL;
    }
    e->offs_cap = 128;
    e->offs = PyMem_Malloc(128 * sizeof(Py_ssize_t));
    if (e->offs == NULL) {
        Py_DECREF(e);
        return PyErr_NoMemory();
    }
    e->offs[0] = 0;
    if (dots) {
        e->seqs = PyMem_Malloc(128 * sizeof(*e->seqs));
        e->oids = PyMem_Malloc(128 * sizeof(*e->oids));
        e->origins = PyList_New(0);
        e->origin_ids = PyDict_New();
        if (e->seqs == NULL || e->oids == NULL || e->origins == NULL || e->origin_ids == NULL) {
            Py_DECREF(e);
            return PyErr_NoMemory();
        }
    }
    return (PyObject *)e;
}

static void
events_dealloc(EncodedEvents *e)
{
    PyMem_Free(e->data);
    PyMem_Free(e->offs);
    PyMem_Free(e->seqs);
    PyMem_Free(e->oids);
    Py_XDECREF(e->origins);  /* strs and ints only: no cycle through here */
    Py_XDECREF(e->origin_ids);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static Py_ssize_t
events_len(EncodedEvents *e)
{
    return EV_LIVE(e);
}

static PyObject *
events_bytes(EncodedEvents *e, Py_ssize_t i)
{
    Py_ssize_t lo = e->offs[e->first + i], hi = e->offs[e->first + i + 1];
    return PyBytes_FromStringAndSize(e->data + lo, hi - lo);
}

static PyObject *
events_item(EncodedEvents *e, Py_ssize_t i)
{
    if (i < 0 || i >= EV_LIVE(e)) {
        PyErr_SetString(PyExc_IndexError, "event index out of range");
        return NULL;
    }
    return events_bytes(e, i);
}

static PyObject *
events_subscript(EncodedEvents *e, PyObject *item)
{
    if (!PySlice_Check(item)) {
        Py_ssize_t i = PyNumber_AsSsize_t(item, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        return events_item(e, i < 0 ? i + EV_LIVE(e) : i);
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(item, &start, &stop, &step) < 0) {
        return NULL;
    }
    Py_ssize_t n = PySlice_AdjustIndices(EV_LIVE(e), &start, &stop, step);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t k = 0; out != NULL && k < n; k++) {
        PyObject *b = events_bytes(e, start + k * step);
        if (b == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, k, b);
    }
    return out;
}

static int
events_ass_subscript(EncodedEvents *e, PyObject *item, PyObject *value)
{
    Py_ssize_t start, stop, step;
    if (value != NULL || !PySlice_Check(item)) {
        PyErr_SetString(PyExc_TypeError, "events are only appended, or deleted from the front");
        return -1;
    }
    if (PySlice_Unpack(item, &start, &stop, &step) < 0) {
        return -1;
    }
    Py_ssize_t n = PySlice_AdjustIndices(EV_LIVE(e), &start, &stop, step);
    if (n == 0) {
        return 0;
    }
    if (start != 0 || step != 1) {
        PyErr_SetString(PyExc_ValueError, "events leave from the front only: del events[:n]");
        return -1;
    }
    events_drop(e, n);
    return 0;
}

static PyObject *
events_append(EncodedEvents *e, PyObject *body)
{
    return events_add_object(e, body, NULL, NULL) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
events_add_method(EncodedEvents *e, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add takes (body, origin, seq)");
        return NULL;
    }
    return events_add_object(e, args[0], args[1], args[2]) < 0 ? NULL : Py_NewRef(Py_None);
}

/* extend(bodies) without dots, add_many(bodies, origins, seqs) with: all or nothing. */
static PyObject *
events_extend_all(EncodedEvents *e, PyObject *bodies, PyObject *origins, PyObject *seqs)
{
    PyObject *b = NULL, *o = NULL, *s = NULL, *out = NULL;
    b = PySequence_Fast(bodies, "the bodies are an iterable of bytes");
    if (b == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(b);
    if (origins != NULL) {
        o = PySequence_Fast(origins, "the origins are an iterable of str");
        s = o == NULL ? NULL : PySequence_Fast(seqs, "the seqs are an iterable of int");
        if (s == NULL) {
            goto done;
        }
        if (PySequence_Fast_GET_SIZE(o) != n || PySequence_Fast_GET_SIZE(s) != n) {
            PyErr_SetString(PyExc_ValueError, "as many origins and seqs as bodies");
            goto done;
        }
    }
    Py_ssize_t before = e->nev;
    for (Py_ssize_t k = 0; k < n; k++) {  /* every body checked before any goes in */
        if (check_body(PySequence_Fast_GET_ITEM(b, k)) < 0) {
            goto done;
        }
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        if (events_add_object(e, PySequence_Fast_GET_ITEM(b, k),
                              o == NULL ? NULL : PySequence_Fast_GET_ITEM(o, k),
                              s == NULL ? NULL : PySequence_Fast_GET_ITEM(s, k)) < 0) {
            e->nev = before;  /* a bad dot, or out of memory: take back what went in */
            goto done;
        }
    }
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(b);
    Py_XDECREF(o);
    Py_XDECREF(s);
    return out;
}

static PyObject *
events_extend(EncodedEvents *e, PyObject *bodies)
{
    if (e->seqs != NULL) {
        PyErr_SetString(PyExc_TypeError, "this buffer keeps dots: add_many(bodies, origins, seqs)");
        return NULL;
    }
    return events_extend_all(e, bodies, NULL, NULL);
}

static PyObject *
events_add_many(EncodedEvents *e, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "add_many takes (bodies, origins, seqs)");
        return NULL;
    }
    if (e->seqs == NULL) {
        PyErr_SetString(PyExc_TypeError, "this buffer keeps no dots: extend(bodies)");
        return NULL;
    }
    return events_extend_all(e, args[0], args[1], args[2]);
}

/* ------------------------------------------------------------------ TakenDots */

/* The dots of events taken from a buffer, for the largest seq of each origin in a range. */
typedef struct {
    PyObject_HEAD
    PyObject *origins;      /* the buffer's table (it only grows) */
    Py_ssize_t n;
    unsigned long long *seqs;
    unsigned int *oids;
} TakenDots;

static void
dots_dealloc(TakenDots *d)
{
    Py_XDECREF(d->origins);
    PyMem_Free(d->seqs);
    PyMem_Free(d->oids);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static Py_ssize_t
dots_len(TakenDots *d)
{
    return d->n;
}

/* The largest seq of each origin index over events lo..hi-1 (top and seen: one per origin). */
static void
maxima_scan(const unsigned long long *seqs, const unsigned int *oids, Py_ssize_t lo,
            Py_ssize_t hi, unsigned long long *top, unsigned char *seen)
{
    for (Py_ssize_t k = lo; k < hi; k++) {
        unsigned int o = oids[k];
        if (!seen[o] || seqs[k] > top[o]) {
            top[o] = seqs[k];
            seen[o] = 1;
        }
    }
}

/* {origin: largest seq} into `out` from a scan; NULL (out released) on error. */
static PyObject *
maxima_fill(PyObject *out, PyObject *origins, Py_ssize_t norigins,
            const unsigned long long *top, const unsigned char *seen)
{
    for (Py_ssize_t o = 0; o < norigins && out != NULL; o++) {
        if (seen[o]) {
            PyObject *s = PyLong_FromUnsignedLongLong(top[o]);
            if (s == NULL || PyDict_SetItem(out, PyList_GET_ITEM(origins, o), s) < 0) {
                Py_CLEAR(out);
            }
            Py_XDECREF(s);
        }
    }
    return out;
}

static PyObject *
dots_maxima(TakenDots *d, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t lo, hi;
    if (nargs != 2 || (lo = PyNumber_AsSsize_t(args[0], PyExc_OverflowError)) == -1 ||
        (hi = PyNumber_AsSsize_t(args[1], PyExc_OverflowError)) == -1) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "maxima takes (lo, hi), two event indexes");
        }
        return NULL;
    }
    if (lo < 0 || hi > d->n || lo > hi) {
        PyErr_Format(PyExc_ValueError, "maxima(%zd, %zd) of %zd events", lo, hi, d->n);
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL || lo == hi) {
        return out;
    }
    Py_ssize_t norigins = PyList_GET_SIZE(d->origins);
    unsigned long long *top = PyMem_Calloc((size_t)norigins, sizeof(*top));
    unsigned char *seen = PyMem_Calloc((size_t)norigins, 1);
    if (top == NULL || seen == NULL) {
        PyMem_Free(top);
        PyMem_Free(seen);
        Py_DECREF(out);
        return PyErr_NoMemory();
    }
    maxima_scan(d->seqs, d->oids, lo, hi, top, seen);
    out = maxima_fill(out, d->origins, norigins, top, seen);
    PyMem_Free(top);
    PyMem_Free(seen);
    return out;
}

static PyMethodDef dots_methods[] = {
    {"maxima", (PyCFunction)(void (*)(void))dots_maxima, METH_FASTCALL,
     "maxima(lo, hi): {origin: largest seq} over the taken events lo..hi-1."},
    {NULL},
};

static PySequenceMethods dots_as_sequence = {
    .sq_length = (lenfunc)dots_len,
};

static PyTypeObject TakenDotsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.TakenDots",
    .tp_doc = "The origins and seqs of events taken from an EncodedEvents(dots=True).",
    .tp_basicsize = sizeof(TakenDots),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)dots_dealloc,
    .tp_as_sequence = &dots_as_sequence,
    .tp_methods = dots_methods,
};

/* take(n): the first n events leave, returned as (their bytes back to back, the end offset of
 * each as native int64s, their dots or None) for a writer that frames many at once. */
static PyObject *
events_take(EncodedEvents *e, PyObject *arg)
{
    Py_ssize_t n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0 || n > EV_LIVE(e)) {
        PyErr_Format(PyExc_ValueError, "take(%zd) of %zd events", n, EV_LIVE(e));
        return NULL;
    }
    if (e->copying) {
        PyErr_SetString(PyExc_RuntimeError, "take() while commit_to() writes from the buffer");
        return NULL;
    }
    Py_ssize_t base = e->offs[e->first];
    PyObject *blob = PyBytes_FromStringAndSize(e->data + base, e->offs[e->first + n] - base);
    PyObject *ends = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(long long));
    PyObject *dots = Py_NewRef(Py_None);
    if (blob != NULL && ends != NULL && e->seqs != NULL) {
        TakenDots *d = PyObject_New(TakenDots, &TakenDotsType);
        Py_SETREF(dots, (PyObject *)d);
        if (d != NULL) {
            d->origins = Py_NewRef(e->origins);
            d->n = n;
            d->seqs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(*d->seqs));
            d->oids = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(*d->oids));
            if (d->seqs == NULL || d->oids == NULL) {
                Py_CLEAR(dots);
                PyErr_NoMemory();
            }
            else {
                memcpy(d->seqs, e->seqs + e->first, (size_t)n * sizeof(*d->seqs));
                memcpy(d->oids, e->oids + e->first, (size_t)n * sizeof(*d->oids));
            }
        }
    }
    PyObject *out = blob == NULL || ends == NULL || dots == NULL ? NULL : PyTuple_New(3);
    if (out == NULL) {  /* nothing has left the buffer */
        Py_XDECREF(blob);
        Py_XDECREF(ends);
        Py_XDECREF(dots);
        return NULL;
    }
    long long *at = (long long *)PyBytes_AS_STRING(ends);
    for (Py_ssize_t k = 0; k < n; k++) {
        at[k] = (long long)(e->offs[e->first + k + 1] - base);
    }
    PyTuple_SET_ITEM(out, 0, blob);
    PyTuple_SET_ITEM(out, 1, ends);
    PyTuple_SET_ITEM(out, 2, dots);
    events_drop(e, n);
    return out;
}

static PyObject *
events_sizeof(EncodedEvents *e, PyObject *unused)
{
    Py_ssize_t per_event = sizeof(Py_ssize_t) + (e->seqs != NULL ? 12 : 0);
    return PyLong_FromSsize_t((Py_ssize_t)sizeof(EncodedEvents) + e->cap +
                              e->offs_cap * per_event);
}

static PyMemberDef events_members[] = {
    {"refusing", T_BOOL, offsetof(EncodedEvents, refusing), 0,
     "Set by the log once closed or failed: its appender then asks it why (and raises)."},
    {NULL},
};

/* ------------------------------------------------------------------ commits */

#define FRAME_OVERHEAD 12  /* length and checksum */
#define HEAD_ROOM 17       /* FRAME_OVERHEAD and the longest msgpack array header */

/* The msgpack array header of a frame of `count` events (none for one event); its length. */
static size_t
array_head(uint8_t *p, long long count)
{
    if (count == 1) {
        return 0;
    }
    if (count < 16) {
        p[0] = (uint8_t)(0x90 | count);
        return 1;
    }
    if (count < 65536) {
        p[0] = 0xdc;
        p[1] = (uint8_t)(count >> 8);
        p[2] = (uint8_t)count;
        return 3;
    }
    p[0] = 0xdd;
    p[1] = (uint8_t)(count >> 24);
    p[2] = (uint8_t)(count >> 16);
    p[3] = (uint8_t)(count >> 8);
    p[4] = (uint8_t)count;
    return 5;
}

/* The msgpack array header's length for a frame of n > 1 events (as the log's _array_header). */
static inline long long
array_head_len(long long n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

/* Writes all of iov[0..n), again after a short write or a signal; 0, or an errno. */
static int
write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t done = writev(fd, iov, n < IOV_MAX ? n : IOV_MAX);
        if (done < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (done == 0 && iov->iov_len > 0) {
            return EIO;  /* a regular file never takes nothing: refuse to spin */
        }
        while (n > 0 && (size_t)done >= iov->iov_len) {
            done -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= (size_t)done;
        }
    }
    return 0;
}

static void
checksum_into(uint8_t *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
              const uint8_t *c, size_t clen)
{
    B3Hasher h;
    b3_init(&h);
    b3_update(&h, a, alen);
    b3_update(&h, b, blen);
    b3_update(&h, c, clen);
    b3_final8(&h, out);
}

/* The frames of a commit: each one's events (start, end relative to the commit's first
 * byte, count), checksummed and written by write_spans. */
typedef struct {
    long long start, end, count;
} Span;

/* Frames, checksums and writes `nframes` spans of the bytes at `base`; 0 or an errno. Runs
 * without the GIL: it touches no Python object. */
static int
write_spans(int fd, const uint8_t *base, const Span *spans, Py_ssize_t nframes, uint8_t *heads,
            struct iovec *iov)
{
    for (Py_ssize_t k = 0; k < nframes; k++) {
        uint8_t *h = heads + k * HEAD_ROOM;
        size_t hl = array_head(h + FRAME_OVERHEAD, spans[k].count);
        size_t body = (size_t)(spans[k].end - spans[k].start);
        uint32_t size = (uint32_t)(hl + body);
        h[0] = (uint8_t)(size >> 24);
        h[1] = (uint8_t)(size >> 16);
        h[2] = (uint8_t)(size >> 8);
        h[3] = (uint8_t)size;
        checksum_into(h + 4, h, 4, h + FRAME_OVERHEAD, hl, base + spans[k].start, body);
        iov[2 * k].iov_base = h;
        iov[2 * k].iov_len = FRAME_OVERHEAD + hl;
        iov[2 * k + 1].iov_base = (void *)(base + spans[k].start);
        iov[2 * k + 1].iov_len = body;
    }
    return write_all(fd, iov, (int)(2 * nframes));
}

static PyObject *
speedups_checksum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "checksum takes (first, second)");
        return NULL;
    }
    Py_buffer a, b;
    if (PyObject_GetBuffer(args[0], &a, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &b, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    uint8_t out[8];
    Py_BEGIN_ALLOW_THREADS
    checksum_into(out, a.buf, (size_t)a.len, b.buf, (size_t)b.len, NULL, 0);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return PyBytes_FromStringAndSize((const char *)out, 8);
}


/* commit_to(fd, room, empty, target) -> (events, bytes, full, maxima): write the pending
 * events to the segment open at fd, framed as the log's Python commit frames them (frames of
 * up to `target` bytes of events, within the `room` the segment has left; an event larger
 * than `target` goes alone into a frame, and into an empty segment if it is larger than the
 * room), without the GIL and without copying them. The
 * events stay pending: the caller drops the first `events` once it has counted them. `full`
 * says the next event needs a new segment; `maxima` is {origin: largest seq} of those written.
 * The writer may append meanwhile; the arrays stay put until the write is done (events_grow). */
static PyObject *
events_commit_to(EncodedEvents *e, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "commit_to takes (fd, room, empty, target)");
        return NULL;
    }
    /* room may be negative: an event larger than a segment overfills the one it opens */
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t room = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (room == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int empty = PyObject_IsTrue(args[2]);
    if (empty < 0) {
        return NULL;
    }
    Py_ssize_t target = PyNumber_AsSsize_t(args[3], PyExc_OverflowError);
    if (target == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (e->seqs == NULL) {
        PyErr_SetString(PyExc_TypeError, "commit_to is for a buffer that keeps dots");
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX || target < 1) {
        PyErr_Format(PyExc_ValueError, "commit_to(fd=%ld, target=%zd)", fd, target);
        return NULL;
    }
    if (e->copying) {
        PyErr_SetString(PyExc_RuntimeError, "commit_to() while another commit_to() writes");
        return NULL;
    }
    Py_ssize_t n = EV_LIVE(e), first = e->first, norigins = PyList_GET_SIZE(e->origins);
    if (n == 0) {
        return Py_BuildValue("(nLNN)", (Py_ssize_t)0, 0LL, PyBool_FromLong(0), PyDict_New());
    }
    const Py_ssize_t *offs = e->offs + first;  /* event k ends at offs[k + 1] - offs[0] */
    const uint8_t *base = (const uint8_t *)e->data + offs[0];
    const unsigned long long *seqs = e->seqs + first;
    const unsigned int *oids = e->oids + first;
    Py_ssize_t cap_frames = 16;
    Span *spans = PyMem_Malloc(cap_frames * sizeof(Span));
    unsigned long long *top = PyMem_Calloc((size_t)(norigins ? norigins : 1), sizeof(*top));
    unsigned char *seen = PyMem_Calloc((size_t)(norigins ? norigins : 1), 1);
    uint8_t *heads = NULL;
    struct iovec *iov = NULL;
    PyObject *out = NULL;
    if (spans == NULL || top == NULL || seen == NULL) {
        PyErr_NoMemory();
        goto cleanup;
    }
    /* Plan the frames (with the GIL: growing the span array may fail, and it is quick). */
    Py_ssize_t i = 0, nframes = 0;
    int err = 0;
    long long bytes = 0;
    int has_events = !empty, full = 0;
    while (i < n) {
        long long done = offs[i] - offs[0];
        long long cap = room - bytes - FRAME_OVERHEAD;
        if (cap > target) {
            cap = target;
        }
        /* the first m > i with end(m - 1) > done + cap, as bisect_right over the ends */
        Py_ssize_t lo = i, hi = n;
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (offs[mid + 1] - offs[0] <= done + cap) {
                lo = mid + 1;
            }
            else {
                hi = mid;
            }
        }
        Py_ssize_t m = lo;
        while (m - i > 1 && offs[m] - offs[0] - done + array_head_len(m - i) > cap) {
            m--;
        }
        if (m == i) {  /* event i alone is over the cap: in a frame of its own if it fits */
            if (has_events && offs[i + 1] - offs[i] > room - bytes - FRAME_OVERHEAD) {
                full = 1;
                break;
            }
            m = i + 1;
        }
        if (nframes == cap_frames) {
            Span *more = PyMem_Realloc(spans, (size_t)cap_frames * 2 * sizeof(Span));
            if (more == NULL) {
                PyErr_NoMemory();
                goto cleanup;
            }
            spans = more;
            cap_frames *= 2;
        }
        long long end = offs[m] - offs[0];
        spans[nframes].start = done;
        spans[nframes].end = end;
        spans[nframes].count = m - i;
        nframes++;
        bytes += FRAME_OVERHEAD + (m - i > 1 ? array_head_len(m - i) : 0) + end - done;
        has_events = 1;
        i = m;
    }
    if (nframes == 0) {  /* nothing fits: no call to make */
        out = Py_BuildValue("(nLNN)", (Py_ssize_t)0, 0LL, PyBool_FromLong(full), PyDict_New());
        goto cleanup;
    }
    heads = PyMem_Malloc((size_t)nframes * HEAD_ROOM);
    iov = PyMem_Malloc((size_t)nframes * 2 * sizeof(*iov));
    if (heads == NULL || iov == NULL || nframes > INT_MAX / 2) {
        PyErr_NoMemory();
        goto cleanup;
    }
    Py_ssize_t written = i;
    e->copying = 1;
#if WRITE_WITHOUT_GIL
    Py_BEGIN_ALLOW_THREADS
#endif
    err = write_spans((int)fd, base, spans, nframes, heads, iov);
    maxima_scan(seqs, oids, 0, written, top, seen);
#if WRITE_WITHOUT_GIL
    __atomic_store_n(&e->copying, 0, __ATOMIC_RELEASE);
    Py_END_ALLOW_THREADS
#endif
    e->copying = 0;
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto cleanup;
    }
    PyObject *maxima = maxima_fill(PyDict_New(), e->origins, norigins, top, seen);
    if (maxima != NULL) {
        out = Py_BuildValue("(nLNN)", written, bytes, PyBool_FromLong(full), maxima);
    }
cleanup:
    PyMem_Free(heads);
    PyMem_Free(iov);
    PyMem_Free(spans);
    PyMem_Free(top);
    PyMem_Free(seen);
    return out;
}

static PyMethodDef events_methods[] = {
    {"append", (PyCFunction)events_append, METH_O, "Add one encoded event at the end."},
    {"extend", (PyCFunction)events_extend, METH_O, "Add encoded events at the end, all or none."},
    {"add", (PyCFunction)(void (*)(void))events_add_method, METH_FASTCALL,
     "add(body, origin, seq): one encoded event with its dot (a buffer with dots)."},
    {"add_many", (PyCFunction)(void (*)(void))events_add_many, METH_FASTCALL,
     "add_many(bodies, origins, seqs): events with their dots, all or none."},
    {"take", (PyCFunction)events_take, METH_O,
     "take(n) -> (bytes, ends, dots): the first n events leave, back to back, with the end "
     "offset of each as native int64s and their dots (None without)."},
    {"commit_to", (PyCFunction)(void (*)(void))events_commit_to, METH_FASTCALL,
     "commit_to(fd, room, empty, target) -> (events, bytes, full, maxima): the pending "
     "events framed, checksummed and written to fd with the GIL released (see the source)."},
    {"__sizeof__", (PyCFunction)events_sizeof, METH_NOARGS, NULL},
    {NULL},
};

static PySequenceMethods events_as_sequence = {
    .sq_length = (lenfunc)events_len,
    .sq_item = (ssizeargfunc)events_item,
};

static PyMappingMethods events_as_mapping = {
    .mp_length = (lenfunc)events_len,
    .mp_subscript = (binaryfunc)events_subscript,
    .mp_ass_subscript = (objobjargproc)events_ass_subscript,
};

static PyTypeObject EncodedEventsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.EncodedEvents",
    .tp_doc = "EncodedEvents(*, dots=False): encoded events back to back in one buffer, a "
              "sequence of bytes that grows at the end and loses events at the front; with "
              "dots, each event's origin and seq too.",
    .tp_basicsize = sizeof(EncodedEvents),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = events_new,
    .tp_dealloc = (destructor)events_dealloc,
    .tp_as_sequence = &events_as_sequence,
    .tp_as_mapping = &events_as_mapping,
    .tp_methods = events_methods,
    .tp_members = events_members,
};

/* ------------------------------------------------------------------ Appender */

/* EventLog.single_writer() compiled: the durable log's append of one encoded event with its
 * dot, without the log's lock: one C call under the GIL, so a commit sees the whole event or
 * none of it. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *log;
    EncodedEvents *pending;  /* with dots */
    Py_ssize_t limit;
} Appender;

static PyObject *str_check_open, *str_after_append, *str_end;

static int
appender_traverse(Appender *self, visitproc visit, void *arg)
{
    Py_VISIT(self->log);
    Py_VISIT(self->pending);
    return 0;
}

static int
appender_clear(Appender *self)
{
    Py_CLEAR(self->log);
    Py_CLEAR(self->pending);
    return 0;
}

static void
appender_dealloc(Appender *self)
{
    PyObject_GC_UnTrack(self);
    appender_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An append in two steps, so that a writer can put the event in place between them: refuse if
 * the log is closed or failed (it raises), and hand a full buffer to the log's writer. */
static int
appender_check(Appender *self)
{
    if (self->pending->refusing) {
        PyObject *ok = PyObject_CallMethodNoArgs(self->log, str_check_open);
        if (ok == NULL) {
            return -1;
        }
        Py_DECREF(ok);
    }
    return 0;
}

static int
appender_finish(Appender *self)
{
    if (EV_LIVE(self->pending) >= self->limit) {
        PyObject *end = PyObject_CallMethodNoArgs(self->log, str_end);
        if (end == NULL) {
            return -1;
        }
        PyObject *done = PyObject_CallMethodOneArg(self->log, str_after_append, end);
        Py_DECREF(end);
        if (done == NULL) {
            return -1;
        }
        Py_DECREF(done);
    }
    return 0;
}

static PyObject *
appender_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Appender *self = (Appender *)self_;
    if (PyVectorcall_NARGS(nargsf) != 3 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "append takes (body, origin, seq)");
        return NULL;
    }
    if (appender_check(self) < 0 ||
        events_add_object(self->pending, args[0], args[1], args[2]) < 0 ||
        appender_finish(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyTypeObject AppenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.Appender",
    .tp_doc = "A durable log's lock-free append(body, origin, seq) for its one writer.",
    .tp_basicsize = sizeof(Appender),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Appender, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)appender_traverse,
    .tp_clear = (inquiry)appender_clear,
    .tp_dealloc = (destructor)appender_dealloc,
};

static PyObject *
speedups_appender(PyObject *module, PyObject *args)
{
    PyObject *log;
    EncodedEvents *pending;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "OO!n:appender", &log, &EncodedEventsType, &pending, &limit)) {
        return NULL;
    }
    if (pending->seqs == NULL) {
        PyErr_SetString(PyExc_TypeError, "the pending events must keep dots");
        return NULL;
    }
    Appender *a = PyObject_GC_New(Appender, &AppenderType);
    if (a == NULL) {
        return NULL;
    }
    a->vectorcall = appender_call;
    a->log = Py_NewRef(log);
    a->pending = (EncodedEvents *)Py_NewRef(pending);
    a->limit = limit;
    PyObject_GC_Track(a);
    return (PyObject *)a;
}

/* ---------------------------------------------------------------- KeyWriter */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *store;    /* a WriteState */
    PyObject *key;
    PyObject *kind;
    PyObject *node;
    PyObject *vv;       /* dict: origin -> seq */
    PyObject *hlc;      /* an HLCState */
    PyObject *wall;     /* the clock's now(), in seconds */
    PyObject *events;   /* the in-memory log's list, or NULL */
    PyObject *put;      /* put(body, origin, seq), or NULL */
    PyObject *encode;   /* the Python encoder, for what pack_obj leaves */
    PyObject *fmt;      /* EVENT_FORMAT */
    PyObject *head;     /* the encoded fields before seq: array header, fmt, node; or NULL */
    PyObject *mid;      /* the encoded key and kind */
} KeyWriter;

static PyObject *str_tick, *str_refuse, *str_snapshot, *float_1000, *time_time, *coarse_time_fn;

/* The kernel's coarse real-time clock: the reading of the last timer tick (1-10 ms old), which
 * costs a quarter of a precise one. Where there is none, the precise clock. */
#ifdef CLOCK_REALTIME_COARSE
#define COARSE_CLOCK CLOCK_REALTIME_COARSE
#else
#define COARSE_CLOCK CLOCK_REALTIME
#endif

/* Seconds as time.time() computes them from a clock reading. */
static inline double
seconds_of(const struct timespec *t)
{
    long long ns = (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
    return (double)ns / 1e9;
}

static PyObject *
speedups_coarse_time(PyObject *module, PyObject *unused)
{
    struct timespec now;
    if (clock_gettime(COARSE_CLOCK, &now) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyFloat_FromDouble(seconds_of(&now));
}

static int
keywriter_traverse(KeyWriter *self, visitproc visit, void *arg)
{
    Py_VISIT(self->store);
    Py_VISIT(self->key);
    Py_VISIT(self->kind);
    Py_VISIT(self->node);
    Py_VISIT(self->vv);
    Py_VISIT(self->hlc);
    Py_VISIT(self->wall);
    Py_VISIT(self->events);
    Py_VISIT(self->put);
    Py_VISIT(self->encode);
    Py_VISIT(self->fmt);
    Py_VISIT(self->head);
    Py_VISIT(self->mid);
    return 0;
}

static int
keywriter_clear(KeyWriter *self)
{
    Py_CLEAR(self->store);
    Py_CLEAR(self->key);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->node);
    Py_CLEAR(self->vv);
    Py_CLEAR(self->hlc);
    Py_CLEAR(self->wall);
    Py_CLEAR(self->events);
    Py_CLEAR(self->put);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->fmt);
    Py_CLEAR(self->head);
    Py_CLEAR(self->mid);
    return 0;
}

static void
keywriter_dealloc(KeyWriter *self)
{
    PyObject_GC_UnTrack(self);
    keywriter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline int
put_bytes(Buf *b, PyObject *bytes)
{
    Py_ssize_t n = PyBytes_GET_SIZE(bytes);
    RESERVE(b, n);
    copy_short(b->p + b->len, PyBytes_AS_STRING(bytes), n);
    b->len += n;
    return 0;
}

/* The event's next timestamp: HLC.now() with its fast path inlined. */
static int
next_timestamp(KeyWriter *self, unsigned long long *ts)
{
    double w;
    struct timespec now;
    if (self->wall == coarse_time_fn && clock_gettime(COARSE_CLOCK, &now) == 0) {
        /* Whole milliseconds, with no float division: HLC.tick and the edge only look at
         * floor(w), and this is that floor exactly. */
        long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        w = ns >= 0 ? (double)(ns / 1000000) : seconds_of(&now) * 1000.0;
        goto have_wall;
    }
    if (self->wall == time_time && clock_gettime(CLOCK_REALTIME, &now) == 0) {
        w = seconds_of(&now) * 1000.0;  /* time.time(): the same ns count, the same division */
        goto have_wall;
    }
    PyObject *r = PyObject_CallNoArgs(self->wall);
    if (r == NULL) {
        return -1;
    }
    if (PyFloat_CheckExact(r)) {
        w = PyFloat_AS_DOUBLE(r) * 1000.0;
        Py_DECREF(r);
    }
    else {  /* an int or a float subclass: exactly what `wall() * 1000.0` gives */
        PyObject *m = PyNumber_Multiply(r, float_1000);
        Py_DECREF(r);
        if (m == NULL) {
            return -1;
        }
        w = PyFloat_AsDouble(m);
        Py_DECREF(m);
        if (w == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    }
have_wall:;
    HLCState *h = (HLCState *)self->hlc;
    if (w < h->edge && h->last < ULLONG_MAX) {
        *ts = ++h->last;
        return 0;
    }
    PyObject *wo = PyFloat_FromDouble(w);
    if (wo == NULL) {
        return -1;
    }
    PyObject *t = PyObject_CallMethodOneArg(self->hlc, str_tick, wo);
    Py_DECREF(wo);
    if (t == NULL) {
        return -1;
    }
    *ts = PyLong_AsUnsignedLongLong(t);
    Py_DECREF(t);
    return (*ts == (unsigned long long)-1 && PyErr_Occurred()) ? -1 : 0;
}

/* The event's msgpack into b: 0, -1 with an exception, or UNSUPPORTED when a field needs the
 * Python encoder (encode_fields). */
static int
encode_event(KeyWriter *self, Buf *b, unsigned long long seq, unsigned long long ts,
             PyObject *deps, PyObject *op)
{
    if (self->head == NULL) {
        return UNSUPPORTED;
    }
    /* the fast encoder first, into the room b has (b->len is 0 here); pack_obj if it stops */
    Py_ssize_t hn = PyBytes_GET_SIZE(self->head), mn = PyBytes_GET_SIZE(self->mid);
    char *p = b->p + b->len, *end = b->p + b->cap;
    if (end - p >= hn + mn + 19) {  /* head, seq and ts (9 bytes each), an empty deps, mid */
        copy_short(p, PyBytes_AS_STRING(self->head), hn);
        p += hn;
        p += put_uint_at(p, seq);
        p += put_uint_at(p, ts);
        if (Py_IS_TYPE(deps, &PyDict_Type) && PyDict_GET_SIZE(deps) == 0) {
            *p++ = (char)0x80;
        }
        else {
            p = fast_value(p, end - mn, deps, 0);
        }
        if (p != NULL) {
            copy_short(p, PyBytes_AS_STRING(self->mid), mn);
            p = fast_value(p + mn, end, op, 0);
        }
        if (p != NULL) {
            b->len = p - b->p;
            return 0;
        }
    }
    int r = put_bytes(b, self->head);
    if (r == 0) r = pack_uint(b, seq);
    if (r == 0) r = pack_uint(b, ts);
    if (r == 0) r = pack_obj(b, deps, 0);
    if (r == 0) r = put_bytes(b, self->mid);
    if (r == 0) r = pack_obj(b, op, 0);
    return r;
}

static PyObject *
encode_fields(KeyWriter *self, unsigned long long seq, unsigned long long ts, PyObject *deps,
              PyObject *op)
{
    PyObject *fields = Py_BuildValue("(OOKKOOOO)", self->fmt, self->node, seq, ts, deps,
                                     self->key, self->kind, op);
    if (fields == NULL) {
        return NULL;
    }
    PyObject *body = PyObject_CallOneArg(self->encode, fields);
    Py_DECREF(fields);
    if (body != NULL && !PyBytes_Check(body)) {
        PyErr_Format(PyExc_TypeError, "the event encoder returned %.100s, not bytes",
                     Py_TYPE(body)->tp_name);
        Py_CLEAR(body);
    }
    return body;
}

/* What every local write does first: refuse if the store is blocked, and find the next seq. */
static int
begin_write(KeyWriter *self, Py_ssize_t nargs, PyObject *kwnames, unsigned long long *seq)
{
    if (nargs != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "a key writer takes one operation");
        return -1;
    }
    WriteState *st = (WriteState *)self->store;
    if (st->blocked != NULL && st->blocked != Py_None) {
        int b = PyObject_IsTrue(st->blocked);
        if (b < 0) {
            return -1;
        }
        if (b) {
            PyObject *r = PyObject_CallMethodNoArgs(self->store, str_refuse);
            if (r == NULL) {
                return -1;
            }
            Py_DECREF(r);
        }
    }
    *seq = 1;
    PyObject *cur = PyDict_GetItemWithError(self->vv, self->node);
    if (cur != NULL) {
        *seq = PyLong_AsUnsignedLongLong(cur);
        if (*seq == (unsigned long long)-1) {  /* msgpack's largest uint: no next seq */
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_OverflowError, "the sequence number exceeds 2**64 - 1");
            }
            return -1;
        }
        *seq += 1;
    }
    else if (PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* What every local write does last: count it towards the next snapshot. */
static PyObject *
end_write(KeyWriter *self)
{
    WriteState *st = (WriteState *)self->store;
    if (++st->since_snapshot >= st->snapshot_every) {
        return PyObject_CallMethodNoArgs(self->store, str_snapshot);
    }
    Py_RETURN_NONE;
}

/* log=False: no event, only the dot that last touched the key (for state shipping). */
static PyObject *
statewriter_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    KeyWriter *self = (KeyWriter *)self_;
    unsigned long long seq;
    if (begin_write(self, PyVectorcall_NARGS(nargsf), kwnames, &seq) < 0) {
        return NULL;
    }
    WriteState *st = (WriteState *)self->store;
    PyObject *seqo = PyLong_FromUnsignedLongLong(seq);
    if (seqo == NULL) {
        return NULL;
    }
    int err = PyDict_SetItem(self->vv, self->node, seqo);
    if (err == 0 && (st->touched == NULL || !PyDict_Check(st->touched))) {
        PyErr_SetString(PyExc_TypeError, "the store's _touched must be a dict");
        err = -1;
    }
    if (err == 0) {
        PyObject *touched = PyDict_GetItemWithError(st->touched, self->key);
        if (touched != NULL) {
            err = PyObject_SetItem(touched, self->node, seqo);
        }
        else if (PyErr_Occurred()) {
            err = -1;
        }
        else {
            PyObject *fresh = PyDict_New();
            err = fresh == NULL ? -1 : PyDict_SetItem(fresh, self->node, seqo);
            if (err == 0) {
                err = PyDict_SetItem(st->touched, self->key, fresh);
            }
            Py_XDECREF(fresh);
        }
    }
    Py_DECREF(seqo);
    return err < 0 ? NULL : end_write(self);
}

#define IN_PLACE 256  /* room reserved at the end of the buffer: events are rarely longer */

static PyObject *
keywriter_call(PyObject *self_, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    KeyWriter *self = (KeyWriter *)self_;
    unsigned long long seq;
    if (begin_write(self, PyVectorcall_NARGS(nargsf), kwnames, &seq) < 0) {
        return NULL;
    }
    PyObject *op = args[0];
    WriteState *st = (WriteState *)self->store;
    unsigned long long ts;
    if (next_timestamp(self, &ts) < 0) {
        return NULL;
    }
    Appender *appender = self->events == NULL && Py_IS_TYPE(self->put, &AppenderType)
                             ? (Appender *)self->put : NULL;
    if (appender != NULL && appender_check(appender) < 0) {
        return NULL;
    }
    /* Read after the clock, which may run Python; encoded before anything moves, so a failed
     * encoding leaves the state as it was (only the HLC moved on, harmlessly). The event is
     * encoded straight into the log's buffer where it has one, and counts once committed. */
    PyObject *deps = st->deps != NULL ? st->deps : Py_None;
    Py_INCREF(deps);
    /* where the event goes in place: the in-memory log's buffer or the durable log's pending
     * events; NULL for a list (the Python fallback's) or a callable sink */
    EncodedEvents *target = appender != NULL ? appender->pending
                            : self->events != NULL && Py_IS_TYPE(self->events, &EncodedEventsType)
                                ? (EncodedEvents *)self->events
                                : NULL;
    unsigned int oid = 0;  /* the node's index among the pending events' origins */
    Buf b;
    buf_init(&b);
    if (target != NULL) {
        long long id = target->seqs != NULL ? events_origin_id(target, self->node) : 0;
        if (id < 0 || events_reserve(target, IN_PLACE) < 0) {
            Py_DECREF(deps);
            return NULL;
        }
        oid = (unsigned int)id;
        b.p = target->data + target->offs[target->nev];
        b.cap = IN_PLACE;
#if defined(__GNUC__) || defined(__clang__)
        /* the line a few events on, so that its fetch for writing overlaps this write */
        __builtin_prefetch(b.p + IN_PLACE, 1, 3);
#endif
    }
    PyObject *body = NULL;  /* the event as bytes, where it is not in place */
    int err = encode_event(self, &b, seq, ts, deps, op);
    if (err == UNSUPPORTED) {  /* may run Python: b is abandoned, not committed */
        body = encode_fields(self, seq, ts, deps, op);
        err = body == NULL ? -1 : 0;
    }
    else if (err == 0 && target == NULL) {
        body = PyBytes_FromStringAndSize(b.p, b.len);
        err = body == NULL ? -1 : 0;
    }
    PyObject *seqo = err < 0 ? NULL : PyLong_FromUnsignedLongLong(seq);
    if (seqo == NULL) {
        buf_free(&b);
        Py_XDECREF(body);
        Py_DECREF(deps);
        return NULL;
    }
    if (target != NULL) {
        if (body != NULL) {
            err = events_add(target, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body), oid, seq);
        }
        else if (b.owned) {  /* outgrew the reserved room */
            err = events_add(target, b.p, b.len, oid, seq);
        }
        else {
            events_commit(target, b.len, oid, seq);
        }
    }
    else if (self->events != NULL) {
        err = PyList_Append(self->events, body);
    }
    else {
        PyObject *pargs[3] = {body, self->node, seqo};
        PyObject *r = PyObject_Vectorcall(self->put, pargs, 3, NULL);
        err = r == NULL ? -1 : 0;
        Py_XDECREF(r);
    }
    buf_free(&b);
    Py_XDECREF(body);
    if (err == 0 && appender != NULL) {
        err = appender_finish(appender);
    }
    if (err == 0) {
        err = PyDict_SetItem(self->vv, self->node, seqo);
    }
    Py_DECREF(seqo);
    if (err == 0) {
        int nonempty = PyDict_CheckExact(deps) ? PyDict_GET_SIZE(deps) > 0 : PyObject_IsTrue(deps);
        if (nonempty < 0) {
            err = -1;
        }
        else if (nonempty) {
            PyObject *fresh = PyDict_New();
            if (fresh == NULL) {
                err = -1;
            }
            else {
                Py_XSETREF(st->deps, fresh);
            }
        }
    }
    Py_DECREF(deps);
    return err < 0 ? NULL : end_write(self);
}

static PyTypeObject KeyWriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "microstatedb._speedups.KeyWriter",
    .tp_doc = "One key's local write path: op -> event in the log.",
    .tp_basicsize = sizeof(KeyWriter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(KeyWriter, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)keywriter_traverse,
    .tp_clear = (inquiry)keywriter_clear,
    .tp_dealloc = (destructor)keywriter_dealloc,
};

static PyObject *
speedups_key_writer(PyObject *module, PyObject *args)
{
    PyObject *store, *key, *kind, *node, *vv, *hlc, *wall, *events, *put, *encode, *fmt;
    if (!PyArg_ParseTuple(args, "O!UUUO!O!OOOOO:key_writer", &WriteStateType, &store, &key,
                          &kind, &node, &PyDict_Type, &vv, &HLCStateType, &hlc, &wall,
                          &events, &put, &encode, &fmt)) {
        return NULL;
    }
    if ((events == Py_None) == (put == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "key_writer takes either a list of events or put");
        return NULL;
    }
    if (events != Py_None && !PyList_CheckExact(events) &&
        !Py_IS_TYPE(events, &EncodedEventsType)) {
        PyErr_SetString(PyExc_TypeError, "events must be a list or EncodedEvents");
        return NULL;
    }
    KeyWriter *w = PyObject_GC_New(KeyWriter, &KeyWriterType);
    if (w == NULL) {
        return NULL;
    }
    w->vectorcall = keywriter_call;
    w->store = Py_NewRef(store);
    w->key = Py_NewRef(key);
    w->kind = Py_NewRef(kind);
    w->node = Py_NewRef(node);
    w->vv = Py_NewRef(vv);
    w->hlc = Py_NewRef(hlc);
    w->wall = Py_NewRef(wall);
    w->events = events == Py_None ? NULL : Py_NewRef(events);
    w->put = put == Py_None ? NULL : Py_NewRef(put);
    w->encode = Py_NewRef(encode);
    w->fmt = Py_NewRef(fmt);
    PyObject *head[2] = {fmt, node}, *mid[2] = {key, kind};
    w->head = pack_fields(head, 2, 1);
    w->mid = pack_fields(mid, 2, 0);
    if (w->head == NULL || w->mid == NULL) {
        Py_CLEAR(w->head);  /* every write takes the Python encoder, which says what is wrong */
        Py_CLEAR(w->mid);
        if (PyErr_Occurred()) {
            Py_DECREF(w);
            return NULL;
        }
    }
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static PyObject *
speedups_state_writer(PyObject *module, PyObject *args)
{
    PyObject *store, *key, *node, *vv;
    if (!PyArg_ParseTuple(args, "O!UUO!:state_writer", &WriteStateType, &store, &key, &node,
                          &PyDict_Type, &vv)) {
        return NULL;
    }
    KeyWriter *w = PyObject_GC_New(KeyWriter, &KeyWriterType);
    if (w == NULL) {
        return NULL;
    }
    memset(&w->store, 0, sizeof(KeyWriter) - offsetof(KeyWriter, store));
    w->vectorcall = statewriter_call;
    w->store = Py_NewRef(store);
    w->key = Py_NewRef(key);
    w->node = Py_NewRef(node);
    w->vv = Py_NewRef(vv);
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

/* ------------------------------------------------------------------- module */

static PyMethodDef speedups_methods[] = {
    {"checksum", (PyCFunction)(void (*)(void))speedups_checksum, METH_FASTCALL,
     "checksum(first, second) -> the first 8 bytes of blake3(first + second)."},
    {"coarse_time", speedups_coarse_time, METH_NOARGS,
     "Seconds since the epoch from the kernel's coarse clock (the last timer tick)."},
    {"pack", speedups_pack, METH_O,
     "msgpack bytes of a value built from the msgpack core types, else None."},
    {"pack_fast", speedups_pack_fast, METH_O,
     "msgpack bytes of a value by the write path's fast encoder, else None (where it stops "
     "and pack takes over)."},
    {"key_writer", speedups_key_writer, METH_VARARGS,
     "key_writer(store, key, kind, node, vv, hlc, wall, events, put, encode, fmt): the "
     "write path of one key with a log; events is the in-memory log's list, else put is the "
     "durable log's append(body, origin, seq)."},
    {"state_writer", speedups_state_writer, METH_VARARGS,
     "state_writer(store, key, node, vv): the write path of one key with log=False."},
    {"appender", speedups_appender, METH_VARARGS,
     "appender(log, pending, limit): EventLog.single_writer() compiled, for pending events "
     "kept in an EncodedEvents(dots=True)."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "microstatedb._speedups",
    .m_doc = "The store's local write path, compiled.",
    .m_size = -1,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&HLCStateType) < 0 || PyType_Ready(&WriteStateType) < 0 ||
        PyType_Ready(&KeyWriterType) < 0 || PyType_Ready(&AppenderType) < 0 ||
        PyType_Ready(&EncodedEventsType) < 0 || PyType_Ready(&TakenDotsType) < 0) {
        return NULL;
    }
    str_tick = PyUnicode_InternFromString("tick");
    str_refuse = PyUnicode_InternFromString("_refuse");
    str_snapshot = PyUnicode_InternFromString("_snapshot_due");
    str_check_open = PyUnicode_InternFromString("_check_open");
    str_after_append = PyUnicode_InternFromString("_after_append");
    str_end = PyUnicode_InternFromString("_end");
    float_1000 = PyFloat_FromDouble(1000.0);
    PyObject *time_mod = PyImport_ImportModule("time");
    if (time_mod == NULL) {
        return NULL;
    }
    time_time = PyObject_GetAttrString(time_mod, "time");
    Py_DECREF(time_mod);
    if (!str_tick || !str_refuse || !str_snapshot || !str_check_open ||
        !str_after_append || !str_end || !float_1000 || !time_time) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    coarse_time_fn = PyObject_GetAttrString(m, "coarse_time");  /* the writer knows it by identity */
    if (coarse_time_fn == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "HLCState", (PyObject *)&HLCStateType) < 0 ||
        PyModule_AddObjectRef(m, "WriteState", (PyObject *)&WriteStateType) < 0 ||
        PyModule_AddObjectRef(m, "KeyWriter", (PyObject *)&KeyWriterType) < 0 ||
        PyModule_AddObjectRef(m, "Appender", (PyObject *)&AppenderType) < 0 ||
        PyModule_AddObjectRef(m, "EncodedEvents", (PyObject *)&EncodedEventsType) < 0 ||
        PyModule_AddObjectRef(m, "TakenDots", (PyObject *)&TakenDotsType) < 0 ||
        PyModule_AddIntConstant(m, "QUIET_DROPS", QUIET_DROPS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
