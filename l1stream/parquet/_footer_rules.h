/* Is a serialized FileMetaData one that pyarrow's Thrift (generated C++, compact protocol) reads?
 *
 * Thrift's generated readers know each struct's fields: a known field of another type is skipped,
 * an unknown one too, a list's elements are read as the field's declared element type whatever the
 * list header says, a struct whose required field is missing is refused, and containers (1,000,000
 * elements) and strings (100,000,000 bytes) have pyarrow's default limits.  The tables below are
 * parquet.thrift's structs reachable from FileMetaData, with their fields' types and which are
 * required; valid_footer() walks a footer by them.  l1stream's own footer reading
 * (_metadata.h) reads only footers this accepts, so it never takes what pyarrow refuses (a required
 * field missing in, say, an encoding statistic that neither reader otherwise looks at).
 * Part of l1stream/parquet/_pages.c (included once, after _thrift.h). */
#ifndef L1STREAM_FOOTER_RULES_H
#define L1STREAM_FOOTER_RULES_H

#include "_thrift.h"

/* compact protocol wire types; T_BOOL stands for both boolean encodings (1, 2) */
enum { T_BOOL = 1, T_I8 = 3, T_I16 = 4, T_I32 = 5, T_I64 = 6, T_DOUBLE = 7, T_BINARY = 8, T_LIST = 9, T_STRUCT = 12 };
enum { CONTAINER_LIMIT = 1000000, STRING_LIMIT = 100000000 };

typedef struct StructRule StructRule;
typedef struct {
    int16_t id;
    uint8_t type;          /* the declared type */
    uint8_t element;       /* for a list: the declared element type */
    uint8_t required;
    const StructRule *inner; /* for a struct, or a list of structs */
} FieldRule;
struct StructRule {
    const FieldRule *fields;
    int count;
};

#define RULE(name, ...) \
    static const FieldRule name##_fields[] = {__VA_ARGS__}; \
    static const StructRule name = {name##_fields, (int)(sizeof name##_fields / sizeof name##_fields[0])};
#define EMPTY_RULE(name) static const StructRule name = {NULL, 0};

EMPTY_RULE(EmptyStruct)  /* StringType, MapType, ..., TypeDefinedOrder, EncryptionWithFooterKey */
RULE(DecimalType, {1, T_I32, 0, 1, NULL}, {2, T_I32, 0, 1, NULL})
RULE(TimeUnit, {1, T_STRUCT, 0, 0, &EmptyStruct}, {2, T_STRUCT, 0, 0, &EmptyStruct}, {3, T_STRUCT, 0, 0, &EmptyStruct})
RULE(TimeType, {1, T_BOOL, 0, 1, NULL}, {2, T_STRUCT, 0, 1, &TimeUnit})
RULE(IntType, {1, T_I8, 0, 1, NULL}, {2, T_BOOL, 0, 1, NULL})
RULE(VariantType, {1, T_I8, 0, 0, NULL})
RULE(GeometryType, {1, T_BINARY, 0, 0, NULL})
RULE(GeographyType, {1, T_BINARY, 0, 0, NULL}, {2, T_I32, 0, 0, NULL})
RULE(LogicalType,
     {1, T_STRUCT, 0, 0, &EmptyStruct}, {2, T_STRUCT, 0, 0, &EmptyStruct}, {3, T_STRUCT, 0, 0, &EmptyStruct},
     {4, T_STRUCT, 0, 0, &EmptyStruct}, {5, T_STRUCT, 0, 0, &DecimalType}, {6, T_STRUCT, 0, 0, &EmptyStruct},
     {7, T_STRUCT, 0, 0, &TimeType}, {8, T_STRUCT, 0, 0, &TimeType}, {10, T_STRUCT, 0, 0, &IntType},
     {11, T_STRUCT, 0, 0, &EmptyStruct}, {12, T_STRUCT, 0, 0, &EmptyStruct}, {13, T_STRUCT, 0, 0, &EmptyStruct},
     {14, T_STRUCT, 0, 0, &EmptyStruct}, {15, T_STRUCT, 0, 0, &EmptyStruct}, {16, T_STRUCT, 0, 0, &VariantType},
     {17, T_STRUCT, 0, 0, &GeometryType}, {18, T_STRUCT, 0, 0, &GeographyType})
RULE(SchemaElement, {1, T_I32, 0, 0, NULL}, {2, T_I32, 0, 0, NULL}, {3, T_I32, 0, 0, NULL}, {4, T_BINARY, 0, 1, NULL},
     {5, T_I32, 0, 0, NULL}, {6, T_I32, 0, 0, NULL}, {7, T_I32, 0, 0, NULL}, {8, T_I32, 0, 0, NULL},
     {9, T_I32, 0, 0, NULL}, {10, T_STRUCT, 0, 0, &LogicalType})
RULE(KeyValue, {1, T_BINARY, 0, 1, NULL}, {2, T_BINARY, 0, 0, NULL})
RULE(Statistics, {1, T_BINARY, 0, 0, NULL}, {2, T_BINARY, 0, 0, NULL}, {3, T_I64, 0, 0, NULL},
     {4, T_I64, 0, 0, NULL}, {5, T_BINARY, 0, 0, NULL}, {6, T_BINARY, 0, 0, NULL}, {7, T_BOOL, 0, 0, NULL},
     {8, T_BOOL, 0, 0, NULL})
RULE(PageEncodingStats, {1, T_I32, 0, 1, NULL}, {2, T_I32, 0, 1, NULL}, {3, T_I32, 0, 1, NULL})
RULE(SizeStatistics, {1, T_I64, 0, 0, NULL}, {2, T_LIST, T_I64, 0, NULL}, {3, T_LIST, T_I64, 0, NULL})
RULE(BoundingBox, {1, T_DOUBLE, 0, 1, NULL}, {2, T_DOUBLE, 0, 1, NULL}, {3, T_DOUBLE, 0, 1, NULL},
     {4, T_DOUBLE, 0, 1, NULL}, {5, T_DOUBLE, 0, 0, NULL}, {6, T_DOUBLE, 0, 0, NULL}, {7, T_DOUBLE, 0, 0, NULL},
     {8, T_DOUBLE, 0, 0, NULL})
RULE(GeospatialStatistics, {1, T_STRUCT, 0, 0, &BoundingBox}, {2, T_LIST, T_I32, 0, NULL})
RULE(ColumnMetaData, {1, T_I32, 0, 1, NULL}, {2, T_LIST, T_I32, 1, NULL}, {3, T_LIST, T_BINARY, 1, NULL},
     {4, T_I32, 0, 1, NULL}, {5, T_I64, 0, 1, NULL}, {6, T_I64, 0, 1, NULL}, {7, T_I64, 0, 1, NULL},
     {8, T_LIST, T_STRUCT, 0, &KeyValue}, {9, T_I64, 0, 1, NULL}, {10, T_I64, 0, 0, NULL}, {11, T_I64, 0, 0, NULL},
     {12, T_STRUCT, 0, 0, &Statistics}, {13, T_LIST, T_STRUCT, 0, &PageEncodingStats}, {14, T_I64, 0, 0, NULL},
     {15, T_I32, 0, 0, NULL}, {16, T_STRUCT, 0, 0, &SizeStatistics}, {17, T_STRUCT, 0, 0, &GeospatialStatistics})
RULE(EncryptionWithColumnKey, {1, T_LIST, T_BINARY, 1, NULL}, {2, T_BINARY, 0, 0, NULL})
RULE(ColumnCryptoMetaData, {1, T_STRUCT, 0, 0, &EmptyStruct}, {2, T_STRUCT, 0, 0, &EncryptionWithColumnKey})
RULE(ColumnChunk, {1, T_BINARY, 0, 0, NULL}, {2, T_I64, 0, 1, NULL}, {3, T_STRUCT, 0, 0, &ColumnMetaData},
     {4, T_I64, 0, 0, NULL}, {5, T_I32, 0, 0, NULL}, {6, T_I64, 0, 0, NULL}, {7, T_I32, 0, 0, NULL},
     {8, T_STRUCT, 0, 0, &ColumnCryptoMetaData}, {9, T_BINARY, 0, 0, NULL})
RULE(SortingColumn, {1, T_I32, 0, 1, NULL}, {2, T_BOOL, 0, 1, NULL}, {3, T_BOOL, 0, 1, NULL})
RULE(RowGroup, {1, T_LIST, T_STRUCT, 1, &ColumnChunk}, {2, T_I64, 0, 1, NULL}, {3, T_I64, 0, 1, NULL},
     {4, T_LIST, T_STRUCT, 0, &SortingColumn}, {5, T_I64, 0, 0, NULL}, {6, T_I64, 0, 0, NULL}, {7, T_I16, 0, 0, NULL})
RULE(ColumnOrder, {1, T_STRUCT, 0, 0, &EmptyStruct})
RULE(AesGcm, {1, T_BINARY, 0, 0, NULL}, {2, T_BINARY, 0, 0, NULL}, {3, T_BOOL, 0, 0, NULL})
RULE(EncryptionAlgorithm, {1, T_STRUCT, 0, 0, &AesGcm}, {2, T_STRUCT, 0, 0, &AesGcm})
RULE(FileMetaData, {1, T_I32, 0, 1, NULL}, {2, T_LIST, T_STRUCT, 1, &SchemaElement}, {3, T_I64, 0, 1, NULL},
     {4, T_LIST, T_STRUCT, 1, &RowGroup}, {5, T_LIST, T_STRUCT, 0, &KeyValue}, {6, T_BINARY, 0, 0, NULL},
     {7, T_LIST, T_STRUCT, 0, &ColumnOrder}, {8, T_STRUCT, 0, 0, &EncryptionAlgorithm}, {9, T_BINARY, 0, 0, NULL})

static void rule_struct(Reader *r, const StructRule *rule, int depth);

/* One value of a declared (not wire) type. */
static void rule_value(Reader *r, uint8_t type, uint8_t element, const StructRule *inner, int depth) {
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
    switch (type) {
    case T_BOOL: case T_I8:  /* a list's boolean or byte: one byte */
        if (r->p >= r->end) r->err = 1; else r->p++;
        return;
    case T_I16: case T_I32: case T_I64: varint(r); return;
    case T_DOUBLE: if (r->end - r->p < 8) r->err = 1; else r->p += 8; return;
    case T_BINARY: {
        uint64_t n = varint(r);
        if (r->err || n > STRING_LIMIT || (uint64_t)(r->end - r->p) < n) r->err = 1; else r->p += n;
        return;
    }
    case T_STRUCT: rule_struct(r, inner, depth + 1); return;
    case T_LIST: {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        uint64_t n = head >> 4;
        if (n == 15) n = varint(r);
        if ((head & 15) > 12) { r->err = 1; return; }  /* no such type (0 reads as STOP: an empty list's) */
        if (r->err || n > CONTAINER_LIMIT || n > (uint64_t)(r->end - r->p)) { r->err = 1; return; }
        for (uint64_t i = 0; i < n && !r->err; i++) rule_value(r, element, 0, inner, depth + 1);
        return;
    }
    default: r->err = 1;
    }
}

static void rule_struct(Reader *r, const StructRule *rule, int depth) {
    uint64_t seen = 0;  /* bit i: field i of the rule was read */
    int16_t id = 0;
    if (depth > THRIFT_MAX_DEPTH) { r->err = 1; return; }
    while (!r->err) {
        if (r->p >= r->end) { r->err = 1; return; }
        uint8_t head = *r->p++;
        if (head == 0) break;
        id = (head >> 4) ? (int16_t)(uint16_t)((uint16_t)id + (head >> 4)) : (int16_t)(uint16_t)(uint32_t)zigzag32(r);
        if (r->err) return;
        int wire = head & 15, known = -1;
        for (int i = 0; i < rule->count; i++)
            if (rule->fields[i].id == id) { known = i; break; }
        int declared = known >= 0 ? rule->fields[known].type : -1;
        int matches = known >= 0 && (declared == T_BOOL ? (wire == 1 || wire == 2) : wire == declared);
        if (!matches) { skip(r, wire, depth + 1, 0); continue; }  /* unknown, or another type: skipped */
        if (declared != T_BOOL)  /* a field's boolean is its header */
            rule_value(r, (uint8_t)declared, rule->fields[known].element, rule->fields[known].inner, depth);
        seen |= 1ULL << known;
    }
    for (int i = 0; i < rule->count && !r->err; i++)
        if (rule->fields[i].required && !(seen & (1ULL << i))) r->err = 1;  /* a required field is missing */
}

/* 1 when pyarrow's Thrift reads `size` bytes as a FileMetaData. */
static int valid_footer(const uint8_t *buf, Py_ssize_t size) {
    Reader r = {buf, buf + size, 0};
    rule_struct(&r, &FileMetaData, 1);
    return !r.err;
}

#endif
