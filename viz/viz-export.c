/* Export of any view to PNG, SVG or PDF, and of line-chart series to CSV.
 *
 * The file is rendered into memory first and then written with
 * snn_file_write_atomic (a synced temporary file renamed over the target):
 * a failed render or write never leaves a half-written file where the
 * user's was. */
#include "viz-private.h"
#include "atomic-file.h"
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <string.h>

G_DEFINE_QUARK (viz-error-quark, viz_error)

typedef enum {
  FORMAT_NONE,
  FORMAT_PNG,
  FORMAT_SVG,
  FORMAT_PDF,
} Format;

/* Cairo's image surfaces are limited to 32767 pixels a side. */
#define MAX_SIDE 32767

static Format
format_of (const char *path)
{
  const char *dot = strrchr (path, '.');
  const char *slash = strrchr (path, G_DIR_SEPARATOR);
  if (!dot || (slash && dot < slash))
    return FORMAT_NONE;
  if (!g_ascii_strcasecmp (dot, ".png"))
    return FORMAT_PNG;
  if (!g_ascii_strcasecmp (dot, ".svg"))
    return FORMAT_SVG;
  if (!g_ascii_strcasecmp (dot, ".pdf"))
    return FORMAT_PDF;
  return FORMAT_NONE;
}

static cairo_status_t
append_bytes (void *closure, const unsigned char *data, unsigned int length)
{
  g_byte_array_append (closure, data, length);
  return CAIRO_STATUS_SUCCESS;
}

static cairo_surface_t *
create_surface (Format format, int width, int height, GByteArray *out)
{
  cairo_surface_t *surface;
  switch (format)
    {
    case FORMAT_PNG:
      return cairo_image_surface_create (CAIRO_FORMAT_ARGB32, width, height);
    case FORMAT_SVG:
      surface = cairo_svg_surface_create_for_stream (append_bytes, out, width, height);
      /* Pixels, so the drawing has the size asked for on screen. */
      cairo_svg_surface_set_document_unit (surface, CAIRO_SVG_UNIT_PX);
      return surface;
    case FORMAT_PDF:
      surface = cairo_pdf_surface_create_for_stream (append_bytes, out, width, height);
      cairo_pdf_surface_set_metadata (surface, CAIRO_PDF_METADATA_CREATOR, "SNN Workbench");
      return surface;
    case FORMAT_NONE:
    default:
      g_return_val_if_reached (NULL);
    }
}

/* Draws into a new surface of the format and leaves the file's bytes in out. */
static cairo_status_t
render (Format format, int width, int height, VizDrawFunc draw, gconstpointer data,
        const VizStyle *style, GByteArray *out)
{
  cairo_surface_t *surface = create_surface (format, width, height, out);
  cairo_status_t status = cairo_surface_status (surface);
  if (status == CAIRO_STATUS_SUCCESS)
    {
      cairo_t *cr = cairo_create (surface);
      draw (cr, width, height, data, style);
      status = cairo_status (cr);
      cairo_destroy (cr);
    }
  if (status == CAIRO_STATUS_SUCCESS && format == FORMAT_PNG)
    status = cairo_surface_write_to_png_stream (surface, append_bytes, out);
  cairo_surface_finish (surface);
  if (status == CAIRO_STATUS_SUCCESS)
    status = cairo_surface_status (surface);
  cairo_surface_destroy (surface);
  return status;
}

gboolean
viz_export (const char *path, int width, int height, VizDrawFunc draw, gconstpointer data,
            const VizStyle *style, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (draw != NULL, FALSE);
  g_autofree char *name = g_filename_display_name (path);
  Format format = format_of (path);
  if (format == FORMAT_NONE)
    {
      g_set_error (error, VIZ_ERROR, VIZ_ERROR_FORMAT,
                   "Cannot export “%s”: unknown file type (use .png, .svg or .pdf)", name);
      return FALSE;
    }
  if (width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
    {
      g_set_error (error, VIZ_ERROR, VIZ_ERROR_SIZE,
                   "Cannot export “%s”: size %d × %d is out of range (1 to %d)",
                   name, width, height, MAX_SIDE);
      return FALSE;
    }
  g_autoptr (GByteArray) bytes = g_byte_array_new ();
  cairo_status_t status = render (format, width, height, draw, data, style, bytes);
  if (status != CAIRO_STATUS_SUCCESS)
    {
      g_set_error (error, VIZ_ERROR, VIZ_ERROR_RENDER, "Cannot export “%s”: %s",
                   name, cairo_status_to_string (status));
      return FALSE;
    }
  return snn_file_write_atomic (path, bytes->data, bytes->len, error);
}

/* ---- CSV ------------------------------------------------------------ */

static void
append_field (GString *s, const char *text)
{
  if (!strpbrk (text, ",\"\r\n"))
    {
      g_string_append (s, text);
      return;
    }
  g_string_append_c (s, '"');
  for (const char *p = text; *p; p++)
    {
      if (*p == '"')
        g_string_append_c (s, '"');
      g_string_append_c (s, *p);
    }
  g_string_append_c (s, '"');
}

/* Empty for a missing or non-finite value, so spreadsheets see a gap. */
static void
append_number (GString *s, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  if (isfinite (v))
    g_string_append (s, g_ascii_formatd (buf, sizeof buf, "%.10g", v));
}

static double
x_at (const VizSeries *s, int i)
{
  return s->x ? s->x[i] : i;
}

static gboolean
same_x (const VizSeries *a, const VizSeries *b)
{
  if (a->n != b->n)
    return FALSE;
  for (int i = 0; i < a->n; i++)
    {
      double u = x_at (a, i), v = x_at (b, i);
      if (u != v && !(isnan (u) && isnan (v)))
        return FALSE;
    }
  return TRUE;
}

static void
append_label (GString *s, const VizSeries *series, int k, const char *suffix)
{
  g_autofree char *label = series[k].label && *series[k].label
    ? g_strdup (series[k].label) : g_strdup_printf ("series %d", k + 1);
  g_autofree char *field = suffix ? g_strconcat (label, " ", suffix, NULL) : g_strdup (label);
  append_field (s, field);
}

static double
y_at (const VizSeries *s, int i)
{
  return s->y && i < s->n ? s->y[i] : NAN;
}

char *
viz_series_to_csv (const VizSeries *series, int n_series, const char *x_title)
{
  GString *s = g_string_new (NULL);
  const char *xt = x_title && *x_title ? x_title : "x";
  gboolean shared = TRUE;
  int rows = 0;
  for (int k = 0; k < n_series; k++)
    {
      rows = MAX (rows, series[k].n);
      shared = shared && same_x (&series[0], &series[k]);
    }
  if (shared || n_series == 0)
    append_field (s, xt);
  for (int k = 0; k < n_series; k++)
    {
      if (k > 0 || shared)
        g_string_append_c (s, ',');
      if (!shared)
        {
          append_label (s, series, k, xt);
          g_string_append_c (s, ',');
        }
      append_label (s, series, k, NULL);
    }
  g_string_append_c (s, '\n');
  for (int i = 0; i < rows; i++)
    {
      if (shared)
        append_number (s, x_at (&series[0], i));
      for (int k = 0; k < n_series; k++)
        {
          if (k > 0 || shared)
            g_string_append_c (s, ',');
          if (!shared)
            {
              if (i < series[k].n)
                append_number (s, x_at (&series[k], i));
              g_string_append_c (s, ',');
            }
          append_number (s, y_at (&series[k], i));
        }
      g_string_append_c (s, '\n');
    }
  return g_string_free (s, FALSE);
}

gboolean
viz_series_write_csv (const char *path, const VizSeries *series, int n_series,
                      const char *x_title, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_autofree char *csv = viz_series_to_csv (series, n_series, x_title);
  return snn_file_write_atomic (path, csv, -1, error);
}
