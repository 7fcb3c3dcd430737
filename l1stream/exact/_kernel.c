/* The exact sum of |actual - prediction| in C: the compiled twin of l1stream/_exact.py's kernel.
 *
 * The method of _exact.py, on blocks of 4096 rows: with hi = max(a, p), lo = min(a, p), a block's sum is
 * sum(hi) - sum(lo).  One Rump-Ogita-Oishi extraction against sigma = 2**(E + 17) (every |value|
 * < 2**E) splits each value into q + r exactly; the q sum exactly in float64 in any order, and so
 * do the r when the block's values have one sign and span at most 2**20 (ordinary data).  Otherwise
 * a second extraction runs on the residuals, and what is still left goes to the exponent bins.
 * Two-wide vectors (SSE2 on x86-64, plain C elsewhere), four rows a step; no fast-math: the
 * extractions need IEEE rounding.  Block sums and leftovers go to exact integer bins, one per binary exponent:
 * every finite float64 is m * 2**(e - 1075) with |m| < 2**53, and adding m to a 128-bit bin is
 * exact.  The result is a Python int counting 2**-1074, as ExactSum.units.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2i __attribute__((vector_size(16)));

enum { BLOCK = 4096, MARGIN = 17, MAX_FOLD_EXPONENT = 1023 - MARGIN - 1, MIN_SIGMA_EXPONENT = -1021,
       RESIDUAL_SPAN = 37 };

static inline v2d load2(const double *x) {
    v2d v;
    memcpy(&v, x, sizeof v);
    return v;
}
static inline void store2(double *x, v2d v) { memcpy(x, &v, sizeof v); }
static inline v2d vabs(v2d v) { return (v2d)((v2i)v & (v2i){INT64_MAX, INT64_MAX}); }
#ifdef __SSE2__
#include <emmintrin.h>
/* NaN never reaches a result: fold_block checks for it first */
static inline v2d vmax(v2d a, v2d b) { return (v2d)_mm_max_pd((__m128d)a, (__m128d)b); }
static inline v2d vmin(v2d a, v2d b) { return (v2d)_mm_min_pd((__m128d)a, (__m128d)b); }
static inline int any_nonzero(v2d a) { return _mm_movemask_pd(_mm_cmpneq_pd((__m128d)a, _mm_setzero_pd())) != 0; }
#else
static inline v2d vmax(v2d a, v2d b) { v2d r = {a[0] > b[0] ? a[0] : b[0], a[1] > b[1] ? a[1] : b[1]}; return r; }
static inline v2d vmin(v2d a, v2d b) { v2d r = {a[0] < b[0] ? a[0] : b[0], a[1] < b[1] ? a[1] : b[1]}; return r; }
static inline int any_nonzero(v2d a) { return a[0] != 0.0 || a[1] != 0.0; }
#endif
static inline double hsum(v2d a, v2d b) { return (a[0] + a[1]) + (b[0] + b[1]); } /* callers: exact sums */

/* Add one scalar row (hi - lo) to the bins; return 1 if not finite. */
static inline int add_row(Bins *bins, double x, double y) {
    int lt = x < y;
    return add_untracked(bins, x, lt) | add_untracked(bins, y, !lt);
}

static int fold_block(Bins *bins, const double *a, const double *p, Py_ssize_t m, double *rh, double *rl) {
    const v2d zero = {0.0, 0.0};
    v2d top0 = {-INFINITY, -INFINITY}, top1 = top0, bottom0 = -top0, bottom1 = bottom0, check0 = zero,
        check1 = zero;
    for (Py_ssize_t i = 0; i < m; i += 4) {
        v2d x0 = load2(a + i), y0 = load2(p + i), x1 = load2(a + i + 2), y1 = load2(p + i + 2);
        top0 = vmax(top0, vmax(x0, y0));
        top1 = vmax(top1, vmax(x1, y1));
        bottom0 = vmin(bottom0, vmin(x0, y0));
        bottom1 = vmin(bottom1, vmin(x1, y1));
        check0 += (x0 - x0) + (y0 - y0); /* NaN once a value is NaN or infinite */
        check1 += (x1 - x1) + (y1 - y1);
    }
    double check = hsum(check0, check1);
    if (check != 0.0 || check != check) return 1;
    v2d top = vmax(top0, top1), bottom = vmin(bottom0, bottom1);
    double high = top[0] > top[1] ? top[0] : top[1], low = bottom[0] < bottom[1] ? bottom[0] : bottom[1];
    double bound = high > -low ? high : -low;
    if (bound == 0.0) return 0;
    int exponent;
    frexp(bound, &exponent); /* bound < 2**exponent */
    if (exponent > MAX_FOLD_EXPONENT) { /* near overflow: the bins take the block */
        int bad = 0;
        touch_all(bins);
        for (Py_ssize_t i = 0; i < m; i++) bad |= add_row(bins, a[i], p[i]);
        return bad;
    }
    double smallest = low > 0.0 ? low : high < 0.0 ? -high : 0.0;
    int sigma_exponent = exponent + MARGIN > MIN_SIGMA_EXPONENT ? exponent + MARGIN : MIN_SIGMA_EXPONENT;
    double sigma = ldexp(1.0, sigma_exponent);
    const v2d s = {sigma, sigma};
    v2d q0 = zero, q1 = zero, r0 = zero, r1 = zero;
    int smallest_exponent = 0;
    if (smallest > 0.0) frexp(smallest, &smallest_exponent);
    if (smallest > 0.0 && sigma_exponent - smallest_exponent <= RESIDUAL_SPAN) {
        /* residuals are multiples of the smallest value's ulp, at most 2**37 of them each: exact */
        for (Py_ssize_t i = 0; i < m; i += 4) {
            v2d x0 = load2(a + i), y0 = load2(p + i), x1 = load2(a + i + 2), y1 = load2(p + i + 2);
            v2d h0 = vmax(x0, y0), l0 = vmin(x0, y0), h1 = vmax(x1, y1), l1 = vmin(x1, y1);
            v2d qh0 = (s + h0) - s, ql0 = (s + l0) - s, qh1 = (s + h1) - s, ql1 = (s + l1) - s;
            q0 += qh0 - ql0;
            q1 += qh1 - ql1;
            r0 += (h0 - qh0) - (l0 - ql0);
            r1 += (h1 - qh1) - (l1 - ql1);
        }
        return add(bins, hsum(q0, q1), 0) | add(bins, hsum(r0, r1), 0);
    }
    /* general: a second extraction on the residuals, then the bins for what is left */
    for (Py_ssize_t i = 0; i < m; i += 2) {
        v2d x = load2(a + i), y = load2(p + i);
        v2d h = vmax(x, y), l = vmin(x, y);
        v2d qh = (s + h) - s, ql = (s + l) - s;
        q0 += qh - ql;
        store2(rh + i, h - qh);
        store2(rl + i, l - ql);
    }
    int bad = add(bins, hsum(q0, zero), 0);
    sigma_exponent = sigma_exponent - 53 + MARGIN > MIN_SIGMA_EXPONENT ? sigma_exponent - 53 + MARGIN
                                                                      : MIN_SIGMA_EXPONENT;
    sigma = ldexp(1.0, sigma_exponent);
    const v2d s1 = {sigma, sigma};
    v2d left = zero;
    for (Py_ssize_t i = 0; i < m; i += 2) {
        v2d h = load2(rh + i), l = load2(rl + i);
        v2d qh = (s1 + h) - s1, ql = (s1 + l) - s1;
        q1 += qh - ql;
        v2d dh = h - qh, dl = l - ql;
        store2(rh + i, dh);
        store2(rl + i, dl);
        left += vabs(dh) + vabs(dl); /* a sum of magnitudes is 0 only if each is (inf is fine) */
    }
    bad |= add(bins, hsum(q1, zero), 0);
    if (any_nonzero(left)) {
        touch_all(bins);
        for (Py_ssize_t i = 0; i < m; i++) {
            if (rh[i] != 0.0) bad |= add_untracked(bins, rh[i], 0);
            if (rl[i] != 0.0) bad |= add_untracked(bins, rl[i], 1);
        }
    }
    return bad;
}

/* sum |a - p| into bins; return 1 if a value is not finite */
static int sum_abs_diff(Bins *bins, const double *a, const double *p, Py_ssize_t n) {
    double rh[BLOCK], rl[BLOCK];
    int bad = 0;
    Py_ssize_t whole = n & ~(Py_ssize_t)3;
    for (Py_ssize_t start = 0; start < whole && !bad; start += BLOCK) {
        Py_ssize_t m = whole - start < BLOCK ? whole - start : BLOCK;
        bad |= fold_block(bins, a + start, p + start, m, rh, rl);
    }
    for (Py_ssize_t i = whole; i < n; i++) { /* at most 3 rows: tracked adds */
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
"abs_diff_units(actual, prediction) -> int or None\n\n"
"Exact sum of |actual - prediction| over two float64 arrays of one length, in 2**-1074 units;\n"
"None when a value is NaN or infinite.");

static PyObject *abs_diff_units(PyObject *self, PyObject *args) {
    PyObject *a_obj, *p_obj;
    if (!PyArg_ParseTuple(args, "OO", &a_obj, &p_obj)) return NULL;
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
    bad = sum_abs_diff(bins, a, p, n);
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

/* Rows regrouped by code (a counting sort): per thread, grown as needed, kept for the next call. */
static _Thread_local double *grouped_values;
static _Thread_local Py_ssize_t grouped_capacity;

static double *grouped_scratch(Py_ssize_t n) {
    if (n > grouped_capacity) {
        double *grown = PyMem_RawRealloc(grouped_values, (size_t)(2 * (n > 0 ? n : 1)) * sizeof(double));
        if (!grown) return NULL;
        grouped_values = grown;
        grouped_capacity = n;
    }
    return grouped_values;
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
    const double *a = av.buf, *p = pv.buf;
    const int64_t *codes = cv.buf;
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
        goto done;
    }
    if (!(present = PyList_New(0)) || !(units = PyList_New(0)) || !(counts = PyList_New(0))) goto done;
    Py_ssize_t offset = 0;
    for (Py_ssize_t g = 0; g < distinct; g++) {
        Py_ssize_t m = rows[g];
        if (!m) continue;
        Bins *bins = fresh_bins();
        int bad;
        Py_BEGIN_ALLOW_THREADS
        bad = sum_abs_diff(bins, ga + offset, gp + offset, m);
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

static PyMethodDef methods[] = {
    {"abs_diff_units", abs_diff_units, METH_VARARGS, abs_diff_units_doc},
    {"abs_diff_units_by", abs_diff_units_by, METH_VARARGS, abs_diff_units_by_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernel", "Exact float64 sums in C.", -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
