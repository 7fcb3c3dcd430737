/* Consumers for the error report's passes, fed by the Parquet reader as pages decode (_consumer.h).
 *
 * ProfileSum: everything the report's first pass needs of a run of rows, exactly: the L1 sum (cut()
 *   hands it out and restarts it, one jackknife block per row group), the rows, the exact sum of the
 *   float64 losses d = fl(|a - p|) (with a - p = d + e by two-sum, |a - p| = |d| + sign(d) * e: the
 *   L1 sum is the losses' plus the corrections', one fold instead of two), how many losses are not
 *   integers, the exact sum of squared errors (each product split by Dekker: the terms
 *   l1stream/exact/squares.py adds, summed here by the same folds), and the counts of the losses'
 *   top 16 bits (the log histogram the quantiles start from).  Values beyond 2**480 (where a
 *   difference could overflow) are declined, so no loss here is infinite.
 * SelectPass: the quantile passes: for a few buckets of loss bit patterns (top `bits` bits from
 *   `prefix` to `prefix + span - 1`; a span of 1 names one prefix), the values themselves or the
 *   counts of their next 16 bits (or of the first 16 - `shift` of them); and the count and exact sum of the finite losses above a bit
 *   pattern (the top-1% share).
 * Either declines a run (returns 1) with a value that is not finite, or (ProfileSum) a block whose
 * squares leave the range where the split products are exact (beyond 2**480, or differences below
 * 2**-480): the caller then reads those rows as tables, where numpy and Fractions take them.
 * Part of l1stream/exact/_kernel.c (included once, after the fold and Bins).
 */
#ifndef L1STREAM_PROFILE_H
#define L1STREAM_PROFILE_H

enum { DIGITS = 1 << 16 };
static const double zero_block[BLOCK];  /* the p of a fold that sums non-negative values */
static const double SAFE_HIGH = 0x1p480, SAFE_LOW = 0x1p-480, SPLITTER = 134217729.0; /* 2**27 + 1 */

/* Add non-negative values exactly (with the fold `f`). */
static int add_non_negative(Bins *bins, const double *values, Py_ssize_t m, const Fold *f) {
    return sum_abs_diff(bins, values, zero_block, m, f);
}

/* Add signed values exactly: the positive ones to `pos`, the magnitudes of the negative to `neg`. */
static int add_signed(Bins *pos, Bins *neg, const double *values, Py_ssize_t m, double *scratch, const Fold *f) {
    for (Py_ssize_t i = 0; i < m; i++) scratch[i] = values[i] > 0.0 ? values[i] : 0.0;
    int bad = add_non_negative(pos, scratch, m, f);
    for (Py_ssize_t i = 0; i < m; i++) scratch[i] = values[i] < 0.0 ? -values[i] : 0.0;
    return bad | add_non_negative(neg, scratch, m, f);
}

static inline void split(double x, double *high, double *low) {
    double c = x * SPLITTER;
    *high = c - (c - x);
    *low = x - *high;
}

/* ---- ProfileSum -------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    /* since the last cut: the exact sum of fl(|a - p|), and of the two-sum corrections that make it
       |a - p| exactly (sign(d) * e, split by sign): the L1 block is their sum */
    Bins *loss, *correction, *correction_negative;
    Bins *squares, *squares_negative;
    PyObject *loss_units;  /* the float losses' exact sum over the cuts before (a Python int) */
    uint32_t *digits;
    Py_ssize_t digit_low, digit_high;  /* the digits counted lie in [low, high] (none: DIGITS, -1) */
    Py_ssize_t rows, cut_rows, fractional;
    int declined;
    const Fold *fold;  /* the vector width it runs (the module's choice, or a test's) */
    RowConsumer consumer;
} ProfileSum;

/* The block's first loop, per vector width (_profile_block.h): the same bits from each. */
typedef Py_ssize_t (*ProfileLoop)(const double *, const double *, Py_ssize_t, double *, double *, double *, double *,
                                  int *);
#define FOLD_TARGET
#define FOLD_WIDTH 2
#define PROFILE_NAME profile_loop_2
#define vd v2d
#define vi v2i
#include "_profile_block.h"
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef PROFILE_NAME
#undef vd
#undef vi
#ifdef HAVE_WIDE_FOLDS
#define FOLD_TARGET __attribute__((target("avx2")))
#define FOLD_WIDTH 4
#define PROFILE_NAME profile_loop_4
#define vd v4d
#define vi v4i
#include "_profile_block.h"
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef PROFILE_NAME
#undef vd
#undef vi
#define FOLD_TARGET __attribute__((target("avx512f")))
#define FOLD_WIDTH 8
#define PROFILE_NAME profile_loop_8
#define vd v8d
#define vi v8i
#include "_profile_block.h"
#undef FOLD_TARGET
#undef FOLD_WIDTH
#undef PROFILE_NAME
#undef vd
#undef vi
static const ProfileLoop profile_loops[] = {profile_loop_2, profile_loop_4, profile_loop_8};
#else
static const ProfileLoop profile_loops[] = {profile_loop_2};
#endif

/* One block (m <= BLOCK rows): 0 when it leaves the range the C path takes (nothing added then). */
static int profile_block(ProfileSum *s, const double *a, const double *p, Py_ssize_t m) {
    double losses[BLOCK], e[BLOCK], sq[BLOCK], err[BLOCK], scratch[BLOCK];
    int flags;
    const Fold *f = s->fold;
    Py_ssize_t fractional = profile_loops[f - folds](a, p, m, e, losses, sq, err, &flags);
    int outside = flags & 1, any_e = flags >> 1;
    if (outside) return 0;
    Py_ssize_t low = s->digit_low, high = s->digit_high;
    for (Py_ssize_t i = 0; i < m; i++) {  /* not vectorised: a scatter */
        uint64_t bits;
        memcpy(&bits, &losses[i], 8);
        Py_ssize_t digit = (Py_ssize_t)(bits >> 48);
        s->digits[digit]++;
        low = digit < low ? digit : low;
        high = digit > high ? digit : high;
    }
    s->digit_low = low;
    s->digit_high = high;
    s->fractional += fractional;
    add_non_negative(s->loss, losses, m, f);
    sum_abs_diff(s->squares, sq, err, m, f);  /* |sq - err| = sq + (d*d - sq) = d*d, exactly */
    if (!any_e) return 1;
    /* The rows whose difference rounded (usually a few in a block): every term below is 0 for the
       others.  d and e of those rows, packed into `losses` and `e`. */
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        double d = a[i] - p[i], ei = e[i];
        losses[k] = d;
        e[k] = ei;
        k += ei != 0.0;
    }
    /* |a - p| = |d| + sign(d) * e (|e| is at most half an ulp of d, and d = 0 only when a == p) */
    for (Py_ssize_t i = 0; i < k; i++) sq[i] = losses[i] < 0.0 ? -e[i] : e[i];
    add_signed(s->correction, s->correction_negative, sq, k, scratch, f);
    /* (d + e)**2 = d*d + 2*d*e + e*e: the cross and e terms, each with its Dekker error */
    for (Py_ssize_t i = 0; i < k; i++) {
        double d = losses[i], dh, dl, eh, el;
        split(d, &dh, &dl);
        split(e[i], &eh, &el);
        double cross = d * e[i];
        sq[i] = 2.0 * cross;
        err[i] = 2.0 * (((dh * eh - cross) + dh * el + dl * eh) + dl * el);
    }
    add_signed(s->squares, s->squares_negative, sq, k, scratch, f);
    add_signed(s->squares, s->squares_negative, err, k, scratch, f);
    for (Py_ssize_t i = 0; i < k; i++) {
        double eh, el;
        split(e[i], &eh, &el);
        sq[i] = e[i] * e[i];
        err[i] = ((eh * eh - sq[i]) + 2.0 * eh * el) + el * el;
    }
    add_non_negative(s->squares, sq, k, f);
    add_signed(s->squares, s->squares_negative, err, k, scratch, f);
    return 1;
}

static int profile_take(void *self, const double *a, const double *p, Py_ssize_t n) {
    ProfileSum *s = self;
    if (s->declined) return 1;
    if (n > (Py_ssize_t)UINT32_MAX - s->rows) { s->declined = 1; return 1; }  /* a digit's count could wrap */
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        Py_ssize_t m = n - start < BLOCK ? n - start : BLOCK;
        if (!profile_block(s, a + start, p + start, m)) { s->declined = 1; return 1; }
    }
    s->rows += n;
    s->cut_rows += n;
    return 0;
}

static Bins *new_bins(void) {
    Bins *bins = PyMem_RawCalloc(1, sizeof(Bins));
    if (bins) { bins->low = EXPONENTS; bins->high = -1; bins->ready = 1; }
    return bins;
}

static PyObject *profile_sum_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    const char *fold_name = NULL;
    if (!PyArg_ParseTuple(args, "|z:ProfileSum", &fold_name) || (kwargs && PyDict_Size(kwargs))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "ProfileSum(fold=None) takes no keyword arguments");
        return NULL;
    }
    const Fold *chosen = named_fold(fold_name);
    if (!chosen) return NULL;
    ProfileSum *s = (ProfileSum *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    s->fold = chosen;
    s->loss = new_bins(); s->correction = new_bins(); s->correction_negative = new_bins();
    s->squares = new_bins(); s->squares_negative = new_bins();
    s->digits = PyMem_RawCalloc(DIGITS, sizeof(uint32_t));
    s->digit_low = DIGITS;
    s->digit_high = -1;
    s->loss_units = PyLong_FromLong(0);
    if (!s->loss || !s->correction || !s->correction_negative || !s->squares || !s->squares_negative || !s->digits
            || !s->loss_units) {
        Py_DECREF(s);
        return PyErr_NoMemory();
    }
    s->consumer.take = profile_take;
    s->consumer.self = s;
    return (PyObject *)s;
}

static void profile_sum_dealloc(ProfileSum *s) {
    PyMem_RawFree(s->loss); PyMem_RawFree(s->correction); PyMem_RawFree(s->correction_negative);
    PyMem_RawFree(s->squares); PyMem_RawFree(s->squares_negative);
    PyMem_RawFree(s->digits);
    Py_XDECREF(s->loss_units);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static void clear_bins(Bins *bins) {
    for (int e = bins->low; e <= bins->high; e++) bins->totals[e] = 0;
    bins->low = EXPONENTS;
    bins->high = -1;
}

static PyObject *profile_sum_consumer(ProfileSum *s, PyObject *unused) {
    PyObject *capsule = PyCapsule_New(&s->consumer, CONSUMER_CAPSULE, consumer_capsule_release);
    if (!capsule) return NULL;
    Py_INCREF(s);
    if (PyCapsule_SetContext(capsule, s) < 0) { Py_DECREF(s); Py_DECREF(capsule); return NULL; }
    return capsule;
}

/* (L1 units, rows) since the last cut, restarted: one jackknife block. */
static PyObject *profile_sum_cut(ProfileSum *s, PyObject *unused) {
    if (s->declined) Py_RETURN_NONE;
    PyObject *loss = to_units(s->loss), *pos = to_units(s->correction), *neg = to_units(s->correction_negative);
    PyObject *correction = NULL, *l1 = NULL, *total = NULL, *out = NULL;
    if (loss && pos && neg && (correction = PyNumber_Subtract(pos, neg)) && (l1 = PyNumber_Add(loss, correction))
            && (total = PyNumber_Add(s->loss_units, loss))) {
        Py_SETREF(s->loss_units, total);
        clear_bins(s->loss);
        clear_bins(s->correction);
        clear_bins(s->correction_negative);
        out = Py_BuildValue("(On)", l1, s->cut_rows);
        s->cut_rows = 0;
    }
    Py_XDECREF(loss); Py_XDECREF(pos); Py_XDECREF(neg); Py_XDECREF(correction); Py_XDECREF(l1);
    return out;
}

/* Everything but the L1 blocks, over the rows cut so far: {rows, loss_units, squares_units, fractional,
   digits} (call after the last cut). */
static PyObject *profile_sum_totals(ProfileSum *s, PyObject *unused) {
    if (s->declined) Py_RETURN_NONE;
    PyObject *digits = PyDict_New(), *pos = to_units(s->squares), *neg = to_units(s->squares_negative),
             *squares = NULL, *out = NULL;
    for (Py_ssize_t d = s->digit_low; digits && d <= s->digit_high; d++) {
        if (!s->digits[d]) continue;
        PyObject *key = PyLong_FromSsize_t(d), *count = PyLong_FromUnsignedLong(s->digits[d]);
        if (!key || !count || PyDict_SetItem(digits, key, count) < 0) Py_CLEAR(digits);
        Py_XDECREF(key);
        Py_XDECREF(count);
    }
    if (digits && pos && neg && (squares = PyNumber_Subtract(pos, neg)))
        out = Py_BuildValue("{s:n,s:O,s:O,s:n,s:n,s:O}", "rows", s->rows, "loss_units", s->loss_units, "squares_units",
                            squares, "infinite", (Py_ssize_t)0, "fractional", s->fractional, "digits", digits);
    Py_XDECREF(digits); Py_XDECREF(pos); Py_XDECREF(neg); Py_XDECREF(squares);
    return out;
}

/* add(a, b) from Python: True when the rows went, False once declined. */
static PyObject *consumer_add(RowConsumer *consumer, PyObject *args) {
    PyObject *a_obj, *p_obj;
    if (!PyArg_ParseTuple(args, "OO", &a_obj, &p_obj)) return NULL;
    Py_buffer av, pv;
    if (float64_buffer(a_obj, &av, "actual") < 0) return NULL;
    if (float64_buffer(p_obj, &pv, "prediction") < 0) { PyBuffer_Release(&av); return NULL; }
    int declined = 0;
    if (av.len != pv.len) {
        PyErr_SetString(PyExc_ValueError, "actual and prediction must have the same length");
    } else {
        Py_BEGIN_ALLOW_THREADS
        declined = consumer->take(consumer->self, av.buf, pv.buf, av.len / 8);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&av);
    PyBuffer_Release(&pv);
    if (PyErr_Occurred()) return NULL;
    return PyBool_FromLong(!declined);
}

static PyObject *profile_sum_add(ProfileSum *s, PyObject *args) { return consumer_add(&s->consumer, args); }

static PyMethodDef profile_sum_methods[] = {
    {"add", (PyCFunction)profile_sum_add, METH_VARARGS, "add(a, b) -> bool: take two float64 arrays (False: declined)"},
    {"consumer", (PyCFunction)profile_sum_consumer, METH_NOARGS, "consumer() -> capsule (_consumer.h)"},
    {"cut", (PyCFunction)profile_sum_cut, METH_NOARGS,
     "cut() -> (units, rows) of the L1 sum since the last cut, restarted; None once declined"},
    {"totals", (PyCFunction)profile_sum_totals, METH_NOARGS,
     "totals() -> {rows, loss_units, squares_units, infinite, fractional, digits}; None once declined"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProfileSumType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l1stream.exact._kernel.ProfileSum",
    .tp_basicsize = sizeof(ProfileSum),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "ProfileSum(fold=None): the report's first pass over rows the reader hands it (see _profile.h); "
              "fold names a vector width from folds() (for tests: every one gives the same bits).",
    .tp_new = profile_sum_new,
    .tp_dealloc = (destructor)profile_sum_dealloc,
    .tp_methods = profile_sum_methods,
};

/* ---- SelectPass -------------------------------------------------------------------------------- */

enum { MAX_SELECT = 64, ROUTE_ALL = 255 };

typedef struct {
    PyObject_HEAD
    int count;
    uint64_t prefix[MAX_SELECT], span[MAX_SELECT];
    int bits[MAX_SELECT], collect[MAX_SELECT], shift[MAX_SELECT];  /* shift: counts of the next 16 - shift bits */
    uint64_t *values[MAX_SELECT];    /* collected patterns (collect) */
    Py_ssize_t filled[MAX_SELECT], capacity[MAX_SELECT];
    int64_t *counts[MAX_SELECT];     /* next-16-bit counts (not collect) */
    uint8_t wanted[DIGITS / 8];      /* top-16-bit digits some bucket (or the tail) may take */
    uint8_t direct[DIGITS];          /* 1 + the one bucket taking a digit whole and alone (collecting); 0: see all */
    uint8_t route[DIGITS];           /* per top-16-bit digit: 0 none wants it, ROUTE_ALL see buckets_of, else direct */
    uint64_t *buckets_of;            /* per top-16-bit digit: a bit for each bucket whose prefixes may start with it */
    int has_tail;
    uint64_t tail_above;
    Bins *tail;
    Py_ssize_t tail_rows;
    int declined;
    RowConsumer consumer;
} SelectPass;

/* Room for `more` values in bucket k; 1 (declined) when out of memory. */
static int reserve(SelectPass *s, int k, Py_ssize_t more) {
    if (s->capacity[k] - s->filled[k] >= more) return 0;
    Py_ssize_t grown = s->capacity[k] ? 2 * s->capacity[k] : 1024;
    while (grown - s->filled[k] < more) grown *= 2;
    uint64_t *values = PyMem_RawRealloc(s->values[k], (size_t)grown * sizeof(uint64_t));
    if (!values) { s->declined = 2; return 1; }
    s->values[k] = values;
    s->capacity[k] = grown;
    return 0;
}

static inline void add_tail(SelectPass *s, uint64_t bits) {
    if (s->has_tail && bits > s->tail_above && bits < 0x7FF0000000000000u) {  /* finite: below inf's pattern */
        double d;
        memcpy(&d, &bits, 8);
        s->tail_rows++;
        add(s->tail, d, 0);
    }
}

/* A row's loss pattern (one the `wanted` digits name) to the buckets that take it and the tail: 1
   when out of memory. */
static inline int select_row(SelectPass *s, uint64_t bits) {
    for (uint64_t maybe = s->buckets_of[bits >> 48]; maybe; maybe &= maybe - 1) {
        int k = __builtin_ctzll(maybe);
        if (s->bits[k] > 16 && (bits >> (64 - s->bits[k])) - s->prefix[k] >= s->span[k]) continue;  /* unsigned */
        if (!s->collect[k]) {
            s->counts[k][((bits >> (48 - s->bits[k])) & 0xFFFF) >> s->shift[k]]++;
            continue;
        }
        if (reserve(s, k, 1)) return 1;
        s->values[k][s->filled[k]++] = bits;
    }
    add_tail(s, bits);
    return 0;
}

enum { SELECT_BLOCK = 1024 };

/* The losses' bit patterns of a run of rows (a loop the compiler vectorises: adds and masks only);
   0 when a value is not finite (its exponent bits all set: adding 2**52 to them carries into bit 63). */
static int loss_bits(const double *a, const double *p, Py_ssize_t m, uint64_t *out) {
    const uint64_t exponent = 0x7FF0000000000000u, magnitude = 0x7FFFFFFFFFFFFFFFu, carry = 0x0010000000000000u;
    uint64_t infinite = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        uint64_t x, y, d;
        double diff = a[i] - p[i];
        memcpy(&x, &a[i], 8);
        memcpy(&y, &p[i], 8);
        memcpy(&d, &diff, 8);
        infinite |= ((x & exponent) + carry) | ((y & exponent) + carry);
        out[i] = d & magnitude;
    }
    return !(infinite >> 63);
}

static int select_take(void *self, const double *a, const double *p, Py_ssize_t n) {
    SelectPass *s = self;
    if (s->declined) return 1;
    uint64_t patterns[SELECT_BLOCK];
    for (Py_ssize_t start = 0; start < n; start += SELECT_BLOCK) {
        Py_ssize_t m = n - start < SELECT_BLOCK ? n - start : SELECT_BLOCK;
        if (!loss_bits(a + start, p + start, m, patterns)) { s->declined = 1; return 1; }
        for (int k = 0; k < s->count; k++)
            if (s->collect[k] && reserve(s, k, m)) return 1;
        for (Py_ssize_t word = 0; word < m; word += 64) {  /* the rows some bucket may take, 64 at a time */
            Py_ssize_t width = m - word < 64 ? m - word : 64;
            uint64_t mask = 0;
            for (Py_ssize_t i = 0; i < width; i++) mask |= (uint64_t)(s->route[patterns[word + i] >> 48] != 0) << i;
            while (mask) {
                uint64_t bits = patterns[word + __builtin_ctzll(mask)];
                mask &= mask - 1;
                int k = s->route[bits >> 48] - 1;
                if (k != ROUTE_ALL - 1) {  /* most candidates: one bucket's, room reserved */
                    s->values[k][s->filled[k]++] = bits;
                    add_tail(s, bits);
                } else if (select_row(s, bits)) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

static PyObject *select_pass_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *buckets, *tail = Py_None;
    if (!PyArg_ParseTuple(args, "O|O:SelectPass", &buckets, &tail)) return NULL;
    PyObject *seq = PySequence_Fast(buckets, "buckets must be a sequence of (prefix, bits, collect[, span[, shift]])");
    if (!seq) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (count > MAX_SELECT) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d buckets in one pass", MAX_SELECT);
        return NULL;
    }
    SelectPass *s = (SelectPass *)type->tp_alloc(type, 0);
    if (!s) { Py_DECREF(seq); return NULL; }
    s->consumer.take = select_take;
    s->consumer.self = s;
    if (!(s->buckets_of = PyMem_RawCalloc(DIGITS, sizeof(uint64_t)))) { PyErr_NoMemory(); goto fail; }
    for (Py_ssize_t k = 0; k < count; k++) {
        unsigned long long prefix, span = 1;
        int bits, collect, shift = 0;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, k), "Kip|Ki", &prefix, &bits, &collect, &span, &shift))
            goto fail;
        if (shift < 0 || shift > 15 || (collect && shift)) {
            PyErr_Format(PyExc_ValueError, "a counted bucket's shift must be 0..15 (a collected one's 0); got %d", shift);
            goto fail;
        }
        if (bits < 0 || bits > 48 || bits % 16) { PyErr_SetString(PyExc_ValueError, "bits must be 0, 16, 32 or 48"); goto fail; }
        if (bits == 0 ? prefix != 0 || span != 1 : span == 0 || prefix >> bits != 0 || span > (1ull << bits) - prefix) {
            PyErr_Format(PyExc_ValueError, "a %d-bit prefix and its span must stay below 2**%d; got %llu and %llu",
                         bits, bits, prefix, span);
            goto fail;
        }
        s->prefix[k] = prefix;
        s->span[k] = span;
        s->bits[k] = bits;
        s->collect[k] = collect;
        s->shift[k] = shift;
        s->count++;
        if (bits == 0) {
            memset(s->wanted, 0xFF, sizeof s->wanted);
            for (uint64_t digit = 0; digit < DIGITS; digit++) s->buckets_of[digit] |= 1ull << k;
        } else {
            for (uint64_t digit = prefix >> (bits - 16); digit <= (prefix + span - 1) >> (bits - 16); digit++) {
                s->wanted[digit >> 3] |= (uint8_t)(1u << (digit & 7));
                s->buckets_of[digit] |= 1ull << k;
            }
        }
        if (!collect && !(s->counts[k] = PyMem_RawCalloc(DIGITS >> shift, sizeof(int64_t)))) { PyErr_NoMemory(); goto fail; }
    }
    uint8_t touched[DIGITS] = {0};  /* buckets naming each digit (saturating), for `direct` */
    int every_digit = 0;
    for (int k = 0; k < s->count; k++) {
        if (s->bits[k] == 0) { every_digit = 1; continue; }
        for (uint64_t digit = s->prefix[k] >> (s->bits[k] - 16);
             digit <= (s->prefix[k] + s->span[k] - 1) >> (s->bits[k] - 16); digit++)
            touched[digit] += touched[digit] < 255;
    }
    for (int k = 0; k < s->count && !every_digit; k++)
        if (s->bits[k] == 16 && s->span[k] == 1 && s->collect[k] && touched[s->prefix[k]] == 1)
            s->direct[s->prefix[k]] = (uint8_t)(k + 1);
    if (tail != Py_None) {
        s->tail_above = PyLong_AsUnsignedLongLong(tail);
        if (PyErr_Occurred()) goto fail;
        s->has_tail = 1;
        if (!(s->tail = new_bins())) { PyErr_NoMemory(); goto fail; }
        for (uint64_t digit = (s->tail_above >> 48); digit < DIGITS; digit++)  /* every digit holding a loss above */
            s->wanted[digit >> 3] |= (uint8_t)(1u << (digit & 7));
    }
    for (uint64_t digit = 0; digit < DIGITS; digit++)  /* one table for the hot loop */
        s->route[digit] = !((s->wanted[digit >> 3] >> (digit & 7)) & 1) ? 0 : s->direct[digit] ? s->direct[digit] : ROUTE_ALL;
    Py_DECREF(seq);
    return (PyObject *)s;
fail:
    Py_DECREF(seq);
    Py_DECREF(s);
    return NULL;
}

static void select_pass_dealloc(SelectPass *s) {
    for (int k = 0; k < MAX_SELECT; k++) { PyMem_RawFree(s->values[k]); PyMem_RawFree(s->counts[k]); }
    PyMem_RawFree(s->tail);
    PyMem_RawFree(s->buckets_of);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *select_pass_consumer(SelectPass *s, PyObject *unused) {
    PyObject *capsule = PyCapsule_New(&s->consumer, CONSUMER_CAPSULE, consumer_capsule_release);
    if (!capsule) return NULL;
    Py_INCREF(s);
    if (PyCapsule_SetContext(capsule, s) < 0) { Py_DECREF(s); Py_DECREF(capsule); return NULL; }
    return capsule;
}

/* [bytes of uint64 patterns (collected) or of int64 counts (65,536), per bucket], (tail rows, units); None
   once declined. */
static PyObject *select_pass_results(SelectPass *s, PyObject *unused) {
    if (s->declined) Py_RETURN_NONE;
    PyObject *found = PyList_New(s->count);
    for (int k = 0; found && k < s->count; k++) {
        PyObject *item = s->collect[k]
            ? PyBytes_FromStringAndSize((const char *)s->values[k], s->filled[k] * (Py_ssize_t)sizeof(uint64_t))
            : PyBytes_FromStringAndSize((const char *)s->counts[k], (DIGITS >> s->shift[k]) * (Py_ssize_t)sizeof(int64_t));
        if (!item) Py_CLEAR(found);
        else PyList_SET_ITEM(found, k, item);
    }
    if (!found) return NULL;
    PyObject *tail = s->has_tail ? to_units(s->tail) : PyLong_FromLong(0);
    if (!tail) { Py_DECREF(found); return NULL; }
    return Py_BuildValue("(N(nN))", found, s->tail_rows, tail);
}

static PyObject *select_pass_add(SelectPass *s, PyObject *args) { return consumer_add(&s->consumer, args); }

static PyMethodDef select_pass_methods[] = {
    {"add", (PyCFunction)select_pass_add, METH_VARARGS, "add(a, b) -> bool: take two float64 arrays (False: declined)"},
    {"consumer", (PyCFunction)select_pass_consumer, METH_NOARGS, "consumer() -> capsule (_consumer.h)"},
    {"results", (PyCFunction)select_pass_results, METH_NOARGS,
     "results() -> ([bytes per bucket], (tail rows, tail units)); None once declined"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SelectPassType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "l1stream.exact._kernel.SelectPass",
    .tp_basicsize = sizeof(SelectPass),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SelectPass(buckets, tail_above=None): a quantile pass over rows the reader hands it "
              "(buckets: (prefix, bits, collect[, span[, shift]])); see _profile.h.",
    .tp_new = select_pass_new,
    .tp_dealloc = (destructor)select_pass_dealloc,
    .tp_methods = select_pass_methods,
};

#endif
