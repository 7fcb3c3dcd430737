/* Two column chunks of one row group read in lockstep, page by page, handed to a consumer.
 *
 * decode_column_chunks fills one array per column with a whole row group, then the caller sums
 * them: every byte crosses main memory four or five times (file bytes in, decoded values out, read
 * back).  Here each column is read through a window of about a page, its pages decompressed and
 * decoded into page-sized buffers that stay in the core's cache, and rows go to the consumer
 * (l1stream/exact/_consumer.h: an exact sum) in runs aligned across the two columns.  A local file
 * is read with pread into the window; a chunk already in memory is read in place.
 *
 * Pages are checked exactly as decode_page checks them (the same page_begin / page_end; CRC-32,
 * sizes, levels, runs), and memory is bounded the same way: the window by the chunk, which the
 * caller has checked against the file's size; page buffers by the page's values, at most `limit`.
 * Nothing is decided here that the ordinary path would decide otherwise: a page with nulls, a value
 * the consumer refuses (NaN or infinity), an encoding or page it does not take, damage: the call
 * stops (LOCKSTEP_DECLINED, ERR_UNSUPPORTED or ERR_CORRUPT) and the caller, which owns the consumer
 * and throws it away, reads the row group the ordinary way, where every policy and message lives.
 * Part of l1stream/parquet/_pages.c (included once, after the page functions).
 */
#ifndef L1STREAM_LOCKSTEP_H
#define L1STREAM_LOCKSTEP_H

#include <errno.h>
#include <unistd.h>
#include "_consumer.h"

enum { LANE_WINDOW = 1 << 20, LANE_HEADER_PEEK = 64 << 10, LOCKSTEP_DECLINED = 3 };

/* Per thread and per lane, grown as needed and kept: fresh buffers cost page faults. */
typedef struct {
    uint8_t *window, *scratch, *valid;
    double *values, *dictionary;
    Py_ssize_t window_capacity, scratch_capacity, valid_capacity, values_capacity, dictionary_capacity;
} LaneBuffers;

static _Thread_local LaneBuffers lane_buffers[2];

typedef struct {
    LaneBuffers *b;
    const uint8_t *memory; /* the whole chunk in memory, or NULL: read from fd */
    int fd;
    int64_t file_start;    /* the chunk's first byte in the file */
    Py_ssize_t size;       /* bytes in the chunk */
    const uint8_t *bytes;  /* chunk bytes [bytes_start, bytes_start + bytes_length) */
    Py_ssize_t bytes_start, bytes_length;
    int codec, max_level;
    Py_ssize_t offset;     /* the next page header, as an offset into the chunk */
    Py_ssize_t rows, position, limit; /* the row group's rows; rows of data pages passed; most values a page may hold */
    Py_ssize_t dictionary_size;
    int has_dictionary;
    Page g;                /* the page in hand */
    const double *values;  /* the current data page's values */
    Py_ssize_t page_rows, used;
    const char *why;
} Lane;

/* Make chunk bytes [at, at + need) readable (need clamped to the chunk's end). */
static int lane_bytes(Lane *l, Py_ssize_t at, Py_ssize_t need) {
    if (need > l->size - at) need = l->size - at;
    if (l->memory) {
        l->bytes = l->memory;
        l->bytes_start = 0;
        l->bytes_length = l->size;
        return OK;
    }
    if (at >= l->bytes_start && at + need <= l->bytes_start + l->bytes_length) return OK;
    Py_ssize_t want = need > LANE_WINDOW ? need : LANE_WINDOW;
    if (want > l->size - at) want = l->size - at;
    if (reserve((void **)&l->b->window, &l->b->window_capacity, want + 8)) {
        l->why = "no memory for a window of file bytes";
        return ERR_UNSUPPORTED;
    }
    Py_ssize_t got = 0;
    while (got < want) {
        ssize_t n = pread(l->fd, l->b->window + got, (size_t)(want - got), (off_t)(l->file_start + at + got));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += n;
    }
    l->bytes = l->b->window;
    l->bytes_start = at;
    l->bytes_length = got;
    if (got < need) {
        l->why = "a column chunk that runs past the end of the file";
        return ERR_CORRUPT;
    }
    return OK;
}

/* Parse the next dictionary or data page header (index pages passed over) and make its bytes
   readable; 0 pages left sets l->g.header.type to -1. */
static int lane_header(Lane *l) {
    for (;;) {
        Page *g = &l->g;
        memset(g, 0, sizeof *g);
        if (l->offset >= l->size) {
            g->header.type = -1;
            return OK;
        }
        int status = lane_bytes(l, l->offset, LANE_HEADER_PEEK);
        if (status) return status;
        Py_ssize_t at = l->offset - l->bytes_start;
        g->header_length = parse_header_raw(l->bytes, l->bytes_length, at, &g->header, 0, &l->why);
        if (g->header_length < 0)  /* damage, or a header longer than the peek: the ordinary path says which */
            return l->bytes_start + l->bytes_length < l->size ? ERR_UNSUPPORTED : ERR_CORRUPT;
        PageHeader *h = &g->header;
        Py_ssize_t span = g->header_length + (Py_ssize_t)h->compressed_size;
        if (span > l->size - l->offset) { l->why = "a page that runs past the end of the column chunk"; return ERR_CORRUPT; }
        if (h->type != PAGE_DATA && h->type != PAGE_DATA_V2 && h->type != PAGE_DICTIONARY) {
            l->offset += span;
            continue;
        }
        if (h->num_values < 0) { l->why = "a negative value count"; return ERR_CORRUPT; }
        if (h->type != PAGE_DICTIONARY && h->num_values > l->limit) {
            l->why = "a page of more values than a chunk";  /* pyarrow reads it in batches */
            return ERR_UNSUPPORTED;
        }
        if (!plausible_page_size(h->num_values, h->uncompressed_size, h->compressed_size,
                                 h->type == PAGE_DATA_V2 && !h->is_compressed ? 0 : l->codec)) {
            l->why = "a page stating more decoded bytes than its values can need";
            return ERR_UNSUPPORTED;
        }
        if ((status = lane_bytes(l, l->offset, span))) return status;
        g->buf = l->bytes;
        g->size = l->bytes_length;
        g->offset = l->offset - l->bytes_start;
        g->codec = l->codec;
        g->verify = 1;
        g->max_level = l->max_level;
        return OK;
    }
}

/* Buffers for the page whose header is in hand (after lane_header found one). */
static int lane_page_buffers(Lane *l) {
    Page *g = &l->g;
    PageHeader *h = &g->header;
    LaneBuffers *b = l->b;
    if (reserve((void **)&b->scratch, &b->scratch_capacity, h->uncompressed_size + 64)) {
        l->why = "no memory for a page";
        return ERR_UNSUPPORTED;
    }
    g->scratch = b->scratch;
    g->scratch_size = b->scratch_capacity;
    if (h->type == PAGE_DICTIONARY) {
        if (l->has_dictionary) { l->why = "a second dictionary page"; return ERR_CORRUPT; } /* pyarrow: one */
        if (reserve((void **)&b->dictionary, &b->dictionary_capacity, (Py_ssize_t)h->num_values * 8 + 8)) {
            l->why = "no memory for a dictionary";
            return ERR_UNSUPPORTED;
        }
        g->out = b->dictionary;
        return OK;
    }
    if (l->position + h->num_values > l->rows) { l->why = "more values than the row group has rows"; return ERR_CORRUPT; }
    if (!l->has_dictionary && (h->encoding == ENC_PLAIN_DICTIONARY || h->encoding == ENC_RLE_DICTIONARY)) {
        l->why = "a dictionary-encoded page but no dictionary page";
        return ERR_CORRUPT;
    }
    if (reserve((void **)&b->values, &b->values_capacity, (Py_ssize_t)h->num_values * 8 + 8)
            || reserve((void **)&b->valid, &b->valid_capacity, (Py_ssize_t)h->num_values + 8)) {
        l->why = "no memory for a page's values";
        return ERR_UNSUPPORTED;
    }
    g->out = b->values;
    g->valid = l->max_level ? b->valid : NULL;
    g->dictionary = b->dictionary;
    g->dictionary_size = l->dictionary_size;
    return OK;
}

/* After a page decoded: a dictionary is kept; a data page's values are the lane's to hand out. */
static int lane_page_done(Lane *l) {
    Page *g = &l->g;
    if (g->header.type == PAGE_DICTIONARY) {
        l->dictionary_size = g->header.num_values;
        l->has_dictionary = 1;
    } else {
        if (g->nulls) { l->why = "nulls"; return LOCKSTEP_DECLINED; }
        l->values = g->out;
        l->page_rows = g->header.num_values;
        l->used = 0;
        l->position += g->header.num_values;
    }
    l->offset += g->header_length + g->header.compressed_size;
    return OK;
}

/* Find the next data page that holds a row at or past `skip_before` (pages wholly before it passed
   over undecoded, as another piece decodes them; dictionary pages, and pages of no values, decoded
   on the way, as decode_column_chunks decodes them), its header in hand and buffers ready.
   Sets l->g.header.type to -1 at the chunk's end. */
static int lane_find(Lane *l, Py_ssize_t skip_before) {
    for (;;) {
        int status = lane_header(l);
        if (status || l->g.header.type < 0) return status;
        PageHeader *h = &l->g.header;
        if (h->type != PAGE_DICTIONARY && h->num_values > 0 && l->position + h->num_values <= skip_before) {
            if (l->position + h->num_values > l->rows) { l->why = "more values than the row group has rows"; return ERR_CORRUPT; }
            l->position += h->num_values;
            l->offset += l->g.header_length + h->compressed_size;
            continue;
        }
        if ((status = lane_page_buffers(l))) return status;
        if (h->type != PAGE_DICTIONARY) return OK;
        if ((status = decode_page(&l->g))) { l->why = l->g.why; return status; }
        if ((status = lane_page_done(l))) return status;
    }
}

/* Rows [start, stop) of the two lanes' row group to the consumer.  OK when every one went;
   otherwise the status and *which (the lane) and l->why say why not. */
static int lockstep(Lane *lanes, Py_ssize_t start, Py_ssize_t stop, const RowConsumer *consumer, int *which) {
    Lane *a = &lanes[0], *b = &lanes[1];
    Py_ssize_t row = start;
    int status;
    while (row < stop) {
        int need_a = a->used == a->page_rows, need_b = b->used == b->page_rows;
        if (need_a) {
            *which = 0;
            if ((status = lane_find(a, row))) return status;
        }
        if (need_b) {
            *which = 1;
            if ((status = lane_find(b, row))) return status;
        }
        for (int k = 0; k < 2; k++)
            if ((k ? need_b : need_a) && lanes[k].g.header.type < 0) {
                *which = k;
                lanes[k].why = "a column chunk that ends before the row group's last row";
                return ERR_CORRUPT;
            }
        if (need_a && need_b) { /* two pages at once: their Snappy streams interleave */
            if ((status = decode_two_pages(&a->g, &b->g, which))) { lanes[*which].why = lanes[*which].g.why; return status; }
        } else {
            Lane *one = need_a ? a : need_b ? b : NULL;
            *which = one == b;
            if (one && (status = decode_page(&one->g))) { one->why = one->g.why; return status; }
        }
        for (int k = 0; k < 2; k++) {
            if (!(k ? need_b : need_a)) continue;
            *which = k;
            Lane *l = &lanes[k];
            Py_ssize_t first = l->position;  /* the page's first row */
            if ((status = lane_page_done(l))) return status;
            if (first < row) l->used = row - first;  /* the page that holds `start` */
        }
        Py_ssize_t n = stop - row;
        if (a->page_rows - a->used < n) n = a->page_rows - a->used;
        if (b->page_rows - b->used < n) n = b->page_rows - b->used;
        if (consumer->take(consumer->self, a->values + a->used, b->values + b->used, n)) {
            *which = 0;
            a->why = "a value that is not finite";
            return LOCKSTEP_DECLINED;
        }
        a->used += n;
        b->used += n;
        row += n;
    }
    for (int k = 0; k < 2; k++) { /* a whole row group: nothing may follow its last row */
        Lane *l = &lanes[k];
        *which = k;
        if (stop != l->rows || l->used != l->page_rows) continue;
        if ((status = lane_find(l, l->rows))) return status;
        if (l->g.header.type >= 0 || l->position != l->rows) {
            l->why = "a column chunk that holds more than the row group's rows";
            return ERR_CORRUPT;
        }
    }
    return OK;
}

PyDoc_STRVAR(reduce_pair_doc,
"reduce_pair(lanes, rows, start, stop, limit, consumer) -> None or str\n\n"
"Rows [start, stop) of a row group of `rows` rows, from two flat DOUBLE column chunks, handed to\n"
"`consumer` (a capsule from l1stream.exact._kernel) in aligned runs.  lanes: two\n"
"(source, chunk_start, chunk_size, codec, max_level): source an int file descriptor (the chunk is\n"
"read with pread at chunk_start) or a buffer holding exactly the chunk's bytes.  limit: the most\n"
"values a data page may hold.  None when every row went; otherwise why not (nulls, a value that is\n"
"not finite, an unsupported or damaged page): the caller discards the consumer and reads the row\n"
"group the ordinary way.");

static PyObject *py_reduce_pair(PyObject *self, PyObject *args) {
    PyObject *lane_args, *capsule;
    Py_ssize_t rows, start, stop, limit;
    if (!PyArg_ParseTuple(args, "O!nnnnO", &PyList_Type, &lane_args, &rows, &start, &stop, &limit, &capsule))
        return NULL;
    RowConsumer *consumer = PyCapsule_GetPointer(capsule, CONSUMER_CAPSULE);
    if (!consumer) return NULL;
    if (PyList_GET_SIZE(lane_args) != 2 || rows < 0 || start < 0 || stop < start || stop > rows || limit < 1) {
        PyErr_SetString(PyExc_ValueError, "reduce_pair: two lanes and 0 <= start <= stop <= rows, limit >= 1");
        return NULL;
    }
    Lane lanes[2];
    Py_buffer views[2] = {{0}};
    memset(lanes, 0, sizeof lanes);
    PyObject *result = NULL;
    for (int k = 0; k < 2; k++) {
        Lane *l = &lanes[k];
        PyObject *source;
        long long chunk_start;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(lane_args, k), "OLnii", &source, &chunk_start, &l->size, &l->codec,
                              &l->max_level))
            goto done;
        if (!known_codec(l->codec) || (l->max_level != 0 && l->max_level != 1) || l->size < 0 || chunk_start < 0) {
            PyErr_Format(Unsupported, "lane %d: codec %d, maximum definition level %d", k, l->codec, l->max_level);
            goto done;
        }
        if (PyLong_Check(source)) {
            l->fd = (int)PyLong_AsLong(source);
            if (l->fd < 0) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a negative descriptor"); goto done; }
        } else {
            if (get_buffer(source, &views[k], 0, "source") < 0) goto done;
            if (views[k].len != l->size) {
                PyErr_SetString(PyExc_ValueError, "a buffer source must hold exactly the chunk's bytes");
                goto done;
            }
            l->memory = views[k].buf;
        }
        l->file_start = chunk_start;
        l->rows = rows;
        l->limit = limit;
        l->b = &lane_buffers[k];
        l->bytes_start = -1;
    }
    int status, which = 0;
    Py_BEGIN_ALLOW_THREADS
    status = lockstep(lanes, start, stop, consumer, &which);
    Py_END_ALLOW_THREADS
    if (status == OK) {
        result = Py_NewRef(Py_None);
    } else {
        const char *kind = status == ERR_CORRUPT ? "damage: " : "";
        result = PyUnicode_FromFormat("column %d, page at byte %zd of the column chunk: %s%s", which,
                                      lanes[which].offset, kind, lanes[which].why ? lanes[which].why : "");
    }
done:
    for (int k = 0; k < 2; k++)
        if (views[k].obj) PyBuffer_Release(&views[k]);
    return result;
}

#endif
