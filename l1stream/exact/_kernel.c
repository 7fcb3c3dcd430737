/* The exact sum of |actual - prediction| in C: the compiled twin of l1stream/_exact.py's kernel.
 *
 * The method of _exact.py, on blocks of 4096 rows: with hi = max(a, p), lo = min(a, p), a block's sum is
 * sum(hi) - sum(lo).  One Rump-Ogita-Oishi extraction against sigma = 2**(E + 17) (every |value|
 * < 2**E) splits each value into q + r exactly; the q sum exactly in float64 in any order, and so
 * do the r when the block's values have one sign and span at most 2**20 (ordinary data).  Otherwise
 * a second extraction runs on the residuals, and what is still left goes to the exponent bins.
 * The fold is written once (_fold.h) and compiled for vectors of two doubles (SSE2 on x86-64, plain C
 * elsewhere), four (AVX2) and eight (AVX-512); the widest the processor runs is used, and all give
 * the same bits.  No fast-math: the extractions need IEEE rounding.  Block sums and leftovers go to exact integer bins, one per binary exponent:
 * every finite float64 is m * 2**(e - 1075) with |m| < 2**53, and adding m to a 128-bit bin is
 * exact.  The result is a Python int counting 2**-1074, as ExactSum.units.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* Values are copied from file bytes with memcpy: that reads little-endian doubles only on a
   little-endian machine.  Elsewhere the build fails, the extension is optional, and l1stream
   runs on pyarrow and numpy (native_enabled() also refuses at run time). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "l1stream's C parts assume a little-endian machine"
#endif

#ifndef __SIZEOF_INT128__
#error "l1stream.exact._kernel needs a compiler with 128-bit integers (GCC or Clang on a 64-bit target)"
#endif

#include "_consumer.h"

typedef __int128 wide;
enum { EXPONENTS = 2048 };

/* One exact 128-bit integer bin per binary exponent (no overflow before 2**74 additions).  Each
   thread keeps its own (no allocation per call); `low` and `high` bound the exponents touched,
   so a reset costs only what was used. */
typedef struct {
    wide totals[EXPONENTS];
    int low, high;
    int ready;
} Bins;

static _Thread_local Bins thread_bins;

#define FRACTION ((1ULL << 52) - 1)

static Bins *fresh_bins(void) {
    Bins *bins = &thread_bins;
    if (bins->ready)
        for (int e = bins->low; e <= bins->high; e++) bins->totals[e] = 0;
    bins->low = EXPONENTS;
    bins->high = -1;
    bins->ready = 1;
    return bins;
}

/* Add (or subtract) x, without widening the touched range: callers have called touch_all.
   Returns 1 when x is NaN or infinite. */
static inline int add_untracked(Bins *bins, double x, int negate) {
    uint64_t b;
    memcpy(&b, &x, 8);
    int e = (int)((b >> 52) & 0x7ff);
    int64_t m = (int64_t)((b & FRACTION) | ((uint64_t)(e != 0) << 52));
    int64_t flip = -(int64_t)((b >> 63) ^ (uint64_t)negate); /* 0 or -1 */
    e += e == 0;
    bins->totals[e] += (m ^ flip) - flip;
    return e == 0x7ff;
}

/* Add (or subtract) x, widening the touched range; return 1 when x is NaN or infinite. */
static inline int add(Bins *bins, double x, int negate) {
    uint64_t b;
    memcpy(&b, &x, 8);
    int e = (int)((b >> 52) & 0x7ff);
    e += e == 0;
    bins->low = e < bins->low ? e : bins->low;
    bins->high = e > bins->high ? e : bins->high;
    return add_untracked(bins, x, negate);
}

/* Before many adds of any exponent (the rare paths): every bin counts as touched. */
static void touch_all(Bins *bins) {
    bins->low = 1;
    bins->high = EXPONENTS - 1;
}

/* The bins' total as a Python int of 2**-1074 units. */
static PyObject *to_units(Bins *bins) {
    PyObject *total = PyLong_FromLong(0), *shift64 = PyLong_FromLong(64);
    if (!total || !shift64) goto fail;
    for (int e = bins->low; e <= bins->high; e++) {
        wide v = bins->totals[e];
        if (v == 0) continue;
        PyObject *high = PyLong_FromLongLong((long long)(v >> 64));
        PyObject *low = PyLong_FromUnsignedLongLong((unsigned long long)(uint64_t)v);
        PyObject *shift = PyLong_FromLong(e - 1);
        PyObject *value = NULL, *scaled = NULL, *sum = NULL;
        if (high && low && shift && (value = PyNumber_Lshift(high, shift64))) {
            Py_SETREF(value, PyNumber_Add(value, low));
            if (value && (scaled = PyNumber_Lshift(value, shift))) sum = PyNumber_Add(total, scaled);
        }
        Py_XDECREF(high); Py_XDECREF(low); Py_XDECREF(shift); Py_XDECREF(value); Py_XDECREF(scaled);
        if (!sum) goto fail;
        Py_SETREF(total, sum);
    }
    Py_DECREF(shift64);
    return total;
fail:
    Py_XDECREF(total);
    Py_XDECREF(shift64);
    return NULL;
}

/* ---- the vectorised block kernel ------------------------------------------------------------ */

enum { BLOCK = 4096, MARGIN = 17, MAX_FOLD_EXPONENT = 1023 - MARGIN - 1, MIN_SIGMA_EXPONENT = -1021,
       RESIDUAL_SPAN = 37, EXTRACTIONS = 6 /* at most, on the general path (_fold.h) */ };

/* Add one scalar row (hi - lo) to the bins; return 1 if not finite. */
static inline int add_row(Bins *bins, double x, double y) {
    int lt = x < y;
    return add_untracked(bins, x, lt) | add_untracked(bins, y, !lt);
}

/* The fold (_fold.h), compiled for each vector width the machine may have; one is chosen when the
   module loads (the widest the processor runs) and gives the same bits as every other. */
typedef int (*FoldBlock)(Bins *, const double *, const double *, Py_ssize_t, double *, double *);
typedef struct {
    const char *name;
    FoldBlock fold;
    int step; /* rows per loop step: blocks hold a multiple of it */
} Fold;

/* two doubles a vector: SSE2 on x86-64 (its baseline), plain C elsewhere */
typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2i __attribute__((vector_size(16)));
#ifdef __SSE2__
#include <emmintrin.h>
#define VMAX(x, y) ((v2d)_mm_max_pd((__m128d)(x), (__m128d)(y)))
#define VMIN(x, y) ((v2d)_mm_min_pd((__m128d)(x), (__m128d)(y)))
#define ANY_NONZERO(v) (_mm_movemask_pd(_mm_cmpneq_pd((__m128d)(v), _mm_setzero_pd())) != 0)
#else
static inline v2d vmax2(v2d x, v2d y) { v2d r = {x[0] > y[0] ? x[0] : y[0], x[1] > y[1] ? x[1] : y[1]}; return r; }
static inline v2d vmin2(v2d x, v2d y) { v2d r = {x[0] < y[0] ? x[0] : y[0], x[1] < y[1] ? x[1] : y[1]}; return r; }
#define VMAX vmax2
#define VMIN vmin2
#define ANY_NONZERO(v) ((v)[0] != 0.0 || (v)[1] != 0.0)
#endif
#define FOLD_NAME fold_block_2
#define FOLD_TARGET
#define FOLD_WIDTH 2
#define vd v2d
#define vi v2i
#include "_fold.h"
#undef FOLD_NAME
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef vd
#undef vi
#undef VMAX
#undef VMIN
#undef ANY_NONZERO

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_WIDE_FOLDS 1
#include <immintrin.h>
/* four doubles a vector (AVX2 machines) */
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4i __attribute__((vector_size(32)));
#define FOLD_NAME fold_block_4
#define FOLD_TARGET __attribute__((target("avx2")))
#define FOLD_WIDTH 4
#define vd v4d
#define vi v4i
#define VMAX(x, y) ((v4d)_mm256_max_pd((__m256d)(x), (__m256d)(y)))
#define VMIN(x, y) ((v4d)_mm256_min_pd((__m256d)(x), (__m256d)(y)))
#define ANY_NONZERO(v) (_mm256_movemask_pd(_mm256_cmp_pd((__m256d)(v), _mm256_setzero_pd(), _CMP_NEQ_UQ)) != 0)
#include "_fold.h"
#undef FOLD_NAME
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef vd
#undef vi
#undef VMAX
#undef VMIN
#undef ANY_NONZERO
/* eight doubles a vector (AVX-512 machines) */
typedef double v8d __attribute__((vector_size(64)));
typedef int64_t v8i __attribute__((vector_size(64)));
#define FOLD_NAME fold_block_8
#define FOLD_TARGET __attribute__((target("avx512f")))
#define FOLD_WIDTH 8
#define vd v8d
#define vi v8i
#define VMAX(x, y) ((v8d)_mm512_max_pd((__m512d)(x), (__m512d)(y)))
#define VMIN(x, y) ((v8d)_mm512_min_pd((__m512d)(x), (__m512d)(y)))
#define ANY_NONZERO(v) (_mm512_cmp_pd_mask((__m512d)(v), _mm512_setzero_pd(), _CMP_NEQ_UQ) != 0)
#include "_fold.h"
#undef FOLD_NAME
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef vd
#undef vi
#undef VMAX
#undef VMIN
#undef ANY_NONZERO
#endif

static const Fold folds[] = {
    {"sse2", fold_block_2, 4},
#ifdef HAVE_WIDE_FOLDS
    {"avx2", fold_block_4, 8},
    {"avx512", fold_block_8, 16},
#endif
};
enum { FOLDS = sizeof folds / sizeof folds[0] };

static int fold_runs_here(int index) {
#ifdef HAVE_WIDE_FOLDS
    __builtin_cpu_init();
    if (index == 1) return __builtin_cpu_supports("avx2");
    if (index == 2) return __builtin_cpu_supports("avx512f");
#endif
    return index == 0;
}

static const Fold *fold = &folds[0]; /* set when the module loads: the widest that runs here */

/* sum |a - p| into bins; return 1 if a value is not finite */
static int sum_abs_diff(Bins *bins, const double *a, const double *p, Py_ssize_t n, const Fold *f) {
    double rh[BLOCK], rl[BLOCK];
    int bad = 0;
    Py_ssize_t whole = n - n % f->step;
    for (Py_ssize_t start = 0; start < whole && !bad; start += BLOCK) {
        Py_ssize_t m = whole - start < BLOCK ? whole - start : BLOCK;
        bad |= f->fold(bins, a + start, p + start, m, rh, rl);
    }
    for (Py_ssize_t i = whole; i < n; i++) { /* fewer rows than a step: tracked adds */
        int lt = a[i] < p[i];
        bad |= add(bins, a[i], lt) | add(bins, p[i], !lt);
    }
    return bad;
}

static int float64_buffer(PyObject *obj, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != 8 || !view->format || strcmp(view->format, "d") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous float64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(abs_diff_units_doc,
"abs_diff_units(actual, prediction, fold=None) -> int or None\n\n"
"Exact sum of |actual - prediction| over two float64 arrays of one length, in 2**-1074 units;\n"
"None when a value is NaN or infinite.  fold names a vector width from folds() (for tests: every\n"
"one gives the same bits); by default the widest this processor runs.");

/* The fold named (one that runs here), the default for NULL; NULL with an exception otherwise. */
static const Fold *named_fold(const char *name) {
    if (!name) return fold;
    for (int i = 0; i < FOLDS; i++)
        if (strcmp(folds[i].name, name) == 0 && fold_runs_here(i)) return &folds[i];
    PyErr_Format(PyExc_ValueError, "no fold '%s' on this machine; see folds()", name);
    return NULL;
}

static PyObject *abs_diff_units(PyObject *self, PyObject *args) {
    PyObject *a_obj, *p_obj;
    const char *fold_name = NULL;
    if (!PyArg_ParseTuple(args, "OO|z", &a_obj, &p_obj, &fold_name)) return NULL;
    const Fold *f = named_fold(fold_name);
    if (!f) return NULL;
    Py_buffer av, pv;
    if (float64_buffer(a_obj, &av, "actual") < 0) return NULL;
    if (float64_buffer(p_obj, &pv, "prediction") < 0) { PyBuffer_Release(&av); return NULL; }
    PyObject *result = NULL;
    if (av.len != pv.len) {
        PyErr_SetString(PyExc_ValueError, "actual and prediction must have the same length");
        goto done;
    }
    Bins *bins = fresh_bins();
    const double *a = av.buf, *p = pv.buf;
    Py_ssize_t n = av.len / 8;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    bad = sum_abs_diff(bins, a, p, n, f);
    Py_END_ALLOW_THREADS
    if (bad) {
        result = Py_NewRef(Py_None);
    } else {
        result = to_units(bins);
    }
done:
    PyBuffer_Release(&av);
    PyBuffer_Release(&pv);
    return result;
}

/* ---- AbsDiffSum: an exact sum the Parquet reader feeds while it decodes (_consumer.h) ---------- */

typedef struct {
    PyObject_HEAD
    Bins *bins;       /* its own bins (not the thread's): it lives across calls */
    Py_ssize_t rows;  /* rows taken */
    int bad;          /* a NaN or infinity was met: the sum is void */
    RowConsumer consumer;
} AbsDiffSum;

static int abs_diff_take(void *self, const double *a, const double *b, Py_ssize_t n) {
    AbsDiffSum *s = self;
    if (!s->bad) s->bad = sum_abs_diff(s->bins, a, b, n, fold);
    s->rows += n;
    return s->bad;
}

static PyObject *abs_diff_sum_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (!PyArg_ParseTuple(args, ":AbsDiffSum") || (kwargs && PyDict_Size(kwargs))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "AbsDiffSum() takes no arguments");
        return NULL;
    }
    AbsDiffSum *s = (AbsDiffSum *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    s->bins = PyMem_RawCalloc(1, sizeof(Bins));
    if (!s->bins) { Py_DECREF(s); return PyErr_NoMemory(); }
    s->bins->low = EXPONENTS;
    s->bins->high = -1;
    s->bins->ready = 1;
    s->consumer.take = abs_diff_take;
    s->consumer.self = s;
    return (PyObject *)s;
}

static void abs_diff_sum_dealloc(AbsDiffSum *s) {
    PyMem_RawFree(s->bins);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static void consumer_capsule_release(PyObject *capsule) {
    Py_XDECREF((PyObject *)PyCapsule_GetContext(capsule));
}

static PyObject *abs_diff_sum_consumer(AbsDiffSum *s, PyObject *unused) {
    PyObject *capsule = PyCapsule_New(&s->consumer, CONSUMER_CAPSULE, consumer_capsule_release);
    if (!capsule) return NULL;
    Py_INCREF(s); /* the capsule keeps the sum alive */
    if (PyCapsule_SetContext(capsule, s) < 0) { Py_DECREF(s); Py_DECREF(capsule); return NULL; }
    return capsule;
}

static PyObject *abs_diff_sum_units(AbsDiffSum *s, PyObject *unused) {
    if (s->bad) Py_RETURN_NONE;
    return to_units(s->bins);
}

static PyObject *abs_diff_sum_add(AbsDiffSum *s, PyObject *args) {
    PyObject *a_obj, *p_obj;
    if (!PyArg_ParseTuple(args, "OO", &a_obj, &p_obj)) return NULL;
    Py_buffer av, pv;
    if (float64_buffer(a_obj, &av, "actual") < 0) return NULL;
    if (float64_buffer(p_obj, &pv, "prediction") < 0) { PyBuffer_Release(&av); return NULL; }
    if (av.len != pv.len) {
        PyErr_SetString(PyExc_ValueError, "actual and prediction must have the same length");
    } else {
        Py_BEGIN_ALLOW_THREADS
        abs_diff_take(s, av.buf, pv.buf, av.len / 8);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&av);
    PyBuffer_Release(&pv);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef abs_diff_sum_methods[] = {
    {"consumer", (PyCFunction)abs_diff_sum_consumer, METH_NOARGS,
     "consumer() -> capsule: this sum as a RowConsumer (_consumer.h) for l1stream.parquet._pages.reduce_pair"},
    {"units", (PyCFunction)abs_diff_sum_units, METH_NOARGS,
     "units() -> int or None: the exact sum of |a - b| over the rows taken, in 2**-1074 units; None once a "
     "value was NaN or infinite"},
    {"add", (PyCFunction)abs_diff_sum_add, METH_VARARGS, "add(a, b): take two float64 arrays of one length"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef abs_diff_sum_members[] = {
    {"rows", T_PYSSIZET, offsetof(AbsDiffSum, rows), READONLY, "rows taken"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject AbsDiffSumType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l1stream.exact._kernel.AbsDiffSum",
    .tp_basicsize = sizeof(AbsDiffSum),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AbsDiffSum(): an exact sum of |a - b| that C code feeds in runs of rows (through consumer()).",
    .tp_new = abs_diff_sum_new,
    .tp_dealloc = (destructor)abs_diff_sum_dealloc,
    .tp_methods = abs_diff_sum_methods,
    .tp_members = abs_diff_sum_members,
};

#include "_profile.h"

/* Rows regrouped by code (a counting sort): per thread, grown as needed, kept for the next call. */
static _Thread_local double *grouped_values;
static _Thread_local Py_ssize_t grouped_capacity;

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void free_grouped_scratch(void *unused) {  /* runs in the ending thread */
    (void)unused;
    PyMem_RawFree(grouped_values);
    grouped_values = NULL;
    grouped_capacity = 0;
}

static void make_scratch_key(void) { (void)pthread_key_create(&scratch_key, free_grouped_scratch); }

static void thread_holds_scratch(void) {
    (void)pthread_once(&scratch_once, make_scratch_key);
    if (!pthread_getspecific(scratch_key)) (void)pthread_setspecific(scratch_key, &scratch_key);
}
#else
static void thread_holds_scratch(void) {}
#endif

static double *grouped_scratch(Py_ssize_t n) {
    if (n > grouped_capacity || !grouped_values) {  /* a first call of 0 rows gets a buffer too (not NULL) */
        thread_holds_scratch();
        double *grown = PyMem_RawRealloc(grouped_values, (size_t)(2 * (n > 0 ? n : 1)) * sizeof(double));
        if (!grown) return NULL;
        grouped_values = grown;
        grouped_capacity = n;
    }
    return grouped_values;
}

/* Rows regrouped by code (a counting sort): group g's rows at [start_g, start_g + rows[g]) of ga
   and gp, in row order; rows[] must come zeroed.  -1 with ValueError for a code outside
   [0, distinct).  Releases the GIL. */
static int regroup(const double *a, const double *p, const int64_t *codes, Py_ssize_t n, Py_ssize_t distinct,
                   Py_ssize_t *rows, Py_ssize_t *next, double *ga, double *gp) {
    int out_of_range = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t g = codes[i];
        if (g < 0 || g >= distinct) { out_of_range = 1; break; }
        rows[g]++;
    }
    if (!out_of_range) {
        Py_ssize_t start = 0;
        for (Py_ssize_t g = 0; g < distinct; g++) { next[g] = start; start += rows[g]; }
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t at = next[codes[i]]++;
            ga[at] = a[i];
            gp[at] = p[i];
        }
    }
    Py_END_ALLOW_THREADS
    if (out_of_range) {
        PyErr_SetString(PyExc_ValueError, "a code is outside [0, distinct)");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(abs_diff_units_by_doc,
"abs_diff_units_by(actual, prediction, codes, distinct) -> (present, units, counts) or None\n\n"
"Exact sums of |actual - prediction| per code (int64 codes in [0, distinct)), in 2**-1074 units:\n"
"the rows are regrouped by code (a counting sort into per-thread scratch), then each group is\n"
"summed as abs_diff_units sums. Returns the codes present (increasing), their sums and row counts;\n"
"None when a value is NaN or infinite.");

static PyObject *abs_diff_units_by(PyObject *self, PyObject *args) {
    PyObject *a_obj, *p_obj, *c_obj;
    Py_ssize_t distinct;
    if (!PyArg_ParseTuple(args, "OOOn", &a_obj, &p_obj, &c_obj, &distinct)) return NULL;
    if (distinct < 1 || distinct > (1 << 22)) {
        PyErr_SetString(PyExc_ValueError, "distinct must be in 1..2**22");
        return NULL;
    }
    Py_buffer av, pv, cv;
    if (float64_buffer(a_obj, &av, "actual") < 0) return NULL;
    if (float64_buffer(p_obj, &pv, "prediction") < 0) { PyBuffer_Release(&av); return NULL; }
    if (PyObject_GetBuffer(c_obj, &cv, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&av); PyBuffer_Release(&pv); return NULL;
    }
    PyObject *result = NULL, *present = NULL, *units = NULL, *counts = NULL;
    Py_ssize_t *rows = NULL, *next = NULL;
    if (cv.itemsize != 8 || !cv.format || (strcmp(cv.format, "q") != 0 && strcmp(cv.format, "l") != 0)) {
        PyErr_SetString(PyExc_TypeError, "codes must be a contiguous int64 array");
        goto done;
    }
    if (av.len != pv.len || av.len != cv.len) {
        PyErr_SetString(PyExc_ValueError, "actual, prediction and codes must have the same length");
        goto done;
    }
    Py_ssize_t n = av.len / 8;
    rows = PyMem_RawCalloc((size_t)distinct, sizeof(Py_ssize_t));
    next = PyMem_RawMalloc((size_t)distinct * sizeof(Py_ssize_t));
    double *ga = grouped_scratch(n);
    if (!rows || !next || !ga) { PyErr_NoMemory(); goto done; }
    double *gp = ga + n;
    if (regroup(av.buf, pv.buf, cv.buf, n, distinct, rows, next, ga, gp) < 0) goto done;
    if (!(present = PyList_New(0)) || !(units = PyList_New(0)) || !(counts = PyList_New(0))) goto done;
    Py_ssize_t offset = 0;
    for (Py_ssize_t g = 0; g < distinct; g++) {
        Py_ssize_t m = rows[g];
        if (!m) continue;
        Bins *bins = fresh_bins();
        int bad;
        Py_BEGIN_ALLOW_THREADS
        bad = sum_abs_diff(bins, ga + offset, gp + offset, m, fold);
        Py_END_ALLOW_THREADS
        offset += m;
        if (bad) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        PyObject *code = PyLong_FromSsize_t(g), *u = to_units(bins), *c = PyLong_FromSsize_t(m);
        int failed = !code || !u || !c || PyList_Append(present, code) || PyList_Append(units, u)
                     || PyList_Append(counts, c);
        Py_XDECREF(code); Py_XDECREF(u); Py_XDECREF(c);
        if (failed) goto done;
    }
    result = PyTuple_Pack(3, present, units, counts);
done:
    Py_XDECREF(present);
    Py_XDECREF(units);
    Py_XDECREF(counts);
    PyMem_RawFree(rows);
    PyMem_RawFree(next);
    PyBuffer_Release(&av);
    PyBuffer_Release(&pv);
    PyBuffer_Release(&cv);
    return result;
}

PyDoc_STRVAR(feed_by_doc,
"feed_by(consumers, actual, prediction, codes) -> [codes declined]\n\n"
"Each row to the consumer of its code: consumers[g] (a capsule from .consumer(), or None to skip\n"
"those rows) takes the rows with code g, in row order, regrouped as abs_diff_units_by regroups\n"
"them. Returns the codes whose consumer declined its rows (empty: every row was taken).");

static int int64_buffer(PyObject *obj, Py_buffer *view, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != 8 || !view->format || (strcmp(view->format, "q") != 0 && strcmp(view->format, "l") != 0)) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous int64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *feed_by(PyObject *self, PyObject *args) {
    PyObject *c_list, *a_obj, *p_obj, *k_obj;
    if (!PyArg_ParseTuple(args, "OOOO", &c_list, &a_obj, &p_obj, &k_obj)) return NULL;
    PyObject *seq = PySequence_Fast(c_list, "consumers must be a sequence of consumer capsules or None");
    if (!seq) return NULL;
    Py_ssize_t distinct = PySequence_Fast_GET_SIZE(seq);
    RowConsumer **consumers = PyMem_RawCalloc((size_t)(distinct ? distinct : 1), sizeof(RowConsumer *));
    Py_ssize_t *rows = PyMem_RawCalloc((size_t)(distinct ? distinct : 1), sizeof(Py_ssize_t));
    Py_ssize_t *next = PyMem_RawMalloc((size_t)(distinct ? distinct : 1) * sizeof(Py_ssize_t));
    int *declined = PyMem_RawCalloc((size_t)(distinct ? distinct : 1), sizeof(int));
    Py_buffer av = {0}, pv = {0}, kv = {0};
    int have = 0;
    PyObject *result = NULL;
    if (!consumers || !rows || !next || !declined) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t g = 0; g < distinct; g++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, g);
        if (item == Py_None) continue;
        if (!(consumers[g] = PyCapsule_GetPointer(item, CONSUMER_CAPSULE))) goto done;
    }
    if (float64_buffer(a_obj, &av, "actual") < 0) goto done;
    have = 1;
    if (float64_buffer(p_obj, &pv, "prediction") < 0) goto done;
    have = 2;
    if (int64_buffer(k_obj, &kv, "codes") < 0) goto done;
    have = 3;
    if (av.len != pv.len || av.len != kv.len) {
        PyErr_SetString(PyExc_ValueError, "actual, prediction and codes must have the same length");
        goto done;
    }
    Py_ssize_t n = av.len / 8;
    double *ga = grouped_scratch(n);
    if (!ga) { PyErr_NoMemory(); goto done; }
    double *gp = ga + n;
    if (regroup(av.buf, pv.buf, kv.buf, n, distinct, rows, next, ga, gp) < 0) goto done;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t offset = 0;
    for (Py_ssize_t g = 0; g < distinct; g++) {
        if (rows[g] && consumers[g]) declined[g] = consumers[g]->take(consumers[g]->self, ga + offset, gp + offset,
                                                                      rows[g]) != 0;
        offset += rows[g];
    }
    Py_END_ALLOW_THREADS
    if (!(result = PyList_New(0))) goto done;
    for (Py_ssize_t g = 0; g < distinct; g++) {
        if (!declined[g]) continue;
        PyObject *code = PyLong_FromSsize_t(g);
        if (!code || PyList_Append(result, code) < 0) { Py_XDECREF(code); Py_CLEAR(result); goto done; }
        Py_DECREF(code);
    }
done:
    if (have > 0) PyBuffer_Release(&av);
    if (have > 1) PyBuffer_Release(&pv);
    if (have > 2) PyBuffer_Release(&kv);
    PyMem_RawFree(consumers); PyMem_RawFree(rows); PyMem_RawFree(next); PyMem_RawFree(declined);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(code_counts_doc,
"code_counts(codes, distinct) -> bytes: the rows of each code 0..distinct-1 (int64 counts), as\n"
"numpy.bincount(codes, minlength=distinct) counts them, in one pass; a code outside [0, distinct)\n"
"is a ValueError.");

static PyObject *code_counts(PyObject *self, PyObject *args) {
    PyObject *k_obj;
    Py_ssize_t distinct;
    if (!PyArg_ParseTuple(args, "On", &k_obj, &distinct)) return NULL;
    if (distinct < 0) { PyErr_SetString(PyExc_ValueError, "distinct must be >= 0"); return NULL; }
    Py_buffer kv;
    if (int64_buffer(k_obj, &kv, "codes") < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, distinct * (Py_ssize_t)sizeof(int64_t));
    if (!out) { PyBuffer_Release(&kv); return NULL; }
    int64_t *counts = (int64_t *)PyBytes_AS_STRING(out);
    memset(counts, 0, (size_t)distinct * sizeof(int64_t));
    const int64_t *codes = kv.buf;
    Py_ssize_t n = kv.len / 8, bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t code = (uint64_t)codes[i];
        if (code >= (uint64_t)distinct) { bad = i; break; }
        counts[code]++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&kv);
    if (bad >= 0) {
        Py_DECREF(out);
        PyErr_Format(PyExc_ValueError, "code_counts: row %zd has a code outside [0, %zd)", bad, distinct);
        return NULL;
    }
    return out;
}

/* Two consumers fed the same rows: the report's first pass profiles and selects in one read. */
typedef struct {
    RowConsumer consumer;  /* first: its address is the capsule's pointer */
    RowConsumer *first, *second;
    PyObject *first_owner, *second_owner;  /* the capsules, kept alive */
} Tee;

static int tee_take(void *self, const double *a, const double *p, Py_ssize_t n) {
    Tee *t = self;
    return t->first->take(t->first->self, a, p, n) || t->second->take(t->second->self, a, p, n);
}

static void tee_release(PyObject *capsule) {
    Tee *t = PyCapsule_GetPointer(capsule, CONSUMER_CAPSULE);
    if (!t) return;
    Py_XDECREF(t->first_owner);
    Py_XDECREF(t->second_owner);
    PyMem_RawFree(t);
}

PyDoc_STRVAR(tee_doc,
"tee(first, second) -> consumer capsule: rows handed to it go to `first`, then to `second` (two\n"
"consumer capsules, kept alive by it); it declines a run as soon as one of them does (the caller\n"
"then discards both).");

static PyObject *tee(PyObject *self, PyObject *args) {
    PyObject *first, *second;
    if (!PyArg_ParseTuple(args, "OO:tee", &first, &second)) return NULL;
    RowConsumer *a = PyCapsule_GetPointer(first, CONSUMER_CAPSULE), *b = a ? PyCapsule_GetPointer(second, CONSUMER_CAPSULE) : NULL;
    if (!a || !b) return NULL;
    Tee *t = PyMem_RawCalloc(1, sizeof(Tee));
    if (!t) return PyErr_NoMemory();
    t->consumer.take = tee_take;
    t->consumer.self = t;
    t->first = a;
    t->second = b;
    PyObject *capsule = PyCapsule_New(t, CONSUMER_CAPSULE, tee_release);
    if (!capsule) { PyMem_RawFree(t); return NULL; }
    Py_INCREF(first);
    Py_INCREF(second);
    t->first_owner = first;
    t->second_owner = second;
    return capsule;
}

static PyObject *fold_names(PyObject *self, PyObject *unused) {
    PyObject *names = PyList_New(0);
    for (int i = 0; names && i < FOLDS; i++) {
        if (!fold_runs_here(i)) continue;
        PyObject *name = PyUnicode_FromString(folds[i].name);
        if (!name || PyList_Append(names, name) < 0) Py_CLEAR(names);
        Py_XDECREF(name);
    }
    return names;
}

static PyMethodDef methods[] = {
    {"abs_diff_units", abs_diff_units, METH_VARARGS, abs_diff_units_doc},
    {"folds", fold_names, METH_NOARGS, "folds() -> [name, ...]: the vector widths of the fold this processor runs, "
                                       "narrowest first; the last is the one used"},
    {"abs_diff_units_by", abs_diff_units_by, METH_VARARGS, abs_diff_units_by_doc},
    {"feed_by", feed_by, METH_VARARGS, feed_by_doc},
    {"code_counts", code_counts, METH_VARARGS, code_counts_doc},
    {"tee", tee, METH_VARARGS, tee_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Exact float64 sums in C.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) {
    for (int i = 0; i < FOLDS; i++)
        if (fold_runs_here(i)) fold = &folds[i];
    if (PyType_Ready(&AbsDiffSumType) < 0 || PyType_Ready(&ProfileSumType) < 0 || PyType_Ready(&SelectPassType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddObjectRef(m, "AbsDiffSum", (PyObject *)&AbsDiffSumType) < 0
              || PyModule_AddObjectRef(m, "ProfileSum", (PyObject *)&ProfileSumType) < 0
              || PyModule_AddObjectRef(m, "SelectPass", (PyObject *)&SelectPassType) < 0))
        Py_CLEAR(m);
    return m;
}
