#include "snn-error.h"

G_DEFINE_QUARK (snn-model-error-quark, snn_model_error)
G_DEFINE_QUARK (snn-data-error-quark, snn_data_error)
G_DEFINE_QUARK (snn-io-error-quark, snn_io_error)
G_DEFINE_QUARK (snn-train-error-quark, snn_train_error)
G_DEFINE_QUARK (snn-backend-error-quark, snn_backend_error)
