/* How the Parquet reader hands rows to an exact sum without knowing what it sums.
 *
 * l1stream.exact._kernel makes consumers (AbsDiffSum.consumer()); l1stream.parquet._pages calls
 * them while it decodes (reduce_pair), with the GIL released.  A consumer travels between the two
 * extensions as a PyCapsule named CONSUMER_CAPSULE whose pointer is a RowConsumer.  The exact layer
 * owns this header; the reader, a layer above it, includes it.
 */
#ifndef L1STREAM_CONSUMER_H
#define L1STREAM_CONSUMER_H

#include <Python.h>

#define CONSUMER_CAPSULE "l1stream.exact._kernel.RowConsumer"

typedef struct {
    /* Take rows [0, n) of two aligned float64 columns.  Returns 0 to go on, nonzero to stop: a value
       the consumer cannot take (NaN or infinite), which the caller then reads another way.  Called
       without the GIL; must not touch Python objects. */
    int (*take)(void *self, const double *a, const double *b, Py_ssize_t n);
    void *self;
} RowConsumer;

#endif
