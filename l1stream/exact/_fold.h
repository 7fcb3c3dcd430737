/* The block fold of _kernel.c, written once and compiled once per vector width.
 *
 * _kernel.c includes this file once per instruction set, after defining:
 *   FOLD_NAME         the function's name
 *   FOLD_TARGET       a target attribute (or nothing): the instructions the function may use
 *   FOLD_WIDTH        doubles per vector; FOLD_STEP = 2 * FOLD_WIDTH rows per loop step
 *   vd, vi            the vector types (FOLD_WIDTH doubles, FOLD_WIDTH int64)
 *   VMAX, VMIN        element-wise max and min of two vectors holding no NaN
 *   ANY_NONZERO(v)    whether an element of v is not 0.0
 * The blocks it takes hold a multiple of FOLD_STEP rows.
 *
 * Every width computes the same exact block sum: the extracted high parts (and, on the one-sign
 * narrow path, the residuals) are multiples of one unit and small enough that their float64 sums
 * are exact in any order, so how the rows are spread over lanes does not change a bit.  No
 * fast-math and no contraction (setup.py passes -ffp-contract=off): the extractions need IEEE
 * rounding of every + and -.
 */

#define FOLD_STEP (2 * FOLD_WIDTH)

static FOLD_TARGET int FOLD_NAME(Bins *bins, const double *a, const double *p, Py_ssize_t m, double *rh,
                                 double *rl) {
    const vd zero = {0.0};
    vd top0 = zero - INFINITY, top1 = top0, bottom0 = zero + INFINITY, bottom1 = bottom0, check0 = zero,
       check1 = zero;
    vd x0, y0, x1, y1;
    for (Py_ssize_t i = 0; i < m; i += FOLD_STEP) {
        memcpy(&x0, a + i, sizeof x0);
        memcpy(&y0, p + i, sizeof y0);
        memcpy(&x1, a + i + FOLD_WIDTH, sizeof x1);
        memcpy(&y1, p + i + FOLD_WIDTH, sizeof y1);
        top0 = VMAX(top0, VMAX(x0, y0));
        top1 = VMAX(top1, VMAX(x1, y1));
        bottom0 = VMIN(bottom0, VMIN(x0, y0));
        bottom1 = VMIN(bottom1, VMIN(x1, y1));
        check0 += (x0 - x0) + (y0 - y0); /* NaN once a value is NaN or infinite */
        check1 += (x1 - x1) + (y1 - y1);
    }
    double check = 0.0, high = -INFINITY, low = INFINITY;
    for (int k = 0; k < FOLD_WIDTH; k++) {
        check += check0[k] + check1[k];
        high = top0[k] > high ? top0[k] : high;
        high = top1[k] > high ? top1[k] : high;
        low = bottom0[k] < low ? bottom0[k] : low;
        low = bottom1[k] < low ? bottom1[k] : low;
    }
    if (check != 0.0 || check != check) return 1;
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
    const vd s = zero + ldexp(1.0, sigma_exponent);
    vd q0 = zero, q1 = zero, r0 = zero, r1 = zero;
    int smallest_exponent = 0;
    if (smallest > 0.0) frexp(smallest, &smallest_exponent);
    if (smallest > 0.0 && sigma_exponent - smallest_exponent <= RESIDUAL_SPAN) {
        /* residuals are multiples of the smallest value's ulp, at most 2**37 of them each: exact */
        for (Py_ssize_t i = 0; i < m; i += FOLD_STEP) {
            memcpy(&x0, a + i, sizeof x0);
            memcpy(&y0, p + i, sizeof y0);
            memcpy(&x1, a + i + FOLD_WIDTH, sizeof x1);
            memcpy(&y1, p + i + FOLD_WIDTH, sizeof y1);
            vd h0 = VMAX(x0, y0), l0 = VMIN(x0, y0), h1 = VMAX(x1, y1), l1 = VMIN(x1, y1);
            vd qh0 = (s + h0) - s, ql0 = (s + l0) - s, qh1 = (s + h1) - s, ql1 = (s + l1) - s;
            q0 += qh0 - ql0;
            q1 += qh1 - ql1;
            r0 += (h0 - qh0) - (l0 - ql0);
            r1 += (h1 - qh1) - (l1 - ql1);
        }
        double q = 0.0, r = 0.0;
        for (int k = 0; k < FOLD_WIDTH; k++) {
            q += q0[k] + q1[k]; /* exact in any order (see above) */
            r += r0[k] + r1[k];
        }
        return add(bins, q, 0) | add(bins, r, 0);
    }
    /* general: a first extraction here, more on the residuals below, then the bins for what is left */
    for (Py_ssize_t i = 0; i < m; i += FOLD_WIDTH) {
        memcpy(&x0, a + i, sizeof x0);
        memcpy(&y0, p + i, sizeof y0);
        vd h = VMAX(x0, y0), l = VMIN(x0, y0);
        vd qh = (s + h) - s, ql = (s + l) - s;
        q0 += qh - ql;
        vd dh = h - qh, dl = l - ql;
        memcpy(rh + i, &dh, sizeof dh);
        memcpy(rl + i, &dl, sizeof dl);
    }
    double q = 0.0;
    for (int k = 0; k < FOLD_WIDTH; k++) q += q0[k];
    int bad = add(bins, q, 0);
    /* more extractions on the residuals, 53 - MARGIN bits each, while any is left: values whose low
       bits lie far below the block's largest (squares and their Dekker errors) stay vectorised */
    const vi magnitude = (vi){0} + INT64_MAX;
    for (int extraction = 2; extraction <= EXTRACTIONS; extraction++) {
        if (sigma_exponent == MIN_SIGMA_EXPONENT) break; /* no lower unit: the bins take what is left */
        sigma_exponent = sigma_exponent - 53 + MARGIN > MIN_SIGMA_EXPONENT ? sigma_exponent - 53 + MARGIN
                                                                          : MIN_SIGMA_EXPONENT;
        const vd s1 = zero + ldexp(1.0, sigma_exponent);
        vd left = zero;
        q1 = zero;
        for (Py_ssize_t i = 0; i < m; i += FOLD_WIDTH) {
            vd h, l;
            memcpy(&h, rh + i, sizeof h);
            memcpy(&l, rl + i, sizeof l);
            vd qh = (s1 + h) - s1, ql = (s1 + l) - s1;
            q1 += qh - ql;
            vd dh = h - qh, dl = l - ql;
            memcpy(rh + i, &dh, sizeof dh);
            memcpy(rl + i, &dl, sizeof dl);
            left += (vd)((vi)dh & magnitude) + (vd)((vi)dl & magnitude); /* 0 only if each is 0 (inf is fine) */
        }
        q = 0.0;
        for (int k = 0; k < FOLD_WIDTH; k++) q += q1[k];
        bad |= add(bins, q, 0);
        if (!ANY_NONZERO(left)) return bad;
    }
    touch_all(bins); /* residuals left after every extraction, or below the lowest unit */
    for (Py_ssize_t i = 0; i < m; i++) {
        if (rh[i] != 0.0) bad |= add_untracked(bins, rh[i], 0);
        if (rl[i] != 0.0) bad |= add_untracked(bins, rl[i], 1);
    }
    return bad;
}

#undef FOLD_STEP
