/* Error domains of the core, one per room. */
#pragma once
#include <glib.h>

G_BEGIN_DECLS

#define SNN_MODEL_ERROR (snn_model_error_quark ())
#define SNN_DATA_ERROR  (snn_data_error_quark ())
#define SNN_IO_ERROR    (snn_io_error_quark ())
#define SNN_TRAIN_ERROR (snn_train_error_quark ())
#define SNN_BACKEND_ERROR (snn_backend_error_quark ())

typedef enum {
  SNN_ERROR_PARSE,     /* file is not valid JSON / not the expected structure */
  SNN_ERROR_INVALID,   /* a value is out of range or of the wrong type */
  SNN_ERROR_SHAPE,     /* shapes do not fit */
  SNN_ERROR_TRUNCATED, /* a file ends early */
  SNN_ERROR_MISSING,   /* a file or entry is absent */
  SNN_ERROR_NONFINITE, /* a NaN or infinity appeared */
  SNN_ERROR_UNSUPPORTED,
} SnnErrorCode;

GQuark snn_model_error_quark (void);
GQuark snn_data_error_quark (void);
GQuark snn_io_error_quark (void);
GQuark snn_train_error_quark (void);
GQuark snn_backend_error_quark (void);

G_END_DECLS
