/* The first loop of ProfileSum's block (_profile.h), written once and compiled once per vector
 * width, as _fold.h is: the includer defines PROFILE_NAME, FOLD_TARGET, FOLD_WIDTH and the vector
 * types vd (FOLD_WIDTH doubles) and vi (FOLD_WIDTH int64).  For rows [0, m) it writes each row's
 * two-sum error e, float loss |d|, d*d and its Dekker error, and returns through *flags whether a
 * row left the exact range (bit 1) or had e != 0 (bit 2), and the count of fractional losses.  The
 * Dekker error goes out negated (err = -(d*d - sq)): d*d = sq - err >= 0, so a fold of the pairs
 * (sq, err), which sums |sq - err|, sums the squares exactly in one call.
 * Every row gets exactly the operations of the scalar formulas, so every width gives the same bits.
 */

static FOLD_TARGET Py_ssize_t PROFILE_NAME(const double *a, const double *p, Py_ssize_t m, double *e, double *losses,
                                           double *sq, double *err, int *flags) {
    const vd zero = {0.0}, high_limit = zero + SAFE_HIGH, low_limit = zero + SAFE_LOW, two52 = zero + 0x1p52,
             splitter = zero + SPLITTER, two = zero + 2.0;
    const vi magnitude = (vi){0} + INT64_MAX;
    vi outside = {0}, any_e = {0}, fractional = {0};
    Py_ssize_t whole = m - m % FOLD_WIDTH, count = 0;
    for (Py_ssize_t i = 0; i < whole; i += FOLD_WIDTH) {
        vd x, y;
        memcpy(&x, a + i, sizeof x);
        memcpy(&y, p + i, sizeof y);
        vd d = x - y, back = d - x;
        vd error = (x - (d - back)) + (-y - back);
        vd ax = (vd)((vi)x & magnitude), ay = (vd)((vi)y & magnitude);
        vd ad = (vd)((vi)d & magnitude), ae = (vd)((vi)error & magnitude);
        outside |= ~(vi)(ax < high_limit) | ~(vi)(ay < high_limit);
        outside |= (vi)(d != zero) & (vi)(ad < low_limit);
        outside |= (vi)(error != zero) & (vi)(ae < low_limit);
        any_e |= (vi)(error != zero);
        fractional -= (vi)(ad < two52) & (vi)(((ad + two52) - two52) != ad);
        vd c = d * splitter, hi = c - (c - d), lo = d - hi, square = d * d;
        vd dekker = -(((hi * hi - square) + two * hi * lo) + lo * lo);
        memcpy(e + i, &error, sizeof error);
        memcpy(losses + i, &ad, sizeof ad);
        memcpy(sq + i, &square, sizeof square);
        memcpy(err + i, &dekker, sizeof dekker);
    }
    int out = 0, has_e = 0;
    for (int k = 0; k < FOLD_WIDTH; k++) {
        out |= outside[k] != 0;
        has_e |= any_e[k] != 0;
        count += fractional[k];
    }
    for (Py_ssize_t i = whole; i < m; i++) {  /* the same formulas, one row at a time */
        double d = a[i] - p[i], back = d - a[i];
        e[i] = (a[i] - (d - back)) + (-p[i] - back);
        out |= !(fabs(a[i]) < SAFE_HIGH) | !(fabs(p[i]) < SAFE_HIGH);
        out |= (d != 0.0) & (fabs(d) < SAFE_LOW);
        out |= (e[i] != 0.0) & (fabs(e[i]) < SAFE_LOW);
        has_e |= e[i] != 0.0;
        losses[i] = fabs(d);
        count += (losses[i] < 0x1p52) & (((losses[i] + 0x1p52) - 0x1p52) != losses[i]);
        double c = d * SPLITTER, hi = c - (c - d), lo = d - hi;
        sq[i] = d * d;
        err[i] = -(((hi * hi - sq[i]) + 2.0 * hi * lo) + lo * lo);
    }
    *flags = out | (has_e << 1);
    return count;
}
