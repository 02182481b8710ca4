/* Picks the fastest OpenBLAS kernel that computes correct results on this
 * CPU. OPENBLAS_CORETYPE is read when OpenBLAS loads, so the choice is made
 * by setting it and re-executing the program once. The user's own
 * OPENBLAS_CORETYPE is kept; SNNWB_BLAS_SELECT=0 turns the choice off. */
#pragma once

void snnwb_blas_select (int argc, char **argv);
/* A one-line report: the kernel in use and how it was chosen. */
const char *snnwb_blas_choice (void);
