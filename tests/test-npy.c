/* .npy and .npz files: exact round trips, numpy's layout, deflate members,
 * and clear errors (never crashes) for malformed files. */
#include "npy.h"
#include "snn-error.h"
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "test-files.h"

/* Plain stdio: g_file_set_contents syncs to disk, too slow for fuzzing. */
static void
write_bytes (const char *path, const void *data, gsize len)
{
  FILE *f = fopen (path, "wb");
  g_assert_nonnull (f);
  g_assert_cmpuint (fwrite (data, 1, len, f), ==, len);
  g_assert_cmpint (fclose (f), ==, 0);
}

static GBytes *
read_bytes (const char *path)
{
  char *data;
  gsize len;
  GError *error = NULL;
  g_file_get_contents (path, &data, &len, &error);
  g_assert_no_error (error);
  return g_bytes_new_take (data, len);
}

/* An array with every byte set from a counter, so that any misplaced byte
 * shows; bool arrays get 0/1. */
static SnnArray *
patterned (SnnDType dtype, int ndim, const int64_t *shape, int salt)
{
  SnnArray *a = snn_array_new (dtype, ndim, shape);
  size_t n = snn_array_numel (a) * snn_dtype_size (dtype);
  guint8 *p = a->data;
  for (size_t i = 0; i < n; i++)
    p[i] = dtype == SNN_DTYPE_BOOL ? (i + salt) % 3 == 0 : (guint8) (i * 7 + salt);
  return a;
}

static void
assert_same_array (const SnnArray *a, const SnnArray *b)
{
  g_assert_cmpint (a->dtype, ==, b->dtype);
  g_assert_cmpint (a->ndim, ==, b->ndim);
  for (int i = 0; i < a->ndim; i++)
    g_assert_cmpint (a->shape[i], ==, b->shape[i]);
  g_assert_cmpmem (a->data, snn_array_numel (a) * snn_dtype_size (a->dtype),
                   b->data, snn_array_numel (b) * snn_dtype_size (b->dtype));
}

#define assert_error_names assert_error_mentions

static const int64_t shapes[][4] = {
  { 0 },          /* scalar */
  { 7 },
  { 2, 3, 4 },
  { 0, 3 },       /* empty */
  { 1, 1, 1, 5 },
};
static const int ndims[] = { 0, 1, 3, 2, 4 };

static void
test_npy_roundtrip (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "a.npy");
  for (SnnDType t = SNN_DTYPE_F32; t <= SNN_DTYPE_BOOL; t++)
    for (guint s = 0; s < G_N_ELEMENTS (ndims); s++)
      {
        SnnArray *a = patterned (t, ndims[s], shapes[s], t * 10 + s);
        GError *error = NULL;
        g_assert_true (snn_npy_save (path, a, &error));
        g_assert_no_error (error);
        SnnArray *b = snn_npy_load (path, &error);
        g_assert_no_error (error);
        assert_same_array (a, b);
        snn_array_free (a);
        snn_array_free (b);
      }
}

static void
test_npy_layout (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "layout.npy");
  int64_t shape[2] = { 2, 3 };
  float v[6] = { 1, 2, 3, 4, 5, 6 };
  SnnArray *a = snn_array_new_f32 (2, shape, v);
  g_assert_true (snn_npy_save (path, a, NULL));
  snn_array_free (a);
  GBytes *bytes = read_bytes (path);
  gsize len;
  const guint8 *p = g_bytes_get_data (bytes, &len);
  g_assert_cmpmem (p, 8, "\x93NUMPY\x01\x00", 8);
  gsize hlen = p[8] | p[9] << 8;
  g_assert_cmpint ((10 + hlen) % 64, ==, 0);
  g_assert_cmpint (len, ==, 10 + hlen + sizeof v);
  g_assert_cmpint (p[10 + hlen - 1], ==, '\n');
  g_autofree char *hdr = g_strndup ((const char *) p + 10, hlen);
  g_assert_nonnull (strstr (hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
  g_assert_cmpmem (p + 10 + hlen, sizeof v, v, sizeof v);
  g_bytes_unref (bytes);

  /* Python's tuple notation in the header, for 0-d and 1-d arrays too. */
  SnnArray *s = snn_array_new_scalar_f32 (2.5f);
  g_autofree char *ss = snn_array_shape_string (s);
  g_assert_cmpstr (ss, ==, "()");
  g_assert_true (snn_npy_save (path, s, NULL));
  snn_array_free (s);
  bytes = read_bytes (path);
  g_assert_nonnull (g_strstr_len ((const char *) g_bytes_get_data (bytes, NULL) + 10, 100, "'shape': (), }"));
  g_bytes_unref (bytes);
  int64_t one[1] = { 5 };
  s = snn_array_new (SNN_DTYPE_U8, 1, one);
  g_autofree char *s1 = snn_array_shape_string (s);
  g_assert_cmpstr (s1, ==, "(5,)");
  snn_array_free (s);
}

/* A .npy file with the given version, header text and data bytes. */
static void
write_npy_raw (const char *path, int major, const char *header, const void *data, gsize dlen)
{
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) "\x93NUMPY", 6);
  guint8 ver[2] = { major, 0 };
  g_byte_array_append (b, ver, 2);
  guint32 hlen = strlen (header);
  guint8 len[4] = { hlen & 0xff, (hlen >> 8) & 0xff, (hlen >> 16) & 0xff, hlen >> 24 };
  g_byte_array_append (b, len, major == 1 ? 2 : 4);
  g_byte_array_append (b, (const guint8 *) header, hlen);
  g_byte_array_append (b, data, dlen);
  write_bytes (path, b->data, b->len);
  g_byte_array_unref (b);
}

static void
test_npy_versions (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "v.npy");
  int64_t v[3] = { -1, 0, 1234567890123 };
  for (int major = 1; major <= 3; major++)
    {
      /* Double quotes and no trailing comma: still valid Python. */
      write_npy_raw (path, major, "{\"descr\": \"<i8\", \"shape\": (3,), \"fortran_order\": False}\n", v, sizeof v);
      GError *error = NULL;
      SnnArray *a = snn_npy_load (path, &error);
      g_assert_no_error (error);
      g_assert_cmpint (a->dtype, ==, SNN_DTYPE_I64);
      g_assert_cmpint (a->ndim, ==, 1);
      g_assert_cmpint (a->shape[0], ==, 3);
      g_assert_cmpmem (a->data, sizeof v, v, sizeof v);
      snn_array_free (a);
    }
  write_npy_raw (path, 4, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }\n", v, sizeof v);
  GError *error = NULL;
  g_assert_null (snn_npy_load (path, &error));
  assert_error_names (error, SNN_IO_ERROR, SNN_ERROR_UNSUPPORTED, "v.npy", "4.0");
  g_error_free (error);
}

static void
expect_npy_error (const char *path, int code, const char *also)
{
  GError *error = NULL;
  g_assert_null (snn_npy_load (path, &error));
  g_autofree char *base = g_path_get_basename (path);
  assert_error_names (error, SNN_IO_ERROR, code, base, also);
  g_error_free (error);
}

static void
test_npy_rejects (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "bad.npy");
  float v[4] = { 0 };
  write_npy_raw (path, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_UNSUPPORTED, "big-endian");
  write_npy_raw (path, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_UNSUPPORTED, "Fortran");
  write_npy_raw (path, 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_UNSUPPORTED, "<c8");
  write_npy_raw (path, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_UNSUPPORTED, "structured");
  write_npy_raw (path, 1, "{'descr': '<f4', 'shape': (4,), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_PARSE, "missing");
  write_npy_raw (path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,) \n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_PARSE, "malformed");
  /* Shapes whose byte count overflows, or merely exceeds the file. */
  write_npy_raw (path, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }\n",
                 v, sizeof v);
  expect_npy_error (path, SNN_ERROR_INVALID, NULL);
  write_npy_raw (path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n",
                 v, sizeof v);
  expect_npy_error (path, SNN_ERROR_PARSE, NULL);
  write_npy_raw (path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_TRUNCATED, "found 16");
  write_npy_raw (path, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3,4,5,6,7,8,9), }\n", v, sizeof v);
  expect_npy_error (path, SNN_ERROR_PARSE, "dimensions");
  write_bytes (path, "PK\x03\x04 not an npy", sizeof "PK\x03\x04 not an npy" - 1);
  expect_npy_error (path, SNN_ERROR_PARSE, "magic");
  write_bytes (path, "", 0);
  expect_npy_error (path, SNN_ERROR_TRUNCATED, "empty");
  g_autofree char *missing = tmp_path (f, "missing.npy");
  expect_npy_error (missing, SNN_ERROR_MISSING, NULL);
}

static void
test_npy_truncated (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "trunc.npy");
  int64_t shape[2] = { 4, 8 };
  SnnArray *a = patterned (SNN_DTYPE_F64, 2, shape, 1);
  g_assert_true (snn_npy_save (path, a, NULL));
  snn_array_free (a);
  GBytes *bytes = read_bytes (path);
  gsize len;
  const guint8 *p = g_bytes_get_data (bytes, &len);
  /* Cutting anywhere must give an error that names the file. */
  for (gsize cut = 0; cut < len; cut += cut < 140 ? 1 : 37)
    {
      g_autofree char *fp = g_strdup_printf ("%s/trunc-%zu.npy", f->dir, cut);
      write_bytes (fp, p, cut);
      GError *error = NULL;
      g_assert_null (snn_npy_load (fp, &error));
      g_assert_nonnull (error);
      g_assert_nonnull (strstr (error->message, fp));
      g_error_free (error);
      g_unlink (fp);
    }
  write_bytes (path, p, len - 100);
  expect_npy_error (path, SNN_ERROR_TRUNCATED, "expected 256 bytes of data, found 156");
  g_bytes_unref (bytes);
}

/* Flipping bytes of a valid file must never crash the loader. */
static void
test_npy_fuzz (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "fuzz.npy");
  int64_t shape[2] = { 3, 5 };
  SnnArray *a = patterned (SNN_DTYPE_I32, 2, shape, 3);
  g_assert_true (snn_npy_save (path, a, NULL));
  snn_array_free (a);
  GBytes *bytes = read_bytes (path);
  gsize len;
  const void *orig = g_bytes_get_data (bytes, &len);
  guint8 *p = g_memdup2 (orig, len);
  GRand *r = g_rand_new_with_seed (7);
  for (int i = 0; i < 1000; i++)
    {
      gsize at = g_rand_int_range (r, 0, 80);
      guint8 old = p[at];
      p[at] = g_rand_int_range (r, 0, 256);
      /* A fresh file each time: rewriting one is slow on some filesystems. */
      g_autofree char *fp = g_strdup_printf ("%s/fuzz-%d.npy", f->dir, i);
      write_bytes (fp, p, len);
      GError *error = NULL;
      SnnArray *b = snn_npy_load (fp, &error);
      g_assert_true ((b == NULL) == (error != NULL));
      snn_array_free (b);
      g_clear_error (&error);
      g_unlink (fp);
      p[at] = old;
    }
  g_rand_free (r);
  g_free (p);
  g_bytes_unref (bytes);
}

static void
test_array_convert (void)
{
  int64_t shape[1] = { 4 };
  SnnArray *u = snn_array_new (SNN_DTYPE_U8, 1, shape);
  memcpy (u->data, "\x00\x01\x07\xff", 4);
  SnnArray *x = snn_array_to_f32 (u);
  g_assert_cmpint (x->dtype, ==, SNN_DTYPE_F32);
  g_assert_cmpfloat (((float *) x->data)[3], ==, 255.0f);
  GError *error = NULL;
  SnnArray *l = snn_array_to_i64 (u, &error);
  g_assert_no_error (error);
  g_assert_cmpint (((int64_t *) l->data)[2], ==, 7);
  g_assert_null (snn_array_to_i64 (x, &error));
  g_assert_error (error, SNN_IO_ERROR, SNN_ERROR_INVALID);
  g_clear_error (&error);
  SnnArray *i32 = snn_array_new (SNN_DTYPE_I32, 1, shape);
  ((int32_t *) i32->data)[1] = -5;
  SnnArray *l2 = snn_array_to_i64 (i32, NULL);
  g_assert_cmpint (((int64_t *) l2->data)[1], ==, -5);
  snn_array_free (u);
  snn_array_free (x);
  snn_array_free (l);
  snn_array_free (i32);
  snn_array_free (l2);
}

/* ------------------------------------------------------------------ npz */

static SnnNpz *
sample_npz (void)
{
  SnnNpz *npz = snn_npz_new ();
  int64_t s1[2] = { 16, 49 }, s2[1] = { 16 }, s3[3] = { 2, 0, 3 };
  snn_npz_add (npz, "0.weight", patterned (SNN_DTYPE_F32, 2, s1, 1));
  snn_npz_add (npz, "0.bias", patterned (SNN_DTYPE_F32, 1, s2, 2));
  snn_npz_add (npz, "loss", snn_array_new_scalar_f32 (0.125f));
  snn_npz_add (npz, "labels", patterned (SNN_DTYPE_I64, 1, s2, 3));
  snn_npz_add (npz, "empty", patterned (SNN_DTYPE_F64, 3, s3, 4));
  snn_npz_add (npz, "mask", patterned (SNN_DTYPE_BOOL, 2, s1, 5));
  return npz;
}

static void
assert_same_npz (const SnnNpz *a, const SnnNpz *b)
{
  g_assert_cmpuint (snn_npz_count (a), ==, snn_npz_count (b));
  for (guint i = 0; i < snn_npz_count (a); i++)
    {
      g_assert_cmpstr (snn_npz_name (a, i), ==, snn_npz_name (b, i));
      assert_same_array (snn_npz_get (a, snn_npz_name (a, i)), snn_npz_get (b, snn_npz_name (b, i)));
    }
}

static void
assert_no_temp_files (Fixture *f)
{
  GDir *dir = g_dir_open (f->dir, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (dir)))
    if (strstr (name, ".tmp-"))
      g_error ("temporary file %s left behind", name);
  g_dir_close (dir);
}

static void
test_npz_roundtrip (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "w.npz");
  SnnNpz *npz = sample_npz ();
  g_assert_null (snn_npz_get (npz, "nothing"));
  /* Adding an existing name replaces it in place. */
  snn_npz_add (npz, "loss", snn_array_new_scalar_f32 (0.5f));
  g_assert_cmpuint (snn_npz_count (npz), ==, 6);
  g_assert_cmpstr (snn_npz_name (npz, 2), ==, "loss");
  g_assert_cmpfloat (*(float *) snn_npz_get (npz, "loss")->data, ==, 0.5f);
  GError *error = NULL;
  g_assert_true (snn_npz_save (path, npz, &error));
  g_assert_no_error (error);
  assert_no_temp_files (f);
  SnnNpz *back = snn_npz_load (path, &error);
  g_assert_no_error (error);
  assert_same_npz (npz, back);
  g_assert_cmpint (snn_npz_get (back, "loss")->ndim, ==, 0);
  snn_npz_free (back);
  /* An empty archive is valid too. */
  SnnNpz *none = snn_npz_new ();
  g_assert_true (snn_npz_save (path, none, NULL));
  back = snn_npz_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (snn_npz_count (back), ==, 0);
  snn_npz_free (back);
  snn_npz_free (none);
  snn_npz_free (npz);
}

/* A minimal zip writer for hand-made archives: stored or deflated members,
 * with an optional lie in the directory's compressed size. */
typedef struct {
  GByteArray *file, *cd;
  guint count;
} ZipMaker;

static void
le (GByteArray *b, guint64 v, int n)
{
  for (int i = 0; i < n; i++)
    {
      guint8 c = (v >> (8 * i)) & 0xff;
      g_byte_array_append (b, &c, 1);
    }
}

static GByteArray *
deflate_raw (const guint8 *data, gsize len)
{
  z_stream zs = { 0 };
  g_assert_cmpint (deflateInit2 (&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
  GByteArray *out = g_byte_array_sized_new (deflateBound (&zs, len));
  g_byte_array_set_size (out, deflateBound (&zs, len));
  zs.next_in = (Bytef *) data;
  zs.avail_in = len;
  zs.next_out = out->data;
  zs.avail_out = out->len;
  g_assert_cmpint (deflate (&zs, Z_FINISH), ==, Z_STREAM_END);
  g_byte_array_set_size (out, zs.total_out);
  deflateEnd (&zs);
  return out;
}

static void
zip_add (ZipMaker *z, const char *name, const guint8 *data, gsize len, gboolean deflate, gsize extra_claim)
{
  GByteArray *body = deflate ? deflate_raw (data, len) : g_byte_array_new ();
  if (!deflate)
    g_byte_array_append (body, data, len);
  guint32 crc = crc32 (0, data, len);
  guint64 offset = z->file->len;
  GByteArray *heads[2] = { z->file, z->cd };
  for (int h = 0; h < 2; h++)
    {
      GByteArray *b = heads[h];
      le (b, h ? 0x02014b50 : 0x04034b50, 4);
      if (h)
        le (b, 20, 2);
      le (b, 20, 2), le (b, 0, 2), le (b, deflate ? 8 : 0, 2), le (b, 0, 2), le (b, 0x21, 2);
      le (b, crc, 4), le (b, body->len + (h ? extra_claim : 0), 4), le (b, len + (h ? extra_claim : 0), 4);
      le (b, strlen (name), 2), le (b, 0, 2);
      if (h)
        le (b, 0, 2), le (b, 0, 2), le (b, 0, 2), le (b, 0, 4), le (b, offset, 4);
      g_byte_array_append (b, (const guint8 *) name, strlen (name));
      if (!h)
        g_byte_array_append (b, body->data, body->len);
    }
  z->count++;
  g_byte_array_unref (body);
}

static void
zip_finish (ZipMaker *z, const char *path)
{
  guint64 cd_off = z->file->len, cd_len = z->cd->len;
  g_byte_array_append (z->file, z->cd->data, z->cd->len);
  GByteArray *b = z->file;
  le (b, 0x06054b50, 4), le (b, 0, 2), le (b, 0, 2), le (b, z->count, 2), le (b, z->count, 2);
  le (b, cd_len, 4), le (b, cd_off, 4), le (b, 0, 2);
  write_bytes (path, b->data, b->len);
  g_byte_array_unref (z->file);
  g_byte_array_unref (z->cd);
}

/* The .npy bytes of an array, as written by snn_npy_save. */
static GBytes *
npy_bytes (Fixture *f, const SnnArray *a)
{
  g_autofree char *p = tmp_path (f, "member.npy");
  g_assert_true (snn_npy_save (p, a, NULL));
  GBytes *b = read_bytes (p);
  g_unlink (p);
  return b;
}

static void
test_npz_deflate (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "c.npz");
  SnnNpz *npz = sample_npz ();
  ZipMaker z = { g_byte_array_new (), g_byte_array_new (), 0 };
  for (guint i = 0; i < snn_npz_count (npz); i++)
    {
      const char *name = snn_npz_name (npz, i);
      GBytes *b = npy_bytes (f, snn_npz_get (npz, name));
      g_autofree char *member = g_strconcat (name, ".npy", NULL);
      gsize len;
      const guint8 *p = g_bytes_get_data (b, &len);
      zip_add (&z, member, p, len, i % 2 == 0, 0);
      g_bytes_unref (b);
    }
  /* Members that are not arrays are skipped, as numpy.load leaves them. */
  zip_add (&z, "README.txt", (const guint8 *) "hello", 5, FALSE, 0);
  zip_finish (&z, path);
  GError *error = NULL;
  SnnNpz *back = snn_npz_load (path, &error);
  g_assert_no_error (error);
  assert_same_npz (npz, back);
  snn_npz_free (back);
  snn_npz_free (npz);
}

static void
expect_npz_error (const char *path, int code, const char *also)
{
  GError *error = NULL;
  g_assert_null (snn_npz_load (path, &error));
  g_autofree char *base = g_path_get_basename (path);
  assert_error_names (error, SNN_IO_ERROR, code, base, also);
  g_error_free (error);
}

static void
test_npz_member_errors (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "weights.npz");
  int64_t shape[2] = { 28, 28 };
  SnnArray *a = patterned (SNN_DTYPE_F32, 2, shape, 9);
  GBytes *b = npy_bytes (f, a);
  snn_array_free (a);
  gsize len;
  const guint8 *p = g_bytes_get_data (b, &len);

  /* The directory promises more bytes than the archive holds. */
  ZipMaker z = { g_byte_array_new (), g_byte_array_new (), 0 };
  zip_add (&z, "0.weight.npy", p, len, FALSE, 1000000);
  zip_finish (&z, path);
  expect_npz_error (path, SNN_ERROR_TRUNCATED, "member '0.weight.npy' is truncated (expected 1003264 bytes");

  /* A member whose own .npy data is short. */
  z = (ZipMaker) { g_byte_array_new (), g_byte_array_new (), 0 };
  zip_add (&z, "0.weight.npy", p, len - 3036, FALSE, 0);
  zip_finish (&z, path);
  expect_npz_error (path, SNN_ERROR_TRUNCATED, "member '0.weight.npy' is truncated (expected 3136 bytes of data, found 100)");

  /* Deflate data cut short. */
  z = (ZipMaker) { g_byte_array_new (), g_byte_array_new (), 0 };
  zip_add (&z, "x.npy", p, len, TRUE, 0);
  GByteArray *body = deflate_raw (p, len);
  gsize cut = body->len / 2;
  g_byte_array_unref (body);
  g_byte_array_remove_range (z.file, z.file->len - cut, cut);
  /* Keep the directory consistent with the shortened body. */
  for (guint i = 0; i + 4 <= z.cd->len; i++)
    if (memcmp (z.cd->data + i, "PK\x01\x02", 4) == 0)
      {
        guint32 csize = z.cd->data[i + 20] | z.cd->data[i + 21] << 8;
        csize -= cut;
        z.cd->data[i + 20] = csize & 0xff;
        z.cd->data[i + 21] = csize >> 8;
      }
  zip_finish (&z, path);
  expect_npz_error (path, SNN_ERROR_TRUNCATED, "member 'x.npy' is truncated");

  /* Corrupt CRC. */
  z = (ZipMaker) { g_byte_array_new (), g_byte_array_new (), 0 };
  zip_add (&z, "x.npy", p, len, FALSE, 0);
  z.file->data[z.file->len - 1] ^= 0x55;
  zip_finish (&z, path);
  expect_npz_error (path, SNN_ERROR_PARSE, "CRC");

  /* A member that is not a .npy file. */
  z = (ZipMaker) { g_byte_array_new (), g_byte_array_new (), 0 };
  zip_add (&z, "x.npy", (const guint8 *) "plain text", 10, TRUE, 0);
  zip_finish (&z, path);
  expect_npz_error (path, SNN_ERROR_PARSE, "member 'x.npy' is not a .npy file");
  g_bytes_unref (b);
}

static void
test_npz_bad_zip (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "bad.npz");
  write_bytes (path, "this is not a zip archive at all, just some text", 48);
  expect_npz_error (path, SNN_ERROR_PARSE, "not an .npz");
  write_bytes (path, "", 0);
  expect_npz_error (path, SNN_ERROR_PARSE, NULL);
  g_autofree char *npy = tmp_path (f, "a.npy");
  SnnArray *a = snn_array_new_scalar_f32 (1);
  g_assert_true (snn_npy_save (npy, a, NULL));
  snn_array_free (a);
  expect_npz_error (npy, SNN_ERROR_PARSE, ".npy array, not an .npz");
  g_autofree char *missing = tmp_path (f, "missing.npz");
  expect_npz_error (missing, SNN_ERROR_MISSING, NULL);
  expect_npz_error (f->dir, SNN_ERROR_INVALID, "folder");

  /* Cutting a valid archive anywhere, or flipping its bytes, gives errors
   * (or, for harmless flips, a successful load) but never a crash. */
  SnnNpz *npz = sample_npz ();
  g_assert_true (snn_npz_save (path, npz, NULL));
  snn_npz_free (npz);
  GBytes *bytes = read_bytes (path);
  gsize len;
  const void *orig = g_bytes_get_data (bytes, &len);
  guint8 *p = g_memdup2 (orig, len);
  for (gsize cut = 0; cut < len; cut += 13)
    {
      g_autofree char *fp = g_strdup_printf ("%s/cut-%zu.npz", f->dir, cut);
      write_bytes (fp, p, cut);
      expect_npz_error (fp, cut < 4 ? SNN_ERROR_PARSE : SNN_ERROR_TRUNCATED, NULL);
      g_unlink (fp);
    }
  GRand *r = g_rand_new_with_seed (11);
  for (int i = 0; i < 1500; i++)
    {
      /* Aim at the headers and directory, where the sizes live. */
      gsize at = i % 2 ? g_rand_int_range (r, 0, 128) : len - 1 - g_rand_int_range (r, 0, 600);
      guint8 old = p[at];
      p[at] = g_rand_int_range (r, 0, 256);
      g_autofree char *fp = g_strdup_printf ("%s/fuzz-%d.npz", f->dir, i);
      write_bytes (fp, p, len);
      GError *error = NULL;
      SnnNpz *back = snn_npz_load (fp, &error);
      g_assert_true ((back == NULL) == (error != NULL));
      if (error)
        g_assert_nonnull (strstr (error->message, fp));
      snn_npz_free (back);
      g_clear_error (&error);
      g_unlink (fp);
      p[at] = old;
    }
  g_rand_free (r);
  g_free (p);
  g_bytes_unref (bytes);
}

/* A save that fails midway leaves the existing file as it was. */
static void
test_npz_atomic (Fixture *f, gconstpointer d)
{
  g_autofree char *path = tmp_path (f, "keep.npz");
  SnnNpz *npz = sample_npz ();
  g_assert_true (snn_npz_save (path, npz, NULL));
  GBytes *before = read_bytes (path);

  /* A file-size limit makes the write fail even when running as root. */
  struct rlimit old, lim;
  getrlimit (RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 4096;
  void (*prev) (int) = signal (SIGXFSZ, SIG_IGN);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &lim), ==, 0);
  int64_t shape[1] = { 100000 };
  snn_npz_add (npz, "big", patterned (SNN_DTYPE_F32, 1, shape, 0));
  GError *error = NULL;
  gboolean ok = snn_npz_save (path, npz, &error);
  gboolean ok1 = snn_npy_save (path, snn_npz_get (npz, "big"), NULL);
  setrlimit (RLIMIT_FSIZE, &old);
  signal (SIGXFSZ, prev);
  g_assert_false (ok);
  g_assert_false (ok1);
  assert_error_names (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "keep.npz", "cannot write");
  g_clear_error (&error);
  GBytes *after = read_bytes (path);
  g_assert_true (g_bytes_equal (before, after));
  assert_no_temp_files (f);

  g_autofree char *nowhere = g_build_filename (f->dir, "no-such-folder", "w.npz", NULL);
  g_assert_false (snn_npz_save (nowhere, npz, &error));
  assert_error_names (error, SNN_IO_ERROR, SNN_ERROR_INVALID, "no-such-folder/w.npz", NULL);
  g_clear_error (&error);
  g_bytes_unref (before);
  g_bytes_unref (after);
  snn_npz_free (npz);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn) g_test_add (path, Fixture, NULL, setup, fn, teardown)
  ADD ("/npy/roundtrip", test_npy_roundtrip);
  ADD ("/npy/layout", test_npy_layout);
  ADD ("/npy/versions", test_npy_versions);
  ADD ("/npy/rejects", test_npy_rejects);
  ADD ("/npy/truncated", test_npy_truncated);
  ADD ("/npy/fuzz", test_npy_fuzz);
  g_test_add_func ("/npy/convert", test_array_convert);
  ADD ("/npz/roundtrip", test_npz_roundtrip);
  ADD ("/npz/deflate", test_npz_deflate);
  ADD ("/npz/member-errors", test_npz_member_errors);
  ADD ("/npz/bad-zip", test_npz_bad_zip);
  ADD ("/npz/atomic", test_npz_atomic);
  return g_test_run ();
}
