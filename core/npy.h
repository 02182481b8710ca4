/* NumPy .npy and .npz files, read and written without Python.
 * Arrays are C-ordered; .npz files are zip archives of .npy members. */
#pragma once
#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define SNN_ARRAY_MAX_DIMS 8

typedef enum {
  SNN_DTYPE_F32,  /* '<f4' */
  SNN_DTYPE_F64,  /* '<f8' */
  SNN_DTYPE_I64,  /* '<i8' */
  SNN_DTYPE_I32,  /* '<i4' */
  SNN_DTYPE_U8,   /* '|u1' */
  SNN_DTYPE_BOOL, /* '|b1' */
} SnnDType;

typedef struct {
  SnnDType dtype;
  int ndim;                           /* 0 for a scalar */
  int64_t shape[SNN_ARRAY_MAX_DIMS];
  void *data;                         /* owned, C order, numel * itemsize bytes */
} SnnArray;

SnnArray *snn_array_new (SnnDType dtype, int ndim, const int64_t *shape); /* zero-filled */
SnnArray *snn_array_new_f32 (int ndim, const int64_t *shape, const float *src); /* copies src if not NULL */
SnnArray *snn_array_new_scalar_f32 (float value);
void      snn_array_free (SnnArray *a);
int64_t   snn_array_numel (const SnnArray *a);
size_t    snn_dtype_size (SnnDType dtype);
/* A new float32 copy of any numeric array (int labels, float64 inputs, ...). */
SnnArray *snn_array_to_f32 (const SnnArray *a);
/* A new int64 copy of an integer array; error if the array is float. */
SnnArray *snn_array_to_i64 (const SnnArray *a, GError **error);
/* "(2, 3, 4)" into a caller-freed string, for error messages. */
char     *snn_array_shape_string (const SnnArray *a);

/* Errors name the file and the problem (SNN_IO_ERROR). Big-endian and
 * Fortran-ordered files are rejected with a clear message. */
SnnArray *snn_npy_load (const char *path, GError **error);
gboolean  snn_npy_save (const char *path, const SnnArray *a, GError **error);

/* An ordered collection of named arrays. */
typedef struct SnnNpz SnnNpz;

SnnNpz     *snn_npz_new (void);
void        snn_npz_free (SnnNpz *npz);
/* Takes ownership of a; replaces an entry of the same name. */
void        snn_npz_add (SnnNpz *npz, const char *name, SnnArray *a);
SnnArray   *snn_npz_get (const SnnNpz *npz, const char *name); /* borrowed, NULL if absent */
guint       snn_npz_count (const SnnNpz *npz);
const char *snn_npz_name (const SnnNpz *npz, guint i);          /* without ".npy" */
/* Reads both numpy.savez (stored) and numpy.savez_compressed (deflate) archives. */
SnnNpz     *snn_npz_load (const char *path, GError **error);
/* Writes a stored (uncompressed) zip that numpy.load reads; the file is
 * written to a temporary name and renamed, so a failure never leaves half a file. */
gboolean    snn_npz_save (const char *path, const SnnNpz *npz, GError **error);

G_END_DECLS
