/* The durable log's commit, compiled: frame a commit's events, checksum the frames and write
 * them to the segment in one call that releases the GIL once.
 *
 * In Python each frame's checksum and the write each released the GIL and took it back
 * after; with a writer busy in Python, every take-back waited up to the interpreter's switch
 * interval (5 ms), so a commit of N frames took about N + 1 such waits. Under a steady stream
 * of writes the commit thread then fell behind by hundreds of milliseconds, far past the
 * `batch` interval. The frames are the ones the Python path writes, byte for byte: length
 * (u32, big-endian), the first 8 bytes of the blake3 digest of length and body, and the body
 * (one encoded event, or a msgpack array header followed by several). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <sys/uio.h>
#include <unistd.h>

#include "_blake3.h"

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

#define FRAME_OVERHEAD 12  /* length and checksum */
#define HEAD_ROOM 17       /* FRAME_OVERHEAD and the longest msgpack array header */
#define MAX_BODY (1LL << 30)

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

static PyObject *
frames_write(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_frames takes (fd, events, frames)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "not a file descriptor: %ld", fd);
        return NULL;
    }
    Py_buffer events, spec;
    if (PyObject_GetBuffer(args[1], &events, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &spec, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&events);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t nframes = spec.len / (Py_ssize_t)(3 * sizeof(long long));
    uint8_t *heads = NULL;
    struct iovec *iov = NULL;
    if (spec.len % (Py_ssize_t)(3 * sizeof(long long)) != 0 || nframes > INT_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "frames are (start, end, count) triples of int64");
        goto done;
    }
    long long *frames = PyMem_Malloc((size_t)(nframes ? nframes : 1) * 3 * sizeof(long long));
    heads = PyMem_Malloc((size_t)(nframes ? nframes : 1) * HEAD_ROOM);
    iov = PyMem_Malloc((size_t)(nframes ? nframes : 1) * 2 * sizeof(struct iovec));
    if (frames == NULL || heads == NULL || iov == NULL) {
        PyMem_Free(frames);
        PyErr_NoMemory();
        goto done;
    }
    memcpy(frames, spec.buf, (size_t)spec.len);  /* any alignment */
    for (Py_ssize_t k = 0; k < nframes; k++) {
        long long start = frames[3 * k], end = frames[3 * k + 1], count = frames[3 * k + 2];
        if (start < 0 || end <= start || end > events.len || count < 1 || count >= 1LL << 32 ||
            end - start > MAX_BODY) {
            PyErr_Format(PyExc_ValueError,
                         "frame %zd: (%lld, %lld, %lld) is not a span of events in %zd bytes",
                         k, start, end, count, events.len);
            PyMem_Free(frames);
            goto done;
        }
    }
    Py_ssize_t total = 0;
    int err;
    const uint8_t *base = events.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < nframes; k++) {
        long long start = frames[3 * k], end = frames[3 * k + 1], count = frames[3 * k + 2];
        uint8_t *h = heads + k * HEAD_ROOM;
        size_t hl = array_head(h + FRAME_OVERHEAD, count);
        size_t body = (size_t)(end - start);
        uint32_t size = (uint32_t)(hl + body);
        h[0] = (uint8_t)(size >> 24);
        h[1] = (uint8_t)(size >> 16);
        h[2] = (uint8_t)(size >> 8);
        h[3] = (uint8_t)size;
        checksum_into(h + 4, h, 4, h + FRAME_OVERHEAD, hl, base + start, body);
        iov[2 * k].iov_base = h;
        iov[2 * k].iov_len = FRAME_OVERHEAD + hl;
        iov[2 * k + 1].iov_base = (void *)(base + start);
        iov[2 * k + 1].iov_len = body;
        total += (Py_ssize_t)(FRAME_OVERHEAD + hl + body);
    }
    err = write_all((int)fd, iov, (int)(2 * nframes));
    Py_END_ALLOW_THREADS
    PyMem_Free(frames);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = PyLong_FromSsize_t(total);
done:
    PyMem_Free(heads);
    PyMem_Free(iov);
    PyBuffer_Release(&spec);
    PyBuffer_Release(&events);
    return result;
}

static PyObject *
frames_checksum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
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

static PyMethodDef frames_methods[] = {
    {"write_frames", (PyCFunction)(void (*)(void))frames_write, METH_FASTCALL,
     "write_frames(fd, events, frames) -> bytes written: frames (start, end, count) triples "
     "of int64 over the events' bytes, each framed, checksummed and written in order, with "
     "the GIL released once; OSError if the write fails."},
    {"checksum", (PyCFunction)(void (*)(void))frames_checksum, METH_FASTCALL,
     "checksum(first, second) -> the first 8 bytes of blake3(first + second)."},
    {NULL},
};

static struct PyModuleDef frames_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "microstatedb._frames",
    .m_doc = "The durable log's commit: frames checksummed and written with the GIL released.",
    .m_size = -1,
    .m_methods = frames_methods,
};

PyMODINIT_FUNC
PyInit__frames(void)
{
    return PyModule_Create(&frames_module);
}
