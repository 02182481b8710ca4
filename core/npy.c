/* NumPy .npy (format versions 1.0 to 3.0) and .npz (zip) files.
 *
 * Loading maps the file and parses it in memory with explicit bounds checks,
 * so a malformed or truncated file gives an error, never a crash. Saving
 * streams into a temporary file next to the target and renames it at the end,
 * so an existing file is replaced only by a complete one. */
#include "npy.h"
#include "atomic-file.h"
#include "snn-error.h"
#include <errno.h>
#include <glib/gstdio.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---------------------------------------------------------------- arrays */

typedef struct {
  SnnDType dtype;
  char kind;      /* numpy type character */
  int size;
  const char *name;
} DTypeInfo;

static const DTypeInfo dtype_info[] = {
  { SNN_DTYPE_F32, 'f', 4, "float32" },
  { SNN_DTYPE_F64, 'f', 8, "float64" },
  { SNN_DTYPE_I64, 'i', 8, "int64" },
  { SNN_DTYPE_I32, 'i', 4, "int32" },
  { SNN_DTYPE_U8, 'u', 1, "uint8" },
  { SNN_DTYPE_BOOL, 'b', 1, "bool" },
};

size_t
snn_dtype_size (SnnDType dtype)
{
  return dtype_info[dtype].size;
}

int64_t
snn_array_numel (const SnnArray *a)
{
  int64_t n = 1;
  for (int i = 0; i < a->ndim; i++)
    n *= a->shape[i];
  return n;
}

static size_t
array_nbytes (const SnnArray *a)
{
  return (size_t) snn_array_numel (a) * snn_dtype_size (a->dtype);
}

SnnArray *
snn_array_new (SnnDType dtype, int ndim, const int64_t *shape)
{
  g_return_val_if_fail (ndim >= 0 && ndim <= SNN_ARRAY_MAX_DIMS, NULL);
  for (int i = 0; i < ndim; i++)
    g_return_val_if_fail (shape[i] >= 0, NULL);
  SnnArray *a = g_new0 (SnnArray, 1);
  a->dtype = dtype;
  a->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    a->shape[i] = shape[i];
  /* One spare byte keeps data non-NULL for empty arrays. */
  a->data = g_malloc0 (array_nbytes (a) + 1);
  return a;
}

SnnArray *
snn_array_new_f32 (int ndim, const int64_t *shape, const float *src)
{
  SnnArray *a = snn_array_new (SNN_DTYPE_F32, ndim, shape);
  if (a && src)
    memcpy (a->data, src, array_nbytes (a));
  return a;
}

SnnArray *
snn_array_new_scalar_f32 (float value)
{
  SnnArray *a = snn_array_new (SNN_DTYPE_F32, 0, NULL);
  *(float *) a->data = value;
  return a;
}

void
snn_array_free (SnnArray *a)
{
  if (!a)
    return;
  g_free (a->data);
  g_free (a);
}

static double
element_as_double (const SnnArray *a, int64_t i)
{
  switch (a->dtype)
    {
    case SNN_DTYPE_F32: return ((const float *) a->data)[i];
    case SNN_DTYPE_F64: return ((const double *) a->data)[i];
    case SNN_DTYPE_I64: return (double) ((const int64_t *) a->data)[i];
    case SNN_DTYPE_I32: return ((const int32_t *) a->data)[i];
    case SNN_DTYPE_U8: return ((const uint8_t *) a->data)[i];
    case SNN_DTYPE_BOOL: return ((const uint8_t *) a->data)[i] != 0;
    }
  return 0.0;
}

SnnArray *
snn_array_to_f32 (const SnnArray *a)
{
  SnnArray *out = snn_array_new (SNN_DTYPE_F32, a->ndim, a->shape);
  float *dst = out->data;
  int64_t n = snn_array_numel (a);
  for (int64_t i = 0; i < n; i++)
    dst[i] = (float) element_as_double (a, i);
  return out;
}

SnnArray *
snn_array_to_i64 (const SnnArray *a, GError **error)
{
  if (dtype_info[a->dtype].kind == 'f')
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID,
                   "expected an integer array, got %s", dtype_info[a->dtype].name);
      return NULL;
    }
  SnnArray *out = snn_array_new (SNN_DTYPE_I64, a->ndim, a->shape);
  int64_t *dst = out->data, n = snn_array_numel (a);
  for (int64_t i = 0; i < n; i++)
    switch (a->dtype)
      {
      case SNN_DTYPE_I64: dst[i] = ((const int64_t *) a->data)[i]; break;
      case SNN_DTYPE_I32: dst[i] = ((const int32_t *) a->data)[i]; break;
      case SNN_DTYPE_BOOL: dst[i] = ((const uint8_t *) a->data)[i] != 0; break;
      default: dst[i] = ((const uint8_t *) a->data)[i]; break;
      }
  return out;
}

/* Python's tuple notation: "()", "(5,)", "(2, 3)". */
static void
append_shape (GString *s, int ndim, const int64_t *shape)
{
  g_string_append_c (s, '(');
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[i]);
  if (ndim == 1)
    g_string_append_c (s, ',');
  g_string_append_c (s, ')');
}

char *
snn_array_shape_string (const SnnArray *a)
{
  GString *s = g_string_new (NULL);
  append_shape (s, a->ndim, a->shape);
  return g_string_free (s, FALSE);
}

/* ---------------------------------------------------------------- errors */

/* Messages read "PATH: SUBJECT PROBLEM", where SUBJECT is "file" or
 * "member 'NAME'" so that the same parser serves .npy files and .npz members. */
typedef struct {
  const char *path;
  const char *member; /* NULL for a plain .npy file */
} Source;

G_GNUC_PRINTF (4, 5) static void
src_error (GError **error, SnnErrorCode code, const Source *src, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (src->member)
    g_set_error (error, SNN_IO_ERROR, code, "%s: member '%s' %s", src->path, src->member, msg);
  else
    g_set_error (error, SNN_IO_ERROR, code, "%s: file %s", src->path, msg);
}

/* ---------------------------------------------------------------- reading */

static const char npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

static guint16
rd16 (const guint8 *p)
{
  return (guint16) (p[0] | p[1] << 8);
}

static guint32
rd32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

static guint64
rd64 (const guint8 *p)
{
  return (guint64) rd32 (p) | (guint64) rd32 (p + 4) << 32;
}

/* A tiny reader for the Python dict literal of a .npy header. */
typedef struct {
  const char *p;
  const char *why; /* first parse problem */
} Lexer;

static void
lex_ws (Lexer *lx)
{
  while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')
    lx->p++;
}

static gboolean
lex_char (Lexer *lx, char c, const char *why)
{
  lex_ws (lx);
  if (*lx->p != c)
    {
      lx->why = why;
      return FALSE;
    }
  lx->p++;
  return TRUE;
}

static gboolean
lex_string (Lexer *lx, char *out, size_t cap)
{
  lex_ws (lx);
  char q = *lx->p;
  if (q != '\'' && q != '"')
    {
      lx->why = "expected a quoted string";
      return FALSE;
    }
  const char *end = strchr (lx->p + 1, q);
  if (!end || (size_t) (end - lx->p - 1) >= cap)
    {
      lx->why = "unterminated or overlong string";
      return FALSE;
    }
  memcpy (out, lx->p + 1, end - lx->p - 1);
  out[end - lx->p - 1] = '\0';
  lx->p = end + 1;
  return TRUE;
}

static gboolean
lex_bool (Lexer *lx, gboolean *out)
{
  lex_ws (lx);
  if (g_str_has_prefix (lx->p, "True") || g_str_has_prefix (lx->p, "False"))
    {
      *out = lx->p[0] == 'T';
      lx->p += *out ? 4 : 5;
      return TRUE;
    }
  lx->why = "expected True or False";
  return FALSE;
}

static gboolean
lex_int (Lexer *lx, int64_t *out)
{
  lex_ws (lx);
  if (!g_ascii_isdigit (*lx->p))
    {
      lx->why = "expected a non-negative integer";
      return FALSE;
    }
  int64_t v = 0;
  for (; g_ascii_isdigit (*lx->p); lx->p++)
    {
      if (v > (G_MAXINT64 - 9) / 10)
        {
          lx->why = "dimension too large";
          return FALSE;
        }
      v = v * 10 + (*lx->p - '0');
    }
  if (*lx->p == 'L') /* written by Python 2 */
    lx->p++;
  *out = v;
  return TRUE;
}

static gboolean
lex_shape (Lexer *lx, int *ndim, int64_t *shape)
{
  if (!lex_char (lx, '(', "expected '(' for the shape"))
    return FALSE;
  *ndim = 0;
  for (;;)
    {
      lex_ws (lx);
      if (*lx->p == ')')
        break;
      if (*ndim == SNN_ARRAY_MAX_DIMS)
        {
          lx->why = "too many dimensions (at most " G_STRINGIFY (SNN_ARRAY_MAX_DIMS) " are supported)";
          return FALSE;
        }
      if (!lex_int (lx, &shape[(*ndim)++]))
        return FALSE;
      lex_ws (lx);
      if (*lx->p == ',')
        lx->p++;
      else if (*lx->p != ')')
        {
          lx->why = "expected ',' or ')' in the shape";
          return FALSE;
        }
    }
  lx->p++;
  return TRUE;
}

typedef struct {
  char descr[64];
  gboolean fortran;
  int ndim;
  int64_t shape[SNN_ARRAY_MAX_DIMS];
  guint seen; /* bit 0 descr, 1 fortran_order, 2 shape */
  gboolean structured;
} Header;

static gboolean
lex_entry (Lexer *lx, Header *h)
{
  char key[32];
  if (!lex_string (lx, key, sizeof key) || !lex_char (lx, ':', "expected ':' after a key"))
    return FALSE;
  lex_ws (lx);
  if (strcmp (key, "descr") == 0)
    {
      h->seen |= 1;
      if (*lx->p == '[')
        {
          /* Recorded, not parsed: the caller reports it as unsupported. */
          h->structured = TRUE;
          lx->why = "structured dtype";
          return FALSE;
        }
      return lex_string (lx, h->descr, sizeof h->descr);
    }
  if (strcmp (key, "fortran_order") == 0)
    {
      h->seen |= 2;
      return lex_bool (lx, &h->fortran);
    }
  if (strcmp (key, "shape") == 0)
    {
      h->seen |= 4;
      return lex_shape (lx, &h->ndim, h->shape);
    }
  lx->why = "unexpected key (expected descr, fortran_order and shape)";
  return FALSE;
}

static gboolean
lex_header (Lexer *lx, Header *h)
{
  if (!lex_char (lx, '{', "expected '{'"))
    return FALSE;
  for (;;)
    {
      lex_ws (lx);
      if (*lx->p == '}')
        break;
      if (!lex_entry (lx, h))
        return FALSE;
      lex_ws (lx);
      if (*lx->p == ',')
        lx->p++;
      else if (*lx->p != '}')
        {
          lx->why = "expected ',' or '}'";
          return FALSE;
        }
    }
  if (h->seen != 7)
    {
      lx->why = "missing one of the keys descr, fortran_order, shape";
      return FALSE;
    }
  return TRUE;
}

/* Maps a descr such as '<f4' to a dtype. */
static gboolean
parse_descr (const char *descr, SnnDType *dtype, const Source *src, GError **error)
{
  char order = descr[0];
  const char *code = order && strchr ("<>|=", order) ? descr + 1 : descr;
  for (guint i = 0; i < G_N_ELEMENTS (dtype_info); i++)
    {
      const DTypeInfo *d = &dtype_info[i];
      char want[8];
      g_snprintf (want, sizeof want, "%c%d", d->kind, d->size);
      if (strcmp (code, want) != 0)
        continue;
      /* Byte order matters only for multi-byte items. */
      gboolean big = order == '>' || (order == '=' && G_BYTE_ORDER == G_BIG_ENDIAN);
      if (big && d->size > 1)
        {
          src_error (error, SNN_ERROR_UNSUPPORTED, src,
                     "holds big-endian data ('%s'), which is not supported; "
                     "save it as little-endian, e.g. with arr.astype('<%s')", descr, code);
          return FALSE;
        }
      *dtype = d->dtype;
      return TRUE;
    }
  src_error (error, SNN_ERROR_UNSUPPORTED, src,
             "has dtype '%s', which is not supported (use <f4, <f8, <i8, <i4, |u1 or |b1)", descr);
  return FALSE;
}

/* Reads the magic, version and header length. On success *hdr and *hlen
 * locate the header text within buf. */
static gboolean
npy_preamble (const guint8 *buf, size_t len, const Source *src, size_t *hdr, size_t *hlen, GError **error)
{
  if (len < sizeof npy_magic || memcmp (buf, npy_magic, sizeof npy_magic) != 0)
    {
      if (len == 0)
        src_error (error, SNN_ERROR_TRUNCATED, src, "is empty");
      else if (len < sizeof npy_magic && memcmp (buf, npy_magic, len) == 0)
        src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated (%zu bytes, not even a .npy magic string)", len);
      else
        src_error (error, SNN_ERROR_PARSE, src, "is not a .npy file (bad magic string)");
      return FALSE;
    }
  if (len < 10)
    {
      src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated within the .npy preamble (%zu bytes)", len);
      return FALSE;
    }
  int major = buf[6], minor = buf[7];
  if (major < 1 || major > 3)
    {
      src_error (error, SNN_ERROR_UNSUPPORTED, src, "uses .npy format version %d.%d (1.0 to 3.0 are supported)",
                 major, minor);
      return FALSE;
    }
  *hdr = major == 1 ? 10 : 12;
  if (len < *hdr)
    {
      src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated within the .npy preamble (%zu bytes)", len);
      return FALSE;
    }
  *hlen = major == 1 ? rd16 (buf + 8) : rd32 (buf + 8);
  if (*hlen > len - *hdr)
    {
      src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated in its header (expected %zu bytes, found %zu)",
                 *hlen, len - *hdr);
      return FALSE;
    }
  return TRUE;
}

static gboolean
npy_header (const guint8 *buf, size_t len, const Source *src, Header *h, size_t *data_off, GError **error)
{
  size_t hdr, hlen;
  if (!npy_preamble (buf, len, src, &hdr, &hlen, error))
    return FALSE;
  g_autofree char *text = g_strndup ((const char *) buf + hdr, hlen);
  Lexer lx = { text, NULL };
  memset (h, 0, sizeof *h);
  gboolean ok = lex_header (&lx, h);
  if (!ok && h->structured)
    {
      src_error (error, SNN_ERROR_UNSUPPORTED, src, "has a structured dtype, which is not supported");
      return FALSE;
    }
  if (!ok)
    {
      /* Escaped, since a damaged header may hold any bytes. */
      g_autofree char *shown = g_strescape (g_strchomp (text), NULL);
      src_error (error, SNN_ERROR_PARSE, src, "has a malformed .npy header (%s at character %d): %.200s",
                 lx.why, (int) (lx.p - text), shown);
      return FALSE;
    }
  *data_off = hdr + hlen;
  return TRUE;
}

/* The number of data bytes a header describes, or FALSE on overflow. */
static gboolean
checked_nbytes (const Header *h, SnnDType dtype, guint64 *out)
{
  guint64 n = snn_dtype_size (dtype);
  for (int i = 0; i < h->ndim; i++)
    {
      guint64 d = (guint64) h->shape[i];
      if (d && n > G_MAXINT64 / d)
        return FALSE;
      n *= d;
    }
  *out = n;
  return n < G_MAXSIZE / 2;
}

static SnnArray *
npy_parse (const guint8 *buf, size_t len, const Source *src, GError **error)
{
  Header h;
  size_t off;
  SnnDType dtype;
  guint64 nbytes;
  if (!npy_header (buf, len, src, &h, &off, error) || !parse_descr (h.descr, &dtype, src, error))
    return NULL;
  if (h.fortran)
    {
      src_error (error, SNN_ERROR_UNSUPPORTED, src,
                 "is Fortran-ordered, which is not supported; save np.ascontiguousarray(arr) instead");
      return NULL;
    }
  if (!checked_nbytes (&h, dtype, &nbytes))
    {
      src_error (error, SNN_ERROR_INVALID, src, "has an impossibly large shape in its header");
      return NULL;
    }
  if (nbytes > len - off)
    {
      src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated (expected %" G_GUINT64_FORMAT " bytes of data, found %zu)",
                 nbytes, len - off);
      return NULL;
    }
  SnnArray *a = g_new0 (SnnArray, 1);
  a->dtype = dtype;
  a->ndim = h.ndim;
  memcpy (a->shape, h.shape, sizeof h.shape);
  a->data = g_try_malloc (nbytes + 1);
  if (!a->data)
    {
      src_error (error, SNN_ERROR_INVALID, src, "is too large to load (%" G_GUINT64_FORMAT " bytes)", nbytes);
      g_free (a);
      return NULL;
    }
  memcpy (a->data, buf + off, nbytes);
  return a;
}

/* Maps a whole file read-only; errors name the path. */
static GMappedFile *
map_file (const char *path, GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, SNN_IO_ERROR, e == ENOENT ? SNN_ERROR_MISSING : SNN_ERROR_INVALID,
                   "%s: cannot open: %s", path, g_strerror (e));
      return NULL;
    }
  struct stat st;
  if (fstat (fd, &st) == 0 && S_ISDIR (st.st_mode))
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: is a folder, not a file", path);
      close (fd);
      return NULL;
    }
  GError *err = NULL;
  GMappedFile *mf = g_mapped_file_new_from_fd (fd, FALSE, &err);
  close (fd);
  if (!mf)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "%s: cannot read: %s", path, err->message);
      g_error_free (err);
    }
  return mf;
}

SnnArray *
snn_npy_load (const char *path, GError **error)
{
  GMappedFile *mf = map_file (path, error);
  if (!mf)
    return NULL;
  Source src = { path, NULL };
  const guint8 *buf = (const guint8 *) g_mapped_file_get_contents (mf);
  SnnArray *a = npy_parse (buf ? buf : (const guint8 *) "", g_mapped_file_get_length (mf), &src, error);
  g_mapped_file_unref (mf);
  return a;
}

/* ---------------------------------------------------------------- writing */

/* A version 1.0 header, padded with spaces and a newline so that the data
 * starts at a multiple of 64 bytes, as numpy writes it. */
static GByteArray *
npy_header_bytes (const SnnArray *a)
{
  static const char *descr[] = { "<f4", "<f8", "<i8", "<i4", "|u1", "|b1" };
  GString *dict = g_string_new (NULL);
  g_string_append_printf (dict, "{'descr': '%s', 'fortran_order': False, 'shape': ", descr[a->dtype]);
  append_shape (dict, a->ndim, a->shape);
  g_string_append (dict, ", }");
  size_t total = 10 + dict->len + 1;
  size_t padded = (total + 63) / 64 * 64;
  g_string_append_printf (dict, "%*s\n", (int) (padded - total), "");
  guint16 hlen = (guint16) dict->len;
  GByteArray *out = g_byte_array_sized_new (padded);
  g_byte_array_append (out, (const guint8 *) npy_magic, sizeof npy_magic);
  guint8 pre[4] = { 1, 0, hlen & 0xff, hlen >> 8 };
  g_byte_array_append (out, pre, sizeof pre);
  g_byte_array_append (out, (const guint8 *) dict->str, dict->len);
  g_string_free (dict, TRUE);
  return out;
}

gboolean
snn_npy_save (const char *path, const SnnArray *a, GError **error)
{
  SnnAtomicFile *af = snn_atomic_file_open (path, error);
  if (!af)
    return FALSE;
  GByteArray *hdr = npy_header_bytes (a);
  gboolean ok = snn_atomic_file_write (af, hdr->data, hdr->len, error)
                && snn_atomic_file_write (af, a->data, array_nbytes (a), error);
  g_byte_array_unref (hdr);
  if (!ok)
    {
      snn_atomic_file_abort (af);
      return FALSE;
    }
  return snn_atomic_file_commit (af, error);
}

/* ---------------------------------------------------------------- npz */

struct SnnNpz {
  GPtrArray *names;  /* char *, without ".npy" */
  GPtrArray *arrays; /* SnnArray * */
  GHashTable *index; /* name -> position + 1; archives can hold many members */
};

SnnNpz *
snn_npz_new (void)
{
  SnnNpz *npz = g_new0 (SnnNpz, 1);
  npz->names = g_ptr_array_new_with_free_func (g_free);
  npz->arrays = g_ptr_array_new_with_free_func ((GDestroyNotify) snn_array_free);
  npz->index = g_hash_table_new (g_str_hash, g_str_equal);
  return npz;
}

void
snn_npz_free (SnnNpz *npz)
{
  if (!npz)
    return;
  g_ptr_array_unref (npz->names);
  g_ptr_array_unref (npz->arrays);
  g_hash_table_unref (npz->index);
  g_free (npz);
}

static int
npz_find (const SnnNpz *npz, const char *name)
{
  return GPOINTER_TO_INT (g_hash_table_lookup (npz->index, name)) - 1;
}

void
snn_npz_add (SnnNpz *npz, const char *name, SnnArray *a)
{
  int i = npz_find (npz, name);
  if (i >= 0)
    {
      snn_array_free (g_ptr_array_index (npz->arrays, i));
      g_ptr_array_index (npz->arrays, i) = a;
      return;
    }
  char *key = g_strdup (name);
  g_ptr_array_add (npz->names, key);
  g_ptr_array_add (npz->arrays, a);
  g_hash_table_insert (npz->index, key, GINT_TO_POINTER (npz->names->len));
}

SnnArray *
snn_npz_get (const SnnNpz *npz, const char *name)
{
  int i = npz_find (npz, name);
  return i >= 0 ? g_ptr_array_index (npz->arrays, i) : NULL;
}

guint
snn_npz_count (const SnnNpz *npz)
{
  return npz->names->len;
}

const char *
snn_npz_name (const SnnNpz *npz, guint i)
{
  g_return_val_if_fail (i < npz->names->len, NULL);
  return g_ptr_array_index (npz->names, i);
}

/* ------------------------------------------------------------ zip reading */

#define ZIP_LOCAL_SIG   0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_END_SIG     0x06054b50u
#define ZIP64_END_SIG   0x06064b50u
#define ZIP64_LOC_SIG   0x07064b50u

typedef struct {
  const guint8 *buf;
  size_t len;
  const char *path;
} Zip;

/* One central-directory entry, with zip64 sizes already resolved. */
typedef struct {
  char *name;
  guint16 flags, method;
  guint32 crc;
  guint64 csize, usize, local;
} ZipEntry;

/* Offset and count of the central directory, from the end record(s). */
static gboolean
zip_directory (const Zip *z, guint64 *cd_off, guint64 *count, GError **error)
{
  gssize eocd = -1;
  for (gssize i = (gssize) z->len - 22; i >= 0 && i >= (gssize) z->len - 22 - 65535; i--)
    if (rd32 (z->buf + i) == ZIP_END_SIG)
      {
        eocd = i;
        break;
      }
  if (eocd < 0)
    {
      if (z->len >= 4 && rd32 (z->buf) == ZIP_LOCAL_SIG)
        g_set_error (error, SNN_IO_ERROR, SNN_ERROR_TRUNCATED,
                     "%s: file is truncated (the zip archive has no end record)", z->path);
      else if (z->len >= 6 && memcmp (z->buf, npy_magic, 6) == 0)
        g_set_error (error, SNN_IO_ERROR, SNN_ERROR_PARSE, "%s: file is a .npy array, not an .npz archive", z->path);
      else
        g_set_error (error, SNN_IO_ERROR, SNN_ERROR_PARSE, "%s: file is not an .npz (zip) archive", z->path);
      return FALSE;
    }
  const guint8 *e = z->buf + eocd;
  *count = rd16 (e + 10);
  *cd_off = rd32 (e + 16);
  /* numpy's zipfile writes a zip64 end record for large archives. */
  if (eocd >= 20 && rd32 (e - 20) == ZIP64_LOC_SIG)
    {
      guint64 z64 = rd64 (e - 20 + 8);
      if (z64 > z->len - 56 || z->len < 56 || rd32 (z->buf + z64) != ZIP64_END_SIG)
        {
          g_set_error (error, SNN_IO_ERROR, SNN_ERROR_PARSE, "%s: file has a corrupt zip64 end record", z->path);
          return FALSE;
        }
      *count = rd64 (z->buf + z64 + 32);
      *cd_off = rd64 (z->buf + z64 + 48);
    }
  if (*cd_off > (guint64) eocd)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_PARSE, "%s: file has a corrupt zip directory", z->path);
      return FALSE;
    }
  return TRUE;
}

/* Replaces 0xffffffff placeholders by the values of the zip64 extra field. */
static gboolean
zip_entry_zip64 (const guint8 *extra, size_t xlen, ZipEntry *ze)
{
  guint64 *fields[3] = { &ze->usize, &ze->csize, &ze->local };
  for (size_t i = 0; i + 4 <= xlen;)
    {
      guint16 id = rd16 (extra + i), size = rd16 (extra + i + 2);
      if (i + 4 + size > xlen)
        return FALSE;
      if (id == 0x0001)
        {
          const guint8 *p = extra + i + 4, *end = p + size;
          for (int f = 0; f < 3; f++)
            if (*fields[f] == 0xffffffffu)
              {
                if (p + 8 > end)
                  return FALSE;
                *fields[f] = rd64 (p);
                p += 8;
              }
          return TRUE;
        }
      i += 4 + size;
    }
  return TRUE;
}

/* Reads the central-directory entry at *pos and advances past it. */
static gboolean
zip_entry (const Zip *z, guint64 *pos, ZipEntry *ze, GError **error)
{
  const guint8 *p = z->buf + *pos;
  if (*pos + 46 > z->len || rd32 (p) != ZIP_CENTRAL_SIG)
    goto corrupt;
  size_t nlen = rd16 (p + 28), xlen = rd16 (p + 30), clen = rd16 (p + 32);
  if (*pos + 46 + nlen + xlen + clen > z->len)
    goto corrupt;
  ze->flags = rd16 (p + 8);
  ze->method = rd16 (p + 10);
  ze->crc = rd32 (p + 16);
  ze->csize = rd32 (p + 20);
  ze->usize = rd32 (p + 24);
  ze->local = rd32 (p + 42);
  if (!zip_entry_zip64 (p + 46 + nlen, xlen, ze))
    goto corrupt;
  /* numpy writes UTF-8 names; anything else is repaired so that names
   * and messages stay valid UTF-8. */
  ze->name = g_utf8_make_valid ((const char *) p + 46, nlen);
  *pos += 46 + nlen + xlen + clen;
  return TRUE;
corrupt:
  g_set_error (error, SNN_IO_ERROR, SNN_ERROR_PARSE,
               "%s: file has a corrupt zip directory (entry at byte offset %" G_GUINT64_FORMAT ")", z->path, *pos);
  return FALSE;
}

/* Inflates a raw deflate stream of known output size. */
static guint8 *
zip_inflate (const guint8 *in, guint64 csize, guint64 usize, const Source *src, GError **error)
{
  /* Deflate cannot compress by more than about 1032:1; a larger claim is a
   * corrupt or hostile size field, not a reason to allocate gigabytes. */
  if (usize > csize * 1040 + 1024)
    {
      src_error (error, SNN_ERROR_INVALID, src, "claims an impossible uncompressed size (%" G_GUINT64_FORMAT " bytes)", usize);
      return NULL;
    }
  guint8 *out = g_try_malloc (usize + 1);
  if (!out)
    {
      src_error (error, SNN_ERROR_INVALID, src, "is too large to load (%" G_GUINT64_FORMAT " bytes)", usize);
      return NULL;
    }
  z_stream zs = { 0 };
  if (inflateInit2 (&zs, -MAX_WBITS) != Z_OK)
    {
      src_error (error, SNN_ERROR_INVALID, src, "cannot be decompressed (zlib initialisation failed)");
      g_free (out);
      return NULL;
    }
  zs.next_in = (Bytef *) in;
  zs.avail_in = 0;
  zs.next_out = out;
  zs.avail_out = 0;
  int rc = Z_OK;
  guint64 in_left = csize, out_left = usize + 1;
  while (rc == Z_OK)
    {
      /* avail_* are 32-bit; feed big members in slices. */
      if (zs.avail_in == 0 && in_left)
        {
          zs.avail_in = (uInt) MIN (in_left, (guint64) 1 << 30);
          in_left -= zs.avail_in;
        }
      if (zs.avail_out == 0 && out_left)
        {
          zs.avail_out = (uInt) MIN (out_left, (guint64) 1 << 30);
          out_left -= zs.avail_out;
        }
      rc = inflate (&zs, Z_NO_FLUSH);
    }
  guint64 got = zs.total_out;
  const char *why = rc == Z_DATA_ERROR && zs.msg ? zs.msg : "its size differs from the zip directory";
  inflateEnd (&zs);
  if (rc != Z_STREAM_END || got != usize)
    {
      if (rc == Z_BUF_ERROR && got < usize)
        src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated (compressed data ends after %" G_GUINT64_FORMAT
                   " of %" G_GUINT64_FORMAT " bytes)", got, usize);
      else
        src_error (error, SNN_ERROR_PARSE, src, "has corrupt compressed data (%s)", why);
      g_free (out);
      return NULL;
    }
  return out;
}

/* Locates a member's bytes; *owned is set when they had to be inflated. */
static const guint8 *
zip_member_bytes (const Zip *z, const ZipEntry *ze, const Source *src, guint8 **owned, GError **error)
{
  *owned = NULL;
  if (ze->flags & 1)
    {
      src_error (error, SNN_ERROR_UNSUPPORTED, src, "is encrypted, which is not supported");
      return NULL;
    }
  if (ze->method != 0 && ze->method != 8)
    {
      src_error (error, SNN_ERROR_UNSUPPORTED, src, "uses zip compression method %d (only stored and deflate are supported)",
                 ze->method);
      return NULL;
    }
  const guint8 *lh = z->buf + ze->local;
  if (ze->local > z->len || z->len - ze->local < 30 || rd32 (lh) != ZIP_LOCAL_SIG)
    {
      src_error (error, SNN_ERROR_PARSE, src, "has a corrupt local header (byte offset %" G_GUINT64_FORMAT ")", ze->local);
      return NULL;
    }
  guint64 data = ze->local + 30 + rd16 (lh + 26) + rd16 (lh + 28);
  guint64 avail = data < z->len ? z->len - data : 0;
  if (ze->csize > avail)
    {
      src_error (error, SNN_ERROR_TRUNCATED, src, "is truncated (expected %" G_GUINT64_FORMAT " bytes, found %"
                 G_GUINT64_FORMAT ")", ze->csize, avail);
      return NULL;
    }
  if (ze->method == 8)
    return *owned = zip_inflate (z->buf + data, ze->csize, ze->usize, src, error);
  if (ze->csize != ze->usize)
    {
      src_error (error, SNN_ERROR_PARSE, src, "is stored with inconsistent sizes");
      return NULL;
    }
  return z->buf + data;
}

static SnnArray *
zip_read_member (const Zip *z, const ZipEntry *ze, GError **error)
{
  Source src = { z->path, ze->name };
  guint8 *owned;
  const guint8 *bytes = zip_member_bytes (z, ze, &src, &owned, error);
  if (!bytes)
    return NULL;
  SnnArray *a = NULL;
  if (crc32_z (0, bytes, ze->usize) != ze->crc)
    src_error (error, SNN_ERROR_PARSE, &src, "is corrupt (CRC-32 mismatch)");
  else
    a = npy_parse (bytes, ze->usize, &src, error);
  g_free (owned);
  return a;
}

static SnnNpz *
npz_parse (const Zip *z, GError **error)
{
  guint64 pos, count;
  if (!zip_directory (z, &pos, &count, error))
    return NULL;
  SnnNpz *npz = snn_npz_new ();
  for (guint64 i = 0; i < count; i++)
    {
      ZipEntry ze;
      if (!zip_entry (z, &pos, &ze, error))
        goto fail;
      /* numpy.load lists non-.npy members but they are not arrays. */
      SnnArray *a = NULL;
      if (g_str_has_suffix (ze.name, ".npy") && !(a = zip_read_member (z, &ze, error)))
        {
          g_free (ze.name);
          goto fail;
        }
      if (a)
        {
          ze.name[strlen (ze.name) - 4] = '\0';
          snn_npz_add (npz, ze.name, a);
        }
      g_free (ze.name);
    }
  return npz;
fail:
  snn_npz_free (npz);
  return NULL;
}

SnnNpz *
snn_npz_load (const char *path, GError **error)
{
  GMappedFile *mf = map_file (path, error);
  if (!mf)
    return NULL;
  const guint8 *buf = (const guint8 *) g_mapped_file_get_contents (mf);
  Zip z = { buf ? buf : (const guint8 *) "", g_mapped_file_get_length (mf), path };
  SnnNpz *npz = npz_parse (&z, error);
  g_mapped_file_unref (mf);
  return npz;
}

/* ------------------------------------------------------------ zip writing */

static void
put16 (GByteArray *b, guint v)
{
  guint8 p[2] = { v & 0xff, (v >> 8) & 0xff };
  g_byte_array_append (b, p, 2);
}

static void
put32 (GByteArray *b, guint32 v)
{
  put16 (b, v & 0xffff);
  put16 (b, v >> 16);
}

/* Fields shared by the local header and the central-directory entry:
 * version needed, flags, method (stored), DOS time and date (1980-01-01,
 * as numpy uses, so that output is reproducible), CRC and sizes. */
static void
put_common (GByteArray *b, const char *name, guint32 crc, guint32 size)
{
  put16 (b, 20);
  put16 (b, g_str_is_ascii (name) ? 0 : 0x0800); /* bit 11: UTF-8 name */
  put16 (b, 0);
  put16 (b, 0);
  put16 (b, (0 << 9) | (1 << 5) | 1);
  put32 (b, crc);
  put32 (b, size);
  put32 (b, size);
  put16 (b, strlen (name));
  put16 (b, 0);
}

static void
put_central (GByteArray *cd, const char *name, guint32 crc, guint32 size, guint32 offset)
{
  put32 (cd, ZIP_CENTRAL_SIG);
  put16 (cd, (3 << 8) | 20); /* made by Unix, so the attributes below count */
  put_common (cd, name, crc, size);
  put16 (cd, 0);                 /* comment length */
  put16 (cd, 0);                 /* disk */
  put16 (cd, 0);                 /* internal attributes */
  put32 (cd, 0100644u << 16);    /* regular file, rw-r--r-- */
  put32 (cd, offset);
  g_byte_array_append (cd, (const guint8 *) name, strlen (name));
}

/* Writes one stored member and records it in the central directory. */
static gboolean
zip_write_member (SnnAtomicFile *af, const char *path, GByteArray *cd, const char *name, const SnnArray *a, GError **error)
{
  GByteArray *hdr = npy_header_bytes (a);
  size_t nbytes = array_nbytes (a);
  guint64 size = hdr->len + (guint64) nbytes;
  if (size >= 0xffffffffu || snn_atomic_file_offset (af) >= 0xffffffffu)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_UNSUPPORTED,
                   "%s: archive would exceed 4 GiB, which needs zip64 (not supported for writing)", path);
      g_byte_array_unref (hdr);
      return FALSE;
    }
  guint32 crc = crc32_z (crc32_z (0, hdr->data, hdr->len), a->data, nbytes);
  guint32 offset = (guint32) snn_atomic_file_offset (af);
  GByteArray *lh = g_byte_array_new ();
  put32 (lh, ZIP_LOCAL_SIG);
  put_common (lh, name, crc, (guint32) size);
  g_byte_array_append (lh, (const guint8 *) name, strlen (name));
  gboolean ok = snn_atomic_file_write (af, lh->data, lh->len, error)
                && snn_atomic_file_write (af, hdr->data, hdr->len, error)
                && snn_atomic_file_write (af, a->data, nbytes, error);
  put_central (cd, name, crc, (guint32) size, offset);
  g_byte_array_unref (lh);
  g_byte_array_unref (hdr);
  return ok;
}

static gboolean
zip_write_end (SnnAtomicFile *af, const char *path, GByteArray *cd, guint count, GError **error)
{
  if (count >= 0xffff || snn_atomic_file_offset (af) >= 0xffffffffu)
    {
      g_set_error (error, SNN_IO_ERROR, SNN_ERROR_UNSUPPORTED,
                   "%s: archive is too large for a zip without zip64 (not supported for writing)", path);
      return FALSE;
    }
  guint32 cd_off = (guint32) snn_atomic_file_offset (af);
  GByteArray *end = g_byte_array_new ();
  put32 (end, ZIP_END_SIG);
  put16 (end, 0);
  put16 (end, 0);
  put16 (end, count);
  put16 (end, count);
  put32 (end, cd->len);
  put32 (end, cd_off);
  put16 (end, 0);
  gboolean ok = snn_atomic_file_write (af, cd->data, cd->len, error) && snn_atomic_file_write (af, end->data, end->len, error);
  g_byte_array_unref (end);
  return ok;
}

gboolean
snn_npz_save (const char *path, const SnnNpz *npz, GError **error)
{
  SnnAtomicFile *af = snn_atomic_file_open (path, error);
  if (!af)
    return FALSE;
  GByteArray *cd = g_byte_array_new ();
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < snn_npz_count (npz); i++)
    {
      g_autofree char *name = g_strconcat (snn_npz_name (npz, i), ".npy", NULL);
      ok = zip_write_member (af, path, cd, name, g_ptr_array_index (npz->arrays, i), error);
    }
  ok = ok && zip_write_end (af, path, cd, snn_npz_count (npz), error);
  g_byte_array_unref (cd);
  if (!ok)
    {
      snn_atomic_file_abort (af);
      return FALSE;
    }
  return snn_atomic_file_commit (af, error);
}
